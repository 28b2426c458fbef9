"""tools/handoff.py: a real tiny fit's resume state is packed into committable parts, rebuilt
in another run directory byte for byte, and the fit resumes from it; a damaged or missing part
is refused with the file named, and nothing half-written is left."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from nmmozoo.cli import main
from nmmozoo.ship import run_summary

spec = importlib.util.spec_from_file_location("handoff", Path(__file__).parents[1] / "tools" / "handoff.py")
handoff = importlib.util.module_from_spec(spec)
spec.loader.exec_module(handoff)

TINY = ["--num_maps", "1", "--ppo.rollout_steps", "256", "--ppo.minibatch_steps", "256",
        "--ppo.epochs", "1", "--trainer.enable_progress_bar", "false", "--val_every", "0",
        "--checkpoint_every", "1"]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("handoff")
    assert main(["fit", "demo", "--run_dir", str(root / "run"), *TINY, "--trainer.max_steps", "2"]) == 0
    m = handoff.save(root / "run", root / "pack" / "demo", part_bytes=64 << 10)
    return root, m


def test_save_restore_is_byte_exact_and_the_fit_resumes(packed, tmp_path):
    root, m = packed
    ckpt = root / "run" / "checkpoints" / "last.ckpt"
    parts = m["checkpoint"]["parts"]
    assert len(parts) > 1 and all(p["bytes"] <= 64 << 10 for p in parts)
    assert m["checkpoint"]["bytes"] == ckpt.stat().st_size
    assert m["progress"]["update"] == 2 and m["progress"]["agent_steps"] > 0  # two updates done
    assert {f["path"] for f in m["files"]} >= {"run_info.json", "logs/version_0/metrics.csv"}
    assert not any(f["path"].startswith("checkpoints") for f in m["files"])

    dest = tmp_path / "run"
    handoff.restore(root / "pack" / "demo", dest)
    assert (dest / "checkpoints" / "last.ckpt").read_bytes() == ckpt.read_bytes()
    assert (dest / "logs" / "version_0" / "metrics.csv").read_bytes() == \
        (root / "run" / "logs" / "version_0" / "metrics.csv").read_bytes()
    handoff.restore(root / "pack" / "demo", dest)  # the same checkpoint again: nothing to do

    assert main(["fit", "demo", "--run_dir", str(dest), *TINY, "--trainer.max_steps", "3",
                 "--ckpt_path", "last"]) == 0
    s = run_summary(dest)
    assert s["updates"] == 3 and s["agent_steps"] == 3 * run_summary(root / "run")["agent_steps"] // 2


def test_progress_passes_over_a_line_cut_short(packed, tmp_path):
    """A fit killed mid-write leaves a partial CSV line; the manifest still names the last
    whole update instead of failing the save."""
    root, m = packed
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    csv_path = run / "logs" / "version_0" / "metrics.csv"
    whole = csv_path.read_text()
    cut = whole.splitlines()[-1].split(",")
    csv_path.write_text(whole + ",".join(cut[:3]) + ",3.2e")  # cut inside train/agent_steps
    assert handoff._last_progress(run) == m["progress"] == {"update": 2, "agent_steps": m["progress"]["agent_steps"]}


def test_a_damaged_or_missing_part_is_refused_and_nothing_is_written(packed, tmp_path):
    root, m = packed
    bad = tmp_path / "pack"
    shutil.copytree(root / "pack" / "demo", bad)
    part = bad / m["checkpoint"]["parts"][1]["name"]
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(handoff.HandoffError, match=part.name + ".*damaged"):
        handoff.restore(bad, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
    part.unlink()
    assert handoff.main(["restore", str(bad), str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_manifest_that_lies_about_the_whole_is_caught_after_decompressing(packed, tmp_path):
    root, _ = packed
    bad = tmp_path / "pack"
    shutil.copytree(root / "pack" / "demo", bad)
    mf = json.loads((bad / "manifest.json").read_text())
    mf["checkpoint"]["sha256"] = "0" * 64
    (bad / "manifest.json").write_text(json.dumps(mf))
    with pytest.raises(handoff.HandoffError, match="sha256 differs"):
        handoff.restore(bad, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
    assert not list((tmp_path / "run" / "checkpoints").glob(".*"))


def test_restore_keeps_another_checkpoint_unless_forced_and_save_needs_one(packed, tmp_path):
    root, _ = packed
    other = tmp_path / "run" / "checkpoints" / "last.ckpt"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"another run")
    with pytest.raises(handoff.HandoffError, match="not the handed-off checkpoint"):
        handoff.restore(root / "pack" / "demo", tmp_path / "run")
    assert other.read_bytes() == b"another run"
    handoff.restore(root / "pack" / "demo", tmp_path / "run", force=True)
    assert other.read_bytes() == (root / "run" / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(handoff.HandoffError, match="no checkpoint to hand off"):
        handoff.save(tmp_path / "empty", tmp_path / "pack")
    assert not (tmp_path / "pack").exists()
