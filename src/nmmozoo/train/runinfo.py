"""What a fit ran on: ``<run_dir>/run_info.json``, one entry ("segment") per start of the fit
(a resumed run adds one), each with the code's commit, the command line, the machine and the
thread count. ``nmmozoo ship`` reads it into the pretrained index, so a shipped checkpoint
names the code that trained it and the hardware, beside its wall time."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_write

FILE = "run_info.json"


def code_commit() -> str | None:
    """The git commit of the package's source tree (``-dirty`` when tracked files differ from
    it); None outside a git checkout (an installed package)."""
    src = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> dict[str, Any]:
    """The hardware a process runs on: CPU model and cores, torch threads, the device (and the
    GPU's name on CUDA)."""
    out = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "device": str(device)}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return out


def record_start(run_dir: str | Path, argv: list[str], device: str = "cpu", recipe: str | None = None,
                 seed: int | None = None) -> Path:
    """Add this start of a fit (of ``recipe`` with ``seed``) to ``run_dir``'s run info (written
    atomically)."""
    from .. import __version__

    path = Path(run_dir) / FILE
    info = read(run_dir)
    info.setdefault("segments", []).append({
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": code_commit(), "nmmozoo": __version__, "torch": torch.__version__,
        "recipe": recipe, "seed": seed, "argv": list(argv), "machine": machine(device)})
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, (json.dumps(info, indent=1) + "\n").encode())


def read(run_dir: str | Path) -> dict[str, Any]:
    """``run_dir``'s run info ({} when the fit wrote none: one from before it was recorded)."""
    path = Path(run_dir) / FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not readable run info ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data
