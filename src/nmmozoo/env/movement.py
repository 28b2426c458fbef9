"""Movement: simultaneous, any number of entities may share a tile (as 2.0), and a move into
an impassable tile (or while frozen) fails silently."""

from __future__ import annotations

import torch

from . import constants as C
from .config import EnvConfig
from .grid import chebyshev, lookup, tile_at
from .state import WorldState


def move(s: WorldState, cfg: EnvConfig, direction: torch.Tensor, passable: torch.Tensor,
         deltas: torch.Tensor) -> None:
    """Move every live entity one step in ``direction`` ``[B, E]`` (index into MOVE_DELTAS)."""
    d = deltas[direction]
    nr, nc = s.row + d[..., 0], s.col + d[..., 1]
    ok = s.alive & (s.freeze == 0) & lookup(passable, tile_at(s.material, nr, nc))
    s.row.copy_(torch.where(ok, nr, s.row))
    s.col.copy_(torch.where(ok, nc, s.col))
    P = cfg.num_agents
    # GO_FARTHEST: a new best of progress = radius - distance to the centre (2.0's definition).
    progress = (cfg.radius - chebyshev(s.row[:, :P], s.col[:, :P], cfg.center, cfg.center)).int()
    farther = s.alive[:, :P] & (progress > s.farthest)
    s.farthest.copy_(torch.where(farther, progress, s.farthest))
    s.events[..., C.EVENT["GO_FARTHEST"]] += farther.int()
    s.last_moves.copy_(torch.cat([s.last_moves[..., 1:], direction[:, :P, None]], -1))
