"""The model zoo: every registered model builds, runs and acts validly on both presets; golden
outputs; the 2023 baseline's layer shapes; spec errors; the hub's save/load and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import nmmozoo
from nmmozoo.env import ACTION_HEADS
from nmmozoo.hub import HubError, load_pretrained, save_pretrained, sha256_of
from nmmozoo.nn.registry import SpecError, list_components
from nmmozoo.policy import create_policy, list_models, resolve_spec

GOLDEN = Path(__file__).parent / "golden" / "zoo.json"
MODELS = list_models()


def golden_batch():
    """A fixed tiny-preset observation: seed 0, three ticks of seeded random actions."""
    env = nmmozoo.make_env("tiny", num_maps=2, seed=0)
    td = env.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        nmmozoo.env.random_actions(td, gen)
        _, td = env.step_and_maybe_reset(td)
    return env, td


@pytest.fixture(scope="module")
def tiny_batch():
    return golden_batch()


@pytest.fixture(scope="module")
def competition_batch():
    env = nmmozoo.make_env("competition2023", num_maps=1, seed=0)
    td = env.reset()
    nmmozoo.env.random_actions(td, torch.Generator().manual_seed(0))  # the same batch in any test order
    _, td = env.step_and_maybe_reset(td)
    return env, td


def _check_actions(td):
    for h in ACTION_HEADS:
        a = td["agents", "action", h]
        m = td["agents", "action_mask", h]
        assert m.gather(-1, a[..., None]).all(), h


@pytest.mark.parametrize("name", MODELS)
def test_model_builds_and_acts(name, tiny_batch, competition_batch):
    for env, td in (tiny_batch, competition_batch):
        if not name.endswith("_tiny") and env.config.num_agents == 16:
            continue  # full models on the competition batch; tiny ones on both
        torch.manual_seed(0)
        policy = create_policy(name, env=env)
        td = td.clone()
        policy.act(td)
        _check_actions(td)
        assert torch.isfinite(td["agents", "sample_log_prob"]).all()
        assert td["agents", "state_value"].shape == (*td["agents", "mask"].shape, 1)


def _fingerprint(name, env, td):
    torch.manual_seed(0)
    policy = create_policy(name, env=env)
    with torch.no_grad():
        out = policy.network(td.clone())
    value = out["value"]
    move = out["logits"]["move"].softmax(-1)
    return {"value_sum": float(value.sum()), "value_0": float(value.flatten()[0]),
            "move_prob_0": [round(float(x), 6) for x in move.flatten(0, -2)[0]],
            "params": policy.num_parameters()}


@pytest.mark.parametrize("name", [m for m in MODELS if m.endswith("_tiny")])
def test_golden_outputs(name, tiny_batch):
    """Pins each tiny model's output on a fixed input (same seed, same observation)."""
    env, td = tiny_batch
    got = _fingerprint(name, env, td)
    golden = json.loads(GOLDEN.read_text())
    assert name in golden, f"no golden entry for {name}: run tests/golden/make_golden.py"
    want = golden[name]
    assert got["params"] == want["params"]
    assert got["value_sum"] == pytest.approx(want["value_sum"], rel=1e-4, abs=1e-4)
    assert got["value_0"] == pytest.approx(want["value_0"], rel=1e-4, abs=1e-5)
    assert got["move_prob_0"] == pytest.approx(want["move_prob_0"], abs=1e-5)


def test_baseline_has_the_2023_layer_shapes():
    """A quick look at the public layout (tests/test_fidelity_baseline.py checks every layer)."""
    p = create_policy("baseline", task_dim=4096)
    shapes = {k: tuple(v.shape) for k, v in p.state_dict().items()}
    assert shapes["tile.embed.weight"] == (3 * 256, 32)  # one 256-row block per column
    assert shapes["tile.fc.weight"] == (256, 968)  # 8 channels x 11 x 11
    assert shapes["tile.conv1.weight"] == (32, 96, 3, 3)
    assert shapes["entity.embed.weight"] == (31 * 256, 32)
    assert shapes["entity.agent_fc.weight"] == (256, 992)  # 31 attributes x 32
    assert shapes["entity.my_agent_fc.weight"] == (256, 992)
    assert shapes["item.embed.weight"] == (256, 32)  # shared by type and equipped
    assert shapes["item.fc.weight"] == (256, 76)  # 2 x 32 embedded + 12 numeric
    assert shapes["inventory.fc.weight"] == (256, 12 * 256)
    assert shapes["task.fc.weight"] == (256, 4096)
    assert shapes["fusion.proj.weight"] == (256, 1280)
    assert shapes["value.fc.weight"] == (1, 256)
    assert p.num_parameters() == 3_901_687


def test_compact_observations_give_the_same_outputs():
    dense = nmmozoo.make_env("tiny", num_maps=2, seed=4)
    compact = nmmozoo.make_env("tiny", num_maps=2, seed=4, obs_mode="compact")
    td_d, td_c = dense.reset(), compact.reset()
    td_c["agents", "task"] = compact.world.task_embeddings[td_c["agents", "task_id"]]
    torch.manual_seed(0)
    p = create_policy("baseline_tiny", env=dense)
    a, b = p.network(td_d), p.network(td_c)
    assert torch.allclose(a["value"], b["value"], atol=1e-5)
    assert a["logits"].keys() == b["logits"].keys()
    for h in a["logits"]:  # the pointer heads read rows rebuilt from the compact entity tables
        assert torch.allclose(a["logits"][h], b["logits"][h], atol=1e-5), h


def _with_market(td, fill):
    """The batch with its market rows replaced: ``fill`` listings per map copied from the
    agents' inventories (0: an empty market; all rows: a full one)."""
    td = td.clone()
    market = td["market"]
    inv = td["agents", "inventory"].reshape(market.shape[0], -1, market.shape[-1])
    market.zero_()
    k = min(fill, market.shape[1])
    src = inv[:, torch.arange(k) % inv.shape[1]].clone()
    src[..., 1] = (torch.arange(k) % 16 + 2).to(src.dtype)  # every row listed, types 2..17
    src[..., 3] = 1 + torch.arange(k).to(src.dtype) % 5  # levels
    src[..., 15] = 1 + torch.arange(k).to(src.dtype) % 40  # prices
    market[:, :k] = src
    td["market"] = market
    return td


def test_market_is_encoded_once_per_map_and_listed_rows_only(tiny_batch, monkeypatch):
    env, td = tiny_batch
    td = _with_market(td, 5)
    p = create_policy("baseline_tiny", env=env)
    seen = []
    orig = p.item.forward
    monkeypatch.setattr(p.item, "forward", lambda x: (seen.append(tuple(x.shape)), orig(x))[1])
    p.network(td)
    # the inventories, then 2 maps x 5 listings plus the one empty row: never M rows per map
    assert seen[-1] == (2 * 5 + 1, 16)


@pytest.mark.parametrize("name", MODELS)
def test_listed_rows_only_equals_the_plain_market(name, tiny_batch, competition_batch):
    """Encoding only the listed market rows (an empty row's embedding stands for every empty
    row) gives the logits and values of running every row, for an empty, a partly listed and
    a full market."""
    env, td = competition_batch if not name.endswith("_tiny") else tiny_batch
    torch.manual_seed(0)
    p = create_policy(name, env=env)
    M = env.config.market_size
    for fill in (0, 7, M):
        x = _with_market(td, fill)
        with torch.no_grad():
            p.present_rows = True
            fast = p.network(x.clone())
            p.present_rows = False
            plain = p.network(x.clone())
        assert torch.allclose(fast["value"], plain["value"], rtol=1e-5, atol=1e-5), fill
        for h in fast["logits"]:
            assert torch.allclose(fast["logits"][h], plain["logits"][h], rtol=1e-5, atol=1e-4), (fill, h)


def test_lstm_state_travels_and_resets(tiny_batch):
    env, td = tiny_batch
    p = create_policy("yaofeng_tiny", env=env)
    td = td.clone()
    p.act(td)
    st = td["next", "agents", "recurrent_state"]
    assert st.shape[-3:] == (2, 2, 16) and st.abs().sum() > 0
    td["agents", "recurrent_state"] = st
    a = p.network(td)["value"]
    td["is_init"] = torch.ones(td.batch_size[0], 1, dtype=torch.bool)
    b = p.network(td)["value"]
    td["agents", "recurrent_state"] = torch.zeros_like(st)
    c = p.network(td)["value"]
    assert not torch.allclose(a, b) and torch.allclose(b, c)


def test_lstm_sequence_pass_equals_stepping(tiny_batch):
    """Truncated BPTT's sequence pass gives the same outputs as stepping the memory through
    the same map-steps, including a reset in the middle of the sequence."""
    env, td = tiny_batch
    torch.manual_seed(0)
    p = create_policy("yaofeng_tiny", env=env)
    B, T = td.batch_size[0], 4
    steps, state = [], torch.randn(B, env.config.num_agents, 2, 2, 16)
    stepped = []
    for t in range(T):
        x = td.clone()
        x["agents", "recurrent_state"] = state
        x["is_init"] = torch.full((B, 1), t == 2)
        out = p.network(x)
        stepped.append(out["value"])
        state = out["recurrent_state"]
        steps.append(x)
    seq = torch.stack(steps, 1)  # [B, T]
    out = p.network(seq, sequence=True)
    assert torch.allclose(out["value"], torch.stack(stepped, 1), atol=1e-5)


def test_bad_specs_name_the_path():
    spec = resolve_spec("baseline_tiny")
    bad = json.loads(json.dumps(spec))
    bad["encoders"]["tile"]["name"] = "tile_vit"
    with pytest.raises(SpecError, match=r"baseline_tiny\.encoders\.tile\.name: unknown tile 'tile_vit'"):
        create_policy(bad, config=nmmozoo.make_config("tiny"))
    bad = json.loads(json.dumps(spec))
    bad["encoders"]["tile"]["embed_dimm"] = 4
    with pytest.raises(SpecError, match=r"encoders\.tile: unknown argument\(s\) \['embed_dimm'\]"):
        create_policy(bad, config=nmmozoo.make_config("tiny"))
    bad = json.loads(json.dumps(spec))
    bad["encoders"]["tile"]["embed_dim"] = "big"
    with pytest.raises(SpecError, match=r"encoders\.tile\.embed_dim: expected int, got 'big'"):
        create_policy(bad, config=nmmozoo.make_config("tiny"))
    bad = json.loads(json.dumps(spec))
    bad["memory"] = {"name": "lstm", "hidden": 3}
    with pytest.raises(SpecError, match=r"memory: \['hidden'\] is set by the model"):
        create_policy(bad, config=nmmozoo.make_config("tiny"))
    with pytest.raises(SpecError, match="unknown model 'gpt'"):
        create_policy("gpt")


def test_bad_yaml_file(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("name: m\nhidden: 8\nencoders: {tile: {name: nope}}\n")
    with pytest.raises(SpecError, match="missing"):
        create_policy(str(f))
    f.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        create_policy(str(f))


def test_registry_lists_components():
    comps = list_components()
    assert {"tile_embed_cnn", "tile_embed_resnet", "tile_embed_attn"} <= set(comps["tile"])
    assert {"entity_embed", "entity_mixed", "entity_onehot", "entity_id_mlp"} <= set(comps["entity"])
    assert {"fixed_heads", "no_attack_npc_types"} <= set(comps["restriction"])
    assert {"lstm", "lstm_cells", "none"} <= set(comps["memory"])


def test_save_load_round_trip_is_exact(tmp_path, tiny_batch):
    env, td = tiny_batch
    torch.manual_seed(1)
    p = create_policy("takeru_tiny", env=env)
    path = save_pretrained(p, tmp_path / "m.safetensors", recipe={"lr": 1e-4})
    q = load_pretrained(path)
    assert q.spec == p.spec and q.recipe == {"lr": 1e-4}
    for k, v in p.state_dict().items():
        assert torch.equal(v, q.state_dict()[k])
    assert torch.equal(p.network(td)["value"], q.network(td)["value"])
    # URL with its hash.
    r = load_pretrained(path.as_uri(), sha256=sha256_of(path))
    assert torch.equal(p.network(td)["value"], r.network(td)["value"])


def test_damaged_wrong_hash_and_mismatch_are_refused(tmp_path, tiny_batch):
    env, _ = tiny_batch
    p = create_policy("baseline_tiny", env=env)
    path = save_pretrained(p, tmp_path / "m.safetensors")
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(HubError, match="damaged or truncated"):
        load_pretrained(cut)
    with pytest.raises(HubError, match="hash mismatch"):
        load_pretrained(path, sha256="0" * 64)
    # Weights of one model under the spec of another.
    from safetensors.torch import load_file, save_file
    other = create_policy("takeru_tiny", env=env)
    meta = {"nmmozoo_spec": json.dumps(other.spec), "nmmozoo_sizes": json.dumps(other.sizes)}
    wrong = tmp_path / "wrong.safetensors"
    save_file(load_file(str(path)), str(wrong), metadata=meta)
    with pytest.raises(HubError, match="do not match the spec 'takeru_tiny'"):
        load_pretrained(wrong)
    with pytest.raises(HubError, match="no checkpoint"):
        load_pretrained(tmp_path / "absent.safetensors")


def test_pretrained_for_other_sizes_is_a_clear_error(tmp_path, monkeypatch, tiny_batch):
    """create_policy(pretrained=True) compares the checkpoint's sizes with the env's."""
    import nmmozoo.hub as hub

    env, td = tiny_batch
    torch.manual_seed(2)
    path = save_pretrained(create_policy("baseline_tiny", env=env), tmp_path / "m.safetensors")
    monkeypatch.setattr(hub, "_resolve", lambda source: (path, None))
    same = create_policy("baseline_tiny", env=env, pretrained=True)
    assert torch.equal(same.network(td)["value"], load_pretrained(path).network(td)["value"])
    with pytest.raises(HubError, match="task_dim"):
        create_policy("baseline_tiny", env=env, pretrained=True, task_dim=64)
    with pytest.raises(HubError, match="does not fit"):
        create_policy("baseline_tiny", env=env, pretrained=True, hidden=32)


def test_save_is_atomic(tmp_path, monkeypatch, tiny_batch):
    """A failed save leaves the old file and no temporary file (one temp file, the project's
    own); a temp left by a killed save is removed by the next; a directory is refused."""
    import os

    env, _ = tiny_batch
    p = create_policy("baseline_tiny", env=env)
    path = save_pretrained(p, tmp_path / "m.safetensors")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)  # after the temp file is written
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(p, path)
    assert path.read_bytes() == before and sorted(x.name for x in tmp_path.iterdir()) == ["m.safetensors"]
    monkeypatch.setattr(os, "fsync", boom)  # while it is written
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(p, path)
    assert path.read_bytes() == before and sorted(x.name for x in tmp_path.iterdir()) == ["m.safetensors"]
    monkeypatch.undo()
    # a save killed mid-write (a pid that no longer runs) left its temp: the next save removes it
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = tmp_path / f".m.safetensors.{dead}.tmp"
    stale.write_bytes(b"partial")
    save_pretrained(p, path)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.safetensors"]
    assert load_pretrained(path).spec == p.spec
    with pytest.raises(HubError, match="is a directory"):
        save_pretrained(p, tmp_path)


def test_policy_is_a_tensordict_module():
    """``policy(td)`` acts as a TorchRL module: it writes the actions, the summed log-prob and
    the value into the td it returns; the deterministic exploration type gives the most
    likely actions (``act(deterministic=True)``); ``env.rollout`` runs with it directly."""
    from tensordict.nn import TensorDictModuleBase
    from torchrl.envs.utils import ExplorationType, set_exploration_type

    env = nmmozoo.make_env("tiny", num_maps=2, seed=0)
    p = create_policy("baseline_tiny", env=env)
    assert isinstance(p, TensorDictModuleBase)
    td = env.reset()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        a = p(td.clone())
    b = p.act(td.clone(), deterministic=True)
    for h in ACTION_HEADS:
        assert torch.equal(a["agents", "action", h], b["agents", "action", h]), h
    assert torch.equal(a["agents", "sample_log_prob"], b["agents", "sample_log_prob"])
    assert a["agents", "state_value"].shape == (2, env.config.num_agents, 1)
    same = td.clone()
    assert p(same) is same
    roll = env.rollout(4, policy=p, break_when_any_done=False)
    assert roll.batch_size == torch.Size([2, 4])
    assert (roll["next", "agents", "mask"].sum() > 0)
