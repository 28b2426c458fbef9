"""Pretrained policies: safetensors weights with the model spec, the env sizes, the recipe
and the package version in the file's metadata; a name index with hashes.

``checkpoints/index.yaml`` maps a name to ``{file | url, sha256}``. Loading checks the hash
of every indexed file (and of every download), loads strictly, and refuses a damaged file, a
hash mismatch or a spec mismatch with a :class:`HubError`. Nothing is ever unpickled, and
nothing is downloaded unless a URL was asked for (given directly, or as the ``url`` of the
index entry named); downloads go through ``torch.hub.download_url_to_file``, which keeps
only a complete file with the expected hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml

from ._files import atomic_write
from .policy import Policy, create_policy

CACHE = Path(os.environ.get("NMMOZOO_CACHE", Path.home() / ".cache" / "nmmozoo"))


class HubError(RuntimeError):
    """A checkpoint that cannot be used; the message says which and why."""


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pretrained_index() -> dict[str, dict[str, Any]]:
    """The shipped index (``checkpoints/index.yaml``): name -> {file | url, sha256, ...}."""
    root = resources.files("nmmozoo.checkpoints")
    index = root / "index.yaml"
    if not index.is_file():
        return {}
    try:
        data = yaml.safe_load(index.read_text()) or {}
    except yaml.YAMLError as e:
        raise HubError(f"checkpoints/index.yaml is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise HubError("checkpoints/index.yaml: expected a mapping of names")
    return data


def save_pretrained(policy: Policy, path: str | Path, recipe: dict | None = None) -> Path:
    """Write the policy's weights and what rebuilds it (spec, sizes, recipe, version) to
    ``path`` (``.safetensors``), atomically: the file is serialised in memory and written to
    one temporary file beside ``path`` (``.<name>.<pid>.tmp``), then renamed over it, so a
    failed write leaves neither a partial file nor the temporary one; one left by a killed
    process is removed by the next save to that path."""
    from safetensors.torch import save

    from . import __version__

    path = Path(path)
    if path.is_dir():
        raise HubError(f"cannot save to {str(path)!r}: it is a directory (give a file path, "
                       f"e.g. {str(path / 'policy.safetensors')!r})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HubError(f"cannot save to {str(path)!r}: {e}") from None
    meta = {"nmmozoo_spec": json.dumps(policy.spec, sort_keys=True),
            "nmmozoo_sizes": json.dumps(policy.sizes, sort_keys=True),
            "nmmozoo_recipe": json.dumps(recipe or {}, sort_keys=True, default=str),
            "nmmozoo_version": __version__, "format": "pt"}
    tensors = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    return atomic_write(path, save(tensors, metadata=meta))


def _check_sha(sha256: str | None, what: str) -> str | None:
    if sha256 is None:
        return None
    sha = str(sha256).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise HubError(f"{what}: sha256 must be 64 hexadecimal digits, got {sha256!r}")
    return sha


def _download(url: str, sha256: str | None) -> Path:
    """The file at ``url``, in the cache (``$NMMOZOO_CACHE``, default ``~/.cache/nmmozoo``),
    named by its sha256 (or by the URL's when none is given). Fetched only when this is asked
    for (a URL given to :func:`load_pretrained`, or an index entry with a ``url``), by
    ``torch.hub.download_url_to_file``: the bytes go to a temporary file beside the
    destination, their sha256 is checked against ``sha256`` and only a complete, matching file
    is moved into place, so a failed or wrong download leaves no file behind. A cached file
    whose hash matches is used without downloading."""
    from torch.hub import download_url_to_file

    sha = _check_sha(sha256, url)
    dest = Path(CACHE) / f"{sha or hashlib.sha256(url.encode()).hexdigest()}.safetensors"
    if dest.is_file() and (sha is None or sha256_of(dest) == sha):
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        download_url_to_file(url, str(dest), hash_prefix=sha, progress=False)
    except RuntimeError as e:  # torch.hub's hash check: 'invalid hash value (expected ..., got ...)'
        got = re.search(r'got "([0-9a-f]+)"', str(e))
        raise HubError(f"hash mismatch for {url}: expected sha256 {sha}, got "
                       f"{got.group(1) if got else str(e)}") from None
    except (OSError, ValueError) as e:  # unreachable, missing, or not a URL urllib knows
        raise HubError(f"could not download {url}: {e}") from None
    return dest


URL_SCHEMES = ("http", "https", "file")


def _resolve(source: str | Path) -> tuple[Path, str | None]:
    """(local file, expected sha256 or None) for a name, a path or a URL."""
    src = str(source)
    index = pretrained_index()
    if src in index:
        entry = index[src]
        if not isinstance(entry, dict):
            raise HubError(f"checkpoint {src!r}: index entry must be a mapping with 'file' or 'url'")
        sha = _check_sha(entry.get("sha256"), f"checkpoint {src!r}")
        if "file" in entry:
            path = Path(str(resources.files("nmmozoo.checkpoints") / entry["file"]))
            if not path.exists():
                raise HubError(f"checkpoint {src!r}: file {entry['file']!r} is missing")
            return path, sha
        if "url" in entry:
            if sha is None:
                raise HubError(f"checkpoint {src!r}: a 'url' entry needs its 'sha256' (nothing "
                               "is downloaded unchecked)")
            return _download(str(entry["url"]), sha), sha
        raise HubError(f"checkpoint {src!r}: index entry needs 'file' or 'url'")
    if urllib.parse.urlparse(src).scheme in URL_SCHEMES:
        return _download(src, None), None
    path = Path(src)
    if path.exists():
        return path, None
    raise HubError(f"no checkpoint {src!r}: not a pretrained name ({sorted(index)}), a file "
                   "or a URL")


def load_pretrained(source: str | Path, map_location: str | torch.device = "cpu",
                    sha256: str | None = None) -> Policy:
    """A ready policy from a pretrained name, a ``.safetensors`` path or a URL (``http``,
    ``https`` or ``file``; downloaded into the cache, see :func:`_download`). ``sha256``, when
    given, is the file's expected hash: it is checked before anything is read (and a download
    that does not match is not kept)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    sha256 = _check_sha(sha256, str(source))
    if sha256 is not None and urllib.parse.urlparse(str(source)).scheme in URL_SCHEMES:
        path, expected = _download(str(source), sha256), sha256  # checked as it arrives
    else:
        path, expected = _resolve(source)
        expected = sha256 or expected
    if expected is not None:
        got = sha256_of(path)
        if got != expected:
            raise HubError(f"hash mismatch for {path}: expected sha256 {expected}, got {got}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as e:
        raise HubError(f"{path} is not a readable safetensors checkpoint (damaged or "
                       f"truncated?): {e}") from None
    if "nmmozoo_spec" not in meta:
        raise HubError(f"{path} has no nmmozoo model spec in its metadata")
    try:
        spec, sizes = json.loads(meta["nmmozoo_spec"]), json.loads(meta["nmmozoo_sizes"])
        policy = Policy(spec, sizes)
    except Exception as e:  # noqa: BLE001 - any failure to rebuild is one clear error
        raise HubError(f"{path}: the model spec in its metadata does not build: {e}") from None
    missing, unexpected = _compare(policy.state_dict(), state)
    if missing or unexpected:
        raise HubError(f"{path}: weights do not match the spec {spec.get('name')!r}: "
                       f"missing {missing[:5]}, unexpected or mis-shaped {unexpected[:5]}")
    policy.load_state_dict(state, strict=True)
    policy.recipe = json.loads(meta.get("nmmozoo_recipe", "{}"))
    return policy.to(map_location)


def _compare(expected: dict, got: dict) -> tuple[list[str], list[str]]:
    missing = [k for k in expected if k not in got]
    bad = [k for k in got if k not in expected or tuple(got[k].shape) != tuple(expected[k].shape)]
    return missing, bad


__all__ = ["HubError", "load_pretrained", "pretrained_index", "save_pretrained", "sha256_of",
           "create_policy"]
