"""``NMMOEnv``: the bundled Neural MMO 2 world as a batched multi-agent TorchRL environment.

Batch size ``[num_maps]``; the players of each map form the group ``"agents"`` with batch
``[num_maps, num_agents]``. Each map ends and resets on its own through TorchRL's partial
reset (``"_reset"``). Per-agent ``("agents","done")`` marks death (and the map's end); a
dead agent stays done until its map resets, so the env allows done entries after a reset.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Binary, Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from . import constants as C
from .config import EnvConfig, make_config
from .constants import ACTION_HEADS, head_sizes  # noqa: F401 (their old home: still importable here)
from .workers import ShardedWorld
from .world import STAT_NAMES, World

OBS_MODES = ("dense", "compact")


def checked_device(device) -> torch.device:
    """``device`` as a torch device, or a ValueError naming it: not a device, or CUDA asked for
    where there is none."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device (cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but CUDA is not available here")
    return dev


class ActionError(ValueError):
    """An action outside its head's range."""


class NMMOEnv(EnvBase):
    """Neural MMO 2 over ``num_maps`` maps. See :func:`nmmozoo.make_env`."""

    batch_locked = True

    def __init__(self, config: EnvConfig, num_maps: int = 8, device="cpu", seed: int = 0,
                 obs_mode: str = "dense", workers: int = 1, eval_offset: int = 0,
                 eval_stride: int = 1):
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        dev = checked_device(device)
        if not isinstance(num_maps, int) or num_maps < 1:
            raise ValueError(f"num_maps must be a positive integer, got {num_maps!r}")
        super().__init__(device=device, batch_size=torch.Size([num_maps]))
        self._allow_done_after_reset = True  # dead agents stay done until their map resets
        self.config = config
        self.obs_mode = obs_mode
        seed = 0 if seed is None else seed
        if not isinstance(seed, int) or isinstance(seed, bool) or not -2 ** 63 <= seed < 2 ** 64:
            raise ValueError(f"seed must be an integer (a 64-bit random seed), got {seed!r}")
        self.workers = workers
        if workers == 1:
            self.world = World(config, num_maps, self.device, seed, dense=obs_mode == "dense",
                               eval_offset=eval_offset, eval_stride=eval_stride)
        else:
            if dev.type != "cpu":
                raise ValueError(f"workers={workers} shards the maps over CPU processes; on "
                                 f"{device!r} use workers=1")
            self.world = ShardedWorld(config, num_maps, workers, obs_mode, seed)
        self._action_shape = torch.Size([num_maps, config.num_agents])
        self._make_specs()
        if workers != 1:
            self._start_workers()

    def _start_workers(self) -> None:
        out = self.full_observation_spec.zero()
        out.update(self.full_reward_spec.zero())
        out.update(self.full_done_spec.zero())
        self._shared_actions = self.full_action_spec.zero().share_memory_()
        self._shared_reset = torch.zeros(self.batch_size[0], dtype=torch.bool).share_memory_()
        self.world.start(out.share_memory_(), self._shared_actions, self._shared_reset)

    def close(self, *, raise_if_closed: bool = True) -> None:
        if self.workers != 1:
            self.world.close()
        super().close(raise_if_closed=raise_if_closed)

    # --- specs ---------------------------------------------------------------------------------
    def _make_specs(self) -> None:
        cfg, B, dev = self.config, self.batch_size[0], self.device
        P, K, E = cfg.num_agents, cfg.num_entity_obs, cfg.num_entities
        BP = (B, P)
        sizes = self._sizes = head_sizes(cfg)
        self._head_limit = torch.tensor([sizes[h] for h in ACTION_HEADS], device=dev)[:, None]
        i16 = torch.int16
        agents = {
            "mask": Categorical(2, shape=BP, dtype=torch.bool, device=dev),
            "position": Bounded(0, cfg.map_size - 1, shape=(*BP, 2), dtype=i16, device=dev),
            "events": Unbounded(shape=(*BP, C.NUM_EVENTS), dtype=torch.int32, device=dev),
            "stats": Unbounded(shape=(*BP, len(STAT_NAMES)), dtype=torch.int32, device=dev),
            "action_mask": Composite(
                {h: Binary(n=n, shape=(*BP, n), dtype=torch.bool, device=dev) for h, n in sizes.items()},
                shape=BP, device=dev),
            "inventory": Unbounded(shape=(*BP, cfg.inventory_slots, C.NUM_ITEM_COLUMNS), dtype=i16,
                                   device=dev),
        }
        if self.world.tasks is not None:
            D = self.world.task_embeddings.shape[1]
            agents["task_progress"] = Bounded(0.0, 1.0, shape=BP, device=dev)
            agents["task_completed"] = Categorical(2, shape=BP, dtype=torch.bool, device=dev)
            if self.obs_mode == "dense":
                agents["task"] = Unbounded(shape=(*BP, D), dtype=torch.float16, device=dev)
            else:
                agents["task_id"] = Bounded(0, len(self.world.tasks.specs) - 1, shape=BP,
                                            dtype=torch.int64, device=dev)
        root = {"tick": Unbounded(shape=(B, 1), dtype=torch.int64, device=dev),
                "market": Unbounded(shape=(B, cfg.market_size, C.NUM_ITEM_COLUMNS), dtype=i16,
                                    device=dev)}
        if self.obs_mode == "dense":
            agents["tile"] = Bounded(0, cfg.map_size - 1, shape=(*BP, cfg.num_tiles_obs, 3),
                                     dtype=i16, device=dev)
            agents["entity"] = Unbounded(shape=(*BP, K, C.NUM_ENTITY_COLUMNS), dtype=i16, device=dev)
        else:
            agents["entity_index"] = Bounded(0, E, shape=(*BP, K), dtype=i16, device=dev)
            root["material"] = Bounded(0, C.NUM_MATERIALS - 1, shape=(B, cfg.map_size, cfg.map_size),
                                       dtype=torch.uint8, device=dev)
            root["entity_table"] = Unbounded(shape=(B, E + 1, C.NUM_ENTITY_COLUMNS), dtype=i16,
                                             device=dev)
        self.observation_spec = Composite(agents=Composite(agents, shape=BP, device=dev), **root,
                                          shape=(B,), device=dev)
        self.action_spec = Composite(
            agents=Composite(action=Composite(
                {h: Categorical(n, shape=BP, device=dev) for h, n in sizes.items()},
                shape=BP, device=dev), shape=BP, device=dev),
            shape=(B,), device=dev)
        self.reward_spec = Composite(
            agents=Composite(reward=Unbounded(shape=(*BP, 1), device=dev), shape=BP, device=dev),
            shape=(B,), device=dev)
        flag = lambda *shape: Categorical(2, shape=shape, dtype=torch.bool, device=dev)  # noqa: E731
        self.done_spec = Composite(
            done=flag(B, 1), terminated=flag(B, 1), truncated=flag(B, 1),
            agents=Composite(done=flag(*BP, 1), terminated=flag(*BP, 1), shape=BP, device=dev),
            shape=(B,), device=dev)

    # --- TorchRL hooks --------------------------------------------------------------------------
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        maps = None
        if tensordict is not None and "_reset" in tensordict.keys():
            maps = tensordict.get("_reset").reshape(self.batch_size[0]).to(self.device)
        if self.workers != 1:
            self._shared_reset.copy_(True if maps is None else maps)
            return self.world.reset()
        obs = self.world.reset(maps)
        return self._output(obs, with_reward=False)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        acts = self._check_actions(tensordict)
        if self.workers != 1:
            for head, a in acts.items():
                self._shared_actions.get(("agents", "action", head)).copy_(a)
            return self.world.step()
        return self._advance(acts)

    def _advance(self, acts: dict[str, torch.Tensor]) -> TensorDictBase:
        """One tick on checked actions (``[B, P]`` int64 per head)."""
        return self._output(self.world.step(acts), with_reward=True)

    def _check_actions(self, tensordict: TensorDictBase) -> dict[str, torch.Tensor]:
        """The 12 action heads, each checked for presence, shape and range."""
        acts = {}
        for head in ACTION_HEADS:
            a = tensordict.get(("agents", "action", head), None)
            if a is None:
                raise ActionError(f"action ('agents','action','{head}') is missing; an action "
                                  f"needs every head of {ACTION_HEADS}")
            if a.dtype.is_floating_point:
                raise ActionError(f"action ('agents','action','{head}') must hold integers in "
                                  f"[0, {self._sizes[head]}); got {a.dtype}")
            if a.shape != self._action_shape:
                raise ActionError(f"action ('agents','action','{head}') must have shape "
                                  f"{tuple(self._action_shape)} (maps, agents); got {tuple(a.shape)}")
            acts[head] = a.long().to(self.device)
        # Range check of all heads in a few ops (one sync); the message names the first bad head.
        stacked = torch.stack([acts[h].reshape(-1) for h in ACTION_HEADS])
        if bool(((stacked < 0) | (stacked >= self._head_limit)).any()):
            for head in ACTION_HEADS:
                a, n = acts[head], self._sizes[head]
                if (a < 0).any() or (a >= n).any():
                    bad = a[(a < 0) | (a >= n)][:3].tolist()
                    raise ActionError(f"action ('agents','action','{head}') must hold integers in "
                                      f"[0, {n}); got {bad}")
        return acts

    def _set_seed(self, seed: int | None) -> None:
        self.world.seed(0 if seed is None else seed)

    # --- saved state ----------------------------------------------------------------------------
    STATE_FORMAT = 1

    def _state_meta(self) -> dict:
        import dataclasses

        w = self.world
        return {"format": self.STATE_FORMAT, "num_maps": int(self.batch_size[0]),
                "obs_mode": self.obs_mode, "workers": self.workers,
                "eval_offset": getattr(w, "eval_offset", 0), "eval_stride": getattr(w, "eval_stride", 1),
                "config": {k: list(v) if isinstance(v, tuple) else v
                           for k, v in dataclasses.asdict(self.config).items()}}

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False) -> dict:
        """The env's complete state: what, with the same config, makes its future steps and
        resets the same as this env's, random draws included.

        A flat dict (string keys, as :meth:`torch.nn.Module.state_dict`) of CPU tensors and
        plain Python values (``torch.save``-able, ``torch.load(weights_only=True)``-able):
        ``meta`` (format, number of maps, obs mode, workers, the config as a dict), then the
        world's entries (:meth:`World.state_dict`: ``state.<field>``, ``generator.<name>``,
        ``tasks.<field>``, ...); with ``workers`` > 1, those of each worker's world under
        ``worker<i>.``. Load it with :meth:`load_state_dict` into an env built the same way
        (same config, number of maps, obs mode and workers; any seed). The caller's last
        output tensordict (the one fed to the next step) is not in it: see
        :func:`nmmozoo.env.env_state`."""
        out = destination if destination is not None else {}
        out[prefix + "meta"] = self._state_meta()
        world = self.world.state_dict()
        for k, v in world.items():
            out[prefix + k] = v
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True, assign: bool = False):
        """Restore a :meth:`state_dict`: the config, number of maps, obs mode and workers
        must be this env's (an :class:`~nmmozoo.env.state.EnvStateError` names the first
        difference); then every entry must fit (see :meth:`World.load_state_dict`)."""
        from .state import EnvStateError

        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("meta"), dict):
            raise EnvStateError("not an NMMOEnv state: expected a dict with a 'meta' entry "
                                "(from NMMOEnv.state_dict or nmmozoo.env.env_state)")
        saved, mine = state_dict["meta"], self._state_meta()
        if saved.get("format") != mine["format"]:
            raise EnvStateError(f"env state format {saved.get('format')!r}; this version reads "
                                f"format {mine['format']}")
        diff = [k for k in sorted(set(saved["config"]) | set(mine["config"]))
                if saved["config"].get(k, "<absent>") != mine["config"].get(k, "<absent>")]
        if diff:
            raise EnvStateError("the env state was saved with another config: " + "; ".join(
                f"config field {k!r} is {saved['config'].get(k, '<absent>')!r} in the state, "
                f"{mine['config'].get(k, '<absent>')!r} in this env" for k in diff))
        for k in ("num_maps", "obs_mode", "workers", "eval_offset", "eval_stride"):
            if saved.get(k) != mine[k]:
                raise EnvStateError(f"the env state was saved with {k}={saved.get(k)!r}; this env "
                                    f"has {k}={mine[k]!r}")
        self.world.load_state_dict({k: v for k, v in state_dict.items() if k != "meta"})

    # --- output ---------------------------------------------------------------------------------
    def _output(self, obs: dict[str, torch.Tensor], with_reward: bool) -> TensorDictBase:
        cfg, w = self.config, self.world
        B, P = self.batch_size[0], cfg.num_agents
        alive = obs["mask"]
        map_done = w.state.done[:, None]
        agents = {
            "mask": alive,
            "position": obs["position"],
            "events": w.state.events.clone(),
            "stats": w.stats(),
            "action_mask": TensorDict({
                "move": obs["move_mask"], "attack_style": obs["style_mask"],
                "attack_target": obs["target_mask"],
                **{h: obs[h] for h in ACTION_HEADS[3:]}}, batch_size=(B, P)),
            "inventory": obs["inventory"],
            "done": (~alive | map_done)[..., None],
            "terminated": (~alive)[..., None],
        }
        if with_reward:
            agents["reward"] = w.reward[..., None]
        if w.tasks is not None:
            agents["task_progress"] = w.tasks.progress.clone()
            agents["task_completed"] = w.tasks.completed.clone()
            if self.obs_mode == "dense":
                agents["task"] = w.task_embeddings[w.tasks.task_id]
            else:
                agents["task_id"] = w.tasks.task_id.clone()
        root = {"tick": w.state.tick[:, None].clone(), "done": map_done.clone(), "market": obs["market"],
                "terminated": w.terminated[:, None].clone(), "truncated": w.truncated[:, None].clone()}
        if self.obs_mode == "dense":
            agents["tile"], agents["entity"] = obs["tile"], obs["entity"]
        else:
            agents["entity_index"] = obs["entity_index"]
            root["material"] = obs["material"].clone()
            root["entity_table"] = obs["entity_table"]
        return TensorDict({"agents": TensorDict(agents, batch_size=(B, P)), **root},
                          batch_size=(B,), device=self.device)


def make_env(preset: str | EnvConfig = "competition2023", num_maps: int = 8, device="cpu",
             seed: int = 0, obs_mode: str = "dense", workers: int = 1, **overrides) -> NMMOEnv:
    """Build the bundled Neural MMO 2 environment.

    ``preset`` names a preset (``competition2023``, ``tiny``) or is an :class:`EnvConfig`;
    ``overrides`` replace config fields (``make_env("tiny", num_npcs=0)``). ``obs_mode``
    ``"dense"`` emits the 2.0 tile/entity arrays per agent; ``"compact"`` emits per-map tables
    and per-agent indices (see :mod:`nmmozoo.env.observe`). ``workers`` > 1 steps the maps in
    that many CPU processes, ``num_maps / workers`` maps each (see :mod:`nmmozoo.env.workers`).
    """
    cfg = make_config(preset, **overrides)
    return NMMOEnv(cfg, num_maps=num_maps, device=device, seed=seed, obs_mode=obs_mode,
                   workers=workers)
