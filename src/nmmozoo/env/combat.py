"""Attacks with the 2.0 damage numbers (NMMO2.md §3), for players and NPCs at once.

All attacks of a tick are resolved together from the start-of-attack state; damage from
several attackers adds up. 2.0 resolved them one by one but removed the dead only at the end
of the tick, so every attack still lands: the sums agree. Where 2.0's order matters (the
``damage``/``attacker_id`` columns keep the last hit; the kill goes to the hit that crossed
zero) the last attacker in 2.0's order — players, then NPCs, each by slot — is used.
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


def attack(s: WorldState, cfg: EnvConfig, target: torch.Tensor, style: torch.Tensor):
    """Resolve the attacks of all entities: ``target`` slot ``[B, E]`` (-1: none), ``style``.

    Returns ``(executed, killer)``: which attacks passed their checks (ammunition fires for
    those) and, per entity brought to 0 health by an attack this tick, its killer's slot."""
    B, E = s.alive.shape
    P = cfg.num_agents
    me = torch.arange(E, device=s.device).expand(B, E)
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

    # Apply all hits at once; invalid attacks add 0 to their own slot.
    tgt_or_me = torch.where(valid, tgt, me)
    hp_before = s.health.clone()
    total = torch.zeros(B, E, dtype=torch.int64, device=s.device)
    total.scatter_add_(1, tgt_or_me, dmg)
    s.health.sub_(total.int()).clamp_(min=0)
    # The last attacker (highest slot) sets the target's damage/attacker columns.
    last = torch.full((B, E), -1, dtype=torch.int64, device=s.device)
    last.scatter_reduce_(1, tgt_or_me, torch.where(valid, me, -1), "amax")
    hit = last >= 0
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
                  (style[:, :P, None] == torch.arange(3, device=s.device)) & pv[..., None])
    s.damage_dealt += dmg[:, :P].int()
    s.damage_taken += total[:, :P].int()

    # Kills: targets brought to 0 this tick; credit the last attacker.
    killed = hit & (hp_before > 0) & (s.health == 0)
    killer = torch.where(killed, last, -1)
    credit = torch.zeros(B, E + 1, dtype=torch.int32, device=s.device)
    credit.scatter_add_(1, torch.where(killed, killer, E), torch.ones_like(killer, dtype=torch.int32))
    npc_credit = torch.zeros_like(credit)
    npc_victim = killed & ~is_player
    npc_credit.scatter_add_(1, torch.where(npc_victim, killer, E), npc_victim.int())
    s.events[..., C.EVENT["PLAYER_KILL"]] += credit[:, :P]
    eventlog.always_new(s, credit[:, :P])  # a PLAYER_KILL row names its victim: always new
    # Typed kill counts for the tasks: by victim kind (player 0, NPC 1) and victim level
    # (an NPC's level; a player's highest combat level).
    by_player = killed & (killer >= 0) & (killer < P)
    if bool(by_player.any()):
        b, v = by_player.nonzero(as_tuple=True)
        L = s.kills.shape[-1] - 1
        vlevel = torch.where(v < P, s.level[b, v, :3].amax(-1), s.npc_level[b, v]).clamp(0, L)
        s.kills.index_put_((b, killer[b, v], (v >= P).long(), vlevel.long()),
                           torch.ones_like(b, dtype=s.kills.dtype), accumulate=True)
    s.events[..., C.EVENT["NPC_KILL"]] += npc_credit[:, :P]
    return valid, killer
