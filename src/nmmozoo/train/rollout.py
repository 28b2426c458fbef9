"""A rollout kept as its live agent-steps only, compactly.

The collector hands the trainer chunks of the env's ``[maps, ticks]`` TensorDicts, every
agent slot and the next observation included (about 21 KB per agent slot in the dense
competition layout). What an update needs of them is kept here, per live agent-step:

* the tile window's materials (uint8, 225 bytes) and the agent's position — the window's
  row and column channels are the position plus fixed offsets;
* the present entity rows only (rows with any non-zero column; 0.6 per agent on average in
  random play), each with its slot, in one flat table with a count per agent-step;
* the inventory, the task's index into the env's task table, the action masks packed to
  bits, the action (int16 per head), log-prob, value, advantage, value target, the
  episode-start flag and, for recurrent models, the memory state;

and per map-step, the market's listed rows (with their slots) — the market stays per map:
an agent-step names its map-step. :meth:`CompactRollout.rows` rebuilds exactly the arrays
the policy reads (:class:`~nmmozoo.inputs.AgentRows`) for any set of agent-steps, with each
minibatch's markets once per map-step. Nothing is rounded: the rebuilt inputs equal the
collected ones (a test holds them to the dense rollout).
"""

from __future__ import annotations

import torch

from ..env.constants import ACTION_HEADS
from ..env.observe import window_offsets, window_tiles
from ..inputs import AgentRows, rows_from_td

def pack_bits(x: torch.Tensor) -> torch.Tensor:
    """Bool ``[N, n]`` → uint8 ``[N, ceil(n/8)]`` (little-endian within a byte)."""
    N, n = x.shape
    pad = (-n) % 8
    if pad:
        x = torch.cat([x, x.new_zeros(N, pad)], 1)
    w = (1 << torch.arange(8, device=x.device)).to(torch.uint8)
    return (x.view(N, -1, 8).to(torch.uint8) * w).sum(-1, dtype=torch.uint8)


def unpack_bits(b: torch.Tensor, n: int) -> torch.Tensor:
    """uint8 ``[N, m]`` → bool ``[N, n]`` (the inverse of :func:`pack_bits`)."""
    shifts = torch.arange(8, device=b.device, dtype=torch.uint8)
    return ((b[..., None] >> shifts) & 1).bool().view(b.shape[0], -1)[:, :n]


def _csr(present: torch.Tensor, values: torch.Tensor):
    """The present entries of ``values`` ``[G, R, F]`` (``present`` ``[G, R]``): their rows
    ``[K, F]``, slots ``[K]`` and the count per group ``[G]``, in group order."""
    g, r = present.nonzero(as_tuple=True)
    return values[g, r], r, torch.bincount(g, minlength=present.shape[0])


def _expand_csr(rows: torch.Tensor, slots: torch.Tensor, count: torch.Tensor, which: torch.Tensor,
                width: int) -> torch.Tensor:
    """Dense ``[len(which), width, F]`` of the groups ``which`` of a CSR table (zeros where
    nothing is present)."""
    start = torch.cumsum(count, 0) - count
    c = count[which]
    q = torch.repeat_interleave(torch.arange(which.numel(), device=rows.device), c)
    first = torch.cumsum(c, 0) - c
    k = start[which][q] + torch.arange(q.numel(), device=rows.device) - first[q]
    out = rows.new_zeros(which.numel(), width, rows.shape[-1])
    out[q, slots[k].long()] = rows[k]
    return out


class CompactRollout:
    """The live agent-steps of one rollout (see the module docstring). Built chunk by chunk
    with :meth:`add`, cut to the samples with :meth:`keep`; :meth:`rows` rebuilds the
    policy's inputs for any agent-steps (flat indices into the kept ones)."""

    def __init__(self, vision: int, head_sizes: dict, task_table: torch.Tensor | None):
        self.vision, self.task_table = vision, task_table
        self.heads = [(h, head_sizes[h]) for h in ACTION_HEADS]
        self.parts: dict[str, list] = {}
        self.map_steps = 0  # map-steps added so far
        self.ticks = 0  # ticks added so far
        self.data: dict[str, torch.Tensor] = {}

    # --- building ----------------------------------------------------------------------------------------
    def _put(self, key: str, value: torch.Tensor) -> None:
        self.parts.setdefault(key, []).append(value)

    def add(self, chunk) -> torch.Tensor:
        """Store the live agent-steps of a collected chunk ``[B, T]`` (TorchRL layout, the
        actor's outputs included). Returns their flat indices into ``[B, T, P]``."""
        agents = chunk.get("agents")
        B, T, P = agents.batch_size
        live = agents.get("mask").reshape(-1).nonzero().squeeze(-1)
        rows = rows_from_td(chunk.exclude("next"), self.vision, select=live, task_table=None)
        b = live // (T * P)
        t = (live // P) % T
        self._put("map_step", (self.map_steps + b * T + t).to(torch.int32))
        self._put("tick", (self.ticks + t).to(torch.int32))
        self._put("map", b.to(torch.int16))
        self._put("agent", (live % P).to(torch.int16))
        centre = rows.tile.shape[1] // 2
        self._put("position", rows.tile[:, centre, :2].clone())
        self._put("window", rows.tile[..., 2].to(torch.uint8))
        ent = rows.entity
        er, es, ec = _csr((ent != 0).any(-1), ent)
        self._put("entity_rows", er)
        self._put("entity_slot", es.to(torch.uint8))
        self._put("entity_count", ec.to(torch.int32))
        self._put("inventory", rows.inventory.clone())
        if "task_id" in agents.keys():
            self._put("task_id", agents.get("task_id").reshape(-1).index_select(0, live).to(torch.int32))
        elif rows.task is not None:
            self._put("task", rows.task.clone())
        self._put("masks", pack_bits(torch.cat([rows.masks[h] for h, _ in self.heads], -1)))
        act = chunk.get(("agents", "action"))
        self._put("action", torch.stack([act.get(h).reshape(-1).index_select(0, live)
                                         for h, _ in self.heads], -1).to(torch.int16))
        for k in ("sample_log_prob", "state_value"):
            self._put(k, agents.get(k).reshape(-1).index_select(0, live).float())
        self._put("reset", rows.reset.clone())
        if rows.state is not None:
            self._put("state", rows.state.clone())
        market = chunk.get("market")
        mk = market.reshape(-1, *market.shape[-2:])
        mr, ms, mc = _csr((mk != 0).any(-1), mk)
        self._put("market_rows", mr)
        self._put("market_slot", ms.to(torch.int16))
        self._put("market_count", mc.to(torch.int32))
        self.market_size = mk.shape[1]
        self.entity_width = ent.shape[1]
        self.map_steps += B * T
        self.ticks += T
        return live

    def finish(self) -> None:
        """Join the chunks (call once, after the last :meth:`add`)."""
        self.data = {k: torch.cat(v) if len(v) > 1 else v[0] for k, v in self.parts.items()}
        self.parts = {}

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the agent-steps ``rows`` (flat indices into the stored ones), in that
        order (the entity table is cut to theirs; the markets stay)."""
        d = self.data
        count = d["entity_count"]
        start = torch.cumsum(count, 0) - count
        c = count[rows]
        first = torch.cumsum(c, 0) - c
        q = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), c)
        k = start[rows][q] + torch.arange(q.numel(), device=rows.device) - first[q]
        per_row = {"entity_rows", "entity_slot", "entity_count",
                   "market_rows", "market_slot", "market_count"}
        for key in list(d):
            if key not in per_row:
                d[key] = d[key].index_select(0, rows)
        d["entity_rows"], d["entity_slot"], d["entity_count"] = d["entity_rows"][k], d["entity_slot"][k], c

    def set(self, key: str, value: torch.Tensor) -> None:
        """Add a per agent-step field (advantages, value targets) in the kept order."""
        self.data[key] = value

    def __len__(self) -> int:
        return int(self.data["agent"].shape[0]) if self.data else 0

    def nbytes(self) -> int:
        """Bytes held (every stored tensor)."""
        return sum(v.numel() * v.element_size() for v in self.data.values())

    # --- reading -----------------------------------------------------------------------------------------
    def rows(self, index: torch.Tensor, lead: tuple | None = None) -> AgentRows:
        """The policy's inputs for the agent-steps ``index`` (any shape; ``lead`` the output
        shape, default ``index.shape``): exactly what the collected observation held."""
        d = self.data
        flat = index.reshape(-1)
        pos = d["position"].index_select(0, flat).long()
        mat = d["window"].index_select(0, flat).to(torch.int16)
        dr, dc = window_offsets(self.vision, flat.device)
        alive = torch.ones(flat.shape, dtype=torch.bool, device=flat.device)
        tile = window_tiles(pos[:, 0], pos[:, 1], mat, alive, dr, dc)
        entity = _expand_csr(d["entity_rows"], d["entity_slot"], d["entity_count"], flat, self.entity_width)
        if "task_id" in d:
            task = (None if self.task_table is None
                    else self.task_table.index_select(0, d["task_id"].index_select(0, flat).long()))
        else:
            task = d["task"].index_select(0, flat) if "task" in d else None
        bits = unpack_bits(d["masks"].index_select(0, flat), sum(n for _, n in self.heads))
        masks, i = {}, 0
        for h, n in self.heads:
            masks[h] = bits[:, i:i + n]
            i += n
        used, map_of = torch.unique(d["map_step"].index_select(0, flat).long(), return_inverse=True)
        market = _expand_csr(d["market_rows"], d["market_slot"], d["market_count"], used, self.market_size)
        state = d["state"].index_select(0, flat) if "state" in d else None
        return AgentRows(tuple(lead if lead is not None else index.shape), tile, entity,
                         d["inventory"].index_select(0, flat), task, masks,
                         d["agent"].index_select(0, flat).long() + 1, market, map_of, None, state,
                         d["reset"].index_select(0, flat))
