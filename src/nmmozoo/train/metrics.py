"""Episode metrics for the training logs, computed from the rollout itself (so they work
with any collector, in-process or in worker processes)."""

from __future__ import annotations

import torch
from torchrl.data import Categorical
from torchrl.envs import Transform

from ..env.world import STAT_NAMES

LIFESPAN = STAT_NAMES.index("time_alive")


class TaskIds(Transform):
    """Writes each agent's task index ``("agents","task_id")`` (into the env's task list)
    with every step, so a rollout knows which task each finished agent-episode had. It keeps
    no state of its own: the task ids are the env's (saved with it, see
    :func:`nmmozoo.env.env_state`)."""

    def __init__(self):
        super().__init__(in_keys=[], out_keys=[("agents", "task_id")])

    def _engine(self):
        return self.parent.base_env.world.tasks

    def _ids(self, like):
        # a copy: the engine re-assigns task_id in place when the map resets
        return self._engine().task_id.to(like.device, copy=True)

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
    """The group of each task of the env's task list (``TaskSpec.group``), or None when the
    env runs without tasks."""
    engine = env.base_env.world.tasks
    return None if engine is None else [sp.group for sp in engine.specs]


def mean_by(index: torch.Tensor, values: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """Mean of ``values`` per name, where item ``k`` belongs to ``names[index[k]]`` (several
    indices may share a name); names with no item are left out. One bincount, no loop over
    items."""
    labels = sorted(set(names))
    code = torch.tensor([labels.index(n) for n in names], device=index.device)[index]
    total = torch.bincount(code, weights=values.float(), minlength=len(labels))
    count = torch.bincount(code, minlength=len(labels))
    return {n: total[k] / count[k] for k, n in enumerate(labels) if count[k] > 0}


def episode_metrics(data, categories: list[str] | None) -> dict[str, torch.Tensor]:
    """Lifespan, return and task completion (overall and per category) of the
    agent-episodes that ended in the rollout ``data`` ``[maps, ticks]``."""
    out: dict[str, torch.Tensor] = {}
    ended = data["next", "done"].squeeze(-1)
    if not ended.any():
        return out
    nxt = data["next", "agents"]
    out["episode/lifespan"] = nxt["stats"][ended][..., LIFESPAN].float().mean()
    if "episode_return" in nxt:
        out["episode/return"] = nxt["episode_return"][ended].mean()
    if categories is None or "task_completed" not in nxt:
        return out
    comp = nxt["task_completed"][ended].reshape(-1).float()
    out["task/completion"] = comp.mean()
    if "task_id" in nxt:
        by = mean_by(nxt["task_id"][ended].reshape(-1), comp, categories)
        out.update({f"task/{c}": v for c, v in by.items()})
    return out
