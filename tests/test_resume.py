"""Exact resume: a fit killed with SIGKILL, or stopped with SIGTERM, and resumed from its
last checkpoint ends with the same weights as the uninterrupted fit (the checkpoint carries
the env, its transforms, the observation the collector feeds next and the random
generators)."""

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


REF_STEPS = 12  # the uninterrupted fit: 6 updates of 2 optimiser steps


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The weights of a fit run straight through to REF_STEPS."""
    run = tmp_path_factory.mktemp("uninterrupted")
    a = subprocess.run(_cmd(run, REF_STEPS), capture_output=True, text=True, timeout=600, env=_env())
    assert a.returncode == 0, a.stderr[-3000:]
    step, weights = _weights(run)
    assert step == REF_STEPS
    return weights


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _resume_and_compare(b, want, stopped_at):
    r = subprocess.run(_cmd(b, REF_STEPS, "--ckpt_path", "last"), capture_output=True, text=True, timeout=600,
                       env=_env())
    assert r.returncode == 0, r.stderr[-3000:]
    step_b, got = _weights(b)
    assert step_b == REF_STEPS
    assert got.keys() == want.keys()
    diff = max((got[k].float() - want[k].float()).abs().max().item() for k in want)
    assert diff == 0.0, f"resumed from step {stopped_at}: weights differ by up to {diff:g}"


@pytest.mark.timeout(900)
def test_killed_fit_resumes_to_the_uninterrupted_weights(tmp_path, uninterrupted):
    b = tmp_path / "b"
    proc = subprocess.Popen(_cmd(b, 40), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
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
    assert 2 <= killed_at < REF_STEPS
    _resume_and_compare(b, uninterrupted, killed_at)


@pytest.mark.timeout(900)
def test_sigterm_saves_the_update_it_stopped_at_and_resumes_exactly(tmp_path, uninterrupted):
    """SIGTERM mid-fit: the fit finishes the update in progress, writes last.ckpt there (not
    only at its periodic checkpoints, here every 2nd update; the message and the file's time
    show the callback wrote it) and exits 143 saying so; the resumed fit ends with the
    uninterrupted weights."""
    b = tmp_path / "b"
    proc = subprocess.Popen(_cmd(b, 40, "--checkpoint_every", "4"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=_env())
    last = b / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600
    try:
        while time.time() < deadline and not last.exists():  # the periodic one at step 4
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            time.sleep(0.02)
        signalled = time.time()
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err.decode()
    assert proc.returncode == 143, err[-3000:]
    assert "stopped by SIGTERM at the end of an update; saved" in err, err[-3000:]
    assert last.stat().st_mtime >= signalled
    stopped_at, _ = _weights(b)
    # at the periodic checkpoint it signalled after (a signal while that update's end hooks
    # still ran, the checkpoint then written again by the callback) or past it
    assert 4 <= stopped_at < REF_STEPS, stopped_at
    _resume_and_compare(b, uninterrupted, stopped_at)


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
