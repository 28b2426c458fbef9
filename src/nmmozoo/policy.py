"""Policies assembled from model specs: encoders → fusion → memory → decoder, plus a value
head, reading the env's TensorDict and writing masked multi-head actions.

    policy = nmmozoo.create_policy("baseline", env=env)
    td = policy(td)                # ("agents","action",<head>), sample_log_prob, state_value
    out = policy.network(td)       # the network's masked logits per head, value, memory state
"""

from __future__ import annotations

import fnmatch
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn

from . import nn as _components  # noqa: F401 - registers the components
from .env import constants as C
from .env.config import EnvConfig, make_config
from .inputs import AgentRows, rows_from_td
from .nn.distributions import MaskedHead, mask_logits
from .env.constants import ACTION_HEADS, head_sizes
from .nn.decoders import MapIndex, MarketRows, SparseRows
from .nn.registry import SpecError, build

STREAMS = ("tile", "entity", "inventory", "market", "task")
# Encoder keys a spec may give: the five streams' encoders, the item encoder they share, and an
# optional pool over the entity rows (``others``: a summary of everything the agent sees).
ENCODER_KEYS = ("tile", "entity", "item", "inventory", "market", "task", "others")
OPTIONAL_STREAMS = ("others",)


# --- specs -------------------------------------------------------------------------------------------
def _spec_files() -> dict[str, Any]:
    root = resources.files("nmmozoo.models")
    return {p.name[:-5]: p for p in root.iterdir() if p.name.endswith(".yaml")}


def _read_yaml(path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{path.name}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path.name}: a model spec is a mapping")
    return data


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered model names (specs and their variants, e.g. ``baseline_tiny``)."""
    names = []
    for base, path in _spec_files().items():
        names.append(base)
        names += [f"{base}_{v}" for v in (_read_yaml(path).get("variants") or {})]
    if pretrained:
        from .hub import pretrained_index

        names = [n for n in names if n in pretrained_index()]
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def _set_path(spec, dotted: str, value: Any) -> None:
    """Set the dotted key ``dotted`` (``encoders.tile.embed_dim``) of ``spec`` (an OmegaConf
    config) to ``value``, replacing what was there; mappings on the way are created, and a
    value on the way that is not a mapping is a :class:`SpecError`."""
    from omegaconf import DictConfig, OmegaConf

    node = spec
    for k in dotted.split(".")[:-1]:  # OmegaConf.update would silently replace it
        node = node.get(k) if isinstance(node, DictConfig) else None
        if node is None:
            break
        if not isinstance(node, DictConfig):
            raise SpecError(f"{spec.get('name', 'spec')}: override {dotted!r}: {k!r} is not a mapping")
    OmegaConf.update(spec, dotted, value, merge=False)


def resolve_spec(name_or_spec: str | dict | Path, **overrides) -> dict:
    """A full spec, as a plain dict, from a model name, a YAML path or a dict, with dotted
    overrides (``hidden=64``, ``**{"encoders.tile.embed_dim": 16}``). Variants and overrides
    are applied through OmegaConf, then interpolations are resolved, so a spec may write
    ``embed_dim: ${hidden}`` and a variant that changes ``hidden`` changes both."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    def conf(data: Any, where: str):
        try:
            return OmegaConf.create(data)  # a copy: overrides never reach the caller's dict
        except OmegaConfBaseException as e:
            raise SpecError(f"{where}: {str(e).splitlines()[0]}") from None

    if isinstance(name_or_spec, dict):
        spec = conf(name_or_spec, str(name_or_spec.get("name", "spec")))
    else:
        files = _spec_files()
        key = str(name_or_spec)
        if Path(key).suffix in (".yaml", ".yml") and Path(key).exists():
            spec = conf(_read_yaml(Path(key)), Path(key).name)
        elif key in files:
            spec = conf(_read_yaml(files[key]), key)
        else:
            base, _, variant = key.rpartition("_")
            if base in files and variant in (_read_yaml(files[base]).get("variants") or {}):
                spec = conf(_read_yaml(files[base]), base)
                for k, v in spec["variants"][variant].items_ex(resolve=False):
                    _set_path(spec, k, v)
                spec["name"] = key
            else:
                raise SpecError(f"unknown model {key!r}; registered: {list_models()}")
    spec.pop("variants", None)
    for k, v in overrides.items():
        try:
            _set_path(spec, k, v)
        except OmegaConfBaseException as e:
            raise SpecError(f"{spec.get('name', 'spec')}: override {k!r}: {str(e).splitlines()[0]}") from None
    try:
        spec = OmegaConf.to_container(spec, resolve=True)
    except OmegaConfBaseException as e:  # an interpolation that does not resolve
        raise SpecError(f"{spec.get('name', 'spec')}.{getattr(e, 'full_key', '')}: "
                        f"{str(e).splitlines()[0]}") from None
    required = ("name", "hidden", "encoders", "fusion", "memory", "decoder", "value")
    missing = [k for k in required if k not in spec]
    if missing:
        raise SpecError(f"{spec.get('name', 'spec')}: missing {missing}")
    unknown = set(spec) - {*required, "restrictions", "init", "description", "streams", "card"}
    if unknown:
        raise SpecError(f"{spec['name']}: unknown field(s) {sorted(unknown)}")
    if not isinstance(spec["hidden"], int) or spec["hidden"] < 1:
        raise SpecError(f"{spec['name']}.hidden: expected a positive integer, got {spec['hidden']!r}")
    return spec


def env_sizes(env=None, config: EnvConfig | None = None, task_dim: int | None = None) -> dict:
    """The observation and action sizes a policy is built for (from an env, or a config)."""
    if env is not None:
        config = env.config
        if task_dim is None:
            emb = env.world.task_embeddings
            task_dim = 0 if emb is None else int(emb.shape[1])
    config = config or make_config()
    if task_dim is None:
        from .tasks.embeddings import TaskEmbeddings

        task_dim = TaskEmbeddings().dim
    return {"window": config.window, "map_size": config.map_size, "entity_cols": C.NUM_ENTITY_COLUMNS,
            "inventory_slots": config.inventory_slots, "market_size": config.market_size,
            "entity_rows": config.num_entity_obs,
            "num_agents": config.num_agents, "task_dim": int(task_dim),
            "head_sizes": head_sizes(config)}


def init_weights(policy: nn.Module, init: Any, path: str) -> None:
    """Apply a spec's ``init``: absent or ``default`` keeps PyTorch's initialisation;
    ``orthogonal`` is orthogonal weights with gain √2 and zero biases on every Linear and
    Conv2d; a mapping ``{name: orthogonal, gain: g, decoder_gain: d, value_gain: v,
    convs: bool}`` gives the Linears outside the decoder and value head gain ``g``, the
    decoder's Linears ``d``, the value head's ``v`` (each defaulting to ``g``), zero biases,
    and touches Conv2d layers only if ``convs`` (embeddings, norms and recurrent cells keep
    their own initialisation)."""
    if init in (None, "default"):
        return
    if init == "orthogonal":
        init = {"name": "orthogonal", "gain": 2 ** 0.5, "convs": True}
    if not isinstance(init, dict) or init.get("name") != "orthogonal":
        raise SpecError(f"{path}: expected 'default', 'orthogonal' or {{name: orthogonal, gain: ..., "
                        f"decoder_gain: ..., value_gain: ..., convs: ...}}, got {init!r}")
    unknown = set(init) - {"name", "gain", "decoder_gain", "value_gain", "convs"}
    if unknown:
        raise SpecError(f"{path}: unknown argument(s) {sorted(unknown)}")
    for k in ("gain", "decoder_gain", "value_gain"):
        v = init.get(k, 1.0)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise SpecError(f"{path}.{k}: expected a positive number, got {v!r}")
    gain = float(init.get("gain", 1.0))
    part_gain = {"decoder": float(init.get("decoder_gain", gain)),
                 "value": float(init.get("value_gain", gain))}
    kinds = (nn.Linear, nn.Conv2d) if init.get("convs", False) else (nn.Linear,)
    for name, m in policy.named_modules():
        if isinstance(m, kinds):
            g = part_gain.get(name.split(".")[0], gain)
            nn.init.orthogonal_(m.weight, gain=g)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# --- the network ---------------------------------------------------------------------------------------
class Policy(TensorDictModuleBase):
    """One model of the zoo, a TensorDict module: ``policy(td)`` reads the env's TensorDict
    and writes ``("agents","action",<head>)``, ``("agents","sample_log_prob")`` (summed over
    heads), ``("agents","state_value")`` and, for a recurrent model,
    ``("next","agents","recurrent_state")`` — sampled, or the most likely actions under
    TorchRL's deterministic exploration type. :meth:`network` gives the network's masked
    logits per head, the value and the next memory state."""

    in_keys = ["agents", "market"]
    out_keys = [("agents", "action"), ("agents", "sample_log_prob"), ("agents", "state_value")]

    def __init__(self, spec: dict, sizes: dict):
        super().__init__()
        self.spec, self.sizes = spec, sizes
        H = spec["hidden"]
        p = spec["name"]
        enc = spec["encoders"]
        if not isinstance(enc, dict):
            raise SpecError(f"{p}.encoders: expected a mapping")
        for key in ("tile", "entity", "item", "inventory", "market", "task"):
            if key not in enc:
                raise SpecError(f"{p}.encoders: missing {key!r}")
        unknown = set(enc) - set(ENCODER_KEYS)
        if unknown:
            raise SpecError(f"{p}.encoders: unknown stream(s) {sorted(unknown)}; "
                            f"known: {list(ENCODER_KEYS)}")
        self.stream_order = self._stream_order(spec, enc)
        ctx = {"hidden": H, **{k: v for k, v in sizes.items()}, "streams": len(self.stream_order),
               "rows": sizes["inventory_slots"]}
        self.tile = build("tile", enc["tile"], f"{p}.encoders.tile", ctx)
        self.entity = build("entity", enc["entity"], f"{p}.encoders.entity", ctx)
        self.item = build("item", enc["item"], f"{p}.encoders.item", ctx)
        self.inventory = build("pool", enc["inventory"], f"{p}.encoders.inventory", ctx)
        self.market = build("pool", enc["market"], f"{p}.encoders.market",
                            {**ctx, "rows": sizes["market_size"]})
        self.task = build("task", enc["task"], f"{p}.encoders.task", ctx) if sizes["task_dim"] else None
        self.others = (build("pool", enc["others"], f"{p}.encoders.others",
                             {**ctx, "rows": sizes["entity_rows"]}) if "others" in enc else None)
        self.fusion = build("fusion", spec["fusion"], f"{p}.fusion", ctx)
        self.memory = build("memory", spec["memory"], f"{p}.memory", ctx)
        self.decoder = build("decoder", spec["decoder"], f"{p}.decoder", ctx)
        self.value = build("value", spec["value"], f"{p}.value", ctx)
        restr = spec.get("restrictions") or []
        if not isinstance(restr, list):
            raise SpecError(f"{p}.restrictions: expected a list")
        self.restrictions = [build("restriction", r, f"{p}.restrictions[{i}]", ctx)
                             for i, r in enumerate(restr)]
        init_weights(self, spec.get("init"), f"{p}.init")
        self.present_rows = True
        """Encode only the listed market rows and the present entity rows (an empty row's
        embedding is computed once and stands for every empty row); False runs every row,
        the plain path the tests hold the fast one to."""
        self.live_only = True
        """``act`` (and the trainer's acting module) runs the network on alive agents only;
        the dead get the no-op action, log-prob 0, value 0 and keep their memory state."""

    @property
    def tabulate(self) -> bool:
        """The tile encoder's first conv as a table lookup (where the encoder has one)."""
        return bool(getattr(self.tile, "tabulate", False))

    @tabulate.setter
    def tabulate(self, on: bool) -> None:
        if hasattr(self.tile, "tabulate"):
            self.tile.tabulate = bool(on)

    def fast(self, on: bool = True) -> "Policy":
        """Switch every exact shortcut (present rows, tabulated conv, live-only acting) on or
        off together; off is the plain path. Returns the policy."""
        self.present_rows = self.live_only = self.tabulate = bool(on)
        return self

    @staticmethod
    def _stream_order(spec: dict, enc: dict) -> tuple[str, ...]:
        """The order the streams are concatenated in (it fixes the fusion weights' layout):
        ``streams:`` in the spec, else the five standard ones plus ``others`` if encoded."""
        p = spec["name"]
        order = spec.get("streams")
        if order is None:
            return STREAMS + tuple(k for k in OPTIONAL_STREAMS if k in enc)
        known = STREAMS + OPTIONAL_STREAMS
        if (not isinstance(order, list) or not all(isinstance(k, str) for k in order)
                or len(set(order)) != len(order) or set(order) - set(known)):
            raise SpecError(f"{p}.streams: expected a list of distinct names from {list(known)}, "
                            f"got {order!r}")
        if set(STREAMS) - set(order):
            raise SpecError(f"{p}.streams: missing {sorted(set(STREAMS) - set(order))}")
        for k in OPTIONAL_STREAMS:
            if (k in order) != (k in enc):
                raise SpecError(f"{p}.streams: {k!r} is listed without its encoder or encoded "
                                f"without being listed")
        return tuple(order)

    @property
    def name(self) -> str:
        return self.spec["name"]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --- the network -----------------------------------------------------------------------------------
    def forward(self, td: TensorDictBase, task_table: torch.Tensor | None = None) -> TensorDictBase:
        """Act on every agent of ``td`` (in place, and returned): see the class docstring and
        :meth:`sample` for the dead agents. The most likely actions where TorchRL's exploration
        type is deterministic or mode, sampled otherwise."""
        from torchrl.envs.utils import ExplorationType, exploration_type

        deterministic = exploration_type() in (ExplorationType.DETERMINISTIC, ExplorationType.MODE)
        return self.act(td, deterministic, task_table)

    def network(self, td: TensorDictBase, sequence: bool = False,
                task_table: torch.Tensor | None = None) -> dict[str, Any]:
        """Every agent of the env's TensorDict ``[..., B, P]`` (dense or compact observations;
        a compact ``task_id`` needs ``task_table``, the env's task embeddings). ``sequence``:
        the td's last batch dim before the agents is time (``[n, T]`` map-steps in order), and
        a recurrent memory runs over it from the state stored at the first step (truncated
        BPTT); otherwise every map-step is one independent step."""
        return self.forward_rows(rows_from_td(td, self.sizes["window"] // 2, task_table=task_table),
                                 sequence)

    def forward_rows(self, rows: AgentRows, sequence: bool = False) -> dict[str, Any]:
        """The network on :class:`~nmmozoo.inputs.AgentRows`: masked logits per head, the
        value and the next memory state, shaped ``rows.lead``. With ``sequence`` the lead is
        ``[n, T, P]`` and the memory runs along ``T``."""
        lead = rows.lead
        tile, entity, inventory, market = rows.tile, rows.entity, rows.inventory, rows.market
        agent_id = rows.agent_id
        if self.present_rows and hasattr(self.entity, "present"):  # present entity rows only
            ent_rows, me = self.entity.present(entity, agent_id)
        else:
            ent_rows, me = self.entity(entity, agent_id)
        inv_mask = inventory[..., 1] > 0
        if self.present_rows:  # the items held only, one empty-row embedding for the rest
            n, sl = (inventory != 0).any(-1).nonzero(as_tuple=True)
            enc = self.item(torch.cat([inventory[n, sl], inventory.new_zeros(1, inventory.shape[-1])]))
            inv_rows = SparseRows(enc[:-1], n, sl, enc[-1], inventory.shape[0], inventory.shape[1])
        else:
            inv_rows = self.item(inventory)
        mk_mask = market[..., 1] > 0
        if self.present_rows:  # per map, never per agent; listed rows only
            g, m = mk_mask.nonzero(as_tuple=True)
            enc = self.item(torch.cat([market[g, m], market.new_zeros(1, market.shape[-1])]))
            mk_rows = MarketRows(enc[:-1], g, m, enc[-1], market.shape[0], market.shape[1])
        else:  # the plain path: every row through the item encoder
            mk_rows = self.item(market)
        mk = self.market(mk_rows, mk_mask)  # [G, H]
        streams = {"tile": self.tile(tile), "entity": me, "inventory": self.inventory(inv_rows, inv_mask),
                   "market": (mk.repeat_interleave(rows.per_map, 0) if rows.per_map is not None
                              else mk.index_select(0, rows.map_of))}
        if self.task is not None:
            if rows.task is None:
                raise ValueError(f"model {self.name!r} was built for task embeddings of size "
                                 f"{self.sizes['task_dim']}, but the input has no ('agents','task') "
                                 f"(compact observations: pass the env's task table)")
            streams["task"] = self.task(rows.task)
        else:
            streams["task"] = torch.zeros_like(me)
        if self.others is not None:
            streams["others"] = self.others(ent_rows, entity[..., C.COL["id"]] != 0)
        streams = [streams[k] for k in self.stream_order]
        x = self.fusion(streams)
        state = None
        if self.memory.layers:
            x, state = self._memory(x, rows, sequence)
        logits = self.decoder(x, {"entity": ent_rows, "inventory": inv_rows, "market": mk_rows},
                              MapIndex(rows.map_of, rows.per_map))
        masks = rows.masks
        for r in self.restrictions:
            masks = r(masks, entity)
        logits = {h: mask_logits(logits[h], masks[h]) for h in ACTION_HEADS}
        out = {"logits": {h: v.reshape(*lead, -1) for h, v in logits.items()},
               "value": self.value(x).reshape(lead)}
        if state is not None:
            out["recurrent_state"] = state.reshape(*lead, *state.shape[1:])
        return out

    @property
    def recurrent_shape(self) -> tuple[int, ...] | None:
        """Per-agent shape of the memory state (``("agents","recurrent_state")``), or None."""
        if not self.memory.layers:
            return None
        return (2, self.memory.layers, self.spec["hidden"])

    def _memory(self, x, rows: AgentRows, sequence: bool):
        """Run the memory from each row's stored state (zeros when absent), restarted where
        the row's map starts an episode (``is_init``, from TorchRL's ``InitTracker``)."""
        st, reset = rows.state, rows.reset
        if not sequence:
            return self.memory(x, st, reset)
        lead = rows.lead
        if len(lead) < 3:
            raise ValueError("sequence=True needs map-steps with a time dim: [..., T, agents]")
        *rest, T, P = lead
        n = int(torch.Size(rest).numel())
        H = x.shape[-1]
        xs = x.reshape(n, T, P, H).transpose(1, 2).reshape(n * P, T, H)
        s0 = None if st is None else st.reshape(n, T, P, *st.shape[1:])[:, 0].reshape(n * P, *st.shape[1:])
        rs = reset.reshape(n, T, P).transpose(1, 2).reshape(n * P, T)
        out, state = self.memory.sequence(xs, s0, rs)
        out = out.reshape(n, P, T, H).transpose(1, 2).reshape(-1, H)
        return out, None

    # --- acting --------------------------------------------------------------------------------------
    def sample(self, td: TensorDictBase, deterministic: bool = False,
               task_table: torch.Tensor | None = None) -> dict[str, Any]:
        """Actions for every agent of ``td`` ``[..., P]``: ``action`` (head → index),
        ``log_prob`` (summed over heads), ``value`` and ``recurrent_state`` (if any). With
        ``live_only`` the network runs on the alive agents alone and every dead agent gets
        the last option its mask allows in each head (the no-op / stay the env gives the
        dead), log-prob 0, value 0 and its memory state unchanged; otherwise every agent
        runs and samples."""
        masks = td.get(("agents", "action_mask"))
        if not self.live_only:
            out = self.network(td, task_table=task_table)
            dist = {h: MaskedHead(lg) for h, lg in out["logits"].items()}
            action = {h: (lg.argmax(-1) if deterministic else dist[h].sample())
                      for h, lg in out["logits"].items()}
            res = {"action": action, "log_prob": sum(dist[h].log_prob(a) for h, a in action.items()),
                   "value": out["value"]}
            if "recurrent_state" in out:
                res["recurrent_state"] = out["recurrent_state"]
            return res
        agents = td.get("agents")
        lead = agents.batch_size
        live = agents.get("mask").reshape(-1).nonzero().squeeze(-1)
        if live.numel() == 0:  # nobody alive: nothing to run
            out = {"logits": {h: masks.get(h).new_zeros(0, masks.get(h).shape[-1], dtype=torch.float)
                              for h in ACTION_HEADS}, "value": torch.zeros(0, device=agents.device)}
            if self.recurrent_shape is not None:
                out["recurrent_state"] = torch.zeros(0, *self.recurrent_shape, device=agents.device)
        else:
            out = self.forward_rows(rows_from_td(td, self.sizes["window"] // 2, select=live,
                                                 task_table=task_table))
        action, logp = {}, 0
        for h in ACTION_HEADS:
            m = masks.get(h)
            n = m.shape[-1]
            full = (n - 1 - m.flip(-1).to(torch.uint8).argmax(-1)).reshape(-1)  # last allowed
            lg = out["logits"][h]
            dist = MaskedHead(lg)
            a = lg.argmax(-1) if deterministic else dist.sample()
            action[h] = full.index_copy(0, live, a).reshape(lead)
            logp = logp + dist.log_prob(a)
        value = out["value"]
        res = {"action": action,
               "log_prob": value.new_zeros(lead.numel()).index_copy(0, live, logp).reshape(lead),
               "value": value.new_zeros(lead.numel()).index_copy(0, live, value).reshape(lead)}
        if "recurrent_state" in out:
            st = out["recurrent_state"]
            prev = td.get(("agents", "recurrent_state"), None)
            prev = (st.new_zeros(lead.numel(), *st.shape[1:]) if prev is None
                    else prev.reshape(lead.numel(), *st.shape[1:]).to(st.dtype))
            res["recurrent_state"] = prev.index_copy(0, live, st).reshape(*lead, *st.shape[1:])
        return res

    @torch.no_grad()
    def act(self, td: TensorDictBase, deterministic: bool = False,
            task_table: torch.Tensor | None = None) -> TensorDictBase:
        """Write masked actions for every head into ``td`` (in place, and returned), with the
        summed log-probability ``("agents","sample_log_prob")``, ``("agents","state_value")``
        ``[..., P, 1]`` and, for a recurrent model, ``("next","agents","recurrent_state")``
        (see :meth:`sample` for the dead agents)."""
        res = self.sample(td, deterministic, task_table)
        lead = td.get("agents").batch_size
        td.set(("agents", "action"), TensorDict(res["action"], batch_size=lead))
        td.set(("agents", "sample_log_prob"), res["log_prob"])
        td.set(("agents", "state_value"), res["value"][..., None])
        if "recurrent_state" in res:
            td.set(("next", "agents", "recurrent_state"), res["recurrent_state"])
        return td


def create_policy(name_or_spec: str | dict | Path, env=None, pretrained: bool = False,
                  task_dim: int | None = None, config: EnvConfig | None = None, **overrides) -> Policy:
    """Build a model of the zoo for ``env`` (or a config; ``task_dim`` sets the task
    embedding size, e.g. 4096 as in 2023). ``pretrained`` loads the weights of the
    checkpoint of that name; ``overrides`` replace spec fields (``hidden=64``)."""
    spec = resolve_spec(name_or_spec, **overrides)
    policy = Policy(spec, env_sizes(env, config, task_dim))
    if pretrained:
        from .hub import HubError, _compare, load_pretrained

        src = load_pretrained(spec["name"])
        if src.sizes != policy.sizes:
            diff = {k: (src.sizes.get(k), policy.sizes.get(k))
                    for k in sorted(set(src.sizes) | set(policy.sizes))
                    if src.sizes.get(k) != policy.sizes.get(k)}
            raise HubError(f"pretrained {spec['name']!r} was trained for other observation and "
                           f"action sizes; (checkpoint, this env): {diff}")
        missing, bad = _compare(policy.state_dict(), src.state_dict())
        if missing or bad:
            raise HubError(f"pretrained {spec['name']!r} does not fit the model built with these "
                           f"overrides: mismatched weights {(missing + bad)[:5]}")
        policy.load_state_dict(src.state_dict(), strict=True)
    return policy
