"""Training: PPO as a Lightning module over TorchRL collectors."""

from .ppo import PPOModule

__all__ = ["PPOModule"]
