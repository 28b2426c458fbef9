"""`nmmozoo fit` tells the truth: resuming keeps the command line (or refuses, naming the
field), checkpoints hold the policy once, metrics are logged per update, --print_config shows
what the run uses, and damaged checkpoints or refused options are clear errors."""

from __future__ import annotations

import csv

import pytest
import torch

from nmmozoo.cli import main

SMALL = ["--num_maps", "1", "--ppo.rollout_steps", "256", "--ppo.minibatch_steps", "256",
         "--ppo.epochs", "1", "--trainer.enable_progress_bar", "false", "--checkpoint_every", "1"]


@pytest.mark.timeout(900)
def test_resume_applies_ppo_changes_refuses_identity_changes_and_stores_policy_once(tmp_path, capsys):
    from nmmozoo.nn.registry import SpecError
    from nmmozoo.train import PPOModule

    run = tmp_path / "run"
    args = ["fit", "demo", "--run_dir", str(run), *SMALL]
    assert main(args + ["--trainer.max_steps", "2"]) == 0
    # one CSV row per update (log_every_n_steps follows the updates)
    with open(next((run / "logs").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    assert [float(r["train/update"]) for r in rows] == [1.0, 2.0]
    # the policy once: no actor/critic/loss aliases, no loss or GAE settings
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    keys = set(ckpt["state_dict"])
    assert keys and all(k.startswith("policy.") for k in keys)
    assert ckpt["nmmozoo_recipe"]["model"] == "baseline_tinycorrected"
    capsys.readouterr()
    # the model or the env may not change on resume: refused, naming the field
    assert main(args + ["--trainer.max_steps", "3", "--ckpt_path", "last", "--model.policy", "takeru_tiny"]) == 2
    err = capsys.readouterr().err
    assert "model.policy" in err and "'takeru_tiny'" in err and "'baseline_tinycorrected'" in err
    assert main(args + ["--trainer.max_steps", "3", "--ckpt_path", "last", "--env.num_npcs", "0"]) == 2
    assert "model.env.num_npcs (checkpoint: 4, asked: 0)" in capsys.readouterr().err
    assert torch.load(last, weights_only=True)["global_step"] == 2  # nothing ran
    # PPO settings may: applied (the optimiser's restored lr does not win)
    assert main(args + ["--trainer.max_steps", "3", "--ckpt_path", "last", "--ppo.lr", "0.5",
                        "--ppo.anneal_lr", "false", "--ppo.clip", "0.3"]) == 0
    assert "ppo.lr: 0.002 -> 0.5" in capsys.readouterr().err
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 3 and ckpt["nmmozoo_agent_steps"] == 3 * 256
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == 0.5
    assert ckpt["nmmozoo_recipe"]["ppo"]["clip"] == 0.3
    assert all(k.startswith("policy.") for k in ckpt["state_dict"])
    # another checkpoint cadence on resume still writes last.ckpt (no last-v1.ckpt beside it,
    # which the next --ckpt_path last would not read)
    more = ["fit", "demo", "--run_dir", str(run), *SMALL[:-2], "--checkpoint_every", "2"]
    assert main(more + ["--trainer.max_steps", "4", "--ckpt_path", "last", "--ppo.lr", "0.5",
                        "--ppo.anneal_lr", "false", "--ppo.clip", "0.3"]) == 0
    assert torch.load(last, weights_only=True)["global_step"] == 4
    # and nothing else: last.ckpt is the run's one checkpoint file
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    # the module itself (Trainer.fit(ckpt_path=...) outside the command) re-ties the aliases,
    # takes its own ppo settings, and refuses another model
    m = PPOModule("demo", ppo={"clip": 0.2}, env_overrides={"num_maps": 1})
    m.on_load_checkpoint(ckpt)
    m.load_state_dict(ckpt["state_dict"], strict=True)
    assert float(m.loss.clip_epsilon) == pytest.approx(0.2)
    for k, v in m.policy.state_dict().items():
        assert torch.equal(v, ckpt["state_dict"]["policy." + k])
        assert m.actor.policy.state_dict()[k] is not None
    other = PPOModule("demo", policy="baseline_tiny", env_overrides={"num_maps": 1})
    with pytest.raises(SpecError, match="model.policy"):
        other.on_load_checkpoint(torch.load(last, weights_only=True))


def test_damaged_ckpt_paths_are_clear_errors(tmp_path, capsys):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {}, "global_step": 0, "hyper_parameters": {}}, good)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    cases = {tmp_path / "absent.ckpt": "does not exist", empty: "is empty", cut: "damaged or truncated",
             tmp_path: "is a directory"}
    for path, why in cases.items():
        assert main(["fit", "demo", "--run_dir", str(tmp_path / "r"), "--ckpt_path", str(path)]) == 2, path
        err = capsys.readouterr().err
        assert str(path) in err and why in err and "Traceback" not in err, err


def test_print_config_shows_effective_max_steps_and_loggers(capsys):
    # demo: 4096 live steps per update, 3 epochs of 4096 // 512 minibatches = 24 steps/update
    assert main(["fit", "demo", "--ppo.total_steps", "8192", "--print_config"]) == 0
    out = capsys.readouterr().out
    assert "max_steps: 48" in out and "lightning.pytorch.loggers.CSVLogger" in out
    assert "log_every_n_steps: 1" in out
    assert main(["fit", "demo", "--trainer.max_steps", "7", "--logger", "csv,tensorboard", "--print_config"]) == 0
    out = capsys.readouterr().out
    assert "max_steps: 7" in out and "TensorBoardLogger" in out


@pytest.mark.parametrize("flag", ["--optimizer", "--lr_scheduler", "--data", "--optimizer.lr"])
def test_optimizer_options_are_refused(flag, capsys):
    assert main(["fit", "demo", flag, "torch.optim.SGD"]) == 2
    err = capsys.readouterr().err
    assert flag in err and ("--ppo" in err or "--env" in err)


def test_bad_ppo_values_refused_before_training(capsys):
    assert main(["fit", "demo", "--ppo.max_grad_norm", "-1", "--print_config"]) == 2
    assert "demo.yaml: ppo.max_grad_norm must be > 0, got -1" in capsys.readouterr().err


def test_help_documents_the_ppo_settings(capsys):
    assert main(["fit", "demo", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--trainer.max_steps" in out  # Lightning's own help is still there
    assert "--ppo.max_grad_norm 0.5" in out and "--ppo.lr 0.002 (default 0.00015)" in out
    assert "Gradients are clipped" in out
    assert main(["fit", "--help"]) == 0
    assert "--ppo.gae_lambda 0.95" in capsys.readouterr().out


def test_progress_bar_counts_updates(tmp_path, capsys):
    """The bar of a real fit is labelled PPO updates and counts them: 3 of 3 (not epochs, not
    optimiser steps: 4 of those per update here)."""
    from nmmozoo.cli import main

    run = tmp_path / "run"
    assert main(["fit", "demo", "--run_dir", str(run), *SMALL, "--trainer.max_steps", "12",
                 "--trainer.enable_progress_bar", "true", "--ppo.minibatch_steps", "64"]) == 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "PPO updates" in text
    assert "3/3" in text and "12/12" not in text
