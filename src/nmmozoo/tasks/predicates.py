"""Base predicates (docs/tasks.md#predicates), evaluated for many agents at once.

A predicate measures its *subject* — the agent itself, or its team — from the world state
and the per-agent counters, and returns progress in [0, 1]. Each is registered with its
arguments (name, kind, default) and how member measures combine:

* ``sum``: the members' measures add up toward a goal (``CountEvent(event, N)``: N);
* ``members``: the number of members whose measure meets the bar, toward ``num_agent``;
* ``any`` / ``all``: some / every member satisfies it;
* ``self``: the measure is already the progress.

Measures take ``(ctx, b, who, a)``: map index ``b`` ``[n, 1]``, member slots ``who``
``[n, T]`` (``-1``: no member) and argument tensors ``a[name]`` ``[n, 1]``, and return
``[n, T]``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..env import constants as C

ARG_KINDS = ("int", "item", "skill", "style", "event", "material", "agent_type", "group")
ITEM_IDS = {name: i for i, name in C.ITEM_NAMES.items()}
STYLES = {"melee": 0, "range": 1, "mage": 2}
AGENT_TYPES = {"player": 0, "npc": 1}
GROUPS = {"team": 0, "others": 1}
INT_MAX = 2 ** 31 - 1  # integer arguments are compared with int32 state


class PredicateError(ValueError):
    """A bad predicate argument; the message names the predicate and the argument."""


@dataclass(frozen=True)
class Predicate:
    name: str
    args: tuple[tuple[str, str, Any], ...]  # (name, kind, default or inspect._empty)
    combine: str
    goal: str | None
    measure: Callable
    doc: str

    def describe(self) -> str:
        sig = ", ".join(a for a, _, _ in self.args)
        return f"{self.name}({sig}): {self.doc}"


PREDICATES: dict[str, Predicate] = {}


def predicate(name: str, combine: str, goal: str | None = None, **args: str | tuple[str, Any]):
    """Register a predicate: ``args`` map each argument to its kind, or (kind, default)."""

    def deco(fn):
        spec = tuple((k, v, inspect._empty) if isinstance(v, str) else (k, v[0], v[1])
                     for k, v in args.items())
        PREDICATES[name] = Predicate(name, spec, combine, goal, fn, (fn.__doc__ or "").strip())
        return fn

    return deco


def _lookup(table: dict[str, int], value: Any, pred: str, arg: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value in table.values():
        return value
    key = str(value)
    for k, v in table.items():
        if k.lower() == key.lower():
            return v
    raise PredicateError(f"{pred}: argument {arg}={value!r} is not one of {sorted(table)}")


def resolve_args(name: str, args: dict[str, Any]) -> dict[str, int]:
    """Argument values as ints, validated; errors name the predicate and the argument."""
    p = PREDICATES[name]
    names = {a for a, _, _ in p.args}
    unknown = set(args) - names
    if unknown:
        raise PredicateError(f"{name}: unknown argument(s) {sorted(unknown)}; expected {sorted(names)}")
    out = {}
    for arg, kind, default in p.args:
        if arg not in args:
            if default is inspect._empty:
                raise PredicateError(f"{name}: missing argument {arg!r}")
            value = default
        else:
            value = args[arg]
        if kind == "int":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= INT_MAX:
                raise PredicateError(f"{name}: argument {arg}={value!r} must be an integer in "
                                     f"[0, {INT_MAX}]")
            out[arg] = value
        else:
            table = {"item": ITEM_IDS, "skill": {n: i for i, n in enumerate(C.SKILL_NAMES)},
                     "style": STYLES, "event": C.EVENT,
                     "material": {n: i for i, n in enumerate(C.MATERIAL_NAMES)},
                     "agent_type": AGENT_TYPES, "group": GROUPS}[kind]
            out[arg] = _lookup(table, value, name, arg)
    if p.goal is not None and out[p.goal] == 0:
        raise PredicateError(f"{name}: argument {p.goal} must be ≥ 1")
    return out


# --- helpers ---------------------------------------------------------------------------------------
def _g(t: torch.Tensor, b, who):
    """``t[b, who]`` for member slots (``who`` -1 reads slot 0; callers mask)."""
    return t[b, who.clamp_min(0)]


def _suffix(counts: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Sum over levels ≥ ``level`` of ``counts`` ``[..., L+1]``."""
    L1 = counts.shape[-1]
    lv = torch.arange(L1, device=counts.device)
    return (counts * (lv >= level[..., None])).sum(-1)


# --- the predicates --------------------------------------------------------------------------------
@predicate("Success", "self")
def success(ctx, b, who, a):
    """Always complete."""
    return torch.ones(who.shape, device=who.device)


@predicate("TickGE", "self", num_tick="int")
def tick_ge(ctx, b, who, a):
    """The episode has lasted num_tick ticks."""
    return (ctx.s.tick[b].float() / a["num_tick"].clamp_min(1)).expand(who.shape)


@predicate("StayAlive", "all")
def stay_alive(ctx, b, who, a):
    """Every member is alive."""
    return _g(ctx.s.alive, b, who).float()


@predicate("AllDead", "self", target=("group", "others"))
def all_dead(ctx, b, who, a):
    """Every agent of the target group (the agent's team, or everyone else) is dead."""
    P = ctx.cfg.num_agents
    team = ctx.team  # [B, P]
    my_team = team[b, who[:, :1].clamp_min(0)]  # [n, 1]
    members = team[b[:, 0]] == my_team  # [n, P]
    target = torch.where(a["target"] == 0, members, ~members)
    alive = ctx.s.alive[b[:, 0], :P] & target
    return (~alive.any(-1, keepdim=True)).float().expand(who.shape)


@predicate("CanSeeTile", "any", tile_type="material")
def can_see_tile(ctx, b, who, a):
    """A member sees a tile of this material."""
    cfg, s = ctx.cfg, ctx.s
    r, c = _g(s.row, b, who), _g(s.col, b, who)
    win = ctx.window  # [225] flat offsets
    flat = (r * cfg.map_size + c)[..., None] + win
    mat = s.material.view(s.num_maps, -1)[b[..., None].expand_as(flat), flat]
    return (mat == a["tile_type"][..., None]).any(-1).float()


@predicate("CanSeeAgent", "any", target="int")
def can_see_agent(ctx, b, who, a):
    """A member sees the entity with id ``target``."""
    seen = ctx.seen_ids(b, who)  # [n, T, K]
    return (seen == a["target"][..., None]).any(-1).float()


@predicate("CanSeeGroup", "any", target=("group", "others"))
def can_see_group(ctx, b, who, a):
    """A member sees an agent of the target group (its team, or anyone else), not itself."""
    slots = ctx.seen_slots(b, who)  # [n, T, K] entity slots
    P = ctx.cfg.num_agents
    is_player = slots < P
    other_team = ctx.team[b[..., None], slots.clamp_max(P - 1)] != ctx.team[b, who.clamp_min(0)][..., None]
    want = torch.where(a["target"][..., None] == 0, ~other_team, other_team)
    return (is_player & want & (slots != who[..., None])).any(-1).float()


@predicate("OccupyTile", "any", row="int", col="int")
def occupy_tile(ctx, b, who, a):
    """A member stands on (row, col)."""
    return ((_g(ctx.s.row, b, who) == a["row"]) & (_g(ctx.s.col, b, who) == a["col"])).float()


@predicate("DistanceTraveled", "sum", goal="dist", dist="int")
def distance_traveled(ctx, b, who, a):
    """Chebyshev distance of members from their spawn tiles, summed, toward ``dist``."""
    s = ctx.s
    d = torch.maximum((_g(s.row, b, who) - _g(s.spawn_row, b, who)).abs(),
                      (_g(s.col, b, who) - _g(s.spawn_col, b, who)).abs())
    return d.float()


@predicate("AllMembersWithinRange", "self", dist="int")
def all_members_within_range(ctx, b, who, a):
    """All live members stand within ``dist`` (Chebyshev) of each other."""
    s = ctx.s
    live = _g(s.alive, b, who) & (who >= 0)
    big = 10 ** 6
    r, c = _g(s.row, b, who), _g(s.col, b, who)
    spread_r = torch.where(live, r, -big).amax(-1) - torch.where(live, r, big).amin(-1)
    spread_c = torch.where(live, c, -big).amax(-1) - torch.where(live, c, big).amin(-1)
    ok = torch.maximum(spread_r, spread_c) <= a["dist"][:, 0]
    return ok.float()[:, None].expand(who.shape)


@predicate("AttainSkill", "members", skill="skill", level="int", num_agent=("int", 1))
def attain_skill(ctx, b, who, a):
    """At least ``num_agent`` members reach ``level`` in ``skill``."""
    lv = ctx.s.level[b, who.clamp_min(0), a["skill"]]
    return (lv >= a["level"]).float()


@predicate("GainExperience", "members", skill="skill", experience="int", num_agent=("int", 1))
def gain_experience(ctx, b, who, a):
    """At least ``num_agent`` members have ``experience`` XP in ``skill``."""
    xp = ctx.s.exp[b, who.clamp_min(0), a["skill"]]
    return (xp >= a["experience"]).float()


@predicate("CountEvent", "sum", goal="N", event="event", N="int")
def count_event(ctx, b, who, a):
    """Members log ``event`` N times in all."""
    return ctx.s.event_totals[b, who.clamp_min(0), a["event"]].float()


@predicate("ScoreHit", "sum", goal="N", combat_style="style", N="int")
def score_hit(ctx, b, who, a):
    """Members land N attacks of ``combat_style``."""
    return ctx.s.hits_by_style[b, who.clamp_min(0), a["combat_style"]].float()


@predicate("DefeatEntity", "sum", goal="num_agent", agent_type="agent_type", level=("int", 0),
           num_agent=("int", 1))
def defeat_entity(ctx, b, who, a):
    """Members kill ``num_agent`` entities of ``agent_type`` (player, npc) of level ≥ ``level``."""
    k = ctx.s.kills[b, who.clamp_min(0), a["agent_type"]]  # [n, T, L+1]
    return _suffix(k, a["level"]).float()


@predicate("HoardGold", "sum", goal="amount", amount="int")
def hoard_gold(ctx, b, who, a):
    """Members hold ``amount`` gold."""
    return _g(ctx.s.gold, b, who).float()


@predicate("EarnGold", "sum", goal="amount", amount="int")
def earn_gold(ctx, b, who, a):
    """Members earn ``amount`` gold (sales and loot)."""
    return _g(ctx.s.gold_earned, b, who).float()


@predicate("SpendGold", "sum", goal="amount", amount="int")
def spend_gold(ctx, b, who, a):
    """Members spend ``amount`` gold on the market."""
    return _g(ctx.s.gold_spent, b, who).float()


@predicate("MakeProfit", "sum", goal="amount", amount="int")
def make_profit(ctx, b, who, a):
    """Members' earnings exceed their spending by ``amount``."""
    return (_g(ctx.s.gold_earned, b, who) - _g(ctx.s.gold_spent, b, who)).float()


@predicate("InventorySpaceGE", "all", space="int")
def inventory_space_ge(ctx, b, who, a):
    """Every member has at least ``space`` free inventory slots."""
    free = (ctx.s.inv_type[b, who.clamp_min(0)] == 0).sum(-1)
    return (free >= a["space"]).float()


def _held(ctx, b, who, a, equipped_only: bool):
    s = ctx.s
    typ = s.inv_type[b, who.clamp_min(0)]  # [n, T, S]
    ok = (typ == a["item"][..., None]) & (s.inv_level[b, who.clamp_min(0)] >= a["level"][..., None])
    if equipped_only:
        ok &= s.inv_equipped[b, who.clamp_min(0)]
    return ok, s.inv_quantity[b, who.clamp_min(0)]


@predicate("OwnItem", "sum", goal="quantity", item="item", level=("int", 0), quantity=("int", 1))
def own_item(ctx, b, who, a):
    """Members own ``quantity`` items of type ``item`` at level ≥ ``level``."""
    ok, qty = _held(ctx, b, who, a, False)
    return (qty * ok).sum(-1).float()


@predicate("EquipItem", "members", item="item", level=("int", 0), num_agent=("int", 1))
def equip_item(ctx, b, who, a):
    """``num_agent`` members have an ``item`` of level ≥ ``level`` equipped."""
    ok, _ = _held(ctx, b, who, a, True)
    return ok.any(-1).float()


@predicate("FullyArmed", "members", combat_style="style", level=("int", 0), num_agent=("int", 1))
def fully_armed(ctx, b, who, a):
    """``num_agent`` members wear hat, top and bottom and hold the weapon and ammunition of
    ``combat_style``, all of level ≥ ``level``."""
    s = ctx.s
    w = who.clamp_min(0)
    typ, lvl, eq = s.inv_type[b, w], s.inv_level[b, w], s.inv_equipped[b, w]
    good = eq & (lvl >= a["level"][..., None])
    style = a["combat_style"][..., None]
    weapon = torch.tensor([C.SPEAR, C.BOW, C.WAND], device=typ.device)[style]
    ammo = torch.tensor([C.WHETSTONE, C.ARROW, C.RUNES], device=typ.device)[style]
    need = [typ == C.HAT, typ == C.TOP, typ == C.BOTTOM, typ == weapon, typ == ammo]
    return torch.stack([(n & good).any(-1) for n in need], -1).all(-1).float()


def _item_counter(kind: int):
    def measure(ctx, b, who, a):
        counts = ctx.s.item_events[b, who.clamp_min(0), kind, a["item"]]  # [n, T, L+1]
        return _suffix(counts, a["level"]).float()
    return measure


for _name, _kind, _verb in (("ConsumeItem", 1, "consume"), ("HarvestItem", 0, "harvest"),
                            ("ListItem", 2, "list"), ("BuyItem", 3, "buy")):
    _m = _item_counter(_kind)
    _m.__doc__ = f"Members {_verb} ``quantity`` items of type ``item`` at level ≥ ``level``."
    predicate(_name, "sum", goal="quantity", item="item", level=("int", 0), quantity=("int", 1))(_m)
