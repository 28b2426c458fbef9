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


def file_in_the_way(path: str | Path, itself: bool = True) -> Path | None:
    """The first of ``path`` (with ``itself``) and its parents that exists and is not a
    directory: a file where a directory is needed, so nothing can be written there."""
    path = Path(path)
    return next((q for q in ((path,) if itself else ()) + tuple(path.parents) if q.exists() and not q.is_dir()),
                None)


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
