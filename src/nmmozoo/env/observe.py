"""Observations and action masks in the Neural MMO 2.0 layout
(docs/env.md#observations-and-actions).

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
from .grid import bool_full, lookup, passable_table, tile_at
from .state import WorldState

FAR = -10000  # coordinate given to dead entities so that no one sees them


class Observer:
    def __init__(self, cfg: EnvConfig, num_maps: int, device, item_tables: I.ItemTables | None = None):
        self.cfg = cfg
        B = num_maps
        self.win_dr, self.win_dc = window_offsets(cfg.vision, device)
        self.win_flat = self.win_dr * cfg.map_size + self.win_dc
        self.slots = None  # [B, P, K] int16 entity slot per observed row (E: empty)
        self._scratch = None  # [4, B, P, E] int16 work space of visible_pairs
        self.pairs = None  # every visible (agent row, entity slot, distance) of the last obs
        self.passable = passable_table(device)
        self.items = item_tables if item_tables is not None else I.ItemTables(cfg, device)
        self.market_rows = torch.full((B, cfg.market_size), -1, dtype=torch.int64, device=device)
        self.deltas = torch.tensor(C.MOVE_DELTAS[:4], device=device)
        P, S = cfg.num_agents, cfg.inventory_slots
        self.map_offset_items = (torch.arange(B, device=device) * (P * S))[:, None]
        amounts = torch.arange(1, cfg.max_price + 1, device=device)
        self.amount_rows = amounts <= torch.arange(cfg.max_price + 1, device=device)[:, None]
        self.amount_rows[:, 0] = True
        # Constant masks (every option always allowed): built once, never written to.
        self.all_prices = bool_full(B, P, cfg.max_price, value=True, device=device)
        self.all_styles = bool_full(B, P, 3, value=True, device=device)
        self._no_listing = torch.zeros(1, dtype=torch.bool, device=device).expand(
            B, P, cfg.market_size)  # a stride-0 view: widens the buy mask without a buffer

    # --- visible pairs and rows -----------------------------------------------------------
    def visible_pairs(self, s: WorldState):
        """Every (agent row ``b*P+p``, entity slot, Chebyshev distance) pair within vision,
        agent rows ascending, entity slots ascending within a row. Dead players see nothing
        and dead entities are seen by no one (they get different far-off coordinates).

        The player×entity test runs over ``[B, P, E]``, the biggest tensors of the tick, so it
        uses only subtractions and bitwise ops (on the CPU, comparisons, ``abs`` and
        ``maximum`` cost many times more): ``|d| <= v`` exactly when neither ``v + d`` nor
        ``v - d`` is negative, so the OR of the four bounds has its sign bit clear."""
        cfg = self.cfg
        B, P, E, v = s.num_maps, cfg.num_agents, cfg.num_entities, cfg.vision
        H = cfg.map_size
        if H + 3 * v < 255:
            # int8 with wrap-around: differences are exact mod 256, and no |d| < H + v wraps
            # into [-v, v]. Dead entities / dead players sit at rows that are > v (mod 256)
            # from every live row and from each other.
            dt, far_e, far_p, sign = torch.int8, H + v, 255 - v, 7
        else:
            dt, far_e, far_p, sign = torch.int16, FAR, -FAR, 15
        r = torch.where(s.alive, s.row, far_e).to(dt)
        c = s.col.to(dt)
        rp = torch.where(s.alive[:, :P], s.row[:, :P], far_p).to(dt)[..., None]
        cp = c[:, :P, None]
        r, c = r[:, None, :], c[:, None, :]
        # Into buffers kept between ticks: fresh tensors this big cost page faults and cache
        # misses every tick.
        if (self._scratch is None or self._scratch.shape[1:] != (B, P, E)
                or self._scratch.dtype != dt):
            self._scratch = torch.empty(4, B, P, E, dtype=dt, device=s.device)
        up, left, out, tmp = self._scratch
        torch.sub(rp + v, r, out=up)       # v + (agent row - entity row)
        torch.sub(cp + v, c, out=left)
        torch.sub(r + v, rp, out=out)
        out |= up
        out |= left
        out |= torch.sub(c + v, cp, out=tmp)
        out.bitwise_not_()
        out >>= sign                 # -1 where the sign bit was set (visible), else 0
        flat = _nonzero_sparse(out.view(-1))
        pair_row = torch.div(flat, E, rounding_mode="floor")
        pair_ent = flat - pair_row * E
        pair_dist = torch.maximum((up.view(-1).index_select(0, flat) - v).abs_(),
                                  (left.view(-1).index_select(0, flat) - v).abs_()).to(torch.int16)
        return pair_row, pair_ent, pair_dist

    def visible_rows(self, s: WorldState):
        """Entity slot of each observed row ``[B, P, K]`` (int16; ``E``: empty row), and the
        visible pairs of the first K rows as (agent row, entity slot, row, distance). All
        visible pairs (before the K-row cut) are kept in ``self.pairs``."""
        cfg = self.cfg
        B, P, E, K = s.num_maps, cfg.num_agents, cfg.num_entities, cfg.num_entity_obs
        pair_row, pair_ent, pair_dist = self.pairs = self.visible_pairs(s)
        counts = torch.bincount(pair_row, minlength=B * P)
        start = counts.cumsum(0) - counts
        pos = torch.arange(pair_row.numel(), device=s.device) - start.index_select(0, pair_row)
        if pair_row.numel() and int(counts.max()) > K:  # rare: someone sees more than K
            keep = pos < K
            pair_row, pair_ent, pos, pair_dist = pair_row[keep], pair_ent[keep], pos[keep], pair_dist[keep]
        slots = torch.full((B * P * K,), E, dtype=torch.int16, device=s.device)
        slots.index_put_((pair_row * K + pos,), pair_ent.to(torch.int16))
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
        slots, pair_row, pair_ent, pos, pd = self.visible_rows(s)
        self.slots = slots

        # Attack-target mask (2.0): in reach, not self, and players are out of bounds while
        # the agent itself is younger than the spawn immunity. The no-op (last index) is
        # allowed only when no target is.
        me = pair_row % P
        immunity = s.immunity[:, None].expand(B, P).reshape(-1)[pair_row]
        young = (s.time_alive[:, :P].reshape(-1)[pair_row] < immunity) & (pair_ent < P)
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
        move_mask[..., :4] = lookup(self.passable, nbr) & alive[..., None]

        if cfg.item_system:
            out_items = self.item_observations(s, pair_row, pair_ent, pos, pd, me)
        else:
            out_items = self.no_item_observations(s)
        table = self.entity_table(s)
        out = {
            **out_items,
            "mask": alive.clone(),  # a copy: the state's alive changes in place
            "position": torch.stack([r, c], -1).to(torch.int16) * alive[..., None],
            "move_mask": move_mask,
            "style_mask": self.all_styles,
            "target_mask": target_mask,
        }
        if dense:
            out["tile"] = self.tiles(s)
            out["entity"] = expand_entities(table, slots)
        else:
            out["material"] = s.material
            out["entity_table"] = table
            out["entity_index"] = slots.clone()  # self.slots stays the env's own
        return out

    def no_item_observations(self, s: WorldState) -> dict[str, torch.Tensor]:
        """With the item system off: empty inventories and market, no-op-only masks (built
        once: constant tensors, never written to)."""
        if getattr(self, "_no_items", None) is None:
            from .constants import head_sizes
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

    def item_observations(self, s: WorldState, pair_row, pair_ent, pos, pd, me) -> dict[str, torch.Tensor]:
        """Inventory rows, the market, and the masks of the 9 item and gold heads.

        Built with as few ops as possible (per-op overhead dominates on the CPU): masks that
        share a shape are written into one fresh buffer each, and the market rows are copies
        of the inventory rows of the listed items."""
        cfg, t = self.cfg, self.items
        B, P, S, K, M = s.num_maps, cfg.num_agents, cfg.inventory_slots, cfg.num_entity_obs, cfg.market_size
        dev = s.device
        free = s.alive[:, :P] & ~I.in_combat(s, P, cfg.combat_status_ticks)
        inventory = I.inventory_rows(t, s, P)

        # Market: the rows of the listed items, in slot order.
        listed_inv = s.inv_price > 0
        rows, slot_row = market.listings(s, cfg, listed_inv, with_rows=True)
        self.market_rows = rows
        listed = rows >= 0
        rc = rows.clamp_min(0)
        flat_rows = (rc + self.map_offset_items).view(-1)
        market_obs = inventory.view(B * P * S, -1).index_select(0, flat_rows).view(B, M, -1)
        market_obs *= listed[..., None]
        market_obs[..., I.ROW_EQUIPPED] = 0  # listed items are never equipped; 0 by the rules

        # Item heads: [use, destroy, give, sell] x [B, P, S + 1], the no-op last.
        exists = s.inv_type > 0
        movable = (exists & free[..., None]) & ~s.inv_equipped  # destroy
        heads = torch.empty(4, B, P, S + 1, dtype=torch.bool, device=dev)
        heads[..., S] = True
        torch.logical_and(exists & free[..., None] & ~listed_inv, I.item_levels_ok(s, t, P),
                          out=heads[0, ..., :S])
        heads[1, ..., :S] = movable
        torch.logical_and(movable, ~listed_inv, out=heads[2, ..., :S])
        heads[3, ..., :S] = heads[2, ..., :S]

        # Give targets: players on the agent's tile, not itself, from the visible pairs (the
        # few at distance 0 are picked out first).
        gold = s.gold[:, :P]
        near = ((pd == 0) & (pair_ent < P) & (pair_ent != me)).nonzero().squeeze(1)
        near_row, near_pos = pair_row[near], pos[near]
        conds = torch.stack([free & exists.any(-1), free & (gold > 0)]).view(2, B * P)
        targets = bool_full(2, B * P, K + 1, value=False, device=dev)
        targets[:, near_row, near_pos] = conds[:, near_row]
        targets[..., K] = True
        targets = targets.view(2, B, P, K + 1)

        gold_free = gold * free
        # One look-up row per amount of gold (the first amount is always allowed, 2.0).
        amount = self.amount_rows.index_select(0, gold_free.clamp(max=cfg.max_price).view(-1))
        amount = amount.view(B, P, cfg.max_price)

        # Buy: affordable listings of others; a full inventory only takes a matching stack.
        L = max(1, int(listed.sum(1).max()))
        price = torch.where(listed[:, :L], market_obs[:, :L, I.ROW_PRICE].int(), 2 ** 31 - 1)
        # Built on the first L listings (+ the no-op) and widened in one pass at the end:
        # the full [B, P, M + 1] mask is the biggest tensor of the tick.
        buy_l = torch.empty(B, P, L + 1, dtype=torch.bool, device=dev)
        buy = buy_l[..., :L]
        # (gold 0 where not free: every listing costs at least 1)
        torch.le(price[:, None, :], gold_free[..., None], out=buy)
        # Not one's own listings: each listed slot's market row (all < L), L where it has none.
        buy_l.scatter_(2, slot_row.clamp_max(L), False)
        buy_l[..., L] = True
        full = exists.view(torch.uint8).amin(-1).bool()  # faster than all(-1)
        if bool(full.any()):  # only the full inventories' stacks are compared
            fb, fp = full.nonzero(as_tuple=True)
            m_type = market_obs[fb, :L, 1].long()
            stack = ((s.inv_type[fb, fp][:, None, :] == m_type[..., None])
                     & (s.inv_level[fb, fp][:, None, :] == market_obs[fb, :L, 3, None])
                     & t.stackable[m_type][..., None]
                     & (s.inv_quantity[fb, fp][:, None, :] + market_obs[fb, :L, 5, None]
                        <= cfg.stack_capacity))
            buy[fb, fp] &= stack.any(-1)
        return {
            "inventory": inventory,
            "market": market_obs,
            "use_item": heads[0],
            "destroy_item": heads[1],
            "give_item": heads[2],
            "give_target": targets[0],
            "give_gold_amount": amount,
            "give_gold_target": targets[1],
            "sell_item": heads[3],
            "sell_price": self.all_prices,
            "buy_item": torch.cat([buy, self._no_listing[..., :M - L], buy_l[..., L:]], -1),
        }

    def tiles(self, s: WorldState) -> torch.Tensor:
        cfg = self.cfg
        B, P = s.num_maps, cfg.num_agents
        alive = s.alive[:, :P]
        base = s.row[:, :P] * cfg.map_size + s.col[:, :P]
        mat = s.material.view(B, -1).gather(1, (base[..., None] + self.win_flat).view(B, -1))
        return window_tiles(s.row[:, :P], s.col[:, :P], mat.view(B, P, -1), alive,
                            self.win_dr, self.win_dc)


def _nonzero_sparse(x: torch.Tensor) -> torch.Tensor:
    """Indices of the nonzero entries of a 1-D integer tensor that is mostly zero: first the
    nonzero 8-byte words (a fraction of the entries to scan), then the entries within them."""
    per = 8 // x.element_size()
    if x.numel() % per:
        return x.nonzero().squeeze(1)
    words = x.view(torch.int64).nonzero().squeeze(1)
    cand = (words[:, None] * per + torch.arange(per, device=x.device)).view(-1)
    return cand.index_select(0, x.index_select(0, cand).nonzero().squeeze(1))


def window_offsets(vision: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column offsets of the ``(2·vision+1)²`` window cells, row-major."""
    off = torch.arange(-vision, vision + 1, device=device)
    n = off.numel()
    return off[:, None].expand(n, n).reshape(-1), off[None, :].expand(n, n).reshape(-1)


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
    dr, dc = window_offsets(vision, material.device)
    # Dead agents carry position 0: read a valid window for them, then zero it.
    r = torch.where(mask, position[..., 0].long(), vision)
    c = torch.where(mask, position[..., 1].long(), vision)
    flat = (r[..., None] + dr) * W + (c[..., None] + dc)
    mat = material.reshape(B, -1).gather(1, flat.view(B, -1)).view(*flat.shape)
    return window_tiles(r, c, mat, mask, dr, dc), expand_entities(entity_table, entity_index)
