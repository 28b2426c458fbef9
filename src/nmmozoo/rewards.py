"""Reward shaping: registered terms, applied to the env's reward by a TorchRL transform.

A term sees, per tick, the observation after the step (``("agents","stats")``, events, task
progress), the one before it, and the moves taken, and returns a bonus ``[B, P]``. A recipe
lists terms with weights; :class:`RewardShaping` adds ``Σ weight · term`` to
``("agents","reward")`` for live agents (and keeps the unshaped reward under
``("agents","env_reward")``).
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDictBase
from torchrl.envs import Transform

from .env import STAT_NAMES
from .env import constants as C
from .nn.registry import SpecError, build, register

S = {n: i for i, n in enumerate(STAT_NAMES)}


class Term:
    """Base of reward terms: ``__call__(now, before, move, memory) -> [B, P]``; ``memory``
    is a dict the term may keep per-agent state in (cleared where an episode starts)."""

    def reset(self, memory: dict, mask: torch.Tensor) -> None:
        for v in memory.values():
            v[mask] = 0


# Public sources the terms below cite (read for their numbers and rules):
#   [B] NeuralMMO/baselines @ 6654f30836b62dcacd1357f2c69a50ff84533588 (the 2023 baseline)
#   [E] NeuralMMO/environment @ 685ea09d1cf24cbfd086b94c1041d7d071c10172 (nmmo 2.0)
#   [C] CarperAI/nmmo-baselines @ f7d985073fe927126f935b91cdbd66aaa139e343 (contrib/: the entries)
#   [S] saidineshpola/nmmo-rl @ 60e433b4c8e4b618981f8f284b9a87783b4f963d
#   [M] starwitcher/NeurIPS2023_NMMO @ c0d8af727b5c4efea4ccb996b5a25a84dd0b5186


def _stat(td, name):
    return td.get(("agents", "stats"))[..., S[name]].float()


def _change(now, before, name, scale=1.0):
    """Change of a per-agent stat over the tick, divided by ``scale``."""
    return (_stat(now, name) - _stat(before, name)) / scale


def _alive(td):
    return td.get(("agents", "mask")).float()


def _events(td, name):
    return td.get(("agents", "events"))[..., C.EVENT[name]]


def _flag(value, name):
    if not isinstance(value, bool):
        raise SpecError(f"{name}: expected true or false, got {value!r}")
    return value


def _number(value, name, positive=False):
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or (positive and value <= 0)):
        raise SpecError(f"{name}: expected a{' positive' if positive else ''} number, got {value!r}")
    return float(value)


@register("reward", "heal")
class Heal(Term):
    """1 while the agent is alive and this tick's food/water update restored health
    (``health_restore > 0``: regeneration beat starvation, and health was below its maximum).

    [B] environment.py l.87-91 pays ``heal_bonus_weight`` when the player is still in
    ``realm.players`` and ``resources.health_restore > 0``; [E] nmmo/entity/entity.py
    Resources.update l.132-160 sets ``health_restore`` to the health change of that update.
    Other healing (a Potion) and damage do not count."""

    def __call__(self, now, before, move, memory):
        return ((_stat(now, "health_restore") > 0) & now.get(("agents", "mask"))).float()


@register("reward", "hp_change")
class HPChange(Term):
    """Health gained (positive) or lost (negative), per ``scale`` health (default 100).

    ``alive_only``: 0 on the tick the agent dies, as Yao Feng's ``hp_bonus`` ([C]
    contrib/sub_246505/environment.py l.106-110: paid only while the player is in
    ``realm.players``, ΔHP per tick, unclipped)."""

    def __init__(self, scale: float = 100.0, alive_only: bool = False):
        self.scale = _number(scale, "scale", positive=True)
        self.alive_only = _flag(alive_only, "alive_only")

    def __call__(self, now, before, move, memory):
        out = _change(now, before, "health", self.scale)
        return out * _alive(now) if self.alive_only else out


@register("reward", "meander")
class Meander(Term):
    """``H − 1``, H the base-2 entropy of the agent's last ``window`` move choices, once more
    than ``after`` moves were recorded this episode (0 before).

    [B] leader_board.py l.207-210 appends every tick's move-head choice (stay included) to a
    list emptied at each episode start (l.156); environment.py l.93-97 pays
    ``weight × (calculate_entropy(moves[-8:]) − 1)`` when ``len(moves) > 5``;
    leader_board.py l.408-415 ``calculate_entropy`` uses log2. Range: −1 (one direction) to
    log2(5) − 1 ≈ 1.32 (8 moves over 5 choices)."""

    def __init__(self, window: int = 8, after: int = 5):
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise SpecError(f"window: expected ≥ 1 moves (an integer), got {window!r}")
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise SpecError(f"after: expected ≥ 0 moves (an integer), got {after!r}")
        self.window, self.after = window, after

    def __call__(self, now, before, move, memory):
        hist, count = memory.get("moves"), memory.get("count")
        if hist is None or hist.shape[:-1] != move.shape:
            hist = memory["moves"] = torch.full((*move.shape, self.window), -1, dtype=torch.long,
                                                device=move.device)
            count = memory["count"] = torch.zeros(move.shape, dtype=torch.long, device=move.device)
        hist.copy_(torch.cat([hist[..., 1:], move[..., None].long()], -1))
        count += 1
        seen = hist >= 0
        freq = (torch.nn.functional.one_hot(hist.clamp_min(0), C.NUM_MOVES) * seen[..., None]).sum(-2).float()
        prob = freq / seen.sum(-1, keepdim=True).clamp_min(1)
        entropy = -(prob * torch.log2(prob.clamp_min(1e-12))).sum(-1)
        return torch.where(count > self.after, entropy - 1, torch.zeros_like(entropy))

    def reset(self, memory, mask):
        if "moves" in memory:
            memory["moves"][mask] = -1
            memory["count"][mask] = 0


@register("reward", "explore")
class Explore(Term):
    """New distinct event-log rows of the agent this tick, at most ``cap``:
    ``min(cap, Δ unique_events)``.

    [B] leader_board.py l.218-221 counts the agent's distinct rows of the episode's event log
    (``extract_unique_event`` l.376-406) and environment.py l.99-106 pays
    ``weight × min(clip_unique_event = 3, Δ count)``. What a row is, per event, is documented
    in :mod:`nmmozoo.env.eventlog`: each kill, each (skill, level), each (item event, type,
    level), each gold earning of a new amount in a tick, once per combat style, and once each
    eating, drinking, giving, destroying, giving gold and going farther."""

    def __init__(self, cap: int = 3):
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 0:
            raise SpecError(f"cap: expected an integer ≥ 0, got {cap!r}")
        self.cap = cap

    def __call__(self, now, before, move, memory):
        return _change(now, before, "unique_events").clamp(0, self.cap)


@register("reward", "xp_change")
class XPChange(Term):
    """Yao Feng: the change of the agent's highest skill XP (``max_exp``) this tick, per XP,
    0 on the tick the agent dies.

    [C] contrib/sub_246505/environment.py l.112-117: ``np.max`` over the 8 skills' XP minus
    its value the tick before, paid only while the player is in ``realm.players``; weight
    ``exp_bonus_weight`` 0.002 × ``custom_bonus_scale`` 0.1 (config.py l.60, l.64)."""

    def __call__(self, now, before, move, memory):
        return _change(now, before, "max_exp") * _alive(now)


@register("reward", "damage_dealt")
class DamageDealt(Term):
    """Damage dealt this tick, per 100. (Yao Feng's ``attack_bonus`` is Δ damage inflicted
    with weight 0.0 in [C] contrib/sub_246505/config.py l.62, so his recipe leaves it out.)"""

    def __call__(self, now, before, move, memory):
        return _change(now, before, "damage_dealt", 100)


@register("reward", "gold_change")
class GoldChange(Term):
    """Gold gained or lost this tick (per gold); ``alive_only``: 0 on the tick the agent
    dies, as Yao Feng's ``gold_bonus`` ([C] contrib/sub_246505/environment.py l.130-132;
    weight 0.001 × 0.1, config.py l.63-64)."""

    def __init__(self, alive_only: bool = False):
        self.alive_only = _flag(alive_only, "alive_only")

    def __call__(self, now, before, move, memory):
        out = _change(now, before, "gold")
        return out * _alive(now) if self.alive_only else out


@register("reward", "defense")
class Defense(Term):
    """Yao Feng: the mean of the equipped items' melee, range and mage defense, divided by
    15 (``equip_defense / 45``), every tick the agent is alive — a level, not a change.

    [C] contrib/sub_246505/environment.py l.120-122: ``(melee_defense + range_defense +
    mage_defense) / 3 / 15`` of ``inventory.equipment`` ([E] nmmo/systems/inventory.py
    Equipment: sums over hat, top, bottom, held item and ammunition); weight
    ``defense_bonus_weight`` 0.04 × 0.1 (config.py l.61, l.64)."""

    def __call__(self, now, before, move, memory):
        return _stat(now, "equip_defense") / 45.0 * _alive(now)


@register("reward", "event")
class Event(Term):
    """Occurrences of one event this tick (``once``: 1 if any); ``alive_only``: 0 on the tick
    the agent dies."""

    def __init__(self, event: str, once: bool = False, alive_only: bool = False):
        if event not in C.EVENT:
            raise SpecError(f"unknown event {event!r}; events: {list(C.EVENT)}")
        self.index = C.EVENT[event]
        self.once = _flag(once, "once")
        self.alive_only = _flag(alive_only, "alive_only")

    def __call__(self, now, before, move, memory):
        n = now.get(("agents", "events"))[..., self.index].float()
        if self.once:
            n = (n > 0).float()
        return n * _alive(now) if self.alive_only else n


@register("reward", "player_kill")
class PlayerKill(Term):
    """Saidinesh: 1 on a tick the agent killed a player (NPC kills do not count) and is still
    alive.

    [S] environment.py l.107-112: 0.00056 when the first PLAYER_KILL row of the tick has
    ``target_ent > 0`` (player ids are positive, NPC ids negative). Here: any player killed
    this tick (a tick with an NPC kill logged before a player kill pays in ours, not in 2.0)."""

    def __call__(self, now, before, move, memory):
        players = _events(now, "PLAYER_KILL") - _events(now, "NPC_KILL")
        return (players > 0).float() * _alive(now)


@register("reward", "level_up")
class LevelUp(Term):
    """Saidinesh: on a tick one of ``skills`` reached a new level: 1 if that level is
    ≤ ``tier_level``, else ``high``; 0 if the agent died.

    [S] environment.py l.121-139: the first LEVEL_UP row of the tick, if its skill id is in
    1..4 (melee, range, mage, fishing; [E] nmmo/systems/skill.py SKILL_ID), pays 0.01 for a
    new level ≤ 5 and 0.02 above (so ``weight: 0.01``, ``high: 2``). Several qualifying
    skills in one tick (rare: one XP gain per skill per tick) pay once, by the highest new
    level; 2.0 looked only at the tick's first LEVEL_UP row."""

    def __init__(self, skills=("melee", "range", "mage", "fishing"), tier_level: int = 5,
                 high: float = 2.0):
        if isinstance(skills, str) or not skills or any(k not in C.SKILL_NAMES for k in skills):
            raise SpecError(f"skills: expected a list of skill names from {list(C.SKILL_NAMES)}, "
                            f"got {skills!r}")
        if not isinstance(tier_level, int) or isinstance(tier_level, bool):
            raise SpecError(f"tier_level: expected an integer level, got {tier_level!r}")
        self.columns = [S[f"{k}_level"] for k in skills]
        self.tier_level = tier_level
        self.high = _number(high, "high")

    def __call__(self, now, before, move, memory):
        new = now.get(("agents", "stats"))[..., self.columns]
        old = before.get(("agents", "stats"))[..., self.columns]
        top = torch.where(new > old, new, 0).amax(-1)
        pay = torch.where(top > self.tier_level, self.high, 1.0) * (top > 0)
        return pay * _alive(now)


@register("reward", "gift")
class Gift(Term):
    """1 on a tick the agent gave an item or gold (once per tick) and is alive.

    Saidinesh's intended give bonus ([S] environment.py l.127-143). In public it never pays:
    it tests the ``number`` column of the GIVE_ITEM / GIVE_GOLD row, and 2.0 logs those
    events "for counting only" with every attribute 0 ([E] nmmo/lib/event_log.py l.86-91),
    so his recipe leaves this term out."""

    def __call__(self, now, before, move, memory):
        given = _events(now, "GIVE_ITEM") + _events(now, "GIVE_GOLD")
        return (given > 0).float() * _alive(now)


@register("reward", "farther")
class Farther(Event):
    """Progress toward the map centre beyond the best so far (GO_FARTHEST events). No recipe
    uses it: in 2.0's explore bonus GO_FARTHEST is one unique row per episode."""

    def __init__(self):
        super().__init__("GO_FARTHEST")


@register("reward", "task_progress")
class TaskProgress(Term):
    """The change of the task's progress. (Mori's README names task rewards, but [M] has no
    code or weights for them, so his recipe leaves this out.)"""

    def __call__(self, now, before, move, memory):
        return (now.get(("agents", "task_progress")) - before.get(("agents", "task_progress"))).clamp_min(0)


@register("reward", "task_completion")
class TaskCompletion(Term):
    """A bonus when the task completes (no public recipe uses it; see ``task_progress``)."""

    def __call__(self, now, before, move, memory):
        return (now.get(("agents", "task_completed")) & ~before.get(("agents", "task_completed"))).float()


@register("reward", "death")
class Death(Term):
    """1 on the tick an agent dies. Mori pays ``heal_bonus_weight`` (0.02) when the agent is
    no longer in ``realm.players`` ([M] environment.py l.115-117, "I made a mistake here, but
    it is valid"), so his recipe has ``weight: 0.02``."""

    def __call__(self, now, before, move, memory):
        return (before.get(("agents", "mask")) & ~now.get(("agents", "mask"))).float()


class RewardShaping(Transform):
    """Adds weighted shaping terms to ``("agents","reward")``.

    ``terms``: a list of ``{name: <term>, weight: <float>, **args}`` (recipe form)."""

    def __init__(self, terms: list[dict], path: str = "rewards"):
        super().__init__(in_keys=[], out_keys=[])
        self.terms = []
        for i, node in enumerate(terms or []):
            if not isinstance(node, dict) or "weight" not in node:
                raise SpecError(f"{path}[{i}]: expected {{name: <term>, weight: <number>, ...}}")
            node = dict(node)
            weight = node.pop("weight")
            if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not math.isfinite(weight):
                raise SpecError(f"{path}[{i}].weight: expected a finite number, got {weight!r}")
            self.terms.append((build("reward", node, f"{path}[{i}]"), float(weight)))
        self.memory: list[dict] = [{} for _ in self.terms]
        self._before: TensorDictBase | None = None

    def _reset(self, tensordict, tensordict_reset):
        if self.terms:  # an observation like any other: present after a reset too
            mask = tensordict_reset.get(("agents", "mask"))
            tensordict_reset.set(("agents", "env_reward"), torch.zeros(*mask.shape, 1, device=mask.device))
        reset = tensordict.get("_reset", None) if tensordict is not None else None
        if self._before is None or reset is None:
            self._before = tensordict_reset.select(("agents", "stats"), ("agents", "mask"),
                                                   ("agents", "task_progress"),
                                                   ("agents", "task_completed"), strict=False).clone()
            for (term, _), mem in zip(self.terms, self.memory):  # each term's own fresh state
                term.reset(mem, slice(None))
        else:
            maps = reset.reshape(-1)
            fresh = tensordict_reset.select(*self._before.keys(True, True)).clone()
            self._before[maps] = fresh[maps]
            for (term, _), mem in zip(self.terms, self.memory):
                term.reset(mem, maps)
        return tensordict_reset

    def _step(self, tensordict, next_tensordict):
        if not self.terms:
            return next_tensordict
        reward = next_tensordict.get(("agents", "reward"))
        next_tensordict.set(("agents", "env_reward"), reward.clone())
        move = tensordict.get(("agents", "action", "move"))
        before = self._before
        bonus = torch.zeros_like(reward[..., 0])
        for (term, w), mem in zip(self.terms, self.memory):
            bonus += w * term(next_tensordict, before, move, mem)
        alive_or_dying = before.get(("agents", "mask"))
        next_tensordict.set(("agents", "reward"), reward + (bonus * alive_or_dying)[..., None])
        self._before = next_tensordict.select(*before.keys(True, True)).clone()
        return next_tensordict

    # --- saved state (in ``state_dict()`` as ``_extra_state``; see nmmozoo.env.env_state) ---
    def get_extra_state(self) -> dict:
        """The observation before the next step (what the terms compare to) and each term's
        per-agent memory, as CPU tensors; the terms' names, to check a load against."""
        from .env.envstate import td_to_state

        return {"terms": [type(t).__name__ for t, _ in self.terms],
                "before": None if self._before is None else td_to_state(self._before),
                "memory": [{k: v.detach().to("cpu", copy=True) for k, v in m.items()}
                           for m in self.memory]}

    def check_extra_state(self, state) -> None:
        from .env.state import EnvStateError

        terms = [type(t).__name__ for t, _ in self.terms]
        if not isinstance(state, dict) or {"terms", "before", "memory"} - set(state):
            raise EnvStateError("RewardShaping: not a saved reward-shaping state")
        if state["terms"] != terms:
            raise EnvStateError(f"RewardShaping: the state was saved with the terms {state['terms']}; "
                                f"this env's are {terms}")

    def set_extra_state(self, state) -> None:
        from .env.envstate import td_from_state, transform_device

        self.check_extra_state(state)
        dev = transform_device(self)
        self._before = None if state["before"] is None else td_from_state(state["before"], dev)
        for mem, saved in zip(self.memory, state["memory"]):
            mem.clear()
            mem.update({k: v.to(dev, copy=True) if dev is not None else v.clone()
                        for k, v in saved.items()})

    def transform_reward_spec(self, reward_spec):
        return reward_spec

    def transform_observation_spec(self, observation_spec):
        if self.terms:
            spec = self.parent.full_reward_spec["agents", "reward"].clone()
            observation_spec["agents", "env_reward"] = spec
        return observation_spec
