"""The 63 held-out evaluation tasks of the 2023 competition and their category score
(docs/tasks.md#held-out-tasks): six categories worth 100/6 points each."""

from __future__ import annotations

from collections import defaultdict
from typing import Mapping

from ..env import constants as C
from .engine import CATEGORIES
from .spec import TaskSpec, task

EQUIPMENT = ("Hat", "Top", "Bottom", "Spear", "Bow", "Wand", "Rod", "Gloves", "Pickaxe", "Axe",
             "Chisel", "Whetstone", "Arrow", "Runes")


def heldout_tasks() -> list[TaskSpec]:
    """The 63 evaluation tasks, each with its ``category`` and a unique ``name``."""
    out: list[TaskSpec] = []

    def add(category, name, predicate, **args):
        out.append(task(predicate, category=category, name=name, tags=("heldout", category), **args))

    add("survival", "survive_1024", "TickGE", num_tick=1024)
    add("combat", "player_kill_20", "CountEvent", event="PLAYER_KILL", N=20)
    for lvl in (1, 3):
        add("combat", f"defeat_npc_l{lvl}_20", "DefeatEntity", agent_type="npc", level=lvl, num_agent=20)
    add("exploration", "go_farthest_64", "CountEvent", event="GO_FARTHEST", N=64)
    add("exploration", "occupy_center", "OccupyTile", row=80, col=80)
    for skill in C.SKILL_NAMES:
        add("skill", f"attain_{skill}_10", "AttainSkill", skill=skill, level=10)
    for lvl in (1, 3):
        for item in ("Whetstone", "Arrow", "Runes"):
            add("item", f"harvest_{item.lower()}_l{lvl}_20", "HarvestItem", item=item, level=lvl, quantity=20)
        for item in ("Ration", "Potion"):
            add("item", f"consume_{item.lower()}_l{lvl}_20", "ConsumeItem", item=item, level=lvl, quantity=20)
        for item in EQUIPMENT:
            add("item", f"equip_{item.lower()}_l{lvl}", "EquipItem", item=item, level=lvl)
        for style in ("melee", "range", "mage"):
            add("item", f"fully_armed_{style}_l{lvl}", "FullyArmed", combat_style=style, level=lvl)
    add("market", "earn_gold_event_20", "CountEvent", event="EARN_GOLD", N=20)
    add("market", "buy_item_event_20", "CountEvent", event="BUY_ITEM", N=20)
    add("market", "earn_gold_100", "EarnGold", amount=100)
    add("market", "hoard_gold_100", "HoardGold", amount=100)
    add("market", "make_profit_100", "MakeProfit", amount=100)
    return out


def score(completion_by_task: Mapping[str, float]) -> dict[str, float]:
    """The category-weighted score: each category is worth 100/6 points, shared equally by
    its tasks; a task contributes its completion rate in [0, 1]. Keys are held-out task
    names; a held-out task that is missing counts as 0, an unknown name is an error."""
    tasks = {t.name: t for t in heldout_tasks()}
    unknown = set(completion_by_task) - set(tasks)
    if unknown:
        raise KeyError(f"not held-out tasks: {sorted(unknown)}")
    per_cat: dict[str, list[float]] = defaultdict(list)
    for name, t in tasks.items():
        rate = float(completion_by_task.get(name, 0.0))
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"completion of {name!r} must be in [0, 1], got {rate}")
        per_cat[t.category].append(rate)
    out = {c: 100.0 / len(CATEGORIES) * sum(v) / len(v) for c, v in per_cat.items()}
    out["total"] = sum(out[c] for c in CATEGORIES)
    return out
