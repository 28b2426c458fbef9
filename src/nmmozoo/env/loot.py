"""What the dead leave (docs/env.md#items-gold-and-the-market).

* A player killed by a player: the killer takes all its gold, then its items in a random
  order while they fit; the rest are destroyed.
* A player killed by an NPC: the NPC takes its gold; its items are destroyed.
* A player who starved: gold and items are destroyed (with ``kill_every_hit``, 2.0, only if
  no one hits it in the same tick: a hit makes it a kill, looted as above).
* An NPC killed by a player: the player takes its gold, a random armour piece and a random
  tool at the NPC's level (each only if the inventory has a free slot). With
  ``kill_every_hit`` (2.0) every hit leaving the NPC at 0 rolls another armour + tool for its
  attacker (see :func:`nmmozoo.env.combat.attack`).
* A killer who dies in the same tick: with ``sequential_combat`` (2.0) what it took passes on
  with its own belongings to its killer (deaths are settled along the chain, earliest first);
  without, it inherits nothing (what it would take is lost).
"""

from __future__ import annotations

import torch

from . import constants as C
from . import eventlog as EL
from . import items as I
from .config import EnvConfig
from .state import WorldState


def loot(s: WorldState, cfg: EnvConfig, t: I.ItemTables, dead: torch.Tensor, killer: torch.Tensor,
         gen: torch.Generator, rolls=None):
    """Settle the deaths of this tick: ``dead`` ``[B, E]``, ``killer`` slot ``[B, E]`` (-1 none),
    ``rolls`` the per-hit NPC drop rolls of ``kill_every_hit`` (None: the killers of NPCs roll).
    Returns the players' gold earnings ``(b, killer, amount)``, one per looted victim
    (EARN_GOLD rows)."""
    if cfg.sequential_combat:
        return _loot_chain(s, cfg, t, dead, killer, gen, rolls)
    B, E = dead.shape
    P = cfg.num_agents
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
        _items(s, cfg, t, by_player, killer[:, :P].clamp(0, P - 1), gen)
    gone = I.Rows.where(s, victim)
    if len(gone):
        I.destroy(s, gone, gone.inv_type > 0)
        gone.write(s)

    # NPC drops for player killers.
    if rolls is not None:  # kill_every_hit: one roll per killing hit (killers alive at the end)
        _drops(s, cfg, t, rolls[0] & ~dead[:, :P], rolls[1], gen)
        return earned
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


def _gold(s: WorldState, cfg: EnvConfig, victims: torch.Tensor, heir: torch.Tensor):
    """Move the gold of ``victims`` ``[B, E]`` to their ``heir`` slots (all valid); returns the
    players' earnings ``(b, heir, amount)``."""
    B, E = victims.shape
    P = cfg.num_agents
    gold = s.gold * victims
    to = torch.where(victims, heir, E)
    inherited = torch.zeros(B, E + 1, dtype=s.gold.dtype, device=s.device)
    inherited.scatter_add_(1, to, gold)
    s.gold.masked_fill_(victims, 0)
    s.gold += inherited[:, :E]
    s.gold_earned += inherited[:, :P]
    looted = torch.zeros(B, E + 1, dtype=torch.int32, device=s.device)
    looted.scatter_add_(1, to, (victims & (gold > 0)).int())
    s.events[..., C.EVENT["EARN_GOLD"]] += looted[:, :P]
    s.events[..., C.EVENT["LOOT_GOLD"]] += looted[:, :P]
    gb, gv = (victims & (gold > 0) & (heir < P)).nonzero(as_tuple=True)
    return gb, heir[gb, gv], gold[gb, gv]


def _items(s: WorldState, cfg: EnvConfig, t: I.ItemTables, by_player: torch.Tensor,
           k: torch.Tensor, gen: torch.Generator) -> None:
    """Move the items of player victims ``by_player`` ``[B, P]`` to their player killers ``k``,
    each victim's in a random order while they fit (the rest stay, to be destroyed)."""
    B, P = by_player.shape
    S = cfg.inventory_slots
    rank = I.rank_by_key(k, by_player)
    order = torch.rand(B, P, S, generator=gen, device=s.device).argsort(-1)
    # Empty slots move nothing: the held items first (still in the random order), and stop
    # after the most any victim holds.
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


def _drops(s: WorldState, cfg: EnvConfig, t: I.ItemTables, who: torch.Tensor,
           level: torch.Tensor, gen: torch.Generator) -> None:
    """One NPC drop roll per player of ``who`` ``[B, P]``: a random armour piece and a random
    tool at ``level``, each created only if the inventory has a free slot."""
    if not (cfg.item_system and bool(who.any())):
        return
    dev = s.device
    lvl = level.clamp(1, cfg.max_item_level)
    armour = torch.tensor(I.ARMOUR, device=dev)[torch.randint(0, 3, who.shape, generator=gen, device=dev)]
    tools = torch.tensor(list(I.TOOLS), device=dev)
    tool = tools[torch.randint(0, len(tools), who.shape, generator=gen, device=dev)]
    for typ in (armour, tool):
        got = I.create(s, cfg, t, who, typ, lvl, need_space=True)
        s.events[..., C.EVENT["LOOT_ITEM"]] += got.int()
        gb, gp = got.nonzero(as_tuple=True)
        EL.record(s, gb, gp, EL.item_key(cfg, EL.LOOT, typ[gb, gp], lvl[gb, gp]))


def _loot_chain(s: WorldState, cfg: EnvConfig, t: I.ItemTables, dead: torch.Tensor,
                killer: torch.Tensor, gen: torch.Generator, rolls):
    """``sequential_combat``: settle deaths in the order they happened along loot chains. Every
    killer acted before it died, so NPC victims that killed no one go first, with the drop
    rolls; then the other victims in rounds, a victim once everything that flows into it (the
    loot of the victims it killed) has arrived. Rounds: the longest chain of killers killed
    in the same tick, plus one."""
    B, E = dead.shape
    P = cfg.num_agents
    has_killer = dead & (killer >= 0)
    heir = killer.clamp_min(0)
    earned = []
    npc_v = torch.zeros_like(dead)
    npc_v[:, P:] = has_killer[:, P:]
    if rolls is not None:
        _drops(s, cfg, t, *rolls, gen)
    else:  # one roll per NPC victim for its player killer (each player hits one target)
        npc_dead = npc_v[:, P:] & (killer[:, P:] < P)
        who = torch.zeros(B, P + 1, dtype=torch.bool, device=s.device)
        who.scatter_(1, torch.where(npc_dead, killer[:, P:], P), npc_dead)
        lvl = torch.zeros(B, P + 1, dtype=s.npc_level.dtype, device=s.device)
        lvl.scatter_(1, torch.where(npc_dead, killer[:, P:], P), s.npc_level[:, P:])
        _drops(s, cfg, t, who[:, :P], lvl[:, :P], gen)
    # Gold along the chains: first the NPC victims nothing flows into, then rounds over the
    # rest (an NPC that killed an NPC or a player may itself be killed later in the tick by
    # an NPC: npc_attack_npcs).
    pending = has_killer.clone()
    inflow = torch.zeros(B, E + 1, dtype=torch.int32, device=s.device)
    inflow.scatter_add_(1, torch.where(pending, heir, E), pending.int())
    first = npc_v & (inflow[:, :E] == 0)
    earned.append(_gold(s, cfg, first, heir))
    pending &= ~first
    while bool(pending.any()):
        inflow = torch.zeros(B, E + 1, dtype=torch.int32, device=s.device)
        inflow.scatter_add_(1, torch.where(pending, heir, E), pending.int())
        now = pending & (inflow[:, :E] == 0)
        if not bool(now.any()):  # a cycle cannot happen (a killer acted before it died)
            break
        earned.append(_gold(s, cfg, now, heir))
        if cfg.item_system:
            by_player = now[:, :P] & (killer[:, :P] < P)
            if bool(by_player.any()):
                _items(s, cfg, t, by_player, killer[:, :P].clamp(0, P - 1), gen)
        pending &= ~now
    # The rest is destroyed: gold of the dead without a killer, items of dead players.
    lost = s.gold * dead
    s.ledger[:, I.GOLD_OUT] += lost.sum(1)
    s.gold.masked_fill_(dead, 0)
    if cfg.item_system:
        gone = I.Rows.where(s, dead[:, :P])
        if len(gone):
            I.destroy(s, gone, gone.inv_type > 0)
            gone.write(s)
    earned = [x for x in earned if x[0].numel()]
    if not earned:
        return None
    return tuple(torch.cat([x[i] for x in earned]) for i in range(3))
