"""Attacks with the 2.0 damage numbers (docs/env.md#combat), for players and NPCs at once.

Damage numbers are computed from the start-of-attack state. How the hits of a tick combine
depends on two switches (``config.py``, both on in ``competition2023``):

* ``sequential_combat`` (2.0): attacks run one by one — players by slot, then NPCs in spawn
  order — and an attack happens only if its attacker still has health at its turn. The
  resolution is vectorised and exact (:func:`resolve_order`): an attack depends only on the
  attacks that hit its attacker *earlier* in the order, so the dependencies form a DAG; a
  Jacobi iteration over all attacks at once (``executed = valid & hp0 - earlier executed
  damage on me > 0``) is exact on every attack of dependency depth < k after k rounds and stops
  at the unique fixed point, after (longest chain of attackers hitting later attackers) + 1
  rounds — 1 or 2 in play. Off: every valid attack of the tick lands (the start-of-attack
  state decides), as if resolved simultaneously.
* ``kill_every_hit`` (2.0): every hit that leaves its target at 0 (in the order above) is a
  kill for its attacker, including hits on a target already at 0; the first such hit takes
  the gold and items. Off: one kill per target brought from above 0 to 0, credited to the
  last attacker in the order; the ``damage``/``attacker_id`` columns keep the last hit.
"""

from __future__ import annotations

import torch

from . import constants as C
from . import eventlog
from .config import EnvConfig
from .grid import chebyshev
from .state import WorldState

def dominant_style(exp: torch.Tensor) -> torch.Tensor:
    """Highest-XP combat style (first on ties); -1 where all three are equal."""
    combat = exp[..., :3]
    dom = combat.argmax(-1)
    tie = (combat == combat[..., :1]).all(-1)
    return torch.where(tie, -1, dom)


def damage_of(cfg: EnvConfig, offense: torch.Tensor, defense: torch.Tensor,
              weak: torch.Tensor) -> torch.Tensor:
    """2.0 damage ``int(mult * offense * scale / (scale + defense))`` in exact integers."""
    num = offense.long() * cfg.damage_scale * torch.where(weak, 3, 2)
    return torch.div(num, (cfg.damage_scale + defense.long()) * 2, rounding_mode="floor").clamp_min(0)


def attack_order(s: WorldState, cfg: EnvConfig) -> torch.Tensor:
    """Position of each entity's attack in 2.0's order ``[B, E]``: players by slot, then NPCs
    by spawn serial (slot on ties); plain slot order without ``sequential_combat``."""
    B, E = s.alive.shape
    me = torch.arange(E, device=s.device).expand(B, E)
    if not cfg.sequential_combat:
        return me
    P = cfg.num_agents
    key = torch.where(me < P, me, E + s.spawn_seq * E + me)
    return key.argsort(1).argsort(1)


def resolve_order(valid: torch.Tensor, tgt_or_me: torch.Tensor, dmg: torch.Tensor,
                  hp0: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Which of the ``valid`` attacks run when each runs only if its attacker's health, after
    the executed attacks earlier in ``order`` that hit it, is above 0 (exact; see the module
    docstring). All ``[B, E]``; ``tgt_or_me`` is the target slot (own slot where invalid)."""
    earlier = valid & (order < order.gather(1, tgt_or_me)) & (dmg > 0)
    executed = valid & (hp0 > 0)
    while True:
        before = torch.zeros_like(dmg)
        before.scatter_add_(1, tgt_or_me, dmg * (executed & earlier))
        new = valid & (hp0.long() - before > 0)
        if torch.equal(new, executed):
            return executed
        executed = new


def attack(s: WorldState, cfg: EnvConfig, target: torch.Tensor, style: torch.Tensor):
    """Resolve the attacks of all entities: ``target`` slot ``[B, E]`` (-1: none), ``style``.

    Returns ``(executed, killer, rolls)``: which attacks ran (ammunition fires for those); per
    entity killed by an attack this tick, the slot that takes its gold and items (-1 none);
    and with ``kill_every_hit`` the players whose hit left an NPC at 0 (a drop roll each at
    ``s.npc_level`` of their target) as ``(mask [B, P], level [B, P])``, else None (the
    victims' killers roll)."""
    B, E = s.alive.shape
    P = cfg.num_agents
    dev = s.device
    me = torch.arange(E, device=dev).expand(B, E)
    tgt = target.clamp_min(0)
    is_player = me < P
    tgt_player = tgt < P
    dist = chebyshev(s.row, s.col, s.row.gather(1, tgt), s.col.gather(1, tgt))
    valid = (s.alive & (target >= 0) & (tgt != me) & (dist <= cfg.attack_reach)
             & s.alive.gather(1, tgt))
    # 2.0: a player cannot hit a player younger than the spawn immunity (NPCs ignore it).
    young = s.time_alive.gather(1, tgt) < s.immunity[:, None]
    valid &= ~(is_player & tgt_player & young)

    level_in_style = s.level.gather(2, style[..., None]).squeeze(-1)
    offense = (cfg.skill_offense_base + cfg.skill_offense_per_level * level_in_style
               + s.equip_offense.gather(2, style[..., None]).squeeze(-1))
    t_defense = (cfg.defense_per_level * s.level.amax(-1)
                 + s.equip_defense.gather(2, style[..., None]).squeeze(-1)).gather(1, tgt)
    beats = torch.where(style == C.MELEE, C.RANGE, torch.where(style == C.RANGE, C.MAGE, C.MELEE))
    # Melee beats Range, Range beats Mage, Mage beats Melee.
    weak = beats == dominant_style(s.exp).gather(1, tgt)
    dmg = damage_of(cfg, offense, t_defense, weak) * valid
    tgt_or_me = torch.where(valid, tgt, me)
    hp_before = s.health.clone()
    order = attack_order(s, cfg)
    if cfg.sequential_combat:
        valid = resolve_order(valid, tgt_or_me, dmg, hp_before, order)
        dmg = dmg * valid
        tgt_or_me = torch.where(valid, tgt, me)

    # Apply the executed hits; the others add 0 to their own slot.
    total = torch.zeros(B, E, dtype=torch.int64, device=dev)
    total.scatter_add_(1, tgt_or_me, dmg)
    s.health.sub_(total.int()).clamp_(min=0)
    # The last attacker in the order sets the target's damage/attacker columns.
    last_pos = torch.full((B, E), -1, dtype=torch.int64, device=dev)
    last_pos.scatter_reduce_(1, tgt_or_me, torch.where(valid, order, -1), "amax")
    hit = last_pos >= 0
    by_pos = torch.empty_like(order)
    by_pos.scatter_(1, order, me)  # slot at each order position
    last = torch.where(hit, by_pos.gather(1, last_pos.clamp_min(0)), -1)
    last_c = last.clamp_min(0)
    s.damage.copy_(torch.where(hit, dmg.gather(1, last_c).int(), s.damage))
    s.attacker.copy_(torch.where(hit, last, s.attacker))
    s.attacker_id.copy_(torch.where(hit, s.ent_id.gather(1, last_c), s.attacker_id))
    now = (s.tick + 1).int()[:, None]
    in_fight = hit | valid
    s.latest_combat_tick.copy_(torch.where(in_fight, now, s.latest_combat_tick))

    # Player bookkeeping: XP in the style used (even for 0 damage), hits, damage totals.
    pv = valid[:, :P]
    s.exp[:, :P].scatter_add_(2, style[:, :P, None], (pv.int() * cfg.xp_per_attack)[..., None])
    s.events[..., C.EVENT["SCORE_HIT"]] += pv.int()
    s.hits_by_style.scatter_add_(2, style[:, :P, None], pv.int()[..., None])
    # Event-log rows: SCORE_HIT (style) once per style.
    eventlog.mark(s, eventlog.SCORE_HIT_BASE,
                  (style[:, :P, None] == torch.arange(3, device=dev)) & pv[..., None])
    s.damage_dealt += dmg[:, :P].int()
    s.damage_taken += total[:, :P].int()

    rolls = None
    if cfg.kill_every_hit:
        # Health of each target after each executed hit, in the order: a per-target running
        # sum of the damage over the hits sorted by (target, order position).
        key = torch.where(valid, tgt_or_me * E + order, E * E)
        srt = key.argsort(1)
        d_sorted = dmg.gather(1, srt)
        run = d_sorted.cumsum(1)
        t_sorted = tgt_or_me.gather(1, srt)
        first = torch.ones_like(t_sorted, dtype=torch.bool)
        first[:, 1:] = t_sorted[:, 1:] != t_sorted[:, :-1]
        seg_start = torch.where(first, run - d_sorted, 0).cummax(1).values
        after = torch.empty_like(run)
        after.scatter_(1, srt, run - seg_start)  # damage to my target up to my hit, incl.
        kill_hit = valid & (hp_before.gather(1, tgt_or_me).long() - after <= 0)
        # The first killing hit on each target takes the loot.
        first_pos = torch.full((B, E), E, dtype=torch.int64, device=dev)
        first_pos.scatter_reduce_(1, tgt_or_me, torch.where(kill_hit, order, E), "amin")
        killed = first_pos < E
        killer = torch.where(killed, by_pos.gather(1, first_pos.clamp_max(E - 1)), -1)
        # Kills credited per hit, to the attackers.
        k_att = kill_hit[:, :P]
        k_b, k_a = k_att.nonzero(as_tuple=True)
        k_v = tgt[:, :P][k_b, k_a]
        npc_hit = k_att & ~tgt_player[:, :P]
        credit = k_att.int()
        npc_credit = npc_hit.int()
        rolls = (npc_hit, s.npc_level.gather(1, tgt[:, :P]))
    else:
        # Kills: targets brought to 0 this tick; credit the last attacker.
        killed = hit & (hp_before > 0) & (s.health == 0)
        killer = torch.where(killed, last, -1)
        one = torch.zeros(B, E + 1, dtype=torch.int32, device=dev)
        credit = one.scatter_add(1, torch.where(killed, killer, E), torch.ones_like(killer, dtype=torch.int32))[:, :P]
        npc_victim = killed & ~is_player
        npc_credit = one.scatter_add(1, torch.where(npc_victim, killer, E), npc_victim.int())[:, :P]
        by_player = killed & (killer >= 0) & (killer < P)
        k_b, k_v = by_player.nonzero(as_tuple=True)
        k_a = killer[k_b, k_v]
    s.events[..., C.EVENT["PLAYER_KILL"]] += credit
    eventlog.always_new(s, credit)  # a PLAYER_KILL row names its victim: always new
    # Typed kill counts for the tasks: by victim kind (player 0, NPC 1) and victim level
    # (an NPC's level; a player's highest combat level).
    if k_b.numel():
        L = s.kills.shape[-1] - 1
        vlevel = torch.where(k_v < P, s.level[k_b, k_v, :3].amax(-1), s.npc_level[k_b, k_v]).clamp(0, L)
        s.kills.index_put_((k_b, k_a, (k_v >= P).long(), vlevel.long()),
                           torch.ones_like(k_b, dtype=s.kills.dtype), accumulate=True)
    s.events[..., C.EVENT["NPC_KILL"]] += npc_credit
    return valid, killer, rolls
