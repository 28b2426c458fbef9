"""Writing files whole or not at all (hub exports, evaluation reports)."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through one temporary file beside it (fsynced, then renamed
    into place): a reader sees the old file or the new one, never half of one. A failed
    write removes its temporary file; one left by a killed writer is removed by the next
    write to the same path."""
    path = Path(path)
    remove_stale_temps(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def remove_stale_temps(path: Path) -> None:
    """Temporary files of earlier writes to ``path`` whose process is gone (killed mid-write)."""
    for t in path.parent.glob(f".{path.name}.*.tmp"):
        pid = t.name[len(path.name) + 2:-4]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # still running: its write is in progress
        except ProcessLookupError:
            pass
        except OSError:  # alive, another user's
            continue
        try:
            t.unlink()
        except OSError:
            pass
