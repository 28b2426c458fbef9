"""Observations and action masks in the Neural MMO 2.0 layout (NMMO2.md §5).

Two forms carry the same information:

* **dense** (default): ``("agents","tile")`` int16 ``[B, P, 225, 3]`` and
  ``("agents","entity")`` int16 ``[B, P, 100, 31]``, exactly the 2.0 arrays;
* **compact**: what is shared by a map is emitted once per map — ``material`` ``[B, H, W]``
  and ``entity_table`` ``[B, E + 1, 31]`` (last row all zero) — with per-agent
  ``("agents","position")`` and ``("agents","entity_index")`` ``[B, P, 100]`` rows into the
  table. :func:`expand_observation` turns it into the dense form wherever the policy runs
  (on the GPU, say); building the 100×31 rows of every agent is the single most expensive
  part of a tick on the CPU.

Entity rows are every live entity within the vision window, in slot order (players by id,
then NPCs), which is 2.0's storage order; the agent itself is among them; empty rows are 0.
"""

from __future__ import annotations

import torch

from . import constants as C
from . import items as I
from . import market
from .config import EnvConfig
from .grid import bool_full, passable_table, tile_at
from .state import WorldState

FAR = -10000  # coordinate given to dead entities so that no one sees them


class Observer:
    def __init__(self, cfg: EnvConfig, num_maps: int, device):
        self.cfg = cfg
        B, E = num_maps, cfg.num_entities
        v = cfg.vision
        off = torch.arange(-v, v + 1, device=device)
        self.win_dr = off[:, None].expand(cfg.window, cfg.window).reshape(-1)
        self.win_dc = off[None, :].expand(cfg.window, cfg.window).reshape(-1)
        self.win_flat = self.win_dr * cfg.map_size + self.win_dc
        self.map_offset_table = (torch.arange(B, device=device) * (E + 1))[:, None, None]
        self.slots = None  # [B, P, K] entity slot per observed row (E: empty)
        self.pairs = None  # every visible (agent row, entity slot, distance) of the last obs
        self.passable = passable_table(device)
        self.items = I.ItemTables(cfg, device)
        self.market_rows = torch.full((B, cfg.market_size), -1, dtype=torch.int64, device=device)
        self.deltas = torch.tensor(C.MOVE_DELTAS[:4], device=device)

    # --- distances and visible rows -------------------------------------------------------
    def distances(self, s: WorldState) -> torch.Tensor:
        """Chebyshev distance player×entity ``[B, P, E]`` (int16); pairs with a dead player or
        a dead entity are far apart (dead players and dead entities get different far-off
        coordinates, so two dead slots are not close either)."""
        P = self.cfg.num_agents
        r = torch.where(s.alive, s.row, FAR).to(torch.int16)
        c = torch.where(s.alive, s.col, FAR).to(torch.int16)
        rp = torch.where(s.alive[:, :P], s.row[:, :P], -FAR).to(torch.int16)
        return torch.maximum((rp[..., None] - r[:, None, :]).abs_(),
                             (c[:, :P, None] - c[:, None, :]).abs_())

    def visible_rows(self, s: WorldState, dist: torch.Tensor):
        """Entity slot of each observed row ``[B, P, K]``, and every visible pair as flat
        ``(agent row b*P+p, entity slot, distance)`` (before the K-row cut)."""
        cfg = self.cfg
        B, P, E, K = s.num_maps, cfg.num_agents, cfg.num_entities, cfg.num_entity_obs
        flat = (dist <= cfg.vision).view(-1).nonzero().squeeze(1)
        pair_row = torch.div(flat, E, rounding_mode="floor")
        pair_ent = flat - pair_row * E
        pair_dist = dist.view(-1)[flat]
        counts = torch.bincount(pair_row, minlength=B * P)
        start = counts.cumsum(0) - counts
        pos = torch.arange(pair_row.numel(), device=s.device) - start[pair_row]
        keep = pos < K
        self.pairs = (pair_row, pair_ent, pair_dist)
        pair_row, pair_ent, pos, pair_dist = pair_row[keep], pair_ent[keep], pos[keep], pair_dist[keep]
        slots = torch.full((B * P, K), E, dtype=torch.int64, device=s.device)
        slots[pair_row, pos] = pair_ent
        return slots.view(B, P, K), pair_row, pair_ent, pos, pair_dist

    # --- per-map entity table ---------------------------------------------------------------
    def entity_table(self, s: WorldState) -> torch.Tensor:
        B, E = s.alive.shape
        cols = [s.ent_id, s.npc_type, s.row, s.col, s.damage, s.time_alive, s.freeze,
                s.item_level, s.attacker_id, s.latest_combat_tick, s.message, s.gold,
                s.health, s.food, s.water]
        table = torch.zeros(B, E + 1, C.NUM_ENTITY_COLUMNS, dtype=torch.int16, device=s.device)
        body = table[:, :E]
        for k, x in enumerate(cols):
            body[..., k] = x.clamp(-32768, 32767) if k == C.COL["gold"] else x
        body[..., len(cols)::2] = s.level
        body[..., len(cols) + 1::2] = s.exp.clamp(max=32767)
        body *= s.alive[..., None]  # dead slots read as empty
        return table

    def observe(self, s: WorldState, dense: bool = True) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        B, P, K = s.num_maps, cfg.num_agents, cfg.num_entity_obs
        alive = s.alive[:, :P]
        dist = self.distances(s)
        slots, pair_row, pair_ent, pos, pd = self.visible_rows(s, dist)
        self.slots = slots

        # Attack-target mask (2.0): in reach, not self, and players are out of bounds while
        # the agent itself is younger than the spawn immunity. The no-op (last index) is
        # allowed only when no target is.
        me = pair_row % P
        young = (s.time_alive[:, :P].reshape(-1)[pair_row] < cfg.spawn_immunity) & (pair_ent < P)
        ok = (pd <= cfg.attack_reach) & (pair_ent != me) & ~young
        target_mask = bool_full(B * P, K + 1, value=False, device=s.device)
        target_mask[pair_row, pos] = ok
        n_ok = torch.zeros(B * P, dtype=torch.int32, device=s.device)
        n_ok.index_add_(0, pair_row, ok.int())
        target_mask[:, K] = n_ok == 0
        target_mask = target_mask.view(B, P, K + 1)

        r, c = s.row[:, :P], s.col[:, :P]
        nbr = tile_at(s.material, r[..., None] + self.deltas[:, 0], c[..., None] + self.deltas[:, 1])
        move_mask = bool_full(B, P, C.NUM_MOVES, value=True, device=s.device)
        move_mask[..., :4] = self.passable[nbr] & alive[..., None]

        if cfg.item_system:
            out_items = self.item_observations(s, pair_row, pair_ent, pos, pd)
        else:
            out_items = self.no_item_observations(s)
        table = self.entity_table(s)
        out = {
            **out_items,
            "mask": alive,
            "position": torch.stack([r, c], -1).to(torch.int16) * alive[..., None],
            "move_mask": move_mask,
            "style_mask": bool_full(B, P, 3, value=True, device=s.device),
            "target_mask": target_mask,
        }
        if dense:
            out["tile"] = self.tiles(s)
            out["entity"] = expand_entities(table, slots)
        else:
            out["material"] = s.material
            out["entity_table"] = table
            out["entity_index"] = slots.to(torch.int16)
        return out

    def no_item_observations(self, s: WorldState) -> dict[str, torch.Tensor]:
        """With the item system off: empty inventories and market, no-op-only masks (built
        once: constant tensors, never written to)."""
        if getattr(self, "_no_items", None) is None:
            from .torchrl_env import head_sizes  # noqa: PLC0415 (the env module imports this one)
            cfg, dev = self.cfg, s.device
            B, P = s.num_maps, cfg.num_agents
            out = {"inventory": torch.zeros(B, P, cfg.inventory_slots, C.NUM_ITEM_COLUMNS,
                                            dtype=torch.int16, device=dev),
                   "market": torch.zeros(B, cfg.market_size, C.NUM_ITEM_COLUMNS, dtype=torch.int16,
                                         device=dev)}
            for head, n in head_sizes(cfg).items():
                if head in ("move", "attack_style", "attack_target"):
                    continue
                m = torch.zeros(B, P, n, dtype=torch.bool, device=dev)
                m[..., 0 if head in ("give_gold_amount", "sell_price") else n - 1] = True
                out[head] = m
            self._no_items = out
        return self._no_items

    def item_observations(self, s: WorldState, pair_row, pair_ent, pos, pd) -> dict[str, torch.Tensor]:
        """Inventory rows, the market, and the masks of the 9 item and gold heads."""
        cfg, t = self.cfg, self.items
        B, P, S, K, M = s.num_maps, cfg.num_agents, cfg.inventory_slots, cfg.num_entity_obs, cfg.market_size
        dev = s.device
        alive = s.alive[:, :P]
        free = alive & ~I.in_combat(s, P, cfg.combat_status_ticks)
        owner = s.ent_id[:, :P, None].expand(B, P, S)
        inventory = I.item_rows(t, cfg, s.inv_type, s.inv_level, s.inv_quantity, s.inv_id, owner,
                                s.inv_equipped, s.inv_price)
        rows = market.listings(s, cfg)
        self.market_rows = rows
        rc = rows.clamp_min(0)
        flat = lambda x: x.reshape(B, P * S).gather(1, rc)  # noqa: E731
        seller = torch.div(rc, S, rounding_mode="floor")
        listed = rows >= 0
        m_type, m_level, m_qty, m_price = (flat(x) * listed for x in
                                          (s.inv_type, s.inv_level, s.inv_quantity, s.inv_price))
        market_obs = I.item_rows(t, cfg, m_type, m_level, m_qty, flat(s.inv_id) * listed,
                                 s.ent_id[:, :P].gather(1, seller), torch.zeros_like(listed), m_price)

        exists = s.inv_type > 0
        listed_inv = s.inv_price > 0
        level_ok = s.inv_level <= I.required_level(s, cfg, t, s.inv_type.long())

        def with_noop(m: torch.Tensor, allowed: torch.Tensor = free) -> torch.Tensor:
            out = torch.empty(*m.shape[:-1], m.shape[-1] + 1, dtype=torch.bool, device=dev)
            torch.logical_and(m, allowed[..., None], out=out[..., :-1])
            out[..., -1] = True
            return out

        tradable = exists & ~s.inv_equipped & ~listed_inv
        # Give targets: players on the agent's tile, not itself; built from the visible pairs.
        same_tile = (pd == 0) & (pair_ent < P) & (pair_ent != pair_row % P)
        gold = s.gold[:, :P]

        def target_mask(cond: torch.Tensor) -> torch.Tensor:
            m = bool_full(B * P, K + 1, value=False, device=dev)
            m[pair_row, pos] = same_tile & cond.reshape(-1)[pair_row]
            m[:, K] = True
            return m.view(B, P, K + 1)

        amount = torch.arange(1, cfg.max_price + 1, device=dev) <= (gold * free)[..., None]
        amount[..., 0] = True  # 2.0: the first amount is always allowed

        # Buy: affordable listings of others; a full inventory only takes a matching stack.
        L = max(1, int(listed.sum(1).max()))
        me = torch.arange(P, device=dev)[None, :, None]
        buy = (listed[:, None, :L] & (seller[:, None, :L] != me)
               & (m_price[:, None, :L] <= gold[..., None]))
        full = (~exists).sum(-1) == 0
        if bool(full.any()):  # only the full inventories' stacks are compared
            fb, fp = full.nonzero(as_tuple=True)
            stack = ((s.inv_type[fb, fp][:, None, :] == m_type[fb, :L, None])
                     & (s.inv_level[fb, fp][:, None, :] == m_level[fb, :L, None])
                     & t.stackable[m_type[fb, :L, None].long()]
                     & (s.inv_quantity[fb, fp][:, None, :] + m_qty[fb, :L, None] <= cfg.stack_capacity))
            buy[fb, fp] &= stack.any(-1)
        buy_mask = bool_full(B, P, M + 1, value=False, device=dev)
        buy_mask[..., :L] = buy & free[..., None]
        buy_mask[..., M] = True
        return {
            "inventory": inventory,
            "market": market_obs,
            "use_item": with_noop(exists & ~listed_inv & level_ok),
            "destroy_item": with_noop(exists & ~s.inv_equipped),
            "give_item": with_noop(tradable),
            "give_target": target_mask(free & exists.any(-1)),
            "give_gold_amount": amount,
            "give_gold_target": target_mask(free & (gold > 0)),
            "sell_item": with_noop(tradable),
            "sell_price": bool_full(B, P, cfg.max_price, value=True, device=dev),
            "buy_item": buy_mask,
        }

    def tiles(self, s: WorldState) -> torch.Tensor:
        cfg = self.cfg
        B, P = s.num_maps, cfg.num_agents
        alive = s.alive[:, :P]
        base = s.row[:, :P] * cfg.map_size + s.col[:, :P]
        mat = s.material.view(B, -1).gather(1, (base[..., None] + self.win_flat).view(B, -1))
        return window_tiles(s.row[:, :P], s.col[:, :P], mat.view(B, P, -1), alive,
                            self.win_dr, self.win_dc)


def window_tiles(row, col, mat, alive, win_dr, win_dc) -> torch.Tensor:
    """Assemble the ``[..., 225, 3]`` (row, col, material) tile rows; zero for dead agents."""
    out = torch.empty(*mat.shape, 3, dtype=torch.int16, device=mat.device)
    out[..., 0] = (row[..., None] + win_dr).to(torch.int16)
    out[..., 1] = (col[..., None] + win_dc).to(torch.int16)
    out[..., 2] = mat
    return out * alive[..., None, None]


def expand_entities(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Dense entity rows ``[B, P, K, 31]`` from a per-map table ``[B, E+1, 31]`` and row
    indices ``[B, P, K]`` (``E``: the table's all-zero last row)."""
    B, E1, F = table.shape
    flat = index.long() + (torch.arange(B, device=table.device) * E1)[:, None, None]
    return table.view(B * E1, F).index_select(0, flat.view(-1)).view(*index.shape, F)


def expand_observation(material: torch.Tensor, entity_table: torch.Tensor,
                       position: torch.Tensor, entity_index: torch.Tensor, mask: torch.Tensor,
                       vision: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense ``(tile, entity)`` observations from the compact form, on any device."""
    B, H, W = material.shape
    off = torch.arange(-vision, vision + 1, device=material.device)
    n = off.numel()
    dr = off[:, None].expand(n, n).reshape(-1)
    dc = off[None, :].expand(n, n).reshape(-1)
    # Dead agents carry position 0: read a valid window for them, then zero it.
    r = torch.where(mask, position[..., 0].long(), vision)
    c = torch.where(mask, position[..., 1].long(), vision)
    flat = (r[..., None] + dr) * W + (c[..., None] + dc)
    mat = material.reshape(B, -1).gather(1, flat.view(B, -1)).view(*flat.shape)
    return window_tiles(r, c, mat, mask, dr, dc), expand_entities(entity_table, entity_index)
