"""NPCs: spawning by danger and the passive / neutral / aggressive behaviours (NMMO2.md §3).

Spawning refills each map toward ``num_npcs`` with ``npc_spawn_attempts`` random tries per
tick; a try on an impassable tile fails. Type and level follow the danger of the spawn tile
(0 on the playable edge, about 1 at the centre). With ``npc_respawn_dead_danger`` (2.0) the
tries of a tick aim at the ring of the newest remembered dead NPC's spawn danger, not at the
whole map (see :func:`remember_dead`). Decisions are made from the start-of-tick state, before
any player acts, as in 2.0.
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
    if cfg.npc_respawn_dead_danger:
        r, c = _aim_at_remembered_ring(s, cfg, gen, r, c, maps)
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
    seq = s.next_npc_id[:, None] + rank
    serial = seq % 32767 + 1
    s.next_npc_id += ok.sum(1)

    if not bool(ok.any()):
        return
    sel = ok.nonzero(as_tuple=True)
    dest = (sel[0], slot[sel])

    def put(field: torch.Tensor, value: torch.Tensor) -> None:
        field[dest] = value[sel].to(field.dtype)

    put(s.alive, ok)
    put(s.ent_id, -serial)
    put(s.spawn_seq, seq + 1)
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


def _aim_at_remembered_ring(s: WorldState, cfg: EnvConfig, gen: torch.Generator,
                            r: torch.Tensor, c: torch.Tensor, maps: torch.Tensor | None):
    """2.0's respawn by danger: where a map remembers dead NPCs, every try of this call goes to
    a random tile of the ring at the newest remembered edge distance (a random side, a
    uniform position along it), and one memory is popped; elsewhere the uniform tries stay."""
    B, A = r.shape
    dev = s.device
    count = s.npc_danger_count
    has = count > 0
    if maps is not None:
        has = has & maps
    u_side = torch.rand(B, A, generator=gen, device=dev)
    u_off = torch.rand(B, A, generator=gen, device=dev)
    if not bool(has.any()):
        return r, c
    top = s.npc_dangers.gather(1, (count - 1).clamp_min(0)[:, None]).long()  # [B, 1]
    lo, n = cfg.map_border, cfg.playable
    # 2.0 (combat.spawn): offset uniform over [lo + d, lo + n - d), side one of four.
    along = lo + top + (u_off * (n - 2 * top)).long().clamp_max(n - 2 * top - 1)
    near, far = lo + top, lo + n - 1 - top
    side = (u_side * 4).long()
    rr = torch.where(side == 0, near, torch.where(side == 1, far, along))
    cc = torch.where(side == 2, near, torch.where(side == 3, far, along))
    s.npc_danger_count.sub_(has.long())  # one memory per spawn call
    return torch.where(has[:, None], rr, r), torch.where(has[:, None], cc, c)


def remember_dead(s: WorldState, cfg: EnvConfig, dead: torch.Tensor) -> None:
    """Push the spawn edge distance of the NPCs dying this tick (``dead`` ``[B, N]``) onto
    their map's stack, in spawn order (2.0's cull walks its NPCs in insertion order)."""
    P = cfg.num_agents
    n_dead = dead.sum(1)
    if not bool(n_dead.any()):
        return
    need = int((s.npc_danger_count + n_dead).max())
    D = s.npc_dangers.shape[1]
    if need > D:  # grow the stacks (rare; amortised by doubling)
        s.npc_dangers = torch.cat([s.npc_dangers, s.npc_dangers.new_zeros(
            s.num_maps, max(need, 2 * D) - D)], 1)
    lo, hi = cfg.map_border, cfg.map_border + cfg.playable - 1
    row, col = s.spawn_row[:, P:], s.spawn_col[:, P:]
    edge = torch.minimum(torch.minimum(row - lo, hi - row), torch.minimum(col - lo, hi - col))
    edge = edge.clamp(0, cfg.playable // 2 - 1)
    seq = torch.where(dead, s.spawn_seq[:, P:], torch.iinfo(torch.int64).max)
    order = seq.argsort(1)
    k = torch.arange(dead.shape[1], device=s.device)
    sel = k[None, :] < n_dead[:, None]  # the first n_dead of the order are the dead
    b, j = sel.nonzero(as_tuple=True)
    pos = s.npc_danger_count[b] + j
    s.npc_dangers[b, pos] = edge.gather(1, order)[b, j].to(s.npc_dangers.dtype)
    s.npc_danger_count += n_dead


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
