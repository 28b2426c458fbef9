"""Automatic harvesting, tile depletion and respawn (docs/env.md#the-tick).

Players harvest from the position they hold at the start of the tick: standing on Foliage
(food), Herb, Ore, Tree or Crystal, or 4-adjacent to Fish. A tile feeds one player per tick:
when several players stand on (or fish) the same tile, the lowest slot wins, as 2.0's
in-order update does. A harvested tile turns into its depleted form; its respawn tick is drawn
at depletion from the geometric law of the per-tick respawn probability, which is the same
distribution as a coin flip every tick but costs nothing while the tile waits.
"""

from __future__ import annotations

import math

import torch

from . import constants as C
from .config import EnvConfig
from .grid import lookup, material_table
from .state import NEVER, WorldState

_STAND_SKILL = {C.HERB: C.HERBALISM, C.ORE: C.PROSPECTING, C.TREE: C.CARVING,
                C.CRYSTAL: C.ALCHEMY}
_DEPLETED = {C.FOLIAGE: C.SCRUB, C.HERB: C.WEEDS, C.ORE: C.SLAG, C.TREE: C.STUMP,
             C.CRYSTAL: C.FRAGMENT, C.FISH: C.OCEAN}
# Item each harvest yields (part 2 puts it in the inventory) and the weapon it may add.
HARVEST_ITEM = {C.FISHING: C.RATION, C.HERBALISM: C.POTION, C.PROSPECTING: C.WHETSTONE,
                C.CARVING: C.ARROW, C.ALCHEMY: C.RUNES}
RARE_ITEM = {C.PROSPECTING: C.WAND, C.CARVING: C.SPEAR, C.ALCHEMY: C.BOW}


class HarvestTables:
    """Look-up tables over materials, built once per env on its device."""

    def __init__(self, cfg: EnvConfig, num_maps: int, device):
        self.standable = material_table({m: 1 for m in [C.FOLIAGE, *_STAND_SKILL]},
                                        dtype=torch.bool, device=device)
        self.stand_skill = material_table(_STAND_SKILL, default=0, device=device)
        self.depleted = torch.arange(C.NUM_MATERIALS, dtype=torch.uint8, device=device)
        for k, v in _DEPLETED.items():
            self.depleted[k] = v
        self.deltas = torch.tensor(C.MOVE_DELTAS[:4], device=device)
        regrow = {v: k for k, v in _DEPLETED.items()}
        self.regrow = torch.arange(C.NUM_MATERIALS, dtype=torch.uint8, device=device)
        for k, v in regrow.items():
            self.regrow[k] = v
        p = {C.SCRUB: cfg.respawn_foliage, C.STUMP: cfg.respawn_tree, C.SLAG: cfg.respawn_ore,
             C.FRAGMENT: cfg.respawn_crystal, C.WEEDS: cfg.respawn_herb, C.OCEAN: cfg.respawn_fish}
        # log(1 - p) per depleted material; -inf for p = 1 (regrows the same tick), 0 for p = 0.
        self.log_keep = material_table(
            {m: (math.log1p(-q) if q < 1 else -math.inf) for m, q in p.items()},
            dtype=torch.float32, device=device)
        xp = cfg.xp_other_harvest
        self.stand_xp = material_table({C.HERB: cfg.xp_fishing_herbalism, C.ORE: xp, C.TREE: xp,
                                        C.CRYSTAL: xp}, dtype=torch.int32, device=device)
        H = W = cfg.map_size
        self.size = num_maps * H * W
        # One claim cell per tile of every map, plus a sink for "no claim".
        self.owner = torch.full((self.size + 1,), _UNCLAIMED, dtype=torch.int64, device=device)
        self.map_offset = (torch.arange(num_maps, device=device) * (H * W))[:, None]
        self.tiles_per_map = H * W
        self.depletable = material_table({m: 1 for kv in _DEPLETED.items() for m in kv},
                                         dtype=torch.bool, device=device)


_UNCLAIMED = 1 << 40


def respawn_delay(log_keep: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Ticks until regrowth for tiles with per-tick respawn probability ``1 - exp(log_keep)``."""
    u = torch.rand(log_keep.shape, generator=gen, device=log_keep.device).clamp_min(1e-12)
    delay = torch.where(log_keep < 0, torch.log(u) / log_keep, torch.full_like(u, NEVER))
    return delay.floor().clamp(max=NEVER)


def harvest(s: WorldState, cfg: EnvConfig, t: HarvestTables, gen: torch.Generator,
            here: torch.Tensor, neighbours: torch.Tensor) -> dict[str, torch.Tensor]:
    """Resolve this tick's eating, herbalism, prospecting, carving, alchemy and fishing.

    ``here`` is the material under each player ``[B, P]``, ``neighbours`` the materials of its
    4 neighbours ``[B, P, 4]`` (N, S, E, W). Returns the successful harvests per player
    (``gather`` / ``gather_skill`` for standing harvests, ``fish``) for the item drops.
    """
    B, P, W = s.num_maps, cfg.num_agents, cfg.map_size
    alive = s.alive[:, :P]
    r, c = s.row[:, :P], s.col[:, :P]
    stand = alive & lookup(t.standable, here)
    is_fish = neighbours == C.FISH
    fish = alive & is_fish.any(-1)
    d = is_fish.int().argmax(-1)  # first Fish neighbour in N, S, E, W order
    fr, fc = r + t.deltas[d, 0], c + t.deltas[d, 1]
    sink = t.size
    key_stand = torch.where(stand, t.map_offset + r * W + c, sink)
    key_fish = torch.where(fish, t.map_offset + fr * W + fc, sink)
    keys = torch.stack([key_stand, key_fish]).view(-1)
    slots = torch.arange(P, device=s.device).expand(2, B, P).reshape(-1)
    t.owner.scatter_reduce_(0, keys, slots, "amin")
    won = (t.owner.index_select(0, keys) == slots).view(2, B, P)
    t.owner[keys] = _UNCLAIMED
    won_stand, won_fish = won[0] & stand, won[1] & fish

    # Deplete the won tiles and draw their respawn ticks.
    flat_keys = keys.view(2, B, P)[torch.stack([won_stand, won_fish])]
    mat = s.material.view(-1)
    old = mat[flat_keys].long()
    mat[flat_keys] = t.depleted[old]
    tick = s.tick[:, None].expand(B, P)
    won_both = torch.stack([won_stand, won_fish])
    ticks = torch.stack([tick, tick])[won_both]
    delay = respawn_delay(t.log_keep[t.depleted[old].long()], gen)
    R = s.res_due.shape[1]
    map_idx = torch.arange(B, device=s.device)[:, None].expand(B, P)
    maps = torch.stack([map_idx, map_idx])[won_both]
    res = s.res_slot.view(-1)[flat_keys].long() + maps * R
    s.res_due.view(-1)[res] = (ticks + delay.long()).clamp(max=NEVER).to(torch.int16)

    # Food.
    eat = won_stand & (here == C.FOLIAGE)
    s.food[:, :P].masked_fill_(eat, cfg.resource_base)
    s.events[..., C.EVENT["EAT_FOOD"]] += eat.int()
    # Skills: XP to the matching skill.
    gather = won_stand & ~eat
    skill = lookup(t.stand_skill, here)
    exp = s.exp[:, :P]
    exp.scatter_add_(2, skill[..., None], torch.where(gather, lookup(t.stand_xp, here), 0)[..., None])
    exp[..., C.FISHING] += won_fish.int() * cfg.xp_fishing_herbalism
    return {"gather": gather, "gather_skill": skill, "fish": won_fish}


def respawn(s: WorldState, t: HarvestTables) -> None:
    """End of tick: depleted tiles whose respawn tick has come regrow."""
    due = (s.res_due <= s.tick[:, None]).view(-1).nonzero().squeeze(1)
    if due.numel():
        R = s.res_due.shape[1]
        tiles = s.res_tile.view(-1)[due] + torch.div(due, R, rounding_mode="floor") * t.tiles_per_map
        mat = s.material.view(-1)
        mat[tiles] = t.regrow[mat[tiles].long()]
        s.res_due.view(-1)[due] = NEVER


def list_resources(s: WorldState, t: HarvestTables, idx: torch.Tensor) -> None:
    """At reset of maps ``idx``: list their depletable tiles (the state must have room)."""
    mat = s.material[idx].view(idx.numel(), -1)
    can = t.depletable[mat.long()]
    R = s.res_tile.shape[1]
    order = torch.sort((~can).int(), dim=1, stable=True).indices[:, :R]  # resource tiles first
    has = can.gather(1, order)
    s.res_tile[idx] = torch.where(has, order, -1)
    s.res_due[idx] = NEVER
    slot = torch.full_like(mat, -1, dtype=torch.int16)
    rank = torch.arange(R, device=s.device, dtype=torch.int16).expand_as(order)
    slot.scatter_(1, order, torch.where(has, rank, -1).to(torch.int16))  # order has no repeats
    s.res_slot[idx] = slot
