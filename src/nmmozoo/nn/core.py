"""Fusion, memory, value heads and action restrictions."""

from __future__ import annotations

import torch
from timm.layers import Mlp
from torch import nn

from ..env import constants as C
from .registry import register


@register("fusion", "concat_mlp")
class ConcatMLP(nn.Module):
    """Concatenate the streams and project (the baseline's 1280→256 FC); ``layers`` > 1 adds
    an MLP with optional LayerNorm."""

    def __init__(self, hidden: int, streams: int, layers: int = 1, norm: bool = False):
        super().__init__()
        self.proj = nn.Linear(streams * hidden, hidden)
        self.norm = nn.LayerNorm(hidden) if norm else nn.Identity()
        self.mlp = (Mlp(hidden, hidden, hidden, norm_layer=nn.LayerNorm if norm else None)
                    if layers > 1 else nn.Identity())

    def forward(self, streams: list[torch.Tensor]) -> torch.Tensor:
        x = torch.relu(self.norm(self.proj(torch.cat(streams, -1))))
        return x + self.mlp(x) if not isinstance(self.mlp, nn.Identity) else x


@register("fusion", "stream_attention")
class StreamAttention(nn.Module):
    """Saidinesh: self-attention across the streams (one token each), then a projection."""

    def __init__(self, hidden: int, streams: int, heads: int = 4):
        super().__init__()
        self.type_embed = nn.Parameter(torch.zeros(streams, hidden))
        nn.init.trunc_normal_(self.type_embed, std=0.02)
        self.layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, 0.0, batch_first=True,
                                                norm_first=True)
        self.proj = nn.Linear(streams * hidden, hidden)

    def forward(self, streams):
        x = torch.stack(streams, -2) + self.type_embed
        lead = x.shape[:-2]
        x = self.layer(x.reshape(-1, *x.shape[-2:])).reshape(*lead, -1)
        return torch.relu(self.proj(x))


@register("memory", "none")
class NoMemory(nn.Module):
    """No recurrent state (the 2023 baseline)."""

    layers = 0

    def __init__(self, hidden: int):
        super().__init__()

    def forward(self, x, state, reset):
        return x, state

    def sequence(self, x, state, reset):
        return x, state


@register("memory", "lstm")
class LSTMMemory(nn.Module):
    """An LSTM of ``layers`` cells; its state (h, c) travels with the agents and is zeroed
    where an episode starts. ``x`` may carry a time dimension ``[N, T, H]``."""

    def __init__(self, hidden: int, layers: int = 1):
        super().__init__()
        self.layers = layers
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True)

    def forward(self, x, state, reset):
        """``state`` ``[N, 2, layers, H]`` (or None), ``reset`` ``[N]`` bool."""
        N = x.shape[0]
        if state is None:
            state = x.new_zeros(N, 2, self.layers, x.shape[-1])
        state = state * (~reset).float()[:, None, None, None]
        h, c = state[:, 0].transpose(0, 1).contiguous(), state[:, 1].transpose(0, 1).contiguous()
        seq = x.dim() == 2
        out, (h, c) = self.lstm(x[:, None] if seq else x, (h, c))
        return (out[:, 0] if seq else out), torch.stack([h.transpose(0, 1), c.transpose(0, 1)], 1)

    def sequence(self, x, state, reset):
        """Truncated BPTT over ``x`` ``[N, T, H]`` from ``state`` at the first step, zeroing the
        state at every step where ``reset`` ``[N, T]`` marks an episode start."""
        outs = []
        for t in range(x.shape[1]):
            y, state = self(x[:, t], state, reset[:, t])
            outs.append(y)
        return torch.stack(outs, 1), state


@register("value", "linear_value")
class LinearValue(nn.Module):
    """One linear layer to the value."""

    def __init__(self, hidden: int):
        super().__init__()
        self.fc = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.fc(x).squeeze(-1)


@register("value", "mlp_value")
class MLPValue(nn.Module):
    """An MLP to the value."""

    def __init__(self, hidden: int):
        super().__init__()
        self.mlp = Mlp(hidden, hidden, 1)

    def forward(self, x):
        return self.mlp(x).squeeze(-1)


# --- action restrictions: they narrow the masks the env gives ----------------------------------------
GIVE_HEADS = ("give_item", "give_target", "give_gold_target")


@register("restriction", "no_give")
def no_give():
    """Takeru / Yao Feng: the give and give-gold heads keep only their no-op."""

    def apply(masks, entity):
        for h in GIVE_HEADS:
            m = torch.zeros_like(masks[h])
            m[..., -1] = True
            masks[h] = m
        return masks

    return apply


@register("restriction", "passive_npc_targets")
def passive_npc_targets():
    """Yao Feng: attacks only on players and passive NPCs (neutral/aggressive NPCs masked)."""

    def apply(masks, entity):
        kind = entity[..., C.COL["npc_type"]]
        ok = (kind == C.PLAYER) | (kind == C.PASSIVE)
        m = masks["attack_target"].clone()
        m[..., :-1] &= ok
        m[..., -1] |= ~m[..., :-1].any(-1)  # keep a valid option
        masks["attack_target"] = m
        return masks

    return apply
