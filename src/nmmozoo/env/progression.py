"""Skill experience and levels: the 2.0 XP table, level-ups and their events."""

from __future__ import annotations

import torch

from . import eventlog
from .config import EnvConfig
from .constants import EVENT
from .state import WorldState


def levels_for(exp: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Level (1-based) reached with ``exp`` XP: the number of thresholds ≤ exp."""
    return torch.bucketize(exp, thresholds, right=True).to(torch.int32)


def update_levels(s: WorldState, cfg: EnvConfig, thresholds: torch.Tensor) -> None:
    """Recompute player levels from XP; count LEVEL_UP events (one per level gained)."""
    P = cfg.num_agents
    new = levels_for(s.exp[:, :P].contiguous(), thresholds)
    up = new > s.level[:, :P]
    gained = (new - s.level[:, :P]).clamp_min(0).sum(-1)
    s.events[..., EVENT["LEVEL_UP"]] += gained
    # Event-log rows: 2.0 logs one LEVEL_UP (skill, new level) per XP gain that raises a level.
    n = eventlog.level_slots(cfg)
    hit = (new.clamp(0, n - 1)[..., None] == torch.arange(n, device=s.device)) & up[..., None]
    eventlog.mark(s, eventlog.LEVEL_UP_BASE, hit.view(*up.shape[:2], -1))
    s.level[:, :P] = new
