"""Saidinesh's network against the public code (saidineshpola/nmmo-rl @ 60e433b,
reinforcement_learning/rl_policy.py, class BaselineNew; the same file as CarperAI/nmmo-baselines
@ f7d9850 contrib/sub_246539/policy.py).

The public network is restated below, straight line, in plain torch with the public module
names and order. It is checked against ``models/saidinesh.yaml`` for the parameter count, the
ordered list of layers and weight shapes, and the outputs on real env batches with the same
weights. State convention (see the spec's card): the decoder's LSTM starts every call from a zero
state; that is the public code with its module-held states empty, which the reference runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nmmozoo.env import ACTION_HEADS
from nmmozoo.policy import create_policy

from ._fidelity import env_batch

# public head name -> ours, in the public ModuleDict order
PUBLIC_HEADS = {
    "attack_style": "attack_style", "attack_target": "attack_target", "market_buy": "buy_item",
    "inventory_destroy": "destroy_item", "inventory_give_item": "give_item",
    "inventory_give_player": "give_target", "gold_quantity": "give_gold_amount",
    "gold_target": "give_gold_target", "move": "move", "inventory_sell": "sell_item",
    "inventory_price": "sell_price", "inventory_use": "use_item",
}
PUBLIC_PARAMS = 6_994_815  # at task size 4096


# --- the public layer list, written out -------------------------------------------------------------
def _lin(i, o, bias=True):
    return [("Linear", "weight", (o, i))] + ([("Linear", "bias", (o,))] if bias else [])


def _conv(i, o):
    return [("Conv2d", "weight", (o, i, 3, 3)), ("Conv2d", "bias", (o,))]


def _heads():
    out = {"attack_style": 3, "gold_quantity": 99, "move": 5, "inventory_price": 99}
    return [x for h in PUBLIC_HEADS for x in _lin(256, out.get(h, 256))]


PUBLIC_LAYERS = (
    # TileEncoder: embedding, multihead_attn, tile_conv_1..3, tile_fc
    [("Embedding", "weight", (768, 32)),
     ("MultiheadAttention", "in_proj_weight", (48, 16)), ("MultiheadAttention", "in_proj_bias", (48,)),
     ("MultiheadAttention", "out_proj.weight", (16, 16)), ("MultiheadAttention", "out_proj.bias", (16,))]
    + _conv(96, 64) + _conv(64, 32) + _conv(32, 16) + _lin(1296, 256)
    # PlayerEncoder: embedding, agent_fc, my_agent_fc
    + [("Embedding", "weight", (31 * 256, 32))] + _lin(992, 256) + _lin(992, 256)
    # ItemEncoder (one table shared by type and equipped), Inventory, Market, Task encoders
    + [("Embedding", "weight", (256, 32))] + _lin(76, 256)
    + _lin(12 * 256, 256) + _lin(256, 256) + _lin(4096, 256)
    # proj_fc
    + _lin(1280, 256)
    # ActionDecoder: layers, attn (tokeys, toqueries, tovalues), fc, rnn
    + _heads() + _lin(256, 256, False) * 3 + _lin(512, 256)
    + [("LSTM", f"{k}_l{i}", (1024,) if k.startswith("bias") else (1024, 256))
       for i in range(5) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    # value_head
    + _lin(256, 1)
)
KINDS = {nn.Embedding: "Embedding", nn.MultiheadAttention: "MultiheadAttention",
         nn.Conv2d: "Conv2d", nn.LSTM: "LSTM", nn.Linear: "Linear"}


def _kind(module):
    for cls, name in KINDS.items():
        if isinstance(module, cls):
            return name
    return None


def layer_list(model, heads_prefix=None):
    """[(kind, local name, shape, tensor)] in registration order; the outermost module of a
    known kind owns each parameter. With ``heads_prefix`` our heads are listed in the public
    head order (the only place where our order differs)."""
    mods = dict(model.named_modules())
    rows = []
    for name, p in model.named_parameters():
        parts = name.split(".")
        for i in range(1, len(parts)):
            kind = _kind(mods[".".join(parts[:i])])
            if kind:
                rows.append((name, kind, ".".join(parts[i:]), tuple(p.shape), p))
                break
        else:
            raise AssertionError(f"no layer kind for {name}")
    if heads_prefix is None:
        return [r[1:] for r in rows]
    ours = [r for r in rows if r[0].startswith(heads_prefix)]
    rest = [r for r in rows if not r[0].startswith(heads_prefix)]
    at = rows.index(ours[0])
    by_head = {h: [r for r in ours if r[0].startswith(f"{heads_prefix}{h}.")] for h in ACTION_HEADS}
    ordered = [r for h in PUBLIC_HEADS.values() for r in by_head[h]]
    assert len(ordered) == len(ours)
    return [r[1:] for r in rest[:at] + ordered + rest[at:]]


HEADS_PREFIX = "decoder.heads.layers."


# --- the public network, straight line -------------------------------------------------------------
def _module(**children):
    m = nn.Module()
    for k, v in children.items():
        setattr(m, k, v)
    return m


def public_net(task_size: int) -> nn.Module:
    """BaselineNew's module tree: same names, order and shapes as the public code."""
    heads = nn.ModuleDict({h: nn.Linear(256, {"attack_style": 3, "gold_quantity": 99, "move": 5,
                                               "inventory_price": 99}.get(h, 256))
                           for h in PUBLIC_HEADS})
    return _module(
        tile_encoder=_module(embedding=nn.Embedding(3 * 256, 32), multihead_attn=nn.MultiheadAttention(16, 4),
                             tile_conv_1=nn.Conv2d(96, 64, 3), tile_conv_2=nn.Conv2d(64, 32, 3),
                             tile_conv_3=nn.Conv2d(32, 16, 3), tile_fc=nn.Linear(16 * 9 * 9, 256)),
        player_encoder=_module(embedding=nn.Embedding(31 * 256, 32), agent_fc=nn.Linear(31 * 32, 256),
                               my_agent_fc=nn.Linear(31 * 32, 256)),
        item_encoder=_module(embedding=nn.Embedding(256, 32), fc=nn.Linear(2 * 32 + 12, 256)),
        inventory_encoder=_module(fc=nn.Linear(12 * 256, 256)),
        market_encoder=_module(fc=nn.Linear(256, 256)),
        task_encoder=_module(fc=nn.Linear(task_size, 256)),
        proj_fc=nn.Linear(5 * 256, 256),
        action_decoder=_module(
            layers=heads,
            attn=_module(tokeys=nn.Linear(256, 256, bias=False), toqueries=nn.Linear(256, 256, bias=False),
                         tovalues=nn.Linear(256, 256, bias=False)),
            fc=nn.Linear(512, 256),
            rnn=nn.LSTM(256, 256, num_layers=5, batch_first=True)),
        value_head=nn.Linear(256, 1),
    )


def public_self_attention(attn, x, heads=4, e=64):
    b, t, _ = x.shape
    keys = attn.tokeys(x).view(b, t, heads, e).transpose(1, 2).contiguous().view(b * heads, t, e)
    queries = attn.toqueries(x).view(b, t, heads, e).transpose(1, 2).contiguous().view(b * heads, t, e)
    values = attn.tovalues(x).view(b, t, heads, e).transpose(1, 2).contiguous().view(b * heads, t, e)
    queries = queries / (e ** (1 / 4))
    keys = keys / (e ** (1 / 4))
    dot = F.softmax(torch.bmm(queries, keys.transpose(1, 2)), dim=2)
    out = torch.bmm(dot, values).view(b, heads, t, e)
    return out.transpose(1, 2).contiguous().view(b, t, heads * e)


@torch.no_grad()
def public_forward(net, tile, entity, inventory, market, task, my_id, targets, states=None):
    """BaselineNew.forward on our observation tensors. ``market`` is per agent ``[N, M, 16]`` as
    in the public observation; ``targets`` maps public head names to masks; ``states`` the
    decoder's module-held (h, c) per sequence (None: empty, i.e. zeros). Returns the public
    logits, the value and the states the module would hold afterwards."""
    # TileEncoder
    te = net.tile_encoder
    tile = tile.float().clone()
    tile[:, :, :2] -= tile[:, 112:113, :2].clone()
    tile[:, :, :2] += 7
    t = te.embedding(tile.long().clip(0, 255) + torch.tensor([i * 256 for i in range(3)]))
    agents, tiles, features, embed = t.shape
    t = t.view(agents, tiles, features * embed).transpose(1, 2).view(agents, features * embed, 15, 15)
    t = F.silu(te.tile_conv_1(t))
    t = F.silu(te.tile_conv_2(t))
    t = F.silu(te.tile_conv_3(t))
    t = t.view(t.size(0), t.size(1), -1).permute(2, 0, 1)
    t, _ = te.multihead_attn(t, t, t)
    t = t.permute(1, 2, 0).view(agents, 16, 9, 9).contiguous().view(agents, -1)
    tile_out = F.silu(te.tile_fc(t))
    # PlayerEncoder
    pe = net.player_encoder
    ents = entity.float()
    ids = ents[:, :, 0]
    mask = ((ids == my_id.unsqueeze(1)) & (ids != 0)).int()
    row = torch.where(mask.any(dim=1), mask.argmax(dim=1), torch.zeros_like(mask.sum(dim=1)))
    emb = pe.embedding(ents.long().clip(0, 255) + torch.tensor([i * 256 for i in range(31)]))
    b, a, attrs, e = emb.shape
    emb = emb.view(b, a, attrs * e)
    player_embeddings = pe.agent_fc(emb)
    my_agent = F.silu(pe.my_agent_fc(emb[torch.arange(b), row]))

    # ItemEncoder (shared by inventory and market)
    def items_enc(items):
        items = items.float()
        discrete = items[:, :, [1, 14]] + torch.tensor([2.0, 0.0])
        discrete = net.item_encoder.embedding(discrete.long().clip(0, 255))
        bb, it, at, em = discrete.shape
        scale = torch.tensor([1 / 10] * 3 + [1 / 100] * 3 + [1 / 40] * 3 + [1 / 100] * 3)
        continuous = items[:, :, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]] / scale
        return net.item_encoder.fc(torch.cat([discrete.view(bb, it, at * em), continuous], dim=-1))

    item_embeddings = items_enc(inventory)
    inv = net.inventory_encoder.fc(item_embeddings.view(item_embeddings.shape[0], -1))
    market_embeddings = items_enc(market)
    mk = net.market_encoder.fc(market_embeddings).mean(-2)
    tk = net.task_encoder.fc(task.float().clone())
    hidden = net.proj_fc(torch.cat([tile_out, my_agent, inv, mk, tk], dim=-1))
    value = net.value_head(hidden)

    # ActionDecoder
    d = net.action_decoder
    L, H = d.rnn.num_layers, d.rnn.hidden_size
    st = dict(states or {})
    for k in ("player", "inventory", "hidden"):
        if st.get(k) is None or st[k][0].shape != (L, b, H):
            st[k] = (torch.zeros(L, b, H), torch.zeros(L, b, H))
    pl_before, inv_before, hid_before = player_embeddings.clone(), item_embeddings.clone(), hidden.clone()
    pl, st["player"] = d.rnn(player_embeddings, st["player"])
    iv, st["inventory"] = d.rnn(item_embeddings, st["inventory"])
    pl = public_self_attention(d.attn, pl)
    iv = public_self_attention(d.attn, iv)
    hd, st["hidden"] = d.rnn(hidden.unsqueeze(1), st["hidden"])
    hd = public_self_attention(d.attn, hd).squeeze(1)
    pl = F.relu(d.fc(torch.cat([pl_before, pl], -1)))
    iv = F.relu(d.fc(torch.cat([inv_before, iv], -1)))
    hd = F.relu(d.fc(torch.cat([hid_before, hd], -1)))
    embeddings = {"attack_target": pl, "market_buy": market_embeddings, "inventory_destroy": iv,
                  "inventory_give_item": iv, "inventory_give_player": pl, "gold_target": pl,
                  "inventory_sell": iv, "inventory_use": iv}
    logits = {}
    for key, layer in d.layers.items():
        m, embs = targets[key], embeddings.get(key)
        if embs is not None and embs.shape[1] != m.shape[1]:
            embs = torch.cat([embs, torch.zeros(embs.shape[0], 1, embs.shape[2])], dim=1)
        out = layer(hd)
        if embs is not None:
            out = torch.matmul(embs, out.unsqueeze(-1)).squeeze(-1)
        logits[key] = out.masked_fill(m == 0, -1e9)
    return logits, value, {k: (h.detach(), c.detach()) for k, (h, c) in st.items()}


# --- helpers -----------------------------------------------------------------------------------------
def public_inputs(td):
    ag = td["agents"]
    G, P = ag.batch_size[-2:]
    N = G * P
    flat = lambda x: x.reshape(N, *x.shape[2:])  # noqa: E731
    market = td["market"].repeat_interleave(P, 0)  # every agent observes its map's market
    targets = {ph: flat(ag["action_mask", h]) for ph, h in PUBLIC_HEADS.items()}
    my_id = torch.arange(N) % P + 1
    return (flat(ag["tile"]), flat(ag["entity"]), flat(ag["inventory"]), market, flat(ag["task"]),
            my_id, targets)


def load_public(policy, task_size):
    net = public_net(task_size)
    ours, theirs = layer_list(policy, HEADS_PREFIX), layer_list(net)
    assert [r[:3] for r in ours] == [r[:3] for r in theirs]
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            b[3].copy_(a[3])
    return net


def open_masks(td):
    """The batch with every option of every head allowed: every logit is then compared,
    empty rows and market listings included."""
    td = td.clone()
    for h in ACTION_HEADS:
        m = td["agents", "action_mask", h]
        td["agents", "action_mask", h] = torch.ones_like(m)
    return td


def assert_same(policy, net, td, states=None):
    """Same value and the same logits wherever the mask allows (relative and absolute 1e-5:
    the public item scaling makes some pointer logits ~1e7)."""
    with torch.no_grad():
        out = policy.network(td.clone())
    logits, value, _ = public_forward(net, *public_inputs(td), states=states)
    N = value.shape[0]
    torch.testing.assert_close(out["value"].reshape(N), value[:, 0], atol=1e-5, rtol=1e-5)
    for ph, h in PUBLIC_HEADS.items():
        mask = td["agents", "action_mask", h].reshape(N, -1)
        ours = out["logits"][h].reshape(N, -1)
        assert ours.shape == logits[ph].shape, h
        torch.testing.assert_close(ours[mask], logits[ph][mask], atol=1e-5, rtol=1e-5, msg=h)


# --- tests -------------------------------------------------------------------------------------------
def test_parameter_count_is_public():
    p = create_policy("saidinesh", task_dim=4096)
    assert p.num_parameters() == PUBLIC_PARAMS
    assert sum(p.numel() for p in public_net(4096).parameters()) == PUBLIC_PARAMS


def test_layers_and_shapes_in_public_order():
    p = create_policy("saidinesh", task_dim=4096)
    assert [r[:3] for r in layer_list(p, HEADS_PREFIX)] == PUBLIC_LAYERS
    assert [r[:3] for r in layer_list(public_net(4096))] == PUBLIC_LAYERS


@pytest.mark.parametrize("preset,steps,num_maps", [("tiny", 3, 2), ("competition2023", 3, 1)])
def test_forward_equals_the_public_forward(preset, steps, num_maps):
    env, td = env_batch(preset, num_maps, steps)
    torch.manual_seed(0)
    policy = create_policy("saidinesh", env=env)
    net = load_public(policy, policy.sizes["task_dim"])
    assert_same(policy, net, td)
    assert_same(policy, net, open_masks(td))


def test_state_starts_from_zero_every_call():
    """Ours is the public module with its held states empty at every call: the output does not
    depend on what was run before. The public module, carrying its states from the previous
    call, gives other outputs — that is the difference the card records."""
    env, td = env_batch("tiny", 2, 3)
    _, td2 = env_batch("tiny", 2, 5, seed=1)
    torch.manual_seed(0)
    policy = create_policy("saidinesh", env=env)
    net = load_public(policy, policy.sizes["task_dim"])
    with torch.no_grad():
        policy.network(td2.clone())  # nothing carries over
    assert_same(policy, net, td)
    _, _, held = public_forward(net, *public_inputs(td2))
    carried, _, _ = public_forward(net, *public_inputs(td), states=held)
    fresh, _, _ = public_forward(net, *public_inputs(td))
    mask = td["agents", "action_mask", "move"].reshape(-1, 5)
    assert not torch.allclose(carried["move"][mask], fresh["move"][mask], atol=1e-4)


def test_tiny_variant_acts():
    env, td = env_batch("tiny", 2, 2)
    policy = create_policy("saidinesh_tiny", env=env)
    td = policy.act(td.clone())
    for h in ACTION_HEADS:
        a, m = td["agents", "action", h], td["agents", "action_mask", h]
        assert m.gather(-1, a[..., None]).all(), h
    assert torch.isfinite(td["agents", "state_value"]).all()
