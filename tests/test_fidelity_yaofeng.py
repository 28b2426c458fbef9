"""models/yaofeng.yaml is Yao Feng's 2023 network, layer by layer.

Public source: [C] CarperAI/nmmo-baselines @ f7d985073fe927126f935b91cdbd66aaa139e343,
contrib/sub_246505/policy.py (class Baseline and its encoders). This file states, independently
of the registry: the public layer list (kind and weight shape, in the order the public modules
are registered), its parameter count, and the public forward pass in plain torch; then checks
that ours has the same layers, the same count less the documented never-indexed parameters, and
the same logits, value and LSTM state on real env batches over consecutive steps and a reset.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nmmozoo
from nmmozoo.env import constants as C
from nmmozoo.policy import create_policy, resolve_spec

# --- the public network: (module, kind, weight shape) in registration order ---------------------
H = 256
PUBLIC = [
    ("tile_encoder.type_embedding", "Embedding", (16, 62)),
    ("tile_encoder.tile_resnet.model.0", "Conv2d", (64, 64, 3, 3)),
    ("tile_encoder.tile_resnet.model.1", "LayerNorm", (64, 15, 15)),
    ("tile_encoder.tile_resnet.model.3", "Conv2d", (64, 64, 3, 3)),
    ("tile_encoder.tile_resnet.model.4", "LayerNorm", (64, 15, 15)),
    ("tile_encoder.tile_conv_1", "Conv2d", (32, 64, 3, 3)),
    ("tile_encoder.tile_conv_2", "Conv2d", (8, 32, 3, 3)),
    ("tile_encoder.tile_fc", "Linear", (H, 8 * 11 * 11)),
    ("tile_encoder.tile_norm", "LayerNorm", (H,)),
    ("player_encoder.embedding", "Embedding", (31 * 256, 32)),
    ("player_encoder.id_embedding", "Embedding", (512, 64)),
    ("player_encoder.agent_mlp.model.0", "Linear", (H, 64 + 31 - 3)),
    ("player_encoder.agent_mlp.model.2", "Linear", (H, H)),
    ("player_encoder.agent_fc", "Linear", (H, H)),
    ("player_encoder.my_agent_fc", "Linear", (H, H)),
    ("player_encoder.agent_norm", "LayerNorm", (H,)),
    ("player_encoder.my_agent_norm", "LayerNorm", (H,)),
    ("item_encoder.embedding", "Embedding", (256, 32)),
    ("item_encoder.item_mlp.model.0", "Linear", (H, 2 * 32 + 12)),
    ("item_encoder.item_mlp.model.2", "Linear", (H, H)),
    ("item_encoder.item_norm", "LayerNorm", (H,)),
    ("inventory_encoder.fc", "Linear", (H, 12 * H)),
    ("inventory_encoder.norm", "LayerNorm", (H,)),
    ("market_encoder.fc", "Linear", (H, H)),
    ("market_encoder.norm", "LayerNorm", (H,)),
    ("task_encoder.fc", "Linear", (H, 4096)),
    ("task_encoder.norm", "LayerNorm", (H,)),
    ("proj_fc", "Linear", (H, 5 * H)),
    ("action_decoder.layers.attack_style", "Linear", (3, H)),
    ("action_decoder.layers.attack_target", "Linear", (H, H)),
    ("action_decoder.layers.market_buy", "Linear", (H, H)),
    ("action_decoder.layers.inventory_destroy", "Linear", (H, H)),
    ("action_decoder.layers.inventory_give_item", "Linear", (H, H)),
    ("action_decoder.layers.inventory_give_player", "Linear", (H, H)),
    ("action_decoder.layers.gold_quantity", "Linear", (99, H)),
    ("action_decoder.layers.gold_target", "Linear", (H, H)),
    ("action_decoder.layers.move", "Linear", (5, H)),
    ("action_decoder.layers.inventory_sell", "Linear", (H, H)),
    ("action_decoder.layers.inventory_price", "Linear", (99, H)),
    ("action_decoder.layers.inventory_use", "Linear", (H, H)),
    ("value_head", "Linear", (1, H)),
    ("lstm1", "LSTMCell", (4 * H, H)),  # weight_ih
    ("lstm2", "LSTMCell", (4 * H, H)),
]
PUBLIC_PARAMS = 4_867_927
# Never indexed: rows 512.. of player_encoder.embedding ((x + 256).clip(0, 511) is its only
# index) and all of player_encoder.id_embedding (declared, never called).
NEVER_USED = (31 * 256 - 512) * 32 + 512 * 64
assert NEVER_USED == 237_568 + 32_768 == 270_336

# public head name -> ours
HEADS = {"attack_style": "attack_style", "attack_target": "attack_target", "market_buy": "buy_item",
         "inventory_destroy": "destroy_item", "inventory_give_item": "give_item",
         "inventory_give_player": "give_target", "gold_quantity": "give_gold_amount",
         "gold_target": "give_gold_target", "move": "move", "inventory_sell": "sell_item",
         "inventory_price": "sell_price", "inventory_use": "use_item"}
# public module -> ours (None: left out, never used)
OURS = {
    "tile_encoder.type_embedding": "tile.embedding",
    "tile_encoder.tile_resnet.model.0": "tile.block.conv1",
    "tile_encoder.tile_resnet.model.1": "tile.block.norm1",
    "tile_encoder.tile_resnet.model.3": "tile.block.conv2",
    "tile_encoder.tile_resnet.model.4": "tile.block.norm2",
    "tile_encoder.tile_conv_1": "tile.conv1",
    "tile_encoder.tile_conv_2": "tile.conv2",
    "tile_encoder.tile_fc": "tile.fc",
    "tile_encoder.tile_norm": "tile.norm",
    "player_encoder.embedding": "entity.embedding",  # its first 512 rows
    "player_encoder.id_embedding": None,
    "player_encoder.agent_mlp.model.0": "entity.mlp.0",
    "player_encoder.agent_mlp.model.2": "entity.mlp.2",
    "player_encoder.agent_fc": "entity.agent_fc",
    "player_encoder.my_agent_fc": "entity.my_agent_fc",
    "player_encoder.agent_norm": "entity.agent_norm",
    "player_encoder.my_agent_norm": "entity.my_agent_norm",
    "item_encoder.embedding": "item.embedding",
    "item_encoder.item_mlp.model.0": "item.mlp.0",
    "item_encoder.item_mlp.model.2": "item.mlp.2",
    "item_encoder.item_norm": "item.norm",
    "inventory_encoder.fc": "inventory.fc",
    "inventory_encoder.norm": "inventory.norm",
    "market_encoder.fc": "market.fc",
    "market_encoder.norm": "market.norm",
    "task_encoder.fc": "task.fc",
    "task_encoder.norm": "task.norm",
    "proj_fc": "fusion.proj",
    **{f"action_decoder.layers.{k}": f"decoder.layers.{v}" for k, v in HEADS.items()},
    "value_head": "value.fc",
    "lstm1": "memory.cells.0",
    "lstm2": "memory.cells.1",
}
KINDS = {"Embedding": nn.Embedding, "Conv2d": nn.Conv2d, "LayerNorm": nn.LayerNorm,
         "Linear": nn.Linear, "LSTMCell": nn.LSTMCell}


def _numel(kind: str, shape: tuple) -> int:
    n = math.prod(shape)
    return {"Embedding": n, "Conv2d": n + shape[0], "LayerNorm": 2 * n, "Linear": n + shape[0],
            "LSTMCell": 2 * n + 2 * shape[0]}[kind]  # weight_ih, weight_hh (H = in), 2 biases


def _kind(m: nn.Module) -> str:
    return next(k for k, cls in KINDS.items() if isinstance(m, cls))


def _weight(m: nn.Module) -> torch.Tensor:
    return m.weight_ih if isinstance(m, nn.LSTMCell) else m.weight


@pytest.fixture(scope="module")
def full():
    torch.manual_seed(0)
    return create_policy("yaofeng", task_dim=4096, config=nmmozoo.make_config("competition2023"))


def test_parameter_count_is_public_less_never_used(full):
    assert sum(_numel(k, s) for _, k, s in PUBLIC) == PUBLIC_PARAMS
    assert full.num_parameters() == PUBLIC_PARAMS - NEVER_USED == 4_597_591
    card = resolve_spec("yaofeng")["card"]
    assert (card["public_params"], card["unused_params"]) == (PUBLIC_PARAMS, NEVER_USED)


def test_layers_match_the_public_list(full):
    want, got, covered = [], [], set()
    for name, kind, shape in PUBLIC:
        ours = OURS[name]
        if ours is None:
            continue
        if name == "player_encoder.embedding":
            shape = (512, shape[1])  # only rows 0..511 are ever indexed
        want.append((name, kind, shape))
        m = full.get_submodule(ours)
        got.append((name, _kind(m), tuple(_weight(m).shape)))
        covered |= {f"{ours}.{p}" for p, _ in m.named_parameters()}
    assert got == want
    assert covered == {n for n, _ in full.named_parameters()}  # nothing else in ours


def test_init_is_the_public_one(full):
    """Orthogonal gain 1 on every Linear but the decoder's (gain 0.1), zero biases; convs,
    embeddings, LayerNorms and LSTM cells at PyTorch's default."""
    for name, m in full.named_modules():
        if isinstance(m, nn.Linear):
            gain = 0.1 if name.startswith("decoder.") else 1.0
            sv = torch.linalg.svdvals(m.weight.detach().double())
            assert torch.allclose(sv, torch.full_like(sv, gain), atol=1e-5), name
            assert not m.bias.any(), name
        elif isinstance(m, (nn.Conv2d, nn.LSTMCell)):
            bias = m.bias if isinstance(m, nn.Conv2d) else m.bias_ih
            assert bias.abs().sum() > 0, name  # default (uniform) init, not zeroed
        elif isinstance(m, nn.LayerNorm):
            assert (m.weight == 1).all() and not m.bias.any(), name
        elif isinstance(m, nn.Embedding):
            assert 0.9 < float(m.weight.detach().std()) < 1.1, name  # N(0, 1)


# --- the public forward pass, restated in plain torch -------------------------------------------------
def public_weights(policy) -> dict[str, torch.Tensor]:
    """Our state_dict under the public module names, with the public player embedding table
    rebuilt at full size (our 512 rows first, large noise in rows 512.. and in the unused
    id_embedding, so any use of them would show)."""
    sd = policy.state_dict()
    gen = torch.Generator().manual_seed(1)
    out = {}
    for name, kind, _ in PUBLIC:
        ours = OURS[name]
        if ours is None:
            out[f"{name}.weight"] = 1e3 * torch.randn(512, 4 * sd["entity.embedding.weight"].shape[1],
                                                      generator=gen)
            continue
        for key, val in sd.items():
            if key.startswith(ours + "."):
                out[name + key[len(ours):]] = val.clone()
    emb = out["player_encoder.embedding.weight"]
    out["player_encoder.embedding.weight"] = torch.cat(
        [emb, 1e3 * torch.randn(31 * 256 - 512, emb.shape[1], generator=gen)])
    return out


def _lstm_cell(W, name, x, h, c):
    gates = (x @ W[f"{name}.weight_ih"].T + W[f"{name}.bias_ih"]
             + h @ W[f"{name}.weight_hh"].T + W[f"{name}.bias_hh"])
    i, f, g, o = gates.chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def public_forward(W, tile, entity, my_id, inventory, market, map_of, task, targets, state):
    """[C] Baseline.encode_observations + decode_actions for N agents. ``market`` is given per
    map ``[G, M, 16]`` (every agent of a map observes the same listings; the public code
    encodes each agent's identical copy) and ``map_of`` ``[N]`` says whose. ``targets``: the
    action masks under the public names; ``state``: (h, c) each ``[2, N, H]``."""
    lin = lambda x, n: F.linear(x, W[f"{n}.weight"], W[f"{n}.bias"])  # noqa: E731
    ln = lambda x, n: F.layer_norm(x, W[f"{n}.weight"].shape, W[f"{n}.weight"], W[f"{n}.bias"])  # noqa: E731
    conv = lambda x, n, p=0: F.conv2d(x, W[f"{n}.weight"], W[f"{n}.bias"], padding=p)  # noqa: E731
    N = tile.shape[0]
    # TileEncoder
    t = tile.float()
    pos = t[:, :, :2] / 128 - 0.5
    kind = F.embedding(t[:, :, 2].long().clip(0, 15), W["tile_encoder.type_embedding.weight"])
    x = torch.cat((pos, kind), -1)
    side = int(round(x.shape[1] ** 0.5))
    x = x.transpose(1, 2).reshape(N, x.shape[-1], side, side)
    r = "tile_encoder.tile_resnet.model"
    y = ln(conv(torch.relu(ln(conv(x, f"{r}.0", 1), f"{r}.1")), f"{r}.3", 1), f"{r}.4")
    x = torch.relu(y + x)
    x = torch.relu(conv(x, "tile_encoder.tile_conv_1"))
    x = torch.relu(conv(x, "tile_encoder.tile_conv_2"))
    tile_out = torch.relu(ln(lin(x.reshape(N, -1), "tile_encoder.tile_fc"), "tile_encoder.tile_norm"))
    # PlayerEncoder
    e = entity.float()
    ids = e[:, :, 0]
    own = ((ids == my_id[:, None]) & (ids != 0)).int()
    row = torch.where(own.any(1), own.argmax(1), torch.zeros_like(own.sum(1)))
    K = e.shape[1]
    emb = F.embedding((e[:, :, [0, 8]].long() + 256).clip(0, 511), W["player_encoder.embedding.weight"])
    raw = [i for i in range(31) if i not in (0, 8, 10)]  # all but id, attacker_id, message
    a = torch.cat((emb.reshape(N, K, -1), e[:, :, raw]), -1)
    a = lin(torch.relu(lin(a, "player_encoder.agent_mlp.model.0")), "player_encoder.agent_mlp.model.2")
    a = torch.relu(a)
    mine = a[torch.arange(N), row]
    players = torch.relu(ln(lin(a, "player_encoder.agent_fc"), "player_encoder.agent_norm"))
    me = torch.relu(ln(lin(mine, "player_encoder.my_agent_fc"), "player_encoder.my_agent_norm"))

    # ItemEncoder
    def items(it):
        it = it.float()
        d = F.embedding((it[..., [1, 14]] + torch.tensor([2.0, 0.0])).long().clip(0, 255),
                        W["item_encoder.embedding.weight"]).flatten(-2)
        scale = torch.tensor([1 / 10] * 3 + [1 / 100] * 3 + [1 / 40] * 3 + [1 / 100] * 3)
        c = it[..., [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]] / scale
        z = lin(torch.relu(lin(torch.cat([d, c], -1), "item_encoder.item_mlp.model.0")),
                "item_encoder.item_mlp.model.2")
        return torch.relu(ln(z, "item_encoder.item_norm"))

    inv = items(inventory)
    mk = items(market)  # [G, M, H]
    inv_out = torch.relu(ln(lin(inv.reshape(N, -1), "inventory_encoder.fc"), "inventory_encoder.norm"))
    mk_out = torch.relu(ln(lin(mk, "market_encoder.fc").mean(-2), "market_encoder.norm"))[map_of]
    task_out = torch.relu(ln(lin(task.float(), "task_encoder.fc"), "task_encoder.norm"))
    obs = torch.relu(lin(torch.cat([tile_out, me, inv_out, mk_out, task_out], -1), "proj_fc"))
    # restrictions, in the forward
    tg = {k: {kk: vv.clone() for kk, vv in v.items()} for k, v in targets.items()}
    tg["Give"]["InventoryItem"][:, :-1] = 0
    tg["Give"]["Target"][:, :-1] = 0
    tg["GiveGold"]["Target"][:, :-1] = 0
    tg["GiveGold"]["Price"][:, 1:] = 0
    tg["Attack"]["Target"][torch.where(e[:, :, 1] == 2)] = 0
    # two LSTM cells, ReLU after each; reset where no visible row has lived a tick
    h, c = state[0].clone(), state[1].clone()
    reset = torch.where(e[:, :, 5].max(-1)[0] == 0)[0]
    h[:, reset], c[:, reset] = 0, 0
    nh, nc = torch.zeros_like(h), torch.zeros_like(c)
    for i in range(2):
        nh[i], nc[i] = _lstm_cell(W, f"lstm{i + 1}", obs, h[i], c[i])
        obs = torch.relu(nh[i])
    # ActionDecoder + value head
    rows = {"attack_target": players, "inventory_destroy": inv, "inventory_give_item": inv,
            "inventory_give_player": players, "gold_target": players, "inventory_sell": inv,
            "inventory_use": inv}
    masks = {"attack_style": tg["Attack"]["Style"], "attack_target": tg["Attack"]["Target"],
             "market_buy": tg["Buy"]["MarketItem"], "inventory_destroy": tg["Destroy"]["InventoryItem"],
             "inventory_give_item": tg["Give"]["InventoryItem"],
             "inventory_give_player": tg["Give"]["Target"],
             "gold_quantity": tg["GiveGold"]["Price"], "gold_target": tg["GiveGold"]["Target"],
             "move": tg["Move"]["Direction"], "inventory_sell": tg["Sell"]["InventoryItem"],
             "inventory_price": tg["Sell"]["Price"], "inventory_use": tg["Use"]["InventoryItem"]}
    logits = {}
    for key in HEADS:
        q = lin(obs, f"action_decoder.layers.{key}")
        if key == "market_buy":  # per map: the listings are the same for a map's agents
            embs = torch.cat([mk, torch.zeros_like(mk[:, :1])], 1)
            q = torch.stack([embs[g] @ q[n] for n, g in enumerate(map_of.tolist())])
        elif key in rows:
            embs = torch.cat([rows[key], torch.zeros_like(rows[key][:, :1])], 1)
            q = torch.matmul(embs, q.unsqueeze(-1)).squeeze(-1)
        logits[key] = q.masked_fill(masks[key] == 0, -1e9)
    return {"logits": logits, "masks": masks, "value": lin(obs, "value_head"), "state": (nh, nc),
            "reset": reset}


def _targets(td):
    def m(head):
        mask = td["agents", "action_mask", head]
        return mask.reshape(-1, mask.shape[-1])

    return {"Attack": {"Style": m("attack_style"), "Target": m("attack_target")},
            "Buy": {"MarketItem": m("buy_item")}, "Destroy": {"InventoryItem": m("destroy_item")},
            "Give": {"InventoryItem": m("give_item"), "Target": m("give_target")},
            "GiveGold": {"Price": m("give_gold_amount"), "Target": m("give_gold_target")},
            "Move": {"Direction": m("move")},
            "Sell": {"InventoryItem": m("sell_item"), "Price": m("sell_price")},
            "Use": {"InventoryItem": m("use_item")}}


KEYS = [("agents", k) for k in ("tile", "entity", "inventory", "task", "mask", "action_mask")] + ["market"]


def _obs(td, is_init):
    x = td.select(*KEYS).clone()
    x["is_init"] = torch.as_tensor(is_init).reshape(-1, 1)
    return x


def _attack_everyone(x):
    """The last observation, doctored so every visible row is an attack target (no-op off)
    and the visible NPCs alternate neutral / aggressive: the attack restriction's cases."""
    x = x.clone()
    e = x["agents", "entity"]
    rows = torch.arange(e.shape[-2])
    kinds = torch.where(rows % 2 == 0, C.NEUTRAL, C.AGGRESSIVE).to(e.dtype)
    e[..., C.COL["npc_type"]] = torch.where(e[..., C.COL["id"]] < 0, kinds, e[..., C.COL["npc_type"]])
    m = e[..., C.COL["id"]] != 0
    x["agents", "action_mask", "attack_target"] = torch.cat([m, torch.zeros_like(m[..., :1])], -1)
    x["agents", "entity"] = e
    return x


def _with_listings(x, k: int = 6):
    """The observation with ``k`` market rows per map listed (copies of inventory rows with
    their own types, levels and prices), so the market path sees listings however the random
    episode went."""
    x = x.clone()
    market = x["market"]
    inv = x["agents", "inventory"].reshape(market.shape[0], -1, market.shape[-1])
    src = inv[:, :k].clone()
    src[..., 1] = (torch.arange(k) % 16 + 2).to(src.dtype)
    src[..., 3] = (1 + torch.arange(k) % 5).to(src.dtype)
    src[..., 15] = (1 + torch.arange(k) % 40).to(src.dtype)
    market[:, :k] = src
    x["market"] = market
    return x


def _episode(preset: str, maps: int, steps: int, doctored: bool = False):
    """Observations of ``steps`` consecutive map-steps from a reset (random actions), then
    (``doctored``) :func:`_attack_everyone` of the last, then one where map 0 has just been
    reset (a fresh env's reset observation) and the others carry on."""
    env = nmmozoo.make_env(preset, num_maps=maps, seed=0)
    gen = torch.Generator().manual_seed(0)
    td = env.reset()
    out = [_obs(td, [True] * maps)]
    for _ in range(steps):
        nmmozoo.env.random_actions(td, gen)
        _, td = env.step_and_maybe_reset(td)
        out.append(_obs(td, [False] * maps))
    out.append(_with_listings(out[-1]))
    if doctored:
        out.append(_attack_everyone(out[-1]))
    fresh = _obs(nmmozoo.make_env(preset, num_maps=maps, seed=7).reset(), [True] * maps)
    if maps > 1:
        fresh = torch.cat([fresh[:1], out[-1][1:]], 0)
        fresh["is_init"] = torch.tensor([True] + [False] * (maps - 1)).reshape(-1, 1)
    out.append(fresh)
    return env, out


@pytest.fixture(scope="module")
def tiny_episode():
    return _episode("tiny", 2, 8, doctored=True)


@pytest.fixture(scope="module")
def competition_episode():
    return _episode("competition2023", 1, 3)


def _check_equivalent(policy, env, episode):
    W = public_weights(policy)
    B, P = episode[0]["agents", "mask"].shape
    N = B * P
    state = None
    h = c = torch.zeros(2, N, policy.spec["hidden"])
    resets = 0
    for t, x in enumerate(episode):
        x = x.clone()
        if state is not None:
            x["agents", "recurrent_state"] = state
        with torch.no_grad():
            ours = policy.network(x)
            ref = public_forward(W, x["agents", "tile"].reshape(N, *x["agents", "tile"].shape[2:]),
                                 x["agents", "entity"].reshape(N, *x["agents", "entity"].shape[2:]),
                                 (torch.arange(N) % P + 1).float(),
                                 x["agents", "inventory"].reshape(N, *x["agents", "inventory"].shape[2:]),
                                 x["market"], torch.arange(N) // P,
                                 x["agents", "task"].reshape(N, -1), _targets(x), (h, c))
        live = x["agents", "mask"].reshape(N)
        assert live.any()
        # the public reset rule and ours (the map's first step) agree on every live agent
        pub_reset = torch.zeros(N, dtype=torch.bool)
        pub_reset[ref["reset"]] = True
        ours_reset = x["is_init"].expand(B, P).reshape(N)
        assert torch.equal(pub_reset[live], ours_reset[live]), t
        resets += int(ours_reset[live].sum())
        for key, head in HEADS.items():
            lo = ours["logits"][head].reshape(N, -1)[live]
            ok = (ref["masks"][key] != 0)[live]
            assert torch.equal(lo > torch.finfo(lo.dtype).min, ok), (t, head)
            assert torch.allclose(lo[ok], ref["logits"][key][live][ok], rtol=1e-5, atol=1e-5), (t, head)
        assert torch.allclose(ours["value"].reshape(N)[live], ref["value"][live, 0], rtol=1e-5, atol=1e-5), t
        state = ours["recurrent_state"]
        s = state.reshape(N, 2, 2, -1)
        nh, nc = ref["state"]
        assert torch.allclose(s[live, 0].transpose(0, 1), nh[:, live], rtol=1e-5, atol=1e-5), t
        assert torch.allclose(s[live, 1].transpose(0, 1), nc[:, live], rtol=1e-5, atol=1e-5), t
        assert nh[:, live].abs().sum() > 0
        h, c = nh, nc
    assert resets > 0 and len(episode) >= 3
    # the data reaches every path: market listings, held items, Neutral and Aggressive targets
    assert any((x["market"][..., 1] > 0).any() for x in episode)
    assert any((x["agents", "inventory"][..., 1] > 0).any() for x in episode)
    return episode


@pytest.mark.parametrize("name", ["yaofeng", "yaofeng_tiny"])
def test_forward_equals_public_on_tiny_maps(name, tiny_episode):
    env, episode = tiny_episode
    torch.manual_seed(0)
    _check_equivalent(create_policy(name, env=env), env, episode)
    x = episode[-2]  # doctored: Neutral targets masked, Aggressive ones kept
    kind = x["agents", "entity"][..., C.COL["npc_type"]]
    target = x["agents", "action_mask", "attack_target"][..., :-1]
    assert (target & (kind == C.NEUTRAL)).any() and (target & (kind == C.AGGRESSIVE)).any()


def test_forward_equals_public_on_a_competition_map(competition_episode):
    env, episode = competition_episode
    torch.manual_seed(0)
    _check_equivalent(create_policy("yaofeng", env=env), env, episode)


def test_stored_state_training_equals_stepping(tiny_episode):
    """``ppo.bptt: 1``: re-running each step from the state stored at collection (length-1
    sequences, no gradient through time) reproduces the collected outputs."""
    env, episode = tiny_episode
    torch.manual_seed(0)
    p = create_policy("yaofeng_tiny", env=env)
    state, stored, values = None, [], []
    for x in episode:
        x = x.clone()
        x["agents", "recurrent_state"] = (torch.zeros(*x["agents", "mask"].shape, 2, 2, 16)
                                          if state is None else state)
        out = p.network(x)
        values.append(out["value"])
        stored.append(x)
        state = out["recurrent_state"]
    B, T = stored[0].batch_size[0], len(stored)
    batch = torch.stack(stored, 1).reshape(B * T).unsqueeze(1)  # [B·T sequences, bptt 1]
    seq = p.network(batch, sequence=True)["value"].reshape(B, T, -1)
    assert torch.allclose(seq, torch.stack(values, 1), atol=1e-5)
