"""Replays: recording (checked against the env's own state), the file, the GIF, the HTML viewer
(in headless Chromium where it is installed) and the ``predict`` / ``render`` commands."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from nmmozoo.cli import main
from nmmozoo.env import STAT_NAMES, make_env, random_actions
from nmmozoo.env import constants as C
from nmmozoo.render import MATERIAL_RGB, render, render_gif, render_html
from nmmozoo.replay import ARRAYS, Recorder, Replay, ReplayError

TICKS = 24
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    """A tiny map played with random actions for TICKS ticks, recorded; beside it, copies of
    the env's state taken independently after every tick."""
    torch.manual_seed(0)
    env = make_env("tiny", num_maps=1, seed=3, tasks="heldout", map_pool="eval")
    td = env.reset()
    s = env.world.state
    gen = torch.Generator().manual_seed(0)
    rec = Recorder(env, policy="random", seed=3, preset="tiny")
    keys = ("alive", "ent_id", "row", "col", "health", "npc_type")
    refs = {k: [getattr(s, k)[0].clone()] for k in keys}
    refs["material"] = [s.material[0].clone()]
    refs["stats"] = [env.world.stats()[0].clone()]
    refs["hits"], refs["died_tick"] = [torch.zeros(16, dtype=torch.int32)], None
    refs["progress"] = [env.world.tasks.progress[0].clone()]
    for _ in range(TICKS):
        random_actions(td, generator=gen)
        with rec.tick():
            td = env.step(td)["next"]
        for k in keys:
            refs[k].append(getattr(s, k)[0].clone())
        refs["material"].append(s.material[0].clone())
        refs["stats"].append(env.world.stats()[0].clone())
        refs["hits"].append(s.events[0, :, C.EVENT["SCORE_HIT"]].clone())
        refs["progress"].append(env.world.tasks.progress[0].clone())
    refs = {k: torch.stack(v).numpy() if isinstance(v, list) else v for k, v in refs.items()}
    refs["died_tick"] = s.died_tick[0].numpy().copy()
    refs["task_names"] = [env.world.tasks.specs[i].name for i in env.world.tasks.task_id[0].tolist()]
    replay = rec.finish()
    path = replay.save(tmp_path_factory.mktemp("replay") / "tiny.replay.npz")
    return replay, refs, path


def test_recorded_frames_are_the_env_state(episode):
    replay, refs, _ = episode
    assert replay.ticks == TICKS and replay.meta["ticks"] == TICKS
    for k in ("alive", "ent_id", "row", "col", "health", "npc_type"):
        np.testing.assert_array_equal(replay[k].astype(np.int64), refs[k].astype(np.int64), err_msg=k)
    for t in range(TICKS + 1):
        np.testing.assert_array_equal(replay.material_at(t), refs["material"][t], err_msg=f"tick {t}")
    assert len(replay["tile_tick"]) > 0, "random play on tiny depletes some resource tiles"
    names = replay.meta["stat_names"]
    for name in ("food", "water", "gold", "max_level", "damage_taken"):
        np.testing.assert_array_equal(replay["stats"][..., names.index(name)],
                                      refs["stats"][..., STAT_NAMES.index(name)], err_msg=name)
    np.testing.assert_array_equal(replay["task_progress"], np.round(refs["progress"] * 100))
    tasks = [replay.meta["tasks"][i]["name"] for i in replay["task"]]
    assert tasks == refs["task_names"]


def test_attacks_and_deaths_match_the_env(episode):
    replay, refs, _ = episode
    att = replay["attacks"].astype(np.int64)
    P = replay.num_agents
    assert len(att) > 0
    # every player's executed attacks, per tick, are the env's SCORE_HIT events
    hits = np.zeros((TICKS + 1, P), dtype=np.int64)
    mine = att[att[:, 1] < P]
    np.add.at(hits, (mine[:, 0], mine[:, 1]), 1)
    np.testing.assert_array_equal(hits, refs["hits"])
    assert set(att[:, 3].tolist()) <= {0, 1, 2}
    dth = replay["deaths"].astype(np.int64)
    alive, ids = refs["alive"], refs["ent_id"]
    for t, slot, eid, r, c, killer in dth:
        assert alive[t - 1, slot] and ids[t - 1, slot] == eid
        assert not alive[t, slot] or ids[t, slot] != eid
        if killer >= 0:  # the killer hit that victim in that tick
            assert ((att[:, 0] == t) & (att[:, 1] == killer) & (att[:, 2] == slot)).any()
    # every player death is the env's died_tick; no death is missed
    for p in range(P):
        mine = dth[dth[:, 1] == p]
        assert (mine[:, 0].tolist() or [-1]) == [refs["died_tick"][p]]
    gone = (alive[:-1] == 1) & ((alive[1:] == 0) | (ids[1:] != ids[:-1]))
    assert gone.sum() == len(dth)


def test_round_trip_and_bad_files(episode, tmp_path):
    replay, _, path = episode
    back = Replay.load(path)
    assert back.meta == json.loads(json.dumps(replay.meta))
    assert set(back.arrays) == set(ARRAYS)
    for k in ARRAYS:
        np.testing.assert_array_equal(back[k], replay[k], err_msg=k)
    assert back["row"].dtype == np.uint8 and back["health"].dtype == np.uint8
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"meta", *ARRAYS}
    # an exact file name is kept (np.savez would append .npz)
    assert replay.save(tmp_path / "plain.replay").name == "plain.replay"
    with pytest.raises(ReplayError, match="does not exist"):
        Replay.load(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not a replay")
    with pytest.raises(ReplayError, match="not an nmmozoo replay"):
        Replay.load(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", meta=np.frombuffer(b'{"format": "something"}', dtype=np.uint8))
    with pytest.raises(ReplayError, match="not an nmmozoo replay"):
        Replay.load(tmp_path / "other.npz")


def test_gif_frames(episode, tmp_path):
    from PIL import Image

    _, refs, path = episode
    out = render_gif(path, tmp_path / "a.gif", scale=4)
    with Image.open(out) as im:
        assert im.n_frames == TICKS + 1
        assert im.size == (32 * 4, 32 * 4 + 16)  # tiny: 32 playable tiles
        lo = 8  # tiny's border: find a tile with no entity near it, check its colour
        occupied = np.zeros((48, 48), bool)
        occupied[refs["row"][0], refs["col"][0]] = True
        free = [(r, c) for r in range(lo + 1, lo + 31) for c in range(lo + 1, lo + 31)
                if not occupied[r - 1:r + 2, c - 1:c + 2].any()]
        r, c = free[0]
        px = im.convert("RGB").getpixel(((c - lo) * 4 + 2, (r - lo) * 4 + 2 + 16))
        assert px == MATERIAL_RGB[refs["material"][0][r, c]]
    every = render_gif(path, tmp_path / "b.gif", scale=2, every=5)
    with Image.open(every) as im:
        assert im.n_frames == len(range(0, TICKS + 1, 5))


def _embedded(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="replay-data">(.*?)</script>', page, re.DOTALL)
    assert m, "the replay data is embedded"
    return json.loads(m.group(1))


def test_html_is_self_contained(episode, tmp_path):
    replay, _, path = episode
    out = render_html(path, tmp_path / "v.html")
    page = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"<(link|iframe|img)\b", page, re.IGNORECASE)
    assert not re.search(r"<script[^>]*\bsrc=", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page
    data = _embedded(page)
    assert data["meta"]["ticks"] == TICKS
    for k in ("row", "health", "attacks"):
        spec = data["arrays"][k]
        arr = np.frombuffer(zlib.decompress(base64.b64decode(spec["b64"])), dtype=np.dtype(spec["dtype"]).newbyteorder("<"))
        np.testing.assert_array_equal(arr.reshape(spec["shape"]), replay[k])
    assert out.stat().st_size < 200_000


def _chromium(url: str, tmp_path: Path, *extra: str) -> tuple[str, str]:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=4000", *extra, url]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    return p.stdout, p.stderr


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)")
def test_html_plays_in_headless_chromium(episode, tmp_path):
    _, _, path = episode
    out = render_html(path, tmp_path / "v.html")
    dom, log = _chromium(f"{out.resolve().as_uri()}#t=3&follow=2&speed=50", tmp_path, "--dump-dom")
    m = re.search(r'<pre id="status">(.*?)</pre>', dom, re.DOTALL)
    assert m, f"no status element in the dumped DOM; chromium said: {log[-2000:]}"
    status = json.loads(m.group(1))
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert status["errors"] == [] and console == [], (status, console)
    assert status["ready"] is True
    assert status["tick"] > 3 and status["frames"] >= 2, status  # it played on from tick 3
    assert status["follow"] == 1  # agent 2 is slot 1
    assert "Agent 2" in dom or "agent 2" in dom


def test_cli_predict_and_render(tmp_path, capsys):
    rep = tmp_path / "f.replay.npz"
    assert main(["predict", "forager", "--preset", "tiny", "--ticks", "6", "--seed", "1", "--replay", str(rep)]) == 0
    r = Replay.load(rep)
    assert r.ticks == 6 and r.meta["policy"] == "forager" and r.meta["preset"] == "tiny"
    assert main(["render", str(rep)]) == 0
    assert (tmp_path / "f.replay.gif").stat().st_size > 0 and (tmp_path / "f.replay.html").stat().st_size > 0
    assert main(["render", str(rep), "--html", str(tmp_path / "only.html")]) == 0
    assert (tmp_path / "only.html").exists() and not (tmp_path / "only.gif").exists()
    assert set(render(rep, tmp_path / "x" / "stem")) == {"gif", "html"}
    assert (tmp_path / "x" / "stem.gif").exists()
    capsys.readouterr()
    (tmp_path / "junk.npz").write_bytes(b"junk")
    for argv, words in ((["render", str(tmp_path / "nope.npz")], "does not exist"),
                        (["render", str(tmp_path / "junk.npz")], "not an nmmozoo replay"),
                        (["predict", "nosuchpolicy", "--replay", str(tmp_path / "n.npz")], "unknown model"),
                        (["predict", "forager", "--ckpt_path", "takeru", "--replay", str(tmp_path / "n.npz")],
                         "no weights")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "n.npz").exists()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)")
def test_headless_check_sees_a_broken_page(episode, tmp_path):
    """The check above can fail: a page whose embedded data is damaged reports its error."""
    _, _, path = episode
    page = render_html(path, tmp_path / "v.html").read_text()
    data = _embedded(page)
    data["arrays"]["row"]["b64"] = base64.b64encode(b"not deflated").decode()
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace(re.search(r'id="replay-data">(.*?)</script>', page, re.DOTALL).group(1),
                                   json.dumps(data)))
    dom, _ = _chromium(broken.resolve().as_uri(), tmp_path, "--dump-dom")
    status = json.loads(re.search(r'<pre id="status">(.*?)</pre>', dom, re.DOTALL).group(1))
    assert status["ready"] is False and status["errors"], status


def test_a_step_outside_the_recorder_is_refused():
    env = make_env("tiny", num_maps=1, seed=0, tasks="none")
    td = env.reset()
    rec = Recorder(env)
    random_actions(td)
    td = env.step(td)["next"]  # not recorded: the next recorded frame would be mislabelled
    random_actions(td)
    with pytest.raises(ReplayError, match=r"inside recorder\.tick\(\)"), rec.tick():
        env.step(td)
    assert rec.finish().ticks == 0 and rec.finish()["task"].tolist() == [-1] * 16
