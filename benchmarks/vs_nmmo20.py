"""The bundled env and nmmo 2.0.3 side by side: terrain, and three policies on each other's maps.

Runs both engines with the same three policies — ``still`` (every agent stands still),
``random`` (every action head drawn uniformly from its valid options, as
:func:`nmmozoo.env.random_actions` does here and from ``ActionTargets`` in 2.0.3) and
``forager`` (each agent walks the shortest passable path to the nearer goal of what it needs
more: Foliage when food < water, otherwise a drinkable tile, i.e. a passable tile 4-adjacent to
Water; it stays once there; no other action) — on ``--maps`` maps for ``--ticks`` ticks, on
each engine's own generated maps and on the other engine's maps (2.0.3's generated ``map.npy``
files are loaded into the bundled env; the bundled maps are written as 2.0.3 map files and
loaded by ``nmmo.Env.reset(map_id=...)``). It prints the terrain table of both map sets and
one population table per policy: alive over time, lifespan, event counts, NPC mix and levels,
kills, loot, gold and items held.

nmmo 2.0.3 pins numpy 1.23.3 and does not support Python 3.11 officially, so it lives in a
venv of its own, and this script drives it there through a subprocess (``--nmmo-python`` or
``$NMMO203_PYTHON``; the nmmo side needs numpy and nmmo only). Steps that install it on
Python 3.11 (tested)::

    python3.11 -m venv /work/nmmo203-venv
    P=/work/nmmo203-venv/bin/pip
    $P install "numpy==1.23.3" "Cython>=3" setuptools wheel
    $P install --no-build-isolation "vec-noise==1.1.4"
    $P install "scipy==1.10.0" "gym==0.23.0" "pettingzoo==1.22.3" "ordered-set==4.1.0" \\
        "imageio==2.23.0" psutil "tqdm<5" "dill==0.3.6" "py==1.11.0"
    $P install --no-deps "nmmo==2.0.3"

    python benchmarks/vs_nmmo20.py --nmmo-python /work/nmmo203-venv/bin/python --maps 4 --ticks 300

(Where nmmo 2.0.3 imports in the project's own interpreter, no ``--nmmo-python`` is needed.)
Without nmmo 2.0.3 the script prints these steps and exits 0. Nothing of nmmo is vendored.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

# Materials (the same indices in both engines).
VOID, WATER, GRASS, FOLIAGE, STONE, ORE, TREE, CRYSTAL, HERB, FISH = 0, 1, 2, 4, 5, 7, 9, 11, 13, 15
IMPASSABLE = np.array([m in (0, 1, 5, 14, 15) for m in range(16)])
CHECKPOINTS = (50, 100, 200, 300, 500, 750, 1000)
POLICIES = ("still", "random", "forager")
EVENTS = ("EAT_FOOD", "DRINK_WATER", "HARVEST_ITEM", "LEVEL_UP", "SCORE_HIT", "PVP_KILL",
          "NPC_KILL", "LOOT_ITEM", "EQUIP_ITEM", "CONSUME_ITEM", "EARN_GOLD", "BUY_ITEM")
INSTALL = __doc__[__doc__.index("    python3.11 -m venv"):__doc__.index("(Where")].rstrip()


# --- shared: the forager and the terrain statistics (numpy only) ---------------------------------
def drinkable(material: np.ndarray) -> np.ndarray:
    water = material == WATER
    near = np.zeros_like(water)
    near[1:] |= water[:-1]
    near[:-1] |= water[1:]
    near[:, 1:] |= water[:, :-1]
    near[:, :-1] |= water[:, 1:]
    return near & ~IMPASSABLE[material]


def distance_field(goal: np.ndarray, passable: np.ndarray, cap: int = 400) -> np.ndarray:
    """Steps along passable tiles (4-neighbourhood) to the nearest goal tile; a large number
    where none is reachable."""
    big = 1 << 20
    d = np.where(goal & passable, 0, big).astype(np.int32)
    for _ in range(cap):
        n = d.copy()
        np.minimum(n[1:], d[:-1] + 1, out=n[1:])
        np.minimum(n[:-1], d[1:] + 1, out=n[:-1])
        np.minimum(n[:, 1:], d[:, :-1] + 1, out=n[:, 1:])
        np.minimum(n[:, :-1], d[:, 1:] + 1, out=n[:, :-1])
        n[~passable] = big
        if np.array_equal(n, d):
            break
        d = n
    return d


# Move indices of both engines: North, South, East, West, Stay.
DELTAS = ((-1, 0), (1, 0), (0, 1), (0, -1))


class Forager:
    """Per map: the drinkable field is fixed (Water never changes); the food field is rebuilt
    every tick from the Foliage left."""

    def __init__(self, material: np.ndarray):
        self.passable = ~IMPASSABLE[material]
        self.water_d = distance_field(drinkable(material), self.passable)

    def moves(self, material, rows, cols, food, water) -> np.ndarray:
        food_d = distance_field(material == FOLIAGE, self.passable)
        out = np.full(len(rows), 4, dtype=np.int64)
        H, W = material.shape
        for i, (r, c) in enumerate(zip(rows, cols)):
            d = food_d if food[i] < water[i] else self.water_d
            best, here = 4, d[r, c]
            for k, (dr, dc) in enumerate(DELTAS):
                rr, cc = r + dr, c + dc
                if 0 <= rr < H and 0 <= cc < W and d[rr, cc] < here:
                    best, here = k, d[rr, cc]
            out[i] = best
        return out


def components(mask: np.ndarray) -> list[int]:
    """Sizes of the 4-connected components of ``mask``."""
    try:
        from scipy import ndimage
        lab, n = ndimage.label(mask)
        return np.bincount(lab.ravel())[1:].tolist() if n else []
    except ImportError:  # union by flood fill
        seen, sizes = np.zeros_like(mask), []
        for r0, c0 in zip(*np.nonzero(mask)):
            if seen[r0, c0]:
                continue
            stack, n = [(r0, c0)], 0
            seen[r0, c0] = True
            while stack:
                r, c = stack.pop()
                n += 1
                for dr, dc in DELTAS:
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < mask.shape[0] and 0 <= cc < mask.shape[1] and mask[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        stack.append((rr, cc))
            sizes.append(n)
        return sizes


def terrain_stats(maps: np.ndarray, border: int = 16) -> dict:
    """Statistics over the playable square of each map, averaged (water sd across maps)."""
    rows = []
    for m in maps:
        p = m[border:m.shape[0] - border, border:m.shape[1] - border]
        n = p.size
        share = lambda *ms: 100.0 * np.isin(p, ms).sum() / n  # noqa: E731
        dr = drinkable(m)[border:m.shape[0] - border, border:m.shape[1] - border]
        rows.append(dict(
            water=share(WATER, FISH), grass=share(GRASS, ORE, TREE, CRYSTAL, HERB),
            foliage=share(FOLIAGE), stone=share(STONE), drinkable=100.0 * dr.sum() / n,
            water_body=np.mean(components(np.isin(p, (WATER, FISH))) or [0]),
            stone_patch=np.mean(components(p == STONE) or [0]),
            foliage_patch=np.mean(components(p == FOLIAGE) or [0]),
            ore=(p == ORE).sum(), tree=(p == TREE).sum(), crystal=(p == CRYSTAL).sum(),
            herb=(p == HERB).sum(), fish=(p == FISH).sum()))
    out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    out["water_sd"] = float(np.std([r["water"] for r in rows]))
    return out


def summarize(alive_curve, lifespans, events, npc_types, npc_levels, gold, items, maps, agents,
              ticks, by_npc=0, npc_npc=0, mix_curve=None) -> dict:
    """One run's figures: per map (events, NPCs) or per agent (alive, lifespan, holdings).
    ``by_npc``: players killed by NPCs, ``npc_npc``: NPCs killed by NPCs (totals over the
    maps); ``mix_curve``: checkpoint tick -> alive passive/neutral/aggressive NPCs (totals)."""
    curve = np.asarray(alive_curve, dtype=float)  # [ticks, maps] alive counts after each tick
    deaths = maps * agents - curve[-1].sum()
    res = {"alive": {t: float(curve[t - 1].sum() / (maps * agents)) for t in CHECKPOINTS if t <= ticks},
           "lifespan": float(np.mean(lifespans)),
           "deaths_by_npc": float(by_npc) / maps,
           "deaths_by_npc_share": float(by_npc) / deaths if deaths else 0.0,
           "npc_npc_kills": float(npc_npc) / maps,
           "npc_mix_over_time": {t: [float(v) / maps for v in m] for t, m in (mix_curve or {}).items()},
           "events": {k: float(v) / maps for k, v in events.items()},
           "npc_mix": [float((np.asarray(npc_types) == k).sum()) / maps for k in (1, 2, 3)],
           "npc_level": [float(np.mean([l for t, l in zip(npc_types, npc_levels) if t == k] or [0]))
                         for k in (1, 2, 3)],
           "gold": float(np.mean(gold)) if gold else float("nan"),  # nan: nobody alive
           "items": float(np.mean(items)) if items else float("nan")}
    return res


# --- nmmo 2.0.3 side (runs in nmmo's interpreter; numpy + nmmo only) ------------------------------
def nmmo_config(path_maps: str, n_maps: int, generate: bool):
    import nmmo

    class Cfg(nmmo.config.Default):
        PATH_MAPS = path_maps
        MAP_N = n_maps
        MAP_FORCE_GENERATION = generate
        PROVIDE_ACTION_TARGETS = True
    return Cfg()


def nmmo_random_actions(obs: dict, rng: np.random.Generator) -> dict:
    acts = {}
    for agent, o in obs.items():
        a = {}
        for atn, args in o["ActionTargets"].items():
            if atn == "Comm":
                continue
            a[atn] = {}
            for arg, mask in args.items():
                ok = np.flatnonzero(mask)
                a[atn][arg] = int(rng.choice(ok)) if len(ok) else len(mask) - 1
        acts[agent] = a
    return acts


def nmmo_run_one(config, map_ids, policy: str, ticks: int, seed: int) -> dict:
    import nmmo
    from nmmo.lib.event_log import EventAttr, EventState
    from nmmo.lib.log import EventCode as EC

    env = nmmo.Env(config, seed=seed)
    rng = np.random.default_rng(seed)
    P = config.PLAYER_N
    alive_curve, lifespans = [], []
    events = {k: 0 for k in EVENTS}
    npc_types, npc_levels, gold, items = [], [], [], []
    by_npc = npc_npc = 0
    mix_curve = {}
    codes = {k: getattr(EC, k) for k in EVENTS if hasattr(EC, k)}
    for i, map_id in enumerate(map_ids):
        obs = env.reset(map_id=map_id, seed=seed + i)
        died = {}
        mix_at = {}
        forager = None
        if policy == "forager":
            mat = np.array(env.realm.map.repr, dtype=np.uint8)
            forager = Forager(mat)
        curve = []
        for t in range(ticks):
            players = env.realm.players
            if policy == "random":
                acts = nmmo_random_actions(obs, rng)
            elif policy == "forager":
                # tile.state is the current material (tile.material keeps the undepleted one)
                mat = np.array([[tile.state.index for tile in row] for row in env.realm.map.tiles],
                               dtype=np.uint8)
                ids = list(players.keys())
                ents = [players[k] for k in ids]
                mv = forager.moves(mat, [e.row.val for e in ents], [e.col.val for e in ents],
                                   [e.food.val for e in ents], [e.water.val for e in ents])
                acts = {k: {"Move": {"Direction": int(d)}} for k, d in zip(ids, mv)}
            else:
                acts = {}
            obs, _, _, _ = env.step(acts)
            now = set(env.realm.players.keys())
            for k in range(1, P + 1):
                if k not in now and k not in died:
                    died[k] = t + 1
            curve.append(len(now))
            if t + 1 in CHECKPOINTS:
                kinds = [int(npc.npc_type.val) for npc in env.realm.npcs.values()]
                mix_at[t + 1] = [kinds.count(k) for k in (1, 2, 3)]
        for t, m in mix_at.items():
            mix_curve[t] = [a + b for a, b in zip(mix_curve.get(t, [0, 0, 0]), m)]
        alive_curve.append(curve)
        lifespans += [died.get(k, ticks) for k in range(1, P + 1)]
        log = EventState.Query.table(env.realm.datastore)
        ent, ev, tgt = (log[:, EventAttr[c]] for c in ("ent_id", "event", "target_ent"))
        pl = ent > 0
        for k, code in codes.items():
            events[k] += int((pl & (ev == code)).sum())
        kills = pl & (ev == EC.PLAYER_KILL)
        events["NPC_KILL"] += int((kills & (tgt < 0)).sum())
        events["PVP_KILL"] += int((kills & (tgt > 0)).sum())
        npc_kills = (ent < 0) & (ev == EC.PLAYER_KILL)  # 2.0 logs the kills of NPCs too
        by_npc += int((npc_kills & (tgt > 0)).sum())
        npc_npc += int((npc_kills & (tgt < 0)).sum())
        for npc in env.realm.npcs.values():
            npc_types.append(int(npc.npc_type.val))
            npc_levels.append(int(npc.attack_level))
        for p in env.realm.players.values():
            gold.append(int(p.gold.val))
            items.append(len(p.inventory.items))
    return summarize(np.array(alive_curve).T, lifespans, events, npc_types, npc_levels, gold, items,
                     len(map_ids), P, ticks, by_npc, npc_npc, mix_curve)


def nmmo_worker(args) -> None:
    """Generate 2.0.3's maps into ``args.own_dir``; run the policies there and on the map files
    in ``args.other_dir``; write the figures as JSON to ``args.worker``."""
    import nmmo
    out = {"version": nmmo.__version__, "runs": {}}
    n = args.maps
    t0 = time.time()
    own = nmmo_config(args.own_dir, n, generate=True)
    nmmo.Env(own, seed=args.seed).reset(map_id=1)  # generates maps 1..n
    other = nmmo_config(args.other_dir, n, generate=False)
    sources = [(src, cfg) for src, cfg in (("nmmo", own), ("ours", other))
               if ("own" if src == "nmmo" else "other") in args.sources.split(",")]
    for policy in args.policies.split(","):
        for src, cfg in sources:
            out["runs"][f"{policy}/{src}"] = nmmo_run_one(cfg, list(range(1, n + 1)), policy,
                                                          args.ticks, args.seed)
            print(f"[nmmo 2.0.3] {policy} on {src} maps: {time.time() - t0:.0f}s", flush=True)
    out["wall_s"] = time.time() - t0
    with open(args.worker, "w") as f:
        json.dump(out, f)


# --- bundled side ---------------------------------------------------------------------------------
def ours_maps(n: int) -> np.ndarray:
    from nmmozoo.env.config import make_config
    from nmmozoo.env.terrain import MapPool
    cfg = make_config("competition2023", map_pool="eval", eval_pool_size=n)
    pool = MapPool(cfg)
    return pool.get(pool.seeds()).numpy()


def ours_run(maps: np.ndarray, policy: str, ticks: int, seed: int, overrides=None) -> dict:
    import torch
    from nmmozoo import make_env
    from nmmozoo.env import combat
    from nmmozoo.env import constants as C
    from nmmozoo.env.actions import random_actions
    from nmmozoo.env.torchrl_env import ACTION_HEADS

    n = len(maps)
    env = make_env("competition2023", num_maps=n, seed=seed, obs_mode="compact", tasks="none",
                   map_pool="eval", eval_pool_size=n, **(overrides or {}))
    pool = env.world.pool
    for s, m in zip(pool.seeds().tolist(), maps):  # play exactly these maps, in order
        pool._cache[s] = torch.as_tensor(m, dtype=torch.uint8)
    gen = torch.Generator().manual_seed(seed)
    td = env.reset()
    st, P = env.world.state, env.config.num_agents
    noop = env.world.noop_actions()
    foragers = [Forager(st.material[b].numpy()) for b in range(n)] if policy == "forager" else None
    curve, mix_curve = [], {}
    # Who killed whom: the killer slot of every entity killed by an attack, each tick.
    kills = {"by_npc": 0, "npc_npc": 0}
    attack = combat.attack

    def counted_attack(*args, **kwargs):
        out = attack(*args, **kwargs)
        kills["by_npc"] += int((out[1][:, :P] >= P).sum())
        kills["npc_npc"] += int((out[1][:, P:] >= P).sum())
        return out

    combat.attack = counted_attack
    try:
        for t in range(ticks):
            if policy == "random":
                random_actions(td, gen)
            else:
                for h in ACTION_HEADS:
                    td.set(("agents", "action", h), noop[h].clone())
                if policy == "forager":
                    move = noop["move"].clone()
                    for b in range(n):
                        idx = st.alive[b, :P].nonzero().squeeze(1)
                        if len(idx):
                            move[b, idx] = torch.as_tensor(foragers[b].moves(
                                st.material[b].numpy(), st.row[b, idx].tolist(),
                                st.col[b, idx].tolist(), st.food[b, idx].tolist(),
                                st.water[b, idx].tolist()))
                    td.set(("agents", "action", "move"), move)
            td = env.step(td)["next"]
            curve.append(st.alive[:, :P].sum(1).tolist())
            if t + 1 in CHECKPOINTS:
                kind = torch.where(st.alive[:, P:], st.npc_type[:, P:], 0)
                mix_curve[t + 1] = [int((kind == k).sum()) for k in (1, 2, 3)]
    finally:
        combat.attack = attack
    tot = st.event_totals
    ev = lambda k: int(tot[..., C.EVENT[k]].sum())  # noqa: E731
    events = {k: ev(k) for k in EVENTS if k in C.EVENT}
    events["PVP_KILL"] = ev("PLAYER_KILL") - ev("NPC_KILL")
    died = st.died_tick
    lifespans = torch.where(died >= 0, died, ticks).flatten().tolist()
    npc = st.alive[:, P:]
    alive_p = st.alive[:, :P]
    res = summarize(curve, lifespans, events, st.npc_type[:, P:][npc].tolist(),
                    st.npc_level[:, P:][npc].tolist(), st.gold[:, :P][alive_p].tolist(),
                    (st.inv_type > 0).sum(-1)[alive_p].tolist(), n, P, ticks,
                    kills["by_npc"], kills["npc_npc"], mix_curve)
    env.close()
    return res


# --- report ---------------------------------------------------------------------------------------
def fmt(v) -> str:
    if v != v:
        return "–"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"


def print_tables(t_ours: dict, t_nmmo: dict, runs: dict, policies, n, ticks) -> None:
    print(f"\n## Terrain ({n} maps each, playable square)\n")
    print("| statistic | bundled | nmmo 2.0.3 |\n|---|---|---|")
    for k in t_ours:
        print(f"| {k} | {fmt(t_ours[k])} | {fmt(t_nmmo[k])} |")
    every = (("bundled", "ours"), ("bundled", "nmmo"), ("2.0.3", "nmmo"), ("2.0.3", "ours"))
    cols = [c for c in every if any((c[0], f"{p}/{c[1]}") in runs for p in policies)]
    head = " | ".join(f"{e} on {'own' if (e == 'bundled') == (m == 'ours') else 'other'} maps"
                      for e, m in cols)
    kinds = ("passive", "neutral", "aggressive")
    for policy in policies:
        print(f"\n## Policy `{policy}` ({n} maps × {ticks} ticks; events, NPCs per map; "
              "alive, lifespan, gold, items per player)\n")
        print(f"| figure | {head} |\n|---|" + "---|" * len(cols))
        rs = [runs[(e, f"{policy}/{m}")] for e, m in cols]
        rows = [(f"alive at tick {t}, %", [100 * r["alive"][t] for r in rs]) for t in rs[0]["alive"]]
        rows.append(("mean lifespan, ticks", [r["lifespan"] for r in rs]))
        rows += [(k, [r["events"].get(k, 0.0) for r in rs]) for k in EVENTS]
        rows += [("players killed by NPCs", [r["deaths_by_npc"] for r in rs]),
                 ("… % of player deaths", [100 * r["deaths_by_npc_share"] for r in rs]),
                 ("NPCs killed by NPCs", [r["npc_npc_kills"] for r in rs])]
        for t in rs[0]["npc_mix_over_time"]:
            rows.append((f"NPCs p / n / a at tick {t}",
                         [" / ".join(fmt(v) for v in r["npc_mix_over_time"][t]) for r in rs]))
        rows += [(f"{name} NPC level", [r["npc_level"][i] for r in rs])
                 for i, name in enumerate(kinds)]
        rows += [("gold held (alive)", [r["gold"] for r in rs]),
                 ("items held (alive)", [r["items"] for r in rs])]
        for name, vals in rows:
            cells = (v if isinstance(v, str) else fmt(v) for v in vals)
            print(f"| {name} | " + " | ".join(cells) + " |")


def find_nmmo(args) -> list[str] | None:
    """The command that runs this script under nmmo 2.0.3, or None."""
    py = args.nmmo_python or os.environ.get("NMMO203_PYTHON")
    if py:
        probe = subprocess.run([py, "-c", "import nmmo; print(nmmo.__version__)"],
                               capture_output=True, text=True)
        ok = probe.returncode == 0 and probe.stdout.strip() == "2.0.3"
        return [py, os.path.abspath(__file__)] if ok else None
    try:
        import nmmo
        if nmmo.__version__ == "2.0.3":
            return [sys.executable, os.path.abspath(__file__)]
    except ImportError:
        pass
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--maps", type=int, default=4)
    ap.add_argument("--ticks", type=int, default=300)
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the bundled env")
    ap.add_argument("--serial", action="store_true",
                    help="run the bundled side after the nmmo side, not beside it (one core)")
    ap.add_argument("--sources", default="own,other",
                    help="map sets each engine plays: own, other or both (own,other)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a bundled env config field (e.g. npc_attack_npcs=false)")
    ap.add_argument("--nmmo-python", help="interpreter with nmmo 2.0.3 (else $NMMO203_PYTHON)")
    ap.add_argument("--json", help="also write every figure here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--own-dir", help=argparse.SUPPRESS)
    ap.add_argument("--other-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        nmmo_worker(args)
        return 0
    cmd = find_nmmo(args)
    if cmd is None:
        print("nmmo 2.0.3 is not installed beside the project (or --nmmo-python/$NMMO203_PYTHON "
              "does not import it), so there is nothing to compare against. Install it in a venv "
              "of its own:\n\n" + INSTALL + "\n")
        return 0
    import torch
    torch.set_num_threads(args.threads)
    policies = args.policies.split(",")
    overrides = {}
    for item in args.set:
        k, _, v = item.partition("=")
        overrides[k] = {"true": True, "false": False}.get(v.lower(), v)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        own_dir, other_dir = os.path.join(tmp, "nmmo_maps"), os.path.join(tmp, "ours_maps")
        mine = ours_maps(args.maps)
        for i, m in enumerate(mine):  # 2.0.3's map files: map{1..n}/map.npy
            os.makedirs(os.path.join(other_dir, f"map{i + 1}"))
            np.save(os.path.join(other_dir, f"map{i + 1}", "map.npy"), m.astype(int))
        out = os.path.join(tmp, "nmmo.json")
        worker = subprocess.Popen(cmd + ["--worker", out, "--own-dir", own_dir, "--other-dir",
                                         other_dir, "--maps", str(args.maps), "--ticks",
                                         str(args.ticks), "--policies", args.policies,
                                         "--sources", args.sources, "--seed", str(args.seed)],
                                  cwd=tmp)
        # The nmmo side runs meanwhile (unless --serial); the bundled side on its own maps
        # needs nothing from it.
        if args.serial and worker.wait() != 0:
            print("the nmmo 2.0.3 worker failed", file=sys.stderr)
            return 1
        runs = {}
        sources = args.sources.split(",")
        for policy in policies if "own" in sources else ():
            runs[("bundled", f"{policy}/ours")] = ours_run(mine, policy, args.ticks, args.seed,
                                                           overrides)
            print(f"[bundled] {policy} on own maps: {time.time() - t0:.0f}s", flush=True)
        if worker.wait() != 0:
            print("the nmmo 2.0.3 worker failed", file=sys.stderr)
            return 1
        with open(out) as f:
            theirs = json.load(f)
        nmmo_maps = np.stack([np.load(os.path.join(own_dir, f"map{i + 1}", "map.npy"))
                              for i in range(args.maps)]).astype(np.uint8)
    for policy in policies if "other" in sources else ():
        runs[("bundled", f"{policy}/nmmo")] = ours_run(nmmo_maps, policy, args.ticks, args.seed,
                                                       overrides)
        print(f"[bundled] {policy} on 2.0.3 maps: {time.time() - t0:.0f}s", flush=True)
    for key, r in theirs["runs"].items():
        r["alive"] = {int(t): v for t, v in r["alive"].items()}
        r["npc_mix_over_time"] = {int(t): v for t, v in r["npc_mix_over_time"].items()}
        runs[("2.0.3", key)] = r
    t_ours, t_nmmo = terrain_stats(mine), terrain_stats(nmmo_maps)
    print_tables(t_ours, t_nmmo, runs, policies, args.maps, args.ticks)
    print(f"\nwall time {time.time() - t0:.0f}s (nmmo side {theirs['wall_s']:.0f}s), "
          f"torch threads {args.threads}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"terrain": {"bundled": t_ours, "nmmo": t_nmmo},
                       "runs": {f"{e}|{k}": v for (e, k), v in runs.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
