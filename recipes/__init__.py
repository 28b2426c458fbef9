"""Training recipes (YAML files beside this one), shipped as package data."""
