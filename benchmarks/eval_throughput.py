"""Evaluation throughput: live agent-steps/s of a PvP game (every listed policy on shared
held-out maps) with each zoo network acting on its own live agents (``own_rows``, the
default) against every network acting on every live agent (the plain path), the two runs
interleaved (own, plain, own, plain) so that both see the same machine load. Both play the
same games with argmax actions (tests/test_test_cmd.py holds them equal).

    python benchmarks/eval_throughput.py --models takeru baseline --ticks 64
"""

from __future__ import annotations

import argparse
import time

import torch

import nmmozoo
from nmmozoo.evaluate import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["takeru", "baseline"],
                    help="zoo models (untrained weights; pretrained ones where shipped)")
    ap.add_argument("--preset", default="competition2023")
    ap.add_argument("--maps", type=int, default=1)
    ap.add_argument("--ticks", type=int, default=64, help="episode length (--horizon)")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    cfg = nmmozoo.make_config(a.preset)
    shipped = set(nmmozoo.list_models(pretrained=True))
    policies = []
    for i, name in enumerate(a.models):
        torch.manual_seed(i)
        policies.append(nmmozoo.create_policy(name, config=cfg, pretrained=name in shipped))
    kw = dict(preset=a.preset, tasks="heldout", num_maps=a.maps, episodes=1, horizon=a.ticks,
              deterministic=True, seed=0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; PvP of {', '.join(a.models)} "
          f"on {a.maps} {a.preset} map(s), {a.ticks} ticks, {cfg.num_agents // len(a.models)} agents each")
    times: dict[bool, list[float]] = {True: [], False: []}
    steps: dict[bool, int] = {}
    for _ in range(a.repeats):
        for own in (True, False):
            t = time.perf_counter()
            r = evaluate(policies=policies, own_rows=own, **kw)
            times[own].append(time.perf_counter() - t)
            steps[own] = sum(p["agent_steps"] for p in r["policies"])
    for own in (True, False):
        best = min(times[own])
        print(f"{'own rows' if own else 'every row':>10}: {steps[own]:,} live agent-steps in {best:.2f} s "
              f"(best of {a.repeats}): {steps[own] / best:,.0f}/s")
    print(f"speed-up {min(times[False]) / min(times[True]):.2f}x")


if __name__ == "__main__":
    main()
