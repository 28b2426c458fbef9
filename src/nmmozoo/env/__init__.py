"""The bundled Neural MMO 2 environment (batched torch, CPU or CUDA, TorchRL API)."""

from .config import PRESETS, ConfigError, EnvConfig, make_config
from .actions import random_actions, sample_masked
from .observe import expand_observation
from .torchrl_env import ACTION_HEADS, ActionError, NMMOEnv, make_env
from .world import STAT_NAMES, World
from .envstate import EnvStateError, env_state, load_env_state

__all__ = ["random_actions", "sample_masked", "PRESETS", "ConfigError", "EnvConfig", "make_config", "expand_observation",
           "ACTION_HEADS", "ActionError", "NMMOEnv", "make_env", "STAT_NAMES", "World",
           "EnvStateError", "env_state", "load_env_state"]
