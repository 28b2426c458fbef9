"""PPO as a Lightning module over TorchRL collectors (the whole algorithm on one screen).

Each ``training_step`` collects a rollout of the recipe's env with the current policy
(TorchRL ``Collector``), computes advantages with TorchRL's ``GAE``, and runs
``ppo.epochs`` passes of minibatches through TorchRL's ``ClipPPOLoss``.

Sample accounting is the 2023 trainers' (NeuralMMO/baselines 2.0 ``clean_pufferl.py``): only
live agent-steps are samples. A rollout holds the first ``rollout_steps`` live agent-steps
collected (in tick order), ``total_steps`` counts live agent-steps, and the samples are cut
into per-agent sequences of ``bptt`` consecutive live steps (dead ticks skipped; an agent's
sequences never run into another agent's). ``rollout_steps // minibatch_steps`` minibatches
take the sequences in the public trainer's strided order (sequence ``s`` in minibatch
``s mod n``, the same partition every epoch; ``shuffle_minibatches`` redraws it instead), and
advantages are normalised within each minibatch over its live steps. A minibatch is gathered
agent-step by agent-step, each with its map's market (an agent-step is a "map" of one agent),
so no dead or absent agent is ever computed in training.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import lightning as L
import torch
from torchrl.collectors import Collector, MultiSyncCollector
from torchrl.data import Composite, Unbounded
from torchrl.envs import Compose, InitTracker, RewardSum, TensorDictPrimer
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from tensordict import TensorDict

from ..env.constants import ACTION_HEADS
from ..inputs import rows_from_td
from ..nn.registry import SpecError
from ..recipe import load_recipe, make_recipe_env, make_recipe_policy, ppo_config
from .metrics import TaskIds, episode_metrics, task_categories
from .modules import Actor, Critic, observation_keys
from .rollout import CompactRollout


class Rollout:
    """One collected rollout: the compact live agent-steps (``store``), the small dense
    per-slot tensors GAE reads (``dense``: alive, value, reward, done, terminated, ended),
    the bootstrap values ``next_value`` and the ended episodes' last observations (logs)."""

    def __init__(self, store: CompactRollout, dense: dict, next_value: torch.Tensor, ends: list):
        self.store, self.dense, self.next_value, self.ends = store, dense, next_value, ends

    def ended_td(self):
        """The agent-episodes that ended, as :func:`episode_metrics` reads a rollout."""
        if not self.ends:
            alive = self.dense["alive"]
            return TensorDict({"next": TensorDict({"done": alive.new_zeros(1, 1, 1)}, [1, 1])}, [1, 1])
        ends = torch.cat(self.ends) if len(self.ends) > 1 else self.ends[0]
        E = ends.batch_size[0]
        nxt = TensorDict({"done": torch.ones(E, 1, 1, dtype=torch.bool, device=ends.device),
                          "agents": ends.get("agents").unsqueeze(1)}, [E, 1])
        return TensorDict({"next": nxt}, [E, 1])

KEYS = dict(advantage=("agents", "advantage"), value_target=("agents", "value_target"),
            value=("agents", "state_value"), reward=("agents", "reward"), done=("agents", "done"),
            terminated=("agents", "terminated"), action=("agents", "action"),
            sample_log_prob=("agents", "sample_log_prob"))


def add_memory(env, shape: tuple[int, ...]) -> None:
    """Give a recurrent policy its state in the rollout: ``("agents","recurrent_state")``
    (zeros at reset, carried step to step by the collector) and ``is_init`` (TorchRL's
    ``InitTracker``), which marks each map's first step so the memory restarts there."""
    B = env.batch_size[0]
    P = env.base_env.config.num_agents
    spec = Composite(agents=Composite(recurrent_state=Unbounded(shape=(B, P, *shape),
                                                                  device=env.device),
                                      shape=(B, P)), shape=(B,))
    env.append_transform(Compose(InitTracker(), TensorDictPrimer(spec, expand_specs=False,
                                                                 reset_key="_reset")))


def make_train_env(recipe: dict, seed: int = 0, env_overrides: dict | None = None,
                   memory: tuple[int, ...] | None = None, env=None):
    """The env a rollout runs: the recipe's env (or ``env``, one already made by
    ``make_recipe_env``) with its reward shaping, the per-agent task index and episode return
    for the logs, and a recurrent policy's state. Module-level (and so picklable) for
    worker-process collectors."""
    if env is None:
        env = make_recipe_env(recipe, seed=seed, **(env_overrides or {}))
    if env.base_env.world.tasks is not None:
        env.append_transform(TaskIds())
    env.append_transform(RewardSum(in_keys=[("agents", "reward")],
                                   out_keys=[("agents", "episode_return")], reset_keys=["_reset"]))
    if memory is not None:
        add_memory(env, memory)
    return env


class _Updates:
    """The training "data": a resumable stream of update indices (the rollout is collected
    inside the step). One epoch is the whole run's updates (``length``), so the progress
    bar counts updates; the position is saved in checkpoints, so a fit resumed from the
    middle continues where it stopped."""

    def __init__(self, length: int = 1):
        self.index, self.length = 0, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        for _ in range(self.length):
            yield self.index
            self.index += 1

    def state_dict(self) -> dict:
        return {"index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.index = int(state["index"])


# env fields a resumed fit may change (how the run is executed, not what it learns on)
RESUMABLE_ENV = frozenset({"num_maps", "device", "workers", "seed"})


class CheckpointError(ValueError):
    """A ``--ckpt_path`` that cannot be resumed from; the message names the path."""


def read_checkpoint(path) -> dict:
    """A Lightning checkpoint's contents (no code is unpickled), or a :class:`CheckpointError`
    naming the path: missing, a directory, empty, truncated or not a checkpoint."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        hint = " (did you mean its last.ckpt?)" if (p / "last.ckpt").exists() else ""
        raise CheckpointError(f"checkpoint {str(p)!r} is a directory, not a checkpoint file{hint}")
    if not p.exists():
        raise CheckpointError(f"checkpoint {str(p)!r} does not exist")
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(p)!r} is empty (0 bytes)")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, garbage, a pickle of code: one clear error
        raise CheckpointError(f"checkpoint {str(p)!r} is not readable (damaged or truncated?): "
                              f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "global_step" not in ckpt:
        raise CheckpointError(f"checkpoint {str(p)!r} is not a Lightning training checkpoint")
    return ckpt


def saved_recipe(checkpoint: dict) -> dict | None:
    """The recipe a checkpoint was trained with (stored since checkpoints hold the policy once;
    older ones: rebuilt from their hyper-parameters), or None when unknown."""
    if "nmmozoo_recipe" in checkpoint:
        return checkpoint["nmmozoo_recipe"]
    hp = dict(checkpoint.get("hyper_parameters") or {})
    try:
        return PPOModule.resolve_recipe(**hp) if hp else None
    except Exception:  # noqa: BLE001 - a recipe file since moved: nothing to compare
        return None


def resume_conflicts(saved: dict | None, recipe: dict) -> list[str]:
    """What a resumed run may not change: the model, and the env beyond how it is run
    (``RESUMABLE_ENV``). PPO settings, rewards and the seed may change, and are applied."""
    if saved is None:
        return []
    out = []
    if saved.get("model") != recipe.get("model"):
        out.append(f"model.policy (checkpoint: {saved.get('model')!r}, asked: {recipe.get('model')!r})")
    old, new = dict(saved.get("env") or {}), dict(recipe.get("env") or {})
    for k in sorted(set(old) | set(new)):
        if k not in RESUMABLE_ENV and old.get(k) != new.get(k):
            out.append(f"model.env.{k} (checkpoint: {old.get(k)!r}, asked: {new.get(k)!r})")
    return out


def resume_changes(saved: dict | None, recipe: dict) -> list[str]:
    """The settings a resumed run changes from its checkpoint's (applied): ppo, rewards, env
    execution fields."""
    if saved is None:
        return []
    out = []
    old, new = dict(saved.get("ppo") or {}), dict(recipe.get("ppo") or {})
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            out.append(f"ppo.{k}: {old.get(k, 'default')!r} -> {new.get(k, 'default')!r}")
    if list(saved.get("rewards") or []) != list(recipe.get("rewards") or []):
        out.append("rewards")
    oe, ne = dict(saved.get("env") or {}), dict(recipe.get("env") or {})
    out += [f"env.{k}: {oe.get(k)!r} -> {ne.get(k)!r}" for k in sorted(RESUMABLE_ENV) if oe.get(k) != ne.get(k)]
    return out


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the live agent-steps in ``mask`` (trailing singleton dims aside)."""
    if x.dim() == 0:  # already a summary over the batch
        return x
    while mask.dim() > x.dim() and mask.shape[-1] == 1:
        mask = mask.squeeze(-1)
    while x.dim() > mask.dim():
        mask = mask[..., None]
    mask = mask.expand_as(x).float()
    return (x * mask).sum() / mask.sum().clamp_min(1)


class PPOModule(L.LightningModule):
    """PPO on a recipe (a name of ``recipes/`` or a YAML path). ``policy``, ``env``,
    ``rewards`` and ``ppo`` replace those sections of the recipe (the command line passes the
    merged recipe this way: ``--model.ppo.lr 1e-4``); ``overrides`` are dotted recipe keys
    (``{"ppo.lr": 1e-4}``) and ``env_overrides`` env settings (``{"num_maps": 2}``)."""

    def __init__(self, recipe: str = "demo", policy: str | dict | None = None,
                 env: dict[str, Any] | None = None, rewards: list[dict[str, Any]] | None = None,
                 ppo: dict[str, Any] | None = None, seed: int = 0,
                 overrides: dict[str, Any] | None = None, env_overrides: dict[str, Any] | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.recipe = self.resolve_recipe(recipe, policy, env, rewards, ppo, overrides)
        self.cfg = ppo_config(self.recipe)
        torch.manual_seed(seed)
        self.seed, self.env_overrides, self.rank = seed, dict(env_overrides or {}), 0
        probe = make_recipe_env(self.recipe, seed=seed, **self._env_over())
        self.policy = make_recipe_policy(self.recipe, probe)
        self.recurrent = self.policy.recurrent_shape is not None
        # the env stays out of the module tree: not trained, saved, or moved by Lightning
        self.__dict__["env"] = self._make_env(rank=0, env=probe)
        self.policy.to(self.env.device)  # Lightning moves it too; this serves update() alone
        keys = observation_keys(self.env)
        sequence = self.recurrent and not self.cfg.stored_state  # BPTT through each sequence
        self.task_table = self.env.base_env.world.task_embeddings
        # acting (the collector's policy) and learning (the loss's, reading the compact rollout)
        self.actor = Actor(self.policy, keys, task_table=self.task_table)
        row_keys = [("agents", "row"), ("agents", "mask")]
        self.learner = Actor(self.policy, row_keys, write_value=True, sequence=sequence)
        self.critic = Critic(self.policy, row_keys, sequence=sequence)
        self.loss = ClipPPOLoss(self.learner, self.critic, clip_epsilon=self.cfg.clip,
                                entropy_coeff=self.cfg.entropy_coef, critic_coeff=self.cfg.value_coef,
                                loss_critic_type="l2", clip_value=self.cfg.clip if self.cfg.clip_value else None,
                                normalize_advantage=False, reduction="none", functional=False)
        self.loss.set_keys(**KEYS)
        # Values come from the collection pass (the actor writes them); GAE only reads them.
        self.gae = GAE(gamma=self.cfg.gamma, lmbda=self.cfg.gae_lambda, value_network=None,
                       average_gae=False, deactivate_vmap=True)
        self.gae.set_keys(**{k: v for k, v in KEYS.items() if k not in ("action", "sample_log_prob")})
        base = self.env.base_env
        self.maps, self.agents = base.batch_size[0], base.config.num_agents
        cfg = self.cfg
        # ticks per collection chunk: a quarter of a rollout if every agent lived
        self.chunk = max(1, -(-cfg.rollout_steps // (4 * self.maps * self.agents)))
        self.updates, self.steps_per_update = self.schedule(cfg)
        self.seq = cfg.bptt
        self.num_minibatches = max(1, cfg.rollout_steps // cfg.minibatch_steps)
        self.automatic_optimization = False
        self._collector = None
        self.agent_steps = 0
        self.categories = task_categories(self.env)
        self._updates = _Updates()
        workers = self.cfg.collector_workers
        if workers > 1 and self.maps % workers:
            raise ValueError(f"ppo.collector_workers={workers} must divide the env's num_maps={self.maps}")
        if workers > 1 and self.env.base_env.workers > 1:
            raise ValueError(f"ppo.collector_workers={workers} with env.workers="
                             f"{self.env.base_env.workers}: shard the collector or the env, not both")

    @staticmethod
    def resolve_recipe(recipe: str | dict = "demo", policy=None, env=None, rewards=None, ppo=None,
                       overrides: dict | None = None, **_ignored) -> dict:
        """The recipe a module with these arguments trains (validated, ranges included)."""
        sections = {k: v for k, v in (("model", policy), ("env", env), ("rewards", rewards),
                                      ("ppo", ppo)) if v is not None}
        return load_recipe(recipe, {**sections, **(overrides or {})})

    @staticmethod
    def schedule(cfg) -> tuple[int, int]:
        """(updates of the whole run, optimiser steps per update) of a ``PPOConfig``: the
        Trainer's ``max_steps`` for the whole run is their product. A run learns from at least
        ``total_steps`` live agent-steps (the public trainers loop while fewer were seen)."""
        return (max(1, -(-cfg.total_steps // cfg.rollout_steps)),
                cfg.epochs * max(1, cfg.rollout_steps // cfg.minibatch_steps))

    def _env_over(self) -> dict:
        """Env settings of this run beyond the recipe's: compact observations unless the
        recipe asks for a form (the rollout keeps its own compact copy either way), then the
        ``env_overrides``."""
        form = {} if "obs_mode" in (self.recipe.get("env") or {}) else {"obs_mode": "compact"}
        return {**form, **self.env_overrides}

    def _make_env(self, rank: int, env=None):
        """This rank's env: seeded apart from the other ranks' (data-parallel PPO)."""
        return make_train_env(self.recipe, self.seed + 1000 * rank, self._env_over(),
                              self.policy.recurrent_shape, env)

    def setup(self, stage: str) -> None:
        if self.global_rank != self.rank:  # a data-parallel rank plays its own maps
            self.rank = self.global_rank
            self.__dict__["env"] = self._make_env(self.rank)

    # --- data ----------------------------------------------------------------------------------------
    def train_dataloader(self):
        max_steps = self.trainer.max_steps if self._trainer is not None else -1
        self._updates.length = -(-max_steps // self.steps_per_update) if max_steps > 0 else self.updates
        return self._updates

    def _collect(self) -> "Rollout":
        """One rollout (:class:`Rollout`) collected with the current policy."""
        if self._collector is None:
            self._collect_setup()
        else:
            self._collector.update_policy_weights_()
        return self._compact_rollout()

    def _collect_setup(self) -> None:
        if self._collector is None:
            workers = self.cfg.collector_workers
            if workers > 1:  # worker processes, each with its share of the maps
                per = self.maps // workers
                over = {**self._env_over(), "num_maps": per}
                fns = [functools.partial(make_train_env, self.recipe, self.seed + 1000 * self.rank + 100 * (i + 1),
                                         over, self.policy.recurrent_shape) for i in range(workers)]
                self._collector = MultiSyncCollector(fns, self.actor, frames_per_batch=self.maps * self.chunk,
                                                     total_frames=-1, cat_results=0)
            else:
                self._collector = Collector(self.env, self.actor, frames_per_batch=self.maps * self.chunk,
                                            total_frames=-1, auto_register_policy_transforms=False)
            self._iter = iter(self._collector)
            self._restore_run_state()

    @torch.no_grad()
    def _compact_rollout(self) -> "Rollout":
        """Whole collector chunks until the live agent-steps suffice, each kept compactly
        (:class:`~nmmozoo.train.rollout.CompactRollout`) as it arrives; what GAE needs stays
        dense but small (reward, done, value: ~14 bytes per agent slot), and the values of the
        next observations GAE bootstraps from (the rollout's last step; episode ends, whose
        final observation the next step's reset replaced) are computed from each chunk before
        it is dropped."""
        store = CompactRollout(self.policy.sizes["window"] // 2, self.policy.sizes["head_sizes"],
                               self.task_table)
        dense: dict[str, list] = {k: [] for k in ("alive", "value", "reward", "done", "terminated",
                                                  "ended", "end_value")}
        ends, live, last = [], 0, None
        end_keys = [("agents", k) for k in ("stats", "episode_return", "task_completed", "task_id")]
        while live < self.cfg.rollout_steps:
            chunk = self._next_chunk()
            store.add(chunk)
            nxt = chunk.get("next")
            alive = chunk.get(("agents", "mask"))
            ended = nxt.get("done").reshape(alive.shape[:2])
            end_value = torch.zeros(alive.shape, device=alive.device)
            if ended.any():
                end_value[ended] = self._next_value(nxt[ended])
                ends.append(nxt[ended].select(*[k for k in end_keys if k in nxt.keys(True, True)]))
            dense["alive"].append(alive)
            dense["value"].append(chunk.get(("agents", "state_value")))
            dense["reward"].append(nxt.get(("agents", "reward")))
            dense["done"].append(nxt.get(("agents", "done")))
            dense["terminated"].append(nxt.get(("agents", "terminated")))
            dense["ended"].append(ended)
            dense["end_value"].append(end_value)
            last = nxt[:, -1]
            live += int(alive.sum())
        store.finish()
        d = {k: torch.cat(v, 1) if len(v) > 1 else v[0] for k, v in dense.items()}
        v = d["value"]
        nv = torch.empty_like(v)
        nv[:, :-1] = v[:, 1:]
        nv[d["ended"]] = d["end_value"][d["ended"]][..., None]
        nv[:, -1] = self._next_value(last)[..., None]
        return Rollout(store, d, nv, ends)

    def _next_chunk(self):
        """The collector's next chunk ``[maps, ticks]`` (TorchRL layout, dense in agents)."""
        return next(self._iter)

    def _next_value(self, td) -> torch.Tensor:
        """The value of every agent of the observations ``td`` ``[..., B, P]`` (0 for the
        dead, whose next value GAE never reads: they are terminated)."""
        alive = td.get(("agents", "mask"))
        out = torch.zeros(alive.numel(), device=alive.device)
        live = alive.reshape(-1).nonzero().squeeze(-1)
        if live.numel():
            rows = rows_from_td(td, self.policy.sizes["window"] // 2, select=live, task_table=self.task_table)
            out[live] = self.policy.forward_rows(rows)["value"].float()
        return out.view(alive.shape)

    def configure_optimizers(self):
        # the fused kernel where torch has one for the device (CPU and CUDA: one pass per step)
        return torch.optim.Adam(self.policy.parameters(), lr=self.cfg.lr, eps=1e-5, fused=True)

    # --- one update ------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        # the update index follows the optimiser steps, so resumes and ranks agree on it
        index = self.global_step // self.steps_per_update
        log, sps = self.update(self.optimizers(), index)
        log["update"] = index + 1  # 1-based: the row of the logs is this update's
        world = self.trainer.world_size
        log["agent_steps"] = log["agent_steps"] * world
        if world > 1 and "cpu_s" in log:  # every rank's core time
            log["cpu_s"] = float(self.trainer.strategy.reduce(torch.tensor(float(log["cpu_s"])), reduce_op="sum"))
        self.log_dict({f"train/{k}": float(v) for k, v in log.items()}, prog_bar=False)
        self.log("agent_steps/s", sps * world, prog_bar=True)

    def on_train_start(self) -> None:
        from torch.nn.parallel import DistributedDataParallel

        model = self.trainer.strategy.model
        if isinstance(model, DistributedDataParallel):
            # several backward passes per step: gradients are averaged by _sync_grads instead
            model.require_backward_grad_sync = False

    def update(self, opt, index: int = 0) -> tuple[dict, float]:
        """Collect one rollout and learn from it; returns the logged figures and the
        agent-steps per second of the whole update."""
        # set every update (annealed or not): a resumed fit runs at this run's ppo.lr, not at
        # the one restored with the optimiser's state
        frac = 1.0 - index / max(1, self.updates) if self.cfg.anneal_lr else 1.0
        for g in opt.param_groups:
            g["lr"] = self.cfg.lr * max(frac, 0.0)
        backward = self.manual_backward if self._trainer is not None else torch.Tensor.backward
        t0, cpu0 = time.perf_counter(), time.process_time()
        ro = self._collect()
        t_env = time.perf_counter() - t0
        d = ro.dense
        alive = d["alive"]
        B, T, P = alive.shape
        _, table = self.prepare(ro)
        self.learner.store = self.critic.store = ro.store
        stats = []
        for _ in range(self.cfg.epochs):
            for part in self.minibatches(table.shape[0]):
                mb = self._minibatch(ro.store, table[part])
                m = mb["agents", "mask"][..., None]
                if self.cfg.normalize_advantages:  # per minibatch, over its live steps
                    adv = mb["agents", "advantage"]
                    mean = masked_mean(adv, m)
                    std = masked_mean((adv - mean) ** 2, m).sqrt()
                    mb["agents", "advantage"] = (adv - mean) / (std + 1e-8)
                out = self.loss(mb)
                terms = {k: masked_mean(out[f"loss_{k}"], m) if f"loss_{k}" in out else
                         m.new_zeros((), dtype=torch.float32) for k in ("objective", "critic", "entropy")}
                loss = terms["objective"] + terms["critic"] + terms["entropy"]
                opt.zero_grad()
                backward(loss)
                self._sync_grads()
                if self._trainer is not None:  # unscales first under mixed precision
                    self.clip_gradients(opt, gradient_clip_val=self.cfg.max_grad_norm,
                                        gradient_clip_algorithm="norm")
                else:
                    torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.max_grad_norm)
                opt.step()
                heads = self.learner.last_dist.head_entropy()
                self.learner.last_dist = None
                zero = loss.new_zeros(())
                with torch.no_grad():
                    stats.append({**{f"entropy/{h}": masked_mean(e, m[..., 0]) for h, e in heads.items()},
                                  "loss": loss.detach(), "loss_objective": terms["objective"].detach(),
                                  "loss_critic": terms["critic"].detach(),
                                  "entropy": masked_mean(out["entropy"], m),
                                  "kl": masked_mean(out["kl_approx"], m) if "kl_approx" in out else zero,
                                  "clip_fraction": masked_mean(out["clip_fraction"], m)
                                  if "clip_fraction" in out else zero})
        self.learner.store = self.critic.store = None
        self.last_rollout_bytes = ro.store.nbytes()
        steps = len(ro.store)  # live agent-steps learned from
        collected = B * T * P
        self.agent_steps += steps
        dt = time.perf_counter() - t0
        live = alive.float().mean()
        log = {k: torch.stack([s[k] for s in stats]).mean() for k in stats[0]}
        log.update(episode_metrics(ro.ended_td(), self.categories))
        log.update({"reward": masked_mean(d["reward"], alive[..., None]),
                    "alive": live, "agent_steps": float(self.agent_steps),
                    "minibatch_steps": float(steps) / (self.num_minibatches),
                    "env_agent_steps_per_s": int(alive.sum()) / max(t_env, 1e-9),
                    "collected_agent_slots": float(collected),
                    "train_agent_steps_per_s": steps / max(dt, 1e-9), "wall_s": dt})
        if self.cfg.collector_workers <= 1 and self.env.base_env.workers <= 1:
            # the process's CPU seconds over every thread: the core time the update cost,
            # which a paused or crowded process does not inflate (summed over the ranks by
            # training_step). Collector and env worker processes are not counted by it, so
            # with them it is not logged rather than logged short
            log["cpu_s"] = time.process_time() - cpu0
        return log, steps / max(dt, 1e-9)

    # --- samples ---------------------------------------------------------------------------------------
    def sample_mask(self, alive: torch.Tensor) -> torch.Tensor:
        """The rollout's samples ``[maps, ticks, P]``: the first ``rollout_steps`` live
        agent-steps in tick order (map, then agent, within a tick), as the public trainer
        stores live agent-steps until its buffer is full."""
        order = alive.transpose(0, 1)  # [ticks, maps, P]
        keep = order & (order.reshape(-1).cumsum(0).reshape(order.shape) <= self.cfg.rollout_steps)
        return keep.transpose(0, 1)

    def sequences(self, sample: torch.Tensor, per_agent: bool | None = None) -> torch.Tensor:
        """The samples cut into sequences of ``bptt``: ``[n_seq, bptt]`` indices into the
        rollout's agent-steps flattened as ``[maps, ticks, P]``, -1 for padding, in (map,
        agent, tick) order, the public sort. ``per_agent`` (the default for models trained
        by BPTT through each sequence) starts a new sequence at every agent, padding its last
        one; otherwise the sorted samples are cut as they come, one agent running into the
        next, as the public trainer does (nothing is carried through a sequence then: the
        model is feed-forward or re-runs each step from its stored state)."""
        if per_agent is None:
            per_agent = self.recurrent and not self.cfg.stored_state
        maps, T, P = sample.shape
        L = self.seq
        by_agent = sample.permute(0, 2, 1).reshape(maps * P, T)  # rows: (map, agent)
        row, t = by_agent.nonzero(as_tuple=True)  # row-major: (map, agent) then tick
        b, p = row // P, row % P
        flat = (b * T + t) * P + p
        if not per_agent:
            table = torch.full((-(-flat.numel() // L) * L,), -1, dtype=torch.long, device=sample.device)
            table[:flat.numel()] = flat
            return table.view(-1, L)
        n = by_agent.sum(1)
        nseq = -(-n // L)
        first_seq = torch.cumsum(nseq, 0) - nseq
        start = torch.cumsum(n, 0) - n
        rank = torch.arange(row.numel(), device=row.device) - start[row]
        table = torch.full((int(nseq.sum()), L), -1, dtype=torch.long, device=sample.device)
        table[first_seq[row] + rank // L, rank % L] = flat
        return table

    def minibatches(self, n_seq: int):
        """Sequence indices of each minibatch: the public trainer's fixed strided partition
        (sequence ``s`` goes to minibatch ``s mod n``), or a fresh shuffle per epoch."""
        k = min(self.num_minibatches, max(1, n_seq))
        order = torch.randperm(n_seq) if self.cfg.shuffle_minibatches else torch.arange(n_seq)
        return [order[i::k] for i in range(k)]

    @torch.no_grad()
    def prepare(self, ro: "Rollout") -> tuple[torch.Tensor, torch.Tensor]:
        """GAE over the rollout, the samples chosen and cut into sequences, the rollout cut
        to its samples (with their advantages and targets). Returns the sequence table as
        flat ``[maps, ticks, P]`` agent-step indices and as rows of the cut rollout (-1:
        padding)."""
        d = ro.dense
        alive = d["alive"]
        B, T, P = alive.shape
        gae = TensorDict({"agents": TensorDict({"state_value": d["value"]}, [B, T, P]),
                          "next": TensorDict({"agents": TensorDict(
                              {"state_value": ro.next_value, "reward": d["reward"], "done": d["done"],
                               "terminated": d["terminated"]}, [B, T, P])}, [B, T])}, [B, T])
        self.gae(gae)
        sample = self.sample_mask(alive)
        flat = self.sequences(sample)  # [n_seq, bptt] flat agent-step indices, -1 = padding
        rows = self._keep_samples(ro, sample, gae)
        return flat, torch.where(flat >= 0, rows[flat.clamp_min(0)], -1)

    def _keep_samples(self, ro: "Rollout", sample: torch.Tensor, gae) -> torch.Tensor:
        """Cut the rollout to its samples (with their advantages and value targets); returns
        the row of each ``[B, T, P]`` agent-step among the kept ones (-1: not a sample)."""
        B, T, P = sample.shape
        d = ro.store.data
        flat = (d["map"].long() * T + d["tick"].long()) * P + d["agent"].long()
        row_of = torch.full((B * T * P,), -1, dtype=torch.long, device=sample.device)
        row_of[flat] = torch.arange(flat.numel(), device=sample.device)
        chosen = sample.reshape(-1).nonzero().squeeze(-1)
        ro.store.keep(row_of[chosen])
        rows = torch.full((B * T * P,), -1, dtype=torch.long, device=sample.device)
        rows[chosen] = torch.arange(chosen.numel(), device=sample.device)
        for k in ("advantage", "value_target"):
            ro.store.set(k, gae.get(("agents", k)).reshape(-1).index_select(0, chosen).float())
        return rows

    def _minibatch(self, store: CompactRollout, index: torch.Tensor):
        """A minibatch ``[n, bptt]`` of rollout rows (-1: padding, masked out), as the PPO
        loss reads it: the stored action, log-prob, value, advantage and target per
        agent-step, ``("agents","row")`` for the policy to rebuild its inputs from the
        rollout (:meth:`CompactRollout.rows`)."""
        pad = index < 0
        idx = index.clamp_min(0)
        d = store.data
        take = lambda k: d[k][idx]  # noqa: E731
        act = take("action").long()
        agents = TensorDict({
            "row": idx, "mask": ~pad,
            "action": TensorDict({h: act[..., i] for i, h in enumerate(ACTION_HEADS)}, idx.shape),
            "sample_log_prob": take("sample_log_prob"), "state_value": take("state_value")[..., None],
            "advantage": take("advantage")[..., None], "value_target": take("value_target")[..., None],
        }, idx.shape)
        return TensorDict({"agents": agents.unsqueeze(-1)}, idx.shape)

    def _sync_grads(self) -> None:
        """Data-parallel PPO: average the gradients over the ranks (each ran its own env)."""
        if self._trainer is None or self.trainer.world_size <= 1:
            return
        import torch.distributed as dist

        grads = [p.grad for p in self.policy.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads]) / self.trainer.world_size
        dist.all_reduce(flat)
        i = 0
        for g in grads:
            g.copy_(flat[i:i + g.numel()].view_as(g))
            i += g.numel()

    def _check_ranks_agree(self) -> None:
        """Data-parallel ranks must end with the same weights (they start from rank 0's
        and apply the same averaged gradients); a divergence is a bug, not noise."""
        import torch.distributed as dist

        flat = torch.cat([p.detach().reshape(-1) for p in self.policy.parameters()])
        mine = torch.stack([flat.sum(), flat.abs().sum()]).double()
        every = [torch.zeros_like(mine) for _ in range(self.trainer.world_size)]
        dist.all_gather(every, mine)
        if any(not torch.allclose(e, every[0], rtol=1e-6) for e in every):
            raise RuntimeError(f"data-parallel ranks hold different weights: {[e.tolist() for e in every]}")

    # --- checkpoints -----------------------------------------------------------------------------------
    def _aliases(self) -> list[str]:
        """Prefixes under which the policy appears again in the state dict (the actor, the
        critic and the loss hold the same module)."""
        return [n + "." for n, mod in self.named_modules(remove_duplicate=False)
                if mod is self.policy and n != "policy"]

    def on_save_checkpoint(self, checkpoint):
        """The policy's weights once (``policy.*``); the aliases and the loss's and GAE's
        settings (buffers made from ``ppo``) are rebuilt on load from the resumed run's own."""
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items()
                                    if k.startswith("policy.")}
        checkpoint["nmmozoo_agent_steps"] = self.agent_steps
        run_state = self._run_state()
        if run_state is not None:
            checkpoint["nmmozoo_run_state"] = run_state
        checkpoint["nmmozoo_recipe"] = {k: v for k, v in self.recipe.items() if not k.startswith("_")}

    def _run_state(self) -> dict | None:
        """What the next update depends on beyond the weights, the optimiser and the update
        index: the env with its transforms and the observation the collector feeds next
        (:func:`nmmozoo.env.env_state`), and the random generators. None where it cannot be
        taken in this process: worker-process collectors and data-parallel ranks other than
        this one hold their envs elsewhere (docs/training.md)."""
        if self._collector is None or not isinstance(self._collector, Collector):
            return None
        if self._trainer is not None and self.trainer.world_size > 1:
            return None
        from ..env import env_state

        carry = self._collector._carrier.exclude("collector")
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"env": env_state(self.env, carry=carry), "rng": rng}

    def _restore_run_state(self) -> None:
        """Put a resumed run's env, next observation and random generators back (once the
        collector exists, so its first reset does not overwrite them)."""
        state, self._pending_run_state = getattr(self, "_pending_run_state", None), None
        if state is None:
            return
        import warnings

        from ..env import load_env_state
        from ..env.state import EnvStateError

        try:
            carry = load_env_state(self.env, state["env"])
        except EnvStateError as e:  # saved by other env code (a field added since, say)
            warnings.warn(f"the checkpoint's env state does not fit this env ({e}); the weights, "
                          f"optimiser and update index resume, the env starts afresh from the "
                          f"run's seed: not an exact resume", stacklevel=2)
            return
        if carry is not None:
            self._collector._carrier.update(carry.to(self._collector._carrier.device))
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def on_load_checkpoint(self, checkpoint):
        conflicts = resume_conflicts(saved_recipe(checkpoint), self.recipe)
        if conflicts:
            raise SpecError("the checkpoint was trained with a different " + "; ".join(conflicts)
                            + ": start a new run (another --run_dir) or resume with the checkpoint's")
        saved = checkpoint["state_dict"]
        aliases = self._aliases()
        full = {}
        for k, v in self.state_dict().items():
            alias = next((a for a in aliases if k.startswith(a)), None)
            if k.startswith("policy."):
                if k in saved:
                    full[k] = saved[k]
            elif alias is not None:
                if "policy." + k[len(alias):] in saved:
                    full[k] = saved["policy." + k[len(alias):]]
            else:  # a setting derived from this run's ppo section (clip, coefficients, γ, λ)
                full[k] = v
        full.update({k: v for k, v in saved.items() if k.startswith("policy.")})
        checkpoint["state_dict"] = full  # loaded strictly next: a missing weight still fails
        self.agent_steps = checkpoint.get("nmmozoo_agent_steps", 0)
        # an exact resume needs the same env and rewards (a changed num_maps, say, starts the
        # env afresh from the run's seed)
        changes = resume_changes(saved_recipe(checkpoint), self.recipe)
        exact = not any(c.startswith(("env.", "rewards")) for c in changes)
        self._pending_run_state = checkpoint.get("nmmozoo_run_state") if exact else None

    def on_train_end(self):
        if self._trainer is not None and self.trainer.world_size > 1:
            self._check_ranks_agree()
        if self._collector is not None:
            self._collector.shutdown()
            self._collector = None
