"""Takeru's ReducedModelV2 rebuilt as public: the parameter count, the ordered layer shapes,
the deleted give heads, and the forward pass against a straight-line re-statement of [T]
Netease-Games-OPD-AI/neural-mmo-2023 @ 2364891 reinforcement_learning/policy_reduce_v2.py,
loaded with our weights, on real env batches."""

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
    weights,
)

DELETED = {"give_item": -1, "give_target": -1, "give_gold_amount": 0, "give_gold_target": -1}


def test_parameter_count_and_layers_are_public():
    p = create_policy("takeru", config=make_config("competition2023"), task_dim=4096)
    assert p.num_parameters() == 2_988_548
    L, E, C = "Linear", "Embedding", "Conv2d"
    public = [(E, (256, 32)), (C, (16, 32, 3, 3)), (C, (8, 16, 3, 3)), (L, (256, 968)),  # ReducedTileEncoder
              (E, (1024, 32)), (L, (256, 155)), (L, (256, 155)),  # ReducedPlayerEncoder: 4*32 + 27
              (E, (256, 32)), (L, (256, 76)),  # ReducedItemEncoder
              (L, (256, 3072)), (L, (256, 256)), (L, (256, 4096)), (L, (256, 1280)),
              # ReducedActionDecoder: style, attack, buy, destroy, move, sell, price, use
              (L, (3, 256)), (L, (256, 256)), (L, (256, 256)), (L, (256, 256)), (L, (5, 256)),
              (L, (256, 256)), (L, (99, 256)), (L, (256, 256)),
              (L, (1, 256))]
    assert layer_shapes(p) == public


def public_takeru(sd, tile, entity, inventory, market, task, my_id, masks):
    """[T] ReducedModelV2 on one batch of agents, from our state dict."""
    W, lin = weights(sd)
    n = tile.shape[0]
    # ReducedTileEncoder: material only
    t = F.embedding(tile[:, :, 2:].long().clip(0, 255), W("tile.embed"))
    t = t.view(n, 225, 32).transpose(1, 2).reshape(n, 32, 15, 15)
    t = F.relu(F.conv2d(t, W("tile.conv1"), sd["tile.conv1.bias"]))
    t = F.relu(F.conv2d(t, W("tile.conv2"), sd["tile.conv2.bias"]))
    t = F.relu(lin("tile.fc", t.reshape(n, -1)))
    # ReducedPlayerEncoder (nmmo 2.0 entity columns: id 0, npc_type 1, row 2, col 3, damage 4,
    # time_alive 5, freeze 6, item_level 7, attacker_id 8, latest_combat_tick 9, message 10,
    # gold 11, health 12, food 13, water 14, then (level, exp) of 8 skills from 15)
    row = my_row(entity[:, :, 0], my_id)
    discrete = entity[:, :, [0, 1, 8, 10]] + torch.tensor([0.0, 256.0, 512.0, 768.0])
    discrete = F.embedding(discrete.long().clip(0, 255), W("entity.embed")).view(n, entity.shape[1], 128)
    cols = [2, 3, 4, 5, 6, 7, 9, 11, 12, 13, 14] + list(range(15, 31))
    scale = torch.tensor([256, 256, 100, 1024, 3, 50, 1024, 100, 100, 100, 100]
                         + [10, 100] * 7 + [100, 10], dtype=torch.float32)  # alchemy swapped
    e = torch.cat([discrete, entity[:, :, cols] / scale], -1)
    players = lin("entity.agent_fc", e)
    me = F.relu(lin("entity.my_agent_fc", e[torch.arange(n), row]))

    # ReducedItemEncoder: real divisors
    def items(x):
        d = x[:, :, [1, 14]] + torch.tensor([2.0, 0.0])
        d = F.embedding(d.long().clip(0, 255), W("item.embed")).view(x.shape[0], x.shape[1], 64)
        scale = torch.tensor([10.0, 10, 10, 100, 100, 100, 40, 40, 40, 100, 100, 100])
        return lin("item.fc", torch.cat([d, x[:, :, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]] / scale], -1))

    inv_rows = items(inventory)
    inv = lin("inventory.fc", inv_rows.view(n, -1))
    mk_rows = items(market)
    mk = lin("market.fc", mk_rows).mean(-2)
    hidden = lin("fusion.proj", torch.cat([t, me, inv, mk, lin("task.fc", task)], -1))
    # ReducedActionDecoder: the give heads deleted (act_noob_action: a fixed index, the env mask
    # not looked at)
    return public_decoder(sd, hidden, {"entity": players, "item": inv_rows, "market": mk_rows}, masks,
                          fixed=DELETED)


@pytest.fixture(scope="module")
def batches():
    return forward_batches()


def test_forward_equals_the_public_forward(batches):
    assert_forward_is_public("takeru", public_takeru, batches)


def test_deleted_heads_are_fixed_and_add_nothing(batches):
    env, td = batches[0]
    policy = create_policy("takeru", env=env)
    assert not set(DELETED) & set(policy.decoder.layers)
    td = td.clone()
    policy.act(td)
    out = policy.network(td)
    for h, i in DELETED.items():
        n = out["logits"][h].shape[-1]
        assert (td["agents", "action", h] == i % n).all(), h
        dist = torch.distributions.Categorical(logits=out["logits"][h])
        assert (dist.log_prob(td["agents", "action", h]) == 0).all() and (dist.entropy() == 0).all(), h
        # The fixed action is one the env allows.
        assert td["agents", "action_mask", h][..., i % n].all(), h
