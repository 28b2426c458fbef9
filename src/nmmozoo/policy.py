"""Policies assembled from model specs: encoders → fusion → memory → decoder, plus a value
head, reading the env's TensorDict and writing masked multi-head actions.

    policy = nmmozoo.create_policy("baseline", env=env)
    td = policy.act(td)            # ("agents","action",<head>), log-prob, value
"""

from __future__ import annotations

import copy
import fnmatch
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml
from tensordict import TensorDictBase
from torch import nn

from . import nn as _components  # noqa: F401 - registers the components
from .env import constants as C
from .env.config import EnvConfig, make_config
from .env.observe import expand_observation
from .env.constants import ACTION_HEADS, head_sizes
from .nn.decoders import MarketRows
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


def _set_path(spec: dict, dotted: str, value: Any) -> None:
    node = spec
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value


def resolve_spec(name_or_spec: str | dict | Path, **overrides) -> dict:
    """A full spec from a model name, a YAML path or a dict, with dotted overrides
    (``hidden=64``, ``**{"encoders.tile.embed_dim": 16}``)."""
    if isinstance(name_or_spec, dict):
        spec = copy.deepcopy(name_or_spec)
    else:
        files = _spec_files()
        key = str(name_or_spec)
        if Path(key).suffix in (".yaml", ".yml") and Path(key).exists():
            spec = _read_yaml(Path(key))
        elif key in files:
            spec = _read_yaml(files[key])
        else:
            base, _, variant = key.rpartition("_")
            if base in files and variant in (_read_yaml(files[base]).get("variants") or {}):
                spec = _read_yaml(files[base])
                for k, v in spec["variants"][variant].items():
                    _set_path(spec, k, v)
                spec["name"] = key
            else:
                raise SpecError(f"unknown model {key!r}; registered: {list_models()}")
    spec.pop("variants", None)
    for k, v in overrides.items():
        _set_path(spec, k, v)
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
class Policy(nn.Module):
    """One model of the zoo. ``forward`` maps the env's TensorDict to masked logits per head,
    the value and the next memory state."""

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

    # --- inputs ----------------------------------------------------------------------------------------
    def _inputs(self, td: TensorDictBase):
        agents = td.get("agents")
        lead = agents.batch_size  # [..., B, P]
        P = lead[-1]
        if "entity" not in agents.keys():  # compact observations: expand here
            tile, entity = expand_observation(
                td.get("material").reshape(-1, *td.get("material").shape[-2:]),
                td.get("entity_table").reshape(-1, *td.get("entity_table").shape[-2:]),
                agents.get("position").reshape(-1, P, 2), agents.get("entity_index").reshape(-1, P,
                agents.get("entity_index").shape[-1]), agents.get("mask").reshape(-1, P),
                self.sizes["window"] // 2)
        else:
            tile, entity = agents.get("tile"), agents.get("entity")
        N = lead.numel()
        flat = lambda x: x.reshape(N, *x.shape[len(lead):])  # noqa: E731
        market = td.get("market")
        market = market.reshape(-1, *market.shape[-2:])
        task = agents.get("task", None)
        return lead, flat(tile), flat(entity), flat(agents.get("inventory")), market, \
            None if task is None else flat(task), flat

    def forward(self, td: TensorDictBase, sequence: bool = False) -> dict[str, Any]:
        """``sequence``: the td's last batch dim before the agents is time (``[n, T]`` map-
        steps in order), and a recurrent memory runs over it from the state stored at the
        first step (truncated BPTT); otherwise every map-step is one independent step."""
        lead, tile, entity, inventory, market, task, flat = self._inputs(td)
        P = lead[-1]
        N = tile.shape[0]
        index = td.get(("agents", "agent_index"), None)  # agent-steps gathered from many maps
        agent_id = (flat(index) if index is not None else torch.arange(N, device=tile.device) % P) + 1
        if self.present_rows and hasattr(self.entity, "present"):  # present entity rows only
            ent_rows, me = self.entity.present(entity, agent_id)
        else:
            ent_rows, me = self.entity(entity, agent_id)
        inv_rows = self.item(inventory)
        inv_mask = inventory[..., 1] > 0
        mk_mask = market[..., 1] > 0
        if self.present_rows:  # per map, never per agent; listed rows only
            g, m = mk_mask.nonzero(as_tuple=True)
            enc = self.item(torch.cat([market[g, m], market.new_zeros(1, market.shape[-1])]))
            mk_rows = MarketRows(enc[:-1], g, m, enc[-1], market.shape[0], market.shape[1])
        else:  # the plain path: every row through the item encoder
            mk_rows = self.item(market)
        mk = self.market(mk_rows, mk_mask)  # [G, H]
        streams = {"tile": self.tile(tile), "entity": me, "inventory": self.inventory(inv_rows, inv_mask),
                   "market": mk.repeat_interleave(P, 0)}
        if self.task is not None:
            if task is None:
                raise ValueError(f"model {self.name!r} was built for task embeddings of size "
                                 f"{self.sizes['task_dim']}, but the input has no ('agents','task')")
            streams["task"] = self.task(task)
        else:
            streams["task"] = torch.zeros_like(me)
        if self.others is not None:
            streams["others"] = self.others(ent_rows, entity[..., C.COL["id"]] != 0)
        streams = [streams[k] for k in self.stream_order]
        x = self.fusion(streams)
        state = None
        if self.memory.layers:
            x, state = self._memory(td, x, lead, flat, sequence)
        logits = self.decoder(x, {"entity": ent_rows, "inventory": inv_rows, "market": mk_rows}, P)
        masks = {h: flat(td.get(("agents", "action_mask", h))) for h in ACTION_HEADS}
        for r in self.restrictions:
            masks = r(masks, entity)
        neg = torch.finfo(x.dtype).min
        logits = {h: logits[h].masked_fill(~masks[h], neg) for h in ACTION_HEADS}
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

    def _memory(self, td, x, lead, flat, sequence):
        """Run the memory. The state is read from ``("agents","recurrent_state")`` (zeros when
        absent) and zeroed where a map's episode starts (``is_init``, from TorchRL's
        ``InitTracker``)."""
        agents = td.get("agents")
        st = agents.get("recurrent_state", None)
        init = td.get("is_init", None)
        reset = (init[..., :1].expand(lead) if init is not None else
                 torch.zeros(lead, dtype=torch.bool, device=x.device))
        if not sequence:
            N = x.shape[0]
            x, state = self.memory(x, None if st is None else flat(st), reset.reshape(N))
            return x, state
        if len(lead) < 3:
            raise ValueError("sequence=True needs map-steps with a time dim: [..., T, agents]")
        *rest, T, P = lead
        n = int(torch.Size(rest).numel())
        H = x.shape[-1]
        xs = x.reshape(n, T, P, H).transpose(1, 2).reshape(n * P, T, H)
        s0 = None if st is None else st.reshape(n, T, P, *st.shape[len(lead):])[:, 0].reshape(
            n * P, *st.shape[len(lead):])
        rs = reset.reshape(n, T, P).transpose(1, 2).reshape(n * P, T)
        out, state = self.memory.sequence(xs, s0, rs)
        out = out.reshape(n, P, T, H).transpose(1, 2).reshape(-1, H)
        return out, None

    # --- acting --------------------------------------------------------------------------------------
    _LIVE_AGENT_KEYS = ("tile", "entity", "inventory", "task", "mask", "action_mask", "position",
                        "entity_index", "recurrent_state")
    _LIVE_MAP_KEYS = ("market", "material", "entity_table", "is_init")

    def _live_forward(self, td: TensorDictBase):
        """The network on the alive agents only: each live agent-step becomes a map of one
        agent (its map's market and map data, ``("agents","agent_index")`` its id), as the
        trainer's minibatches are. Returns the flat live indices into ``[maps·P]``, the
        lead shape, and the forward's output ``[L, 1, ...]``."""
        agents = td.get("agents")
        lead = agents.batch_size
        P = lead[-1]
        alive = agents.get("mask").reshape(-1)
        live = alive.nonzero().squeeze(-1)
        maps = td.select(*[k for k in self._LIVE_MAP_KEYS if k in td.keys()]).reshape(-1)[live // P]
        sub = agents.select(*[k for k in self._LIVE_AGENT_KEYS if k in agents.keys()]).reshape(-1)[live]
        index = agents.get("agent_index", None)
        sub.set("agent_index", (index.reshape(-1)[live] if index is not None else live % P))
        maps.set("agents", sub.unsqueeze(-1))  # [L, 1]
        return live, lead, self(maps)

    def sample(self, td: TensorDictBase, deterministic: bool = False) -> dict[str, Any]:
        """Actions for every agent of ``td`` ``[..., P]``: ``action`` (head → index),
        ``log_prob`` (summed over heads), ``value`` and ``recurrent_state`` (if any). With
        ``live_only`` the network runs on the alive agents alone and every dead agent gets
        the last option its mask allows in each head (the no-op / stay the env gives the
        dead), log-prob 0, value 0 and its memory state unchanged; otherwise every agent
        runs and samples."""
        masks = td.get(("agents", "action_mask"))
        if not self.live_only:
            out = self(td)
            dist = {h: torch.distributions.Categorical(logits=lg) for h, lg in out["logits"].items()}
            action = {h: (lg.argmax(-1) if deterministic else dist[h].sample())
                      for h, lg in out["logits"].items()}
            res = {"action": action, "log_prob": sum(dist[h].log_prob(a) for h, a in action.items()),
                   "value": out["value"]}
            if "recurrent_state" in out:
                res["recurrent_state"] = out["recurrent_state"]
            return res
        agents = td.get("agents")
        if not agents.get("mask").any():  # nobody alive: nothing to run
            lead = agents.batch_size
            live = torch.zeros(0, dtype=torch.long, device=agents.device)
            out = {"logits": {h: masks.get(h).new_zeros(0, 1, masks.get(h).shape[-1], dtype=torch.float)
                              for h in ACTION_HEADS}, "value": torch.zeros(0, 1, device=agents.device)}
            if self.recurrent_shape is not None:
                out["recurrent_state"] = torch.zeros(0, 1, *self.recurrent_shape, device=agents.device)
        else:
            live, lead, out = self._live_forward(td)
        action, logp = {}, 0
        for h in ACTION_HEADS:
            m = masks.get(h)
            n = m.shape[-1]
            full = (n - 1 - m.flip(-1).to(torch.uint8).argmax(-1)).reshape(-1)  # last allowed
            lg = out["logits"][h][:, 0]
            dist = torch.distributions.Categorical(logits=lg)
            a = lg.argmax(-1) if deterministic else dist.sample()
            action[h] = full.index_copy(0, live, a).reshape(lead)
            logp = logp + dist.log_prob(a)
        value = out["value"][:, 0]
        res = {"action": action,
               "log_prob": value.new_zeros(lead.numel()).index_copy(0, live, logp).reshape(lead),
               "value": value.new_zeros(lead.numel()).index_copy(0, live, value).reshape(lead)}
        if "recurrent_state" in out:
            st = out["recurrent_state"][:, 0]
            prev = td.get(("agents", "recurrent_state"), None)
            prev = (st.new_zeros(lead.numel(), *st.shape[1:]) if prev is None
                    else prev.reshape(lead.numel(), *st.shape[1:]).to(st.dtype))
            res["recurrent_state"] = prev.index_copy(0, live, st).reshape(*lead, *st.shape[1:])
        return res

    @torch.no_grad()
    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        """Sample masked actions for every head into ``td`` (in place), with the summed
        log-probability ``("agents","action_log_prob")`` and ``("agents","state_value")``
        (see :meth:`sample` for the dead agents)."""
        res = self.sample(td, deterministic)
        for h, a in res["action"].items():
            td.set(("agents", "action", h), a)
        td.set(("agents", "action_log_prob"), res["log_prob"])
        td.set(("agents", "state_value"), res["value"])
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
