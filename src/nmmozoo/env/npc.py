"""NPCs: spawning by danger and the passive / neutral / aggressive behaviours (docs/env.md, NPCs).

Spawning refills each map toward ``num_npcs`` with ``npc_spawn_attempts`` random tries per
tick; a try on an impassable tile fails. Type and level follow the danger of the spawn tile
(0 on the playable edge, about 1 at the centre). With ``npc_respawn_dead_danger`` (2.0) the
tries of a tick aim at the ring of the newest remembered dead NPC's spawn danger, not at the
whole map (see :func:`remember_dead`). Decisions are made from the start-of-tick state, before
any player acts, as in 2.0 (:func:`decide`).
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

    # Who was hit by a dead NPC whose slot is refilled now forgets it (2.0 keeps the dead
    # entity, no longer a valid target; here the slot would name the newcomer).
    filled = torch.zeros_like(s.alive)
    filled[dest] = True
    s.attacker.masked_fill_(filled.gather(1, s.attacker.clamp_min(0)) & (s.attacker >= 0), -1)
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


# --- decisions ------------------------------------------------------------------------------------
WANDER_SEQUENCE = 1024
"""Length of 2.0's shared sequence of wander start directions (``npc_wander_sequence``)."""
# 2.0's wander tries directions in the cyclic order North, South, West, East; as move indices:
_WANDER_ORDER = (0, 1, 3, 2)


def reset_wander(s: WorldState, cfg: EnvConfig, gen: torch.Generator, idx: torch.Tensor) -> None:
    """New episodes on maps ``idx``: a fresh sequence of wander start directions (2.0 draws
    it when the env's random generator is made, i.e. at each seeded reset) and its cursor at 0."""
    if not cfg.npc_wander_sequence or idx.numel() == 0:
        return
    s.npc_wander_seq[idx] = torch.randint(0, 4, (idx.numel(), WANDER_SEQUENCE), generator=gen,
                                          device=s.device).to(s.npc_wander_seq.dtype)
    s.npc_wander_pos[idx] = 0


_SCAN_CACHE: dict = {}


def scan_rank(rng: int, device) -> torch.Tensor:
    """The order in which 2.0 finds an aggressive NPC's target (``closestTarget``), as a rank
    per offset ``(dr, dc)`` of the candidate from the NPC: a table ``[2·rng+3, 2·rng+3]``
    indexed by ``(dr + rng + 1, dc + rng + 1)``, offsets beyond ``rng`` (the outer frame)
    ranked last (:func:`_far`). 2.0 scans Chebyshev rings d = 0, 1, …, rng; within a ring,
    for r = -d … d it looks at the tiles (r, -d), (r, +d), (-d, r), (+d, r) in that order;
    the first entity found is the target."""
    key = (rng, str(device))
    if key not in _SCAN_CACHE:
        R = rng + 1
        off = torch.arange(-R, R + 1)
        dr, dc = torch.meshgrid(off, off, indexing="ij")
        d = torch.maximum(dr.abs(), dc.abs())
        big = torch.full_like(d, 1 << 20)
        within = torch.stack([torch.where(dc == -d, (dr + d) * 4 + 0, big),
                              torch.where(dc == d, (dr + d) * 4 + 1, big),
                              torch.where(dr == -d, (dc + d) * 4 + 2, big),
                              torch.where(dr == d, (dc + d) * 4 + 3, big)]).amin(0)
        rank = d * (8 * rng + 4) + within
        _SCAN_CACHE[key] = torch.where(d <= rng, rank, _far(rng)).to(torch.int32).to(device)
    return _SCAN_CACHE[key]


def _far(rng: int) -> int:
    """The rank of offsets beyond ``rng``: above every rank within it."""
    return (rng + 1) * (8 * rng + 4)


def _offset_rank(table: torch.Tensor, rng: int, dr: torch.Tensor, dc: torch.Tensor) -> torch.Tensor:
    R = rng + 1
    W = 2 * R + 1
    flat = (dr.clamp(-R, R) + R) * W + (dc.clamp(-R, R) + R)
    return table.view(-1).index_select(0, flat.reshape(-1).long()).view(flat.shape)


def closest_targets(s: WorldState, cfg: EnvConfig, pairs,
                    seek: torch.Tensor | None = None) -> torch.Tensor:
    """Each NPC's first entity in 2.0's scan order (:func:`scan_rank`) within
    ``npc_aggression_range``: a live player (found among the visible pairs of the last
    observation: a player within vision of an NPC sees it) or, with ``npc_attack_npcs``
    (2.0), another live NPC. Entities on one tile: lowest slot first. ``[B, N]``, -1 none;
    where ``seek`` (``[B, N]``) is given, only for the NPCs it marks (the others get -1)."""
    B, P, N, E = s.num_maps, cfg.num_agents, cfg.num_npcs, cfg.num_entities
    rng = cfg.npc_aggression_range
    dev = s.device
    table = scan_rank(rng, dev)
    inf = _far(rng) * E  # keys are rank * E + slot: no key of a valid candidate reaches it
    kt = torch.int32 if inf + E < 2 ** 31 else torch.int64
    pair_row, pair_ent, _ = pairs
    b = torch.div(pair_row, P, rounding_mode="floor")
    p = pair_row - b * P
    on_npc = pair_ent >= P
    b, p, ent = b[on_npc], p[on_npc], pair_ent[on_npc]
    row, col = s.row.view(-1), s.col.view(-1)
    dr = row.index_select(0, b * E + p) - row.index_select(0, b * E + ent)
    dc = col.index_select(0, b * E + p) - col.index_select(0, b * E + ent)
    key = _offset_rank(table, rng, dr, dc).long() * E + p
    best = torch.full((B * N,), inf, dtype=torch.int64, device=dev)
    best.scatter_reduce_(0, b * N + ent - P, key, "amin")
    best = best.view(B, N)
    if seek is not None:
        best = torch.where(seek, best, inf)
    if cfg.npc_attack_npcs and N > 0:
        # NPC candidates: every other live NPC of the map, for the seekers only (few: the
        # aggressive NPCs without a target), as rows [M, N].
        if seek is None:
            seek = torch.ones(B, N, dtype=torch.bool, device=dev)
        sb, si = seek.nonzero(as_tuple=True)
        r = s.row[:, P:].int()
        c = s.col[:, P:].int()
        rank = _offset_rank(table, rng, r[sb] - r[sb, si, None], c[sb] - c[sb, si, None])
        ok = s.alive[sb, P:].clone()
        ok[torch.arange(len(si), device=dev), si] = False  # not itself
        slot = torch.arange(P, E, dtype=kt, device=dev)
        k2 = torch.where(ok, rank.to(kt) * E + slot, inf).amin(-1)
        best[sb, si] = torch.minimum(best[sb, si], k2.long())
    return torch.where(best < inf, best % E, -1)


def decide(s: WorldState, cfg: EnvConfig, gen: torch.Generator, pairs,
           passable: torch.Tensor, deltas: torch.Tensor):
    """NPC attack targets, styles and moves ``[B, N]`` from the start-of-tick state (2.0's
    ``policy.passive/neutral/hostile`` and ``behavior``).

    A kept target or attacker is valid while alive and within ``npc_aggression_range``
    (2.0: the vision radius). Aggressive NPCs keep a valid target, else take the first entity
    of 2.0's scan (:func:`closest_targets`: players, and with ``npc_attack_npcs`` other NPCs);
    neutral NPCs hunt their attacker while it is valid (any entity with ``npc_attack_npcs``,
    else players only); passive NPCs wander. A hunter steps toward its target when farther than
    1 — 2.0's A* ignores obstacles, so its first step is the larger axis, and on a diagonal
    North when the target is to the north, else East or West (a step into an impassable tile
    fails) — holds at 1, wanders at 0, and attacks within ``attack_reach``. Wandering: with
    ``npc_wander_sequence`` (2.0) every wanderer, in spawn order, takes the next start
    direction of its map's shared cyclic sequence and goes the first passable way from it in
    the order N, S, W, E (none: it stays); off, a uniformly random passable direction.
    """
    B, P, N = s.num_maps, cfg.num_agents, cfg.num_npcs
    E = cfg.num_entities
    dev = s.device
    alive = s.alive[:, P:]
    kind = s.npc_type[:, P:]
    rng = cfg.npc_aggression_range
    r, c = s.row[:, P:], s.col[:, P:]
    me = torch.arange(P, E, device=dev).expand(B, N)

    def valid(slot: torch.Tensor) -> torch.Tensor:
        sc = slot.clamp_min(0)
        ok = (slot >= 0) & (sc != me) & s.alive.gather(1, sc)
        ok &= chebyshev(r, c, s.row.gather(1, sc), s.col.gather(1, sc)) <= rng
        return ok if cfg.npc_attack_npcs else ok & (slot < P)

    aggressive = alive & (kind == C.AGGRESSIVE)
    neutral = alive & (kind == C.NEUTRAL)
    cur = s.npc_target[:, P:]
    tgt = torch.where(aggressive & valid(cur), cur, -1)
    seek = aggressive & (tgt < 0)
    tgt = torch.where(seek, closest_targets(s, cfg, pairs, seek), tgt)
    att = s.attacker[:, P:]
    tgt = torch.where(neutral & valid(att), att, tgt)
    s.npc_target[:, P:] = tgt

    has = tgt >= 0
    tc = tgt.clamp_min(0)
    dr = s.row.gather(1, tc) - r
    dc = s.col.gather(1, tc) - c
    dist = torch.maximum(dr.abs(), dc.abs())
    vertical = (dr.abs() > dc.abs()) | ((dr.abs() == dc.abs()) & (dr < 0))
    toward = torch.where(vertical, torch.where(dr < 0, 0, 1), torch.where(dc > 0, 2, 3))

    # Wandering: no target, or the target on the NPC's own tile.
    wanders = alive & ~(has & (dist >= 1))
    nbr = lookup(passable, tile_at(s.material, r[..., None] + deltas[:4, 0], c[..., None] + deltas[:4, 1]))
    if cfg.npc_wander_sequence:
        order = torch.tensor(_WANDER_ORDER, device=dev)
        # Each wanderer's call number this tick, in spawn order.
        key = torch.where(wanders, s.spawn_seq[:, P:], torch.iinfo(torch.int64).max)
        srt = key.argsort(1)
        call = torch.empty_like(srt)
        call.scatter_(1, srt, torch.arange(N, device=dev).expand(B, N))
        pos = (s.npc_wander_pos[:, None] + 1 + call) % WANDER_SEQUENCE
        start = s.npc_wander_seq.gather(1, pos).long()
        tries = (start[..., None] + torch.arange(4, device=dev)) % 4  # in 2.0's order
        ok = nbr.gather(2, order[tries])
        first = tries.gather(2, ok.to(torch.uint8).argmax(-1, keepdim=True)).squeeze(-1)
        wander = torch.where(ok.any(-1), order[first], C.NUM_MOVES - 1)
        s.npc_wander_pos.copy_((s.npc_wander_pos + wanders.sum(1)) % WANDER_SEQUENCE)
    else:
        noise = torch.rand(B, N, 4, generator=gen, device=dev) * nbr
        wander = torch.where(nbr.any(-1), noise.argmax(-1), C.NUM_MOVES - 1)
    move = torch.where(has & (dist > 1), toward, wander)
    move = torch.where(has & (dist == 1), C.NUM_MOVES - 1, move)
    attack_target = torch.where(has & (dist <= cfg.attack_reach), tgt, -1)
    return attack_target, s.npc_style[:, P:], move
