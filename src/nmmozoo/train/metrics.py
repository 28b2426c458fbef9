"""Episode metrics for the training logs, computed from the rollout itself (so they work
with any collector, in-process or in worker processes)."""

from __future__ import annotations

from collections import defaultdict

import torch
from torchrl.data import Categorical
from torchrl.envs import Transform

from ..env.world import STAT_NAMES

LIFESPAN = STAT_NAMES.index("time_alive")


class TaskIds(Transform):
    """Writes each agent's task index ``("agents","task_id")`` (into the env's task list)
    with every step, so a rollout knows which task each finished agent-episode had."""

    def __init__(self):
        super().__init__(in_keys=[], out_keys=[("agents", "task_id")])

    def _engine(self):
        return self.parent.base_env.world.tasks

    def _ids(self, like):
        return self._engine().task_id.to(like.device)

    def _reset(self, tensordict, tensordict_reset):
        tensordict_reset.set(("agents", "task_id"), self._ids(tensordict_reset.get(("agents", "mask"))))
        return tensordict_reset

    def _step(self, tensordict, next_tensordict):
        # the map resets (and re-assigns) after this step: these are the episode's tasks
        next_tensordict.set(("agents", "task_id"), self._ids(next_tensordict.get(("agents", "mask"))))
        return next_tensordict

    def transform_observation_spec(self, observation_spec):
        base = self.parent.base_env
        n = len(base.world.tasks.specs)
        shape = observation_spec["agents", "mask"].shape
        observation_spec["agents", "task_id"] = Categorical(n, shape=shape, dtype=torch.int64,
                                                            device=observation_spec.device)
        return observation_spec


def task_categories(env) -> list[str] | None:
    """The category of each task of the env's task list (its ``category``, else its first
    tag), or None when the env runs without tasks."""
    engine = env.base_env.world.tasks
    if engine is None:
        return None
    return [sp.category or (sp.tags[0] if sp.tags else "other") for sp in engine.specs]


def episode_metrics(data, categories: list[str] | None) -> dict[str, torch.Tensor]:
    """Lifespan and task completion (overall and per category) of the agent-episodes that
    ended in the rollout ``data`` ``[maps, ticks]``."""
    out: dict[str, torch.Tensor] = {}
    ended = data["next", "done"].squeeze(-1)
    if not ended.any():
        return out
    nxt = data["next", "agents"]
    out["episode/lifespan"] = nxt["stats"][ended][..., LIFESPAN].float().mean()
    out["episode/return"] = data["next", "agents", "episode_return"][ended].mean() \
        if "episode_return" in nxt else None
    if out["episode/return"] is None:
        del out["episode/return"]
    if categories is None or "task_completed" not in nxt:
        return out
    comp = nxt["task_completed"][ended].reshape(-1).float()
    out["task/completion"] = comp.mean()
    if "task_id" in nxt:
        ids = nxt["task_id"][ended].reshape(-1).tolist()
        acc = defaultdict(list)
        for i, c in zip(ids, comp.tolist()):
            acc[categories[i]].append(c)
        for cat, v in sorted(acc.items()):
            out[f"task/{cat}"] = torch.tensor(sum(v) / len(v))
    return out
