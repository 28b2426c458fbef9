"""Saidinesh's decoder: one multi-layer LSTM run along three sequences (the entity rows, the
inventory rows, and the fused state as a one-step sequence), one self-attention shared by the
three and applied within each, then [before, after] through a shared FC + ReLU, and the
baseline's linear and pointer heads on the results.

State convention. The public module keeps each sequence's final (h, c) on itself and feeds it
to the same sequence at the next call, whatever batch that call holds. Here every call starts
the three sequences from zero (see ``models/saidinesh.yaml``, ``card.differences``), so the
output is a function of the observation alone and acting and training agree."""

from __future__ import annotations

import torch
from torch import nn

from .decoders import PointerDecoder, dense_rows
from .registry import register


class RowSelfAttention(nn.Module):
    """Multi-head self-attention over the rows of ``[N, T, H]``: bias-free key, query and value
    projections of ``heads`` × ``head_dim``, scaled dot product, softmax over the keys, and the
    heads concatenated (no output projection, no mask, no residual)."""

    def __init__(self, hidden: int, heads: int = 4, head_dim: int = 64):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        width = heads * head_dim
        # Registration order as public: keys, queries, values.
        self.keys = nn.Linear(hidden, width, bias=False)
        self.queries = nn.Linear(hidden, width, bias=False)
        self.values = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, T, _ = x.shape
        split = lambda y: y.view(N, T, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.queries(x)), split(self.keys(x)), split(self.values(x))
        out = nn.functional.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head_dim)
        return out.transpose(1, 2).reshape(N, T, self.heads * self.head_dim)


@register("decoder", "sequence_attention_decoder")
class SequenceAttentionDecoder(nn.Module):
    """Saidinesh: an LSTM of ``lstm_layers`` along the entity rows, the inventory rows and the
    fused state (each its own sequence, from a zero state), one shared self-attention within
    each, a shared FC over [before, after] with ReLU, then the baseline's 12 heads."""

    def __init__(self, hidden: int, head_sizes: dict, lstm_layers: int = 5, heads: int = 4):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"heads: {heads} does not divide hidden {hidden}")
        # Registration order as public: heads, attention, FC, LSTM.
        self.heads = PointerDecoder(hidden, head_sizes)
        self.attn = RowSelfAttention(hidden, heads, hidden // heads)
        self.fc = nn.Linear(2 * hidden, hidden)
        self.rnn = nn.LSTM(hidden, hidden, lstm_layers, batch_first=True)

    def mix(self, seq: torch.Tensor) -> torch.Tensor:
        """One sequence ``[N, T, H]``: LSTM from zero, self-attention, FC over [before, after]."""
        after = self.attn(self.rnn(seq)[0])
        return torch.relu(self.fc(torch.cat([seq, after], -1)))

    def forward(self, x, rows, where):
        entity = self.mix(dense_rows(rows["entity"]))  # the LSTM reads every row
        inventory = self.mix(dense_rows(rows["inventory"]))
        state = self.mix(x[:, None])[:, 0]
        return self.heads(state, {"entity": entity, "inventory": inventory, "market": rows["market"]},
                          where)
