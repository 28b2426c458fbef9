"""PPO updates (TorchRL GAE + ClipPPOLoss) on the demo recipe, and the dead-agent mask."""

from __future__ import annotations

import pytest
import torch

from nmmozoo.train import PPOModule
from nmmozoo.train.ppo import masked_mean


def test_masked_mean_ignores_dead_rows():
    x = torch.tensor([[1.0, 100.0], [3.0, -50.0]])
    alive = torch.tensor([[True, False], [True, False]])
    assert masked_mean(x, alive) == 2.0
    assert masked_mean(x[..., None], alive[..., None]) == 2.0


def test_ppo_updates_change_the_policy():
    torch.manual_seed(0)
    m = PPOModule("demo", overrides={"ppo.rollout_steps": 512, "ppo.minibatch_steps": 256,
                                     "ppo.epochs": 1}, env_overrides={"num_maps": 1})
    opt = torch.optim.Adam(m.policy.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in m.policy.parameters()]
    for i in range(2):
        log, sps = m.update(opt, i)
        assert torch.isfinite(log["loss"]) and sps > 0
        assert {"entropy", "kl", "clip_fraction", "reward", "alive", "entropy/move", "entropy/buy_item", "wall_s", "cpu_s"} <= set(log)
    changed = sum(not torch.equal(a, b) for a, b in zip(before, m.policy.parameters()))
    assert changed > len(before) // 2
    m.on_train_end()


def test_fit_command_checkpoints_resumes_and_exports(tmp_path):
    import nmmozoo
    from nmmozoo.cli import main

    run = tmp_path / "run"
    args = ["fit", "demo", "--run_dir", str(run), "--num_maps", "1", "--ppo.rollout_steps", "256",
            "--ppo.minibatch_steps", "256", "--ppo.epochs", "1", "--trainer.enable_progress_bar",
            "false", "--checkpoint_every", "1"]
    assert main(args + ["--trainer.max_steps", "2"]) == 0
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2 and ckpt["nmmozoo_agent_steps"] == 2 * 256
    assert main(args + ["--trainer.max_steps", "4", "--ckpt_path", "last"]) == 0
    ckpt2 = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt2["global_step"] == 4 and ckpt2["nmmozoo_agent_steps"] == 4 * 256
    # the optimiser state came along (Adam's step count continued)
    steps = [s["step"] for s in ckpt2["optimizer_states"][0]["state"].values()]
    assert float(steps[0]) == 4
    policy = nmmozoo.load_pretrained(run / "policy.safetensors")
    assert policy.name == "baseline_tinycorrected"
    assert main(["fit", "demo", "--ppo.lrr", "1"]) == 2


@pytest.mark.parametrize("recipe", ["baseline", "takeru", "yaofeng", "saidinesh", "mori", "jimyhzhu", "demo"])
def test_every_recipe_completes_updates_on_tiny(recipe):
    from nmmozoo.recipe import load_recipe
    model = load_recipe(recipe)["model"]
    model = model if "tiny" in model.rpartition("_")[2] else f"{model}_tiny"
    m = PPOModule(recipe, overrides={"model": model, "ppo.rollout_steps": 256, "ppo.minibatch_steps": 128,
                                     "ppo.epochs": 1},
                  env_overrides={"preset": "tiny", "num_maps": 1, "map_pool_size": 4, "num_npcs": 4})
    opt = torch.optim.Adam(m.policy.parameters(), lr=1e-3)
    for i in range(2):
        log, _ = m.update(opt, i)
        assert torch.isfinite(log["loss"])
    m.on_train_end()


def test_fit_bad_model_is_a_clear_error(capsys):
    from nmmozoo.cli import main
    assert main(["fit", "demo", "--model", "gpt"]) == 2
    assert "unknown model 'gpt'" in capsys.readouterr().err


def test_recurrent_rollouts_carry_memory_and_train_on_sequences():
    """A recurrent recipe's rollout carries the LSTM state step to step, restarts it where a
    map's episode starts, and the loss runs on [n, bptt] sequences."""
    m = PPOModule("yaofeng", overrides={"model": "yaofeng_tiny", "ppo.rollout_steps": 16 * 12,
                                        "ppo.minibatch_steps": 64, "ppo.bptt": 4, "ppo.epochs": 1},
                  env_overrides={"preset": "tiny", "num_maps": 2, "map_pool_size": 4, "num_npcs": 4,
                                 "horizon": 5})
    assert m.recurrent and m.chunk == 2 and m.num_minibatches == 3
    data, ro = _collect_with_chunks(m)  # 192 live agent-steps = 6 ticks of 2 maps x 16 agents
    assert data.shape == (2, 6)
    state = data["agents", "recurrent_state"]  # [maps, ticks, P, 2, layers, H]
    init = data["is_init"].squeeze(-1)
    assert init[:, 0].all() and init[:, 5].all() and not init[:, 1:5].any()  # horizon 5
    assert (state[init] == 0).all() and state[:, 1:5].abs().sum() > 0
    # the state stored at step t is the one the actor produced at t-1
    assert torch.equal(state[:, 1:5], data["next", "agents", "recurrent_state"][:, :4])
    # the compact rollout keeps each live step's state and episode-start flag
    d = ro.store.data
    alive = data["agents", "mask"]
    assert len(ro.store) == int(alive.sum()) == 192
    b, t, p = d["map"].long(), d["tick"].long(), d["agent"].long()
    assert alive[b, t, p].all()
    assert torch.equal(d["state"], state[b, t, p])
    assert torch.equal(d["reset"], init[b, t])
    opt = torch.optim.Adam(m.policy.parameters(), lr=1e-3)
    log, _ = m.update(opt, 0)
    assert torch.isfinite(log["loss"])
    m.on_train_end()


def _collect_with_chunks(m):
    """One rollout of ``m`` and the collector chunks it was made from, joined ``[maps, ticks]``."""
    chunks = []
    if m._collector is None:
        m._collect_setup()
    nxt = m._next_chunk
    m._next_chunk = lambda: (chunks.append(nxt()), chunks[-1])[1]
    try:
        ro = m._collect()
    finally:
        m._next_chunk = nxt
    return torch.cat(chunks, 1) if len(chunks) > 1 else chunks[0], ro


def _fit_cmd(run, *extra):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "nmmozoo.cli", "fit", "demo", "--run_dir", str(run),
                           "--num_maps", "2", "--ppo.rollout_steps", "256", "--ppo.minibatch_steps", "256",
                           "--ppo.epochs", "1", "--trainer.enable_progress_bar", "false", *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(900)
def test_fit_data_parallel_on_cpu(tmp_path):
    """`--trainer.devices 2 --trainer.strategy ddp`: two processes, one env each, averaged
    gradients (the ranks' weights are checked equal at the end), agent-steps of both."""
    import csv

    r = _fit_cmd(tmp_path / "run", "--trainer.devices", "2", "--trainer.strategy", "ddp",
                 "--trainer.max_steps", "2", "--trainer.log_every_n_steps", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Starting with 2 processes" in r.stdout + r.stderr
    assert "trained 1,024 agent-steps" in r.stdout
    rows = list(csv.DictReader(open(next((tmp_path / "run" / "logs").rglob("metrics.csv")))))
    steps = [float(x["train/agent_steps"]) for x in rows if x.get("train/agent_steps")]
    assert steps[-1] == 1024
    # every update logs its CPU seconds (the ranks' summed by an all-reduce)
    cpu = [float(x["train/cpu_s"]) for x in rows if x.get("train/cpu_s")]
    assert len(cpu) == len(steps) and all(c > 0 for c in cpu)


@pytest.mark.timeout(900)
def test_multi_process_collector_trains(tmp_path):
    """`ppo.collector_workers 2`: a MultiSyncCollector of two worker processes, each with
    half the maps; the rollout has every map and the policy's weights reach the workers."""
    m = PPOModule("demo", overrides={"ppo.rollout_steps": 256, "ppo.minibatch_steps": 256, "ppo.epochs": 1,
                                     "ppo.collector_workers": 2}, env_overrides={"num_maps": 2})
    opt = torch.optim.Adam(m.policy.parameters(), lr=1e-3)
    for i in range(2):
        log, _ = m.update(opt, i)
        assert torch.isfinite(log["loss"])
        # the workers' CPU time is not the main process's: no CPU figure rather than a short one
        assert "cpu_s" not in log and log["wall_s"] > 0
    assert m.agent_steps == 2 * 256
    m.on_train_end()
    with pytest.raises(ValueError, match="collector_workers=3 must divide"):
        PPOModule("demo", overrides={"ppo.collector_workers": 3}, env_overrides={"num_maps": 2})


def test_rollout_keeps_each_steps_alive_mask():
    """An agent's last step (the one it dies on) is in the rollout as alive: the stored masks
    are each step's own, not overwritten by later steps (they used to alias the state)."""
    m = PPOModule("demo", overrides={"ppo.rollout_steps": 2048}, env_overrides={"num_maps": 2})
    data, _ = _collect_with_chunks(m)
    cur, nxt = data["agents", "mask"], data["next", "agents", "mask"]
    assert int((cur & ~nxt).sum()) > 0  # deaths show as alive -> dead
    m.on_train_end()


@pytest.mark.timeout(600)
def test_env_workers_train():
    """`env.workers 2`: one collector over an env whose maps are stepped in two processes."""
    m = PPOModule("demo", overrides={"ppo.rollout_steps": 256, "ppo.minibatch_steps": 256, "ppo.epochs": 1},
                  env_overrides={"num_maps": 2, "workers": 2})
    try:
        opt = torch.optim.Adam(m.policy.parameters(), lr=1e-3)
        log, _ = m.update(opt, 0)
        assert torch.isfinite(log["loss"]) and m.agent_steps == 256
    finally:
        m.on_train_end()
        m.env.close()
    with pytest.raises(ValueError, match="not both"):
        PPOModule("demo", overrides={"ppo.collector_workers": 2}, env_overrides={"num_maps": 2, "workers": 2})


def test_fit_loggers_and_print_config(tmp_path, capsys, monkeypatch):
    """CSV, TensorBoard and W&B (offline: no account, no network) by one flag, and
    --print_config shows the merged recipe with the command line's overrides."""
    from nmmozoo.cli import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert main(["fit", "demo", "--model.ppo.lr", "5e-4", "--env.num_maps", "3", "--print_config"]) == 0
    printed = capsys.readouterr().out
    assert "lr: 0.0005" in printed and "num_maps: 3" in printed and "policy: baseline_tinycorrected" in printed
    run = tmp_path / "run"
    assert main(["fit", "demo", "--run_dir", str(run), "--num_maps", "1", "--ppo.rollout_steps", "256",
                 "--ppo.minibatch_steps", "256", "--ppo.epochs", "1", "--trainer.max_steps", "1",
                 "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "1",
                 "--logger", "csv,tensorboard,wandb"]) == 0
    assert list(run.rglob("metrics.csv")) and list(run.rglob("events.out.tfevents*"))
    assert list(run.rglob("*.wandb")), "W&B wrote no offline run"
    assert main(["fit", "demo", "--logger", "mlflow"]) == 2
    assert "unknown logger(s) ['mlflow']" in capsys.readouterr().err


def test_episode_metrics_are_logged():
    """Ended agent-episodes give lifespan, return and task completion overall and per
    category (the task of each agent travels in the rollout as ("agents","task_id"))."""
    m = PPOModule("demo", overrides={"ppo.rollout_steps": 512, "ppo.epochs": 1},
                  env_overrides={"num_maps": 2, "horizon": 10})
    log, _ = m.update(torch.optim.Adam(m.policy.parameters(), lr=1e-3), 0)
    assert float(log["episode/lifespan"]) == 10.0  # food and water last 20 ticks, immunity 20: no deaths
    assert {"episode/return", "task/completion", "task/survival"} <= set(log)
    assert 0.0 <= float(log["task/survival"]) <= 1.0
    m.on_train_end()


@pytest.mark.timeout(900)
def test_fit_killed_midway_resumes_from_last_ckpt(tmp_path):
    """A fit killed (SIGKILL) mid-run resumes from last.ckpt: the step count and Adam's
    state continue from the checkpoint, and the run finishes."""
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    args = [sys.executable, "-m", "nmmozoo.cli", "fit", "demo", "--run_dir", str(run), "--num_maps", "1",
            "--ppo.rollout_steps", "256", "--ppo.minibatch_steps", "256", "--ppo.epochs", "1",
            "--trainer.enable_progress_bar", "false", "--checkpoint_every", "1"]
    proc = subprocess.Popen([*args, "--trainer.max_steps", "1000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.ckpt"
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            if last.exists():
                try:
                    if torch.load(last, weights_only=False)["global_step"] >= 3:
                        break
                except Exception:  # being replaced right now: read it again
                    pass
            time.sleep(0.5)
        else:
            pytest.fail("no checkpoint at step 3 within 300 s")
    finally:
        proc.kill()
        proc.wait()
    saved = torch.load(last, weights_only=False)  # whole and loadable after the kill
    step = saved["global_step"]
    assert 3 <= step < 1000
    r = subprocess.run([*args, "--trainer.max_steps", str(step + 2), "--ckpt_path", "last"],
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    resumed = torch.load(last, weights_only=False)
    assert resumed["global_step"] == step + 2
    assert resumed["nmmozoo_agent_steps"] == (step + 2) * 256
    adam = [float(s["step"]) for s in resumed["optimizer_states"][0]["state"].values()]
    assert adam[0] == step + 2


# --- sample accounting (the 2023 trainers': live agent-steps only) --------------------------------
def _tiny_module(**ppo):
    ppo = {"minibatch_steps": 4, "shuffle_minibatches": False, **ppo}
    ppo["minibatch_steps"] = min(ppo["minibatch_steps"], ppo.get("rollout_steps", 4096))
    return PPOModule("demo", overrides={f"ppo.{k}": v for k, v in ppo.items()},
                     env_overrides={"num_maps": 2})


def test_samples_are_the_first_live_agent_steps_in_tick_order():
    m = _tiny_module(rollout_steps=5)
    alive = torch.zeros(2, 3, 4, dtype=torch.bool)  # [maps, ticks, P]
    alive[0, 0, :2] = alive[1, 0, 3] = True  # tick 0: 3 live
    alive[1, 1, :] = True  # tick 1: 4 live -> only map 1's agents 0, 1 fit
    alive[0, 2, 0] = True
    keep = m.sample_mask(alive)
    assert int(keep.sum()) == 5 and not (keep & ~alive).any()
    assert keep[0, 0, :2].all() and keep[1, 0, 3] and keep[1, 1, :2].all()
    assert not keep[1, 1, 2:].any() and not keep[0, 2].any()


def test_sequences_are_per_agent_consecutive_live_steps():
    m = _tiny_module(bptt=2)
    sample = torch.zeros(1, 5, 2, dtype=torch.bool)  # one map, 5 ticks, 2 agents
    sample[0, [0, 1, 3], 0] = True  # agent 0 lives at ticks 0, 1, 3 (a gap is skipped)
    sample[0, [2, 3, 4], 1] = True  # agent 1: 3 steps
    flat = lambda t, p: t * 2 + p  # noqa: E731 - [maps, ticks, P] flattened
    # BPTT models: a new sequence at every agent, the last one padded
    assert m.sequences(sample, per_agent=True).tolist() == [
        [flat(0, 0), flat(1, 0)], [flat(3, 0), -1], [flat(2, 1), flat(3, 1)], [flat(4, 1), -1]]
    # feed-forward / stored-state models: the sorted samples cut as they come (public)
    assert m.sequences(sample, per_agent=False).tolist() == [
        [flat(0, 0), flat(1, 0)], [flat(3, 0), flat(2, 1)], [flat(3, 1), flat(4, 1)]]
    assert m.sequences(sample).tolist() == m.sequences(sample, per_agent=False).tolist()  # demo


def test_minibatches_take_the_public_strided_partition():
    m = _tiny_module(rollout_steps=512, minibatch_steps=128)
    parts = m.minibatches(10)
    assert [p.tolist() for p in parts] == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]
    m2 = _tiny_module(rollout_steps=512, minibatch_steps=128, shuffle_minibatches=True)
    got = sorted(torch.cat(m2.minibatches(10)).tolist())
    assert got == list(range(10))


def test_minibatch_rows_give_the_map_forward_outputs():
    """A minibatch of agent-steps rebuilt from the compact rollout (from many map-steps,
    each market once) gives the same logits and values as the whole-map forward over the
    collected observations for those agents, and carries their stored actions."""
    torch.manual_seed(0)
    m = _tiny_module(rollout_steps=256, bptt=4)
    data, ro = _collect_with_chunks(m)
    with torch.no_grad():
        full = m.policy.network(data, task_table=m.task_table)
    flat, table = m.prepare(ro)
    idx, rows = flat[:7], table[:7]
    mb = m._minibatch(ro.store, rows)
    with torch.no_grad():
        got = m.policy.forward_rows(ro.store.rows(mb["agents", "row"]))
    ok = idx >= 0
    P = m.agents
    T = data.shape[1]
    b, rest = idx[ok] // (T * P), idx[ok] % (T * P)
    t, p = rest // P, rest % P
    assert torch.allclose(got["value"][..., 0][ok], full["value"][b, t, p], atol=1e-5)
    for h, lg in got["logits"].items():
        assert torch.allclose(lg[..., 0, :][ok], full["logits"][h][b, t, p], atol=1e-5), h
    assert torch.equal(mb["agents", "action", "move"][..., 0][ok], data["agents", "action", "move"][b, t, p])
    assert not mb["agents", "mask"][..., 0][~ok].any()
    m.on_train_end()


def test_updates_count_live_agent_steps_only():
    """Every update learns from exactly rollout_steps live agent-steps, with
    rollout_steps // minibatch_steps minibatches per epoch."""
    m = PPOModule("demo", overrides={"ppo.rollout_steps": 384, "ppo.minibatch_steps": 128,
                                     "ppo.epochs": 2}, env_overrides={"num_maps": 2, "early_stop_agents": 0})
    opt = torch.optim.Adam(m.policy.parameters(), lr=1e-3)
    calls = []
    orig = m.loss.forward
    m.loss.forward = lambda td: (calls.append(int(td["agents", "mask"].sum())), orig(td))[1]
    log, _ = m.update(opt, 0)
    assert m.agent_steps == 384 and len(calls) == 2 * 3
    # padded short sequences make a minibatch's live count vary by at most one sequence (bptt 8)
    assert sum(calls) == 2 * 384 and all(abs(c - 128) <= 8 for c in calls)
    m.on_train_end()


def test_value_coef_zero_trains_the_actor_alone():
    """``value_coef: 0`` is a legitimate setting (no value loss): the update runs, the critic
    loss is reported as 0."""
    m = PPOModule("demo", overrides={"ppo.rollout_steps": 256, "ppo.minibatch_steps": 256, "ppo.epochs": 1,
                                     "ppo.value_coef": 0}, env_overrides={"num_maps": 1})
    log, _ = m.update(torch.optim.Adam(m.policy.parameters(), lr=1e-3), 0)
    assert torch.isfinite(log["loss"]) and float(log["loss_critic"]) == 0.0
    m.on_train_end()


def test_the_loss_runs_the_trunk_once_and_the_critic_reads_its_value():
    """The learner's actor writes the value of its forward into the loss's TensorDict and the
    critic reads it (TorchRL's single-call shared trunk): one policy forward per minibatch,
    and the critic's value is the one a separate forward gives."""
    torch.manual_seed(0)
    m = _tiny_module(rollout_steps=256)
    ro = m._collect()
    _, table = m.prepare(ro)
    m.learner.store = m.critic.store = ro.store
    mb = m._minibatch(ro.store, table[m.minibatches(table.shape[0])[0]])
    calls = []
    forward_rows = m.policy.forward_rows
    m.policy.forward_rows = lambda *a, **k: calls.append(1) or forward_rows(*a, **k)
    out = m.loss(mb)
    assert len(calls) == 1 and out["loss_critic"].requires_grad
    del m.policy.forward_rows
    with torch.no_grad():
        alone = m.critic(mb.clone(False))[("agents", "state_value")]
        rows = forward_rows(ro.store.rows(mb["agents", "row"]))
    assert torch.allclose(alone, rows["value"][..., None], atol=1e-6)
    m.on_train_end()
