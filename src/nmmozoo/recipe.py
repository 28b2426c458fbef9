"""Training recipes: a model, env settings, reward terms and PPO hyper-parameters, as YAML
(``recipes/<name>.yaml``). This module loads and validates them and builds their env (with
the reward-shaping transform) and policy; the trainer reads the ``ppo`` and ``trainer``
sections. Recipes are read, overridden and interpolated with OmegaConf; the ``ppo`` section
is typed by ``PPOConfig``'s structured config and the ``env`` section by ``EnvConfig``'s (in
:func:`nmmozoo.env.make_config`). What leaves this module is plain dicts and dataclasses."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torchrl.envs import TransformedEnv

from . import _typed
from .env import make_env
from .env.config import ConfigError
from .nn.registry import SpecError
from .policy import create_policy
from .rewards import RewardShaping


def _shipped() -> dict[str, Path]:
    from importlib import resources

    root = resources.files("nmmozoo.recipes")
    return {p.name[:-5]: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def list_recipes() -> list[str]:
    return sorted(_shipped())

SECTIONS = ("model", "env", "rewards", "ppo", "trainer", "description")


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyper-parameters of a recipe (every field documented where the 2023 sources set it)."""

    lr: float = 1.5e-4
    """Adam learning rate (annealed linearly to 0 when ``anneal_lr``)."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over the run's updates."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 0.95
    """GAE λ."""
    clip: float = 0.1
    """PPO ratio clip."""
    clip_value: bool = True
    """Clip the value loss like the ratio."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus (0: none)."""
    value_coef: float = 0.5
    """Weight of the value loss (0: the value head is not trained)."""
    max_grad_norm: float = 0.5
    """Gradients are clipped to this global norm."""
    epochs: int = 3
    """Passes over each rollout."""
    rollout_steps: int = 32768
    """Live agent-steps learned from per update (dead agents are never samples)."""
    minibatch_steps: int = 128
    """Live agent-steps per minibatch: ``rollout_steps // minibatch_steps`` minibatches of
    ``minibatch_steps // bptt`` sequences (the 2023 trainers: 16 sequences × bptt 8 = 128)."""
    bptt: int = 8
    """Sequence length: consecutive live steps of one agent (truncated BPTT for recurrent
    models; for the others it only groups samples into minibatches, as in 2023)."""
    stored_state: bool = False
    """Recurrent models only: True re-runs every step from the state stored with it in the
    rollout (no gradient through time; Yao Feng's trainer), False runs truncated BPTT over
    each sequence from the state stored at its first step."""
    shuffle_minibatches: bool = False
    """False: the 2023 trainers' fixed partition (sequence s in minibatch s mod n, same every
    epoch); True: a fresh random partition each epoch."""
    normalize_advantages: bool = True
    """Normalise advantages within each minibatch over its live steps (2023)."""
    collector_workers: int = 0
    """0: collect in the training process; N ≥ 2: a TorchRL ``MultiSyncCollector`` over N
    worker processes, each running num_maps / N maps (CPU envs)."""
    total_steps: int = 10_000_000
    """Live agent-steps of the whole run (at least: whole updates, the last one may pass it)."""

    def __post_init__(self):
        for k, (lo, hi, what) in RANGES.items():
            v = getattr(self, k)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"ppo.{k} must be {what}, got {v!r}")
            if (lo is not None and (v <= lo[0] if lo[1] else v < lo[0])) or (hi is not None and v > hi):
                raise ValueError(f"ppo.{k} must be {what}, got {v!r}")
        if self.minibatch_steps > self.rollout_steps:
            raise ValueError(f"ppo.minibatch_steps ({self.minibatch_steps}) must not exceed "
                             f"ppo.rollout_steps ({self.rollout_steps})")


# field: ((bound, exclusive) or None, upper bound or None, the rule in words)
RANGES: dict[str, tuple] = {
    "lr": ((0, True), None, "> 0"), "clip": ((0, True), None, "> 0"),
    "max_grad_norm": ((0, True), None, "> 0"),
    "gamma": ((0, False), 1, "in [0, 1]"), "gae_lambda": ((0, False), 1, "in [0, 1]"),
    "entropy_coef": ((0, False), None, "≥ 0"), "value_coef": ((0, False), None, "≥ 0"),
    **{k: ((1, False), None, "≥ 1") for k in ("epochs", "rollout_steps", "minibatch_steps", "bptt",
                                                "total_steps")},
    "collector_workers": ((0, False), None, "≥ 0"),
}


def _check_section(recipe: dict, key: str, kind: type, path: str) -> None:
    if key in recipe and not isinstance(recipe[key], kind):
        raise SpecError(f"{path}: '{key}' must be a {kind.__name__}")


def _read(source: str | Path | Mapping) -> tuple[DictConfig, str, Path | None]:
    """(the recipe as an OmegaConf config, its name in messages, its file or None)."""
    if isinstance(source, Mapping):  # a copy: overrides never reach the caller's dict
        try:
            return OmegaConf.create(source), "recipe", None
        except OmegaConfBaseException as e:
            raise SpecError(f"recipe: {_first_line(e)}") from None
    p = Path(source)
    if not p.exists() and str(source) in _shipped():
        p = _shipped()[str(source)]
    if not p.exists():
        raise SpecError(f"recipe {str(source)!r} not found (a path, or one of {list_recipes()})")
    if not p.is_file():
        raise SpecError(f"recipe {str(source)!r} is not a file (a recipe is one YAML file)")
    try:
        cfg = OmegaConf.load(p)  # YAML as OmegaConf reads it (1e-4 is a number; no duplicate keys)
    except yaml.YAMLError as e:
        raise SpecError(f"{p}: not valid YAML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:  # unreadable, or YAML that is not a mapping or list
        raise SpecError(f"{p}: not a readable recipe (a YAML mapping): {e}") from None
    if not isinstance(cfg, DictConfig):
        raise SpecError(f"{p.name}: a recipe is a mapping")
    return cfg, p.name, p


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _override(cfg: DictConfig, overrides: Mapping[str, Any] | Sequence[str], path: str) -> None:
    """Apply dotted overrides: ``{"ppo.lr": 1e-4}`` or ``["ppo.lr=1e-4"]`` (values read as
    YAML by ``OmegaConf.from_dotlist``); each replaces the value at its key, whole sections
    included (``{"ppo": {...}}`` is the new ppo section, not merged into the old one)."""
    if isinstance(overrides, str):
        overrides = [overrides]
    if not isinstance(overrides, Mapping):
        items = []
        for item in overrides:
            key, eq, _ = str(item).partition("=")
            if not eq or not key.strip():
                raise SpecError(f"{path}: override {item!r}: expected key=value")
            try:
                value = OmegaConf.select(OmegaConf.from_dotlist([str(item)]), key.strip())
            except (OmegaConfBaseException, yaml.YAMLError) as e:
                raise SpecError(f"{path}: override {item!r}: {_first_line(e)}") from None
            if isinstance(value, (DictConfig, ListConfig)):
                value = OmegaConf.to_container(value)
            items.append((key.strip(), value))
    else:
        items = list(overrides.items())
    for k, v in items:
        node: Any = cfg
        for part in k.split(".")[:-1]:  # OmegaConf.update would replace a value on the way
            node = node.get(part) if isinstance(node, DictConfig) else None
            if node is None:
                break
            if not isinstance(node, DictConfig):
                raise SpecError(f"{path}: override {k!r}: {part!r} is not a mapping")
        try:
            OmegaConf.update(cfg, k, v, merge=False)
        except OmegaConfBaseException as e:
            raise SpecError(f"{path}: override {k!r}: {_first_line(e)}") from None


def load_recipe(source: str | Path | Mapping, overrides: Mapping[str, Any] | Sequence[str] | None = None
                ) -> dict:
    """A validated recipe, as a plain dict, from a name (``recipes/<name>.yaml``), a path or a
    dict. It is read, overridden and resolved through OmegaConf: ``overrides`` use dotted
    keys, as a mapping (``{"ppo.lr": 1e-4}``) or ``key=value`` strings (``["ppo.lr=1e-4"]``);
    a value may interpolate another (``rollout_steps: ${ppo.minibatch_steps}``, resolved after
    the overrides). The ``ppo`` section comes back typed (``PPOConfig``'s field types)."""
    cfg, path, p = _read(source)
    if overrides:
        _override(cfg, overrides, path)
    try:
        recipe = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:  # an interpolation that does not resolve
        where = f"{e.full_key}: " if getattr(e, "full_key", None) else ""
        raise SpecError(f"{path}: {where}{_first_line(e)}") from None
    unknown = set(recipe) - set(SECTIONS)
    if unknown:
        raise SpecError(f"{path}: unknown section(s) {sorted(unknown)}; sections: {list(SECTIONS)}")
    if "model" not in recipe:
        raise SpecError(f"{path}: missing 'model'")
    _check_section(recipe, "env", dict, path)
    _check_section(recipe, "rewards", list, path)
    _check_section(recipe, "ppo", dict, path)
    _check_section(recipe, "trainer", dict, path)
    recipe["_path"] = path
    recipe["_dir"] = None if p is None else str(p.parent)
    cfg = ppo_config(recipe)  # types and ranges, with the recipe's name
    if recipe.get("ppo"):
        recipe["ppo"] = {k: getattr(cfg, k) for k in recipe["ppo"]}
    return recipe


def ppo_config(recipe: dict) -> PPOConfig:
    """The recipe's PPO settings, merged onto ``PPOConfig``'s OmegaConf structured config
    (types; ``"2"`` for an integer is 2, a bool takes only true or false), then range-checked
    by ``PPOConfig.__post_init__``: a bad key or value is a :class:`SpecError` naming the
    recipe, the field and the value."""
    path = recipe.get("_path", "recipe")
    try:
        return _typed.instance(PPOConfig, recipe.get("ppo") or {})
    except _typed.UnknownFieldsError as e:
        bad = ", ".join(f"ppo.{k}" for k in e.unknown)
        verb = "is not a PPO setting" if len(e.unknown) == 1 else "are not PPO settings"
        raise SpecError(f"{path}: {bad} {verb}; known: {e.known}") from None
    except _typed.FieldTypeError as e:
        raise SpecError(f"{path}: ppo.{e.key} expected {_typed.type_name(e.annotation)}, "
                        f"got {e.value!r}") from None
    except ValueError as e:
        raise SpecError(f"{path}: {e}") from None


def ppo_fields_help() -> list[tuple[str, Any, str]]:
    """(name, default, doc) of every PPO setting, the docs read from ``PPOConfig``'s source."""
    import ast
    import inspect
    import itertools
    import textwrap

    docs: dict[str, str] = {}
    try:
        body = ast.parse(textwrap.dedent(inspect.getsource(PPOConfig))).body[0].body
        for a, b in itertools.pairwise(body):
            if (isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr)
                    and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)):
                docs[a.target.id] = " ".join(b.value.value.split())
    except (OSError, TypeError, SyntaxError):  # no source (a frozen install): names and defaults
        pass
    return [(f.name, f.default, docs.get(f.name, "")) for f in dataclasses.fields(PPOConfig)]


def make_recipe_env(recipe: dict, **env_overrides: Any):
    """The recipe's env (``env`` section, then ``env_overrides``) with its reward shaping."""
    env_cfg = dict(recipe.get("env") or {})
    env_cfg.update(env_overrides)
    preset = env_cfg.pop("preset", "competition2023")
    num_maps = env_cfg.pop("num_maps", 8)
    device = env_cfg.pop("device", "cpu")
    seed = env_cfg.pop("seed", 0)
    obs_mode = env_cfg.pop("obs_mode", "dense")
    workers = env_cfg.pop("workers", 1)
    last_price = env_cfg.pop("mask_last_sell_price", False)
    if not isinstance(last_price, bool):
        raise SpecError(f"{recipe.get('_path', 'recipe')}: env.mask_last_sell_price: expected true or "
                        f"false, got {last_price!r}")
    tasks = env_cfg.get("tasks")
    if (isinstance(tasks, str) and tasks not in ("curriculum", "heldout", "none")
            and not Path(tasks).exists() and recipe.get("_dir")
            and (Path(recipe["_dir"]) / tasks).exists()):  # a task file beside the recipe
        env_cfg["tasks"] = str(Path(recipe["_dir"]) / tasks)
    try:
        env = make_env(preset, num_maps=num_maps, device=device, seed=seed, obs_mode=obs_mode,
                       workers=workers, **env_cfg)
    except (ConfigError, ValueError) as e:  # a bad env field, task file or value type
        raise SpecError(f"{recipe.get('_path', 'recipe')}: env: {e}") from None
    env = TransformedEnv(env, RewardShaping(recipe.get("rewards") or [],
                                            f"{recipe.get('_path', 'recipe')}.rewards"))
    if last_price:  # the 2023 training wrappers' quirk (nmmozoo.transforms)
        from .transforms import LastSellPriceMask

        env.append_transform(LastSellPriceMask())
    return env


def make_recipe_policy(recipe: dict, env):
    model = recipe["model"]
    base = env.base_env if isinstance(env, TransformedEnv) else env
    if isinstance(model, dict) and "name" in model and len(model) > 1 and "encoders" not in model:
        name = model["name"]
        overrides = {k: v for k, v in model.items() if k != "name"}
        return create_policy(name, env=base, **overrides)
    return create_policy(model if not isinstance(model, dict) or "encoders" in model
                         else model["name"], env=base)
