"""Regenerate tests/golden/zoo.json (run after an intended change to a model)."""

import json
from pathlib import Path

import torch

import nmmozoo
from tests.test_zoo import _fingerprint

env = nmmozoo.make_env("tiny", num_maps=2, seed=0)
td = env.reset()
gen = torch.Generator().manual_seed(0)
for _ in range(3):
    nmmozoo.env.random_actions(td, gen)
    _, td = env.step_and_maybe_reset(td)
out = {m: _fingerprint(m, env, td) for m in nmmozoo.list_models("*_tiny")}
Path(__file__).with_name("zoo.json").write_text(json.dumps(out, indent=1))
print(f"wrote {len(out)} entries")
