"""Replays: one map's episode recorded compactly, to watch later (:mod:`nmmozoo.render`).

    from nmmozoo.replay import record_episode, Replay
    replay = record_episode("forager", preset="tiny", ticks=100, seed=0)   # or a Policy, or None
    replay.save("forager.replay.npz")
    replay = Replay.load("forager.replay.npz")

or from the command line: ``nmmozoo predict forager --replay forager.replay.npz``.

To record an episode you step yourself (any policy, any action source)::

    env = make_env("tiny", num_maps=1)
    td = env.reset()
    rec = Recorder(env)                      # frame 0: the state after the reset
    for _ in range(100):
        random_actions(td)
        with rec.tick():                     # frame t: the state after the t-th tick
            td = env.step(td)["next"]
    rec.finish().save("random.replay.npz")

Recording is vectorised: every tick is a fixed handful of tensor operations on the recorded
map, whatever the number of entities, and nothing of the game is recomputed here: positions,
health, stats, items and tasks are read from the env's state after each tick, and the attacks
and killers are the ones the env's own :func:`nmmozoo.env.combat.attack` returns (during
``rec.tick()`` that function is wrapped to pass its results on to the recorder, then
restored; recording needs the single-process env, ``workers=1``).

**File format** (version 1): one NumPy ``.npz`` archive (``np.savez_compressed``, zip +
deflate; no pickled objects: load with ``allow_pickle=False``). Every array is stored in the
smallest integer type that holds its values (uint8, int8, uint16, int16, int32), so the
dtypes below are upper bounds. ``T`` = recorded ticks (frames ``0..T``: frame 0 is the state
after the reset, frame ``t`` the state after tick ``t``), ``E`` = entity slots (players
``0..P-1``, then NPCs), ``P`` = players, ``H×W`` = map size.

==================  ================  ======================================================
array               shape             meaning
==================  ================  ======================================================
``meta``            ``[n]`` uint8     UTF-8 JSON: ``format`` ("nmmozoo-replay"), ``version``,
                                      ``preset``, ``config`` (every env field), ``seed``,
                                      ``map_seed``, ``policy``, ``ticks``, ``ended``, name
                                      tables (``material_names``, ``stat_names``,
                                      ``item_names``, ``style_names``, ``npc_type_names``,
                                      ``skill_names``) and ``tasks`` (the tasks of this
                                      map's agents: ``name``, ``text``, ``category``)
``material``        ``[H, W]``        terrain at the reset (material index per tile)
``tile_tick``       ``[C]``           terrain changes (resources depleting and regrowing),
``tile_index``      ``[C]``           in tick order: at the end of tick ``tile_tick`` the
``tile_material``   ``[C]``           tile ``tile_index`` (``row * W + col``) becomes
                                      ``tile_material``
``alive``           ``[T+1, E]``      slot holds a live entity
``ent_id``          ``[T+1, E]``      entity id: players ``1..P``, NPCs negative serials
``npc_type``        ``[T+1, E]``      0 player, 1 passive, 2 neutral, 3 aggressive
``row``, ``col``    ``[T+1, E]``      position
``health``          ``[T+1, E]``      health
``level``           ``[T+1, E]``      an NPC's level; a player's highest skill level
``attacks``         ``[N, 4]``        executed attacks: tick, attacker slot, target slot,
                                      style (0 melee, 1 range, 2 mage)
``deaths``          ``[D, 6]``        tick, slot, entity id, row, col, killer slot (-1: no
                                      attack killed it, e.g. starvation)
``stats``           ``[T+1, P, K]``   per-player numbers, columns ``meta["stat_names"]``
                                      (food, water, gold, time alive, levels, XP, damage,
                                      item level, ...: the env's ``("agents","stats")``)
``items``           ``[T+1, P, I]``   quantity held of each item type id (``item_names``)
``equipped``        ``[T+1, P]``      bit ``i`` set: an item of type id ``i`` is equipped
``task``            ``[P]``           each player's task: an index into ``meta["tasks"]``
                                      (-1: the env has no tasks)
``task_progress``   ``[T+1, P]``      task progress in percent (0..100)
``task_completed``  ``[T+1, P]``      1 once the task is completed
==================  ================  ======================================================

Attacks and deaths labelled tick ``t`` happened during the tick that produced frame ``t``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._files import atomic_write
from .env import constants as C

FORMAT, VERSION = "nmmozoo-replay", 1
STYLE_NAMES = ("melee", "range", "mage")
NPC_TYPE_NAMES = ("player", "passive", "neutral", "aggressive")
ENTITY_ARRAYS = ("alive", "ent_id", "npc_type", "row", "col", "health", "level")
ARRAYS = ("material", "tile_tick", "tile_index", "tile_material", *ENTITY_ARRAYS, "attacks", "deaths",
          "stats", "items", "equipped", "task", "task_progress", "task_completed")
_SKIPPED_STATS = ("health", "row", "col")  # in the entity arrays already


class ReplayError(ValueError):
    """A replay that cannot be recorded or read as asked; the message says why."""


def compact(a: np.ndarray) -> np.ndarray:
    """``a`` in the smallest integer type that holds its values (bool as uint8)."""
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return a.astype(np.uint8)
    if not np.issubdtype(a.dtype, np.integer):
        return a
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for dt in (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.int64):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return a.astype(dt)
    return a


@dataclasses.dataclass
class Replay:
    """A recorded episode: ``meta`` (JSON-able dict) and the arrays of the module doc."""

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def ticks(self) -> int:
        """Recorded ticks ``T`` (there are ``T + 1`` frames)."""
        return int(self.arrays["alive"].shape[0]) - 1

    @property
    def num_agents(self) -> int:
        return int(self.arrays["stats"].shape[1])

    @property
    def num_entities(self) -> int:
        return int(self.arrays["alive"].shape[1])

    def material_at(self, t: int) -> np.ndarray:
        """The terrain ``[H, W]`` of frame ``t`` (the reset's, with the changes up to ``t``)."""
        mat = self.arrays["material"].copy()
        n = int(np.searchsorted(self.arrays["tile_tick"], t, side="right"))
        mat.reshape(-1)[self.arrays["tile_index"][:n].astype(np.int64)] = self.arrays["tile_material"][:n]
        return mat

    def save(self, path: str | Path) -> Path:
        """Write the ``.npz`` file (exactly at ``path``, whole or not at all: a file there before
        stays until the new one is complete); returns it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = np.frombuffer(json.dumps(self.meta, separators=(",", ":")).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, meta=blob, **{k: compact(self.arrays[k]) for k in ARRAYS})
        return atomic_write(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Replay:
        """Read a replay file; anything else is a :class:`ReplayError` naming the problem."""
        path = Path(path)
        if not path.exists():
            raise ReplayError(f"replay file {str(path)!r} does not exist")
        if not path.is_file():
            raise ReplayError(f"{str(path)!r} is not a file")
        try:
            with open(path, "rb") as f:
                magic = f.read(4)
        except OSError as e:
            raise ReplayError(f"replay file {str(path)!r} is not readable ({e.strerror or e})") from None
        if magic != b"PK\x03\x04":
            raise ReplayError(f"{str(path)!r} is not an nmmozoo replay (not an .npz archive)")
        try:
            with np.load(path, allow_pickle=False) as z:
                if not hasattr(z, "files"):
                    raise ReplayError(f"{str(path)!r} is not an nmmozoo replay (a bare .npy array, "
                                      "not a replay archive)")
                names = set(z.files)
                if "meta" not in names:
                    raise ReplayError(f"{str(path)!r} is not an nmmozoo replay (an .npz archive "
                                      "without its 'meta' entry)")
                meta = json.loads(bytes(z["meta"]).decode())
                if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                    raise ReplayError(f"{str(path)!r} is not an nmmozoo replay (meta format "
                                      f"{meta.get('format') if isinstance(meta, dict) else None!r})")
                if int(meta.get("version", 0)) > VERSION:
                    raise ReplayError(f"{str(path)!r} is a version {meta.get('version')} replay; this "
                                      f"nmmozoo reads version {VERSION} and older")
                missing = [k for k in ARRAYS if k not in names]
                if missing:
                    raise ReplayError(f"{str(path)!r}: replay arrays missing: {missing}")
                arrays = {k: z[k] for k in ARRAYS}
        except ReplayError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, UnicodeDecodeError, KeyError) as e:
            raise ReplayError(f"{str(path)!r} is not an nmmozoo replay ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'unreadable'})") from None
        rep = cls(meta, arrays)
        rep._check(path)
        return rep

    def _check(self, path) -> None:
        a = self.arrays
        F, E = a["alive"].shape if a["alive"].ndim == 2 else (None, None)
        bad = [k for k in ENTITY_ARRAYS if a[k].shape != (F, E)] if F is not None else ["alive"]
        P = a["stats"].shape[1] if a["stats"].ndim == 3 else -1
        if a["stats"].ndim != 3 or a["stats"].shape[0] != F:
            bad.append("stats")
        for k in ("items",):
            if a[k].ndim != 3 or a[k].shape[:2] != (F, P):
                bad.append(k)
        for k in ("equipped", "task_progress", "task_completed"):
            if a[k].shape != (F, P):
                bad.append(k)
        if a["task"].shape != (P,):
            bad.append("task")
        if a["attacks"].ndim != 2 or a["attacks"].shape[1] != 4:
            bad.append("attacks")
        if a["deaths"].ndim != 2 or a["deaths"].shape[1] != 6:
            bad.append("deaths")
        if a["material"].ndim != 2:
            bad.append("material")
        if bad:
            raise ReplayError(f"{str(path)!r}: replay arrays of inconsistent shapes: {bad}")


def _world(env):
    from .env.world import World

    world = getattr(env, "world", env)
    if not isinstance(world, World):
        raise ReplayError(f"recording needs the single-process env (workers=1); got {type(world).__name__}")
    return world


class Recorder:
    """Records map ``map_index`` of ``env`` (an :class:`~nmmozoo.env.NMMOEnv` with
    ``workers=1``, or a :class:`~nmmozoo.env.World`). Create it right after the reset (frame 0
    is the state then); step the env inside ``with recorder.tick():``; :meth:`finish` gives
    the :class:`Replay`. ``info`` goes into the replay's meta (``policy``, ``seed``, ...)."""

    def __init__(self, env, map_index: int = 0, **info: Any):
        self.world = w = _world(env)
        cfg, s = w.cfg, w.state
        if not 0 <= map_index < w.num_maps:
            raise ReplayError(f"map_index {map_index} outside the env's {w.num_maps} maps")
        self.b, self.P, self.E = map_index, cfg.num_agents, cfg.num_entities
        from .env.world import STAT_NAMES

        self.stat_names = [n for n in STAT_NAMES if n not in _SKIPPED_STATS] + ["item_level"]
        self._stat_cols = torch.tensor([STAT_NAMES.index(n) for n in self.stat_names[:-1]], device=s.device)
        self._bits = torch.arange(C.NUM_ITEM_TYPES, device=s.device, dtype=torch.int64)
        self._frames: list[torch.Tensor] = []
        self._player: list[torch.Tensor] = []
        self._attacks: list[torch.Tensor] = []
        self._deaths: list[torch.Tensor] = []
        self._tiles: list[torch.Tensor] = []
        self._tap: dict[str, torch.Tensor] | None = None
        self.material0 = s.material[self.b].clone()
        self._mat = self.material0.clone()
        tasks = w.tasks
        meta_tasks: list[dict[str, Any]] = []
        task_local = torch.full((self.P,), -1, dtype=torch.int64)
        if tasks is not None:
            used, local = torch.unique(tasks.task_id[self.b].cpu(), return_inverse=True)
            task_local = local
            for i in used.tolist():
                sp = tasks.specs[i]
                meta_tasks.append({"name": sp.name or f"task_{i}", "text": sp.text(), "category": sp.group})
        self.task = task_local
        preset = info.pop("preset", None)
        self.meta: dict[str, Any] = {
            "format": FORMAT, "version": VERSION, "preset": preset,
            "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
            "map_seed": int(s.map_seed[self.b]), "ticks": 0, "ended": False,
            "material_names": list(C.MATERIAL_NAMES), "stat_names": self.stat_names,
            "item_names": {str(k): v for k, v in C.ITEM_NAMES.items()}, "style_names": list(STYLE_NAMES),
            "npc_type_names": list(NPC_TYPE_NAMES), "skill_names": list(C.SKILL_NAMES),
            "tasks": meta_tasks, **info,
        }
        self._capture()

    # --- per tick ---------------------------------------------------------------------------------
    def _capture(self) -> None:
        """Append the frame of the current state (all entity and player arrays of map b)."""
        w, s, b, P = self.world, self.world.state, self.b, self.P
        level = torch.cat([s.level[b, :P].amax(-1), s.npc_level[b, P:]])
        ent = torch.stack([s.alive[b].long(), s.ent_id[b].long(), s.npc_type[b].long(), s.row[b], s.col[b],
                           s.health[b].long(), level.long()])  # [7, E]
        stats = torch.cat([w.stats()[b].index_select(1, self._stat_cols), s.item_level[b, :P, None]], 1).long()
        itype = s.inv_type[b].long()
        qty = torch.zeros(P, C.NUM_ITEM_TYPES, dtype=torch.int64, device=s.device)
        qty.scatter_add_(1, itype, (s.inv_quantity[b] * (itype > 0)).long())
        eq = torch.zeros(P, C.NUM_ITEM_TYPES, dtype=torch.int64, device=s.device)
        eq.scatter_reduce_(1, itype, s.inv_equipped[b].long(), "amax")
        equipped = (eq << self._bits).sum(1, keepdim=True)
        if w.tasks is not None:
            prog = (w.tasks.progress[b] * 100).round().long()[:, None]
            done = w.tasks.completed[b].long()[:, None]
        else:
            prog = done = torch.zeros(P, 1, dtype=torch.int64, device=s.device)
        self._frames.append(ent)
        self._player.append(torch.cat([stats, qty, equipped, prog, done], 1))

    @contextlib.contextmanager
    def tick(self):
        """Wrap one env step: the attacks are taken as the env resolves them, the frame after."""
        from .env import combat

        original = combat.attack
        b = self.b

        def attack(s, cfg, target, style):
            out = original(s, cfg, target, style)
            self._tap = {"target": target[b].clone(), "style": style[b].clone(),
                         "executed": out[0][b].clone(), "killer": out[1][b].clone()}
            return out

        self._tap = None
        prev = self._frames[-1]
        combat.attack = attack
        try:
            yield self
        finally:
            combat.attack = original
        self._after(prev)

    def _after(self, prev: torch.Tensor) -> None:
        s, b = self.world.state, self.b
        t = int(s.tick[b])
        if t != len(self._frames):
            raise ReplayError(f"the recorded map is at tick {t} after a recorded step, expected "
                              f"{len(self._frames)}: step it only inside recorder.tick(), once per "
                              "tick, and stop at the episode's end (no reset)")
        self._capture()
        now = self._frames[-1]
        tt = torch.tensor(t, device=s.device)
        # terrain: the tiles whose material changed in this tick
        mat = s.material[b]
        changed = (mat != self._mat).reshape(-1).nonzero().squeeze(1)
        self._tiles.append(torch.stack([tt.expand_as(changed), changed, mat.reshape(-1)[changed].long()], 1))
        self._mat = mat.clone()
        tap = self._tap
        killer = torch.full((self.E,), -1, dtype=torch.int64, device=s.device)
        if tap is not None:
            a = tap["executed"].nonzero().squeeze(1)
            self._attacks.append(torch.stack([tt.expand_as(a), a, tap["target"][a], tap["style"][a]], 1))
            killer = tap["killer"]
        # deaths: a live entity of the last frame that is gone, or whose slot holds a new one
        same = now[1] == prev[1]
        gone = (prev[0] == 1) & ((now[0] == 0) | ~same)
        d = gone.nonzero().squeeze(1)
        row = torch.where(same, now[3], prev[3])[d]
        col = torch.where(same, now[4], prev[4])[d]
        self._deaths.append(torch.stack([tt.expand_as(d), d, prev[1][d], row, col, killer[d]], 1))
        self.meta["ticks"] = len(self._frames) - 1
        self.meta["ended"] = bool(s.done[b])

    def finish(self) -> Replay:
        """The recorded episode so far."""
        frames = torch.stack(self._frames).cpu().numpy()  # [F, 7, E]
        player = torch.stack(self._player).cpu().numpy()  # [F, P, K + I + 3]
        K, I = len(self.stat_names), C.NUM_ITEM_TYPES

        def cat(parts, n):
            return torch.cat(parts).cpu().numpy() if parts else np.zeros((0, n), dtype=np.int64)

        tiles = cat(self._tiles, 3)
        arrays = {name: frames[:, i] for i, name in enumerate(ENTITY_ARRAYS)}
        arrays.update(
            material=self.material0.cpu().numpy(), tile_tick=tiles[:, 0], tile_index=tiles[:, 1],
            tile_material=tiles[:, 2], attacks=cat(self._attacks, 4), deaths=cat(self._deaths, 6),
            stats=player[..., :K], items=player[..., K:K + I], equipped=player[..., K + I],
            task=self.task.numpy(), task_progress=player[..., K + I + 1], task_completed=player[..., K + I + 2])
        return Replay(dict(self.meta), {k: compact(v) for k, v in arrays.items()})


@torch.no_grad()
def record_episode(policy=None, preset="competition2023", ticks: int | None = None, seed: int = 0,
                   tasks: str = "heldout", device: str = "cpu", deterministic: bool = False,
                   map_pool: str = "eval", name: str | None = None, **env_overrides: Any) -> Replay:
    """Play one map with ``policy`` (None: random masked actions; ``"forager"``; a zoo
    :class:`~nmmozoo.policy.Policy` or anything with ``act(td)``) for ``ticks`` ticks (default:
    the whole episode, up to the horizon) and return its :class:`Replay`. The map is the
    ``seed``-th pick of ``map_pool`` (the held-out maps by default), as in evaluation."""
    from .env import make_env, random_actions
    from .evaluate import _actor, check_sizes, resolve_tasks

    actor = _actor(policy, seed)
    env = make_env(preset, num_maps=1, device=device, seed=seed, tasks=resolve_tasks(tasks),
                   map_pool=map_pool, **env_overrides)
    if actor is not None:
        if getattr(actor, "sizes", None) is not None:
            check_sizes(actor, env)
        actor = actor.to(device).eval()
    limit = env.config.horizon if ticks is None else int(ticks)
    if limit < 1:
        raise ReplayError(f"ticks must be >= 1, got {ticks}")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    torch.manual_seed(seed)
    td = env.reset()
    label = name or ("random" if actor is None else str(getattr(actor, "name", None)
                                                          or getattr(actor, "spec", {}).get("name", "policy")))
    rec = Recorder(env, policy=label, seed=seed, task_set=str(tasks), deterministic=deterministic,
                   preset=preset if isinstance(preset, str) else "custom")
    state = None
    if actor is not None and getattr(actor, "recurrent_shape", None) is not None:
        state = torch.zeros(1, env.config.num_agents, *actor.recurrent_shape, device=device)
    is_init = torch.ones(1, 1, dtype=torch.bool, device=device)
    for _ in range(limit):
        if actor is None:
            random_actions(td, generator=gen)
        else:
            if state is not None:
                td["agents", "recurrent_state"] = state
                td["is_init"] = is_init
            actor.act(td, deterministic=deterministic)
            if state is not None:
                state = td["next", "agents", "recurrent_state"]
                del td["next"]
                del td["agents", "recurrent_state"]
                del td["is_init"]
            is_init = torch.zeros_like(is_init)
        with rec.tick():
            td = env.step(td)["next"]
        if bool(td["done"].reshape(-1)[0]):
            break
    env.close()
    return rec.finish()
