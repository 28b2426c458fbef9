"""Downloads of checkpoints (``file://`` URLs, which torch.hub's downloader reads like any
other): only when asked for, hash-checked as they arrive, and never a half-written or
wrong file left in the cache."""

from __future__ import annotations

import pytest
import torch

from nmmozoo import create_policy, hub, make_config
from nmmozoo.hub import HubError, load_pretrained, save_pretrained, sha256_of


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    policy = create_policy("baseline_tiny", config=make_config("tiny"))
    path = save_pretrained(policy, tmp_path_factory.mktemp("src") / "m.safetensors", recipe={"x": 1})
    return policy, path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setattr(hub, "CACHE", d)
    return d


def _index(monkeypatch, **entries):
    monkeypatch.setattr(hub, "pretrained_index", lambda: entries)


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _files(d):
    return sorted(p.name for p in d.rglob("*")) if d.exists() else []


def test_an_index_url_is_downloaded_checked_and_cached(saved, cache, monkeypatch, tmp_path):
    policy, path = saved
    copy = tmp_path / "served.safetensors"
    copy.write_bytes(path.read_bytes())
    sha = sha256_of(copy)
    _index(monkeypatch, mine={"url": copy.as_uri(), "sha256": sha.upper()})
    assert not cache.exists()  # nothing fetched until asked
    got = load_pretrained("mine")
    assert _same(got, policy) and got.recipe == {"x": 1}
    assert _files(cache) == [f"{sha}.safetensors"]
    copy.unlink()  # the second load reads the cache
    assert _same(load_pretrained("mine"), policy)


def test_a_wrong_hash_leaves_no_file_behind(saved, cache, monkeypatch):
    _, path = saved
    wrong = "0" * 64
    _index(monkeypatch, bad={"url": path.as_uri(), "sha256": wrong})
    with pytest.raises(HubError, match=f"hash mismatch for {path.as_uri()}: expected sha256 {wrong}, "
                                       f"got {sha256_of(path)}"):
        load_pretrained("bad")
    assert _files(cache) == []  # neither the file nor torch.hub's .partial
    with pytest.raises(HubError, match="hash mismatch"):  # a URL given directly, with its hash
        load_pretrained(path.as_uri(), sha256=wrong)
    assert _files(cache) == []


def test_a_url_with_its_hash_given_directly(saved, cache):
    policy, path = saved
    assert _same(load_pretrained(path.as_uri(), sha256=sha256_of(path)), policy)
    assert _files(cache) == [f"{sha256_of(path)}.safetensors"]


def test_unverifiable_or_missing_downloads_are_refused(saved, cache, monkeypatch, tmp_path):
    _, path = saved
    _index(monkeypatch, nohash={"url": path.as_uri()}, short={"url": path.as_uri(), "sha256": "abc"},
           gone={"url": (tmp_path / "absent.safetensors").as_uri(), "sha256": sha256_of(path)})
    with pytest.raises(HubError, match="'nohash': a 'url' entry needs its 'sha256'"):
        load_pretrained("nohash")
    with pytest.raises(HubError, match="sha256 must be 64 hexadecimal digits, got 'abc'"):
        load_pretrained("short")
    with pytest.raises(HubError, match="could not download"):
        load_pretrained("gone")
    assert _files(cache) == []


def test_listing_pretrained_models_downloads_nothing(saved, cache, monkeypatch):
    from nmmozoo.policy import list_models

    _, path = saved
    _index(monkeypatch, baseline_tiny={"url": path.as_uri(), "sha256": sha256_of(path)})
    assert list_models(pretrained=True) == ["baseline_tiny"]
    assert not cache.exists()
