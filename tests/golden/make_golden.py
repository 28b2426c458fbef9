"""Regenerate tests/golden/zoo.json (run after an intended change to a model):
``python -m tests.golden.make_golden`` from the repository root."""

import json
from pathlib import Path

import nmmozoo
from tests.test_zoo import _fingerprint, golden_batch

env, td = golden_batch()
out = {m: _fingerprint(m, env, td) for m in nmmozoo.list_models("*_tiny")}
Path(__file__).with_name("zoo.json").write_text(json.dumps(out, indent=1))
print(f"wrote {len(out)} entries")
