"""Evaluation on the held-out map pool: lifespan and task completion of a policy (or of the
uniform random masked policy, the reference any learning must beat).

    from nmmozoo.evaluate import evaluate
    evaluate(policy, preset="tiny", tasks="heldout", num_maps=8, episodes=2)

Every map plays ``episodes`` whole episodes on the evaluation pool (maps never used for
training); each agent-episode counts once. With the ``heldout`` tasks the schedule gives
every task equally often, and the result carries the competition's category score.
"""

from __future__ import annotations

from typing import Any

import torch
from torchrl.envs import TransformedEnv

from .env import make_env, random_actions
from .train.metrics import LIFESPAN, TaskIds, mean_by


@torch.no_grad()
def evaluate(policy=None, preset: str = "competition2023", tasks: str = "heldout", num_maps: int = 8,
             episodes: int = 1, seed: int = 0, deterministic: bool = False, device: str = "cpu",
             **env_overrides: Any) -> dict[str, Any]:
    """Play ``episodes`` episodes on each of ``num_maps`` held-out maps. ``policy`` is a zoo
    :class:`~nmmozoo.policy.Policy` (None: random masked actions). Returns the mean
    ``lifespan`` (ticks), ``completion`` (share of agent-episodes whose task was completed),
    ``by_task`` and ``by_category`` completion rates, the held-out ``score`` when the tasks
    are the held-out set, and ``agent_episodes``."""
    if episodes < 1 or num_maps < 1:
        raise ValueError(f"episodes and num_maps must be ≥ 1, got {episodes}, {num_maps}")
    obs_mode = env_overrides.pop("obs_mode", "dense")
    env = make_env(preset, num_maps=num_maps, device=device, seed=seed, obs_mode=obs_mode,
                   tasks=tasks, map_pool="eval", **env_overrides)
    if policy is not None:
        policy = policy.to(device).eval()
    P = env.config.num_agents
    engine = env.world.tasks
    if engine is not None:  # each ended agent-episode's task comes with the step
        env = TransformedEnv(env, TaskIds())
    specs = engine.specs if engine is not None else []
    gen = torch.Generator(device="cpu").manual_seed(seed)
    torch.manual_seed(seed)
    td = env.reset()
    B = num_maps
    recurrent = policy is not None and policy.recurrent_shape is not None
    if recurrent:
        td["agents", "recurrent_state"] = torch.zeros(B, P, *policy.recurrent_shape, device=device)
        td["is_init"] = torch.ones(B, 1, dtype=torch.bool, device=device)
    finished = torch.zeros(B, dtype=torch.int64)
    lifespans, task_ids, completed = [], [], []  # per ended agent-episode
    while bool((finished < episodes).any()):
        if policy is None:
            random_actions(td, generator=gen)
        else:
            policy.act(td, deterministic=deterministic)
        step, td = env.step_and_maybe_reset(td)
        nxt = step["next"]
        ended = nxt["done"].reshape(B).cpu() & (finished < episodes)
        if ended.any():
            lifespans.append(nxt["agents", "stats"][..., LIFESPAN].cpu()[ended].float().reshape(-1))
            if engine is not None:
                completed.append(nxt["agents", "task_completed"].cpu()[ended].reshape(-1).float())
                task_ids.append(nxt["agents", "task_id"].cpu()[ended].reshape(-1))
        finished += nxt["done"].reshape(B).cpu().long()
        if recurrent:
            td["agents", "recurrent_state"] = step["next", "agents", "recurrent_state"]
            td["is_init"] = nxt["done"].reshape(B, 1).clone()
    life = torch.cat(lifespans)
    out: dict[str, Any] = {"lifespan": float(life.mean()), "agent_episodes": int(life.numel())}
    if engine is not None:
        ids, comp = torch.cat(task_ids), torch.cat(completed)
        out["completion"] = float(comp.mean())
        names = [sp.name or f"task_{i}" for i, sp in enumerate(specs)]
        out["by_task"] = {k: float(v) for k, v in mean_by(ids, comp, names).items()}
        out["by_category"] = {k: float(v) for k, v in mean_by(ids, comp, [sp.group for sp in specs]).items()}
        if tasks == "heldout":
            from .tasks import score

            out["score"] = score(out["by_task"])
    return out
