"""Exact resume: an env's saved state (``nmmozoo.env.env_state``) loaded into a freshly built
env makes every later step and reset the same as the original's, random draws included."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDictBase

import nmmozoo
from nmmozoo.env import (
    EnvStateError,
    NMMOEnv,
    env_state,
    load_env_state,
    random_actions,
)
from nmmozoo.recipe import load_recipe, make_recipe_env
from nmmozoo.train.ppo import make_train_env


def _leaves(td: TensorDictBase) -> dict:
    return {k: v for k, v in td.items(include_nested=True, leaves_only=True)}


def _assert_same(a: TensorDictBase, b: TensorDictBase, where: str) -> None:
    la, lb = _leaves(a), _leaves(b)
    assert set(la) == set(lb), f"{where}: keys differ: {set(la) ^ set(lb)}"
    for k in la:
        assert la[k].dtype == lb[k].dtype and torch.equal(la[k], lb[k]), f"{where}: {k} differs"


def _run(env, td, actions):
    """Step with the given actions; every step's full output and the carried tensordict."""
    out = []
    for a in actions:
        td.set(("agents", "action"), a.clone())
        step, td = env.step_and_maybe_reset(td)
        out.append((step.clone(), td.clone()))
    return out


def _roundtrip(state, tmp_path):
    path = tmp_path / "env_state.pt"
    torch.save(state, path)
    return torch.load(path, weights_only=True)


def _observer_caches(env) -> list[torch.Tensor]:
    base = getattr(env, "base_env", env)
    if base.workers != 1:  # in the workers
        return []
    obs = base.world.observer
    return [obs.slots.clone(), obs.market_rows.clone(), *(t.clone() for t in obs.pairs)]


def _check_resume(build, tmp_path, warmup: int, ticks: int, min_resets: int = 1):
    """Warm up ``warmup`` ticks, save, run ``ticks`` more recording everything; then a fresh
    env loads the saved state (through a file) and replays the same actions."""
    env = build()
    td = env.reset()
    gen = torch.Generator().manual_seed(1234)
    for _ in range(warmup):
        random_actions(td, gen)
        _, td = env.step_and_maybe_reset(td)
    state = _roundtrip(env_state(env, carry=td), tmp_path)
    caches = _observer_caches(env)
    # Draw the actions of the continuation, then record it.
    actions, probe = [], td.clone()
    recorded = []
    for _ in range(ticks):
        random_actions(probe, gen)
        actions.append(probe.get(("agents", "action")).clone())
        step, probe = env.step_and_maybe_reset(probe)
        recorded.append((step.clone(), probe.clone()))
    resets = sum(int(s["next", "done"].sum()) for s, _ in recorded)
    assert resets >= min_resets, "the continuation should cross an episode end"

    fresh = build()
    carry = load_env_state(fresh, state)
    assert carry is not None
    _assert_same(carry, td, "carry")
    # The observer's caches (what actions refer to: entity rows, market rows; what NPCs see)
    # are rebuilt from the state, not saved: the same as the original's at the save.
    for name, (a, b) in enumerate(zip(caches, _observer_caches(fresh))):
        assert torch.equal(a, b), f"observer cache {name}"
    replay = _run(fresh, carry, actions)
    for t, ((s0, c0), (s1, c1)) in enumerate(zip(recorded, replay)):
        _assert_same(s0, s1, f"tick {t} step")
        _assert_same(c0, c1, f"tick {t} carry")
    # And the states agree at the end.
    a, b = env_state(env), env_state(fresh)
    for k, v in a["env"].items():
        if torch.is_tensor(v):
            assert torch.equal(v, b["env"][k]), k
        else:
            assert v == b["env"][k], k
    return env, state, fresh


@pytest.mark.parametrize("maps", [1, 2])
def test_competition_resume_is_exact(maps, tmp_path):
    build = lambda: nmmozoo.make_env("competition2023", num_maps=maps, seed=5, horizon=6)
    _check_resume(build, tmp_path, warmup=4, ticks=8)


@pytest.mark.parametrize("obs_mode", ["dense", "compact"])
def test_tiny_resume_is_exact(obs_mode, tmp_path):
    build = lambda: nmmozoo.make_env("tiny", num_maps=3, seed=2, horizon=10,
                                     obs_mode=obs_mode)
    _check_resume(build, tmp_path, warmup=7, ticks=12)


def test_tiny_resume_with_npc_memories_and_heldout_schedule(tmp_path):
    """The held-out pool's cursor and the task schedule's cursor are restored too."""
    build = lambda: nmmozoo.make_env("tiny", num_maps=2, seed=0, horizon=5, map_pool="eval",
                                     tasks="heldout")
    _check_resume(build, tmp_path, warmup=3, ticks=9)


@pytest.mark.parametrize("recipe,memory", [("takeru", None), ("baseline", (8,)), ("yaofeng", None)])
def test_recipe_train_env_resume_is_exact(recipe, memory, tmp_path):
    """The trainer's env: reward shaping (with the meander memory for ``baseline``), the last
    sell price mask, task ids, the episode return and a recurrent state in the carry."""
    over = {"num_maps": 1, "horizon": 8}
    build = lambda: make_train_env(load_recipe(recipe), seed=0, env_overrides=over,
                                   memory=memory)
    _, state, _ = _check_resume(build, tmp_path, warmup=5, ticks=10)
    names = state["transform_names"]
    assert any("RewardShaping" in n for n in names) and any("LastSellPriceMask" in n for n in names)
    assert any("TaskIds" in n for n in names) and any("RewardSum" in n for n in names)


def _plain(x, path="state"):
    """Only tensors and plain Python values (what weights_only loading accepts by design)."""
    if torch.is_tensor(x):
        assert type(x) is torch.Tensor, path
        assert x.device.type == "cpu", path
    elif isinstance(x, dict):
        for k, v in x.items():
            assert isinstance(k, str), path
            _plain(v, f"{path}[{k!r}]")
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            _plain(v, f"{path}[{i}]")
    else:
        assert x is None or isinstance(x, (bool, int, float, str)), (path, type(x))


def test_state_is_plain_data_and_survives_a_file(tmp_path):
    env = make_train_env(load_recipe("baseline"), seed=0, env_overrides={"num_maps": 1})
    td = env.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        random_actions(td, gen)
        _, td = env.step_and_maybe_reset(td)
    state = env_state(env, carry=td)
    _plain(state)
    back = _roundtrip(state, tmp_path)
    _plain(back)
    assert set(back["env"]) == set(state["env"])
    for k, v in state["env"].items():
        assert torch.equal(v, back["env"][k]) if torch.is_tensor(v) else v == back["env"][k]
    # The pieces: the world's tensors, the generator, the tasks, the transforms' states.
    assert "state.health" in back["env"] and "generator.gen" in back["env"]
    assert "tasks.task_id" in back["env"]
    assert any(k.endswith("_extra_state") for k in back["transforms"])
    # Saving does not disturb the env: the state is a copy.
    before = env_state(env)["env"]["state.health"].clone()
    random_actions(td, gen)
    env.step_and_maybe_reset(td)
    assert torch.equal(back["env"]["state.health"], before)


def test_bare_env_state_dict_methods(tmp_path):
    """``NMMOEnv.state_dict`` / ``load_state_dict`` on their own (no transforms, no carry)."""
    env = nmmozoo.make_env("tiny", num_maps=2, seed=9)
    td = env.reset()
    gen = torch.Generator().manual_seed(3)
    for _ in range(4):
        random_actions(td, gen)
        _, td = env.step_and_maybe_reset(td)
    sd = env.state_dict()
    assert isinstance(env, NMMOEnv) and "meta" in sd
    fresh = nmmozoo.make_env("tiny", num_maps=2, seed=123)
    fresh.load_state_dict(_roundtrip(sd, tmp_path))
    assert load_env_state(nmmozoo.make_env("tiny", num_maps=2), env_state(env)) is None  # no carry
    random_actions(td, gen)
    a = env.step(td.clone())
    b = fresh.step(td.clone())
    _assert_same(a, b, "step after load")


def _tiny_state(**over):
    env = nmmozoo.make_env("tiny", num_maps=2, seed=0, **over)
    td = env.reset()
    random_actions(td, torch.Generator().manual_seed(0))
    env.step(td)
    return env_state(env)


def test_mismatches_are_clear_errors():
    state = _tiny_state()
    with pytest.raises(EnvStateError, match="'horizon'"):
        load_env_state(nmmozoo.make_env("tiny", num_maps=2, horizon=7), state)
    with pytest.raises(EnvStateError, match="'num_npcs'"):
        load_env_state(nmmozoo.make_env("tiny", num_maps=2, num_npcs=3), state)
    with pytest.raises(EnvStateError, match="'map_size'"):
        load_env_state(nmmozoo.make_env("competition2023", num_maps=2), state)
    with pytest.raises(EnvStateError, match="num_maps"):
        load_env_state(nmmozoo.make_env("tiny", num_maps=3), state)
    with pytest.raises(EnvStateError, match="obs_mode"):
        load_env_state(nmmozoo.make_env("tiny", num_maps=2, obs_mode="compact"), state)
    # A damaged entry is named.
    bad = {**state, "env": dict(state["env"])}
    bad["env"]["state.health"] = bad["env"]["state.health"][:, :3]
    with pytest.raises(EnvStateError, match="'state.health'"):
        load_env_state(nmmozoo.make_env("tiny", num_maps=2), bad)
    bad["env"] = dict(state["env"])
    bad["env"]["state.health"] = bad["env"]["state.health"].long()
    with pytest.raises(EnvStateError, match="'state.health'.*dtype"):
        load_env_state(nmmozoo.make_env("tiny", num_maps=2), bad)
    bad["env"] = {k: v for k, v in state["env"].items() if k != "state.gold"}
    with pytest.raises(EnvStateError, match="state.gold"):
        load_env_state(nmmozoo.make_env("tiny", num_maps=2), bad)
    bad["env"] = dict(state["env"])
    bad["env"]["generator.gen"] = torch.zeros(16, dtype=torch.uint8)
    with pytest.raises(EnvStateError, match="'generator.gen'"):
        load_env_state(nmmozoo.make_env("tiny", num_maps=2), bad)
    # An error leaves the env as it was (everything is checked before anything changes).
    target = nmmozoo.make_env("tiny", num_maps=2)
    target.reset()
    health = target.world.state.health.clone()
    with pytest.raises(EnvStateError):
        load_env_state(target, bad)
    assert torch.equal(target.world.state.health, health)
    with pytest.raises(EnvStateError, match="format"):
        load_env_state(nmmozoo.make_env("tiny", num_maps=2), {"env": {}})


def test_transform_mismatches_are_clear_errors():
    recipe = load_recipe("takeru")
    over = {"num_maps": 1}
    state = env_state(make_train_env(recipe, seed=0, env_overrides=over))
    # The recipe's env without the trainer's transforms.
    with pytest.raises(EnvStateError, match="TaskIds"):
        load_env_state(make_recipe_env(recipe, **over), state)
    # A bare env's state into a transformed one.
    bare = env_state(nmmozoo.make_env("competition2023", num_maps=1, map_pool_size=1280,
                                      early_stop_agents=0))
    with pytest.raises(EnvStateError, match="RewardShaping"):
        load_env_state(make_train_env(recipe, seed=0, env_overrides=over), bare)
    # Other reward terms.
    other = load_recipe("takeru", {"rewards": [{"name": "heal", "weight": 1.0}]})
    with pytest.raises(EnvStateError, match="Explore"):
        load_env_state(make_train_env(other, seed=0, env_overrides=over), state)
    # Another task set.
    tiny = env_state(nmmozoo.make_env("tiny", num_maps=1, tasks="none"))
    with pytest.raises(EnvStateError, match="'tasks'"):
        load_env_state(nmmozoo.make_env("tiny", num_maps=1), tiny)


def test_sharded_env_resume_is_exact(tmp_path):
    build = lambda: nmmozoo.make_env("tiny", num_maps=4, seed=1, horizon=6, workers=2)
    env, state = None, None
    try:
        env, state, fresh = _check_resume(build, tmp_path, warmup=3, ticks=6)
        fresh.close()
        assert any(k.startswith("worker1.") for k in state["env"])
        with pytest.raises(EnvStateError, match="workers"):
            load_env_state(nmmozoo.make_env("tiny", num_maps=4, horizon=6), state)
    finally:
        if env is not None:
            env.close()
