"""nmmozoo: a modular PyTorch Lightning model zoo for Neural MMO agents."""

from .env import EnvConfig, NMMOEnv, make_config, make_env

__version__ = "0.1.0"

__all__ = ["EnvConfig", "NMMOEnv", "make_config", "make_env", "__version__"]
