"""The exact shortcuts (issue #12) against the plain path, for every zoo model: present entity
rows, the tabulated first tile conv, live-only acting. Batches mix dead agents, empty and
crowded entity windows, an empty and a full market, and (recurrent models) mid-episode
memory states; the fast path's logits, values and log-probs equal the plain ones."""

from __future__ import annotations

import pytest
import torch

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
    1,5,.. an empty entity window and a half-full inventory, 2,6,.. a crowded window (every
    row present), 3,7,.. a full inventory; the market empty or full."""
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
    # inventories: 3,7,.. full (every slot held), 1,5,.. half full, the rest as observed
    inv = a["inventory"].clone()
    S, F = inv.shape[-2:]
    full = torch.randint(0, 20, (*inv[:, 3::4].shape[:-1], F), generator=g).to(inv.dtype)
    full[..., 1] = torch.randint(1, C.NUM_ITEM_TYPES, full.shape[:-1], generator=g).to(inv.dtype)
    inv[:, 3::4] = full
    half = full[:, :inv[:, 1::4].shape[1]].clone()
    half[..., S // 2:, :] = 0
    inv[:, 1::4] = half
    a["inventory"] = inv * (~dead)[..., None, None].to(inv.dtype)
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
            fast = p.fast(True).network(td.clone())
            plain = p.fast(False).network(td.clone())
        _close(fast["value"], plain["value"], f"{name} value, market {fill}")
        for h in ACTION_HEADS:
            _close(fast["logits"][h], plain["logits"][h], f"{name} {h}, market {fill}")
        if "recurrent_state" in plain:
            _close(fast["recurrent_state"], plain["recurrent_state"], f"{name} state")


@pytest.mark.parametrize("name", MODELS)
def test_live_only_acting_equals_plain(name, tiny_batch, competition_batch):  # noqa: F811
    """``act`` on the alive agents only: their greedy actions (up to ties within 1e-5 in the
    plain logits), log-probs, values and memory states equal the plain pass over every agent; the dead get the last allowed option of
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
    with torch.no_grad():
        logits = p.fast(False).network(td.clone())["logits"]
    for h in ACTION_HEADS:
        a, b = fast["agents", "action", h], plain["agents", "action", h]
        differ = (a != b) & alive
        if differ.any():  # only a tie in the plain logits, broken the other way by rounding
            lg = logits[h][differ]
            live = lg > torch.finfo(lg.dtype).min / 2
            gap = (lg.gather(-1, a[differ][:, None]) - lg.gather(-1, b[differ][:, None])).abs()
            assert (gap <= 1e-5 * max(1.0, float(lg[live].abs().max()))).all(), (h, float(gap.max()))
        m = td["agents", "action_mask", h]
        assert m.gather(-1, a[..., None]).all(), h
        assert (a[dead] == m.shape[-1] - 1).all(), h  # stay / no-op
    _close(fast["agents", "sample_log_prob"][alive], plain["agents", "sample_log_prob"][alive], "log-prob")
    _close(fast["agents", "state_value"][alive], plain["agents", "state_value"][alive], "value")
    assert (fast["agents", "sample_log_prob"][dead] == 0).all()
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
        plain = p.fast(False).network(td.clone())
    logp = sum(torch.distributions.Categorical(logits=plain["logits"][h]).log_prob(out["agents", "action", h])
               for h in ACTION_HEADS)
    _close(out["agents", "sample_log_prob"][alive], logp[alive], "log-prob")
    for h in ACTION_HEADS:  # every sampled action is one its mask allows
        assert td["agents", "action_mask", h].gather(-1, out["agents", "action", h][..., None]).all(), h
    assert (out["agents", "sample_log_prob"][~alive] == 0).all()
    assert out["agents", "state_value"].shape == (*alive.shape, 1)


def test_nobody_alive_acts_without_running_the_network(tiny_batch):  # noqa: F811
    env, td0 = tiny_batch
    p = create_policy("yaofeng_tiny", env=env)
    td = td0.clone()
    td["agents", "mask"] = torch.zeros_like(td["agents", "mask"])

    def refuse(*args, **kwargs):
        raise AssertionError("the network ran with nobody alive")

    p.forward_rows = refuse
    p.act(td)
    assert (td["agents", "state_value"] == 0).all()
    assert (td["agents", "action", "move"] == C.NUM_MOVES - 1).all()


def _tiles(N: int) -> torch.Tensor:
    """``N`` live windows at random map positions (centre-relative rows and columns) with
    random materials."""
    pos = torch.stack(torch.meshgrid(torch.arange(15), torch.arange(15), indexing="ij"), -1).reshape(-1, 2)
    return torch.cat([pos.expand(N, -1, -1) + torch.randint(0, 100, (N, 1, 2)),
                      torch.randint(0, 16, (N, 225, 1))], -1).to(torch.int16)


def _conv_grads(enc, tile, modes):
    """The tile encoder's output and first-layer gradients under each ``(tabulate,
    tabulate_with_grad)`` of ``modes``."""
    out = []
    for tab, with_grad in modes:
        enc.zero_grad()
        enc.tabulate, enc.tabulate_with_grad, enc.onehot_with_grad = tab, with_grad, True
        y = enc(tile)
        (y * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
        out.append((y.detach(), enc.embed.weight.grad.clone(), enc.conv1.weight.grad.clone(),
                    enc.conv1.bias.grad.clone()))
    return out


@pytest.mark.parametrize("material_only", [False, True])
def test_tabulated_conv_equals_the_conv_with_gradients(material_only):
    """The table lookup gives the first conv's output and the same gradients for the
    embedding and the conv weights (so it serves training minibatches)."""
    torch.manual_seed(0)
    enc = TileEmbedCNN(hidden=16, window=15, embed_dim=8, channels=12, out_channels=4,
                       material_only=material_only)
    tile = _tiles(5)
    tile[0] = 0  # a dead agent's all-zero window
    for a, b in zip(*_conv_grads(enc, tile, [(True, True), (False, False)])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("material_only", [False, True])
@pytest.mark.parametrize("with_dead", [False, True])
def test_onehot_conv_equals_the_conv_with_gradients(material_only, with_dead):
    """With gradients (training minibatches) the fast path's first conv is a conv over the
    material's one-hot code plus a fixed bias map: the same output and the same gradients
    for the embedding and the conv weights as embed-then-conv. A batch it does not fit (a
    dead agent's zero window: the row/col columns are not the centre-relative pattern) falls
    back to the plain conv."""
    torch.manual_seed(0)
    enc = TileEmbedCNN(hidden=16, window=15, embed_dim=8, channels=12, out_channels=4,
                       material_only=material_only)
    tile = _tiles(6)
    tile[1, :, 2] = 3  # one material everywhere
    if with_dead:
        tile[0] = 0
    for a, b in zip(*_conv_grads(enc, tile, [(True, False), (False, False)])):
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
        p.network(td)
    present = int((td["agents", "entity"][..., ID] != 0).sum())
    assert seen == [present + 1]  # the present rows and the one empty row
    del p.entity.agent_fc.forward


def test_tabulated_entity_rows_equal_the_direct_rows_with_gradients():
    """EntityEmbed over many present rows tabulates agent_fc (W_c·e_c(v) per column and value):
    the same row embeddings, empty-row and own-row outputs, and the same gradients for the
    embedding and both FCs as the direct path."""
    from nmmozoo.nn.encoders import EntityEmbed

    torch.manual_seed(0)
    enc = EntityEmbed(hidden=16, entity_cols=C.NUM_ENTITY_COLUMNS, embed_dim=4)
    N, R = 8, 100
    ent = torch.randint(-3, 300, (N, R, C.NUM_ENTITY_COLUMNS), dtype=torch.int16)
    ent[..., ID] = torch.randint(0, 20, (N, R), dtype=torch.int16)  # id 0: an empty row
    ent[ent[..., ID] == 0] = 0
    agent_id = torch.arange(1, N + 1)
    assert int((ent[..., ID] != 0).sum()) >= enc.table_rows
    got = []
    for rows_from in (enc.table_rows, 10 ** 9):  # tabulated, then direct
        enc.zero_grad()
        enc.table_rows = rows_from
        rows, own = enc.present(ent, agent_id)
        w = torch.linspace(-1, 1, 16)
        ((rows.rows * w).sum() + (rows.empty * w).sum() + (own * w).sum()).backward()
        got.append((rows.rows.detach(), rows.empty.detach(), own.detach(), enc.embed.weight.grad.clone(),
                    enc.agent_fc.weight.grad.clone(), enc.agent_fc.bias.grad.clone(),
                    enc.my_agent_fc.weight.grad.clone()))
    for a, b in zip(*got):  # sums of ~800 terms in another order: 1e-5 of the tensor's scale
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * max(1.0, float(b.abs().max())))


def test_masked_head_equals_torch_categorical():
    """MaskedHead (a log-softmax over the masked logits) gives torch's
    Categorical log-probs, entropy, probabilities and samples, on heads masked to one
    option, a few, or none."""
    from nmmozoo.nn.distributions import MaskedHead

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 1025, generator=g) * 5
    mask = torch.rand(64, 1025, generator=g) < 0.02
    mask[:, -1] = True
    mask[:8] = True  # every option allowed
    mask[8:16] = False
    mask[8:16, -1] = True  # only the no-op
    lg = logits.masked_fill(~mask, torch.finfo(torch.float32).min)
    ours, ref = MaskedHead(lg), torch.distributions.Categorical(logits=lg)
    a = ref.sample()
    torch.testing.assert_close(ours.log_prob(a), ref.log_prob(a), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.entropy(), ref.entropy(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.probs, ref.probs, rtol=1e-6, atol=1e-7)
    assert (ours.log_prob(torch.full((64,), 1024)) [8:16] == 0).all()
    torch.manual_seed(3)
    s1 = ours.sample()
    torch.manual_seed(3)
    s2 = ref.sample()
    assert torch.equal(s1, s2)
    assert mask.gather(1, s1[:, None]).all()


def test_mask_logits_is_masked_fill_with_its_gradients():
    """`mask_logits` gives masked_fill's tensor bit for bit, and through a categorical's
    log-probs and entropy the same gradients (zero on the masked options)."""
    from nmmozoo.nn.distributions import MaskedHead, mask_logits

    g = torch.Generator().manual_seed(1)
    raw = (torch.randn(32, 101, generator=g) * 30).requires_grad_()
    mask = torch.rand(32, 101, generator=g) < 0.2
    mask[:, -1] = True
    mask[:4] = False
    mask[:4, 7] = True  # one option
    a = torch.multinomial(mask.float(), 1, generator=g).squeeze(-1)
    grads = []
    for fn in (lambda: raw.masked_fill(~mask, torch.finfo(torch.float32).min), lambda: mask_logits(raw, mask)):
        lg = fn()
        d = MaskedHead(lg)
        raw.grad = None
        (d.log_prob(a).sum() + 0.3 * d.entropy().sum()).backward()
        grads.append((lg.detach(), raw.grad.clone()))
    assert torch.equal(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=0, atol=1e-6)
    assert (grads[1][1][~mask] == 0).all()


def test_bag_sum_equals_embedding_bag_with_gradients():
    """The entity rows' bag sum (a per-column ``index_add_`` backward) gives embedding_bag's
    output and table gradient, repeated rows and unused rows included."""
    from nmmozoo.nn.encoders import bag_sum

    torch.manual_seed(0)
    table = torch.randn(300, 64, requires_grad=True)
    index = torch.randint(0, 250, (500, 31))  # rows 250.. unused
    index[:, 3] = 7  # one row named by every bag
    grad = torch.randn(500, 64)
    want = torch.nn.functional.embedding_bag(index, table, mode="sum")
    (g_want,) = torch.autograd.grad(want, table, grad)
    got = bag_sum(index, table)
    (g_got,) = torch.autograd.grad(got, table, grad)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_got, g_want, rtol=1e-5, atol=1e-4)
    assert g_got[7].abs().sum() > 0 and bool((g_got[250:] == 0).all())


def test_small_unique_equals_unique():
    from nmmozoo.nn.encoders import small_unique

    torch.manual_seed(1)
    for shape, size in (((400, 31), 7936), ((0, 31), 7936), ((5, 3), 10)):
        index = torch.randint(0, size, shape)
        used, inv = small_unique(index, size)
        want_used, want_inv = torch.unique(index, return_inverse=True)
        assert torch.equal(used, want_used) and torch.equal(inv, want_inv)


@pytest.mark.parametrize("with_dead", [False, True])
def test_resnet_onehot_first_conv_equals_the_conv_with_gradients(with_dead):
    """Yao Feng's residual tile encoder with its block's first conv over the material's
    one-hot code and the two position channels: the same output and the same gradients for
    the embedding, both block convs and the position weights as the conv over the embedded
    channels (materials outside 0..15 clipped, a dead agent's zero window included)."""
    from nmmozoo.nn.resnet import TileEmbedResNet

    torch.manual_seed(0)
    enc = TileEmbedResNet(hidden=16, window=15, channels=10, mid_channels=6, out_channels=4)
    tile = _tiles(6)
    tile[1, :, 2] = 40  # clipped to the last material
    if with_dead:
        tile[0] = 0
    outs = []
    for tab in (True, False):
        enc.zero_grad()
        enc.tabulate = tab
        y = enc(tile)
        (y * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
        outs.append((y.detach(), enc.embedding.weight.grad.clone(), enc.block.conv1.weight.grad.clone(),
                     enc.block.conv1.bias.grad.clone(), enc.block.conv2.weight.grad.clone()))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
