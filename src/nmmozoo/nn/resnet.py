"""A residual tile encoder: the material embedded beside the tile's absolute map position, one
post-norm residual block at full window size, two valid convolutions and an FC with LayerNorm
(Yao Feng's 2023 tile encoder; CarperAI/nmmo-baselines @ f7d9850, contrib/sub_246505/policy.py)."""

from __future__ import annotations

import torch
from torch import nn

from ..env import constants as C
from .encoders import Embedding
from .registry import SpecError, register


class PostNormResBlock(nn.Module):
    """``x + LN(conv(ReLU(LN(conv(x)))))``: 3×3 same-size convolutions, each followed by a
    LayerNorm over (channels, height, width); no activation after the sum."""

    def __init__(self, channels: int, window: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = nn.LayerNorm([channels, window, window])
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.LayerNorm([channels, window, window])

    def forward(self, x: torch.Tensor, first: torch.Tensor | None = None) -> torch.Tensor:
        """``first``: ``conv1(x)`` when the caller computed it another way (exactly)."""
        y = self.norm2(self.conv2(torch.relu(self.norm1(self.conv1(x) if first is None else first))))
        return y + x


@register("tile", "tile_embed_resnet")
class TileEmbedResNet(nn.Module):
    """Material (clipped to the 16 materials) embedded in ``channels - 2`` dims, concatenated
    after the tile's absolute row and column mapped to ``pos / position_scale - 0.5``; one
    :class:`PostNormResBlock`, ReLU, valid 3×3 conv to ``mid_channels``, ReLU, valid 3×3 conv
    to ``out_channels``, ReLU, FC → LayerNorm → ReLU."""

    def __init__(self, hidden: int, window: int, channels: int = 64, mid_channels: int = 32,
                 out_channels: int = 8, position_scale: float = 128.0):
        super().__init__()
        if channels < 3:
            raise SpecError(f"channels must be ≥ 3 (2 position channels + an embedding), got {channels}")
        if window < 5:
            raise SpecError(f"two valid 3×3 convolutions need a window ≥ 5, got {window}")
        self.window, self.position_scale = window, float(position_scale)
        self.embedding = Embedding(C.NUM_MATERIALS, channels - 2)
        self.block = PostNormResBlock(channels, window)
        self.conv1 = nn.Conv2d(channels, mid_channels, 3)
        self.conv2 = nn.Conv2d(mid_channels, out_channels, 3)
        self.fc = nn.Linear(out_channels * (window - 4) ** 2, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.tabulate = channels - 2 > C.NUM_MATERIALS
        """The residual block's first conv over the material's one-hot code and the two
        position channels (:meth:`_first_conv`); False: over the embedded channels, the
        plain path the tests hold it to. On where the one-hot code has fewer input channels
        than the embedding (Yao Feng's 62 against 16 materials; not his tiny variant's 6)."""

    def _first_conv(self, pos: torch.Tensor, material: torch.Tensor) -> torch.Tensor:
        """``block.conv1`` over ``[pos, embedding(material)]`` rewritten exactly: the embedding
        followed by the conv is one conv over the material's one-hot code with kernel
        ``K[c, v] = W_c · e(v)`` — 2 + 16 input channels instead of 2 + ``channels - 2``; the
        zero padding stays zero (a padded cell has no material). Differentiable in the
        embedding and the conv weights; the inputs need no gradient. ``[N, C, w, w]``."""
        conv, N, w = self.block.conv1, pos.shape[0], self.window
        table = self.embedding.weight  # [V, C - 2]
        kernel = torch.cat([conv.weight[:, :2], torch.einsum("cekl,ve->cvkl", conv.weight[:, 2:], table)], 1)
        x = pos.new_zeros(N, 2 + table.shape[0], w * w)
        x[:, :2] = pos.transpose(1, 2)
        x.scatter_(1, material[:, None, :] + 2, 1.0)
        return nn.functional.conv2d(x.view(N, -1, w, w), kernel, conv.bias, padding=1)

    def forward(self, tile: torch.Tensor) -> torch.Tensor:
        N = tile.shape[0]
        pos = tile[..., :2].float() / self.position_scale - 0.5
        material = tile[..., 2].long().clip(0, C.NUM_MATERIALS - 1)
        kind = self.embedding(material)
        x = torch.cat([pos, kind], -1).transpose(1, 2).reshape(N, -1, self.window, self.window)
        first = self._first_conv(pos, material) if self.tabulate else None
        x = torch.relu(self.block(x, first))
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return torch.relu(self.norm(self.fc(x.reshape(N, -1))))
