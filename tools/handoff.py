#!/usr/bin/env python3
"""Carry an unfinished fit to another machine through the repository.

A fit resumes exactly from ``RUN_DIR/checkpoints/last.ckpt`` (``nmmozoo fit ... --ckpt_path
last``), but a run directory lives on one machine. When the machine is not kept (a preemptible
instance, a fresh container per working session), ``save`` packs what the resume needs into a
folder that can be committed: the checkpoint compressed (xz) and cut into parts small enough for
a git host, the CSV logs and ``run_info.json`` as they are, and a manifest with every file's
sha256. ``restore`` rebuilds the run directory on the next machine, checking every hash before
it writes the checkpoint (written to a temporary name and renamed, so a bad part leaves nothing
half-written).

    python tools/handoff.py save runs/mori handoff/mori
    python tools/handoff.py restore handoff/mori runs/mori
    nmmozoo fit mori --run_dir runs/mori ... --ckpt_path last

Standard library only: it runs before anything is installed.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import lzma
import os
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

CKPT = Path("checkpoints") / "last.ckpt"
MANIFEST = "manifest.json"
CHUNK = 1 << 20


class HandoffError(Exception):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _last_progress(run_dir: Path) -> dict:
    """The last logged update of the run (its CSV logs; updates done, 1-based), for the
    manifest's reader. Rows without both figures (validation rows) or that do not parse (a
    line cut short when a fit was killed) are passed over."""
    out: dict = {}
    for f in sorted(run_dir.glob("logs/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1])):
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    out = {"update": int(float(row["train/update"])),
                           "agent_steps": int(float(row["train/agent_steps"]))}
                except (KeyError, TypeError, ValueError):
                    continue
    return out


def save(run_dir: str | Path, dest: str | Path, part_bytes: int = 24 << 20) -> dict:
    run_dir, dest = Path(run_dir), Path(dest)
    ckpt = run_dir / CKPT
    if not ckpt.is_file():
        raise HandoffError(f"{ckpt}: no checkpoint to hand off (a fit writes it every --checkpoint_every steps)")
    if part_bytes < 1:
        raise HandoffError(f"--part_mb: must be positive, got {part_bytes} bytes")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        # the run's small files, as they are (logs, run_info.json); the checkpoints stay out
        files = []
        for f in sorted(run_dir.rglob("*")):
            rel = f.relative_to(run_dir)
            if f.is_file() and rel.parts[0] != "checkpoints" and rel.name != "policy.safetensors":
                (tmp / "run" / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, tmp / "run" / rel)
                files.append({"path": str(rel), "sha256": _sha256(f), "bytes": f.stat().st_size})
        # the checkpoint: read once, hashed and compressed in one pass, cut into parts
        whole = hashlib.sha256()
        comp = lzma.LZMACompressor(preset=6)
        parts: list[dict] = []
        buf = bytearray()

        def flush(final: bool = False) -> None:
            while len(buf) >= part_bytes or (final and buf):
                name = f"last.ckpt.xz.{len(parts):03d}"
                piece = bytes(buf[:part_bytes])
                del buf[:part_bytes]
                (tmp / name).write_bytes(piece)
                parts.append({"name": name, "sha256": hashlib.sha256(piece).hexdigest(), "bytes": len(piece)})

        size = 0
        with open(ckpt, "rb") as fh:
            for block in iter(lambda: fh.read(CHUNK), b""):
                whole.update(block)
                size += len(block)
                buf += comp.compress(block)
                flush()
        buf += comp.flush()
        flush(final=True)
        manifest = {"checkpoint": {"path": str(CKPT), "sha256": whole.hexdigest(), "bytes": size,
                                   "parts": parts},
                    "files": files, "progress": _last_progress(run_dir),
                    "saved": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        # replace the destination whole: the old handoff stays until the new one is complete
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def restore(src: str | Path, run_dir: str | Path, force: bool = False) -> dict:
    src, run_dir = Path(src), Path(run_dir)
    mf = src / MANIFEST
    if not mf.is_file():
        raise HandoffError(f"{mf}: no manifest; is {src} a folder written by 'handoff.py save'?")
    try:
        manifest = json.loads(mf.read_text())
        info = manifest["checkpoint"]
    except (ValueError, KeyError) as e:
        raise HandoffError(f"{mf}: not a handoff manifest ({e})") from None
    ckpt = run_dir / CKPT
    if ckpt.exists() and not force:
        if _sha256(ckpt) == info["sha256"]:
            return manifest
        raise HandoffError(f"{ckpt} exists and is not the handed-off checkpoint; restore into another "
                           f"run directory, or pass --force to replace it")
    for p in info["parts"]:
        f = src / p["name"]
        if not f.is_file():
            raise HandoffError(f"{f}: part missing ({len(info['parts'])} parts in {mf})")
        if f.stat().st_size != p["bytes"] or _sha256(f) != p["sha256"]:
            raise HandoffError(f"{f}: sha256 or size differs from {mf}; the part is damaged")
    for e in manifest.get("files", []):
        f = src / "run" / e["path"]
        if not f.is_file() or _sha256(f) != e["sha256"]:
            raise HandoffError(f"{f}: missing, or its sha256 differs from {mf}")
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    tmp = ckpt.with_name(f".{ckpt.name}.restoring")
    try:
        dec, whole, size = lzma.LZMADecompressor(), hashlib.sha256(), 0
        with open(tmp, "wb") as out:
            for p in info["parts"]:
                with open(src / p["name"], "rb") as fh:
                    for block in iter(lambda: fh.read(CHUNK), b""):
                        data = dec.decompress(block)
                        whole.update(data)
                        size += len(data)
                        out.write(data)
        if not dec.eof or size != info["bytes"] or whole.hexdigest() != info["sha256"]:
            raise HandoffError(f"{src}: the parts decompress to a checkpoint whose size or sha256 differs "
                               f"from {mf}")
        for e in manifest.get("files", []):
            (run_dir / e["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / "run" / e["path"], run_dir / e["path"])
        os.replace(tmp, ckpt)
    except lzma.LZMAError as e:
        raise HandoffError(f"{src}: the parts do not decompress ({e})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="handoff.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("save", help="pack RUN_DIR's resume state into DEST")
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("dest", metavar="DEST")
    s.add_argument("--part_mb", type=float, default=24.0, help="largest part, in MiB (default 24)")
    r = sub.add_parser("restore", help="rebuild RUN_DIR from a folder written by save")
    r.add_argument("src", metavar="SRC")
    r.add_argument("run_dir", metavar="RUN_DIR")
    r.add_argument("--force", action="store_true", help="replace a different checkpoint in RUN_DIR")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "save":
            m = save(a.run_dir, a.dest, part_bytes=int(a.part_mb * (1 << 20)))
            c = m["checkpoint"]
            print(f"{a.dest}: {c['bytes']:,} bytes of checkpoint in {len(c['parts'])} part(s), "
                  f"{sum(p['bytes'] for p in c['parts']):,} bytes; {len(m['files'])} run file(s); "
                  f"progress {m['progress'] or 'not logged yet'}")
        else:
            m = restore(a.src, a.run_dir, force=a.force)
            print(f"{a.run_dir}: restored {m['checkpoint']['path']} (sha256 {m['checkpoint']['sha256'][:12]}…) "
                  f"and {len(m.get('files', []))} run file(s); progress {m.get('progress') or 'not logged'}")
    except HandoffError as e:
        print(f"handoff.py {a.cmd}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
