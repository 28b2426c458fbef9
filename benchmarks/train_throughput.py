"""Training throughput per recipe: live agent-steps/s of whole PPO updates (collect + GAE +
epochs of minibatches, the recipe's own minibatch size) and the rollout buffer's bytes per
collected agent slot.

    python benchmarks/train_throughput.py                       # every recipe, its own env, 1 map
    python benchmarks/train_throughput.py --recipes demo takeru --maps 2 --updates 3
"""

from __future__ import annotations

import argparse
import time

import torch

from nmmozoo.recipe import list_recipes
from nmmozoo.train import PPOModule


def run(recipe: str, maps: int, updates: int, rollout: int, preset: str | None, device: str = "cpu"):
    env_over = {"num_maps": maps, "device": device, **({"preset": preset} if preset else {})}
    m = PPOModule(recipe, overrides={"ppo.rollout_steps": rollout}, env_overrides=env_over)
    if preset == "tiny" and not m.recipe["model"].endswith("_tiny"):
        m = PPOModule(recipe, overrides={"ppo.rollout_steps": rollout, "model": f"{m.recipe['model']}_tiny"},
                      env_overrides=env_over)
    opt = torch.optim.Adam(m.policy.parameters(), lr=1e-4)
    m.update(opt, 0)  # warm-up
    data = m._collect()
    nbytes = sum(v.numel() * v.element_size() for v in data.values(True, True))
    per_step = nbytes / (data.numel() * m.agents)
    t0, steps = time.perf_counter(), 0
    for i in range(updates):
        before = m.agent_steps
        m.update(opt, i + 1)
        steps += m.agent_steps - before  # live agent-steps learned from
    dt = time.perf_counter() - t0
    m.on_train_end()
    return steps / dt, dt / updates, per_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="*", default=list_recipes())
    ap.add_argument("--maps", type=int, default=1)
    ap.add_argument("--updates", type=int, default=2)
    ap.add_argument("--rollout", type=int, default=4096, help="live agent-steps per update")
    ap.add_argument("--preset", default=None, help="override the recipes' env preset (e.g. tiny)")
    ap.add_argument("--device", nargs="*", default=None, help="default: cpu, and cuda if present")
    a = ap.parse_args()
    devices = a.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {a.maps} map(s), "
          f"{a.rollout} agent-steps per update")
    print(f"{'device':>6} {'recipe':>10} {'train agent-steps/s':>20} {'s/update':>9} "
          f"{'rollout bytes/agent-step':>25}")
    for device in devices:
        for r in a.recipes:
            sps, per_update, per_step = run(r, a.maps, a.updates, a.rollout, a.preset, device)
            print(f"{device:>6} {r:>10} {sps:>20,.0f} {per_update:>9.2f} {per_step:>25,.0f}", flush=True)


if __name__ == "__main__":
    main()
