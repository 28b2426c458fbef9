"""Evaluation reports: ``results.json``, a Markdown table (in the style of rl-baselines3-zoo's
``benchmark.md``) and PNG plots, each written atomically (a temporary file beside it, then
renamed over it: a reader never sees a half-written file).

A report directory holds one setting (preset, tasks, maps, episodes, seeds, env fields);
writing another policy's results into it adds (or replaces, by name) that policy's entry, so
``nmmozoo test random --report R`` then ``nmmozoo test baseline --report R`` compares both.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from ._files import atomic_write, file_in_the_way
from .tasks import CATEGORIES

FILES = ("results.json", "results.md", "categories.png", "lifespan.png", "tasks.png")


class ReportError(ValueError):
    """A report that cannot be written as asked (another setting's results in the directory)."""


def _fmt(stat: dict | None, scale: float = 1.0, digits: int = 1) -> str:
    if not stat:
        return "–"
    m = stat["mean"] * scale
    if stat.get("half_width") is None:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {stat['half_width'] * scale:.{digits}f}"


def _steps(v) -> str:
    if v is None:
        return "unknown"
    return f"{int(v):,}"


def torch_threads(n) -> str:
    """"1 torch thread", "2 torch threads": how every command's output and report says it."""
    return f"{n} torch thread" + ("" if n == 1 else "s")


def markdown(results: dict[str, Any]) -> str:
    """The policies' table: score ± CI (points of 100), each category's points, lifespan,
    agent-episodes; then the setting and how the intervals are computed."""
    s = results["setting"]
    head = ["policy", "training steps", "score", *CATEGORIES, "completion", "lifespan", "episodes"]
    pvp = s.get("protocol") == "pvp"
    title = ("PvP evaluation" if pvp else "PvE evaluation")
    lines = [f"# {title}: {s['tasks']} tasks, held-out maps ({s['preset']})", "",
             "| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for p in results["policies"]:
        cats = p.get("score_by_category") or {}
        row = [p["name"], _steps(p.get("training_steps")), _fmt(p.get("score")),
               *[_fmt(cats.get(c)) for c in CATEGORIES],
               _fmt(p.get("completion"), 100, 1) + ("%" if p.get("completion") else ""),
               _fmt(p.get("lifespan")), f"{p['agent_episodes']:,}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", (f"- score: the competition's category-weighted score (each category {100 / 6:.2f} "
              "points, shared equally by its tasks; a task contributes its completion rate); the category "
              "columns are each category's points, completion the share of agent-episodes whose task was "
              "completed, lifespan the mean ticks an agent lived (episode horizon "
              f"{s.get('horizon', '?')}); episodes: agent-episodes over all seeds."),
              f"- ±: {results['ci_method']}; seeds {s['seeds']}.",
              (f"- setting: preset {s['preset']}, {s['num_maps']} held-out maps x {s['episodes']} "
              f"episode(s) per seed, tasks {s['tasks']}, env {s.get('env') or {}}, "
              f"{'argmax' if s.get('deterministic') else 'sampled'} actions, device {s.get('device')}, "
              f"{torch_threads(s.get('threads'))}.")]
    if pvp:
        rest = (f"; the {s['rest']} slot{'s' if s['rest'] > 1 else ''} left over played by the random policy, "
                "scored for nobody"
                if s.get("rest") else "")
        lines.append(f"- PvP: {', '.join(s.get('policies') or [])} share every map, {s.get('group_size')} "
                     f"agents each (contiguous slot groups, rotated across maps, episodes and seeds{rest}); "
                     "each policy's numbers are from its own agents only.")
    for p in results["policies"]:
        lines.append(f"- {p['name']}: {p['source']}; {p['agent_steps']:,} agent-steps evaluated in "
                     f"{p['wall_s']:.1f} s.")
    return "\n".join(lines) + "\n"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plots(results: dict[str, Any], lifespans: dict[str, list[float]]) -> dict[str, bytes]:
    """PNG bytes: per-category points per policy (CI whiskers), the lifespan distribution,
    completion per task."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    pols = results["policies"]
    n = max(1, len(pols))
    out = {}
    width = 0.8 / n

    def err(stats):
        return np.array([[0.0 if not st or st.get("half_width") is None else st["half_width"]
                          for st in stats]])

    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(CATEGORIES))
    for i, p in enumerate(pols):
        stats = [(p.get("score_by_category") or {}).get(c) for c in CATEGORIES]
        ax.bar(x + (i - (n - 1) / 2) * width, [st["mean"] if st else 0.0 for st in stats], width,
               yerr=err(stats), capsize=3, label=p["name"])
    ax.set_xticks(x, CATEGORIES)
    ax.set_ylabel(f"points (of {100 / 6:.1f} per category)")
    ax.set_title("Held-out score per category (95% t-interval over seeds)")
    ax.legend(fontsize=8)
    out["categories.png"] = _png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    horizon = results["setting"].get("horizon") or max((max(v) for v in lifespans.values() if v), default=1)
    bins = np.linspace(0, horizon, 33)
    for p in pols:
        v = lifespans.get(p["name"]) or []
        if v:
            ax.hist(v, bins=bins, histtype="step", linewidth=1.5, density=True, label=p["name"])
    ax.set_xlabel("lifespan (ticks)")
    ax.set_ylabel("share of agent-episodes (density)")
    ax.set_title("Lifespan distribution (all seeds)")
    ax.legend(fontsize=8)
    out["lifespan.png"] = _png(fig)
    plt.close(fig)

    tasks = sorted({t for p in pols for t in (p.get("completion_by_task") or {})})
    fig, ax = plt.subplots(figsize=(8, max(3, 0.16 * len(tasks) * max(1, n / 2) + 1)))
    y = np.arange(len(tasks))
    for i, p in enumerate(pols):
        by = p.get("completion_by_task") or {}
        stats = [by.get(t) for t in tasks]
        ax.barh(y + (i - (n - 1) / 2) * width, [st["mean"] if st else 0.0 for st in stats], width,
                xerr=err(stats), capsize=1.5, label=p["name"])
    ax.set_yticks(y, tasks, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("completion rate")
    ax.set_title("Completion per task (95% t-interval over seeds)")
    ax.legend(fontsize=8)
    out["tasks.png"] = _png(fig)
    plt.close(fig)
    return out


def read_report_dir(directory: str | Path, setting: dict[str, Any]) -> tuple[list[dict], dict[str, list]]:
    """The policies and lifespan samples a report folder already holds for ``setting`` (none
    where it does not exist yet), or a :class:`ReportError` where it cannot take this
    setting's results: it is a file or lies under one, or its ``results.json`` is not a
    readable report or is of another setting. Writes nothing (``nmmozoo test`` asks before
    it evaluates)."""
    d = Path(directory)
    blocker = file_in_the_way(d)
    if blocker is not None:
        raise ReportError(f"--report {str(d)!r}: {str(blocker)!r} is a file, not a directory")
    prev = d / "results.json"
    if not prev.exists():
        return [], {}
    try:
        data = json.loads(prev.read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"{prev} is not readable JSON ({e}); remove it or use another --report") from None
    if not isinstance(data, dict) or "setting" not in data:
        raise ReportError(f"{prev} is not an nmmozoo test results.json; remove it or use another --report")
    if data.get("setting") != setting:
        raise ReportError(f"{prev} holds results of another setting ({data.get('setting')}); "
                          "use another --report directory to compare under this one")
    return data.get("policies", []), {k: list(v) for k, v in (data.get("lifespan_samples") or {}).items()}


def write_report(directory: str | Path, setting: dict[str, Any], policies: list[dict[str, Any]],
                 ci_method: str) -> list[Path]:
    """Write (or extend) the report in ``directory``: ``results.json``, ``results.md`` and
    the PNGs. ``policies`` are :func:`~nmmozoo.evaluate.evaluate_seeds` results with
    ``source`` and ``training_steps``; their per-agent-episode ``lifespans`` go to
    ``results.json``'s ``lifespan_samples`` (so a later policy's report redraws them)."""
    d = Path(directory)
    old, lifespans = read_report_dir(d, setting)
    d.mkdir(parents=True, exist_ok=True)
    new_names = {p["name"] for p in policies}
    entries = [p for p in old if p["name"] not in new_names]
    for p in policies:
        p = dict(p)
        lifespans[p["name"]] = [int(x) if float(x).is_integer() else float(x)
                                for x in (p.pop("lifespans", []) or [])]
        entries.append(p)
    results = {"protocol": setting.get("protocol", "pve"), "setting": setting, "ci_method": ci_method,
               "policies": entries,
               "lifespan_samples": {p["name"]: lifespans.get(p["name"], []) for p in entries}}
    pngs = plots(results, lifespans)
    written = []
    for name, data in [("results.json", json.dumps(results, indent=1).encode()),
                       ("results.md", markdown(results).encode()), *pngs.items()]:
        atomic_write(d / name, data)
        written.append(d / name)
    return written


# --- learning curves of fits (`nmmozoo report`) ------------------------------------------------------

X_KEY = "train/agent_steps"
# (logged metric, title, y label): one PNG each, named after the metric
CURVES = (
    ("train/episode/return", "Episode return (training rollouts)", "shaped return"),
    ("train/episode/lifespan", "Episode lifespan (training rollouts)", "ticks"),
    ("train/task/completion", "Task completion (training rollouts)", "share of agent-episodes"),
    ("val/score", "Held-out score (validation)", "points (of 100)"),
    ("val/completion", "Held-out task completion (validation)", "share of agent-episodes"),
    ("val/lifespan", "Lifespan on held-out maps (validation)", "ticks"),
    ("agent_steps/s", "Training throughput", "live agent-steps/s"),
)


def curve_file(metric: str) -> str:
    """The PNG a metric's curve is written to: ``val/score`` -> ``val_score.png``."""
    if metric.endswith("/s"):  # agent_steps/s -> agent_steps_per_s.png
        metric = metric[:-2] + "_per_s"
    return metric.replace("/", "_") + ".png"


def metrics_files(run_dir: str | Path) -> list[Path]:
    """A fit's CSV logs, oldest first: ``<run_dir>/logs/version_N/metrics.csv`` (one per start
    of the fit; a resumed run adds one). The ``logs`` folder or one ``version_N`` folder
    may be given too. A :class:`ReportError` when there are none (naming the fits' run
    directories below ``run_dir``, if it holds several)."""
    d = Path(run_dir)
    if not d.exists():
        raise ReportError(f"run directory {str(d)!r} does not exist")
    if not d.is_dir():
        raise ReportError(f"{str(d)!r} is a file, not a run directory (give the fit's --run_dir, e.g. runs/demo)")

    def version(p: Path) -> tuple:
        tail = p.parent.name.rpartition("_")[2]
        return (int(tail) if tail.isdigit() else -1, str(p))

    for pattern in ("logs/*/metrics.csv", "*/metrics.csv", "metrics.csv"):
        found = sorted(d.glob(pattern), key=version)
        if found:
            return found
    below = sorted({str(p.parent.parent.parent) for p in d.glob("**/logs/*/metrics.csv")})
    hint = (f"; it holds the run directories {below[:8]}{' ...' if len(below) > 8 else ''}: give them"
            if below else " (a fit's CSV logger writes <run_dir>/logs/version_N/metrics.csv)")
    raise ReportError(f"{str(d)!r} holds no fit metrics (no logs/version_N/metrics.csv){hint}")


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of a fit's CSV logs (every version, a resumed run's rows after the run it
    resumed), one per logged update, sorted by ``train/agent_steps``; where two versions
    logged the same agent-step count (a run resumed from an earlier checkpoint) the later
    one's row is kept. Empty cells are left out of a row. A :class:`ReportError` when no
    row has ``train/agent_steps``."""
    import csv

    by_x: dict[float, dict[str, float]] = {}
    for f in metrics_files(run_dir):
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                vals = {}
                for k, v in row.items():
                    if k is None or v in (None, ""):
                        continue
                    try:
                        vals[k] = float(v)
                    except ValueError:
                        continue
                if X_KEY in vals:
                    by_x[vals[X_KEY]] = vals
    if not by_x:
        raise ReportError(f"{str(run_dir)!r}: its metrics.csv holds no row with {X_KEY} (no update was logged)")
    return [by_x[x] for x in sorted(by_x)]


def run_labels(run_dirs: list[str | Path]) -> list[str]:
    """Legend labels: each run directory's name, or its whole path where names repeat."""
    def run_of(r) -> Path:  # a logs/ or logs/version_N/ folder given: its run directory
        p = Path(r).resolve()
        if p.name.startswith("version_") and p.parent.name == "logs":
            p = p.parent
        return p.parent if p.name == "logs" and p.parent.name else p

    names = [run_of(r).name for r in run_dirs]
    return [n if names.count(n) == 1 else str(r) for n, r in zip(names, run_dirs)]


def curve_figures(runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """One matplotlib figure per metric of ``CURVES`` that some run logged (file name ->
    figure): the metric against live agent-steps, one line per run (legend: its label),
    validation points marked. The caller closes them."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out = {}
    for key, title, ylabel in CURVES:
        series = {label: [(r[X_KEY], r[key]) for r in rows if key in r] for label, rows in runs.items()}
        series = {k: v for k, v in series.items() if v}
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        for label, pts in series.items():
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o" if key.startswith("val/") or len(pts) < 20 else None,
                    markersize=3, linewidth=1.5, label=label)
        ax.set_xlabel("live agent-steps (train/agent_steps)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {key}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        out[curve_file(key)] = fig
    return out


def write_curves(run_dirs: list[str | Path], out: str | Path) -> tuple[list[Path], dict[str, list[dict]]]:
    """Read every run's CSV logs (:func:`read_metrics`) and write one learning-curve PNG per
    metric (:func:`curve_figures`) into ``out``, each atomically. Returns (the files written,
    the rows per run label). Any run without metrics is a :class:`ReportError` naming it,
    before anything is written."""
    import matplotlib.pyplot as plt

    if not run_dirs:
        raise ReportError("give at least one run directory")
    d = Path(out)
    if d.exists() and not d.is_dir():
        raise ReportError(f"--out {str(d)!r} is a file, not a directory")
    runs = {label: read_metrics(r) for label, r in zip(run_labels(run_dirs), run_dirs)}
    figs = curve_figures(runs)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        for name, fig in figs.items():
            atomic_write(d / name, _png(fig))
            written.append(d / name)
    finally:
        for fig in figs.values():
            plt.close(fig)
    return written, runs
