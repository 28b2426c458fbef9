"""The training curriculum: about 1300 task specs over the base predicates, of the breadth of
the 2023 baseline's, with EAT_FOOD and DRINK_WATER as heavily weighted scaffolding. Shipped as
``data/curriculum.json``; ``python -m nmmozoo.tasks.curriculum`` writes it again."""

from __future__ import annotations

import json
from pathlib import Path

from ..env import constants as C
from .heldout import EQUIPMENT, heldout_tasks
from .spec import TaskSpec, from_dict, task, to_dict

DATA = Path(__file__).parent / "data" / "curriculum.json"
ITEMS = tuple(C.ITEM_NAMES.values())
HARVESTED = ("Ration", "Potion", "Whetstone", "Arrow", "Runes", "Wand", "Spear", "Bow")
QUANTITIES = (1, 2, 3, 5, 10, 15, 20)


def build() -> list[TaskSpec]:
    out: list[TaskSpec] = []
    add = lambda pred, tags, weight=1.0, **a: out.append(task(pred, tags=tags, weight=weight, **a))  # noqa: E731
    # Scaffolding: eat and drink, sampled often.
    for n in (1, 2, 3, 5, 10, 20, 30, 50):
        add("CountEvent", ("survival", "scaffold"), 100.0, event="EAT_FOOD", N=n)
        add("CountEvent", ("survival", "scaffold"), 100.0, event="DRINK_WATER", N=n)
    # Every other event at 8 thresholds.
    for ev in C.EVENT_NAMES:
        if ev in ("EAT_FOOD", "DRINK_WATER"):
            continue
        for n in (1, 2, 3, 5, 7, 10, 15, 20):
            add("CountEvent", ("event",), event=ev, N=n)
    for pred, tag in (("OwnItem", "item"), ("ListItem", "market"), ("BuyItem", "market")):
        for item in ITEMS:
            for lvl in (1, 3):
                for q in QUANTITIES:
                    add(pred, (tag,), item=item, level=lvl, quantity=q)
    for item in EQUIPMENT:
        for lvl in range(1, 11):
            add("EquipItem", ("item",), item=item, level=lvl)
    for item in HARVESTED:
        for lvl in (1, 3):
            for q in (1, 3, 5, 10, 20, 30, 50):
                add("HarvestItem", ("item",), item=item, level=lvl, quantity=q)
    for skill in C.SKILL_NAMES:
        for lvl in range(2, 9):
            add("AttainSkill", ("skill",), skill=skill, level=lvl)
        for xp in (50, 150, 400, 800, 1200):
            add("GainExperience", ("skill",), skill=skill, experience=xp)
    for item in ("Ration", "Potion"):
        for lvl in (1, 3):
            for q in QUANTITIES:
                add("ConsumeItem", ("item",), item=item, level=lvl, quantity=q)
    for style in ("melee", "range", "mage"):
        for n in (1, 3, 5, 10, 20):
            add("ScoreHit", ("combat",), combat_style=style, N=n)
        for lvl in (1, 2, 3, 5):
            add("FullyArmed", ("item",), combat_style=style, level=lvl)
    for kind in ("npc", "player"):
        for lvl in (0, 3, 5):
            for n in (1, 3, 10):
                add("DefeatEntity", ("combat",), agent_type=kind, level=lvl, num_agent=n)
    for pred in ("HoardGold", "EarnGold", "SpendGold", "MakeProfit"):
        for amount in (1, 5, 10, 20, 50, 75):
            add(pred, ("market",), amount=amount)
    for space in (1, 2, 4, 8, 12):
        add("InventorySpaceGE", ("item",), space=space)
    for t in (50, 100, 200, 400, 600, 800):
        add("TickGE", ("survival",), num_tick=t)
    add("StayAlive", ("survival",), reward="ongoing")
    for d in (4, 8, 16, 32, 48, 64):
        add("DistanceTraveled", ("exploration",), dist=d)
    for rc in ((40, 40), (40, 120), (120, 40), (120, 120), (60, 80)):
        add("OccupyTile", ("exploration",), row=rc[0], col=rc[1])
    for mat in ("water", "foliage", "stone", "ore", "tree", "crystal", "herb", "fish"):
        add("CanSeeTile", ("exploration",), tile_type=mat)
    add("CanSeeGroup", ("exploration",), target="others")
    held = {t.text() for t in heldout_tasks()}
    seen, unique = set(), []
    for t in out:  # the held-out tasks stay out of training
        if t.text() not in held and t.text() not in seen:
            seen.add(t.text())
            unique.append(t)
    return unique


def training_curriculum(path: str | Path | None = None) -> list[TaskSpec]:
    """The shipped curriculum (or the task file at ``path``: YAML or JSON)."""
    if path is not None:
        from .spec import load_tasks

        return load_tasks(path)
    data = json.loads(DATA.read_text())
    return [from_dict(d, f"curriculum[{i}]") for i, d in enumerate(data)]


def main() -> None:
    specs = build()
    DATA.parent.mkdir(parents=True, exist_ok=True)
    tmp = DATA.with_suffix(".tmp")
    tmp.write_text(json.dumps([to_dict(s) for s in specs], indent=0))
    tmp.replace(DATA)
    print(f"wrote {len(specs)} tasks to {DATA}")


if __name__ == "__main__":
    main()
