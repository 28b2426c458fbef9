"""Training throughput per recipe: live agent-steps/s of whole PPO updates (collect + GAE +
epochs of minibatches, the recipe's own minibatch settings), the split of an update's time
(env step / acting / learning) and the rollout's bytes per live agent-step (the compact
rollout an update learns from, cut to its samples: ``nmmozoo.train.rollout``).

``--reference`` runs the same recipe a second time through the plain path (every row, every
agent, the plain first conv: ``policy.fast(False)``) in the same process, the two updates
interleaved (fast, plain, fast, plain, ...) so that both see the same machine load.

    python benchmarks/train_throughput.py                       # every recipe, its own settings
    python benchmarks/train_throughput.py --recipes baseline takeru --rollout 4096 --reference
"""

from __future__ import annotations

import argparse
import time

import torch

from nmmozoo.recipe import list_recipes
from nmmozoo.train import PPOModule


class Timed:
    """One PPOModule with its update split into env step, acting and learning."""

    def __init__(self, recipe: str, maps: int | None, rollout: int | None, preset: str | None, device: str,
                 fast: bool):
        env_over = {"device": device, **({"num_maps": maps} if maps else {}),
                    **({"preset": preset} if preset else {})}
        over = {"ppo.rollout_steps": rollout} if rollout else {}
        m = PPOModule(recipe, overrides=over, env_overrides=env_over)
        if preset == "tiny" and not m.recipe["model"].endswith("_tiny"):
            m = PPOModule(recipe, overrides={**over, "model": f"{m.recipe['model']}_tiny"},
                          env_overrides=env_over)
        m.policy.fast(fast)
        self.m, self.fast = m, fast
        self.opt = m.configure_optimizers()  # what a fit uses
        self.t_collect = self.t_act = self.t_total = 0.0
        self.steps, self.bytes, self.live_in_rollouts = 0, 0, 0
        self._wrap()

    def _wrap(self):
        m, sample, collect = self.m, self.m.policy.sample, self.m._collect

        def timed_sample(td, *a, **k):
            t = time.perf_counter()
            try:
                return sample(td, *a, **k)
            finally:
                self.t_act += time.perf_counter() - t

        def timed_collect():
            t = time.perf_counter()
            data = collect()
            self.t_collect += time.perf_counter() - t
            return data

        m.policy.sample, m._collect = timed_sample, timed_collect

    def reset(self):
        self.t_collect = self.t_act = self.t_total = 0.0
        self.steps = self.bytes = self.live_in_rollouts = 0

    def update(self, i: int):
        before = self.m.agent_steps
        t = time.perf_counter()
        self.m.update(self.opt, i)
        self.t_total += time.perf_counter() - t
        self.steps += self.m.agent_steps - before  # live agent-steps learned from
        self.bytes += self.m.last_rollout_bytes  # the compact rollout, cut to its samples
        self.live_in_rollouts += self.m.agent_steps - before

    def row(self) -> dict:
        learn = self.t_total - self.t_collect
        return {"sps": self.steps / self.t_total, "s_update": self.t_total,
                "env": self.t_collect - self.t_act, "act": self.t_act, "learn": learn,
                "bytes": self.bytes / max(1, self.live_in_rollouts)}


def run(recipe: str, maps: int, updates: int, rollout: int, preset: str | None, device: str,
        reference: bool) -> list[tuple[str, dict]]:
    paths = [Timed(recipe, maps, rollout, preset, device, True)]
    if reference:
        paths.append(Timed(recipe, maps, rollout, preset, device, False))
    for p in paths:  # warm-up (collector, first allocations)
        p.update(0)
        p.reset()
    for i in range(updates):  # interleaved: fast, plain, fast, plain, ...
        for p in paths:
            p.update(i + 1)
    rows = []
    for p in paths:
        r = p.row()
        r["s_update"] /= updates
        for k in ("env", "act", "learn"):
            r[k] /= updates
        rows.append(("fast" if p.fast else "plain", r))
        p.m.on_train_end()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="*", default=list_recipes())
    ap.add_argument("--maps", type=int, default=None, help="default: the recipe's own num_maps")
    ap.add_argument("--updates", type=int, default=1)
    ap.add_argument("--rollout", type=int, default=None,
                    help="live agent-steps per update (default: the recipe's own rollout_steps)")
    ap.add_argument("--preset", default=None, help="override the recipes' env preset (e.g. tiny)")
    ap.add_argument("--device", nargs="*", default=None, help="default: cpu, and cuda if present")
    ap.add_argument("--reference", action="store_true",
                    help="also run the plain path (policy.fast(False)), interleaved, same process")
    a = ap.parse_args()
    devices = a.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"{a.maps or 'the recipe’s'} map(s), {a.rollout or 'the recipe’s'} live agent-steps per update, "
          f"{a.updates} timed update(s) after a warm-up")
    print(f"{'device':>6} {'recipe':>10} {'path':>5} {'live agent-steps/s':>19} {'s/update':>9} "
          f"{'env s':>7} {'act s':>7} {'learn s':>8} {'bytes/live step':>16} {'speed-up':>9}")
    for device in devices:
        for r in a.recipes:
            rows = run(r, a.maps, a.updates, a.rollout, a.preset, device, a.reference)
            base = rows[-1][1]["sps"]
            for path, x in rows:
                print(f"{device:>6} {r:>10} {path:>5} {x['sps']:>19,.0f} {x['s_update']:>9.2f} "
                      f"{x['env']:>7.2f} {x['act']:>7.2f} {x['learn']:>8.2f} {x['bytes']:>16,.0f} "
                      f"{x['sps'] / base:>8.1f}x", flush=True)


if __name__ == "__main__":
    main()
