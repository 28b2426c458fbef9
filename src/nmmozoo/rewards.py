"""Reward shaping: registered terms, applied to the env's reward by a TorchRL transform.

A term sees, per tick, the observation after the step (``("agents","stats")``, events, task
progress), the one before it, and the moves taken, and returns a bonus ``[B, P]``. A recipe
lists terms with weights; :class:`RewardShaping` adds ``Σ weight · term`` to
``("agents","reward")`` for live agents (and keeps the unshaped reward under
``("agents","env_reward")``).
"""

from __future__ import annotations

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


def _stat(td, name):
    return td.get(("agents", "stats"))[..., S[name]].float()


def _change(now, before, name, scale=1.0):
    """Change of a per-agent stat over the tick, divided by ``scale``."""
    return (_stat(now, name) - _stat(before, name)) / scale


@register("reward", "heal")
class Heal(Term):
    """Baseline: a bonus when health went up this tick."""

    def __call__(self, now, before, move, memory):
        return (_change(now, before, "health") > 0).float()


@register("reward", "hp_change")
class HPChange(Term):
    """Health gained (positive) or lost (negative), per 100 health."""

    def __call__(self, now, before, move, memory):
        return _change(now, before, "health", 100)


@register("reward", "meander")
class Meander(Term):
    """Baseline: entropy of the last ``window`` moves minus 1 (discourages dithering)."""

    def __init__(self, window: int = 8):
        if window < 1:
            raise SpecError(f"window: expected ≥ 1 moves, got {window}")
        self.window = window

    def __call__(self, now, before, move, memory):
        hist = memory.get("moves")
        if hist is None or hist.shape[:-1] != move.shape:
            hist = memory["moves"] = torch.full((*move.shape, self.window), C.NUM_MOVES - 1,
                                                dtype=torch.long, device=move.device)
        hist.copy_(torch.cat([hist[..., 1:], move[..., None]], -1))
        counts = torch.nn.functional.one_hot(hist, C.NUM_MOVES).float().mean(-2)
        entropy = -(counts * counts.clamp_min(1e-9).log()).sum(-1)
        return entropy - 1

    def reset(self, memory, mask):
        if "moves" in memory:
            memory["moves"][mask] = C.NUM_MOVES - 1


@register("reward", "explore")
class Explore(Term):
    """Baseline: event types logged for the first time this episode, at most ``cap``."""

    def __init__(self, cap: int = 3):
        if cap < 0:
            raise SpecError(f"cap: expected ≥ 0, got {cap}")
        self.cap = cap

    def __call__(self, now, before, move, memory):
        ev = now.get(("agents", "events")) > 0
        seen = memory.get("seen")
        if seen is None or seen.shape != ev.shape:
            seen = memory["seen"] = torch.zeros_like(ev)
        new = (ev & ~seen).sum(-1).clamp(max=self.cap).float()
        seen |= ev
        return new


@register("reward", "xp_change")
class XPChange(Term):
    """Yao Feng: the change of the highest skill's XP, per 100 XP."""

    def __call__(self, now, before, move, memory):
        return _change(now, before, "total_exp", 100)


@register("reward", "damage_dealt")
class DamageDealt(Term):
    """Yao Feng: damage dealt this tick, per 100."""

    def __call__(self, now, before, move, memory):
        return _change(now, before, "damage_dealt", 100)


@register("reward", "gold_change")
class GoldChange(Term):
    """Yao Feng: gold gained or lost this tick."""

    def __call__(self, now, before, move, memory):
        return _change(now, before, "gold")


@register("reward", "defense")
class Defense(Term):
    """Yao Feng: defense from level and equipment, per 100 (mean over ticks as a bonus)."""

    def __call__(self, now, before, move, memory):
        return _stat(now, "max_level") * 5 / 100


@register("reward", "event")
class Event(Term):
    """A bonus per occurrence of one event (Saidinesh's kill, level-up, give, harvest bonuses)."""

    def __init__(self, event: str):
        if event not in C.EVENT:
            raise SpecError(f"unknown event {event!r}; events: {list(C.EVENT)}")
        self.index = C.EVENT[event]

    def __call__(self, now, before, move, memory):
        return now.get(("agents", "events"))[..., self.index].float()


@register("reward", "farther")
class Farther(Event):
    """Takeru / Mori: progress toward the map centre beyond the best so far (GO_FARTHEST)."""

    def __init__(self):
        super().__init__("GO_FARTHEST")


@register("reward", "task_progress")
class TaskProgress(Term):
    """Mori: the change of the task's progress."""

    def __call__(self, now, before, move, memory):
        return (now.get(("agents", "task_progress")) - before.get(("agents", "task_progress"))).clamp_min(0)


@register("reward", "task_completion")
class TaskCompletion(Term):
    """Mori: a bonus when the task completes."""

    def __call__(self, now, before, move, memory):
        return (now.get(("agents", "task_completed")) & ~before.get(("agents", "task_completed"))).float()


@register("reward", "death")
class Death(Term):
    """1 on the tick an agent dies (Mori's accidental +0.02 on death is ``weight: 0.02``)."""

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
            if not isinstance(weight, (int, float)) or isinstance(weight, bool):
                raise SpecError(f"{path}[{i}].weight: expected a number, got {weight!r}")
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

    def transform_reward_spec(self, reward_spec):
        return reward_spec

    def transform_observation_spec(self, observation_spec):
        if self.terms:
            spec = self.parent.full_reward_spec["agents", "reward"].clone()
            observation_spec["agents", "env_reward"] = spec
        return observation_spec
