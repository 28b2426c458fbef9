"""Shared helpers: constructed worlds for rule tests; one torch thread per test process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from nmmozoo.env import World, make_config
from nmmozoo.env import constants as C
from nmmozoo.env.harvest import list_resources
from nmmozoo.env.terrain import chebyshev_from_center

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one test process per core (pyproject's addopts): one torch thread each, and in the
    # processes the tests start. Two threads per process on as many processes as cores
    # would oversubscribe every core, and torch slows down several times when its threads
    # wait on each other
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def usable_cpus() -> int:
    """The cores this process may run on: its CPU affinity, under a cgroup CPU quota where one
    is set (a container's ``cpu.max``)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one test process per usable core, no more than memory allows at 4 GiB each.
    Measured (2026-12-04, the whole suite in one worker, RSS sampled every 5 s): a worker alone
    peaked at 2.0 GB, a worker with the processes its tests start at 4.2 GB (3.9 GiB)."""
    n = usable_cpus()
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        avail_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:"))
        n = min(n, max(1, avail_kib // (4 << 20)))
    except (OSError, StopIteration, ValueError):
        pass
    return n


class Sandbox:
    """A one-map tiny world on open grass with every entity removed, to place by hand."""

    def __init__(self, **overrides):
        overrides.setdefault("num_npcs", 0)
        self.cfg = make_config("tiny", **overrides)
        self.world = World(self.cfg, num_maps=1, seed=0)
        self.world.reset()
        s = self.world.state
        inside = chebyshev_from_center(self.cfg) <= self.cfg.radius
        s.material[0] = torch.where(inside, C.GRASS, C.VOID).to(torch.uint8)
        list_resources(s, self.world.harvest_tables, torch.tensor([0]))
        s.alive.zero_()
        self.P = self.cfg.num_agents
        self.K = self.cfg.num_entity_obs
        self.c = self.cfg.center

    @property
    def s(self):
        return self.world.state

    def set_tile(self, r, c, material):
        self.s.material[0, r, c] = material
        list_resources(self.s, self.world.harvest_tables, torch.tensor([0]))

    def player(self, slot, r, c, age=50, **fields):
        s = self.s
        s.alive[0, slot] = True
        s.row[0, slot], s.col[0, slot] = r, c
        s.time_alive[0, slot] = age
        for k, v in fields.items():
            getattr(s, k)[0, slot] = v
        return slot

    def npc(self, index, r, c, kind, level=1, style=C.MELEE):
        s, slot = self.s, self.P + index
        s.alive[0, slot] = True
        s.ent_id[0, slot] = -(index + 1)
        s.npc_type[0, slot] = kind
        s.row[0, slot], s.col[0, slot] = r, c
        s.health[0, slot] = 100
        s.npc_level[0, slot] = level
        s.npc_style[0, slot] = style
        s.level[0, slot] = 0
        s.level[0, slot, style] = level
        s.exp[0, slot] = 0
        s.exp[0, slot, style] = 1
        s.equip_offense[0, slot] = 15 + 15 * level
        s.equip_defense[0, slot] = 15 * level
        return slot

    def row_of(self, viewer, slot):
        rows = (self.world.observer.slots[0, viewer] == slot).nonzero()
        assert len(rows), f"slot {slot} not visible to {viewer}"
        return int(rows[0, 0])

    def step(self, move=None, style=None, target=None, **heads):
        """One tick; every head defaults to its no-op. ``move``/``style`` and any head given
        by name map player slot -> index; ``target``/``give_target``/``give_gold_target`` map
        player slot -> the *entity slot* to aim at (translated to its observation row)."""
        self.world.observe()
        acts = self.world.noop_actions()
        for head, given in (("move", move), ("attack_style", style), *heads.items()):
            for k, v in (given or {}).items():
                if head in ("give_target", "give_gold_target"):
                    v = self.row_of(k, v)
                acts[head][0, k] = v
        for k, slot in (target or {}).items():
            acts["attack_target"][0, k] = self.row_of(k, slot)
        return self.world.step(acts)


@pytest.fixture
def sandbox():
    return Sandbox
