"""Action decoders: logits for the 12 argument heads from the fused state and the rows
(entities, inventory items, market listings) the pointer heads choose among."""

from __future__ import annotations

import torch
from torch import nn

from ..env.torchrl_env import ACTION_HEADS
from .registry import register


def _ordered(head_sizes: dict) -> dict:
    """Heads in the env's order, whatever order the sizes came in (stable weights layout)."""
    return {h: head_sizes[h] for h in ACTION_HEADS if h in head_sizes}

POINTER = {"attack_target": "entity", "give_target": "entity", "give_gold_target": "entity",
           "use_item": "inventory", "destroy_item": "inventory", "give_item": "inventory",
           "sell_item": "inventory", "buy_item": "market"}


def _pointer(query: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Dot products of a query ``[N, H]`` with rows ``[N, R, H]``, plus a no-op logit 0."""
    logits = torch.einsum("nh,nrh->nr", query, rows)
    return torch.cat([logits, logits.new_zeros(logits.shape[0], 1)], -1)


def _market_pointer(query: torch.Tensor, market: torch.Tensor, per_map: int) -> torch.Tensor:
    """Market logits without copying listings per agent: ``query`` ``[G*A, H]`` for ``G``
    maps of ``A`` agents, ``market`` ``[G, M, H]``."""
    G = market.shape[0]
    q = query.view(G, per_map, -1)
    logits = torch.einsum("gah,gmh->gam", q, market).reshape(G * per_map, -1)
    return torch.cat([logits, logits.new_zeros(logits.shape[0], 1)], -1)


@register("decoder", "pointer_decoder")
class PointerDecoder(nn.Module):
    """2023 baseline: linear heads for move, style, gold and price; pointer heads (a projected
    query dotted with the entity / item / listing embeddings, plus a no-op) for the rest."""

    def __init__(self, hidden: int, head_sizes: dict):
        super().__init__()
        self.sizes = _ordered(head_sizes)
        self.layers = nn.ModuleDict({h: nn.Linear(hidden, hidden if h in POINTER else n)
                                     for h, n in self.sizes.items()})

    def query(self, head: str, layer: nn.Module, x: torch.Tensor, rows) -> torch.Tensor:
        """The query a pointer head dots with its rows."""
        return layer(x)

    def forward(self, x, rows, agents_per_map):
        out = {}
        for h, layer in self.layers.items():
            if h not in POINTER:
                out[h] = layer(x)
            elif POINTER[h] == "market":
                out[h] = _market_pointer(layer(x), rows["market"], agents_per_map)
            else:
                out[h] = _pointer(self.query(h, layer, x, rows), rows[POINTER[h]])
        return out


@register("decoder", "linear_decoder")
class LinearDecoder(nn.Module):
    """Every head a linear layer over the fused state (targets by row position)."""

    def __init__(self, hidden: int, head_sizes: dict):
        super().__init__()
        self.layers = nn.ModuleDict({h: nn.Linear(hidden, n) for h, n in _ordered(head_sizes).items()})

    def forward(self, x, rows, agents_per_map):
        return {h: layer(x) for h, layer in self.layers.items()}


@register("decoder", "cross_attention_decoder")
class CrossAttentionDecoder(PointerDecoder):
    """Pointer heads whose query first attends over the rows it points into."""

    def __init__(self, hidden: int, head_sizes: dict, heads: int = 4):
        super().__init__(hidden, head_sizes)
        self.attn = nn.ModuleDict({k: nn.MultiheadAttention(hidden, heads, batch_first=True)
                                   for k in ("entity", "inventory")})

    def query(self, head, layer, x, rows):
        kind = POINTER[head]
        ctx = self.attn[kind](x[:, None], rows[kind], rows[kind], need_weights=False)[0][:, 0]
        return layer(x + ctx)
