"""Observation encoders: tiles, entities, items, poolers and the task. Each maps one part of
the 2.0 observation to ``hidden``-sized features; sizes come from the env, never constants."""

from __future__ import annotations

import torch
from timm.layers import Mlp
from torch import nn

from ..env import constants as C
from .registry import register

# Scales that bring raw int16 columns near [0, 1] (continuous encoders).
ENTITY_SCALE = torch.tensor(
    [1.0, 3.0, 160.0, 160.0, 100.0, 1024.0, 10.0, 50.0, 1.0, 1024.0, 50.0, 100.0, 100.0, 100.0, 100.0]
    + [10.0, 2000.0] * C.NUM_SKILLS)
ITEM_SCALE = torch.tensor([1.0, 17.0, 1.0, 10.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0,
                           100.0, 100.0, 100.0, 1.0, 100.0])
ITEM_CONTINUOUS = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]  # all but id, type, owner, equipped
ENTITY_IDS = (C.COL["id"], C.COL["attacker_id"])


class _EmbeddingLookup(torch.autograd.Function):
    """Row lookup whose weight gradient is one ``index_add_`` (on CPU about 4x faster than
    the sort-based backward of ``F.embedding`` for the millions of small-vocabulary indices
    the tile and entity encoders look up)."""

    @staticmethod
    def forward(ctx, weight, index):
        ctx.save_for_backward(index)
        ctx.rows = weight.shape[0]
        return weight[index]

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.rows, grad.shape[-1])
        return out.index_add_(0, index.reshape(-1), grad.reshape(-1, grad.shape[-1])), None


class Embedding(nn.Embedding):
    """``nn.Embedding`` (same weights and state-dict keys) with the faster CPU backward."""

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        if self.weight.device.type != "cpu" or not torch.is_grad_enabled():
            return super().forward(index)
        return _EmbeddingLookup.apply(self.weight, index)


def relative_tiles(tile: torch.Tensor, vision: int) -> torch.Tensor:
    """Row/col columns made relative to the window's centre: 0..2·vision."""
    centre = tile[..., (tile.shape[-2] // 2), :2]
    rel = tile[..., :2] - centre[..., None, :] + vision
    return torch.cat([rel, tile[..., 2:]], -1)


# --- tiles -----------------------------------------------------------------------------------------
@register("tile", "tile_embed_cnn")
class TileEmbedCNN(nn.Module):
    """2023 baseline: the 3 columns (relative row, col, material) embedded, two 3×3 convs, FC."""

    def __init__(self, hidden: int, window: int, embed_dim: int = 32, channels: int = 32,
                 out_channels: int = 8):
        super().__init__()
        self.window, self.vision = window, window // 2
        self.embed = Embedding(256, embed_dim)
        self.conv1 = nn.Conv2d(3 * embed_dim, channels, 3)
        self.conv2 = nn.Conv2d(channels, out_channels, 3)
        side = window - 4
        self.fc = nn.Linear(out_channels * side * side, hidden)

    def forward(self, tile: torch.Tensor) -> torch.Tensor:
        x = relative_tiles(tile.long(), self.vision).clamp(0, 255)
        x = self.embed(x).flatten(-2)  # [N, 225, 3*E]
        x = x.transpose(1, 2).reshape(x.shape[0], -1, self.window, self.window)
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return torch.relu(self.fc(x.flatten(1)))


@register("tile", "tile_material_cnn")
class TileMaterialCNN(nn.Module):
    """Takeru: the material alone, one-hot, two 3×3 convs and an FC (positions dropped)."""

    def __init__(self, hidden: int, window: int, channels: int = 32, out_channels: int = 8):
        super().__init__()
        self.window = window
        self.conv1 = nn.Conv2d(C.NUM_MATERIALS, channels, 3)
        self.conv2 = nn.Conv2d(channels, out_channels, 3)
        self.fc = nn.Linear(out_channels * (window - 4) ** 2, hidden)

    def forward(self, tile: torch.Tensor) -> torch.Tensor:
        m = tile[..., 2].long().clamp(0, C.NUM_MATERIALS - 1)
        x = nn.functional.one_hot(m, C.NUM_MATERIALS).float().transpose(1, 2)
        x = x.reshape(x.shape[0], -1, self.window, self.window)
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return torch.relu(self.fc(x.flatten(1)))


class _ResBlock(nn.Module):
    def __init__(self, ch: int, window: int):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(ch, ch, 3, padding=1), nn.Conv2d(ch, ch, 3, padding=1)
        self.n1 = nn.LayerNorm([ch, window, window])
        self.n2 = nn.LayerNorm([ch, window, window])

    def forward(self, x):
        y = self.c1(torch.relu(self.n1(x)))
        return x + self.c2(torch.relu(self.n2(y)))


@register("tile", "tile_resnet")
class TileResNet(nn.Module):
    """Yao Feng: material one-hot plus the window's normalised absolute position, a conv stem,
    residual blocks with LayerNorm before activations, FC."""

    def __init__(self, hidden: int, window: int, map_size: int, channels: int = 32, blocks: int = 2):
        super().__init__()
        self.window, self.map_size = window, map_size
        self.stem = nn.Conv2d(C.NUM_MATERIALS + 2, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[_ResBlock(channels, window) for _ in range(blocks)])
        self.pool = nn.Conv2d(channels, 8, 3, stride=2)
        side = (window - 3) // 2 + 1
        self.norm = nn.LayerNorm(8 * side * side)
        self.fc = nn.Linear(8 * side * side, hidden)

    def forward(self, tile: torch.Tensor) -> torch.Tensor:
        N = tile.shape[0]
        m = nn.functional.one_hot(tile[..., 2].long().clamp(0, C.NUM_MATERIALS - 1), C.NUM_MATERIALS).float()
        pos = tile[..., :2].float() / self.map_size
        x = torch.cat([m, pos], -1).transpose(1, 2).reshape(N, -1, self.window, self.window)
        x = self.pool(torch.relu(self.blocks(self.stem(x))))
        return torch.relu(self.fc(torch.relu(self.norm(x.flatten(1)))))


@register("tile", "tile_attn_cnn")
class TileAttnCNN(nn.Module):
    """Saidinesh: a deeper CNN with SiLU, then multi-head self-attention over the cells."""

    def __init__(self, hidden: int, window: int, channels: int = 64, heads: int = 4):
        super().__init__()
        self.window = window
        self.convs = nn.Sequential(
            nn.Conv2d(C.NUM_MATERIALS + 2, channels, 3, padding=1), nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.SiLU(),
            nn.Conv2d(channels, channels, 3, stride=2), nn.SiLU())
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm = nn.LayerNorm(channels)
        self.fc = nn.Linear(channels, hidden)

    def forward(self, tile: torch.Tensor) -> torch.Tensor:
        N, w = tile.shape[0], self.window
        m = nn.functional.one_hot(tile[..., 2].long().clamp(0, C.NUM_MATERIALS - 1), C.NUM_MATERIALS).float()
        rel = relative_tiles(tile.long(), w // 2)[..., :2].float() / (w - 1)
        x = torch.cat([m, rel], -1).transpose(1, 2).reshape(N, -1, w, w)
        x = self.convs(x).flatten(2).transpose(1, 2)  # [N, cells, ch]
        x = self.norm(x + self.attn(x, x, x, need_weights=False)[0])
        return torch.relu(self.fc(x.mean(1)))


# --- entities ----------------------------------------------------------------------------------------
def own_row(entity: torch.Tensor, agent_id: torch.Tensor) -> torch.Tensor:
    """Index of the agent's own row among its entity rows ``[N]`` (0 if absent)."""
    return (entity[..., C.COL["id"]] == agent_id[:, None]).to(torch.uint8).argmax(-1)


class _EntityBase(nn.Module):
    def split(self, rows: torch.Tensor, feats: torch.Tensor, entity, agent_id):
        me = own_row(entity, agent_id)
        mine = feats[torch.arange(feats.shape[0], device=feats.device), me]
        return rows, mine


@register("entity", "entity_embed")
class EntityEmbed(_EntityBase):
    """2023 baseline: every attribute clipped to 0..255 and embedded, FC per entity; a second FC
    for the agent's own row."""

    def __init__(self, hidden: int, entity_cols: int, embed_dim: int = 32):
        super().__init__()
        self.embed = Embedding(256, embed_dim)
        self.player_fc = nn.Linear(entity_cols * embed_dim, hidden)
        self.agent_fc = nn.Linear(entity_cols * embed_dim, hidden)

    def forward(self, entity, agent_id):
        x = self.embed(entity.long().clamp(0, 255)).flatten(-2)
        rows = self.player_fc(x)
        _, mine = self.split(rows, x, entity, agent_id)
        return rows, self.agent_fc(mine)


@register("entity", "entity_continuous")
class EntityContinuous(_EntityBase):
    """Takeru / Yao Feng: attributes scaled to about [0, 1] as continuous features, ids
    embedded (hashed into ``id_buckets``), an MLP per entity with LayerNorm."""

    def __init__(self, hidden: int, entity_cols: int, id_dim: int = 16, id_buckets: int = 512):
        super().__init__()
        self.register_buffer("scale", ENTITY_SCALE[:entity_cols].clone(), persistent=False)
        self.id_embed = Embedding(id_buckets, id_dim)
        self.buckets = id_buckets
        self.mlp = Mlp(entity_cols + 2 * id_dim, hidden, hidden, norm_layer=nn.LayerNorm)
        self.agent_fc = nn.Linear(hidden, hidden)

    def forward(self, entity, agent_id):
        x = entity.float() / self.scale
        ids = torch.cat([self.id_embed(entity[..., c].long() % self.buckets) for c in ENTITY_IDS], -1)
        rows = self.mlp(torch.cat([x, ids], -1))
        _, mine = self.split(rows, rows, entity, agent_id)
        return rows, self.agent_fc(mine)


@register("entity", "entity_onehot")
class EntityOneHot(_EntityBase):
    """Jimyhzhu: categorical attributes one-hot (npc type, levels), the rest scaled to [0, 1]."""

    def __init__(self, hidden: int, entity_cols: int):
        super().__init__()
        self.register_buffer("scale", ENTITY_SCALE[:entity_cols].clone(), persistent=False)
        self.levels = [C.COL[f"{s}_level"] for s in C.SKILL_NAMES]
        width = entity_cols + 4 + 11 * len(self.levels)
        self.mlp = Mlp(width, hidden, hidden)
        self.agent_fc = nn.Linear(hidden, hidden)

    def forward(self, entity, agent_id):
        x = entity.float() / self.scale
        kind = nn.functional.one_hot(entity[..., C.COL["npc_type"]].long().clamp(0, 3), 4).float()
        lv = nn.functional.one_hot(entity[..., self.levels].long().clamp(0, 10), 11).float().flatten(-2)
        rows = self.mlp(torch.cat([x, kind, lv], -1))
        _, mine = self.split(rows, rows, entity, agent_id)
        return rows, self.agent_fc(mine)


@register("entity", "entity_attention")
class EntityAttention(_EntityBase):
    """Continuous entity features followed by multi-head self-attention across the visible
    entities (empty rows masked)."""

    def __init__(self, hidden: int, entity_cols: int, heads: int = 4, layers: int = 1):
        super().__init__()
        self.inner = EntityContinuous(hidden, entity_cols)
        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, 0.0,
                                                               batch_first=True, norm_first=True)
                                    for _ in range(layers))

    def forward(self, entity, agent_id):
        rows, _ = self.inner(entity, agent_id)
        pad = entity[..., C.COL["id"]] == 0
        pad = pad & ~pad.all(-1, keepdim=True)  # keep one row for agents that see nothing
        for layer in self.layers:
            rows = layer(rows, src_key_padding_mask=pad)
        _, mine = self.split(rows, rows, entity, agent_id)
        return rows, self.inner.agent_fc(mine)


# --- items -------------------------------------------------------------------------------------------
@register("item", "item_embed")
class ItemEmbed(nn.Module):
    """2023 baseline: type and equipped embedded, the 12 other numeric columns scaled, FC
    (shared by inventory and market)."""

    def __init__(self, hidden: int, embed_dim: int = 32):
        super().__init__()
        self.type_embed = Embedding(256, embed_dim)
        self.equip_embed = Embedding(256, embed_dim)
        self.register_buffer("scale", ITEM_SCALE[ITEM_CONTINUOUS].clone(), persistent=False)
        self.fc = nn.Linear(2 * embed_dim + len(ITEM_CONTINUOUS), hidden)

    def forward(self, items):
        t = self.type_embed(items[..., 1].long().clamp(0, 255))
        e = self.equip_embed(items[..., 14].long().clamp(0, 255))
        x = items[..., ITEM_CONTINUOUS].float() / self.scale
        return torch.relu(self.fc(torch.cat([t, e, x], -1)))


@register("item", "item_onehot")
class ItemOneHot(nn.Module):
    """One-hot type and equipped flag plus scaled numeric columns, MLP."""

    def __init__(self, hidden: int):
        super().__init__()
        self.register_buffer("scale", ITEM_SCALE[ITEM_CONTINUOUS].clone(), persistent=False)
        self.mlp = Mlp(C.NUM_ITEM_TYPES + 2 + len(ITEM_CONTINUOUS), hidden, hidden)

    def forward(self, items):
        t = nn.functional.one_hot(items[..., 1].long().clamp(0, C.NUM_ITEM_TYPES - 1), C.NUM_ITEM_TYPES)
        e = nn.functional.one_hot(items[..., 14].long().clamp(0, 1), 2)
        x = items[..., ITEM_CONTINUOUS].float() / self.scale
        return self.mlp(torch.cat([t.float(), e.float(), x], -1))


# --- poolers (inventory, market, other agents) ------------------------------------------------------
@register("pool", "flatten_fc")
class FlattenFC(nn.Module):
    """Baseline inventory: the item embeddings flattened, one FC."""

    def __init__(self, hidden: int, rows: int):
        super().__init__()
        self.fc = nn.Linear(rows * hidden, hidden)

    def forward(self, x, mask):
        return torch.relu(self.fc((x * mask[..., None]).flatten(-2)))


@register("pool", "mean_fc")
class MeanFC(nn.Module):
    """Baseline market: FC per row, then the mean over the non-empty rows."""

    def __init__(self, hidden: int):
        super().__init__()
        self.fc = nn.Linear(hidden, hidden)

    def forward(self, x, mask):
        m = mask[..., None].float()
        return torch.relu(self.fc(x) * m).sum(-2) / m.sum(-2).clamp_min(1)


@register("pool", "mean")
class Mean(nn.Module):
    """Average of the non-empty rows (Jimyhzhu)."""

    def __init__(self, hidden: int):
        super().__init__()

    def forward(self, x, mask):
        m = mask[..., None].float()
        return (x * m).sum(-2) / m.sum(-2).clamp_min(1)


@register("pool", "attention")
class AttentionPool(nn.Module):
    """A learned query attending over the non-empty rows."""

    def __init__(self, hidden: int, heads: int = 4):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(1, 1, hidden))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.attn = nn.MultiheadAttention(hidden, heads, batch_first=True)

    def forward(self, x, mask):
        lead = x.shape[:-2]
        x = x.reshape(-1, *x.shape[-2:])
        pad = ~mask.reshape(-1, mask.shape[-1])
        pad = pad & ~pad.all(-1, keepdim=True)
        out = self.attn(self.query.expand(x.shape[0], -1, -1), x, x, key_padding_mask=pad,
                        need_weights=False)[0]
        return out.reshape(*lead, -1)


# --- task --------------------------------------------------------------------------------------------
@register("task", "task_fc")
class TaskFC(nn.Module):
    """The task embedding through one FC."""

    def __init__(self, hidden: int, task_dim: int):
        super().__init__()
        self.fc = nn.Linear(task_dim, hidden)

    def forward(self, task):
        return torch.relu(self.fc(task.float()))
