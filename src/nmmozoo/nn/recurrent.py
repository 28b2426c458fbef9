"""Stacked LSTM cells with an activation after each cell (Yao Feng's 2023 memory: two
``LSTMCell`` layers, ReLU after each; CarperAI/nmmo-baselines @ f7d9850, contrib/sub_246505/policy.py)."""

from __future__ import annotations

import torch
from torch import nn

from .encoders import identity
from .registry import SpecError, register

ACTIVATIONS = {"relu": torch.relu, "none": identity}


@register("memory", "lstm_cells")
class LSTMCells(nn.Module):
    """``layers`` ``LSTMCell`` s, each fed the previous cell's hidden state passed through
    ``activation`` (``relu`` or ``none``); the output is the last cell's activated hidden
    state. The state holds the raw (not activated) ``h`` and ``c`` of every cell, travels with
    the agents, and is zeroed where an episode starts."""

    def __init__(self, hidden: int, layers: int = 2, activation: str = "relu"):
        super().__init__()
        if layers < 1:
            raise SpecError(f"layers must be ≥ 1, got {layers}")
        if activation not in ACTIVATIONS:
            raise SpecError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.layers, self.activation = layers, activation
        self.cells = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))

    def forward(self, x, state, reset):
        """One step: ``x`` ``[N, H]``, ``state`` ``[N, 2, layers, H]`` (or None), ``reset``
        ``[N]`` bool; returns the output ``[N, H]`` and the next state."""
        if state is None:
            state = x.new_zeros(x.shape[0], 2, self.layers, x.shape[-1])
        state = state.masked_fill(reset[:, None, None, None], 0.0)
        act = ACTIVATIONS[self.activation]
        hs, cs = [], []
        for i, cell in enumerate(self.cells):
            h, c = cell(x, (state[:, 0, i], state[:, 1, i]))
            hs.append(h)
            cs.append(c)
            x = act(h)
        return x, torch.stack([torch.stack(hs, 1), torch.stack(cs, 1)], 1)

    def sequence(self, x, state, reset):
        """``x`` ``[N, T, H]`` stepped in order from ``state`` at the first step (gradient
        through time within the sequence), zeroing the state where ``reset`` ``[N, T]`` marks
        an episode start. With sequences of length 1 every step starts from its own stored
        state and no gradient crosses steps, as in the 2023 training of these cells."""
        outs = []
        for t in range(x.shape[1]):
            y, state = self(x[:, t], state, reset[:, t])
            outs.append(y)
        return torch.stack(outs, 1), state
