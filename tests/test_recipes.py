"""Recipes and reward shaping: every recipe loads, builds its env (tiny) and model, and its
shaped rewards flow through a rollout; terms on constructed values; clear errors."""

from __future__ import annotations

import pytest
import torch

import nmmozoo
from nmmozoo.nn.registry import SpecError
from nmmozoo.recipe import list_recipes, load_recipe, make_recipe_env, make_recipe_policy, ppo_config
from nmmozoo.rewards import RewardShaping


def test_the_recipes_are_shipped():
    assert {"baseline", "takeru", "yaofeng", "saidinesh", "mori", "jimyhzhu", "demo"} <= set(list_recipes())


@pytest.mark.parametrize("name", ["baseline", "takeru", "yaofeng", "saidinesh", "mori", "jimyhzhu", "demo"])
def test_recipe_builds_and_shapes_rewards(name):
    r = load_recipe(name)
    ppo_config(r)
    env = make_recipe_env(r, preset="tiny", num_maps=2, map_pool_size=4)
    model = r["model"] if "tiny" in r["model"].rpartition("_")[2] else f"{r['model']}_tiny"
    policy = nmmozoo.create_policy(model, env=env.base_env)
    td = env.reset()
    total_env, total = 0.0, 0.0
    for _ in range(20):
        policy.act(td)
        step, td = env.step_and_maybe_reset(td)
        rew = step["next", "agents", "reward"]
        assert torch.isfinite(rew).all()
        if r.get("rewards"):
            total_env += float(step["next", "agents", "env_reward"].sum())
        total += float(rew.sum())
    if r.get("rewards"):
        assert total != total_env  # the terms did something


def test_reward_terms_on_known_changes():
    env = make_recipe_env({"model": "baseline_tiny", "_path": "t",
                           "rewards": [{"name": "heal", "weight": 1.0},
                                       {"name": "gold_change", "weight": 10.0}]},
                          preset="tiny", num_maps=1, num_npcs=0)
    td = env.reset()
    w = env.base_env.world
    w.state.health[0, :16] = 50
    w.state.food[0, :16] = 90
    w.state.water[0, :16] = 90
    env.transform._before["agents", "stats"][..., 0] = 50
    w.state.gold[0, 3] += 2
    nmmozoo.env.random_actions(td)
    td["agents", "action", "give_gold_target"][:] = 100  # no gifts
    step = env.step(td)
    bonus = step["next", "agents", "reward"] - step["next", "agents", "env_reward"]
    assert bonus[0, 0, 0] == pytest.approx(1.0)  # healed 50 -> 60
    assert bonus[0, 3, 0] == pytest.approx(1.0 + 20.0)  # and 2 more gold


def test_bad_recipes_name_the_key(tmp_path):
    with pytest.raises(SpecError, match="ppo.lrr is not a PPO setting"):
        load_recipe("demo", {"ppo.lrr": 1})
    with pytest.raises(SpecError, match="ppo.epochs expected int"):
        load_recipe("demo", {"ppo.epochs": "two"})
    with pytest.raises(SpecError, match="unknown section"):
        load_recipe({"model": "baseline", "optimiser": {}})
    with pytest.raises(SpecError, match=r"rewards\[0\].name: unknown reward 'fun'"):
        make_recipe_env(load_recipe("demo", {"rewards": [{"name": "fun", "weight": 1}]}), num_maps=1)
    with pytest.raises(SpecError, match=r"rewards\[0\]: expected"):
        RewardShaping([{"name": "heal"}])
    with pytest.raises(SpecError, match="env: env config field 'num_npcs'"):
        make_recipe_env(load_recipe("demo", {"env.num_npcs": -1}))
    with pytest.raises(SpecError, match="not found"):
        load_recipe(tmp_path / "none.yaml")
    with pytest.raises(SpecError, match=r"ppo.bptt must be ≥ 1, got 0"):
        ppo_config(load_recipe("demo", {"ppo.bptt": 0}))
    with pytest.raises(SpecError, match=r"ppo.minibatch_steps \(8192\) must not exceed"):
        ppo_config(load_recipe("demo", {"ppo.minibatch_steps": 8192}))


@pytest.mark.parametrize("field,value,rule", [
    ("max_grad_norm", -1, "> 0"), ("max_grad_norm", 0, "> 0"), ("gamma", 1.5, r"in \[0, 1\]"),
    ("gae_lambda", 2, r"in \[0, 1\]"), ("clip", 0, "> 0"), ("lr", 0, "> 0"), ("lr", float("nan"), "> 0"),
    ("epochs", 0, "≥ 1"), ("rollout_steps", -8, "≥ 1"), ("total_steps", 0, "≥ 1"),
    ("entropy_coef", -0.1, "≥ 0"), ("value_coef", -1, "≥ 0"), ("collector_workers", -1, "≥ 0")])
def test_ppo_ranges_are_checked_naming_recipe_and_field(field, value, rule):
    from nmmozoo.recipe import PPOConfig

    with pytest.raises(SpecError, match=rf"demo.yaml: ppo.{field} must be {rule}, got"):
        load_recipe("demo", {f"ppo.{field}": value})
    with pytest.raises(ValueError, match=rf"ppo.{field} must be {rule}"):
        PPOConfig(**{field: value})  # where the settings are defined, not only in the loader


def test_ppo_range_edges_are_accepted():
    cfg = ppo_config(load_recipe("demo", {"ppo.value_coef": 0, "ppo.entropy_coef": 0, "ppo.gamma": 1,
                                          "ppo.gae_lambda": 0, "ppo.collector_workers": 0}))
    assert cfg.value_coef == 0 and cfg.gamma == 1


def test_recipe_policy():
    r = load_recipe("demo")
    env = make_recipe_env(r, num_maps=1)
    p = make_recipe_policy(r, env)
    assert p.name == "baseline_tinycorrected"
    r2 = load_recipe("demo", {"model": {"name": "baseline_tiny", "hidden": 8}})
    assert make_recipe_policy(r2, env).spec["hidden"] == 8


def test_recipe_errors_and_overrides_stay_local():
    from nmmozoo.nn.registry import SpecError
    from nmmozoo.recipe import load_recipe, make_recipe_env

    src = {"model": "baseline_tiny", "ppo": {"lr": 1.0}}
    load_recipe(src, {"ppo.lr": 5e-5})
    assert src["ppo"]["lr"] == 1.0  # the caller's dict is untouched
    with pytest.raises(SpecError, match="override 'model.hidden': 'model' is not a mapping"):
        load_recipe({"model": "baseline"}, {"model.hidden": 64})
    bad = {"model": "baseline_tiny", "env": {"preset": "tiny", "num_maps": 1},
           "rewards": [{"name": "meander", "window": 0, "weight": 1}]}
    with pytest.raises(SpecError, match=r"rewards\[0\]: window: expected ≥ 1"):
        make_recipe_env(load_recipe(bad))


def test_full_reset_gives_meander_a_fresh_empty_history():
    import torch

    from nmmozoo.env import random_actions
    from nmmozoo.recipe import load_recipe, make_recipe_env

    env = make_recipe_env(load_recipe({"model": "baseline_tiny", "env": {"preset": "tiny", "num_maps": 1},
                                       "rewards": [{"name": "meander", "weight": 1}]}))
    td = random_actions(env.reset())
    td["agents", "action", "move"] = torch.zeros_like(td["agents", "action", "move"])
    env.step(td)
    env.reset()
    hist = env.transform.memory[0]["moves"]
    assert (hist == -1).all()  # no move recorded: nothing pre-filled (2.0's list starts empty)
    assert (env.transform.memory[0]["count"] == 0).all()


def test_last_sell_price_is_masked_as_the_2023_wrappers_did():
    """`env.mask_last_sell_price` (every 2023 recipe): the sell price index an agent chose on
    its last action (0 after a reset) is removed from its next sell-price mask."""
    import nmmozoo

    r = load_recipe("baseline", {"model": "baseline_tiny", "env.preset": "tiny", "env.num_maps": 2,
                                 "env.num_npcs": 4})
    assert r["env"]["mask_last_sell_price"] is True
    env = make_recipe_env(r)
    plain = make_recipe_env(load_recipe("baseline", {"env.preset": "tiny", "env.num_maps": 2, "env.num_npcs": 4,
                                                     "env.mask_last_sell_price": False}))
    td, ref = env.reset(), plain.reset()
    key = ("agents", "action_mask", "sell_price")
    assert not td[key][..., 0].any() and ref[key][..., 0].all()
    assert torch.equal(td[key][..., 1:], ref[key][..., 1:])
    gen = torch.Generator().manual_seed(0)
    nmmozoo.env.random_actions(td, gen)
    chosen = torch.randint(0, td[key].shape[-1], td[key].shape[:-1], generator=gen)
    td["agents", "action", "sell_price"] = chosen
    _, td = env.step_and_maybe_reset(td)
    mask = td[key]
    alive = td["agents", "mask"]
    picked = mask.gather(-1, chosen[..., None])[..., 0]
    assert not picked[alive].any()
    assert int(mask[alive].sum()) == int(alive.sum()) * (mask.shape[-1] - 1)
    with pytest.raises(SpecError, match="mask_last_sell_price: expected true or false"):
        make_recipe_env(load_recipe("demo", {"env.mask_last_sell_price": "yes"}), num_maps=1)


def test_a_recipe_may_interpolate_and_overrides_reach_the_interpolations(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text("model: baseline_tiny\n"
                 "env: {preset: tiny, num_maps: 2, num_npcs: 4}\n"
                 "ppo: {lr: 1e-4, rollout_steps: 512, minibatch_steps: '${ppo.rollout_steps}',\n"
                 "      collector_workers: '${env.num_maps}'}\n"
                 "trainer: {log_every_n_steps: '${env.num_npcs}'}\n")
    r = load_recipe(f)
    assert r["ppo"] == {"lr": 1e-4, "rollout_steps": 512, "minibatch_steps": 512, "collector_workers": 2}
    assert r["trainer"] == {"log_every_n_steps": 4} and isinstance(r["env"], dict)
    cfg = ppo_config(r)
    assert cfg.minibatch_steps == 512 and cfg.collector_workers == 2
    assert make_recipe_env(r).base_env.batch_size == torch.Size([2])
    # an override changes what interpolates it; the file is read afresh each time
    r4 = load_recipe(f, {"env.num_maps": 4, "ppo.rollout_steps": 1024})
    assert r4["ppo"]["collector_workers"] == 4 and r4["ppo"]["minibatch_steps"] == 1024
    assert load_recipe(f)["ppo"]["collector_workers"] == 2
    # a key that is not there: the file, the key and the missing reference
    f.write_text(f.read_text().replace("${env.num_maps}", "${env.num_mapz}"))
    with pytest.raises(SpecError, match=r"my\.yaml: ppo\.collector_workers: .*'env\.num_mapz' not found"):
        load_recipe(f)


def test_dotlist_overrides_and_typed_ppo_settings():
    r = load_recipe("demo", ["ppo.lr=1e-4", "env.num_maps=2", "ppo.anneal_lr=false",
                             "model={name: baseline_tiny, hidden: 8}"])
    assert r["ppo"]["lr"] == 1e-4 and r["ppo"]["anneal_lr"] is False and r["env"]["num_maps"] == 2
    assert r["model"] == {"name": "baseline_tiny", "hidden": 8}
    assert r["env"]["preset"] == "tiny"  # the rest of the section stays
    assert load_recipe("demo", ["ppo.lr=1e-4"]) == load_recipe("demo", {"ppo.lr": 1e-4})
    # OmegaConf's conversions that keep the value (a numeric string, an int for a float) ...
    typed = load_recipe("demo", {"ppo.lr": "3e-4", "ppo.epochs": "2", "ppo.clip": 1})["ppo"]
    assert typed["lr"] == 3e-4 and typed["epochs"] == 2 and typed["clip"] == 1.0
    assert isinstance(typed["clip"], float)
    # ... but none that invents one
    with pytest.raises(SpecError, match=r"demo\.yaml: ppo\.anneal_lr expected bool, got 1"):
        load_recipe("demo", {"ppo.anneal_lr": 1})
    with pytest.raises(SpecError, match=r"demo\.yaml: ppo\.epochs expected int, got 1\.5"):
        load_recipe("demo", {"ppo.epochs": 1.5})
    with pytest.raises(SpecError, match="override 'ppo.lr': expected key=value"):
        load_recipe("demo", ["ppo.lr"])
    with pytest.raises(SpecError, match=r"ppo\.lrr, ppo\.lrs are not PPO settings"):
        load_recipe("demo", {"ppo.lrr": 1, "ppo.lrs": 2})


def test_a_whole_section_override_replaces_the_section():
    """``{"ppo": {...}}`` (what the trainer's arguments pass) is the new section, as before."""
    r = load_recipe("demo", {"ppo": {"clip": 0.2}})
    assert r["ppo"] == {"clip": 0.2}
