"""Map sharding over worker processes: one env of ``num_maps`` maps stepped by ``workers``
processes, each owning ``num_maps / workers`` maps (CPU only).

A tick of the bundled world is thousands of small torch ops over all maps; on the CPU they
run on one core whatever the thread count (each op is too small to split). Sharding the
maps over processes puts every core to work. The env the caller sees is unchanged: one
batch of ``num_maps`` maps, the same specs, the same outputs.

How a step travels: the main process checks the actions and writes them into shared
memory, tells each worker over its pipe, and each worker steps its own :class:`World` and
writes its outputs into its slice of a shared output tensordict. The main process returns
a copy of that tensordict (outputs are fresh tensors each step, as with ``workers=1``).

Worker ``i`` runs its maps with seed ``seed * workers + i`` (and takes its held-out maps in
every ``workers``-th held-out map from map ``i`` on: no map twice), so a run is reproducible for a given
``(seed, workers)``; a sharded env does not reproduce the random draws of an unsharded one.
"""

from __future__ import annotations

import traceback
import weakref

import torch
import torch.multiprocessing as mp
from tensordict import TensorDict, TensorDictBase

from .config import EnvConfig


class WorkerError(RuntimeError):
    """An env worker process failed (its traceback is in the message) or exited."""


class TaskView:
    """The task facts a sharded env offers in the main process: the task list, and each
    agent's task index, progress and completion as of the last step or reset."""

    def __init__(self, specs, task_id: torch.Tensor, out: dict):
        self.specs = specs
        self._task_id, self._out = task_id, out

    @property
    def task_id(self) -> torch.Tensor:
        return self._task_id.clone()

    @property
    def completed(self) -> torch.Tensor:
        return self._last("task_completed", torch.bool)

    @property
    def progress(self) -> torch.Tensor:
        return self._last("task_progress", torch.float32)

    def _last(self, key: str, dtype) -> torch.Tensor:
        last = self._out["last"]
        if last is None:  # before the first reset, as a fresh World: nothing yet
            return torch.zeros(self._task_id.shape, dtype=dtype)
        return last.get(("agents", key))


class ShardedWorld:
    """Stands in for :class:`~nmmozoo.env.world.World` in the main process of a sharded env.

    It holds the config, the task list and embeddings; the world state lives in the
    workers (asking for it is an error that says so)."""

    def __init__(self, cfg: EnvConfig, num_maps: int, workers: int, obs_mode: str, seed: int):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if num_maps % workers:
            raise ValueError(f"workers ({workers}) must divide num_maps ({num_maps}): each worker "
                             f"runs num_maps / workers maps")
        from .world import task_set, task_table

        self.cfg, self.num_maps, self.workers, self.obs_mode = cfg, num_maps, workers, obs_mode
        self.seed_value = seed
        specs, _ = task_set(cfg)  # (the workers assign the tasks)
        self.task_embeddings = None
        self._last: dict = {"last": None}
        self._task_id = torch.zeros(num_maps, cfg.num_agents, dtype=torch.int64).share_memory_()
        self.tasks = None
        if specs is not None:
            self.task_embeddings = task_table(specs)
            self.tasks = TaskView(specs, self._task_id, self._last)
        self._procs, self._conns = [], []
        self._closed = False

    def __getattr__(self, name):
        if name in ("state", "observer", "step", "reset", "stats", "observe", "reward"):
            raise AttributeError(
                f"the world's {name!r} lives in the env's worker processes (workers="
                f"{self.__dict__.get('workers')}); make the env with workers=1 to read it")
        raise AttributeError(name)

    # --- processes --------------------------------------------------------------------------
    def start(self, out: TensorDictBase, actions: TensorDictBase, reset: torch.Tensor) -> None:
        """Start the workers over the shared buffers ``out`` (every output of a step),
        ``actions`` and ``reset`` (the maps to reset), all with ``num_maps`` leading."""
        if mp.current_process().daemon:
            raise ValueError(f"workers={self.workers}: a daemonic process (a collector's worker, "
                             f"say) cannot start env workers; shard either the collector "
                             f"(ppo.collector_workers) or the env (env.workers), not both")
        self.out, self.actions, self.reset_maps = out, actions, reset
        # fork where there is one: no re-import of the caller's main module (a script needs no
        # ``if __name__ == "__main__"`` guard) and a fast start. A worker uses one torch thread,
        # so it never enters an OpenMP region the parent's pool could have left behind.
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        n = self.num_maps // self.workers
        for i in range(self.workers):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, name=f"nmmozoo-env-{i}", daemon=True,
                            args=(child, self.cfg, n, i * n, self.workers, self.obs_mode,
                                  self.seed_value * self.workers + i, out, actions, reset,
                                  self._task_id if self.tasks is not None else None))
            p.start()
            child.close()
            self._procs.append(p)
            self._conns.append(parent)
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._conns)
        self._call("ready", None, send=False)

    def _call(self, cmd: str, arg, send: bool = True) -> list:
        """Send ``cmd`` (with ``arg``, or ``arg(i)`` for worker ``i``) to every worker and
        wait for all; returns their answers."""
        if self._closed:
            raise WorkerError("the env's worker processes were closed")
        if send:
            for i, conn in enumerate(self._conns):
                try:
                    conn.send((cmd, arg(i) if callable(arg) else arg))
                except (BrokenPipeError, OSError):
                    raise WorkerError(self._dead(i)) from None
        errors, answers = [], []
        for i, conn in enumerate(self._conns):
            try:
                status, msg = conn.recv()
            except (EOFError, OSError):
                errors.append(self._dead(i))
                continue
            if status != "ok":
                errors.append(f"env worker {i} failed on {cmd!r}:\n{msg}")
            answers.append(msg)
        if errors:
            raise WorkerError("\n".join(errors))
        return answers

    def _dead(self, i: int) -> str:
        p = self._procs[i]
        p.join(timeout=1)
        return f"env worker {i} exited (exit code {p.exitcode})"

    def step(self) -> TensorDictBase:
        self._call("step", None)
        return self._copy(self.out)

    def reset(self) -> TensorDictBase:
        self._call("reset", None)
        return self._copy(self.out.exclude(("agents", "reward")))

    def _copy(self, td: TensorDictBase) -> TensorDictBase:
        out = td.clone()
        self._last["last"] = out
        return out

    def seed(self, seed: int) -> None:
        self.seed_value = int(seed)
        self._call("seed", lambda i: self.seed_value * self.workers + i)

    # --- saved state ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Each worker's env state (``NMMOEnv.state_dict``) under ``worker<i>.``."""
        import io

        out = {}
        for i, blob in enumerate(self._call("get_state", None)):
            state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
            out.update({f"worker{i}.{k}": v for k, v in state.items()})
        return out

    def load_state_dict(self, state: dict) -> None:
        """Send each worker its part of a :meth:`state_dict`; the main process's view of the
        last output (task progress and completion) is restored with it."""
        import io

        from .state import EnvStateError

        parts: list[dict] = [{} for _ in range(self.workers)]
        for k, v in state.items():
            head, _, rest = k.partition(".")
            i = int(head[6:]) if head.startswith("worker") and head[6:].isdigit() else -1
            if not 0 <= i < self.workers or not rest:
                raise EnvStateError(f"env state entry {k!r} names no worker of this env "
                                    f"(workers={self.workers})")
            parts[i][rest] = v
        blobs = []
        for part in parts:
            buf = io.BytesIO()
            torch.save(part, buf)
            blobs.append(buf.getvalue())
        observed = self._call("set_state", lambda i: blobs[i])
        if all(observed):
            self._last["last"] = self.out.clone()

    def close(self) -> None:
        if not self._closed and self._conns:
            self._closed = True
            self._finalizer()


def _shutdown(procs, conns) -> None:
    for conn in conns:
        try:
            conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
    for conn in conns:
        conn.close()


def _worker(conn, cfg, num_maps, lo, workers, obs_mode, seed, out, actions, reset, task_id) -> None:
    """One worker: its own env over maps ``[lo, lo + num_maps)``; answers each command
    with ``("ok", None)`` or ``("error", traceback)``."""
    torch.set_num_threads(1)  # one core per worker
    try:
        from .constants import ACTION_HEADS
        from .torchrl_env import NMMOEnv

        env = NMMOEnv(cfg, num_maps=num_maps, seed=seed, obs_mode=obs_mode,
                      eval_offset=lo // num_maps, eval_stride=workers)
        hi = lo + num_maps
        mine, acts, maps = out[lo:hi], actions[lo:hi], reset[lo:hi]
        heads = [acts.get(("agents", "action", h)) for h in ACTION_HEADS]
        tids = None if task_id is None else task_id[lo:hi]
    except Exception:  # noqa: BLE001 - any failure goes back to the main process
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", None))
    while True:
        try:
            cmd, arg = conn.recv()
        except (EOFError, OSError):
            return
        if cmd == "close":
            return
        answer = None
        try:
            if cmd == "step":
                mine.update_(env._advance(dict(zip(ACTION_HEADS, heads))))
            elif cmd == "reset":
                if bool(maps.any()):
                    mine.update_(env._reset(TensorDict({"_reset": maps[:, None]}, [num_maps])))
            elif cmd == "seed":
                env.world.seed(arg)
            elif cmd == "get_state":
                import io

                buf = io.BytesIO()
                torch.save(env.state_dict(), buf)
                answer = buf.getvalue()
            elif cmd == "set_state":
                import io

                env.load_state_dict(torch.load(io.BytesIO(arg), weights_only=True))
                answer = env.world.observer.slots is not None  # observed: the last output again
                if answer:
                    mine.update_(env._output(env.world.observe(), with_reward=True))
            else:
                raise ValueError(f"unknown command {cmd!r}")
            if tids is not None and cmd in ("step", "reset", "set_state"):
                tids.copy_(env.world.tasks.task_id)
            conn.send(("ok", answer))
        except Exception:  # noqa: BLE001 - any failure goes back to the main process
            conn.send(("error", traceback.format_exc()))
