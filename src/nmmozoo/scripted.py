"""Scripted policies for the bundled env, with the zoo policies' ``act(td)`` interface.

    from nmmozoo.scripted import Forager
    Forager(seed=0).act(td)          # or: nmmozoo test forager

:class:`Forager` heads for what it needs more: when ``food <= water`` the nearest Foliage tile
(eating happens on it), otherwise the nearest drinkable tile (a passable tile 4-adjacent to
Water). Distances are shortest paths over passable tiles of the agent's own 15×15 tile window
(``("agents","tile")``, the dense observation), computed for every agent of every map at once
(no per-agent Python loop). With neither goal in sight it wanders (a uniform allowed move).
Every other head gets its no-op (stay, no target, no item, no listing) where the mask allows
it, else the first allowed option: all 12 heads are written within their masks.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDictBase

from .env import constants as C
from .env.actions import sample_masked

FOOD, WATER_STAT = 1, 2  # columns of ("agents","stats"): health, food, water, ...
BIG = 1 << 14
# the no-op index of each head: "first" (0) or "last" (n - 1)
NOOP_FIRST = ("attack_style", "give_gold_amount", "sell_price")


def _noop(mask: torch.Tensor, head: str) -> torch.Tensor:
    """The head's no-op where allowed, else the first allowed option (0 if none)."""
    n = mask.shape[-1]
    idx = 0 if head in NOOP_FIRST else n - 1
    first = mask.to(torch.uint8).argmax(-1)
    return torch.where(mask[..., idx], torch.full_like(first, idx), first).long()


def _shift(x: torch.Tensor, dr: int, dc: int, fill) -> torch.Tensor:
    """``out[..., r, c] = x[..., r + dr, c + dc]`` (``fill`` outside)."""
    out = torch.full_like(x, fill)
    H, W = x.shape[-2:]
    rs, re_ = max(0, -dr), H - max(0, dr)
    cs, ce = max(0, -dc), W - max(0, dc)
    out[..., rs:re_, cs:ce] = x[..., rs + dr:re_ + dr, cs + dc:ce + dc]
    return out


def window_distance(goal: torch.Tensor, passable: torch.Tensor, steps: int | None = None) -> torch.Tensor:
    """Steps along passable tiles (4-neighbourhood) to the nearest goal tile of each window
    ``[N, S, S]`` (``BIG`` where none is reachable within the window)."""
    S = goal.shape[-1]
    d = torch.where(goal & passable, 0, BIG).to(torch.int32)
    for _ in range(steps or S * S // 2):
        n = d
        for dr, dc in C.MOVE_DELTAS[:4]:
            n = torch.minimum(n, _shift(d, dr, dc, BIG) + 1)
        n = torch.where(passable, n, BIG)
        if torch.equal(n, d):
            break
        d = n
    return d


class Forager:
    """The scripted forager (see the module doc). ``seed`` seeds its wandering moves."""

    name = "forager"
    recurrent_shape = None

    def __init__(self, seed: int = 0):
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        self._passable = torch.tensor([m not in C.IMPASSABLE for m in range(C.NUM_MATERIALS)])

    def to(self, device=None) -> Forager:
        return self

    def eval(self) -> Forager:
        return self

    def moves(self, tile: torch.Tensor, food: torch.Tensor, water: torch.Tensor,
              move_mask: torch.Tensor) -> torch.Tensor:
        """Move indices ``[...]`` from tile windows ``[..., S*S, 3]``, food and water ``[...]``
        and the move mask ``[..., 5]``."""
        lead = tile.shape[:-2]
        S = math.isqrt(tile.shape[-2])
        mat = tile[..., 2].long().reshape(-1, S, S).clamp(0, C.NUM_MATERIALS - 1)
        passable = self._passable.to(mat.device)[mat]
        wet = mat == C.WATER
        near_water = (_shift(wet, -1, 0, False) | _shift(wet, 1, 0, False)
                      | _shift(wet, 0, -1, False) | _shift(wet, 0, 1, False))
        d_food = window_distance(mat == C.FOLIAGE, passable)
        d_water = window_distance(near_water, passable)
        want_food = (food <= water).reshape(-1, 1, 1)
        first = torch.where(want_food, d_food, d_water)
        other = torch.where(want_food, d_water, d_food)
        c = S // 2
        # the goal in sight: the one needed more, else the other one
        use_first = (first[:, c, c] < BIG)[:, None, None]
        d = torch.where(use_first, first, other)
        here = d[:, c, c]
        mm = move_mask.reshape(-1, move_mask.shape[-1])
        cand = torch.stack([d[:, c + dr, c + dc] for dr, dc in C.MOVE_DELTAS[:4]], -1)
        cand = torch.where(mm[:, :4], cand, BIG + 1)
        best_d, best = cand.min(-1)
        stay = C.NUM_MOVES - 1
        step = torch.where(best_d < here, best, torch.full_like(best, stay))
        wander = sample_masked(mm, self.gen if mm.device.type == "cpu" else None).long()
        out = torch.where(here >= BIG, wander, step)
        return out.reshape(lead)

    @torch.no_grad()
    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        """Write all 12 heads' actions into ``td`` (in place), within the masks."""
        masks = td.get(("agents", "action_mask"))
        for head in C.ACTION_HEADS:
            td.set(("agents", "action", head), _noop(masks.get(head), head))
        stats = td.get(("agents", "stats"))
        if ("agents", "tile") not in td.keys(include_nested=True):
            raise ValueError("the forager reads the dense tile window ('agents','tile'): use obs_mode='dense'")
        mv = self.moves(td.get(("agents", "tile")), stats[..., FOOD], stats[..., WATER_STAT],
                        masks.get("move"))
        mv = torch.where(td.get(("agents", "mask")), mv, td.get(("agents", "action", "move")))
        td.set(("agents", "action", "move"), mv)
        return td


SCRIPTED = {"forager": Forager}


def make_scripted(name: str, seed: int = 0):
    """A scripted policy by name (``forager``)."""
    if name not in SCRIPTED:
        raise KeyError(f"unknown scripted policy {name!r}: {', '.join(SCRIPTED)}")
    return SCRIPTED[name](seed=seed)
