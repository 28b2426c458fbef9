"""PPO as a Lightning module over TorchRL collectors (the whole algorithm on one screen).

Each ``training_step`` collects a rollout of the recipe's env with the current policy
(TorchRL ``Collector``), computes advantages with TorchRL's ``GAE``, and runs
``ppo.epochs`` passes of minibatches through TorchRL's ``ClipPPOLoss``. Rows of dead agents
are masked out of every loss term (the 2023 trainer's key fix): the loss is computed per
agent-step (``reduction="none"``) and averaged over live agents only. Minibatches are made of
whole map-steps, so the per-map market is never copied per agent.
"""

from __future__ import annotations

import time

import lightning as L
import torch
from torchrl.collectors import Collector
from torchrl.data import Composite, Unbounded
from torchrl.envs import Compose, InitTracker, TensorDictPrimer
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

from ..recipe import load_recipe, make_recipe_env, make_recipe_policy, ppo_config
from .modules import Actor, Critic, _SharedForward, observation_keys

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
    """PPO on a recipe. ``overrides`` are dotted recipe keys (``{"ppo.lr": 1e-4}``);
    ``env_overrides`` replace env settings (``{"num_maps": 2}``)."""

    def __init__(self, recipe: str = "demo", overrides: dict | None = None,
                 env_overrides: dict | None = None, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.recipe = load_recipe(recipe, overrides)
        self.cfg = ppo_config(self.recipe)
        torch.manual_seed(seed)
        self.env = make_recipe_env(self.recipe, seed=seed, **(env_overrides or {}))
        self.policy = make_recipe_policy(self.recipe, self.env)
        self.recurrent = self.policy.recurrent_shape is not None
        if self.recurrent:
            add_memory(self.env, self.policy.recurrent_shape)
        keys = observation_keys(self.env)
        shared = _SharedForward()
        self.actor = Actor(self.policy, keys, shared, sequence=self.recurrent)
        self.critic = Critic(self.policy, keys, shared, sequence=self.recurrent)
        self.loss = ClipPPOLoss(self.actor, self.critic, clip_epsilon=self.cfg.clip,
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
        self.ticks = max(1, self.cfg.rollout_steps // (self.maps * self.agents))
        if self.recurrent:  # whole BPTT sequences
            self.ticks = -(-self.ticks // self.cfg.bptt) * self.cfg.bptt
        self.updates = max(1, self.cfg.total_steps // (self.ticks * self.maps * self.agents))
        self.seq = self.cfg.bptt if self.recurrent else 1
        self.per_mb = max(1, self.cfg.minibatch_steps // (self.agents * self.seq))
        self.steps_per_update = self.cfg.epochs * -(-(self.maps * self.ticks // self.seq) // self.per_mb)
        self.automatic_optimization = False
        self._collector = None
        self.agent_steps = 0

    # --- data ----------------------------------------------------------------------------------------
    def train_dataloader(self):
        return torch.utils.data.DataLoader(range(self.updates), batch_size=None)

    def _collect(self):
        if self._collector is None:
            self._collector = Collector(self.env, self.actor, frames_per_batch=self.maps * self.ticks,
                                        total_frames=-1, auto_register_policy_transforms=False)
            self._iter = iter(self._collector)
        with torch.no_grad():
            return next(self._iter)

    def configure_optimizers(self):
        return torch.optim.Adam(self.policy.parameters(), lr=self.cfg.lr, eps=1e-5)

    # --- one update ------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        log, sps = self.update(self.optimizers(), int(batch))
        self.log_dict({f"train/{k}": float(v) for k, v in log.items()}, prog_bar=False)
        self.log("sps", sps, prog_bar=True)

    def update(self, opt, index: int = 0) -> tuple[dict, float]:
        """Collect one rollout and learn from it; returns the logged figures and the
        agent-steps per second of the whole update."""
        if self.cfg.anneal_lr:
            frac = 1.0 - index / max(1, self.updates)
            for g in opt.param_groups:
                g["lr"] = self.cfg.lr * max(frac, 0.0)
        backward = self.manual_backward if self._trainer is not None else torch.Tensor.backward
        t0 = time.perf_counter()
        data = self._collect()  # [maps, ticks]
        t_env = time.perf_counter() - t0
        with torch.no_grad():
            self._bootstrap(data)
            self.gae(data)
        alive = data["agents", "mask"]
        adv = data["agents", "advantage"]
        if self.cfg.normalize_advantages:
            mean = masked_mean(adv, alive[..., None])
            std = (masked_mean((adv - mean) ** 2, alive[..., None])).sqrt()
            data["agents", "advantage"] = (adv - mean) / (std + 1e-8)
        if self.recurrent:  # [maps * ticks/bptt, bptt] sequences
            flat = data.reshape(self.maps, self.ticks // self.seq, self.seq).reshape(-1, self.seq)
        else:
            flat = data.reshape(-1)  # map-steps
        stats = []
        for _ in range(self.cfg.epochs):
            for idx in torch.randperm(flat.shape[0]).split(self.per_mb):
                mb = flat[idx]
                out = self.loss(mb)
                m = mb["agents", "mask"][..., None]
                loss = (masked_mean(out["loss_objective"], m) + masked_mean(out["loss_critic"], m)
                        + masked_mean(out["loss_entropy"], m))
                opt.zero_grad()
                backward(loss)
                self._sync_grads()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.max_grad_norm)
                opt.step()
                stats.append({"loss": loss.detach(),
                              "loss_objective": masked_mean(out["loss_objective"], m).detach(),
                              "loss_critic": masked_mean(out["loss_critic"], m).detach(),
                              "entropy": masked_mean(out["entropy"], m).detach(),
                              "kl": masked_mean(out["kl_approx"], m).detach() if "kl_approx" in out.keys() else loss.new_zeros(()),
                              "clip_fraction": masked_mean(out["clip_fraction"], m).detach()
                              if "clip_fraction" in out.keys() else loss.new_zeros(())})
        steps = int(data.numel()) * self.agents
        self.agent_steps += steps
        dt = time.perf_counter() - t0
        live = alive.float().mean()
        log = {k: torch.stack([s[k] for s in stats]).mean() for k in stats[0]}
        ended = data["next", "done"].squeeze(-1)
        stats_next = data["next", "agents", "stats"]
        if ended.any():
            log["episode/lifespan"] = stats_next[ended][..., 4].float().mean()
        if "task_completed" in data["next", "agents"].keys():
            tc = data["next", "agents", "task_completed"]
            log["task/completion"] = tc[ended].float().mean() if ended.any() else tc[:, -1].float().mean()
        log.update({"reward": masked_mean(data["next", "agents", "reward"], alive[..., None]),
                    "alive": live, "agent_steps": float(self.agent_steps),
                    "env_agent_steps_per_s": steps / max(t_env, 1e-9),
                    "train_agent_steps_per_s": steps / max(dt, 1e-9)})
        return log, steps / max(dt, 1e-9)

    def _value(self, td):
        return self.policy(td)["value"][..., None]

    def _bootstrap(self, data) -> None:
        """``("next","agents","state_value")`` for GAE: the next step's collected value,
        and a fresh critic pass only where the next observation is not the next step's
        (the rollout's last step, and episode ends, whose final observation was replaced by
        the reset one)."""
        v = data["agents", "state_value"]
        nv = torch.empty_like(v)
        nv[:, :-1] = v[:, 1:]
        nxt = data["next"]
        nv[:, -1] = self._value(nxt[:, -1])
        ended = nxt["done"][:, :-1].reshape(self.maps, -1)
        if ended.any():
            nv[:, :-1][ended] = self._value(nxt[:, :-1][ended])
        data["next", "agents", "state_value"] = nv

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

    def on_save_checkpoint(self, checkpoint):
        checkpoint["nmmozoo_agent_steps"] = self.agent_steps

    def on_load_checkpoint(self, checkpoint):
        self.agent_steps = checkpoint.get("nmmozoo_agent_steps", 0)

    def on_train_end(self):
        if self._collector is not None:
            self._collector.shutdown()
            self._collector = None
