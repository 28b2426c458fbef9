"""The exact shortcuts (issue #12) against the plain path, for every zoo model: present entity
rows, the tabulated first tile conv, live-only acting. Batches mix dead agents, empty and
crowded entity windows, an empty and a full market, and (recurrent models) mid-episode
memory states; the fast path's logits, values and log-probs equal the plain ones."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from nmmozoo.env import ACTION_HEADS
from nmmozoo.env import constants as C
from nmmozoo.nn.encoders import TileEmbedCNN, tabulated_conv
from nmmozoo.policy import create_policy, list_models
from nmmozoo.train.modules import Actor

from .test_zoo import _with_market, competition_batch, tiny_batch  # noqa: F401 (fixtures)

MODELS = list_models()
ID = C.COL["id"]


def _mixed(td, market_fill: int, seed: int = 0):
    """Agents 0,4,8,.. dead (zero observation, only the last option of each head allowed),
    1,5,.. an empty entity window, 2,6,.. a crowded one (every row present), the rest as
    observed; the market empty or full."""
    td = _with_market(td, market_fill).clone()
    a = td["agents"]
    P = a.batch_size[-1]
    dead = torch.zeros(a.batch_size, dtype=torch.bool)
    dead[:, 0::4] = True
    a["mask"] = a["mask"] & ~dead
    for k in ("tile", "entity", "inventory"):
        a[k] = a[k] * (~dead).reshape(*dead.shape, *[1] * (a[k].dim() - 2)).to(a[k].dtype)
    for h in ACTION_HEADS:
        m = a["action_mask", h].clone()
        m[dead] = False
        m[..., -1] |= dead
        a["action_mask", h] = m
    ent = a["entity"].clone()
    ent[:, 1::4] = 0  # empty window (the own row too: row 0 stands in, as public)
    g = torch.Generator().manual_seed(seed)
    R = ent.shape[-2]
    crowd = ent[:, 2::4]
    src = ent[:, 3::4][:, :crowd.shape[1]]
    # every row present: real rows of another agent, ids 1..R (own id among them)
    fill = src[..., :1, :].expand_as(crowd).clone()
    fill[..., ID] = torch.arange(1, R + 1, dtype=fill.dtype)
    fill[..., C.COL["row"]] += torch.randint(-3, 4, fill.shape[:-1], generator=g, dtype=fill.dtype)
    ent[:, 2::4] = fill
    a["entity"] = ent
    assert P >= 4
    return td


def _close(a, b, what):
    """Equal to 1e-5, relative, and absolute on the tensor's own scale: the fast path sums in
    another order (other matmul blocking, a table instead of a conv), and a logit that is a
    dot product with cancellation keeps the absolute rounding of its terms, not of its value
    (masked logits are the dtype's minimum in both)."""
    live = a > torch.finfo(a.dtype).min / 2
    scale = float(b[live].abs().max()) if live.any() else 1.0
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * max(1.0, scale), msg=lambda m: f"{what}: {m}")


def _batch(name, tiny_batch, competition_batch):  # noqa: F811
    return competition_batch if not name.endswith("_tiny") else tiny_batch


@pytest.mark.parametrize("name", MODELS)
def test_fast_forward_equals_plain(name, tiny_batch, competition_batch):  # noqa: F811
    env, td0 = _batch(name, tiny_batch, competition_batch)
    torch.manual_seed(0)
    p = create_policy(name, env=env)
    for fill in (0, env.config.market_size):
        td = _mixed(td0, fill)
        if p.recurrent_shape is not None:  # mid-episode memory
            td["agents", "recurrent_state"] = torch.randn(*td["agents"].batch_size, *p.recurrent_shape)
        with torch.no_grad():
            fast = p.fast(True)(td.clone())
            plain = p.fast(False)(td.clone())
        _close(fast["value"], plain["value"], f"{name} value, market {fill}")
        for h in ACTION_HEADS:
            _close(fast["logits"][h], plain["logits"][h], f"{name} {h}, market {fill}")
        if "recurrent_state" in plain:
            _close(fast["recurrent_state"], plain["recurrent_state"], f"{name} state")


@pytest.mark.parametrize("name", MODELS)
def test_live_only_acting_equals_plain(name, tiny_batch, competition_batch):  # noqa: F811
    """``act`` on the alive agents only: their greedy actions, log-probs, values and memory
    states equal the plain pass over every agent; the dead get the last allowed option of
    each head (stay / no-op), log-prob 0, value 0, their memory state unchanged."""
    env, td0 = _batch(name, tiny_batch, competition_batch)
    torch.manual_seed(0)
    p = create_policy(name, env=env)
    td = _mixed(td0, 7)
    if p.recurrent_shape is not None:
        td["agents", "recurrent_state"] = torch.randn(*td["agents"].batch_size, *p.recurrent_shape)
    fast = p.fast(True).act(td.clone(), deterministic=True)
    plain = p.fast(False).act(td.clone(), deterministic=True)
    alive = td["agents", "mask"]
    dead = ~alive
    assert dead.any() and alive.any()
    for h in ACTION_HEADS:
        a, b = fast["agents", "action", h], plain["agents", "action", h]
        assert torch.equal(a[alive], b[alive]), h
        m = td["agents", "action_mask", h]
        assert m.gather(-1, a[..., None]).all(), h
        assert (a[dead] == m.shape[-1] - 1).all(), h  # stay / no-op
    _close(fast["agents", "action_log_prob"][alive], plain["agents", "action_log_prob"][alive], "log-prob")
    _close(fast["agents", "state_value"][alive], plain["agents", "state_value"][alive], "value")
    assert (fast["agents", "action_log_prob"][dead] == 0).all()
    assert (fast["agents", "state_value"][dead] == 0).all()
    if p.recurrent_shape is not None:
        s_fast, s_plain = fast["next", "agents", "recurrent_state"], plain["next", "agents", "recurrent_state"]
        _close(s_fast[alive], s_plain[alive], "state")
        assert torch.equal(s_fast[dead], td["agents", "recurrent_state"][dead])


def test_actor_samples_live_agents_with_their_log_probs(tiny_batch):  # noqa: F811
    """The collector's acting module on the live path: sampled actions are valid and their
    stored log-probs are the plain forward's log-probs of those actions."""
    env, td0 = tiny_batch
    torch.manual_seed(0)
    p = create_policy("baseline_tiny", env=env)
    td = _mixed(td0, 7)
    actor = Actor(p, [])
    out = actor(td.clone())
    alive = td["agents", "mask"]
    with torch.no_grad():
        plain = p.fast(False)(td.clone())
    logp = sum(torch.distributions.Categorical(logits=plain["logits"][h]).log_prob(out["agents", "action", h])
               for h in ACTION_HEADS)
    _close(out["agents", "sample_log_prob"][alive], logp[alive], "log-prob")
    assert (out["agents", "sample_log_prob"][~alive] == 0).all()
    assert out["agents", "state_value"].shape == (*alive.shape, 1)


def test_nobody_alive_acts_without_running_the_network(tiny_batch):  # noqa: F811
    env, td0 = tiny_batch
    p = create_policy("yaofeng_tiny", env=env)
    td = td0.clone()
    td["agents", "mask"] = torch.zeros_like(td["agents", "mask"])
    p.act(td)
    assert (td["agents", "state_value"] == 0).all()
    assert (td["agents", "action", "move"] == C.NUM_MOVES - 1).all()


@pytest.mark.parametrize("material_only", [False, True])
def test_tabulated_conv_equals_the_conv_with_gradients(material_only):
    """The table lookup gives the first conv's output and the same gradients for the
    embedding and the conv weights (so it serves training minibatches)."""
    torch.manual_seed(0)
    enc = TileEmbedCNN(hidden=16, window=15, embed_dim=8, channels=12, out_channels=4,
                       material_only=material_only)
    N = 5
    pos = torch.stack(torch.meshgrid(torch.arange(15), torch.arange(15), indexing="ij"), -1).reshape(-1, 2)
    tile = torch.cat([pos.expand(N, -1, -1) + torch.randint(0, 100, (N, 1, 2)),
                      torch.randint(0, 16, (N, 225, 1))], -1).to(torch.int16)
    tile[0] = 0  # a dead agent's all-zero window
    grads = []
    for tab in (True, False):
        enc.zero_grad()
        enc.tabulate = enc.tabulate_with_grad = tab
        out = enc(tile)
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        grads.append((out.detach(), enc.embed.weight.grad.clone(), enc.conv1.weight.grad.clone(),
                      enc.conv1.bias.grad.clone()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_tabulated_conv_matches_conv2d_directly():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(3 * 4, 6, 3)
    emb = torch.randn(3 * 256, 4)
    idx = torch.randint(0, 256, (2, 49, 3)) + torch.arange(3) * 256
    x = emb[idx].flatten(-2).transpose(1, 2).reshape(2, 12, 7, 7)
    torch.testing.assert_close(tabulated_conv(idx, emb, conv, 7), conv(x), rtol=1e-5, atol=1e-5)


def test_empty_entity_rows_are_all_zero(tiny_batch, competition_batch):  # noqa: F811
    """What the present-rows path relies on: a row without an id is an all-zero row."""
    for _, td in (tiny_batch, competition_batch):
        ent = td["agents", "entity"]
        assert (ent[ent[..., ID] == 0] == 0).all()


def test_present_rows_pass_only_present_entity_rows(tiny_batch):  # noqa: F811
    env, td = tiny_batch
    p = create_policy("baseline_tiny", env=env)
    seen = []
    orig = p.entity.agent_fc.forward
    p.entity.agent_fc.forward = lambda x: (seen.append(x.shape[0]), orig(x))[1]
    with torch.no_grad():
        p(td)
    present = int((td["agents", "entity"][..., ID] != 0).sum())
    assert seen == [present + 1]  # the present rows and the one empty row
    del p.entity.agent_fc.forward
    assert isinstance(TensorDict, type)
