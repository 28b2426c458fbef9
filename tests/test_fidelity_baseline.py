"""The 2023 baseline (and Mori, whose policy.py is byte-identical) rebuilt as public: the
parameter count, the ordered layer shapes, and the forward pass against a straight-line
re-statement of [B] NeuralMMO/baselines @ 6654f30 reinforcement_learning/policy.py
(Baseline.encode_observations + decode_actions), loaded with our weights, on real env batches."""

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


def public_layers(task_dim=4096):
    L, E, C = "Linear", "Embedding", "Conv2d"
    dec = [(L, (3, 256)), (L, (256, 256)), (L, (256, 256)), (L, (256, 256)), (L, (256, 256)),
           (L, (256, 256)), (L, (99, 256)), (L, (256, 256)), (L, (5, 256)), (L, (256, 256)),
           (L, (99, 256)), (L, (256, 256))]
    return ([(E, (768, 32)), (C, (32, 96, 3, 3)), (C, (8, 32, 3, 3)), (L, (256, 968)),  # TileEncoder
             (E, (7936, 32)), (L, (256, 992)), (L, (256, 992)),  # PlayerEncoder
             (E, (256, 32)), (L, (256, 76)),  # ItemEncoder
             (L, (256, 3072)), (L, (256, 256)), (L, (256, task_dim)),  # inventory, market, task
             (L, (256, 1280))] + dec + [(L, (1, 256))])  # proj_fc, ActionDecoder, value_head


@pytest.mark.parametrize("name", ["baseline", "mori"])
def test_parameter_count_and_layers_are_public(name):
    p = create_policy(name, config=make_config("competition2023"), task_dim=4096)
    assert p.num_parameters() == 3_901_687
    assert layer_shapes(p) == public_layers()
    assert all(isinstance(getattr(m, "bias", None), torch.nn.Parameter) for m in p.modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))


# --- the public forward, restated -------------------------------------------------------------------
def public_baseline(sd, tile, entity, inventory, market, task, my_id, masks):
    """[B] policy.py Baseline on one batch of agents, from our state dict. Observations as the
    public env gives them (float, market per agent); masks keyed by our head names."""
    W, lin = weights(sd)
    n = tile.shape[0]
    t = public_tile_encoder(sd, tile)  # TileEncoder
    # PlayerEncoder
    row = my_row(entity[:, :, 0], my_id)
    e = F.embedding(entity.long().clip(0, 255) + torch.arange(31) * 256, W("entity.embed"))
    e = e.view(n, entity.shape[1], 31 * 32)
    mine = e[torch.arange(n), row]
    players = lin("entity.agent_fc", e)
    me = F.relu(lin("entity.my_agent_fc", mine))

    # ItemEncoder (the scale is divided: 1/10, 1/100, 1/40 multiply)
    def items(x):
        d = x[:, :, [1, 14]] + torch.tensor([2.0, 0.0])
        d = F.embedding(d.long().clip(0, 255), W("item.embed")).view(x.shape[0], x.shape[1], 64)
        scale = torch.tensor([1 / 10, 1 / 10, 1 / 10, 1 / 100, 1 / 100, 1 / 100, 1 / 40, 1 / 40, 1 / 40,
                              1 / 100, 1 / 100, 1 / 100])
        c = x[:, :, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]] / scale
        return lin("item.fc", torch.cat([d, c], -1))

    inv_rows = items(inventory)
    inv = lin("inventory.fc", inv_rows.view(n, -1))
    mk_rows = items(market)
    mk = lin("market.fc", mk_rows).mean(-2)
    tk = lin("task.fc", task.clone())
    hidden = lin("fusion.proj", torch.cat([t, me, inv, mk, tk], -1))
    # ActionDecoder + value_head
    return public_decoder(sd, hidden, {"entity": players, "item": inv_rows, "market": mk_rows}, masks)


@pytest.fixture(scope="module")
def batches():
    return forward_batches()


@pytest.mark.parametrize("name", ["baseline", "mori"])
def test_forward_equals_the_public_forward(name, batches):
    assert_forward_is_public(name, public_baseline, batches)
