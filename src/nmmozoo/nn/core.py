"""Fusion, memory, value heads and action restrictions."""

from __future__ import annotations

import torch
from timm.layers import Mlp
from torch import nn

from ..env import constants as C
from .encoders import get_activation
from .registry import SpecError, register


@register("fusion", "concat_mlp")
class ConcatMLP(nn.Module):
    """Concatenate the streams (in the spec's ``streams`` order) and project: the baseline's
    ``proj_fc`` 5·256 → 256 ([B] policy.py l.50, l.70-71; Jimyhzhu's 6·256, [J] l.52) →
    LayerNorm if ``norm`` → ``activation`` (public baseline, Takeru, Jimyhzhu: none; Yao Feng:
    relu). ``layers`` > 1 adds a residual MLP after it (no public model has one)."""

    def __init__(self, hidden: int, streams: int, activation: str = "none", layers: int = 1,
                 norm: bool = False):
        super().__init__()
        self.act = get_activation(activation)
        self.proj = nn.Linear(streams * hidden, hidden)
        self.norm = nn.LayerNorm(hidden) if norm else nn.Identity()
        self.mlp = (Mlp(hidden, hidden, hidden, norm_layer=nn.LayerNorm if norm else None)
                    if layers > 1 else nn.Identity())

    def forward(self, streams: list[torch.Tensor]) -> torch.Tensor:
        x = self.act(self.norm(self.proj(torch.cat(streams, -1))))
        return x + self.mlp(x) if not isinstance(self.mlp, nn.Identity) else x


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


# --- action restrictions: they narrow the masks the env gives ----------------------------------------
@register("restriction", "fixed_heads")
class FixedHeads:
    """Each named head's mask becomes one-hot at the given index (−1 = the last option, the
    no-op of item/target heads), whatever the env allows: the head always takes that action.
    Takeru deleted his give and give-gold layers and emits fixed logits for them ([T]
    policy_reduce_v2.py l.324-327, l.345-356: no-op, gold amount index 0); pair it with
    ``pointer_decoder``'s ``drop``. A fixed head has one option, so its log-probability and
    entropy are exactly 0."""

    def __init__(self, heads: dict, head_sizes: dict):
        self.fixed = {}
        for h, i in heads.items():
            if h not in head_sizes:
                raise SpecError(f"heads: unknown head {h!r}; heads: {list(head_sizes)}")
            n = head_sizes[h]
            if not isinstance(i, int) or isinstance(i, bool) or not -n <= i < n:
                raise SpecError(f"heads.{h}: expected an index in [-{n}, {n}), got {i!r}")
            self.fixed[h] = i % n

    def __call__(self, masks, entity):
        for h, i in self.fixed.items():
            m = torch.zeros_like(masks[h])
            m[..., i] = True
            masks[h] = m
        return masks


@register("restriction", "no_attack_npc_types")
class NoAttackNPCTypes:
    """Attack targets whose ``npc_type`` is one of ``npc_types`` are masked (e.g. [2]: Yao
    Feng's competition code never attacks neutral NPCs); where nothing is left the no-op is
    allowed, so every agent keeps a valid option."""

    def __init__(self, npc_types: list):
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in npc_types):
            raise SpecError(f"npc_types: expected a list of integers, got {npc_types!r}")
        self.kinds = torch.tensor(npc_types, dtype=torch.long)

    def __call__(self, masks, entity):
        kind = entity[..., C.COL["npc_type"]].long()
        bad = torch.isin(kind, self.kinds.to(kind.device)) & (entity[..., C.COL["id"]] != 0)
        m = masks["attack_target"].clone()
        m[..., :-1] &= ~bad
        m[..., -1] |= ~m[..., :-1].any(-1)
        masks["attack_target"] = m
        return masks
