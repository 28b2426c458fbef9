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
