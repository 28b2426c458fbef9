"""Bad input to the commands: a one-line error naming the flag, file or value, exit status 2,
never a traceback; and files written whole or not at all."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from nmmozoo.cli import main


def _err(capsys, argv) -> str:
    """Run the command; it must exit 2 (by return or argparse's SystemExit) and say why."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    assert rc == 2, argv
    err = capsys.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    return err


def test_a_device_that_is_not_one_is_named(capsys):
    assert "'gpu' is not a torch device" in _err(capsys, ["rollout", "--preset", "tiny", "--device", "gpu"])
    assert "'gpu' is not a torch device" in _err(capsys, ["test", "random", "--preset", "tiny", "--device", "gpu"])
    assert "'gpu' is not a torch device" in _err(capsys, ["validate", "random", "--device", "gpu"])
    if not torch.cuda.is_available():
        assert "CUDA is not available" in _err(capsys, ["validate", "random", "--device", "cuda"])


@pytest.mark.parametrize("argv", [["test", "random", "--threads", "-1"], ["test", "random", "--threads", "0"],
                                  ["validate", "random", "--threads", "0"], ["rollout", "--ticks", "-5"]])
def test_counts_below_one_are_refused_naming_the_flag(capsys, argv):
    err = _err(capsys, argv)
    assert argv[-2] in err and "integer >= 1" in err


def test_a_task_file_that_is_a_folder_is_named(tmp_path, capsys):
    err = _err(capsys, ["test", "random", "--preset", "tiny", "--tasks", str(tmp_path)])
    assert str(tmp_path) in err and "is not a file" in err
    bad = tmp_path / "tasks.yaml"
    bad.write_bytes(b"\xff\xfe\x00bad")
    err = _err(capsys, ["rollout", "--preset", "tiny", "--tasks", str(bad)])
    assert str(bad) in err and "not readable text" in err


def test_a_recipe_that_is_a_folder_or_not_a_mapping_is_named(tmp_path, capsys):
    err = _err(capsys, ["fit", str(tmp_path)])
    assert str(tmp_path) in err and "is not a file" in err
    for text in ("42\n", "- a\n- b\n"):
        f = tmp_path / "r.yaml"
        f.write_text(text)
        err = _err(capsys, ["fit", str(f)])
        assert "r.yaml" in err and "mapping" in err


def test_a_run_dir_under_a_file_is_refused_before_anything_runs(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    for run in (f, f / "run"):
        err = _err(capsys, ["fit", "demo", "--run_dir", str(run)])
        assert "--run_dir" in err and "is a file" in err
    assert f.read_text() == "mine"


def test_a_trainer_argument_lightning_refuses_is_named(tmp_path):
    # in a process of its own: Lightning's log handler keeps the stderr it was imported under
    r = subprocess.run([sys.executable, "-m", "nmmozoo.cli", "fit", "demo", "--run_dir", str(tmp_path / "r"),
                        "--trainer.max_steps", "-5"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.stderr.strip().splitlines()[-1].startswith("nmmozoo fit: --trainer: `max_steps`")


def test_a_damaged_index_is_a_hub_error(tmp_path, monkeypatch):
    from nmmozoo import hub

    (tmp_path / "index.yaml").write_text("takeru: {file: a\n<<<<<<< HEAD\n")
    monkeypatch.setattr(hub.resources, "files", lambda pkg: tmp_path)
    with pytest.raises(hub.HubError, match="index.yaml is not valid YAML"):
        hub.pretrained_index()


def test_a_results_json_that_is_not_a_report_is_named(tmp_path, capsys):
    from nmmozoo.ship import ShipError, report_score

    (tmp_path / "results.json").write_text(json.dumps([]))
    err = _err(capsys, ["test", "random", "--preset", "tiny", "--num_maps", "1", "--seeds", "0", "1",
                        "--horizon", "8", "--report", str(tmp_path)])
    assert "results.json is not an nmmozoo test results.json" in err
    assert json.loads((tmp_path / "results.json").read_text()) == []  # left as it was
    with pytest.raises(ShipError, match="not an nmmozoo test report"):
        report_score(tmp_path, "random")


def test_render_flags_out_of_range_are_named(tmp_path, capsys):
    for flag, value in (("--fps", "nan"), ("--fps", "0"), ("--scale", "100000"), ("--scale", "0")):
        err = _err(capsys, ["render", str(tmp_path / "r.npz"), flag, value])
        assert "--fps" in err and "--scale" in err


def test_a_failed_replay_save_leaves_the_old_file(tmp_path, monkeypatch):
    from nmmozoo.replay import record_episode

    out = tmp_path / "r.npz"
    replay = record_episode(None, preset="tiny", ticks=4, seed=0)
    replay.save(out)
    before = out.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError):
        replay.save(out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.npz"]  # no temporary file left


def test_validate_takes_none_as_test_does(capsys):
    assert main(["validate", "demo", "--ckpt_path", "none", "--val_ticks", "4", "--val_maps", "1"]) == 0
    assert "val/score" in capsys.readouterr().out


def test_output_paths_are_checked_before_anything_is_evaluated(tmp_path, capsys, monkeypatch):
    """A --report folder that cannot take the results, or a --replay path that cannot take the
    file, is refused before the evaluation or episode runs (neither is reached here)."""
    import nmmozoo.evaluate as ev
    import nmmozoo.replay as rp

    def not_reached(*args, **kwargs):
        raise AssertionError("evaluated before the output path was checked")

    monkeypatch.setattr(ev, "evaluate_seeds", not_reached)
    monkeypatch.setattr(rp, "record_episode", not_reached)
    f = tmp_path / "file.txt"
    f.write_text("x")
    base = ["test", "random", "--preset", "tiny", "--num_maps", "1", "--seeds", "0", "1", "--horizon", "8"]
    assert "is a file, not a directory" in _err(capsys, [*base, "--report", str(f / "rep")])
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text(json.dumps({"setting": {"preset": "competition2023"}, "policies": []}))
    assert "holds results of another setting" in _err(capsys, [*base, "--report", str(other)])
    assert "is a directory" in _err(capsys, ["predict", "random", "--preset", "tiny", "--replay", str(tmp_path)])
    assert "is a file, not a directory" in _err(capsys, ["predict", "random", "--preset", "tiny",
                                                          "--replay", str(f / "r.npz")])
