"""Validation during a fit (`nmmozoo fit --val_every`), `nmmozoo validate` and `nmmozoo report`,
on real tiny fits: the curve lands in the CSV log beside the update's training figures,
validating does not change what is trained, the command gives the fit's own numbers, a
resumed fit keeps validating, and the report draws every run on one plot per metric."""

from __future__ import annotations

import csv
import shutil

import pytest

from nmmozoo.cli import main

TINY = ["--num_maps", "1", "--ppo.rollout_steps", "256", "--ppo.minibatch_steps", "256",
        "--ppo.epochs", "1", "--trainer.enable_progress_bar", "false", "--checkpoint_every", "1"]
VAL = ("val/score", "val/completion", "val/lifespan")


def rows(run, version=0):
    with open(run / "logs" / f"version_{version}" / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    """Demo fits (one map, 256-step rollouts, one epoch): ``a`` (3 updates) validates after
    every update, ``b`` (3) never, ``c`` (4) every 2 updates."""
    root = tmp_path_factory.mktemp("fits")
    for name, every, updates in (("a", "1", "3"), ("b", "0", "3"), ("c", "2", "4")):
        args = ["fit", "demo", "--run_dir", str(root / name), *TINY, "--trainer.max_steps", updates,
                "--val_every", every]
        assert main(args) == 0, name
    return root


@pytest.mark.timeout(600)
def test_fit_logs_a_validation_per_update_without_changing_training(fits):
    a, b = rows(fits / "a"), rows(fits / "b")
    assert [float(r["train/update"]) for r in a] == [1.0, 2.0, 3.0]
    for r in a:  # one validation per update, in the update's row, values in range
        assert 0.0 <= float(r["val/score"]) <= 100.0
        assert 0.0 <= float(r["val/completion"]) <= 1.0
        assert 0.0 < float(r["val/lifespan"]) <= 256.0
        assert float(r["val/agent_episodes"]) == 64.0  # 4 tiny maps x 16 agents: every held-out task once
    assert not any(k.startswith("val/") for k in b[0])
    # every 2 updates: after updates 2 and 4; the other rows have no val/ figures (no repeats
    # of an earlier validation)
    c = rows(fits / "c")
    assert [bool(r["val/score"]) for r in c] == [False, True, False, True]
    # the evaluation's seeding does not reach the training's random streams: same rollouts,
    # same losses with and without validation
    assert [float(r["train/loss"]) for r in a] == pytest.approx([float(r["train/loss"]) for r in b], rel=1e-6)
    assert [r["train/episode/lifespan"] for r in a] == [r["train/episode/lifespan"] for r in b]


@pytest.mark.timeout(600)
def test_validate_command_gives_the_fits_last_validation(fits, capsys):
    capsys.readouterr()
    assert main(["validate", "demo", "--ckpt_path", "last", "--run_dir", str(fits / "a")]) == 0
    out = dict(line.split(" ", 1) for line in capsys.readouterr().out.splitlines()
               if line.startswith("val/"))
    last = rows(fits / "a")[-1]
    for k in VAL:  # the same maps, seed and weights as the fit's validation after update 3
        assert float(out[k]) == pytest.approx(float(last[k]), rel=1e-5, abs=1e-6), k
    for args, why in ((["demo", "--ckpt_path", str(fits / "a" / "nope.ckpt")], "does not exist"),
                      (["demo", "--ckpt_path", "last", "--run_dir", str(fits / "none")], "no "),
                      (["demo", "--val_ticks", "0"], "--val_ticks must be >= 1"),
                      (["no_such_model"], "unknown model or recipe")):
        assert main(["validate", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert why in err and len(err.splitlines()) == 1 and err.startswith("nmmozoo validate:"), err


@pytest.mark.timeout(600)
def test_resumed_fit_keeps_validating_and_the_report_joins_its_logs(fits, tmp_path):
    from nmmozoo.report import read_metrics

    run = tmp_path / "a"
    shutil.copytree(fits / "a", run)
    args = ["fit", "demo", "--run_dir", str(run), *TINY, "--trainer.max_steps", "4", "--val_every", "2",
            "--ckpt_path", "last"]
    assert main(args) == 0
    new = rows(run, version=1)
    assert [float(r["train/update"]) for r in new] == [4.0] and float(new[0]["val/score"]) >= 0.0
    joined = read_metrics(run)  # both versions, in agent-step order
    assert [r["train/update"] for r in joined] == [1.0, 2.0, 3.0, 4.0]
    assert [r["train/agent_steps"] for r in joined] == [256.0, 512.0, 768.0, 1024.0]
    assert all("val/lifespan" in r for r in joined)


def test_report_draws_every_run_on_each_metric(fits, tmp_path, capsys):
    from matplotlib.image import imread

    from nmmozoo.report import curve_figures, read_metrics

    out = tmp_path / "curves"
    assert main(["report", str(fits / "a"), str(fits / "b"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "a: 3 updates, 768 agent-steps, 3 validations" in printed and "b: 3 updates" in printed
    for name in ("train_episode_return", "train_episode_lifespan", "train_task_completion", "val_score",
                 "val_completion", "val_lifespan", "agent_steps_per_s"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        h, w = imread(png).shape[:2]
        assert h > 200 and w > 300
    figs = curve_figures({"a": read_metrics(fits / "a"), "b": read_metrics(fits / "b")})
    try:
        for name in ("train_episode_lifespan.png", "agent_steps_per_s.png"):
            ax = figs[name].axes[0]
            assert [ln.get_label() for ln in ax.get_lines()] == ["a", "b"]
            assert ax.get_xlabel().startswith("live agent-steps")
        val = figs["val_score.png"].axes[0].get_lines()  # b did not validate
        assert [ln.get_label() for ln in val] == ["a"] and list(val[0].get_xdata()) == [256.0, 512.0, 768.0]
    finally:
        import matplotlib.pyplot as plt

        for f in figs.values():
            plt.close(f)


def test_report_and_fit_flags_refuse_bad_inputs(fits, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for d, why in ((tmp_path / "absent", "does not exist"), (tmp_path / "empty", "holds no fit metrics"),
                   (fits / "a" / "policy.safetensors", "is a file, not a run directory")):
        assert main(["report", str(fits / "a"), str(d), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert str(d) in err and why in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "out").exists()  # nothing written
    # the parent of several runs: names them
    assert main(["report", str(fits), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(fits / "a") in err and str(fits / "b") in err
    for flag, val in (("--val_every", "-1"), ("--val_ticks", "0"), ("--val_maps", "x")):
        assert main(["fit", "demo", "--run_dir", str(tmp_path / "r"), flag, val]) == 2
        assert f"{flag} expects an integer" in capsys.readouterr().err


def test_default_interval_gives_about_ten_validations_per_run():
    from types import SimpleNamespace

    from nmmozoo.recipe import load_recipe, ppo_config
    from nmmozoo.train import PPOModule
    from nmmozoo.train.validate import Validation, default_maps

    updates, per_update = PPOModule.schedule(ppo_config(load_recipe("demo")))
    assert (updates, per_update) == (245, 24)
    assert Validation().interval(SimpleNamespace(updates=updates)) == 24
    assert Validation(every=0).interval(SimpleNamespace(updates=updates)) == 0
    assert default_maps(16) == 4 and default_maps(128) == 1 and default_maps(16, episodes=2) == 2
