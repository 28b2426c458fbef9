"""Task specs: a predicate (or an AND / OR of up to four, each optionally negated) with
arguments, a reward kind, a sampling weight and tags. Specs are data: Python or YAML.

    from nmmozoo.tasks import TaskSpec, task
    harvest = task("HarvestItem", item="Arrow", level=3, quantity=20, tags=["item"])
    both = task.all_of(task("CountEvent", event="EAT_FOOD", N=10),
                       task("CountEvent", event="DRINK_WATER", N=10))          # AND

YAML (a list of these, see ``docs/tasks.md``)::

    - predicate: HarvestItem
      args: {item: Arrow, level: 3, quantity: 20}
      reward: progress          # progress (default) | ongoing | hold
      weight: 1.0
      tags: [item]
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .predicates import PredicateError

REWARD_KINDS = ("progress", "ongoing", "hold")
SUBJECTS = ("agent", "team")
MAX_CLAUSES = 4


class TaskError(ValueError):
    """A bad task spec; the message names the task and the field."""


@dataclass(frozen=True)
class Clause:
    predicate: str
    args: tuple[tuple[str, Any], ...] = ()
    negate: bool = False

    def text(self) -> str:
        a = ", ".join(f"{k}={v}" for k, v in self.args)
        return f"{'NOT ' if self.negate else ''}{self.predicate}({a})"


@dataclass(frozen=True)
class TaskSpec:
    """One task. ``reward``: ``progress`` pays each increase of progress (at most 1 in all);
    ``ongoing`` pays the progress every tick; ``hold`` pays 1 once the predicate has held for
    ``hold_ticks`` ticks in a row. ``subject`` ``team`` evaluates over the agent's team."""

    clauses: tuple[Clause, ...]
    combine: str = "and"
    subject: str = "agent"
    reward: str = "progress"
    hold_ticks: int = 0
    weight: float = 1.0
    tags: tuple[str, ...] = ()
    category: str | None = None
    name: str | None = None

    @property
    def group(self) -> str:
        """What metrics group the task under: its ``category``, else its first tag."""
        return self.category or (self.tags[0] if self.tags else "other")

    def text(self) -> str:
        """Canonical source of the task (what is embedded and what names it)."""
        body = f" {self.combine.upper()} ".join(c.text() for c in self.clauses)
        extra = []
        if self.subject != "agent":
            extra.append(f"subject={self.subject}")
        if self.reward != "progress":
            extra.append(f"reward={self.reward}" + (f"({self.hold_ticks})" if self.reward == "hold" else ""))
        return body + (f" [{', '.join(extra)}]" if extra else "")

    def with_(self, **kw) -> "TaskSpec":
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d.update(kw)
        return TaskSpec(**d)


def _clause(predicate: str, args: dict[str, Any], negate: bool = False) -> Clause:
    from .predicates import PREDICATES, resolve_args

    if not isinstance(predicate, str) or predicate not in PREDICATES:
        raise TaskError(f"unknown predicate {predicate!r}; known: {sorted(PREDICATES)}")
    resolve_args(predicate, args)  # validates names and values now
    return Clause(predicate, tuple(sorted(args.items())), negate)


def _spec(clauses, combine="and", subject="agent", reward="progress", hold_ticks=0, weight=1.0,
          tags=(), category=None, name=None) -> TaskSpec:
    where = name if isinstance(name, str) and name else "task"
    if combine not in ("and", "or"):
        raise TaskError(f"{where}: combine must be 'and' or 'or', got {combine!r}")
    if subject not in SUBJECTS:
        raise TaskError(f"{where}: subject must be one of {SUBJECTS}, got {subject!r}")
    if reward not in REWARD_KINDS:
        raise TaskError(f"{where}: reward must be one of {REWARD_KINDS}, got {reward!r}")
    if not isinstance(hold_ticks, int) or isinstance(hold_ticks, bool) or hold_ticks < 0:
        raise TaskError(f"{where}: hold_ticks must be an integer ≥ 0, got {hold_ticks!r}")
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
        raise TaskError(f"{where}: tags must be a list of strings, got {tags!r}")
    if reward == "hold" and hold_ticks < 1:
        raise TaskError(f"{where}: reward 'hold' needs hold_ticks ≥ 1")
    if not 1 <= len(clauses) <= MAX_CLAUSES:
        raise TaskError(f"{where}: a task has 1..{MAX_CLAUSES} predicates, got {len(clauses)}")
    if not (isinstance(weight, (int, float)) and not isinstance(weight, bool)
            and math.isfinite(weight) and weight >= 0):
        raise TaskError(f"{where}: weight must be a finite number ≥ 0, got {weight!r}")
    for key, value in (("category", category), ("name", name)):
        if value is not None and not isinstance(value, str):
            raise TaskError(f"{where}: {key} must be a string, got {value!r}")
    return TaskSpec(tuple(clauses), combine, subject, reward, int(hold_ticks), float(weight),
                    tuple(tags), category, name)


class _TaskBuilder:
    """``task(predicate, **args)`` and the combinators ``task.all_of`` / ``any_of`` / ``negate``."""

    def __call__(self, predicate: str, *, reward="progress", hold_ticks=0, weight=1.0, tags=(),
                 category=None, subject="agent", name=None, **args) -> TaskSpec:
        return _spec([_clause(predicate, args)], reward=reward, hold_ticks=hold_ticks, weight=weight,
                     tags=tags, category=category, subject=subject, name=name)

    @staticmethod
    def _join(specs: Iterable[TaskSpec], combine: str, **kw) -> TaskSpec:
        specs = list(specs)
        if not specs:
            raise TaskError(f"{'all_of' if combine == 'and' else 'any_of'} needs at least one task")
        clauses = []
        for sp in specs:
            if len(sp.clauses) > 1 and sp.combine != combine:
                raise TaskError("nesting AND inside OR (or the reverse) is not supported: "
                                "a task is one AND or one OR of predicates")
            clauses.extend(sp.clauses)
        first = specs[0]
        kw = {"subject": first.subject, "reward": first.reward, "hold_ticks": first.hold_ticks,
              "weight": first.weight, "tags": first.tags, "category": first.category, **kw}
        return _spec(clauses, combine=combine, **kw)

    def all_of(self, *specs: TaskSpec, **kw) -> TaskSpec:
        return self._join(specs, "and", **kw)

    def any_of(self, *specs: TaskSpec, **kw) -> TaskSpec:
        return self._join(specs, "or", **kw)

    @staticmethod
    def negate(spec: TaskSpec) -> TaskSpec:
        if len(spec.clauses) != 1:
            raise TaskError("NOT applies to a single predicate")
        c = spec.clauses[0]
        return spec.with_(clauses=(Clause(c.predicate, c.args, not c.negate),))


task = _TaskBuilder()


def from_dict(d: dict[str, Any], where: str = "task") -> TaskSpec:
    """A spec from its YAML/JSON form; errors name ``where`` and the field."""
    if not isinstance(d, dict):
        raise TaskError(f"{where}: expected a mapping, got {type(d).__name__}")
    known = {"predicate", "args", "not", "all_of", "any_of", "reward", "hold_ticks", "weight",
             "tags", "category", "subject", "name"}
    unknown = set(d) - known
    if unknown:
        raise TaskError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    meta = {k: d[k] for k in ("reward", "hold_ticks", "weight", "tags", "category", "subject", "name")
            if k in d}
    for key in ("name", "category"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise TaskError(f"{where}: {key} must be a string, got {meta[key]!r}")
    meta["name"] = meta.get("name") or where
    if "not" in d and not isinstance(d["not"], bool):
        raise TaskError(f"{where}.not: expected true or false, got {d['not']!r}")
    kinds = [k for k in ("predicate", "all_of", "any_of") if k in d]
    if len(kinds) > 1:
        raise TaskError(f"{where}: give one of 'predicate', 'all_of', 'any_of', not {kinds}")
    try:
        if kinds and kinds[0] != "predicate":
            key = kinds[0]
            if not isinstance(d[key], list) or not d[key]:
                raise TaskError(f"{where}.{key}: expected a non-empty list of tasks")
            if "not" in d or "args" in d:
                raise TaskError(f"{where}: 'not' and 'args' belong to each predicate of '{key}', "
                                "not to the combination")
            parts = [from_dict(x, f"{where}.{key}[{i}]") for i, x in enumerate(d[key])]
            defaults = {"subject": "agent", "reward": "progress", "hold_ticks": 0, "weight": 1.0,
                        "tags": (), "category": None}
            # the builder's combinator: the same nesting rule as in Python
            return getattr(task, key)(*parts, **{**defaults, **meta})
        if "predicate" not in d:
            raise TaskError(f"{where}: needs 'predicate' (or 'all_of' / 'any_of')")
        args = d.get("args", {}) or {}
        if not isinstance(args, dict):
            raise TaskError(f"{where}.args: expected a mapping")
        return _spec([_clause(d["predicate"], dict(args), bool(d.get("not", False)))], **meta)
    except (TaskError, PredicateError) as e:  # the same kind of error, naming the entry
        msg = str(e)
        raise type(e)(msg if msg.startswith(where) else f"{where}: {msg}") from None


def to_dict(spec: TaskSpec) -> dict[str, Any]:
    def clause(c: Clause) -> dict[str, Any]:
        out: dict[str, Any] = {"predicate": c.predicate, "args": dict(c.args)}
        if c.negate:
            out["not"] = True
        return out

    d: dict[str, Any] = (clause(spec.clauses[0]) if len(spec.clauses) == 1 else
                         {("all_of" if spec.combine == "and" else "any_of"): [clause(c) for c in spec.clauses]})
    for k in ("reward", "hold_ticks", "weight", "tags", "category", "subject", "name"):
        v = getattr(spec, k)
        default = TaskSpec.__dataclass_fields__[k].default
        if v != default and v not in ((), None):
            d[k] = list(v) if isinstance(v, tuple) else v
    return d


def load_tasks(path: str | Path) -> list[TaskSpec]:
    """Load a task file (YAML or JSON: a list of task mappings)."""
    path = Path(path)
    if not path.exists():
        raise TaskError(f"task file {str(path)!r} does not exist")
    if not path.is_file():
        raise TaskError(f"task file {str(path)!r} is not a file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise TaskError(f"task file {str(path)!r} is not readable text ({e})") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 - any parse error becomes one clear message
        raise TaskError(f"task file {str(path)!r} does not parse: {e}") from None
    if not isinstance(data, list) or not data:
        raise TaskError(f"task file {str(path)!r}: expected a non-empty list of tasks")
    return [from_dict(d, f"{path.name}[{i}]") for i, d in enumerate(data)]
