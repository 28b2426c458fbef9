"""The TorchRL contract of the bundled environment: specs, rollouts, resets, seeding."""

from __future__ import annotations

import pytest
import torch
from torchrl.envs.utils import check_env_specs

import nmmozoo
from nmmozoo.env import ActionError, ConfigError, expand_observation, make_config, random_actions
from nmmozoo.env import constants as C
from nmmozoo.env.terrain import EVAL_SEED_OFFSET, MapPool, chebyshev_from_center, generate_map


@pytest.mark.parametrize("preset", ["tiny", "competition2023"])
@pytest.mark.parametrize("obs_mode", ["dense", "compact"])
def test_check_env_specs(preset, obs_mode):
    env = nmmozoo.make_env(preset, num_maps=2, obs_mode=obs_mode)
    check_env_specs(env)


def test_default_keys_and_shapes():
    env = nmmozoo.make_env("competition2023", num_maps=2)
    td = env.reset()
    assert td["agents", "tile"].shape == (2, 128, 225, 3) and td["agents", "tile"].dtype == torch.int16
    assert td["agents", "entity"].shape == (2, 128, 100, 31) and td["agents", "entity"].dtype == torch.int16
    assert td["agents", "mask"].dtype == torch.bool and td["agents", "mask"].all()
    assert td["agents", "action_mask", "attack_target"].shape == (2, 128, 101)
    assert td["agents", "action_mask", "move"].shape == (2, 128, 5)
    # Every agent sees itself: its own id is in its entity rows, at its position.
    ent = td["agents", "entity"]
    own = (ent[..., C.COL["id"]] == torch.arange(1, 129, dtype=torch.int16)[:, None]).any(-1)
    assert own.all()
    # The tile window is centred on the agent.
    tile = td["agents", "tile"]
    pos = td["agents", "position"]
    assert (tile[:, :, 112, 0] == pos[..., 0]).all() and (tile[:, :, 112, 1] == pos[..., 1]).all()


@pytest.mark.parametrize("preset,maps", [("tiny", 4), ("competition2023", 2)])
def test_random_masked_rollout_300_ticks(preset, maps):
    env = nmmozoo.make_env(preset, num_maps=maps, seed=3)
    td = env.reset()
    resets = 0
    for _ in range(300):
        random_actions(td)
        td_step, td = env.step_and_maybe_reset(td)
        resets += int(td_step["next", "done"].sum())
        # masks always leave at least one option per head
        for head in td["agents", "action_mask"].keys():
            assert td["agents", "action_mask", head].any(-1).all(), head
        assert (td["agents", "stats"][..., 0] >= 0).all()  # health never negative
    if preset == "tiny":
        assert resets > 0  # tiny episodes end (horizon 256 or everyone dead) and maps reset


def test_partial_reset_resets_only_done_maps():
    env = nmmozoo.make_env("tiny", num_maps=3, seed=0, horizon=5)
    td = env.reset()
    for _ in range(5):
        random_actions(td)
        td_step, td = env.step_and_maybe_reset(td)
    assert td_step["next", "truncated"].all()
    assert (td["tick"] == 0).all()
    # Now end map 1 only: a manual partial reset.
    random_actions(td)
    td_step, td = env.step_and_maybe_reset(td)
    tick_before = td["tick"].clone()
    reset_td = td.clone()
    reset_td["_reset"] = torch.tensor([[False], [True], [False]])
    out = env.reset(reset_td)
    assert out["tick"].squeeze(-1).tolist() == [int(tick_before[0]), 0, int(tick_before[2])]


def test_seeding_reproducible():
    def run(seed):
        env = nmmozoo.make_env("tiny", num_maps=2, seed=seed)
        td = env.reset()
        gen = torch.Generator().manual_seed(7)
        for _ in range(40):
            random_actions(td, gen)
            _, td = env.step_and_maybe_reset(td)
        return td
    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a["agents", "entity"], b["agents", "entity"])
    assert torch.equal(a["agents", "tile"], b["agents", "tile"])
    assert not torch.equal(a["agents", "entity"], c["agents", "entity"])


def test_compact_expands_to_dense():
    dense = nmmozoo.make_env("tiny", num_maps=2, seed=5, obs_mode="dense")
    compact = nmmozoo.make_env("tiny", num_maps=2, seed=5, obs_mode="compact")
    td_d, td_c = dense.reset(), compact.reset()
    gen_d, gen_c = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for _ in range(30):
        random_actions(td_d, gen_d)
        random_actions(td_c, gen_c)
        _, td_d = dense.step_and_maybe_reset(td_d)
        _, td_c = compact.step_and_maybe_reset(td_c)
    tile, entity = expand_observation(td_c["material"], td_c["entity_table"], td_c["agents", "position"],
                                      td_c["agents", "entity_index"], td_c["agents", "mask"],
                                      compact.config.vision)
    assert torch.equal(tile, td_d["agents", "tile"])
    assert torch.equal(entity, td_d["agents", "entity"])


def test_action_out_of_range_is_a_clear_error():
    env = nmmozoo.make_env("tiny", num_maps=1)
    td = env.reset()
    random_actions(td)
    td["agents", "action", "move"][0, 0] = 5
    with pytest.raises(ActionError, match="'move'.*\\[0, 5\\)"):
        env.step(td)


def test_masked_but_in_range_action_is_a_noop():
    env = nmmozoo.make_env("tiny", num_maps=1, seed=0)
    td = env.reset()
    random_actions(td)
    td["agents", "action", "attack_target"][:] = 0  # row 0 is the agent's own row or empty
    env.step(td)
    assert (env.world.state.damage_taken == 0).all()


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="num_agentz"):
        make_config("tiny", num_agentz=3)
    with pytest.raises(ConfigError, match="respawn_tree"):
        make_config(respawn_tree=1.5)
    with pytest.raises(ConfigError, match="unknown env preset 'huge'"):
        make_config("huge")
    with pytest.raises(ConfigError, match="map_border"):
        make_config(map_border=4)
    with pytest.raises(ConfigError, match="horizon"):
        make_config(horizon="long")


def test_terrain_layout_and_proportions():
    cfg = make_config()
    d = chebyshev_from_center(cfg)
    m = generate_map(cfg, 1)
    assert (m[d > 64] == C.VOID).all() and (m[d == 64] == C.GRASS).all()
    inner = m[d == 63]
    assert not ((inner == C.STONE) | (inner == C.WATER)).any()
    inside = m[d <= 64]
    frac = torch.bincount(inside.long(), minlength=16).float() / inside.numel()
    assert 0.15 < frac[C.WATER] + frac[C.FISH] < 0.35
    assert 0.30 < frac[C.GRASS] + frac[C.HERB] < 0.55
    assert (inside == C.HERB).sum() == 256 and (inside == C.FISH).sum() == 256
    for res in (C.ORE, C.TREE, C.CRYSTAL):
        assert 64 <= (inside == res).sum() <= 5 * 64
    assert torch.equal(m, generate_map(cfg, 1)) and not torch.equal(m, generate_map(cfg, 2))


def test_fish_next_to_grass():
    cfg = make_config()
    m = generate_map(cfg, 3)
    fish = (m == C.FISH).nonzero()
    for r, c in fish[:50].tolist():
        assert any(m[r + dr, c + dc] == C.GRASS for dr, dc in C.MOVE_DELTAS[:4])


def test_train_and_eval_pools_are_disjoint():
    cfg = make_config("tiny")
    train, ev = MapPool(cfg).seeds("train"), MapPool(cfg).seeds("eval")
    assert not set(train.tolist()) & set(ev.tolist())
    assert ev.min() >= EVAL_SEED_OFFSET
    env = nmmozoo.make_env("tiny", num_maps=4, map_pool="eval")
    env.reset()
    assert (env.world.state.map_seed >= EVAL_SEED_OFFSET).all()
    assert env.world.state.map_seed.unique().numel() == 4  # every held-out map in turn


def test_early_stop():
    env = nmmozoo.make_env("tiny", num_maps=1, early_stop_agents=15, seed=0)
    td = env.reset()
    env.world.state.health[0, 0] = 0  # will be removed this tick
    env.world.state.food[0, 0] = 0
    random_actions(td)
    out = env.step(td)
    assert out["next", "truncated"].all() and out["next", "done"].all()


def test_collector_runs_over_env():
    from torchrl.collectors import Collector
    from tensordict.nn import TensorDictModule

    env = nmmozoo.make_env("tiny", num_maps=2, seed=0)

    from nmmozoo.env import ACTION_HEADS, sample_masked

    class Random(torch.nn.Module):
        def forward(self, *masks):
            return tuple(sample_masked(m) for m in masks)

    policy = TensorDictModule(
        Random(), in_keys=[("agents", "action_mask", h) for h in ACTION_HEADS],
        out_keys=[("agents", "action", h) for h in ACTION_HEADS])
    collector = Collector(env, policy, frames_per_batch=2 * 20, total_frames=2 * 60,
                          auto_register_policy_transforms=False)
    n = 0
    for batch in collector:
        assert batch["next", "agents", "reward"].shape[-2:] == (16, 1)
        n += 1
    collector.shutdown()
    assert n == 3


def test_item_system_off():
    env = nmmozoo.make_env("tiny", num_maps=2, seed=0, item_system=False)
    check_env_specs(env)
    td = env.reset()
    for _ in range(30):
        random_actions(td)
        _, td = env.step_and_maybe_reset(td)
        assert td["agents", "inventory"].abs().sum() == 0 and td["market"].abs().sum() == 0
        assert td["agents", "action_mask", "buy_item"].sum(-1).eq(1).all()
        assert td["agents", "action_mask", "buy_item"][..., -1].all()


def test_cuda_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")  # the check only matters where it is absent
    with pytest.raises(ValueError, match="CUDA is not available"):
        nmmozoo.make_env("tiny", num_maps=1, device="cuda")


@pytest.mark.parametrize("field, value, message", [
    ("num_herbs", -3, "'num_herbs': expected an integer ≥ 0"),
    ("horizon", 40000, "'horizon': expected in \\[1, 32767\\)"),
    ("damage_scale", 0, "'damage_scale': expected ≥ 1"),
    ("num_agents", 200, "'num_agents': expected ≤ 128"),
])
def test_out_of_range_settings_are_config_errors(field, value, message):
    with pytest.raises(ConfigError, match=message):
        nmmozoo.make_env("tiny", num_maps=1, tasks="none", **{field: value})


def test_a_misshapen_action_is_an_action_error():
    env = nmmozoo.make_env("tiny", num_maps=1, tasks="none", seed=None)
    td = random_actions(env.reset())
    td["agents", "action", "move"] = td["agents", "action", "move"][..., None]
    with pytest.raises(ActionError, match=r"'move'\) must have shape \(1, 16\)"):
        env.step(td)


def test_npc_ids_stay_within_int16():
    """NPC serials cycle through 1..32767, so the int16 entity table never wraps an id."""
    from nmmozoo.env import npc

    env = nmmozoo.make_env("tiny", num_maps=2, seed=0, obs_mode="compact")
    env.reset()
    w, P = env.world, env.config.num_agents
    s = w.state
    s.alive[:, P:] = False
    s.next_npc_id[:] = 32760
    npc.spawn(s, w.cfg, w.gen, w.passable, maps=torch.ones(2, dtype=torch.bool))
    ids = s.ent_id[:, P:][s.alive[:, P:]]
    assert len(ids) > 7  # some serials went past 32767 and cycled
    assert bool((ids < 0).all()) and bool((ids >= -32767).all())
    assert all(len(set(m.tolist())) == len(m) for m in (s.ent_id[b, P:][s.alive[b, P:]] for b in range(2)))
    table = w.observe()["entity_table"]
    assert torch.equal(table[:, P:-1, C.COL["id"]].long(), (s.ent_id[:, P:] * s.alive[:, P:]).long())


@pytest.mark.parametrize("map_size", [160, 240])  # int8 and int16 visibility arithmetic
def test_visible_pairs_match_a_brute_force_check(map_size):
    """Every (agent, entity) pair within vision of two live ones, nothing else, in order."""
    env = nmmozoo.make_env("competition2023", num_maps=2, seed=1, obs_mode="compact",
                           map_size=map_size, num_npcs=64)
    td = env.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        random_actions(td, generator=gen)
        _, td = env.step_and_maybe_reset(td)
    w, P = env.world, env.config.num_agents
    s, v = w.state, env.config.vision
    row, ent, dist = w.observer.visible_pairs(s)
    b, p = row // P, row % P
    d_r = (s.row[:, :P, None] - s.row[:, None, :]).abs()
    d_c = (s.col[:, :P, None] - s.col[:, None, :]).abs()
    cheb = torch.maximum(d_r, d_c)
    want = (cheb <= v) & s.alive[:, :P, None] & s.alive[:, None, :]
    wb, wp, we = want.nonzero(as_tuple=True)
    assert torch.equal(row, wb * P + wp) and torch.equal(ent, we)
    assert torch.equal(dist.long(), cheb[b, p, ent])
