"""One registry idiom for every kind of component (encoder, pooler, fusion, memory, decoder,
value, restriction, reward term, model).

    @register("encoder", "tile_embed_cnn")
    class TileEmbedCNN(nn.Module):
        def __init__(self, hidden: int, embed_dim: int = 32): ...

A YAML node names a component by its short name plus keyword arguments
(``{name: tile_embed_cnn, embed_dim: 32}``); :func:`build` rejects an unknown name, a missing
or unknown argument, or a value of the wrong type with a :class:`SpecError` naming the YAML path
and what was expected. Argument types are read from the factory's annotations and checked by
the same OmegaConf structured-config check as the env and PPO settings (``nmmozoo._typed``).
Arguments the builder supplies itself (``context``: hidden size, observation sizes) are not
written in YAML.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from .._typed import FieldTypeError, checked_arguments, type_name

KINDS = ("tile", "entity", "item", "pool", "task", "fusion", "memory", "decoder", "value",
         "restriction", "reward", "model")


class SpecError(ValueError):
    """A bad model spec or recipe entry; the message names the YAML path."""


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    factory: Callable
    doc: str


REGISTRY: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}


def register(kind: str, name: str):
    if kind not in REGISTRY:
        raise ValueError(f"unknown component kind {kind!r}; kinds: {KINDS}")

    def deco(obj):
        if name in REGISTRY[kind]:
            raise ValueError(f"{kind} {name!r} is registered twice")
        doc = (inspect.getdoc(obj) or "").split("\n\n")[0].replace("\n", " ")
        REGISTRY[kind][name] = Entry(kind, name, obj, doc)
        return obj

    return deco


def list_components(kind: str | None = None) -> dict[str, list[str]]:
    kinds = [kind] if kind else list(KINDS)
    return {k: sorted(REGISTRY[k]) for k in kinds}


def build(kind: str, node: Any, path: str, context: dict[str, Any] | None = None):
    """Build the component that ``node`` (``{name: ..., **kwargs}`` or a bare name) describes."""
    context = context or {}
    if isinstance(node, str):
        node = {"name": node}
    if not isinstance(node, dict) or "name" not in node:
        raise SpecError(f"{path}: expected a mapping with 'name' (a registered {kind})")
    name = node["name"]
    if not isinstance(name, str) or name not in REGISTRY[kind]:
        raise SpecError(f"{path}.name: unknown {kind} {name!r}; registered: {sorted(REGISTRY[kind])}")
    entry = REGISTRY[kind][name]
    kwargs = {k: v for k, v in node.items() if k != "name"}
    sig = inspect.signature(entry.factory)
    params = {n: p for n, p in sig.parameters.items() if n != "self"
              and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    unknown = set(kwargs) - set(params)
    if unknown:
        allowed = sorted(set(params) - set(context))
        raise SpecError(f"{path}: unknown argument(s) {sorted(unknown)} for {kind} {name!r}; "
                        f"expected some of {allowed}")
    supplied = set(kwargs) & set(context)
    if supplied:
        raise SpecError(f"{path}: {sorted(supplied)} is set by the model, not in the spec")
    try:  # the argument types, checked (and converted) as every typed setting is
        kwargs = checked_arguments(entry.factory, kwargs)
    except FieldTypeError as e:
        raise SpecError(f"{path}.{e.key}: expected {type_name(e.annotation)}, got {e.value!r}") from None
    args = {}
    for pname, p in params.items():
        if pname in kwargs:
            args[pname] = kwargs[pname]
        elif pname in context:
            args[pname] = context[pname]
        elif p.default is inspect._empty:
            raise SpecError(f"{path}: missing argument {pname!r} for {kind} {name!r}")
    try:
        return entry.factory(**args)
    except SpecError as e:  # a component's own check: say where in the spec it was
        raise SpecError(f"{path}: {e}") from None
