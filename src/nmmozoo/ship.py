"""Shipping a trained policy into the zoo: ``nmmozoo ship RUN_DIR --name NAME``.

A finished fit's export (``<run_dir>/policy.safetensors``) is copied to
``checkpoints/<name>.safetensors`` and its entry written to ``checkpoints/index.yaml``: the
file's sha256, the recipe and model, the live agent-steps it learned from, the commit(s) and
hardware that trained it (``run_info.json``), the time its updates and validations took
(its CSV logs), its last validation score, and, given ``--report``, its ``nmmozoo test`` score
with the 95% interval over seeds. Every file is written whole or not at all. A checkpoint
is committed once: shipping other weights under a name that has a file is refused unless
``replace`` is asked for.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ._files import atomic_write
from .hub import HubError, load_pretrained, sha256_of

MAX_BYTES = 30 * 2**20
HEADER = ("# Pretrained checkpoints: name -> {file (beside this index) | url, sha256, recipe, ...}.\n"
          "# Written by `nmmozoo ship RUN_DIR --name NAME` (docs/zoo.md#pretrained-checkpoints).\n")


class ShipError(ValueError):
    """A run that cannot be shipped as asked; the message says which file or field and why."""


def checkpoints_dir() -> Path:
    """The package's ``checkpoints/`` folder (the repository's own in an editable install)."""
    return Path(str(resources.files("nmmozoo.checkpoints")))


def run_summary(run_dir: str | Path) -> dict[str, Any]:
    """What a fit's logs say of it: live agent-steps, updates, the seconds its updates and
    validations took (an update's logged ``train/wall_s``; from logs older than that, its live
    agent-steps over its agent-steps/s), the last validation; and ``cpu_s``, the process CPU
    seconds of the updates and validations that logged them (``cpu_updates`` of the
    ``updates``), where any did: core time, which pauses and a crowded machine do not inflate."""
    from .report import X_KEY, ReportError, read_metrics

    try:
        rows = read_metrics(run_dir)
    except ReportError as e:
        raise ShipError(str(e)) from None
    steps, prev, update_s, val_s, cpu_s, cpu_updates = 0.0, 0.0, 0.0, 0.0, 0.0, 0
    last_val = None
    for r in rows:
        steps = r[X_KEY]
        if r.get("train/wall_s"):
            update_s += r["train/wall_s"]
        elif r.get("agent_steps/s"):
            update_s += (steps - prev) / r["agent_steps/s"]
        if r.get("train/cpu_s") is not None:
            cpu_s += r["train/cpu_s"]
            cpu_updates += 1
        prev = steps
        if "val/score" in r:
            val_s += r.get("val/wall_s", 0.0)
            cpu_s += r.get("val/cpu_s", 0.0)
            last_val = {"score": round(r["val/score"], 3), "agent_steps": int(steps)}
    out = {"agent_steps": int(steps), "updates": int(rows[-1].get("train/update", len(rows))),
           "wall_s": round(update_s + val_s, 1),
           "last_validation": last_val}
    if cpu_updates:
        out.update(cpu_s=round(cpu_s, 1), cpu_updates=cpu_updates)
    return out


def report_score(report: str | Path, policy: str) -> dict[str, Any]:
    """The ``nmmozoo test`` figures of ``policy`` (its name in the report) from a report folder."""
    path = Path(report) / "results.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ShipError(f"--report {str(report)!r}: no readable results.json ({e})") from None
    if not isinstance(data, dict) or "setting" not in data or not isinstance(data.get("policies"), list):
        raise ShipError(f"--report {str(report)!r}: its results.json is not an nmmozoo test report")
    names = [p.get("name") for p in data.get("policies", [])]
    found = [p for p in data.get("policies", []) if p.get("name") == policy]
    # `nmmozoo test MODEL --ckpt_path NAME` names its row "MODEL (NAME)"
    found = found or [p for p in data.get("policies", []) if str(p.get("name")).endswith(f" ({policy})")]
    if len(found) != 1:
        raise ShipError(f"--report {str(report)!r}: {'no' if not found else 'more than one'} policy named "
                        f"{policy!r} or '… ({policy})' in results.json (it has {names}; --report_name picks one)")
    p, s = found[0], data["setting"]

    def stat(x, scale=1.0):
        return None if not x else [round(x["mean"] * scale, 2),
                                   None if x.get("half_width") is None else round(x["half_width"] * scale, 2)]

    return {"score": stat(p.get("score")), "completion_pct": stat(p.get("completion"), 100),
            "lifespan": stat(p.get("lifespan")),
            "by_category": {c: stat(v) for c, v in (p.get("score_by_category") or {}).items()},
            "setting": {k: s[k] for k in ("protocol", "preset", "tasks", "num_maps", "episodes", "seeds", "env")
                        if k in s},
            "report": str(report)}


def format_pm(x, unit: str = "", digits: int = 1) -> str:
    """``[mean, half-width]`` as the tables write it: ``6.9 ± 3.9``, ``7.2 ± 3.0%``; ``mean``
    alone without an interval; ``–`` for nothing."""
    if not x:
        return "–"
    return f"{x[0]:.{digits}f}{unit}" if x[1] is None else f"{x[0]:.{digits}f} ± {x[1]:.{digits}f}{unit}"


def _hardware(segments: list[dict]) -> dict | None:
    """The machine of a fit's first start; ``torch_threads`` a list (one per start) where the
    starts ran with different thread counts, ``cpu`` a list (each model once, in order) where
    they ran on different CPUs."""
    if not segments:
        return None
    hw = dict(segments[0].get("machine") or {})
    cpus = list(dict.fromkeys((s.get("machine") or {}).get("cpu") for s in segments))
    if len(cpus) > 1:
        hw["cpu"] = cpus
    threads = [(s.get("machine") or {}).get("torch_threads") for s in segments]
    if len(set(threads)) > 1:
        hw["torch_threads"] = threads
    return hw


def threads_text(hw: dict) -> str:
    """"1 thread", "2 threads", or "1 then 2 threads" (a fit resumed with another count; a
    count kept over several starts is written once per stretch: "1 then 2 then 1 threads")."""
    t = hw.get("torch_threads", "?")
    if isinstance(t, list):
        runs = [x for i, x in enumerate(t) if i == 0 or x != t[i - 1]]
        if len(runs) == 1:
            return threads_text({"torch_threads": runs[0]})
        return " then ".join(str(x) for x in runs) + " threads"
    return f"{t} thread" + ("" if t == 1 else "s")


def ship(run_dir: str | Path, name: str, into: str | Path | None = None, report: str | Path | None = None,
         report_name: str | None = None, replace: bool = False, notes: str | None = None,
         logs_into: str | Path | None = None) -> dict[str, Any]:
    """Copy ``run_dir``'s exported policy into ``into`` (default: the package's checkpoints
    folder) as ``<name>.safetensors`` and write its index entry; returns the entry. With
    ``logs_into``, the run's CSV logs and ``run_info.json`` are kept in ``logs_into/<name>/``
    as a run directory ``nmmozoo report`` reads (the learning curves outlive the machine)."""
    from .train.runinfo import read as read_run_info

    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ShipError(f"--name {name!r}: use letters, digits, '_' and '-' (it names the file)")
    run = Path(run_dir)
    src = run / "policy.safetensors"
    if not src.is_file():
        raise ShipError(f"{src}: no exported policy (nmmozoo fit writes it after the run's last update; "
                        f"an unfinished run resumes with --ckpt_path last)")
    size = src.stat().st_size
    if size > MAX_BYTES:
        raise ShipError(f"{src}: {size / 2**20:.1f} MiB is over the {MAX_BYTES // 2**20} MiB a shipped file may be")
    try:
        policy = load_pretrained(src)
    except HubError as e:
        raise ShipError(str(e)) from None
    dest_dir = Path(into) if into is not None else checkpoints_dir()
    dest = dest_dir / f"{name}.safetensors"
    sha = sha256_of(src)
    if dest.exists() and sha256_of(dest) != sha and not replace:
        raise ShipError(f"{dest} exists with other weights: a checkpoint is committed once (ship under "
                        "another name, or pass --replace for a new budget)")
    summary = run_summary(run)
    info = read_run_info(run)
    segments = info.get("segments", [])
    recipe = policy.recipe or {}
    entry: dict[str, Any] = {
        "file": dest.name, "sha256": sha, "bytes": size,
        "recipe": (segments[0].get("recipe") if segments else None) or run.name,
        "model": policy.spec.get("name"), "parameters": sum(p.numel() for p in policy.parameters()),
        "agent_steps": summary["agent_steps"], "updates": summary["updates"],
        "seed": segments[0].get("seed") if segments else None,
        "env": {k: v for k, v in (recipe.get("env") or {}).items()},
        # the commits its starts ran, in the order they started
        "commit": list(dict.fromkeys(s["commit"] for s in segments if s.get("commit"))) or None,
        "hardware": _hardware(segments),
        "trained": [s["started"][:10] for s in segments][:1] + ([segments[-1]["started"][:10]]
                                                                if len(segments) > 1 else []),
        "wall_s": summary["wall_s"], "cpu_s": summary.get("cpu_s"),
        "cpu_updates": summary.get("cpu_updates"), "last_validation": summary["last_validation"],
    }
    if report is not None:
        entry["pve"] = report_score(report, report_name or name)
    if notes:
        entry["notes"] = notes
    index_path = dest_dir / "index.yaml"
    index = {}
    if index_path.exists():
        index = yaml.safe_load(index_path.read_text()) or {}
        if not isinstance(index, dict):
            raise ShipError(f"{index_path}: expected a mapping of names")
    index[name] = {k: v for k, v in entry.items() if v is not None}
    dest_dir.mkdir(parents=True, exist_ok=True)
    if not dest.exists() or sha256_of(dest) != sha:
        atomic_write(dest, src.read_bytes())
    atomic_write(index_path, (HEADER + yaml.safe_dump(index, sort_keys=False, width=100)).encode())
    if logs_into is not None:
        keep_logs(run, Path(logs_into) / name)
    return index[name]


def keep_logs(run_dir: str | Path, dest: str | Path) -> list[Path]:
    """Copy a fit's CSV logs (``logs/version_*/metrics.csv`` and ``hparams.yaml``) and its
    ``run_info.json`` into ``dest``, laid out as a run directory; each file written whole."""
    run, dest = Path(run_dir), Path(dest)
    files = [f for f in sorted(run.glob("logs/version_*/*")) if f.name in ("metrics.csv", "hparams.yaml")]
    files += [run / "run_info.json"] if (run / "run_info.json").is_file() else []
    if not any(f.name == "metrics.csv" for f in files):
        raise ShipError(f"{run}: no logs/version_*/metrics.csv to keep")
    out = []
    for f in files:
        (dest / f.relative_to(run)).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(dest / f.relative_to(run), f.read_bytes())
        out.append(dest / f.relative_to(run))
    return out


def hours_text(entry: dict) -> str:
    """An index entry's wall time in hours, and its CPU time when every update logged it
    (``11.6 h, 10.9 CPU-h``)."""
    text = f"{entry.get('wall_s', 0) / 3600:.1f} h"
    if entry.get("cpu_s") is not None and entry.get("cpu_updates") == entry.get("updates"):
        text += f", {entry['cpu_s'] / 3600:.1f} CPU-h"
    return text


def hardware_text(entry: dict) -> str:
    """The "hardware, wall time" cell of an index entry, as the zoo table and the model cards
    write it: ``2-core AMD EPYC, 1 then 2 threads, 2.5 h``."""
    hw = entry.get("hardware") or {}
    gpu = f", {hw['gpu']}" if hw.get("gpu") else ""
    cpu = hw.get("cpu", "CPU")
    if isinstance(cpu, list):  # "A and B", "A, B and C"
        cpu = " and ".join([", ".join(map(str, cpu[:-1])), str(cpu[-1])]) if len(cpu) > 1 else str(cpu[0])
    return f"{hw.get('cores', '?')}-core {cpu}, {threads_text(hw)}{gpu}, {hours_text(entry)}"


CARD_NOTE = ("Scores: `nmmozoo test` PvE, the 63 held-out tasks on held-out maps, ± the 95% interval over "
             "seeds; setting and the zoo table: docs/zoo.md.")
NO_WEIGHTS = "No pretrained weights ship yet for this model."
ZOO_HEAD = "| model | live agent-steps | score |"


def card_table(model: str, index: dict | None = None) -> str | None:
    """The "Pretrained" table of ``model``'s card (models/<model>.md): one row per shipped
    checkpoint of that network; None where none ships."""
    from .hub import pretrained_index

    index = pretrained_index() if index is None else index
    rows = [(n, e) for n, e in index.items() if isinstance(e, dict) and e.get("model") == model]
    if not rows:
        return None
    lines = ["| checkpoint | recipe | live agent-steps | PvE score | completion | lifespan | hardware, wall time |",
             "|---|---|---:|---:|---:|---:|---|"]
    for n, e in rows:
        pve = e.get("pve") or {}
        lines.append("| " + " | ".join([f"`{n}`", str(e.get("recipe")), f"{e.get('agent_steps', 0):,}",
                                        format_pm(pve.get("score"), digits=2),
                                        format_pm(pve.get("completion_pct"), "%", digits=2),
                                        format_pm(pve.get("lifespan"), digits=2), hardware_text(e)]) + " |")
    return "\n".join(lines)


def _replace_table(text: str, head: str, table: str, where: str) -> str:
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith(head)]
    if len(starts) != 1:
        raise ShipError(f"{where}: {'no' if not starts else 'more than one'} table starting {head!r}")
    i = j = starts[0]
    while j < len(lines) and lines[j].startswith("|"):
        j += 1
    return "\n".join(lines[:i] + table.split("\n") + lines[j:])


def write_zoo_docs(root: str | Path, report: str | Path, index: dict | None = None) -> list[Path]:
    """Rewrite the zoo's tables from the index and the PvE report: README.md's and
    docs/zoo.md's zoo table (:func:`zoo_table`) and the "Pretrained" section of every model
    card (models/<model>.md, :func:`card_table`). Returns the files that changed; each is
    written whole. A file without its table or section is an error naming it, before any
    file is written."""
    from .hub import pretrained_index

    root = Path(root)
    index = pretrained_index() if index is None else index
    table = zoo_table(report, index)
    new: dict[Path, str] = {}
    for rel in ("README.md", "docs/zoo.md"):
        f = root / rel
        if not f.is_file():
            raise ShipError(f"{f}: not found (--docs names the repository's root)")
        new[f] = _replace_table(f.read_text(), ZOO_HEAD, table, str(f))
    for card in sorted((root / "models").glob("*.md")):
        text = card.read_text()
        lines = text.split("\n")
        if "**Pretrained.**" not in lines:
            raise ShipError(f"{card}: no '**Pretrained.**' section")
        i = lines.index("**Pretrained.**")
        j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("**")), len(lines))
        t = card_table(card.stem, index)
        body = [NO_WEIGHTS] if t is None else [*t.split("\n"), "", CARD_NOTE]
        new[card] = "\n".join(lines[:i + 1] + ["", *body, ""] + lines[j:])
    changed = []
    for f, text in new.items():
        if text != f.read_text():
            atomic_write(f, text.encode())
            changed.append(f)
    return changed


def zoo_table(report: str | Path | None = None, index: dict | None = None) -> str:
    """The zoo's Markdown table: every shipped checkpoint's row from its index entry (budget,
    PvE score ± 95% interval and per category, completion, lifespan, hardware, wall time),
    then the floors of ``report`` (its random and untrained rows), for README.md and
    docs/zoo.md."""
    from .hub import pretrained_index
    from .tasks import CATEGORIES

    index = pretrained_index() if index is None else index

    pm = format_pm

    head = ["model", "live agent-steps", "score", *CATEGORIES, "completion", "lifespan (ticks)",
            "hardware, wall time"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 2) + ["---"]) + "|"]
    for name, e in index.items():
        if not isinstance(e, dict):
            continue
        pve = e.get("pve") or {}
        cats = pve.get("by_category") or {}
        lines.append("| " + " | ".join([f"`{name}` ({e.get('recipe')})", f"{e.get('agent_steps', 0):,}",
                                        pm(pve.get("score")), *[pm(cats.get(c)) for c in CATEGORIES],
                                        pm(pve.get("completion_pct"), "%"), pm(pve.get("lifespan")),
                                        hardware_text(e)]) + " |")
    if report is not None:
        data = json.loads((Path(report) / "results.json").read_text())
        for p in data["policies"]:
            if p["name"] == "random" or p["name"].endswith("(untrained)"):
                s = report_score(report, p["name"])
                lines.append("| " + " | ".join([p["name"], "0", pm(s["score"]),
                                                *[pm(s["by_category"].get(c)) for c in CATEGORIES],
                                                pm(s["completion_pct"], "%"), pm(s["lifespan"]), ""]) + " |")
    return "\n".join(lines)
