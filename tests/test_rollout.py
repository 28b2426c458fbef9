"""The compact rollout (nmmozoo.train.rollout): only live agent-steps, present entity rows,
listed market rows per map-step, masks as bits — and the policy's inputs rebuilt from it
equal the collected observations exactly."""

from __future__ import annotations

import pytest
import torch

from nmmozoo.env import ACTION_HEADS
from nmmozoo.inputs import rows_from_td
from nmmozoo.train import PPOModule
from nmmozoo.train.rollout import _csr, _expand_csr, pack_bits, unpack_bits

from .test_train import _collect_with_chunks


def test_bits_round_trip():
    g = torch.Generator().manual_seed(0)
    for n in (1, 5, 8, 13, 1025, 1586):
        x = torch.rand(7, n, generator=g) < 0.3
        b = pack_bits(x)
        assert b.dtype == torch.uint8 and b.shape == (7, -(-n // 8))
        assert torch.equal(unpack_bits(b, n), x)


@pytest.mark.parametrize("fill", [0.0, 0.01, 1.0])  # empty, sparse, full
def test_present_rows_round_trip(fill):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-5, 6, (9, 64, 16), generator=g, dtype=torch.int16)
    x[torch.rand(9, 64, generator=g) >= fill] = 0
    rows, slot, count = _csr((x != 0).any(-1), x)
    assert rows.shape[0] == int(((x != 0).any(-1)).sum()) == int(count.sum())
    which = torch.tensor([3, 0, 3, 8])
    assert torch.equal(_expand_csr(rows, slot, count, which, 64), x[which])


def _check_rebuilt(m, obs_mode):
    data, ro = _collect_with_chunks(m)
    store = ro.store
    d = store.data
    n = len(store)
    assert n == int(data["agents", "mask"].sum())
    b, t, p = d["map"].long(), d["tick"].long(), d["agent"].long()
    want = rows_from_td(data.exclude("next"), m.policy.sizes["window"] // 2, task_table=m.task_table)
    B, T, P = data["agents", "mask"].shape
    flat = (b * T + t) * P + p
    got = store.rows(torch.arange(n))
    for k in ("tile", "entity", "inventory", "agent_id", "reset"):
        assert torch.equal(getattr(got, k), getattr(want, k)[flat]), (obs_mode, k)
    if want.task is not None:
        assert torch.equal(got.task, want.task[flat])
    for h in ACTION_HEADS:
        assert torch.equal(got.masks[h], want.masks[h][flat]), (obs_mode, h)
    # each row's market is its own map-step's, held once per map-step
    assert torch.equal(got.market[got.map_of], want.market[want.map_of[flat]])
    assert got.market.shape[0] == len(torch.unique(d["map_step"]))
    # what the actor wrote
    assert torch.equal(d["action"][:, ACTION_HEADS.index("move")].long(),
                       data["agents", "action", "move"][b, t, p])
    assert torch.equal(d["state_value"], data["agents", "state_value"][b, t, p, 0])
    m.on_train_end()
    return store


@pytest.mark.parametrize("obs_mode", ["compact", "dense"])
def test_rebuilt_inputs_equal_the_collected_observations(obs_mode):
    """Competition preset, one map of random-ish play by the untrained takeru_tiny: every
    live agent-step's rebuilt tile window, entity rows, inventory, task embedding, action
    masks and market equal what the env emitted (compact or dense observations)."""
    torch.manual_seed(0)
    m = PPOModule("demo", overrides={"ppo.rollout_steps": 1024, "model": "takeru_tiny"},
                  env_overrides={"preset": "competition2023", "num_maps": 1, "obs_mode": obs_mode})
    _check_rebuilt(m, obs_mode)


def test_rollout_is_at_most_4kb_per_live_agent_step():
    """Competition preset, the baseline recipe's own settings but a short rollout: the kept
    samples take at most 4 KB each (the dense layout held ~21 KB per agent slot)."""
    torch.manual_seed(0)
    m = PPOModule("baseline", overrides={"ppo.rollout_steps": 1024, "ppo.minibatch_steps": 256},
                  env_overrides={"num_maps": 1})
    ro = m._collect()
    m.prepare(ro)
    per_step = ro.store.nbytes() / len(ro.store)
    assert len(ro.store) == 1024
    assert per_step <= 4096, per_step
    m.on_train_end()
