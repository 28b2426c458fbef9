"""What the dead leave (NMMO2.md §3–4).

* A player killed by a player: the killer takes all its gold, then its items in a random
  order while they fit; the rest are destroyed.
* A player killed by an NPC: the NPC takes its gold; its items are destroyed.
* A player who starved: gold and items are destroyed, as are the gold and items of anyone
  whose killer dies in the same tick.
* An NPC killed by a player: the player takes its gold, a random armour piece and a random
  tool at the NPC's level (each only if the inventory has a free slot).
"""

from __future__ import annotations

import torch

from . import constants as C
from . import eventlog as EL
from . import items as I
from .config import EnvConfig
from .state import WorldState


def loot(s: WorldState, cfg: EnvConfig, t: I.ItemTables, dead: torch.Tensor, killer: torch.Tensor,
         gen: torch.Generator):
    """Settle the deaths of this tick: ``dead`` ``[B, E]``, ``killer`` slot ``[B, E]`` (-1 none).
    Returns the players' gold earnings ``(b, killer, amount)``, one per looted victim
    (EARN_GOLD rows)."""
    B, E = dead.shape
    P, S = cfg.num_agents, cfg.inventory_slots
    dev = s.device
    # A killer that dies in the same tick inherits nothing (what it would take is lost).
    has_killer = dead & (killer >= 0) & ~dead.gather(1, killer.clamp_min(0))
    # Gold: to the killer, whoever it is; otherwise it leaves the world.
    gold = s.gold * dead
    heir = torch.where(has_killer, killer, E)
    inherited = torch.zeros(B, E + 1, dtype=s.gold.dtype, device=dev)
    inherited.scatter_add_(1, heir, gold)
    s.gold.masked_fill_(dead, 0)
    s.gold += inherited[:, :E]
    s.gold_earned += inherited[:, :P]
    s.ledger[:, I.GOLD_OUT] += (gold * ~has_killer).sum(1)
    looted = torch.zeros(B, E + 1, dtype=torch.int32, device=dev)
    looted.scatter_add_(1, heir, (has_killer & (gold > 0)).int())
    s.events[..., C.EVENT["EARN_GOLD"]] += looted[:, :P]
    s.events[..., C.EVENT["LOOT_GOLD"]] += looted[:, :P]
    gb, gv = (has_killer & (gold > 0) & (killer < P)).nonzero(as_tuple=True)
    earned = (gb, killer[gb, gv], gold[gb, gv])

    # Items of dead players: to a player killer in random order, else destroyed.
    victim = dead[:, :P]
    by_player = victim & has_killer[:, :P] & (killer[:, :P] < P)
    if not cfg.item_system:
        return earned
    if bool(by_player.any()):
        k = killer[:, :P].clamp(0, P - 1)
        rank = I.rank_by_key(k, by_player)
        order = torch.rand(B, P, S, generator=gen, device=dev).argsort(-1)
        # Empty slots move nothing: put the held items first (still in the random order) and
        # stop after the most any victim holds.
        held = s.inv_type.gather(-1, order) > 0
        order = order.gather(-1, torch.sort((~held).to(torch.uint8), dim=-1, stable=True).indices)
        n_held = int(held.sum(-1)[by_player].max())
        for r in range(int(rank[by_player].max()) + 1):
            b, v = (by_player & (rank == r)).nonzero(as_tuple=True)
            for i in range(n_held):  # the victim's items, in its random order
                j = order[b, v, i]
                typ, lvl = s.inv_type[b, v, j], s.inv_level[b, v, j]
                moved = I.transfer(s, cfg, t, b, v, j, k[b, v])
                s.events[b, k[b, v], C.EVENT["LOOT_ITEM"]] += moved.int()
                EL.record(s, b, k[b, v], EL.item_key(cfg, EL.LOOT, typ, lvl), moved)
    gone = I.Rows.where(s, victim)
    if len(gone):
        I.destroy(s, gone, gone.inv_type > 0)
        gone.write(s)

    # NPC drops for player killers.
    npc_dead = dead[:, P:] & has_killer[:, P:] & (killer[:, P:] < P)
    if bool(npc_dead.any()):
        k = killer[:, P:].clamp(0, P - 1)
        level = s.npc_level[:, P:].clamp(1, cfg.max_item_level)
        rank = I.rank_by_key(k, npc_dead)
        armour = torch.tensor(I.ARMOUR, device=dev)[torch.randint(0, 3, k.shape, generator=gen, device=dev)]
        tools = torch.tensor(list(I.TOOLS), device=dev)
        tool = tools[torch.randint(0, len(tools), k.shape, generator=gen, device=dev)]
        for r in range(int(rank[npc_dead].max()) + 1):
            now = npc_dead & (rank == r)
            d = torch.where(now, k, P)
            who, lvl = I.route(now, d, P), I.route(level, d, P)
            for typ in (armour, tool):
                typ_at = I.route(typ, d, P)
                got = I.create(s, cfg, t, who, typ_at, lvl, need_space=True)
                s.events[..., C.EVENT["LOOT_ITEM"]] += got.int()
                gb, gp = got.nonzero(as_tuple=True)
                EL.record(s, gb, gp, EL.item_key(cfg, EL.LOOT, typ_at[gb, gp],
                                                 lvl[gb, gp].clamp(1, cfg.max_item_level)))
    return earned
