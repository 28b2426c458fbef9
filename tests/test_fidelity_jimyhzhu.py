"""Jimyhzhu's network rebuilt as public, less the inventory FC whose output is never used:
the parameter count, the ordered layer shapes, and the forward pass against a straight-line
re-statement of [J] JimyhZhu/Neurips_NeuralMMO2023 @ 5cac281
rl_track/reinforcement_learning/final_policy.py (with [C] sub_246707's decoder, whose
cross-attention output is never used either), loaded with our weights, on real env batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nmmozoo.env.config import make_config
from nmmozoo.policy import create_policy

from .test_fidelity_baseline import (POINTER_ROWS, PUBLIC_HEADS, agents_to_check, assert_same_outputs,
                                     env_batch, layer_shapes, public_inputs)

PUBLIC_PARAMS = 3_203_831
INVENTORY_FC = 3072 * 256 + 256  # InventoryEncoder.fc, output never used (l.71, l.303-311)


def test_parameter_count_and_layers_are_public():
    p = create_policy("jimyhzhu", config=make_config("competition2023"), task_dim=4096)
    assert INVENTORY_FC == 786_688
    assert p.num_parameters() == PUBLIC_PARAMS - INVENTORY_FC == 2_417_143
    L, E, C = "Linear", "Embedding", "Conv2d"
    public = [(E, (768, 32)), (C, (32, 96, 3, 3)), (C, (8, 32, 3, 3)), (L, (256, 968)),  # TileEncoder
              (L, (256, 35)), (L, (256, 35)),  # PlayerEncoder: 31 - 1 + 5 raw features
              (L, (256, 32)),  # ItemEncoder: 18 + 2 + 12
              (L, (256, 3072)),  # InventoryEncoder (never used: removed below)
              (L, (256, 256)), (L, (256, 4096)), (L, (256, 1536)),  # market, task, proj_fc
              (L, (3, 256)), (L, (256, 256)), (L, (256, 256)), (L, (256, 256)), (L, (256, 256)),
              (L, (256, 256)), (L, (99, 256)), (L, (256, 256)), (L, (5, 256)), (L, (256, 256)),
              (L, (99, 256)), (L, (256, 256)),  # ActionDecoder
              (L, (1, 256))]
    public.remove((L, (256, 3072)))
    assert layer_shapes(p) == public


def public_jimyhzhu(sd, tile, entity, inventory, market, task, my_id, masks):
    """[J] final_policy.py Baseline on one batch of agents, from our state dict."""
    W = lambda k: sd[k + ".weight"]  # noqa: E731
    lin = lambda k, x: F.linear(x, sd[k + ".weight"], sd[k + ".bias"])  # noqa: E731
    n = tile.shape[0]
    # TileEncoder (the baseline's)
    tile = tile.clone()
    tile[:, :, :2] -= tile[:, 112:113, :2].clone()
    tile[:, :, :2] += 7
    t = F.embedding(tile.long().clip(0, 255) + torch.tensor([0, 256, 512]), W("tile.embed"))
    t = t.view(n, 225, 96).transpose(1, 2).reshape(n, 96, 15, 15)
    t = F.relu(F.conv2d(t, W("tile.conv1"), sd["tile.conv1.bias"]))
    t = F.relu(F.conv2d(t, W("tile.conv2"), sd["tile.conv2.bias"]))
    t = F.relu(lin("tile.fc", t.reshape(n, -1)))
    # PlayerEncoder: npc_type one-hot (5) in place of column 1, the rest raw
    npc = F.one_hot(entity[:, :, 1].long(), 5).float()
    one_hot = torch.cat([entity[:, :, :1], npc, entity[:, :, 2:]], -1)
    ids = one_hot[:, :, 0]
    m = ((ids == my_id[:, None]) & (ids != 0)).int()
    row = torch.where(m.any(1), m.argmax(1), torch.zeros_like(m.sum(1)))
    players = lin("entity.agent_fc", one_hot)
    me = F.relu(lin("entity.my_agent_fc", one_hot[torch.arange(n), row]))

    # ItemEncoder: one-hot type (18) and equipped (2), numeric columns x 1/100
    def items(x):
        eq = F.one_hot(x[:, :, 14].long(), 2).float()
        ty = F.one_hot(x[:, :, 1].long(), 18).float()
        c = x[:, :, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]] * torch.full((12,), 1 / 100)
        return lin("item.fc", torch.cat([ty, eq, c], -1))

    item_rows = items(inventory)
    mk_rows = items(market)
    mk = lin("market.fc", mk_rows).mean(dim=1)
    tk = lin("task.fc", task)
    pooled_item, pooled_player = item_rows.mean(dim=1), players.mean(dim=1)
    hidden = lin("fusion.proj", torch.cat([t, me, pooled_player, pooled_item, mk, tk], -1))
    rows = {k: torch.cat([v, torch.zeros(n, 1, v.shape[2])], 1)  # the zero no-op row
            for k, v in {"entity": players, "item": item_rows, "market": mk_rows}.items()}
    logits = {}
    for head in PUBLIC_HEADS:
        h = lin(f"decoder.layers.{head}", hidden)
        if head in POINTER_ROWS:
            h = torch.matmul(rows[POINTER_ROWS[head]], h.unsqueeze(-1)).squeeze(-1)
        logits[head] = h.masked_fill(masks[head] == 0, -1e9)
    return logits, lin("value.fc", hidden)[:, 0]


@pytest.fixture(scope="module")
def batches():
    return [env_batch("tiny", 2, 40), env_batch("competition2023", 1, 6)]


def test_forward_equals_the_public_forward(batches):
    for env, td in batches:
        torch.manual_seed(0)
        policy = create_policy("jimyhzhu", env=env)
        with torch.no_grad():
            ours = policy.network(td.clone())
            idx = agents_to_check(td) if env.config.num_agents > 16 else torch.arange(td["agents"].numel())
            public = public_jimyhzhu(policy.state_dict(), *public_inputs(td, idx))
        assert_same_outputs(ours, public, idx)
