"""Environment throughput: agent-steps per second with random masked actions (all 12 heads).

Counts every agent slot of every map per tick and prints the share of agents alive during
the timed ticks. To time a full population (the issue's bar: all 128 agents alive), every map
is reset every ``--episode-ticks`` ticks (20: before the first starvation, and inside the
spawn immunity); the resets themselves are not timed. ``--episode-ticks 0`` lets episodes run
out instead (maps then reset on their own, timed).

    python benchmarks/env_throughput.py                 # 1, 8, 64 maps, CPU (+ CUDA if present)
    python benchmarks/env_throughput.py --maps 64 --obs-mode compact --ticks 100
    python benchmarks/env_throughput.py --maps 64 --obs-mode compact --workers 1 2   # sharded

``--workers N`` steps the maps in N CPU processes (``make_env(workers=N)``), one core each.
"""

from __future__ import annotations

import argparse
import time

import torch

import nmmozoo
from nmmozoo.env import random_actions


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(preset: str, maps: int, device: str, ticks: int, warmup: int, obs_mode: str, seed: int,
        episode_ticks: int, item_system: bool, tasks: str, workers: int = 1):
    env = nmmozoo.make_env(preset, num_maps=maps, device=device, seed=seed, obs_mode=obs_mode,
                           item_system=item_system, tasks=tasks, workers=workers)
    td = env.reset()
    alive, dt, dt_sample = 0.0, 0.0, 0.0
    for i in range(warmup + ticks):
        if episode_ticks and i % episode_ticks == 0:
            td = env.reset()
        _sync(device)
        t0 = time.perf_counter()
        random_actions(td)
        _sync(device)
        t1 = time.perf_counter()
        _, td = env.step_and_maybe_reset(td)
        _sync(device)
        if i >= warmup:
            dt += time.perf_counter() - t1
            dt_sample += t1 - t0
            alive += td["agents", "mask"].float().mean().item() / ticks
    agent_steps = maps * env.config.num_agents * ticks
    env.close()
    return agent_steps / dt, agent_steps / (dt + dt_sample), dt / ticks, alive


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="competition2023")
    ap.add_argument("--maps", type=int, nargs="*", default=[1, 8, 64])
    ap.add_argument("--device", nargs="*", default=None, help="default: cpu, and cuda if present")
    ap.add_argument("--obs-mode", nargs="*", default=["compact", "dense"], choices=["compact", "dense"])
    ap.add_argument("--ticks", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--episode-ticks", type=int, default=20)
    ap.add_argument("--items", nargs="*", default=["on", "off"], choices=["on", "off"],
                    help="item system (items, market, gifts) on, off, or both")
    ap.add_argument("--tasks", nargs="*", default=["curriculum"],
                    help="task sets to run with: curriculum, heldout, none, or a task file")
    ap.add_argument("--workers", type=int, nargs="*", default=[1],
                    help="env worker processes (CPU): the maps are split between them")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's; 1 gives steadier A/B timings on a "
                         "busy machine)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    devices = a.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, preset {a.preset}")
    print("env: agent-steps/s of the env step alone; +sampling: with drawing the random masked")
    print("actions of all 12 heads (a policy's work, here a uniform sampler)")
    print(f"{'device':>6} {'workers':>7} {'tasks':>10} {'items':>5} {'obs':>8} {'maps':>5} {'env':>12} "
          f"{'+sampling':>12} {'env ms/tick':>11} {'alive':>6}")
    for device in devices:
        for tasks in a.tasks:
            for items in a.items:
                for mode in a.obs_mode:
                    for maps in a.maps:
                      for workers in (a.workers if device == "cpu" else [1]):
                        if maps % workers:
                            continue
                        sps, sps_all, tick, alive = run(a.preset, maps, device, a.ticks, a.warmup,
                                                        mode, a.seed, a.episode_ticks,
                                                        items == "on", tasks, workers)
                        print(f"{device:>6} {workers:>7} {tasks[:10]:>10} {items:>5} {mode:>8} {maps:>5} "
                              f"{sps:>12,.0f} {sps_all:>12,.0f} {tick * 1e3:>11.2f} {alive:>6.0%}",
                              flush=True)


if __name__ == "__main__":
    main()
