"""Terrain statistics against nmmo 2.0.3's generator.

Reference figures (``REF``): 128 maps (map indices 0..127, MAP_N=128) of nmmo 2.0.3's default
config (MAP_CENTER 128, MAP_BORDER 16, TERRAIN_* defaults, 64 clusters / 256 uniforms), made
by 2.0.3's ``nmmo/core/terrain.py`` (NeuralMMO/environment @ 685ea09d, the 2.0 branch) with
its simplex noise, measured with :func:`terrain_stats` below over the playable square
(Chebyshev distance ≤ 64). Bodies are 4-connected components; "drinkable" is a passable tile
4-adjacent to Water.
"""

from __future__ import annotations

import pytest
import torch

import nmmozoo
from nmmozoo.env import constants as C
from nmmozoo.env.config import make_config
from nmmozoo.env.terrain import (EVAL_SEED_OFFSET, MapPool, chebyshev_from_center, generate_map,
                                  generate_maps)

REF = {  # nmmo 2.0.3, 128 maps (see the module docstring)
    "water": 22.45, "grass": 44.57, "foliage": 15.42, "stone": 10.37,  # % of the playable area
    "ore": 229.3, "tree": 228.5, "crystal": 228.8, "herb": 256, "fish": 256,  # tiles per map
    "drinkable": 23.05,  # % of the playable area
    "water_body": 10.4, "stone_body": 5.1, "foliage_body": 2.6,  # mean component size, tiles
    "water_sd": 2.12,  # sd across maps of the water share, points
}


def label_components(mask: torch.Tensor) -> torch.Tensor:
    """4-connected component labels of ``mask [N, H, W]`` by min-label propagation with
    pointer jumping; tiles off the mask get a label past every tile index."""
    n, h, w = mask.shape
    off = n * h * w
    lab = torch.where(mask, torch.arange(off).view(n, h, w), torch.full(mask.shape, off))
    while True:
        pad = torch.nn.functional.pad(lab, (1, 1, 1, 1), value=off)
        low = torch.minimum(torch.minimum(pad[:, :-2, 1:-1], pad[:, 2:, 1:-1]),
                            torch.minimum(pad[:, 1:-1, :-2], pad[:, 1:-1, 2:]))
        new = torch.where(mask, torch.minimum(lab, low), lab)
        flat = new.view(-1)
        on = flat < off
        jumped = flat.clone()
        jumped[on] = flat[flat[on]]
        new = torch.minimum(new, jumped.view(n, h, w))
        if torch.equal(new, lab):
            return lab
        lab = new


def mean_body(mask: torch.Tensor) -> float:
    comps = label_components(mask)[mask].unique().numel()
    return mask.sum().item() / max(comps, 1)


def terrain_stats(maps: torch.Tensor, cfg) -> dict[str, float]:
    maps = maps.long()
    n, h, w = maps.shape
    inside = (chebyshev_from_center(cfg) <= cfg.radius).expand(n, h, w)
    area = inside[0].sum().item()
    out = {}
    for name, mat in (("water", C.WATER), ("grass", C.GRASS), ("foliage", C.FOLIAGE), ("stone", C.STONE)):
        share = ((maps == mat) & inside).flatten(1).sum(1).float() / area * 100
        out[name] = share.mean().item()
        if name == "water":
            out["water_sd"] = share.std().item()
    for name, mat in (("ore", C.ORE), ("tree", C.TREE), ("crystal", C.CRYSTAL), ("herb", C.HERB),
                      ("fish", C.FISH)):
        out[name] = (maps == mat).flatten(1).sum(1).float().mean().item()
    water = maps == C.WATER
    pad = torch.nn.functional.pad(water, (1, 1, 1, 1))
    near = pad[:, :-2, 1:-1] | pad[:, 2:, 1:-1] | pad[:, 1:-1, :-2] | pad[:, 1:-1, 2:]
    passable = inside & ~torch.isin(maps, torch.tensor(C.IMPASSABLE))
    out["drinkable"] = ((passable & near).flatten(1).sum(1).float() / area * 100).mean().item()
    out["water_body"] = mean_body(water)
    out["stone_body"] = mean_body(maps == C.STONE)
    out["foliage_body"] = mean_body(maps == C.FOLIAGE)
    return out


@pytest.fixture(scope="module")
def competition_stats():
    cfg = make_config("competition2023")
    return terrain_stats(generate_maps(cfg, range(128)), cfg)


def test_component_labelling():
    m = torch.tensor([[1, 1, 0, 1], [0, 1, 0, 1], [1, 0, 0, 1], [1, 1, 0, 0]], dtype=torch.bool)[None]
    assert label_components(m)[m].unique().numel() == 3
    assert mean_body(m) == 9 / 3


def test_material_proportions_match_2_0_3(competition_stats):
    for name in ("water", "grass", "foliage", "stone"):
        assert abs(competition_stats[name] - REF[name]) <= 1.5, (name, competition_stats[name])


def test_water_is_as_reachable_as_in_2_0_3(competition_stats):
    assert 20.0 <= competition_stats["drinkable"] <= 26.0
    assert competition_stats["water_body"] <= 15
    assert competition_stats["stone_body"] <= 9
    assert competition_stats["foliage_body"] <= 1.3 * REF["foliage_body"]


def test_resource_counts_match_2_0_3(competition_stats):
    for name in ("ore", "tree", "crystal", "herb", "fish"):
        assert abs(competition_stats[name] - REF[name]) <= 0.05 * REF[name], (name, competition_stats[name])


def test_maps_differ_like_2_0_3(competition_stats):
    # 2.0 widens the layer blend log-uniformly over the map index: the spread of the water
    # share across maps comes from there.
    assert competition_stats["water_sd"] >= 1.2


def test_held_out_pool_has_the_same_statistics():
    cfg = make_config("competition2023")
    ev = terrain_stats(generate_maps(cfg, [EVAL_SEED_OFFSET + i for i in range(0, 128, 4)]), cfg)
    tr = terrain_stats(generate_maps(cfg, list(range(0, 128, 4))), cfg)
    for name in ("water", "grass", "drinkable"):
        assert abs(ev[name] - tr[name]) <= 1.5, name


def test_maps_are_seeded_and_batch_independent():
    cfg = make_config("competition2023")
    batch = generate_maps(cfg, [5, 3, 77])
    assert torch.equal(batch[1], generate_map(cfg, 3))
    assert torch.equal(batch[0], generate_maps(cfg, [5])[0])
    assert not torch.equal(batch[0], batch[2])
    pool = MapPool(cfg)
    assert torch.equal(pool.get(torch.tensor([77, 3, 77]))[0], batch[2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_maps_match_cpu():
    cfg = make_config("competition2023")
    cpu = generate_maps(cfg, range(8))
    gpu = generate_maps(cfg, range(8), device="cuda").cpu()
    assert gpu.dtype == torch.uint8 and gpu.shape == cpu.shape
    assert (gpu != cpu).float().mean() < 1e-3  # float rounding may flip a threshold tile


def test_tiny_maps_are_playable():
    cfg = make_config("tiny")
    maps = generate_maps(cfg, range(cfg.map_pool_size))
    s = terrain_stats(maps, cfg)
    d = chebyshev_from_center(cfg)
    for m in maps:
        assert (m[d > cfg.radius] == C.VOID).all() and (m[d == cfg.radius] == C.GRASS).all()
        inside = m[d <= cfg.radius]
        assert (inside == C.WATER).sum() >= 10 and (inside == C.FOLIAGE).sum() >= 20
        assert (inside == C.HERB).sum() == cfg.num_herbs and (inside == C.FISH).sum() == cfg.num_fish
    assert 10 <= s["drinkable"] <= 35
    env = nmmozoo.make_env("tiny", num_maps=2, seed=0)
    env.reset()  # the env builds on these maps
