"""Saving and restoring an env's complete state, for exact resume from a checkpoint.

:func:`env_state` takes the state of a bare :class:`~nmmozoo.env.NMMOEnv` or of a TorchRL
``TransformedEnv`` over one (as ``make_recipe_env`` and the trainer's ``make_train_env`` build
it): the base env's (:meth:`NMMOEnv.state_dict`: the world's tensors, every random generator,
the task engine, episode counters) and every transform's (``transform.state_dict()``: the
reward shaping's previous observation and per-agent memories, the last sell prices, ...).
Optionally also the *carry*: the tensordict the caller feeds to the next step (the last
output after ``step_and_maybe_reset``), which holds what TorchRL transforms keep in the data
rather than in themselves (``RewardSum``'s episode return, a recurrent policy's state).

The result is a dict of CPU tensors and plain Python values: ``torch.save`` it (or put it in a
Lightning checkpoint) and read it back with ``torch.load(..., weights_only=True)``.
:func:`load_env_state` restores it into a freshly built env of the same recipe (config,
number of maps, obs mode, workers, transforms; the seed does not matter, the generators'
states are restored) and returns the carry; anything that does not fit is an
:class:`EnvStateError` naming it.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase

from .state import EnvStateError

FORMAT = 1

__all__ = [
    "EnvStateError",
    "env_state",
    "load_env_state",
    "td_from_state",
    "td_to_state",
    "transform_device",
]


def td_to_state(td: TensorDictBase) -> dict:
    """A tensordict as plain data: ``{"tensors": {"a/b": tensor}, "batch_dims": {"": 1,
    "a": 2}}`` (CPU copies; keys joined with ``/``; the batch dims of each sub-tensordict)."""
    tensors, dims = {}, {"": td.batch_dims}
    for key, value in td.items(include_nested=True, leaves_only=False):
        name = "/".join((key,) if isinstance(key, str) else key)
        if isinstance(value, TensorDictBase):
            dims[name] = value.batch_dims
        elif torch.is_tensor(value):
            tensors[name] = value.detach().to("cpu", copy=True)
        else:  # a non-tensor entry: not state we know how to save
            raise EnvStateError(f"cannot save entry {name!r} of a tensordict: {type(value).__name__}")
    return {"tensors": tensors, "batch_dims": dims}


def td_from_state(state: dict, device=None) -> TensorDict:
    """The tensordict of :func:`td_to_state`, on ``device`` (default: as saved, the CPU)."""
    tensors, dims = state["tensors"], state["batch_dims"]

    def shape(prefix: str, ndim: int, default: torch.Size) -> torch.Size:
        leaf = next((t for k, t in tensors.items() if not prefix or k.startswith(prefix + "/")), None)
        return leaf.shape[:ndim] if leaf is not None else default[:ndim]

    root = TensorDict({}, batch_size=shape("", dims[""], torch.Size()), device=device)
    for name in sorted((n for n in dims if n), key=lambda n: n.count("/")):  # parents first
        key = tuple(name.split("/"))
        parent = root.get(key[:-1]) if len(key) > 1 else root
        root.set(key, TensorDict({}, batch_size=shape(name, dims[name], parent.batch_size),
                                 device=device))
    for name, t in tensors.items():
        root.set(tuple(name.split("/")), t if device is None else t.to(device))
    return root


def transform_device(transform):
    """The device of a transform's env (None when it has none yet)."""
    try:
        parent = transform.parent
    except AttributeError:
        return None
    return None if parent is None else parent.device


def _split(env):
    from torchrl.envs import TransformedEnv

    from .torchrl_env import NMMOEnv

    base = env.base_env if isinstance(env, TransformedEnv) else env
    if not isinstance(base, NMMOEnv):
        raise TypeError(f"env_state takes an NMMOEnv or a TransformedEnv over one, got "
                        f"{type(env).__name__} over {type(base).__name__}")
    return base, (env.transform if isinstance(env, TransformedEnv) else None)


def _transform_names(transform) -> list[str]:
    """``path:ClassName`` of every transform of the env (nested Composes included)."""
    from torchrl.envs import Transform

    if transform is None:
        return []
    return [f"{name}:{type(m).__name__}" for name, m in transform.named_modules()
            if isinstance(m, Transform)]


def env_state(env, carry: TensorDictBase | None = None) -> dict:
    """The complete state of ``env`` (an :class:`NMMOEnv` or a ``TransformedEnv`` over one)
    and, if given, of ``carry`` (the tensordict the next step will be fed).

    Returns ``{"format": 1, "env": <NMMOEnv.state_dict()>, "transforms": <transform
    state_dict, {} for a bare env>, "transform_names": ["path:Class", ...], "carry":
    <td_to_state(carry)> or None}``: CPU tensors and plain Python values only."""
    base, transform = _split(env)
    out = {"format": FORMAT, "env": base.state_dict(), "transforms": {},
           "transform_names": _transform_names(transform), "carry": None}
    if transform is not None:
        out["transforms"] = {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else v
                             for k, v in transform.state_dict().items()}
    if carry is not None:
        out["carry"] = td_to_state(carry)
    return out


def load_env_state(env, state: dict) -> TensorDict | None:
    """Restore :func:`env_state` into ``env`` (built as the saved one was: same recipe and
    env settings; any seed). Returns the saved carry on the env's device (feed it to the next
    ``step_and_maybe_reset`` after writing the actions), or None if none was saved."""
    base, transform = _split(env)
    if not isinstance(state, dict) or state.get("format") != FORMAT or "env" not in state:
        raise EnvStateError(f"not an env state of format {FORMAT} (from nmmozoo.env.env_state): "
                            f"got {type(state).__name__}"
                            + (f" of format {state.get('format')!r}" if isinstance(state, dict) else ""))
    names = _transform_names(transform)
    saved = list(state.get("transform_names") or [])
    if saved != names:
        extra = [n for n in saved if n not in names]
        lacking = [n for n in names if n not in saved]
        raise EnvStateError(f"the env state was saved with other transforms: saved {saved}, this env "
                            f"has {names} (not here: {extra}; not saved: {lacking})")
    # Check the transforms' own states before anything is changed.
    for name, m in (transform.named_modules() if transform is not None else []):
        check = getattr(m, "check_extra_state", None)
        key = (name + "." if name else "") + "_extra_state"
        if check is not None and key in state["transforms"]:
            check(state["transforms"][key])
    base.load_state_dict(state["env"])
    if transform is not None:
        try:
            transform.load_state_dict(state["transforms"], strict=True)
        except RuntimeError as e:  # missing / unexpected keys, sizes
            raise EnvStateError(f"the env state's transforms do not fit this env's: {e}") from None
    carry = state.get("carry")
    return None if carry is None else td_from_state(carry, base.device)
