"""nmmozoo: a modular PyTorch Lightning model zoo for Neural MMO agents."""

__version__ = "0.1.0"

from .env import EnvConfig, NMMOEnv, make_config, make_env  # noqa: E402
from .hub import load_pretrained, save_pretrained  # noqa: E402
from .policy import Policy, create_policy, list_models  # noqa: E402

__all__ = ["EnvConfig", "NMMOEnv", "make_config", "make_env", "Policy", "create_policy",
           "list_models", "load_pretrained", "save_pretrained", "__version__"]
