"""Registered model components (importing this package registers them)."""

from . import core, decoders, encoders  # noqa: F401
from .registry import REGISTRY, SpecError, build, list_components, register

__all__ = ["REGISTRY", "SpecError", "build", "list_components", "register"]
