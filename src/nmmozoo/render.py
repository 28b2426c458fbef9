"""Watch a replay (:mod:`nmmozoo.replay`): an animated GIF and a self-contained HTML viewer.

    from nmmozoo.render import render
    render("forager.replay.npz")                     # forager.replay.gif + forager.replay.html
    render("forager.replay.npz", "out/episode")      # out/episode.gif + out/episode.html

or ``nmmozoo render forager.replay.npz [--gif OUT.gif] [--html OUT.html]``.

Both draw the playable square, tiles coloured by material (resources deplete and regrow as
recorded), players as dots with a dark outline coloured by population (team), NPCs as squares
coloured by kind (passive light grey, neutral orange, aggressive red), the tick's attacks as
lines from attacker to target coloured by style (melee red, range yellow, mage blue) and
deaths as crosses (a few ticks long).

The HTML file needs no network and no other file: its CSS and JavaScript are inline and the
replay's arrays are embedded as JSON (each array's raw little-endian bytes, deflated and in
base64; the page inflates them with the browser's ``DecompressionStream``). It has a canvas,
play/pause, a tick slider, the speed, a zoom that centres on the followed agent, and a side
panel with the followed agent's task, stats, items and recent fights. Follow an agent by
clicking it (players and NPCs) or from the list. The URL hash opens it at a state:
``replay.html#t=150&follow=3&play=0&speed=10&zoom=2`` (``follow``: a player id, 1..P). The
page writes its state as JSON into ``<pre id="status">`` (``ready``, ``tick``, ``frames``
drawn, ``errors`` caught by ``window.onerror``), which headless browsers can read back.
"""

from __future__ import annotations

import base64
import colorsys
import io
import json
import zlib
from pathlib import Path

import numpy as np

from ._files import atomic_write
from .replay import ARRAYS, Replay, ReplayError

MATERIAL_RGB = (
    (0, 0, 0), (66, 135, 245), (112, 170, 82), (152, 160, 92), (52, 122, 52), (128, 128, 128),
    (82, 82, 82), (190, 122, 70), (122, 92, 62), (30, 92, 42), (182, 150, 202), (150, 92, 212),
    (172, 190, 92), (212, 112, 172), (22, 52, 140), (92, 182, 232),
)
"""Colour of each material (``nmmozoo.env.constants.MATERIAL_NAMES`` order)."""
NPC_RGB = ((0, 0, 0), (235, 235, 235), (255, 165, 0), (230, 30, 30))  # by npc_type
STYLE_RGB = ((255, 60, 60), (255, 230, 40), (60, 170, 255))  # melee, range, mage
DEATH_TICKS = 4  # how many frames a death's cross stays
HEADER = 16


def team_rgb(n: int) -> list[tuple[int, int, int]]:
    """``n`` well-spread team colours (golden-ratio hues, alternating brightness)."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.85, 1.0 if i % 2 == 0 else 0.8)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def _as_replay(replay) -> Replay:
    return replay if isinstance(replay, Replay) else Replay.load(replay)


def _view(rep: Replay) -> tuple[int, int]:
    """(first tile, side) of the playable square."""
    cfg = rep.meta.get("config") or {}
    H = int(rep["material"].shape[0])
    border = int(cfg.get("map_border", 0))
    if not 0 <= border < H // 2:
        border = 0
    return border, H - 2 * border


def _positions(rep: Replay, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each slot for the attacks of tick ``t``: frame ``t``'s where the slot
    still holds the same entity, else frame ``t - 1``'s (the entity died, or another took it)."""
    p = max(t - 1, 0)
    same = rep["ent_id"][t] == rep["ent_id"][p]
    return (np.where(same, rep["row"][t], rep["row"][p]).astype(np.int64),
            np.where(same, rep["col"][t], rep["col"][p]).astype(np.int64))


# --- GIF --------------------------------------------------------------------------------------------
def render_gif(replay, out: str | Path, scale: int | None = None, fps: float = 10.0,
               every: int = 1) -> Path:
    """Write an animated GIF of ``replay`` (a :class:`Replay` or a file): one frame per
    ``every`` ticks (frames ``0, every, 2·every, ...``), ``scale`` pixels a tile (default:
    about 640 pixels across), ``fps`` frames a second, a header line with the tick and the
    living players and NPCs. Returns the path."""
    from PIL import Image, ImageDraw

    rep = _as_replay(replay)
    if every < 1 or fps <= 0:
        raise ValueError(f"every must be >= 1 and fps > 0, got {every}, {fps}")
    lo, side = _view(rep)
    scale = int(scale or max(2, round(640 / side)))
    P, E, T = rep.num_agents, rep.num_entities, rep.ticks
    team_size = max(1, int((rep.meta.get("config") or {}).get("team_size", 1)))
    n_teams = -(-P // team_size)
    # palette: materials 0-15, NPC kinds 16-19, styles 20-22, 23 white, 24 header, 25 black, teams 26-
    teams = team_rgb(min(n_teams, 230))
    pal = [*MATERIAL_RGB, *NPC_RGB, *STYLE_RGB, (255, 255, 255), (24, 24, 28), (0, 0, 0), *teams]
    flat = [v for rgb in pal for v in rgb]
    flat += [0] * (768 - len(flat))
    WHITE, HEAD, BLACK, TEAM0 = 23, 24, 25, 26
    team_of = (np.arange(P) // team_size) % len(teams) + TEAM0

    mat = rep["material"].astype(np.uint8).copy()
    mflat = mat.reshape(-1)
    tt, ti, tm = rep["tile_tick"], rep["tile_index"].astype(np.int64), rep["tile_material"]
    att, dth = rep["attacks"].astype(np.int64), rep["deaths"].astype(np.int64)
    a_start = np.searchsorted(att[:, 0], np.arange(T + 2)) if len(att) else np.zeros(T + 2, dtype=np.int64)
    applied = 0
    r_ent = max(2.5, scale * 0.6)
    frames = []
    px = lambda r, c: ((c - lo + 0.5) * scale, (r - lo + 0.5) * scale + HEADER)
    for t in range(T + 1):
        n = int(np.searchsorted(tt, t, side="right"))
        if n > applied:
            mflat[ti[applied:n]] = tm[applied:n]
            applied = n
        if t % every:
            continue
        tiles = mat[lo:lo + side, lo:lo + side]
        img = np.full((side * scale + HEADER, side * scale), HEAD, dtype=np.uint8)
        img[HEADER:] = tiles.repeat(scale, 0).repeat(scale, 1)
        im = Image.fromarray(img, "P")
        im.putpalette(flat)
        d = ImageDraw.Draw(im)
        alive = rep["alive"][t].astype(bool)
        row, col = rep["row"][t].astype(np.int64), rep["col"][t].astype(np.int64)
        kind = rep["npc_type"][t].astype(np.int64)
        if t > 0:  # the tick's attacks
            ar, ac = _positions(rep, t)
            for _, a, v, s in att[a_start[t]:a_start[t + 1]]:
                d.line([px(ar[a], ac[a]), px(ar[v], ac[v])], fill=20 + int(s) % 3, width=max(1, scale // 4))
        for e in np.flatnonzero(alive & (np.arange(E) >= P)):
            x, y = px(row[e], col[e])
            h = scale * 0.4
            d.rectangle([x - h, y - h, x + h, y + h], fill=16 + int(kind[e]) % 4, outline=BLACK)
        for e in np.flatnonzero(alive[:P]):
            x, y = px(row[e], col[e])
            d.ellipse([x - r_ent, y - r_ent, x + r_ent, y + r_ent], fill=int(team_of[e]), outline=BLACK)
        recent = dth[(dth[:, 0] <= t) & (dth[:, 0] > t - DEATH_TICKS)] if len(dth) else dth
        for _, slot, _, r, c, _ in recent:
            x, y = px(r, c)
            h = max(2.0, scale * 0.6)
            d.line([(x - h, y - h), (x + h, y + h)], fill=WHITE, width=max(1, scale // 4))
            d.line([(x - h, y + h), (x + h, y - h)], fill=WHITE, width=max(1, scale // 4))
        n_pl, n_npc = int(alive[:P].sum()), int(alive[P:].sum())
        d.text((4, 2), f"tick {t}/{T}   players {n_pl}/{P}   NPCs {n_npc}   "
               f"{rep.meta.get('policy') or ''}", fill=WHITE)
        frames.append(im)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()  # written whole or not at all
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=max(20, round(1000 / fps)), optimize=True, disposal=1)
    return atomic_write(out, buf.getvalue())


# --- HTML -------------------------------------------------------------------------------------------
def _pack(a: np.ndarray) -> dict:
    """An array for the page: dtype, shape and its deflated little-endian bytes in base64."""
    a = np.asarray(a)
    if a.dtype == np.int64 or a.dtype == np.uint64:
        a = a.astype(np.int32) if a.size == 0 or (a.min() >= -2 ** 31 and a.max() < 2 ** 31) else a.astype(np.float64)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<")))
    return {"dtype": a.dtype.name, "shape": list(a.shape),
            "b64": base64.b64encode(zlib.compress(a.tobytes(), 9)).decode("ascii")}


def payload(rep: Replay) -> str:
    """The page's embedded JSON (safe inside a ``<script>`` element)."""
    lo, side = _view(rep)
    P = rep.num_agents
    team_size = max(1, int((rep.meta.get("config") or {}).get("team_size", 1)))
    view = {"lo": lo, "side": side, "material_rgb": MATERIAL_RGB, "npc_rgb": NPC_RGB,
            "style_rgb": STYLE_RGB, "team_rgb": team_rgb(-(-P // team_size)), "death_ticks": DEATH_TICKS}
    data = {"meta": rep.meta, "view": view, "arrays": {k: _pack(rep[k]) for k in ARRAYS}}
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def render_html(replay, out: str | Path, title: str | None = None) -> Path:
    """Write the self-contained HTML viewer of ``replay`` (see the module doc)."""
    import html as _html

    rep = _as_replay(replay)
    m = rep.meta
    title = title or f"nmmozoo replay: {m.get('policy') or 'policy'} on {m.get('preset') or 'env'}, " \
                     f"{rep.ticks} ticks"
    page = (_PAGE.replace("__TITLE__", _html.escape(title))
            .replace("__DATA__", payload(rep)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out, page.encode("utf-8"))


def render(replay_file, out: str | Path | None = None, gif: bool | str | Path = True,
           html: bool | str | Path = True, **gif_options) -> dict[str, Path]:
    """Render a replay file to ``<out>.gif`` and ``<out>.html`` (``out``: a path stem; default
    the replay file's path without ``.npz``). ``gif``/``html``: False to skip one, or a path
    of its own. ``gif_options`` go to :func:`render_gif`. Returns ``{"gif": path, "html":
    path}`` for what was written."""
    rep = _as_replay(replay_file)
    if out is None:
        if isinstance(replay_file, Replay):
            raise ReplayError("render: give `out` when rendering a Replay object")
        p = Path(replay_file)
        out = p.with_suffix("") if p.suffix == ".npz" else p
    out = Path(out)
    stem = out.with_suffix("") if out.suffix in (".gif", ".html", ".npz") else out
    done: dict[str, Path] = {}
    if gif is not False:
        done["gif"] = render_gif(rep, stem.with_name(stem.name + ".gif") if gif is True else gif, **gif_options)
    if html is not False:
        done["html"] = render_html(rep, stem.with_name(stem.name + ".html") if html is True else html)
    return done


_PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
*{box-sizing:border-box}
body{margin:0;background:#16171b;color:#e6e6e6;font:13px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif}
#app{display:flex;gap:12px;padding:10px;align-items:flex-start}
#left{flex:0 0 auto;width:max(320px,min(calc(100vh - 100px),calc(100vw - 390px)))}
#view{display:block;background:#000;cursor:crosshair;border:1px solid #333;width:100%;height:auto}
#controls{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin-top:6px}
#controls button{background:#2c2f36;color:#eee;border:1px solid #555;border-radius:4px;padding:3px 10px;font-size:14px;cursor:pointer}
#controls select{background:#2c2f36;color:#eee;border:1px solid #555;border-radius:3px}
#scrub{flex:1 1 200px;min-width:120px}
#panel{flex:1 1 340px;max-width:460px;min-width:300px;background:#1f2126;border:1px solid #333;border-radius:6px;padding:10px;overflow:auto;max-height:calc(100vh - 20px)}
h1{font-size:15px;margin:0 0 6px}h2{font-size:13px;margin:10px 0 4px;color:#9fc3ff;text-transform:uppercase;letter-spacing:.04em}
table{border-collapse:collapse;width:100%}td{padding:1px 4px;vertical-align:top}td.k{color:#aaa;white-space:nowrap}
.bar{position:relative;height:12px;background:#333;border-radius:3px;overflow:hidden}
.bar>div{height:100%}.bar>span{position:absolute;left:4px;top:-2px;font-size:11px}
.muted{color:#999}.dead{color:#ff7b7b}.ok{color:#7bff9a}
.sw{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px;vertical-align:-1px;border:1px solid #000}
#log div{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
#errors{color:#ff8080;white-space:pre-wrap}
#status{display:none}
</style></head>
<body>
<div id="app">
 <div id="left">
  <canvas id="view" width="760" height="760"></canvas>
  <div id="controls">
   <button id="play" title="play / pause (space)">&#9654;</button>
   <button id="back" title="one tick back (left arrow)">&#8249;</button>
   <button id="fwd" title="one tick on (right arrow)">&#8250;</button>
   <input type="range" id="scrub" min="0" max="0" value="0">
   <span id="ticklabel">tick 0</span>
   <label>speed <select id="speed"><option value="2">2</option><option value="5">5</option>
     <option value="10" selected>10</option><option value="20">20</option><option value="50">50</option></select> ticks/s</label>
   <label>follow <select id="follow"></select></label>
   <label>zoom <select id="zoom"><option value="1">1&times;</option><option value="2">2&times;</option>
     <option value="4">4&times;</option><option value="8">8&times;</option></select></label>
   <label><input type="checkbox" id="showatt" checked> attacks</label>
  </div>
 </div>
 <div id="panel">
  <h1 id="title"></h1>
  <div id="summary" class="muted"></div>
  <div id="errors"></div>
  <div id="agent"></div>
  <h2>Legend</h2><div id="legend" class="muted"></div>
 </div>
</div>
<pre id="status">{"ready":false,"tick":null,"frames":0,"errors":[]}</pre>
<script type="application/json" id="replay-data">__DATA__</script>
<script>
"use strict";
const ST = {ready: false, tick: null, frames: 0, errors: [], follow: null, playing: false};
function writeStatus() { document.getElementById("status").textContent = JSON.stringify(ST); }
function fail(msg) {
  ST.errors.push(String(msg)); writeStatus();
  document.getElementById("errors").textContent = "Error: " + ST.errors.join("\n");
}
window.addEventListener("error", e => fail(e.message || e));
window.addEventListener("unhandledrejection", e => fail(e.reason && e.reason.message || e.reason));

const TYPED = {uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array,
               uint32: Uint32Array, int32: Int32Array, float32: Float32Array, float64: Float64Array};
async function decode(spec) {
  const bin = atob(spec.b64), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  if (typeof DecompressionStream === "undefined") throw new Error("this browser lacks DecompressionStream");
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  const buf = await new Response(stream).arrayBuffer();
  const T = TYPED[spec.dtype];
  if (!T) throw new Error("unknown dtype " + spec.dtype);
  return {d: new T(buf), shape: spec.shape};
}
const rgb = c => `rgb(${c[0]},${c[1]},${c[2]})`;
const esc = s => String(s).replace(/[&<>"]/g, ch => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[ch]));

async function main() {
  const raw = JSON.parse(document.getElementById("replay-data").textContent);
  const meta = raw.meta, V = raw.view, A = {};
  for (const [k, spec] of Object.entries(raw.arrays)) A[k] = await decode(spec);
  const F = A.alive.shape[0], E = A.alive.shape[1], T = F - 1, P = A.stats.shape[1];
  const K = A.stats.shape[2], NI = A.items.shape[2];
  const H = A.material.shape[0], W = A.material.shape[1];
  const cfg = meta.config || {}, teamSize = Math.max(1, cfg.team_size || 1);
  const SN = {}; meta.stat_names.forEach((n, i) => SN[n] = i);
  const at = (name, t, e) => A[name].d[t * E + e];
  const stat = (t, p, name) => A.stats.d[(t * P + p) * K + SN[name]];
  const lo = V.lo, side = V.side;

  // attacks and deaths: the row range of each tick (rows are in tick order)
  const ranges = (arr, cols) => {
    const n = arr.shape[0], start = new Int32Array(F + 1);
    let j = 0;
    for (let t = 0; t <= F; t++) { while (j < n && arr.d[j * cols] < t) j++; start[t] = j; }
    return start;
  };
  const attStart = ranges(A.attacks, 4), dthStart = ranges(A.deaths, 6);
  const chStart = (() => { const n = A.tile_tick.shape[0], s = new Int32Array(F + 1); let j = 0;
    for (let t = 0; t <= F; t++) { while (j < n && A.tile_tick.d[j] < t) j++; s[t] = j; } return s; })();

  // terrain: an off-screen canvas of the playable square, one pixel a tile
  const off = document.createElement("canvas"); off.width = side; off.height = side;
  const octx = off.getContext("2d"), img = octx.createImageData(side, side);
  const mat = new Uint8Array(A.material.d); let applied = 0;
  function paintTerrain() {
    for (let r = 0; r < side; r++) for (let c = 0; c < side; c++) {
      const m = mat[(r + lo) * W + c + lo], col = V.material_rgb[m] || [255, 0, 255], o = (r * side + c) * 4;
      img.data[o] = col[0]; img.data[o + 1] = col[1]; img.data[o + 2] = col[2]; img.data[o + 3] = 255;
    }
    octx.putImageData(img, 0, 0);
  }
  function terrainAt(t) {
    const want = chStart[t + 1];  // changes of ticks <= t
    if (want === applied) return;
    if (want < applied) { mat.set(A.material.d); applied = 0; }
    for (let j = applied; j < want; j++) mat[A.tile_index.d[j]] = A.tile_material.d[j];
    applied = want; paintTerrain();
  }
  paintTerrain();

  const cv = document.getElementById("view"), ctx = cv.getContext("2d");
  const scrub = document.getElementById("scrub"), followSel = document.getElementById("follow");
  const speedSel = document.getElementById("speed"), zoomSel = document.getElementById("zoom");
  const showAtt = document.getElementById("showatt");
  scrub.max = T;
  document.getElementById("title").textContent =
    `${meta.policy || "policy"} on ${meta.preset || "?"} — map ${meta.map_seed}, seed ${meta.seed ?? "?"}`;
  const taskOf = p => A.task.d[p] >= 0 ? meta.tasks[A.task.d[p]] : null;
  followSel.add(new Option("nobody", "-1"));
  for (let p = 0; p < P; p++) {
    const tk = taskOf(p);
    followSel.add(new Option(`agent ${p + 1}` + (tk ? ` — ${tk.name}` : ""), String(p)));
  }
  const teamColour = p => V.team_rgb[Math.floor(p / teamSize) % V.team_rgb.length];
  const who = (t, e) => e < P ? `agent ${e + 1}` :
    `${meta.npc_type_names[at("npc_type", t, e)] || "NPC"} NPC ${at("ent_id", t, e)} (L${at("level", t, e)})`;
  // legend
  document.getElementById("legend").innerHTML =
    meta.material_names.map((n, i) => `<span class="sw" style="background:${rgb(V.material_rgb[i])}"></span>${n}`).join(" ")
    + "<br>players: dots by team; NPCs: squares"
    + [1, 2, 3].map(i => `<span class="sw" style="background:${rgb(V.npc_rgb[i])}"></span>${meta.npc_type_names[i]}`).join("")
    + "<br>attacks:" + V.style_rgb.map((c, i) => `<span class="sw" style="background:${rgb(c)}"></span>${meta.style_names[i]}`).join("")
    + "<br>&times;: a death; click an entity to follow it";

  let t = 0, follow = -1, playing = false, timer = null;
  function view() {
    const z = Number(zoomSel.value) || 1, n = side / z;
    let x0 = (side - n) / 2, y0 = x0;
    if (follow >= 0 && z > 1) {
      const fr = at("row", t, follow) - lo, fc = at("col", t, follow) - lo;
      x0 = Math.min(Math.max(fc + 0.5 - n / 2, 0), side - n); y0 = Math.min(Math.max(fr + 0.5 - n / 2, 0), side - n);
    }
    return {x0, y0, n, k: cv.width / n};
  }
  function pos(tk, e) {  // position for the attacks of tick tk (see render._positions)
    const p = Math.max(tk - 1, 0), same = at("ent_id", tk, e) === at("ent_id", p, e);
    const s = same ? tk : p;
    return [at("row", s, e), at("col", s, e)];
  }
  function draw() {
    terrainAt(t);
    const v = view(), k = v.k;
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, cv.width, cv.height);
    ctx.drawImage(off, v.x0, v.y0, v.n, v.n, 0, 0, cv.width, cv.height);
    const X = c => (c - lo - v.x0 + 0.5) * k, Y = r => (r - lo - v.y0 + 0.5) * k;
    if (showAtt.checked && t > 0) {
      ctx.lineWidth = Math.max(1, k / 4);
      for (let j = attStart[t]; j < attStart[t + 1]; j++) {
        const a = A.attacks.d[j * 4 + 1], b = A.attacks.d[j * 4 + 2], s = A.attacks.d[j * 4 + 3];
        const pa = pos(t, a), pb = pos(t, b);
        ctx.strokeStyle = rgb(V.style_rgb[s % 3]);
        ctx.beginPath(); ctx.moveTo(X(pa[1]), Y(pa[0])); ctx.lineTo(X(pb[1]), Y(pb[0])); ctx.stroke();
      }
    }
    const rad = Math.max(3, k * 0.55), h = Math.max(2, k * 0.4);
    ctx.lineWidth = Math.max(1, k / 8); ctx.strokeStyle = "#000";
    for (let e = P; e < E; e++) {
      if (!at("alive", t, e)) continue;
      ctx.fillStyle = rgb(V.npc_rgb[at("npc_type", t, e) % 4]);
      const x = X(at("col", t, e)), y = Y(at("row", t, e));
      ctx.fillRect(x - h, y - h, 2 * h, 2 * h); ctx.strokeRect(x - h, y - h, 2 * h, 2 * h);
    }
    for (let e = 0; e < P; e++) {
      if (!at("alive", t, e)) continue;
      ctx.fillStyle = rgb(teamColour(e));
      ctx.beginPath(); ctx.arc(X(at("col", t, e)), Y(at("row", t, e)), rad, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    }
    ctx.lineWidth = Math.max(1.5, k / 4);
    for (let j = dthStart[Math.max(0, t - V.death_ticks + 1)]; j < dthStart[t + 1]; j++) {
      const age = t - A.deaths.d[j * 6], x = X(A.deaths.d[j * 6 + 4]), y = Y(A.deaths.d[j * 6 + 3]), d = Math.max(3, k * 0.7);
      ctx.strokeStyle = `rgba(255,255,255,${1 - age / V.death_ticks})`;
      ctx.beginPath(); ctx.moveTo(x - d, y - d); ctx.lineTo(x + d, y + d); ctx.moveTo(x - d, y + d); ctx.lineTo(x + d, y - d); ctx.stroke();
    }
    if (follow >= 0) {
      const x = X(at("col", t, follow)), y = Y(at("row", t, follow));
      ctx.strokeStyle = "#ffff00"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(x, y, rad + Math.max(5, k * 0.6), 0, 2 * Math.PI); ctx.stroke();
    }
    scrub.value = t;
    document.getElementById("ticklabel").textContent = `tick ${t} / ${T}`;
    summary(); panel();
    ST.tick = t; ST.frames++; ST.follow = follow >= 0 ? follow : null; ST.playing = playing; writeStatus();
  }
  function summary() {
    let pl = 0, npc = 0;
    for (let e = 0; e < E; e++) if (at("alive", t, e)) { if (e < P) pl++; else npc++; }
    document.getElementById("summary").innerHTML =
      `players alive ${pl} / ${P}, NPCs ${npc}; this tick: ${attStart[t + 1] - attStart[t]} attacks, ` +
      `${dthStart[t + 1] - dthStart[t]} deaths` + (meta.ended && t === T ? " — the episode ended" : "");
  }
  const bar = (v, max, colour, text) =>
    `<div class="bar"><div style="width:${Math.max(0, Math.min(100, 100 * v / max))}%;background:${colour}"></div><span>${text}</span></div>`;
  function deathOf(e) {  // the death of the entity in slot e at tick t: [tick, killer slot] or null
    const id = at("ent_id", t, e);
    for (let j = dthStart[0]; j < dthStart[t + 1]; j++)
      if (A.deaths.d[j * 6 + 1] === e && A.deaths.d[j * 6 + 2] === id) return [A.deaths.d[j * 6], A.deaths.d[j * 6 + 5]];
    return null;
  }
  function panel() {
    const el = document.getElementById("agent");
    if (follow < 0) { el.innerHTML = '<h2>Follow</h2><p class="muted">Click an agent or an NPC on the map, or pick one from the list.</p>'; return; }
    const e = follow, alive = at("alive", t, e), death = alive ? null : deathOf(e);
    let state = alive ? '<span class="ok">alive</span>' : '<span class="dead">dead</span>';
    if (death) state += ` since tick ${death[0]}` + (death[1] >= 0 ? `, killed by ${esc(who(death[0], death[1]))}` : " (no attacker: starvation or dehydration)");
    let h = `<h2>${esc(who(t, e))}</h2><div>${state} at (${at("row", t, e)}, ${at("col", t, e)})</div>`;
    h += `<table><tr><td class="k">health</td><td>${bar(at("health", t, e), cfg.health_max || 100, "#e04848", at("health", t, e))}</td></tr>`;
    if (e < P) {
      const rb = cfg.resource_base || 100, s = n => stat(t, e, n);
      h += `<tr><td class="k">food</td><td>${bar(s("food"), rb, "#5fbf4f", s("food"))}</td></tr>`;
      h += `<tr><td class="k">water</td><td>${bar(s("water"), rb, "#4f8fdf", s("water"))}</td></tr>`;
      h += `<tr><td class="k">gold</td><td>${s("gold")}</td></tr><tr><td class="k">level</td><td>${s("max_level")} (XP ${s("total_exp")})</td></tr>`;
      h += `<tr><td class="k">time alive</td><td>${s("time_alive")} ticks</td></tr>`;
      h += `<tr><td class="k">damage</td><td>dealt ${s("damage_dealt")}, taken ${s("damage_taken")}</td></tr>`;
      h += `<tr><td class="k">team</td><td><span class="sw" style="background:${rgb(teamColour(e))};margin-left:0"></span>${Math.floor(e / teamSize) + 1}</td></tr></table>`;
      const tk = taskOf(e);
      h += "<h2>Task</h2>";
      if (tk) {
        const pr = A.task_progress.d[t * P + e], done = A.task_completed.d[t * P + e];
        h += `<div><b>${esc(tk.name)}</b> <span class="muted">(${esc(tk.category)})</span></div><div class="muted">${esc(tk.text)}</div>`;
        h += bar(pr, 100, done ? "#3fbf6f" : "#c0a030", `${pr}%` + (done ? " — completed" : ""));
      } else h += '<div class="muted">no task</div>';
      h += "<h2>Skills</h2><table><tr>" + meta.skill_names.map(n => `<td class="k">${n}</td><td>${s(n + "_level")}</td>`)
        .map((c, i) => c + (i % 2 ? "</tr><tr>" : "")).join("") + "</tr></table>";
      const eq = A.equipped.d[t * P + e], items = [], worn = [];
      for (let i = 0; i < NI; i++) {
        const q = A.items.d[(t * P + e) * NI + i];
        if (q > 0) items.push(`${esc(meta.item_names[i] || "item " + i)} &times;${q}`);
        if (eq & (1 << i)) worn.push(esc(meta.item_names[i] || "item " + i));
      }
      h += `<h2>Items</h2><div>equipped: ${worn.join(", ") || '<span class="muted">nothing</span>'} (item level ${s("item_level")})</div>`;
      h += `<div>held: ${items.join(", ") || '<span class="muted">nothing</span>'}</div>`;
    } else h += `<tr><td class="k">kind</td><td>${esc(meta.npc_type_names[at("npc_type", t, e)])}, level ${at("level", t, e)}</td></tr></table>`;
    const id = at("ent_id", t, e), log = [];
    for (let j = attStart[t + 1] - 1; j >= 0 && log.length < 10; j--) {
      const tk = A.attacks.d[j * 4], a = A.attacks.d[j * 4 + 1], b = A.attacks.d[j * 4 + 2], s = meta.style_names[A.attacks.d[j * 4 + 3]];
      if (a === e && at("ent_id", tk, e) === id) log.push(`${tk}: hit ${esc(who(tk, b))} (${s})`);
      else if (b === e && at("ent_id", Math.max(tk - 1, 0), e) === id) log.push(`${tk}: hit by ${esc(who(tk, a))} (${s})`);
    }
    h += "<h2>Recent fights</h2><div id='log'>" + (log.map(x => `<div>${x}</div>`).join("") || '<span class="muted">none yet</span>') + "</div>";
    el.innerHTML = h;
  }
  function setTick(n) { t = Math.max(0, Math.min(T, n | 0)); draw(); }
  function setFollow(e) {
    follow = e; if (e >= 0 && e >= P && ![...followSel.options].some(o => o.value === String(e)))
      followSel.add(new Option(`NPC slot ${e}`, String(e)));
    followSel.value = String(e); draw();
  }
  function loop() {
    if (!playing) return;
    if (t >= T) { setPlaying(false); return; }
    setTick(t + 1);
    timer = setTimeout(loop, 1000 / (Number(speedSel.value) || 10));
  }
  function setPlaying(on) {
    playing = on; clearTimeout(timer);
    document.getElementById("play").innerHTML = on ? "&#10074;&#10074;" : "&#9654;";
    ST.playing = on; writeStatus();
    if (on) { if (t >= T) t = 0; timer = setTimeout(loop, 1000 / (Number(speedSel.value) || 10)); }
  }
  document.getElementById("play").onclick = () => setPlaying(!playing);
  document.getElementById("back").onclick = () => { setPlaying(false); setTick(t - 1); };
  document.getElementById("fwd").onclick = () => { setPlaying(false); setTick(t + 1); };
  scrub.oninput = () => setTick(Number(scrub.value));
  followSel.onchange = () => setFollow(Number(followSel.value));
  zoomSel.onchange = draw; showAtt.onchange = draw;
  speedSel.onchange = () => { if (playing) setPlaying(true); };
  cv.addEventListener("click", ev => {
    const rect = cv.getBoundingClientRect(), v = view();
    const cx = (ev.clientX - rect.left) * cv.width / rect.width, cy = (ev.clientY - rect.top) * cv.height / rect.height;
    const c = cx / v.k + v.x0 + lo - 0.5, r = cy / v.k + v.y0 + lo - 0.5;
    let best = -1, bd = 2.5 * 2.5;
    for (let e = 0; e < E; e++) {
      if (!at("alive", t, e)) continue;
      const d = (at("row", t, e) - r) ** 2 + (at("col", t, e) - c) ** 2 - (e < P ? 0.3 : 0);
      if (d < bd) { bd = d; best = e; }
    }
    setFollow(best);
  });
  document.addEventListener("keydown", ev => {
    if (ev.target.tagName === "SELECT" || ev.target.tagName === "INPUT" && ev.target.type !== "range") return;
    if (ev.key === " ") { ev.preventDefault(); setPlaying(!playing); }
    else if (ev.key === "ArrowRight") { setPlaying(false); setTick(t + 1); }
    else if (ev.key === "ArrowLeft") { setPlaying(false); setTick(t - 1); }
  });
  // the URL hash: #t=150&follow=3&play=0&speed=10&zoom=2
  const q = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (q.has("speed")) { const s = q.get("speed"); if (![...speedSel.options].some(o => o.value === s)) speedSel.add(new Option(s, s)); speedSel.value = s; }
  if (q.has("zoom")) zoomSel.value = q.get("zoom");
  if (q.has("follow")) { const f = Number(q.get("follow")) - 1; if (f >= 0 && f < P) { follow = f; followSel.value = String(f); } }
  else followSel.value = "-1";
  t = Math.max(0, Math.min(T, Number(q.get("t")) || 0));
  ST.ready = true;
  draw();
  setPlaying(q.get("play") !== "0");
}
main().catch(e => fail(e && e.stack || e));
</script>
</body></html>
"""
