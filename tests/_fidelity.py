"""What the fidelity tests share: real env batches, the agents checked, the public networks'
inputs (float observations, the market per agent), the parts the 2023 networks take from the
public baseline (its TileEncoder, the agent's own entity row, the pointer ActionDecoder),
and the comparison of our forward with a restated public one."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import nmmozoo
from nmmozoo.env import ACTION_HEADS
from nmmozoo.policy import create_policy

# Our head -> the public ActionDecoder key, in the public layer order.
PUBLIC_HEADS = {"attack_style": "attack_style", "attack_target": "attack_target",
                "buy_item": "market_buy", "destroy_item": "inventory_destroy",
                "give_item": "inventory_give_item", "give_target": "inventory_give_player",
                "give_gold_amount": "gold_quantity", "give_gold_target": "gold_target",
                "move": "move", "sell_item": "inventory_sell", "sell_price": "inventory_price",
                "use_item": "inventory_use"}
POINTER_ROWS = {"attack_target": "entity", "buy_item": "market", "destroy_item": "item",
                "give_item": "item", "give_target": "entity", "give_gold_target": "entity",
                "sell_item": "item", "use_item": "item"}


def layer_shapes(policy):
    """(kind, weight shape) of every layer with weights, in module order."""
    return [(type(m).__name__, tuple(m.weight.shape)) for m in policy.modules()
            if isinstance(getattr(m, "weight", None), torch.nn.Parameter)]


def env_batch(preset, num_maps, steps, seed=0):
    """An env and its observation after ``steps`` ticks of random masked play."""
    env = nmmozoo.make_env(preset, num_maps=num_maps, seed=seed)
    td = env.reset()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        nmmozoo.env.random_actions(td, gen)
        _, td = env.step_and_maybe_reset(td)
    return env, td


def forward_batches():
    """Two tiny maps 40 ticks in, one competition map 6 ticks in."""
    return [env_batch("tiny", 2, 40), env_batch("competition2023", 1, 6)]


def agents_to_check(td, k=8):
    """Flat agent indices with the most and the fewest visible entities, the most items, and
    a few more (the public pass takes the market per agent, so not all 128 are restated)."""
    a = td["agents"]
    seen = (a["entity"][..., 0] != 0).sum(-1).flatten()
    items = (a["inventory"][..., 1] > 0).sum(-1).flatten()
    idx = torch.cat([seen.argsort()[:k], seen.argsort()[-k:], items.argsort()[-k:],
                     torch.arange(0, seen.numel(), max(1, seen.numel() // k))])
    return idx.unique()


def public_inputs(td, idx):
    a = td["agents"]
    B, P = a.batch_size
    flat = lambda x: x.reshape(B * P, *x.shape[2:])[idx]  # noqa: E731
    market = td["market"][:, None].expand(B, P, *td["market"].shape[1:])
    my_id = (torch.arange(B * P) % P + 1)[idx]
    masks = {h: flat(a["action_mask", h]).float() for h in ACTION_HEADS}
    return (flat(a["tile"]).float(), flat(a["entity"]).float(), flat(a["inventory"]).float(),
            flat(market).float(), flat(a["task"]).float(), my_id, masks)


def assert_same_outputs(ours, public, idx):
    """Unmasked logits and the value equal to 1e-5 (relative to the head's largest logit where
    that exceeds 1: Jimyhzhu's raw entity columns give attack logits near 1e3, where float32
    summation order alone differs by ~1e-4); masked entries masked in both."""
    for h, ref in public[0].items():
        got = ours["logits"][h].reshape(-1, ref.shape[-1])[idx]
        valid = ref > -1e8
        assert torch.equal(valid, got > torch.finfo(got.dtype).min / 2), h
        scale = max(1.0, float(ref[valid].abs().max())) if valid.any() else 1.0
        torch.testing.assert_close(got[valid], ref[valid], rtol=1e-5, atol=1e-5 * scale, msg=h)
    torch.testing.assert_close(ours["value"].reshape(-1)[idx], public[1], rtol=1e-5, atol=1e-5)


def assert_forward_is_public(name, public_fn, batches):
    """``name``'s forward on each batch equals ``public_fn`` (a restated public network run on
    our weights) on every agent of a tiny map and the chosen agents of a competition map."""
    for env, td in batches:
        torch.manual_seed(0)
        policy = create_policy(name, env=env)
        with torch.no_grad():
            ours = policy.network(td.clone())
            idx = agents_to_check(td) if env.config.num_agents > 16 else torch.arange(td["agents"].numel())
            public = public_fn(policy.state_dict(), *public_inputs(td, idx))
        assert_same_outputs(ours, public, idx)


# --- the public baseline's parts, restated -------------------------------------------------------------
def weights(sd):
    """``W(key)``, a layer's weight, and ``lin(key, x)``, its linear map, from a state dict."""
    return (lambda k: sd[k + ".weight"]), (lambda k, x: F.linear(x, sd[k + ".weight"], sd[k + ".bias"]))


def public_tile_encoder(sd, tile):
    """[B] TileEncoder: the row and column made relative to the agent (+7), each of the three
    columns embedded, two 3x3 convolutions and a linear layer, ReLU after each."""
    W, lin = weights(sd)
    n = tile.shape[0]
    tile = tile.clone()
    tile[:, :, :2] -= tile[:, 112:113, :2].clone()
    tile[:, :, :2] += 7
    t = F.embedding(tile.long().clip(0, 255) + torch.tensor([0, 256, 512]), W("tile.embed"))
    t = t.view(n, 225, 96).transpose(1, 2).reshape(n, 96, 15, 15)
    t = F.relu(F.conv2d(t, W("tile.conv1"), sd["tile.conv1.bias"]))
    t = F.relu(F.conv2d(t, W("tile.conv2"), sd["tile.conv2.bias"]))
    return F.relu(lin("tile.fc", t.reshape(n, -1)))


def my_row(ids, my_id):
    """[B] PlayerEncoder: the entity row holding the agent's own id (row 0 when none does)."""
    m = ((ids == my_id[:, None]) & (ids != 0)).int()
    return torch.where(m.any(1), m.argmax(1), torch.zeros_like(m.sum(1)))


def public_decoder(sd, hidden, rows, masks, fixed=None):
    """[B] ActionDecoder and value head: a linear layer per head, pointed at the head's rows
    (a zero row appended where the mask has one more entry, the no-op), masked to -1e9.
    ``fixed``: heads whose public network has no layer and always takes this index."""
    _, lin = weights(sd)
    logits = {}
    for head in PUBLIC_HEADS:
        mask = masks[head]
        if fixed and head in fixed:  # the env mask is not looked at
            out = torch.full_like(mask, -1e9)
            out[:, fixed[head]] = 0
            logits[head] = out
            continue
        h = lin(f"decoder.layers.{head}", hidden)
        if head in POINTER_ROWS:
            embs = rows[POINTER_ROWS[head]]
            if embs.shape[1] != mask.shape[1]:
                embs = torch.cat([embs, torch.zeros(embs.shape[0], 1, embs.shape[2])], 1)
            h = torch.matmul(embs, h.unsqueeze(-1)).squeeze(-1)
        logits[head] = h.masked_fill(mask == 0, -1e9)
    return logits, lin("value.fc", hidden)[:, 0]
