"""bf16 autocast on the CPU for the training minibatch, measured against fp32: the time of a
minibatch's forward + backward (the recipe's own 128 agent-steps, rebuilt from a real
rollout on the competition preset) and how far the bf16 logits, values and log-probs are
from fp32's.

    python benchmarks/bf16.py --recipes baseline takeru --minibatches 8
"""

from __future__ import annotations

import argparse
import time

import torch

from nmmozoo.train import PPOModule
from nmmozoo.train.modules import MultiHeadCategorical


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="*", default=["baseline", "takeru"])
    ap.add_argument("--minibatches", type=int, default=8)
    ap.add_argument("--rollout", type=int, default=2048)
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"bf16 supported: {torch.backends.mkldnn.is_available()}")
    print(f"{'recipe':>10} {'fp32 ms':>8} {'bf16 ms':>8} {'speed-up':>8} {'max |Δ value|':>14} "
          f"{'max |Δ log-prob|':>17} {'value scale':>12}")
    for r in a.recipes:
        torch.manual_seed(0)
        m = PPOModule(r, overrides={"ppo.rollout_steps": a.rollout}, env_overrides={"num_maps": 1})
        ro = m._collect()
        _, table = m.prepare(ro)
        parts = m.minibatches(table.shape[0])[: a.minibatches]
        seq = m.learner.sequence
        times = {False: 0.0, True: 0.0}
        dv = dl = scale = 0.0
        for part in parts:
            rows = ro.store.rows(table[part].clamp_min(0)[..., None])
            mb = m._minibatch(ro.store, table[part])
            act = mb["agents", "action"]
            outs = {}
            for bf16 in (False, True, False, True):  # interleaved, the second pair timed
                m.policy.zero_grad()
                t = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    out = m.policy.forward_rows(rows, sequence=seq)
                logp = MultiHeadCategorical({h: v.float() for h, v in out["logits"].items()}).log_prob(act)
                (logp.sum() + out["value"].float().sum()).backward()
                times[bf16] += time.perf_counter() - t
                outs[bf16] = (out["value"].detach().float(), logp.detach())
            dv = max(dv, float((outs[True][0] - outs[False][0]).abs().max()))
            dl = max(dl, float((outs[True][1] - outs[False][1]).abs().max()))
            scale = max(scale, float(outs[False][0].abs().max()))
        n = len(parts) * 2
        f32, b16 = times[False] / n * 1e3, times[True] / n * 1e3
        print(f"{r:>10} {f32:>8.1f} {b16:>8.1f} {f32 / b16:>7.2f}x {dv:>14.3g} {dl:>17.3g} {scale:>12.3g}",
              flush=True)
        m.on_train_end()


if __name__ == "__main__":
    main()
