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

from ._fidelity import (
    assert_forward_is_public,
    forward_batches,
    layer_shapes,
    my_row,
    public_decoder,
    public_tile_encoder,
    weights,
)

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
    _, lin = weights(sd)
    n = tile.shape[0]
    t = public_tile_encoder(sd, tile)  # TileEncoder (the baseline's)
    # PlayerEncoder: npc_type one-hot (5) in place of column 1, the rest raw
    npc = F.one_hot(entity[:, :, 1].long(), 5).float()
    one_hot = torch.cat([entity[:, :, :1], npc, entity[:, :, 2:]], -1)
    row = my_row(one_hot[:, :, 0], my_id)
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
    return public_decoder(sd, hidden, rows, masks)


@pytest.fixture(scope="module")
def batches():
    return forward_batches()


def test_forward_equals_the_public_forward(batches):
    assert_forward_is_public("jimyhzhu", public_jimyhzhu, batches)
