"""Held-out evaluation: whole episodes on the evaluation map pool, random or policy."""

from __future__ import annotations

import pytest

import nmmozoo
from nmmozoo.evaluate import evaluate


def test_random_policy_on_heldout_tasks_gives_the_category_score():
    r = evaluate(None, preset="tiny", tasks="heldout", num_maps=2, episodes=2, horizon=12, num_npcs=4)
    assert r["agent_episodes"] == 2 * 2 * 16
    assert r["lifespan"] == 12.0  # nobody can die in 12 ticks (food, water, spawn immunity)
    assert set(r["by_category"]) <= {"survival", "combat", "exploration", "skill", "item", "market"}
    assert 0.0 <= r["score"]["total"] <= 100.0 and 0.0 <= r["completion"] <= 1.0


def test_recurrent_policy_evaluates_with_its_memory():
    p = nmmozoo.create_policy("yaofeng_tiny", config=nmmozoo.make_config("tiny"), task_dim=384)
    r = evaluate(p, preset="tiny", tasks="curriculum", num_maps=2, horizon=8, num_npcs=4)
    assert r["agent_episodes"] == 32 and r["lifespan"] == 8.0
    with pytest.raises(ValueError, match="episodes and num_maps must be ≥ 1"):
        evaluate(None, preset="tiny", episodes=0)


def test_task_ids_at_an_episode_end_are_the_ended_episode_tasks():
    """The map resets (and re-assigns tasks in place) right after its last step: the
    ("agents","task_id") recorded with that step must still be the ended episode's."""
    import torch
    from torchrl.envs import TransformedEnv

    from nmmozoo.env import make_env, random_actions
    from nmmozoo.train.metrics import TaskIds

    env = make_env("tiny", num_maps=2, tasks="curriculum", num_npcs=4, horizon=3)
    t = TransformedEnv(env, TaskIds())
    td = t.reset()
    for _ in range(3):
        before = env.world.tasks.task_id.clone()
        random_actions(td)
        step, td = t.step_and_maybe_reset(td)
    assert step["next", "done"].all()
    assert torch.equal(step["next", "agents", "task_id"], before)
    assert not torch.equal(td["agents", "task_id"], before)  # the new episodes' tasks


def test_evaluate_without_tasks():
    """tasks="none": lifespans only, no task wrapper (used to fail on a missing base_env)."""
    from nmmozoo.evaluate import evaluate

    out = evaluate(None, preset="tiny", tasks="none", num_maps=1, episodes=1, seed=0,
                   num_npcs=0, horizon=32)
    assert out["lifespan"] > 0 and out["agent_episodes"] > 0
