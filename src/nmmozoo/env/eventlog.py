"""Unique event-log rows per agent: the episode count 2.0's baseline calls
``achieved/unique_events`` and pays the ``explore`` bonus on.

In nmmo 2.0 every game event is a row ``(event, type, level, number, gold, target_ent)`` of the
event log (NeuralMMO/environment @ 685ea09, ``nmmo/lib/event_log.py``, ``EventLogger.record``
l.85-160). The baseline counts an agent's distinct rows of the episode after masking some
columns (NeuralMMO/baselines @ 6654f30, ``leader_board.py`` ``extract_unique_event``
l.376-406). What that leaves, per event:

==================================================  ==========================================
2.0 rows                                            distinct rows per episode
==================================================  ==========================================
EAT_FOOD, DRINK_WATER, GIVE_ITEM, DESTROY_ITEM,     one each: logged "for counting only", with
GIVE_GOLD                                           every attribute 0
GO_FARTHEST (distance masked)                       one
SCORE_HIT (type = combat style, damage masked)      one per style (3)
PLAYER_KILL (level, target_ent = victim id)         every kill, players and NPCs (ids differ)
CONSUME / HARVEST / EQUIP / LOOT_ITEM (quantity     one per (event, item type, item level)
masked), LIST / BUY_ITEM (quantity, price masked)
EARN_GOLD (number := tick, gold = amount)           one per (tick, amount): loot and sales
LEVEL_UP (type = skill, level = new level)          one per (skill, level)
==================================================  ==========================================

2.0 logs nothing else: our ``FIRE_AMMO`` counter has no 2.0 row, ``NPC_KILL`` kills are
PLAYER_KILL rows already (our PLAYER_KILL count includes them), and ``LOOT_GOLD`` gains are
EARN_GOLD rows already.

Here the rows that can repeat are keys of a per-agent table of seen keys
(``state.seen_rows`` ``[B, P, K]``, cleared with the map's reset); the rows that are always
new (kills, earnings of distinct amounts in a tick) only add to the count. The systems record
where the event happens (``record`` for a few rows, ``mark`` for a dense block), and the
count of new rows goes to ``state.unique_events`` ``[B, P]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from . import constants as C
from .config import EnvConfig

if TYPE_CHECKING:
    from .state import WorldState

# One key each (every attribute masked or 0 in 2.0): the counting-only events and GO_FARTHEST.
SINGLE = ("EAT_FOOD", "DRINK_WATER", "GIVE_ITEM", "DESTROY_ITEM", "GIVE_GOLD", "GO_FARTHEST")
SINGLE_INDEX = [C.EVENT[e] for e in SINGLE]
# Item events keyed by (item type, item level).
ITEM_EVENTS = ("CONSUME_ITEM", "HARVEST_ITEM", "EQUIP_ITEM", "LOOT_ITEM", "LIST_ITEM", "BUY_ITEM")
CONSUME, HARVEST, EQUIP, LOOT, LIST, BUY = range(len(ITEM_EVENTS))
SCORE_HIT_BASE = len(SINGLE)
LEVEL_UP_BASE = SCORE_HIT_BASE + 3


def level_slots(cfg: EnvConfig) -> int:
    """Levels a LEVEL_UP key can carry: 0..len(level_thresholds)."""
    return len(cfg.level_thresholds) + 1


def item_base(cfg: EnvConfig) -> int:
    return LEVEL_UP_BASE + C.NUM_SKILLS * level_slots(cfg)


def num_keys(cfg: EnvConfig) -> int:
    """Keys of the seen-row table per agent."""
    return item_base(cfg) + len(ITEM_EVENTS) * C.NUM_ITEM_TYPES * (cfg.max_item_level + 1)


def item_key(cfg: EnvConfig, event: int, typ: torch.Tensor, lvl: torch.Tensor) -> torch.Tensor:
    """Key of the row ``(ITEM_EVENTS[event], item type, item level)``."""
    L = cfg.max_item_level + 1
    return (item_base(cfg) + (event * C.NUM_ITEM_TYPES + typ.long()) * L
            + lvl.long().clamp(0, L - 1))


def record(s: WorldState, b: torch.Tensor, p: torch.Tensor, key: torch.Tensor,
           mask: torch.Tensor | None = None) -> None:
    """Log rows ``key`` of players ``(b, p)`` (1-d, equal length; ``mask`` keeps some); each
    key not yet seen this episode adds 1 to the player's ``unique_events``, once."""
    if mask is not None:
        b, p, key = b[mask], p[mask], key[mask]
    if b.numel() == 0:
        return
    P, K = s.seen_rows.shape[1:]
    flat = torch.unique((b.long() * P + p.long()) * K + key.long())
    seen = s.seen_rows.view(-1)
    new = flat[~seen[flat]]
    seen[new] = True
    s.unique_events.view(-1).index_add_(
        0, torch.div(new, K, rounding_mode="floor"), torch.ones_like(new, dtype=s.unique_events.dtype))


def mark(s: WorldState, base: int, hit: torch.Tensor) -> None:
    """Log the dense block of keys ``base + j`` where ``hit`` ``[B, P, n]`` is true."""
    n = hit.shape[-1]
    block = s.seen_rows[..., base:base + n]
    new = hit & ~block
    block |= hit
    s.unique_events += new.sum(-1, dtype=s.unique_events.dtype)


def always_new(s: WorldState, count: torch.Tensor) -> None:
    """Rows that are new by construction (a kill: its target id is in the row)."""
    s.unique_events += count.to(s.unique_events.dtype)


def earnings(s: WorldState, cfg: EnvConfig, parts) -> None:
    """EARN_GOLD rows of this tick: ``parts`` is a list of ``(b, p, amount)`` (1-d tensors),
    one entry per earning (a victim's gold, a sale's price). Rows are ``(tick, amount)``, so an
    agent's earnings of this tick count once per distinct amount."""
    parts = [x for x in parts if x is not None and x[0].numel()]
    if not parts:
        return
    b, p, amount = (torch.cat([x[i].long() for x in parts]) for i in range(3))
    keep = amount > 0
    b, p, amount = b[keep], p[keep], amount[keep]
    if b.numel() == 0:
        return
    rows = torch.unique(torch.stack([b * cfg.num_agents + p, amount], 1), dim=0)
    one = torch.ones_like(rows[:, 0], dtype=s.unique_events.dtype)
    s.unique_events.view(-1).index_add_(0, rows[:, 0], one)


def end_of_tick(s: WorldState) -> None:
    """The one-key rows, from this tick's event counts."""
    mark(s, 0, s.events[..., SINGLE_INDEX] > 0)
