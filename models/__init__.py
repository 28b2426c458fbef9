"""Model specs of the zoo (YAML files beside this one), shipped as package data."""
