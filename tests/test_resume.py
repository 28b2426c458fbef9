"""Exact resume: a fit killed with SIGKILL and resumed from its last checkpoint ends with
the same weights as the uninterrupted fit (the checkpoint carries the env, its transforms,
the observation the collector feeds next and the random generators)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

ARGS = ["fit", "demo", "--num_maps", "1", "--ppo.rollout_steps", "256", "--ppo.minibatch_steps", "128",
        "--ppo.epochs", "1", "--trainer.enable_progress_bar", "false", "--checkpoint_every", "2",
        "--val_every", "0"]


def _cmd(run, steps, *extra):
    return [sys.executable, "-m", "nmmozoo.cli", *ARGS, "--run_dir", str(run),
            "--trainer.max_steps", str(steps), *extra]


def _weights(run):
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["global_step"], {k: v for k, v in ckpt["state_dict"].items() if k.startswith("policy.")}


@pytest.mark.timeout(900)
def test_killed_fit_resumes_to_the_uninterrupted_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    a = subprocess.run(_cmd(tmp_path / "a", 8), capture_output=True, text=True, timeout=600, env=env)
    assert a.returncode == 0, a.stderr[-3000:]
    step_a, want = _weights(tmp_path / "a")
    assert step_a == 8

    b = tmp_path / "b"
    proc = subprocess.Popen(_cmd(b, 40), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    last = b / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600
    try:
        while time.time() < deadline:  # kill -9 once a checkpoint past the first update exists
            if last.exists() and _weights(b)[0] >= 2:
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    killed_at, _ = _weights(b)
    assert 2 <= killed_at < 8
    r = subprocess.run(_cmd(b, 8, "--ckpt_path", "last"), capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    step_b, got = _weights(b)
    assert step_b == 8
    assert got.keys() == want.keys()
    diff = max((got[k].float() - want[k].float()).abs().max().item() for k in want)
    assert diff == 0.0, f"resumed from update {killed_at}: weights differ by up to {diff:g}"


def test_an_env_state_that_does_not_fit_warns_and_starts_the_env_afresh():
    """A checkpoint whose env state was saved by other env code (say, a field added since) is
    not an exact resume: a warning says so and the run goes on from a fresh env."""
    from nmmozoo.train import PPOModule

    m = PPOModule("demo", overrides={"ppo.rollout_steps": 256, "ppo.minibatch_steps": 256},
                  env_overrides={"num_maps": 1})
    m._pending_run_state = {"env": {"format": -1}, "rng": {"torch": torch.get_rng_state()}}
    with pytest.warns(UserWarning, match="not an exact resume"):
        ro = m._collect()
    assert len(ro.store) >= 256
    m.on_train_end()
