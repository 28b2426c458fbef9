"""The sharded env (``make_env(workers=N)``): the same env, its maps stepped in processes."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from torchrl.envs.utils import check_env_specs

import nmmozoo
from nmmozoo.env import ActionError, NMMOEnv, make_config, random_actions
from nmmozoo.env.workers import WorkerError

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("obs_mode", ["compact", "dense"])
def test_sharded_env_equals_its_shards_run_alone(obs_mode):
    """Worker i runs maps [i*n, (i+1)*n) with seed ``seed * workers + i`` (and held-out maps
    i, i + workers, ...): step for step, with partial resets, the sharded env's outputs are
    exactly those of the shards run as separate unsharded envs."""
    over = {"early_stop_agents": 10}
    env = nmmozoo.make_env("tiny", num_maps=4, seed=3, obs_mode=obs_mode, workers=2, **over)
    cfg = make_config("tiny", **over)
    shards = [NMMOEnv(cfg, num_maps=2, seed=3 * 2 + i, obs_mode=obs_mode, eval_offset=i, eval_stride=2)
              for i in range(2)]
    try:
        td, ref = env.reset(), [s.reset() for s in shards]
        assert (td == torch.cat(ref)).all()
        gen = torch.Generator().manual_seed(0)
        resets = 0
        for _ in range(70):
            random_actions(td, generator=gen)
            for i, r in enumerate(ref):
                r["agents", "action"] = td["agents", "action"][2 * i:2 * i + 2].clone()
            step, td = env.step_and_maybe_reset(td)
            out = [s.step_and_maybe_reset(r) for s, r in zip(shards, ref)]
            ref = [o[1] for o in out]
            assert (step == torch.cat([o[0] for o in out])).all()
            assert (td.exclude(("agents", "action"))
                    == torch.cat(ref).exclude(("agents", "action"))).all()
            resets += int(step["next", "done"].sum())
        assert resets >= 2  # partial resets happened on some maps while others played on
        if obs_mode == "compact":  # the main process's task view follows the workers
            assert torch.equal(env.world.tasks.task_id, td["agents", "task_id"])
    finally:
        env.close()


def test_sharded_env_specs_seed_and_errors():
    env = nmmozoo.make_env("tiny", num_maps=4, seed=0, workers=2)
    try:
        assert not env.world.tasks.completed.any()  # before any reset: nothing completed
        check_env_specs(env)
        env.set_seed(11)
        a = env.reset()
        fresh = nmmozoo.make_env("tiny", num_maps=4, seed=11, workers=2)
        try:
            assert (a == fresh.reset()).all()
        finally:
            fresh.close()
        # a bad action is refused in the main process, before any worker moves
        random_actions(a)
        a["agents", "action", "move"][0, 0] = 99
        with pytest.raises(ActionError, match="move"):
            env.step(a)
        with pytest.raises(AttributeError, match="workers=1"):
            env.world.state  # noqa: B018
        # a worker that dies is named, not waited on forever
        os.kill(env.world._procs[1].pid, signal.SIGKILL)
        env.world._procs[1].join(timeout=10)
        random_actions(a)
        with pytest.raises(WorkerError, match="worker 1 exited"):
            env.step(a)
    finally:
        env.close()
    assert not any(p.is_alive() for p in env.world._procs)


def test_workers_must_divide_the_maps():
    with pytest.raises(ValueError, match="must divide num_maps"):
        nmmozoo.make_env("tiny", num_maps=3, workers=2)
    with pytest.raises(ValueError, match="positive integer"):
        nmmozoo.make_env("tiny", num_maps=4, workers=0)


@pytest.mark.parametrize("workers", [1, 2])
def test_step_outputs_are_not_overwritten_by_later_steps(workers):
    """Every output is a fresh tensor: what a step returned still holds after later steps
    and resets (a rollout keeps them all)."""
    env = nmmozoo.make_env("tiny", num_maps=4, seed=0, obs_mode="compact", workers=workers,
                           early_stop_agents=10)
    try:
        td = env.reset()
        gen = torch.Generator().manual_seed(0)
        kept = []
        for _ in range(60):
            random_actions(td, generator=gen)
            step, td = env.step_and_maybe_reset(td)
            kept.append((step, step.clone()))
        assert sum(int(s["next", "done"].sum()) for s, _ in kept) >= 2
        for step, copy in kept:
            assert (step == copy).all()
    finally:
        env.close()


def test_sharded_evaluation_plays_every_held_out_map_once():
    """Shards take every ``workers``-th held-out map: together they play no map twice."""
    from nmmozoo.env.world import World

    cfg = make_config("tiny", map_pool="eval")
    shards = [World(cfg, 2, eval_offset=i, eval_stride=2) for i in range(2)]
    picked = [int(x) for w in shards for _ in range(3) for x in w._pick_seeds(2)]
    assert len(set(picked)) == len(picked) == 12  # 3 resets x 4 maps
