"""Typed settings from data, checked in one place: values are merged onto an OmegaConf
structured config made from a dataclass (``EnvConfig``, ``PPOConfig``, or one made from a
registered component's signature), which checks each value against its field's type and
converts it. Range rules are not types: each dataclass keeps them in its ``__post_init__``.

OmegaConf's conversions are kept where they keep the value's meaning (``"2"`` → 2, ``"1e-4"``
→ 0.0001, 1 → 1.0, a list → a tuple for a tuple field); two are refused, because they invent a
value: a bool field takes only true or false (OmegaConf reads 2 or ``"yes"`` as True) and a
string field only a string (OmegaConf would turn 3 into ``"3"``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class FieldTypeError(ValueError):
    """A value that does not fit the type of its field (``key``, ``value``, ``annotation``)."""

    def __init__(self, key: str, value: Any, annotation: Any):
        self.key, self.value, self.annotation = key, value, annotation
        super().__init__(f"{key}: expected {type_name(annotation)}, got {value!r}")


class UnknownFieldsError(KeyError):
    """Keys the dataclass does not have (``unknown``, sorted), and the ones it has (``known``)."""

    def __init__(self, unknown: list[str], known: list[str]):
        self.unknown, self.known = unknown, known
        super().__init__(f"unknown field(s) {unknown}; known: {known}")


def type_name(annotation: Any) -> str:
    """``int``, ``list[int]``, ``int | None``: the annotation as written."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _union_args(annotation: Any) -> tuple:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(annotation)
    return ()


@functools.cache
def _schema(cls: type) -> tuple[DictConfig, dict[str, Any]]:
    hints = typing.get_type_hints(cls)
    return OmegaConf.structured(cls), {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _invented(value: Any, annotation: Any) -> bool:
    """True where OmegaConf would make a bool or a string out of something else."""
    args = _union_args(annotation)
    if args and value is None and type(None) in args:
        return False
    plain = [a for a in args if a is not type(None)] if args else [annotation]
    if len(plain) != 1:
        return False
    return ((plain[0] is bool and not isinstance(value, bool))
            or (plain[0] is str and not isinstance(value, str)))


def merge(cls: type, *layers: Mapping[str, Any]) -> DictConfig:
    """The structured config of dataclass ``cls`` with ``layers`` merged on it in order (a later
    layer's key replaces an earlier one's): an unknown key is an :class:`UnknownFieldsError`
    naming them all, a value that does not fit its field a :class:`FieldTypeError`."""
    schema, hints = _schema(cls)
    unknown = sorted({str(k) for layer in layers for k in layer} - set(hints))
    if unknown:
        raise UnknownFieldsError(unknown, sorted(hints))
    for layer in layers:
        for k, v in layer.items():
            if _invented(v, hints[k]):
                raise FieldTypeError(k, v, hints[k])
    try:
        return OmegaConf.merge(schema, *layers)
    except OmegaConfBaseException:
        pass
    for layer in layers:  # say which key: try them one at a time
        for k, v in layer.items():
            try:
                OmegaConf.merge(schema, {k: v})
            except OmegaConfBaseException:
                raise FieldTypeError(k, v, hints[k]) from None
    raise AssertionError("unreachable: the layers merged one at a time")  # pragma: no cover


def instance(cls: type, *layers: Mapping[str, Any]):
    """``cls(**defaults, **layers...)``, its values typed by :func:`merge` (its
    ``__post_init__`` then checks the ranges)."""
    return OmegaConf.to_object(merge(cls, *layers))


def _checkable(annotation: Any) -> bool:
    """Annotations an OmegaConf structured config holds (others are not checked)."""
    if annotation in (int, float, bool, str, list, dict, tuple):
        return True
    args = _union_args(annotation)
    if args:
        return all(a is type(None) or a in (int, float, bool, str) for a in args)
    if typing.get_origin(annotation) in (list, tuple, dict):
        return all(a is Ellipsis or a in (int, float, bool, str) for a in typing.get_args(annotation))
    return False


@functools.cache
def signature_schema(factory: Any) -> type | None:
    """A dataclass with one field per typed keyword argument of ``factory`` (a class or a
    function), for :func:`checked_arguments`; None when it has none."""
    hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    fields = []
    for name, p in inspect.signature(factory).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = hints.get(name, p.annotation)
        if _checkable(ann):
            fields.append((name, ann))
    if not fields:
        return None
    return dataclasses.make_dataclass(f"{getattr(factory, '__name__', 'factory')}_arguments", fields)


def checked_arguments(factory: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` checked against ``factory``'s annotations and converted; arguments without a
    checkable annotation pass unchanged. A bad one is a :class:`FieldTypeError`."""
    cls = signature_schema(factory)
    if cls is None:
        return dict(kwargs)
    typed_keys = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in kwargs.items() if k in typed_keys}
    if not given:
        return dict(kwargs)
    merged = OmegaConf.to_container(merge(cls, given))
    return {k: merged[k] if k in given else v for k, v in kwargs.items()}
