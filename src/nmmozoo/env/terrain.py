"""Procedural terrain: seeded multi-octave gradient noise, thresholded into materials, with
resource clusters, herbs and fish placed on top.

Maps are a pure function of ``(config, seed)``: generation runs on the CPU with a generator
seeded by the map seed, so a map is identical on every device and in every batch. A
:class:`MapPool` caches generated maps (160×160 bytes each) so resets cost a copy.
"""

from __future__ import annotations

import math

import torch

from . import constants as C
from .config import EnvConfig

# Seeds of the held-out evaluation pool start here: disjoint from any training pool size
# a recipe could reasonably use, so no evaluation map is ever a training map.
EVAL_SEED_OFFSET = 1 << 30


def _fade(t: torch.Tensor) -> torch.Tensor:
    return t * t * t * (t * (t * 6 - 15) + 10)


def gradient_noise(gen: torch.Generator, size: int, frequency: float) -> torch.Tensor:
    """2-D gradient (Perlin-style) noise on a ``size``×``size`` grid, values in about [-1, 1].

    ``frequency`` is in lattice cells per tile; the lattice gets a random phase so octaves do
    not share grid lines.
    """
    cells = max(1, math.ceil(size * frequency)) + 2
    angles = torch.rand(cells, cells, generator=gen) * (2 * math.pi)
    grad = torch.stack([torch.cos(angles), torch.sin(angles)], -1)  # [cells, cells, 2]
    phase = torch.rand(2, generator=gen)
    coords = torch.arange(size, dtype=torch.float32) * frequency
    y = (coords + phase[0])[:, None].expand(size, size)
    x = (coords + phase[1])[None, :].expand(size, size)
    y0, x0 = y.floor().long(), x.floor().long()
    fy, fx = y - y0, x - x0

    def corner(dy: int, dx: int) -> torch.Tensor:
        g = grad[y0 + dy, x0 + dx]
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    u, v = _fade(fy), _fade(fx)
    top = corner(0, 0) * (1 - v) + corner(0, 1) * v
    bottom = corner(1, 0) * (1 - v) + corner(1, 1) * v
    return (top * (1 - u) + bottom * u) * math.sqrt(2)


def chebyshev_from_center(cfg: EnvConfig) -> torch.Tensor:
    idx = torch.arange(cfg.map_size)
    d = (idx - cfg.center).abs()
    return torch.maximum(d[:, None], d[None, :])


def _place_plus_clusters(gen, material, land, count, resource):
    """Place ``count`` plus-shaped clusters of ``resource`` centred on random land tiles."""
    size = material.shape[0]
    candidates = land.flatten().nonzero().squeeze(1)
    if candidates.numel() == 0 or count == 0:
        return
    centers = candidates[torch.randint(candidates.numel(), (count,), generator=gen)]
    r, c = centers // size, centers % size
    for dr, dc in C.MOVE_DELTAS:  # the plus shape is the centre and its 4 neighbours
        rr, cc = r + dr, c + dc
        ok = land[rr, cc]
        material[rr[ok], cc[ok]] = resource


def _place_single(gen, material, where, count, resource):
    candidates = where.flatten().nonzero().squeeze(1)
    if candidates.numel() == 0 or count == 0:
        return
    pick = candidates[torch.randperm(candidates.numel(), generator=gen)[:count]]
    material.view(-1)[pick] = resource


def generate_map(cfg: EnvConfig, seed: int) -> torch.Tensor:
    """Generate the material grid (``uint8 [map_size, map_size]``) of map ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    size = cfg.map_size
    height = torch.zeros(size, size)
    for i in range(cfg.terrain_octaves):
        height += 0.5 ** i * gradient_noise(gen, size, cfg.terrain_frequency * 2 ** i)
    dist = chebyshev_from_center(cfg)
    inside = dist <= cfg.radius
    # Standardise over the walkable area so the thresholds cut the same proportions on
    # every map and at every size.
    h_in = height[inside]
    height = (0.5 + cfg.terrain_contrast * (height - h_in.mean()) / h_in.std().clamp_min(1e-6))
    height = height.clamp(0, 1)

    material = torch.full((size, size), C.STONE, dtype=torch.uint8)
    material[height <= cfg.terrain_foliage] = C.FOLIAGE
    material[height <= cfg.terrain_grass] = C.GRASS
    material[height <= cfg.terrain_water] = C.WATER
    inner_ring = (dist == cfg.radius - 1) & ((material == C.STONE) | (material == C.WATER))
    material[inner_ring] = C.FOLIAGE  # keeps every spawn tile able to step inwards
    material[dist == cfg.radius] = C.GRASS  # players spawn on the edge ring
    material[~inside] = C.VOID

    interior = dist < cfg.radius
    for count, resource in ((cfg.num_ore_clusters, C.ORE), (cfg.num_tree_clusters, C.TREE),
                            (cfg.num_crystal_clusters, C.CRYSTAL)):
        land = interior & (material == C.GRASS)
        _place_plus_clusters(gen, material, land, count, resource)
    _place_single(gen, material, interior & (material == C.GRASS), cfg.num_herbs, C.HERB)
    grass = material == C.GRASS
    near_grass = torch.zeros_like(grass)
    for dr, dc in C.MOVE_DELTAS[:4]:
        near_grass |= torch.roll(grass, shifts=(dr, dc), dims=(0, 1))
    _place_single(gen, material, interior & (material == C.WATER) & near_grass, cfg.num_fish, C.FISH)
    return material


class MapPool:
    """Seeds of the training and held-out pools, and a cache of their generated maps."""

    def __init__(self, cfg: EnvConfig):
        self.cfg = cfg
        self._cache: dict[int, torch.Tensor] = {}

    def seeds(self, pool: str | None = None) -> torch.Tensor:
        pool = pool or self.cfg.map_pool
        if pool == "train":
            return torch.arange(self.cfg.map_pool_size)
        return torch.arange(self.cfg.eval_pool_size) + EVAL_SEED_OFFSET

    def get(self, seeds: torch.Tensor) -> torch.Tensor:
        """Material grids ``[len(seeds), H, W]`` (CPU) for the given seeds."""
        out = []
        for s in seeds.tolist():  # reset-time only; each seed is generated once per process
            m = self._cache.get(s)
            if m is None:
                m = self._cache[s] = generate_map(self.cfg, s)
            out.append(m)
        return torch.stack(out)
