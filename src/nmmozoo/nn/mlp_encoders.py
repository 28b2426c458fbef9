"""Entity and item encoders built on a two-layer ReLU MLP over raw features plus embedded ids
(Yao Feng's 2023 encoders; source: CarperAI/nmmo-baselines @ f7d9850, contrib/sub_246505/policy.py)."""

from __future__ import annotations

import torch
from torch import nn

from ..env import constants as C
from .encoders import Embedding, _EntityBase
from .registry import SpecError, register


def relu_mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    """Linear → ReLU → Linear (no activation after the last layer)."""
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


@register("entity", "entity_id_mlp")
class EntityIdMLP(_EntityBase):
    """``id`` and ``attacker_id`` shifted by ``id_offset``, clipped to ``[0, id_rows)`` and
    looked up in one shared table of ``id_dim``-d rows; the other columns but ``message``
    enter raw (unscaled). Linear → ReLU → Linear → ReLU per entity; then every row through
    FC → LayerNorm → ReLU (the rows the pointer heads read), and the agent's own row
    (taken before that FC) through a second FC → LayerNorm → ReLU."""

    def __init__(self, hidden: int, entity_cols: int, id_dim: int = 32, id_rows: int = 512,
                 id_offset: int = 256):
        super().__init__()
        if not 0 <= id_offset < id_rows:
            raise SpecError(f"id_offset must lie in [0, id_rows={id_rows}), got {id_offset}")
        self.id_cols = [C.COL["id"], C.COL["attacker_id"]]
        skip = set(self.id_cols) | {C.COL["message"]}
        self.raw_cols = [i for i in range(entity_cols) if i not in skip]
        self.id_rows, self.id_offset = id_rows, id_offset
        self.embedding = Embedding(id_rows, id_dim)
        self.mlp = relu_mlp(len(self.id_cols) * id_dim + len(self.raw_cols), hidden, hidden)
        self.agent_fc = nn.Linear(hidden, hidden)
        self.agent_norm = nn.LayerNorm(hidden)
        self.my_agent_fc = nn.Linear(hidden, hidden)
        self.my_agent_norm = nn.LayerNorm(hidden)

    def features(self, entity: torch.Tensor) -> torch.Tensor:
        ids = (entity[..., self.id_cols].long() + self.id_offset).clip(0, self.id_rows - 1)
        x = torch.cat([self.embedding(ids).flatten(-2), entity[..., self.raw_cols].float()], -1)
        return torch.relu(self.mlp(x))

    def row_head(self, x):
        return torch.relu(self.agent_norm(self.agent_fc(x)))

    def own_head(self, x):
        return torch.relu(self.my_agent_norm(self.my_agent_fc(x)))


# The 2023 baseline's item columns and its "scales", which the code divides by (so each column
# is multiplied by 10, 100 or 40); Yao Feng kept them.
ITEM_DISCRETE = [C.ITEM_COLUMNS.index("type_id"), C.ITEM_COLUMNS.index("equipped")]
ITEM_CONTINUOUS = [i for i, c in enumerate(C.ITEM_COLUMNS)
                   if c not in ("id", "type_id", "owner_id", "equipped")]
ITEM_DIVISORS = [1 / 10] * 3 + [1 / 100] * 3 + [1 / 40] * 3 + [1 / 100] * 3


@register("item", "item_embed_mlp")
class ItemEmbedMLP(nn.Module):
    """Type id (+ ``type_offset``) and equipped flag looked up in one shared 256-row table;
    the 12 numeric columns divided by the baseline's scales (×10 level/capacity/quantity,
    ×100 attacks, ×40 defences, ×100 restores and listed price); Linear → ReLU → Linear →
    LayerNorm → ReLU. Shared by inventory and market."""

    def __init__(self, hidden: int, embed_dim: int = 32, type_offset: int = 2):
        super().__init__()
        self.embedding = Embedding(256, embed_dim)
        self.register_buffer("offset", torch.tensor([float(type_offset), 0.0]), persistent=False)
        self.register_buffer("divisor", torch.tensor(ITEM_DIVISORS), persistent=False)
        self.mlp = relu_mlp(len(ITEM_DISCRETE) * embed_dim + len(ITEM_CONTINUOUS), hidden, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        discrete = (items[..., ITEM_DISCRETE].float() + self.offset).long().clip(0, 255)
        x = torch.cat([self.embedding(discrete).flatten(-2),
                       items[..., ITEM_CONTINUOUS].float() / self.divisor], -1)
        return torch.relu(self.norm(self.mlp(x)))
