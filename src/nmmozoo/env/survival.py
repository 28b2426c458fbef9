"""Per-tick entity upkeep, food, water and health (docs/env.md#the-tick).

Order inside a tick (as 2.0): entity upkeep (damage reset, age), then health regeneration or
starvation from the food and water left by the previous tick, then food and water deplete and
are refilled by eating (standing on Foliage) and drinking (4-adjacent to Water) at the
position held at the start of the tick.
"""

from __future__ import annotations

import torch

from . import constants as C
from .config import EnvConfig
from .state import WorldState


def entity_upkeep(s: WorldState) -> None:
    """Start-of-tick bookkeeping of every live entity."""
    quiet = s.damage == 0  # no hit last tick: forget the attacker
    s.attacker.masked_fill_(quiet, -1)
    s.attacker_id.masked_fill_(quiet, 0)
    s.damage.zero_()
    s.time_alive += s.alive.int()


def survive(s: WorldState, cfg: EnvConfig, near_water: torch.Tensor) -> None:
    """Regenerate or starve, then deplete and drink, for live players ``[B, P]``.

    Eating is resolved with the other standing harvests (see ``harvest.py``), because a Foliage
    tile feeds only one player per tick.
    """
    P = cfg.num_agents
    alive = s.alive[:, :P]
    food, water, health = s.food[:, :P], s.water[:, :P], s.health[:, :P]
    threshold = cfg.regen_threshold * cfg.resource_base // 100
    regen = alive & (food > threshold) & (water > threshold)
    starve_hit = torch.where(s.resilient[:, :P], cfg.starvation_damage // 2, cfg.starvation_damage)
    loss = ((food == 0).int() + (water == 0).int()) * starve_hit * alive.int()
    before = health.clone()
    health.add_(regen.int() * cfg.health_regen).clamp_(max=cfg.health_max).sub_(loss).clamp_(min=0)
    # 2.0's Resources.health_restore: the health change of this update (regeneration minus
    # starvation; 0 at full health), read by the heal bonus.
    torch.sub(health, before, out=s.health_restore)
    live = alive.int()
    food.sub_(cfg.resource_depletion * live).clamp_(min=0)
    water.sub_(cfg.resource_depletion * live).clamp_(min=0)
    drink = alive & near_water
    water.masked_fill_(drink, cfg.resource_base)
    s.events[..., C.EVENT["DRINK_WATER"]] += drink.int()


def npc_regen(s: WorldState, cfg: EnvConfig) -> None:
    P = cfg.num_agents
    hp = s.health[:, P:]
    hp.add_(s.alive[:, P:].int() * cfg.npc_health_regen).clamp_(max=cfg.health_max)
