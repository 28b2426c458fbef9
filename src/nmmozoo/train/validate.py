"""Validation during a fit: every ``every`` updates (and after the last one) a short PvE
evaluation (:func:`nmmozoo.evaluate.evaluate`) on the held-out maps with the held-out tasks
logs ``val/score``, ``val/completion`` and ``val/lifespan`` through the fit's loggers, in the
same row as that update's ``train/*`` figures (so against ``train/agent_steps``).

    from nmmozoo.train.validate import Validation
    trainer = L.Trainer(callbacks=[Validation(every=10)], ...)

Every validation plays the same held-out maps with the same seed, so the points of a curve
differ by the policy only. The training's random number streams (CPU and the policy's CUDA
device) are saved before and restored after, so a fit with validation trains exactly as one
without; the policy's train/eval modes are restored too. The callback keeps no state: a
resumed fit validates on the same updates as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from ..evaluate import EvalError, _recipe_world

# defaults of `nmmozoo fit --val_*` and `nmmozoo validate`
TICKS = 256
EPISODES = 1
SEED = 0
POINTS = 10  # validations per full run when --val_every is not given

# `nmmozoo fit` flags: (the Validation argument, the least value allowed)
FIT_FLAGS = {"--val_every": ("every", 0), "--val_maps": ("maps", 1),
             "--val_episodes": ("episodes", 1), "--val_ticks": ("ticks", 1)}


def parse_flag(flag: str, value: str) -> int:
    """A ``--val_*`` value of ``nmmozoo fit`` as an integer, or a ValueError naming the flag."""
    low = FIT_FLAGS[flag][1]
    try:
        v = int(value)
    except (TypeError, ValueError):
        v = None
    if v is None or v < low:
        raise ValueError(f"{flag} expects an integer ≥ {low}" + (" (0: no validation)" if low == 0 else "")
                         + f", got {value!r}")
    return v


def heldout_count() -> int:
    from ..tasks import heldout_tasks

    return len(heldout_tasks())


def default_maps(num_agents: int, episodes: int = EPISODES) -> int:
    """The fewest maps on which every held-out task is tried at least once (the schedule
    hands the tasks out round-robin): tiny's 16 agents need 4, competition2023's 128 one."""
    return max(1, math.ceil(heldout_count() / max(1, num_agents * episodes)))


def validation_setting(preset: str, world: dict[str, Any], task_dim: int | None, maps: int | None = None,
                       episodes: int = EPISODES, ticks: int = TICKS, seed: int = SEED) -> dict[str, Any]:
    """The :func:`~nmmozoo.evaluate.evaluate` arguments of a validation: ``preset`` and the
    world fields the policy trained on, the horizon set to ``ticks``, the held-out tasks
    (none for a policy without a task input, ``task_dim`` 0), ``maps`` (None: enough for
    every held-out task once) held-out maps, ``episodes`` each, ``seed``."""
    from ..env import make_config

    for name, v, low in (("maps", maps, 1), ("episodes", episodes, 1), ("ticks", ticks, 1)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < low):
            raise EvalError(f"validation {name} must be an integer ≥ {low}, got {v!r}")
    tasks = "none" if task_dim == 0 else "heldout"
    world = {**{k: v for k, v in world.items() if k != "horizon"}, "horizon": ticks}
    try:
        cfg = make_config(preset, **world)
    except ValueError as e:  # ConfigError: a horizon out of range, a bad world field
        raise EvalError(f"validation env: {e}") from None
    return {"preset": preset, "tasks": tasks, "num_maps": maps or default_maps(cfg.num_agents, episodes),
            "episodes": episodes, "seed": seed, **world}


def check_setting_sizes(policy, setting: dict[str, Any]) -> None:
    """Refuse (:class:`~nmmozoo.evaluate.EvalError`) a policy built for other observation and
    action sizes than the validation env's, naming each size that differs, without making
    the env."""
    from ..env import make_config
    from ..policy import env_sizes

    if policy is None or getattr(policy, "sizes", None) is None:
        return
    world = {k: v for k, v in setting.items() if k not in ("preset", "tasks", "num_maps", "episodes", "seed")}
    want = env_sizes(config=make_config(setting["preset"], **world),
                     task_dim=0 if setting["tasks"] == "none" else None)
    have = dict(policy.sizes)
    if have != want:
        diff = {k: (have.get(k), want.get(k)) for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)}
        raise EvalError(f"policy {policy.spec.get('name')!r} cannot be validated: it was built for other "
                        f"observation and action sizes than the validation env (held-out maps, "
                        f"{setting['tasks']} tasks); (policy, env): {diff}")


def run_validation(policy, setting: dict[str, Any], device: str | torch.device = "cpu") -> dict[str, float]:
    """One validation of ``policy`` (a zoo policy; None: random masked actions; ``"forager"``) in
    ``setting`` (:func:`validation_setting`), without gradients, the policy left in the
    train/eval modes it had and the global random streams as they were. Returns
    ``val/score`` (points of 100; held-out tasks only), ``val/completion`` (share of
    agent-episodes whose task was completed), ``val/lifespan`` (mean ticks lived),
    ``val/agent_episodes``, ``val/wall_s`` and ``val/cpu_s`` (this process's CPU seconds)."""
    from ..evaluate import evaluate

    from ..env.torchrl_env import checked_device

    try:
        device = checked_device(device)
    except ValueError as e:
        raise EvalError(str(e)) from None
    modes = [(m, m.training) for m in policy.modules()] if isinstance(policy, torch.nn.Module) else []
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            r = evaluate(policy, device=str(device), **setting)
    finally:
        for m, training in modes:
            m.train(training)
    out = {"val/lifespan": float(r["lifespan"]), "val/agent_episodes": float(r["agent_episodes"]),
           "val/wall_s": time.perf_counter() - t0, "val/cpu_s": time.process_time() - cpu0}
    if "completion" in r:
        out["val/completion"] = float(r["completion"])
    if "score" in r:
        out["val/score"] = float(r["score"]["total"])
    return out


class Validation(Callback):
    """Validate a :class:`~nmmozoo.train.PPOModule`'s policy every ``every`` updates and after
    the fit's last update, logging ``val/*`` through the module's loggers (see
    :func:`run_validation`). ``every`` None: the recipe's whole run (``ppo.total_steps``) gives
    about ``POINTS`` validations (the demo: every 24 updates); 0: never. ``maps`` None: enough
    held-out maps for every held-out task once. The maps, tasks and seed are the same every
    time; the world is the recipe's (its run fields aside) with a horizon of ``ticks``.
    Only the global-zero process validates (data-parallel ranks wait at the next update)."""

    def __init__(self, every: int | None = None, maps: int | None = None, episodes: int = EPISODES,
                 ticks: int = TICKS, seed: int = SEED):
        if every is not None and (not isinstance(every, int) or every < 0):
            raise ValueError(f"Validation(every=...) must be None or an integer ≥ 0, got {every!r}")
        self.every, self.maps, self.episodes, self.ticks, self.seed = every, maps, episodes, ticks, seed
        self.setting: dict[str, Any] | None = None
        self._update = 0

    def interval(self, pl_module) -> int:
        """Updates between validations (0: none)."""
        if self.every is not None:
            return self.every
        return max(1, pl_module.updates // POINTS)

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit" or self.interval(pl_module) == 0:
            return
        preset, world = _recipe_world(pl_module.recipe)
        self.setting = validation_setting(preset or "competition2023", world, pl_module.policy.sizes["task_dim"],
                                          self.maps, self.episodes, self.ticks, self.seed)
        # a policy that cannot play the validation env fails here, before any training
        check_setting_sizes(pl_module.policy, self.setting)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # the index training_step gives this update (train/update is this + 1)
        self._update = trainer.global_step // pl_module.steps_per_update
        # Lightning keeps a step's logged values until its epoch ends, and a fit is one endless
        # epoch: without this, every update after a validation would repeat its val/* figures
        if trainer._results is not None:
            trainer._results.reset(metrics=False, fx="on_train_batch_end")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        every = self.interval(pl_module)
        if every == 0 or self.setting is None:
            return
        update = self._update + 1
        last = trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step
        if not (update % every == 0 or last):
            return
        if not trainer.is_global_zero:
            return
        device = next(pl_module.policy.parameters()).device
        metrics = run_validation(pl_module.policy, self.setting, device)
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, batch_size=1, rank_zero_only=True)
