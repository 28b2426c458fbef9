"""NPCs: spawning by danger and the passive / neutral / aggressive behaviours (NMMO2.md §3).

Spawning refills each map toward ``num_npcs`` with ``npc_spawn_attempts`` random tries per
tick; a try on an impassable tile fails. Type and level follow the danger of the spawn tile
(0 on the playable edge, about 1 at the centre). Decisions are made from the start-of-tick
state, before any player acts, as in 2.0.
"""

from __future__ import annotations

import torch

from . import constants as C
from .config import EnvConfig
from .grid import chebyshev, lookup, tile_at
from .state import WorldState


def danger(cfg: EnvConfig, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """2.0's danger: 2 × (distance to the nearest playable edge) / playable side."""
    lo, hi = cfg.map_border, cfg.map_border + cfg.playable - 1
    edge = torch.minimum(torch.minimum(row - lo, hi - row), torch.minimum(col - lo, hi - col))
    return 2.0 * edge.float() / cfg.playable


def npc_kind(cfg: EnvConfig, d: torch.Tensor) -> torch.Tensor:
    kind = torch.full_like(d, C.PASSIVE, dtype=torch.int32)
    kind = torch.where(d >= cfg.npc_neutral_danger, C.NEUTRAL, kind)
    return torch.where(d >= cfg.npc_aggressive_danger, C.AGGRESSIVE, kind).int()


def spawn(s: WorldState, cfg: EnvConfig, gen: torch.Generator, passable: torch.Tensor,
          maps: torch.Tensor | None = None) -> None:
    """One spawn call: up to ``npc_spawn_attempts`` tries per map (``maps`` mask, default all)."""
    B, P, N = s.num_maps, cfg.num_agents, cfg.num_npcs
    A = cfg.npc_spawn_attempts
    if N == 0 or A == 0:
        return
    dev = s.device
    lo = cfg.map_border
    r = torch.randint(lo, lo + cfg.playable, (B, A), generator=gen, device=dev)
    c = torch.randint(lo, lo + cfg.playable, (B, A), generator=gen, device=dev)
    ok = lookup(passable, tile_at(s.material, r, c))
    if maps is not None:
        ok &= maps[:, None]
    free = ~s.alive[:, P:]
    # The k-th successful try of a map fills its k-th free NPC slot.
    rank = ok.long().cumsum(1) - 1
    n_free = free.sum(1, keepdim=True)
    ok &= rank < n_free
    free_slots = torch.sort((~free).int(), dim=1, stable=True).indices  # free slots first
    slot = P + free_slots.gather(1, rank.clamp(0, N - 1))

    d = danger(cfg, r, c)
    level = (d * (cfg.npc_max_level - 1) + 1).int().clamp(1, cfg.npc_max_level)
    style = torch.randint(0, 3, (B, A), generator=gen, device=dev)
    # 2.0 gives NPC equipment at level - U(0, 1): one number for every style.
    lvl = level.float() - torch.rand(B, A, generator=gen, device=dev)
    # Serials cycle through 1..32767: ids stay within the observation's int16.
    serial = (s.next_npc_id[:, None] + rank) % 32767 + 1
    s.next_npc_id += ok.sum(1)

    if not bool(ok.any()):
        return
    sel = ok.nonzero(as_tuple=True)
    dest = (sel[0], slot[sel])

    def put(field: torch.Tensor, value: torch.Tensor) -> None:
        field[dest] = value[sel].to(field.dtype)

    put(s.alive, ok)
    put(s.ent_id, -serial)
    put(s.npc_type, npc_kind(cfg, d))
    put(s.row, r)
    put(s.col, c)
    put(s.spawn_row, r)
    put(s.spawn_col, c)
    zero = torch.zeros(B, A, dtype=torch.int32, device=dev)
    for f in (s.time_alive, s.damage, s.freeze, s.attacker_id, s.latest_combat_tick, s.message):
        put(f, zero)
    put(s.attacker, zero - 1)
    put(s.npc_target, zero - 1)
    put(s.health, zero + cfg.health_max)
    put(s.food, zero + cfg.resource_base)
    put(s.water, zero + cfg.resource_base)
    put(s.gold, level)
    s.ledger[:, 0] += (level * ok).sum(1)  # NPC gold enters the world
    put(s.npc_level, level)
    put(s.npc_style, style)
    put(s.item_level, (5 * lvl).int())
    # Skills: only the style's level is set; its XP is 1 (2.0's quirk, which makes it the
    # dominant style for the weakness rule).
    onehot = torch.nn.functional.one_hot(style, C.NUM_SKILLS).int()
    s.level[dest] = (onehot * level[..., None])[sel]
    s.exp[dest] = onehot[sel]
    s.equip_offense[dest] = (cfg.npc_offense_base + cfg.npc_offense_per_level * lvl).int()[sel][:, None].expand(-1, 3)
    s.equip_defense[dest] = (cfg.npc_defense_per_level * lvl).int()[sel][:, None].expand(-1, 3)


def decide(s: WorldState, cfg: EnvConfig, gen: torch.Generator, pairs,
           passable: torch.Tensor, deltas: torch.Tensor):
    """NPC attack targets, styles and moves ``[B, N]`` from the start-of-tick state.

    ``pairs`` are the visible (agent row ``b*P+p``, entity slot, distance) pairs of the last
    observation: who a player sees within the vision radius also sees it, so they hold every
    player within ``npc_aggression_range`` (≤ vision) of each NPC. Aggressive NPCs keep a live target within range, else take the
    closest live player within ``npc_aggression_range``; neutral NPCs hunt their last attacker
    while it is within that range; passive NPCs wander. A hunter steps toward its target
    (larger axis first) when farther than 1, holds at 1, wanders at 0, and attacks within reach.
    """
    B, P, N = s.num_maps, cfg.num_agents, cfg.num_npcs
    dev = s.device
    alive = s.alive[:, P:]
    kind = s.npc_type[:, P:]
    rng = cfg.npc_aggression_range
    # Closest live player of each NPC (lowest slot on ties), from the visible pairs.
    E = cfg.num_entities
    pair_row, pair_ent, pair_dist = pairs
    b = torch.div(pair_row, P, rounding_mode="floor")
    key = pair_dist.long() * P + (pair_row - b * P)
    best = torch.full((B * E,), (rng + 1) * P, dtype=torch.int64, device=dev)
    best.scatter_reduce_(0, b * E + pair_ent, key, "amin")
    best = best.view(B, E)[:, P:]
    best_d = torch.div(best, P, rounding_mode="floor")
    closest = best - best_d * P
    r, c = s.row[:, P:], s.col[:, P:]

    def dist_to(slot: torch.Tensor) -> torch.Tensor:
        return chebyshev(r, c, s.row.gather(1, slot), s.col.gather(1, slot))

    # Current target (kept while alive and in range), else closest player for aggressives.
    cur = s.npc_target[:, P:]
    cur_c = cur.clamp_min(0)
    cur_ok = (cur >= 0) & (cur < P) & s.alive.gather(1, cur_c)
    cur_ok &= dist_to(cur_c) <= rng
    aggressive = alive & (kind == C.AGGRESSIVE)
    tgt = torch.where(aggressive & cur_ok, cur, -1)
    tgt = torch.where(aggressive & (tgt < 0) & (best_d <= rng), closest, tgt)
    att = s.attacker[:, P:]
    att_c = att.clamp_min(0)
    att_ok = (att >= 0) & (att < P) & s.alive.gather(1, att_c) & (dist_to(att_c) <= rng)
    neutral = alive & (kind == C.NEUTRAL)
    tgt = torch.where(neutral & att_ok, att, tgt)
    s.npc_target[:, P:] = tgt

    # Movement: wander (a random passable direction) or hunt.
    nbr = lookup(passable, tile_at(s.material, r[..., None] + deltas[:4, 0], c[..., None] + deltas[:4, 1]))
    noise = torch.rand(B, N, 4, generator=gen, device=dev) * nbr
    wander = torch.where(nbr.any(-1), noise.argmax(-1), 4)
    has = tgt >= 0
    tc = tgt.clamp_min(0)
    dr = s.row.gather(1, tc) - r
    dc = s.col.gather(1, tc) - c
    dist = torch.maximum(dr.abs(), dc.abs())
    vertical = dr.abs() >= dc.abs()
    toward = torch.where(vertical, torch.where(dr < 0, 0, 1), torch.where(dc > 0, 2, 3))
    move = torch.where(has & (dist > 1), toward, wander)
    move = torch.where(has & (dist == 1), 4, move)
    attack_target = torch.where(has & (dist <= cfg.attack_reach), tgt, -1)
    return attack_target, s.npc_style[:, P:], move
