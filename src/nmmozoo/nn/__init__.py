"""Registered model components (importing this package registers them)."""

from . import core, decoders, encoders  # noqa: F401
from . import sequence_decoder, tile_attention  # noqa: F401
from . import mlp_encoders, recurrent, resnet  # noqa: F401
from .registry import REGISTRY, SpecError, build, list_components, register

__all__ = ["REGISTRY", "SpecError", "build", "list_components", "register"]
