"""What a policy's network reads, as rows: one row per agent-step that is computed, plus
what the rows' maps share (the market) once per map.

A policy's forward never sees the env's ``[..., maps, agents]`` layout directly: the env's
TensorDict (dense or compact observations, every agent or the live ones only) and the
trainer's compact rollout (:mod:`nmmozoo.train.rollout`) both become :class:`AgentRows`,
and the network runs on those. A row names its map (``map_of``) instead of carrying a copy
of the map's market, so a minibatch of agent-steps from many map-steps holds each market
once, and the acting pass runs only the alive agents without copying anything per agent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDictBase

from .env.constants import ACTION_HEADS
from .env.observe import window_offsets, window_tiles


@dataclass
class AgentRows:
    """``N`` agent-steps to compute.

    ``tile`` ``[N, W², 3]`` and ``entity`` ``[N, K, 31]`` int16 (the 2.0 arrays),
    ``inventory`` ``[N, S, 16]``, ``task`` ``[N, D]`` or None, ``masks`` head → ``[N, n]``
    bool, ``agent_id`` ``[N]`` (the agent's entity id, 1-based), ``market`` ``[G, M, 16]``
    (one per map the rows come from) with ``map_of`` ``[N]`` (each row's map, an index into
    ``market``), ``per_map`` when the rows are ``G`` whole maps of ``per_map`` agents in
    order (``map_of == arange(N) // per_map``), ``state`` ``[N, ...]`` (memory, or None) and
    ``reset`` ``[N]`` (the row's map starts an episode: the memory restarts). ``lead`` is
    the shape the outputs take (``N`` = its product)."""

    lead: tuple
    tile: torch.Tensor
    entity: torch.Tensor
    inventory: torch.Tensor
    task: torch.Tensor | None
    masks: dict
    agent_id: torch.Tensor
    market: torch.Tensor
    map_of: torch.Tensor
    per_map: int | None
    state: torch.Tensor | None
    reset: torch.Tensor

    @property
    def size(self) -> int:
        return self.tile.shape[0]


def rows_from_td(td: TensorDictBase, vision: int, select: torch.Tensor | None = None,
                 task_table: torch.Tensor | None = None) -> AgentRows:
    """The agent-steps of an env TensorDict ``[..., B, P]`` (dense or compact observations):
    every agent, or the flat indices ``select`` into ``[...·B·P]`` (the live ones, say). In
    compact form the tile window and the entity rows are read from the map's tables for the
    selected rows alone; a compact ``task_id`` needs ``task_table`` (the env's task
    embeddings)."""
    agents = td.get("agents")
    lead = tuple(agents.batch_size)
    P = lead[-1]
    NB = int(torch.Size(lead).numel())
    dev = agents.device

    def per_agent(key):
        x = agents.get(key)
        x = x.reshape(NB, *x.shape[len(lead):])
        return x if select is None else x.index_select(0, select)

    flat_idx = torch.arange(NB, device=dev) if select is None else select
    map_all = flat_idx // P  # the row's map among the td's maps
    market = td.get("market")
    market = market.reshape(-1, *market.shape[-2:])
    if select is None:
        map_of, per_map = map_all, P
    else:  # only the maps the rows come from
        used, map_of = torch.unique(map_all, return_inverse=True)
        market = market.index_select(0, used)
        per_map = None
    mask = per_agent("mask")
    if "entity" in agents.keys():
        tile, entity = per_agent("tile"), per_agent("entity")
    else:  # compact: per-map tables, read for these rows only
        material = td.get("material")
        H, W = material.shape[-2:]
        material = material.reshape(-1, H * W)
        pos = per_agent("position").long()
        dr, dc = window_offsets(vision, dev)
        # dead agents carry position 0: read a valid window for them, then zero it
        r = torch.where(mask, pos[:, 0], vision)
        c = torch.where(mask, pos[:, 1], vision)
        cells = (r[:, None] + dr) * W + (c[:, None] + dc)
        mat = material.reshape(-1)[(map_all[:, None] * (H * W) + cells).view(-1)].view(cells.shape)
        tile = window_tiles(r, c, mat, mask, dr, dc)
        table = td.get("entity_table")
        E1, F = table.shape[-2:]
        table = table.reshape(-1, F)
        index = per_agent("entity_index").long()
        entity = table.index_select(0, (index + (map_all * E1)[:, None]).view(-1)).view(*index.shape, F)
    if "task" in agents.keys():
        task = per_agent("task")
    elif "task_id" in agents.keys() and task_table is not None:
        task = task_table.index_select(0, per_agent("task_id").long())
    else:
        task = None
    masks = {h: per_agent(("action_mask", h)) for h in ACTION_HEADS}
    index = agents.get("agent_index", None)
    if index is not None:
        agent_id = index.reshape(NB)[flat_idx].long() + 1
    else:
        agent_id = flat_idx % P + 1
    state = per_agent("recurrent_state") if "recurrent_state" in agents.keys() else None
    init = td.get("is_init", None)
    if init is not None:
        reset = init[..., :1].expand(*lead).reshape(NB)[flat_idx]
    else:
        reset = torch.zeros(flat_idx.shape, dtype=torch.bool, device=dev)
    out_lead = lead if select is None else (int(select.numel()),)
    return AgentRows(out_lead, tile, entity, per_agent("inventory"), task, masks, agent_id, market,
                     map_of, per_map, state, reset)
