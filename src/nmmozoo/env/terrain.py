"""Procedural terrain at nmmo 2.0's scale: a distance- and noise-weighted blend of simplex noise
layers, thresholded into materials, with resource clusters, herbs and fish placed on top.

The recipe follows nmmo 2.0.3's generator (``nmmo/core/terrain.py``), re-derived for batched
tensors:

* ``O = playable // terrain_tiles_per_octave`` layers of 2-D simplex noise, all at
  ``terrain_frequency`` cycles per tile (16 layers at 1/8 on the 128-tile competition map).
* Each tile weighs the layers with a Gaussian bump over ``2·O - 1`` slots whose width
  ``sigma`` grows log-uniformly with the map's index in its pool, from
  ``10**terrain_interpolate_min`` to ``10**terrain_interpolate_max``. Which slots a tile reads
  is a blend of its ring (distance from the centre) and a coarse fractal "scale" noise
  quantised to ``O`` levels; near the edge the ring decides, near the centre the scale noise.
  A narrow bump leaves many tiles with (almost) no layer at all: flat grassland next to
  sharp, small-featured water and stone. A wide bump averages many layers everywhere. This
  is where the map-to-map spread comes from.
* The weighted sum (weights squared, as in 2.0) is rescaled to the raw noise's spread, clipped
  to [-1, 1], mapped to [0, 1] and cut: ≤water Water, ≤grass Grass, ≤foliage Foliage, else
  Stone. Void outside the playable square, a Grass edge ring, Stone/Water turned to Foliage on
  the ring inside it.
* Resources as in 2.0: rounds of one plus-shaped Ore, Tree and Crystal cluster each, centres
  drawn uniformly (rejection on Grass) two tiles inside the edge, arms only onto Grass; then
  Herbs uniformly on Grass and Fish on Water tiles with a Grass neighbour.

Maps are a pure function of ``(config, seed)``: every random draw of a map comes from a CPU
generator seeded by its seed, in a fixed order, so a map is the same in any batch and on any
device. :func:`generate_maps` makes many maps at once (the noise is a few gathers over all
maps); a :class:`MapPool` caches them (``map_size``² bytes each) so resets cost a copy.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import torch

from . import constants as C
from .config import EnvConfig

# Seeds of the held-out evaluation pool start here: disjoint from any training pool size
# a recipe could reasonably use, so no evaluation map is ever a training map.
EVAL_SEED_OFFSET = 1 << 30

# Simplex skew / unskew factors for 2-D.
_SKEW = 0.5 * (math.sqrt(3.0) - 1.0)
_UNSKEW = (3.0 - math.sqrt(3.0)) / 6.0
# The 12 lattice gradients of classic simplex noise, projected onto the plane: the four
# diagonals once and each axis direction twice. Noise value = 70 · Σ corners falloff⁴ · g·d.
_GRADIENTS = torch.tensor([[1, 1], [-1, 1], [1, -1], [-1, -1],
                           [1, 0], [-1, 0], [1, 0], [-1, 0],
                           [0, 1], [0, -1], [0, 1], [0, -1]], dtype=torch.float32)
_MAPS_PER_CHUNK = 32  # bounds the working memory of one noise pass (~10 MB per map)
# Height gain over 2.0's "rescale to the raw noise's spread". 2.0 samples one fixed simplex
# permutation table; the per-map random tables here come out a shade smoother, so the 128-map
# proportions land ~0.6 points short on water and ~1.2 over on grass without it. 1.02 puts
# every material within 0.6 points of 2.0.3's (measured; docs/env.md, Terrain).
_GAIN = 1.02


def chebyshev_from_center(cfg: EnvConfig) -> torch.Tensor:
    idx = torch.arange(cfg.map_size)
    d = (idx - cfg.center).abs()
    return torch.maximum(d[:, None], d[None, :])


def num_octaves(cfg: EnvConfig) -> int:
    return max(1, cfg.playable // cfg.terrain_tiles_per_octave)


def scale_frequencies(cfg: EnvConfig) -> list[float]:
    """Frequencies of the coarse "scale" noise: 2**-k for k = log2(playable) - 2 down to 2."""
    top = int(math.log2(cfg.playable)) - 2
    return [2.0 ** -k for k in range(top, 1, -1)]


def blend_width(cfg: EnvConfig, seed: int) -> float:
    """Width ``sigma`` of the layer-weight bump of map ``seed``: log-uniform over its pool index."""
    if seed >= EVAL_SEED_OFFSET:
        index, n = seed - EVAL_SEED_OFFSET, cfg.eval_pool_size
    else:
        index, n = seed, cfg.map_pool_size
    t = (index % n) / (n - 1) if n > 1 else 0.0
    lo, hi = cfg.terrain_interpolate_min, cfg.terrain_interpolate_max
    return 10.0 ** (lo + t * (hi - lo))


@lru_cache(maxsize=32)
def _simplex_operator(size: int, frequency: float, lattice: int, device: str) -> torch.Tensor:
    """Simplex noise as a sparse linear map: ``[size², 2·lattice²]`` (CSR) from the lattice
    gradients (x components, then y components) to the noise at every tile of a ``size``²
    grid sampled at ``frequency``. Each tile reads its 3 simplex corners: the corner's
    gradient dotted with the offset to it, times 70 · max(0, 0.5 - |offset|²)⁴."""
    coords = torch.arange(size, dtype=torch.float64) * frequency
    y = coords[:, None].expand(size, size).reshape(-1)  # rows
    x = coords[None, :].expand(size, size).reshape(-1)  # columns
    s = (x + y) * _SKEW
    i, j = torch.floor(x + s), torch.floor(y + s)
    t = (i + j) * _UNSKEW
    x0, y0 = x - (i - t), y - (j - t)
    upper = (x0 > y0).double()  # which of the two triangles of the skewed cell
    di = torch.stack([torch.zeros_like(upper), upper, torch.ones_like(upper)])
    dj = torch.stack([torch.zeros_like(upper), 1 - upper, torch.ones_like(upper)])
    step = torch.tensor([0.0, 1, 2])[:, None] * _UNSKEW
    dx, dy = x0[None] - di + step, y0[None] - dj + step
    falloff = (0.5 - dx * dx - dy * dy).clamp(min=0) ** 4 * 70.0
    ci, cj = (i[None] + di).long(), (j[None] + dj).long()
    assert int(ci.max()) < lattice and int(cj.max()) < lattice
    corner = cj * lattice + ci  # [3, size²]
    cols = torch.cat([corner, corner + lattice * lattice]).t()  # [size², 6]
    vals = torch.cat([falloff * dx, falloff * dy]).t()
    crow = torch.arange(0, 6 * size * size + 1, 6)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        op = torch.sparse_csr_tensor(crow, cols.reshape(-1), vals.reshape(-1).float(),
                                     size=(size * size, 2 * lattice * lattice),
                                     check_invariants=False)
    return op.to(device)


def _lattice_size(cfg: EnvConfig) -> int:
    top = max([cfg.terrain_frequency] + scale_frequencies(cfg))
    return int(top * (cfg.map_size - 1) * (1 + 2 * _SKEW)) + 2


def _noise(grads: torch.Tensor, size: int, frequency: float, lattice: int) -> torch.Tensor:
    """Simplex noise ``[size², N, P]`` of lattice gradient indices ``grads [N, P, lattice²]``."""
    n, p = grads.shape[:2]
    g = _GRADIENTS.to(grads.device)[grads]  # [N, P, lattice², 2]
    g = g.permute(3, 2, 0, 1).reshape(2 * lattice * lattice, n * p)
    op = _simplex_operator(size, frequency, lattice, str(grads.device))
    return (op @ g).view(size * size, n, p)


@lru_cache(maxsize=8)
def _ring_layout(cfg: EnvConfig):
    """Per tile: the ring's first weight slot ``[size²]``, how much the ring (vs the scale
    noise) decides the slots ``[size²]``, and 1 inside the playable square, 0 outside (there
    the ring's slot is 0 for every layer, as in 2.0: Void tiles take the bump's tail)."""
    octaves, radius = num_octaves(cfg), cfg.radius
    d = chebyshev_from_center(cfg).reshape(-1).double()
    step = radius / octaves
    band = torch.floor((radius - d) / step).clamp(0, octaves - 1)
    ring = octaves - 1 - band
    reach = max(radius - 2, 1)
    mix = d.clamp(max=reach) / reach
    return ring.float(), mix.float(), (d <= radius).float()


def _draws(cfg: EnvConfig, seed: int, planes: int, lattice: int, candidates: int):
    """Every random draw of map ``seed``, in a fixed order from its own CPU generator."""
    gen = torch.Generator().manual_seed(int(seed))
    size = cfg.map_size
    # Lattice gradients hashed through a random permutation per layer, as classic simplex
    # noise does with its fixed table: gradient of vertex (i, j) = g[perm[i + perm[j]] mod 12].
    perm = torch.stack([torch.randperm(256, generator=gen) for _ in range(planes)])
    ii = torch.arange(lattice)
    hashed = (ii[None, None, :] + perm[:, ii % 256][:, :, None]) % 256  # [planes, j, i]
    grads = (perm.gather(1, hashed.view(planes, -1)) % 12)
    lo, hi = cfg.map_border + 2, size - cfg.map_border - 2
    cand = torch.randint(lo, max(hi, lo + 1), (candidates, 2), generator=gen)
    herb_keys = torch.rand(size * size, generator=gen)
    fish_keys = torch.rand(size * size, generator=gen)
    return grads, cand[:, 0] * size + cand[:, 1], herb_keys, fish_keys


def _heights(cfg: EnvConfig, grads: torch.Tensor, sigmas: torch.Tensor, lattice: int):
    """Blended height in [0, 1] ``[N, size²]`` from gradient indices ``[N, planes, lattice²]``."""
    n, size, octaves = grads.shape[0], cfg.map_size, num_octaves(cfg)
    dev = grads.device

    # Coarse scale noise: octave k of the fractal reads layer k at its own frequency.
    scale = torch.zeros(size * size, n, device=dev)
    for k, freq in enumerate(scale_frequencies(cfg)):
        scale += 0.5 ** k * _noise(grads[:, k:k + 1], size, freq, lattice)[..., 0]
    scale = scale - scale.amin(0, keepdim=True)
    top = scale.amax(0, keepdim=True)
    level = torch.where(top > 0, octaves * scale / top.clamp_min(1e-30) - 1e-12, torch.zeros_like(scale))
    level = level.floor().clamp(0, octaves - 1)

    # Gaussian bump over 2·O-1 slots, peak 1, width sigma (per map).
    slots = 2 * octaves - 1
    r = torch.linspace(-1, 1, slots, device=dev) if slots > 1 else torch.full((1,), -1.0, device=dev)
    bump = torch.exp(-0.5 * (r[None] / sigmas[:, None]) ** 2)
    bump = bump / bump.amax(1, keepdim=True)

    # Layer o of a playable tile reads slot trunc(first + o), where the first slot blends the
    # ring's (near the edge) and the scale noise's (near the centre); since the step per layer
    # is 1, a tile needs only floor(first) ∈ [-1, O-1]: one of O+1 weight rows. Void tiles read
    # slot 0 for every layer (row O+1).
    ring, mix, inside = (t.to(dev)[:, None] for t in _ring_layout(cfg))
    first = mix * ring + (1 - mix) * (level - 1)
    row = torch.where(inside > 0, (first + 1e-6).floor().clamp(-1, octaves - 1) + 1,
                      torch.full_like(first, octaves + 1)).long()
    bases = torch.arange(-1, octaves + 1, device=dev)
    bases[-1] = -octaves  # the Void row: every layer at slot 0 after the clamp below
    table = (bases[:, None] + torch.arange(octaves, device=dev)[None]).clamp(min=0)  # [O+2, O]
    weights = bump[:, table] ** 2  # [N, O+2, O]
    row = row + (torch.arange(n, device=dev) * (octaves + 2))[None]
    layers = _noise(grads[:, :octaves], size, cfg.terrain_frequency, lattice)  # [size², N, O]
    raw_std = torch.std(layers, dim=(0, 2), unbiased=False)
    blend = (weights.view(-1, octaves)[row] * layers).sum(-1)  # [size², N]
    std = blend.std(0, unbiased=False)
    blend = blend * (_GAIN * raw_std / std.clamp_min(1e-30))[None]
    return (0.5 + blend.clamp(-1, 1) / 2).t()


def _place_clusters(cfg: EnvConfig, mat: torch.Tensor, cand: torch.Tensor) -> None:
    """Rounds of one plus-shaped cluster of each resource, centres by rejection on Grass."""
    n, size = mat.shape[0], cfg.map_size
    counts = ((C.ORE, cfg.num_ore_clusters), (C.TREE, cfg.num_tree_clusters),
              (C.CRYSTAL, cfg.num_crystal_clusters))
    order = [res for r in range(max(c for _, c in counts)) for res, c in counts if r < c]
    if not order:
        return
    slot = torch.arange(cand.shape[1], device=mat.device)
    ptr = torch.zeros(n, dtype=torch.long, device=mat.device)
    arms = torch.tensor([0, -size, size, -1, 1], device=mat.device)
    for res in order:
        ok = (mat.gather(1, cand) == C.GRASS) & (slot[None] >= ptr[:, None])
        found = ok.any(1)
        first = ok.to(torch.uint8).argmax(1)
        ptr = torch.where(found, first + 1, ptr)
        pos = cand.gather(1, first[:, None]) + arms[None]  # [N, 5]
        cur = mat.gather(1, pos)
        put = (cur == C.GRASS) & found[:, None]
        mat.scatter_(1, pos, torch.where(put, torch.full_like(cur, res), cur))


def _place_uniform(mat: torch.Tensor, where: torch.Tensor, keys: torch.Tensor, count: int, res: int):
    """Turn ``count`` tiles of ``where`` (uniformly chosen without replacement) into ``res``."""
    if count == 0:
        return
    k = min(count, where.shape[1])
    score, pick = torch.where(where, keys, torch.full_like(keys, -1.0)).topk(k, dim=1)
    cur = mat.gather(1, pick)
    mat.scatter_(1, pick, torch.where(score >= 0, torch.full_like(cur, res), cur))


def _generate_chunk(cfg: EnvConfig, seeds: list[int], device) -> torch.Tensor:
    size, octaves = cfg.map_size, num_octaves(cfg)
    planes = max(octaves, len(scale_frequencies(cfg)))
    lattice = _lattice_size(cfg)
    total_clusters = cfg.num_ore_clusters + cfg.num_tree_clusters + cfg.num_crystal_clusters
    candidates = 8 * total_clusters + 64
    draws = [_draws(cfg, s, planes, lattice, candidates) for s in seeds]
    grads, cand, herb_keys, fish_keys = (torch.stack(t).to(device) for t in zip(*draws))
    sigmas = torch.tensor([blend_width(cfg, s) for s in seeds], dtype=torch.float32, device=device)
    height = _heights(cfg, grads, sigmas, lattice)

    n = len(seeds)
    mat = torch.full((n, size * size), C.STONE, dtype=torch.uint8, device=device)
    mat[height <= cfg.terrain_foliage] = C.FOLIAGE
    mat[height <= cfg.terrain_grass] = C.GRASS
    mat[height <= cfg.terrain_water] = C.WATER
    dist = chebyshev_from_center(cfg).reshape(-1).to(device)
    inner = (dist == cfg.radius - 1)[None] & ((mat == C.STONE) | (mat == C.WATER))
    mat[inner] = C.FOLIAGE  # keeps every spawn tile able to step inwards
    mat[:, dist == cfg.radius] = C.GRASS  # players spawn on the edge ring
    mat[:, dist > cfg.radius] = C.VOID

    _place_clusters(cfg, mat, cand)
    idx = torch.arange(size, device=device)
    band = (idx >= cfg.map_border + 1) & (idx < size - cfg.map_border - 1)
    herb_zone = (band[:, None] & band[None, :]).reshape(-1)
    _place_uniform(mat, (mat == C.GRASS) & herb_zone[None], herb_keys, cfg.num_herbs, C.HERB)
    grass = (mat == C.GRASS).view(n, size, size)
    near = torch.zeros_like(grass)
    near[:, 1:] |= grass[:, :-1]
    near[:, :-1] |= grass[:, 1:]
    near[:, :, 1:] |= grass[:, :, :-1]
    near[:, :, :-1] |= grass[:, :, 1:]
    _place_uniform(mat, (mat == C.WATER) & near.view(n, -1), fish_keys, cfg.num_fish, C.FISH)
    return mat.view(n, size, size)


def generate_maps(cfg: EnvConfig, seeds, device: str | torch.device = "cpu") -> torch.Tensor:
    """Material grids ``uint8 [len(seeds), map_size, map_size]`` of maps ``seeds``, on ``device``."""
    seeds = [int(s) for s in (seeds.tolist() if torch.is_tensor(seeds) else seeds)]
    if not seeds:
        return torch.empty(0, cfg.map_size, cfg.map_size, dtype=torch.uint8, device=device)
    parts = [_generate_chunk(cfg, seeds[i:i + _MAPS_PER_CHUNK], device)
             for i in range(0, len(seeds), _MAPS_PER_CHUNK)]
    return torch.cat(parts)


def generate_map(cfg: EnvConfig, seed: int) -> torch.Tensor:
    """Generate the material grid (``uint8 [map_size, map_size]``, CPU) of map ``seed``."""
    return generate_maps(cfg, [seed])[0]


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
        wanted = seeds.tolist()
        missing = sorted({s for s in wanted if s not in self._cache})
        if missing:  # reset-time only; each seed is generated once per process, in one batch
            for s, m in zip(missing, generate_maps(self.cfg, missing)):
                self._cache[s] = m
        return torch.stack([self._cache[s] for s in wanted])
