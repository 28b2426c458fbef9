"""The per-map market (docs/env.md#items-gold-and-the-market): listings are inventory items with a price; Buy takes one.

The market observation lists every listed item of the map (slot order: seller, then
inventory slot) up to ``market_size`` rows; a Buy action names a row of the last observation.
Several buyers of one listing: a random one gets it (2.0 shuffles the buys of a tick).
"""

from __future__ import annotations

import torch

from . import constants as C
from . import eventlog as EL
from . import items as I
from .config import EnvConfig
from .state import WorldState


def listings(s: WorldState, cfg: EnvConfig, listed: torch.Tensor | None = None,
             with_rows: bool = False):
    """Flat item index (``p * S + j``) of each market row ``[B, M]`` (-1: empty row);
    ``listed`` is ``s.inv_price > 0`` if the caller has it. ``with_rows``: also the market
    row of each inventory slot ``[B, P, S]`` (M: not on the market)."""
    B, P, S, M = s.num_maps, cfg.num_agents, cfg.inventory_slots, cfg.market_size
    listed = (s.inv_price > 0 if listed is None else listed).view(B, P * S)
    rank = listed.long().cumsum(1) - 1
    rows = torch.full((B, M + 1), -1, dtype=torch.int64, device=s.device)
    dst = torch.where(listed & (rank < M), rank, M)
    rows.scatter_(1, dst, torch.arange(P * S, device=s.device).expand(B, -1))
    rows[:, M] = -1
    return (rows[:, :M], dst.view(B, P, S)) if with_rows else rows[:, :M]


def buy(s: WorldState, cfg: EnvConfig, t: I.ItemTables, row: torch.Tensor, rows: torch.Tensor,
        busy: torch.Tensor, gen: torch.Generator):
    """Buy: ``row`` ``[B, P]`` names a market row of the last observation (M: no-op).
    Returns the sellers' earnings ``(b, seller, price)`` (EARN_GOLD rows), or None."""
    B, P, S, M = s.num_maps, cfg.num_agents, cfg.inventory_slots, cfg.market_size
    f = rows.gather(1, row.clamp_max(M - 1))
    ok = s.alive[:, :P] & ~busy & (row < M) & (f >= 0)
    fc = f.clamp_min(0)
    seller = torch.div(fc, S, rounding_mode="floor")
    flat = lambda x: x.view(B, P * S).gather(1, fc)  # noqa: E731
    price = flat(s.inv_price)
    typ, lvl, qty = flat(s.inv_type), flat(s.inv_level), flat(s.inv_quantity)
    me = torch.arange(P, device=s.device)
    ok &= (price > 0) & (seller != me) & (s.gold[:, :P] >= price)
    # Room for it: a free slot, or (only full inventories are checked) a stack to join.
    full = ok & (s.inv_type > 0).view(torch.uint8).amin(-1).bool()
    if bool(full.any()):
        fb, fp = full.nonzero(as_tuple=True)
        ok[fb, fp] = I.can_receive(I.Rows(s, fb, fp), t, cfg, typ[fb, fp].long(), lvl[fb, fp],
                                   qty[fb, fp])
    if not bool(ok.any()):
        return None
    # One winner per listing, at random.
    prio = torch.rand(B, P, generator=gen, device=s.device)
    prio = torch.where(ok, prio, -1.0)
    best = torch.full((B, P * S), -1.0, device=s.device)
    best.scatter_reduce_(1, fc, prio, "amax")
    win = ok & (best.gather(1, fc) == prio)
    # Move the items; a seller with several sales gives them over in turns.
    sj = fc - seller * S
    moved = torch.zeros_like(win)
    rank = I.rank_by_key(seller, win)
    for r in range(int(rank[win].max()) + 1):
        b, p = (win & (rank == r)).nonzero(as_tuple=True)
        moved[b, p] = I.transfer(s, cfg, t, b, seller[b, p], sj[b, p], p)
    pay = price * moved
    b, p = moved.nonzero(as_tuple=True)
    I.count_items(s, I.BOUGHT, b, p, typ[b, p], lvl[b, p], qty[b, p])
    EL.record(s, b, p, EL.item_key(cfg, EL.BUY, typ[b, p], lvl[b, p]))
    s.gold_spent += pay
    s.gold[:, :P] -= pay
    earned = torch.zeros_like(s.gold[:, :P])
    earned.scatter_add_(1, seller, pay)
    s.gold[:, :P] += earned
    s.gold_earned += earned
    s.events[..., C.EVENT["BUY_ITEM"]] += moved.int()
    sales = torch.zeros_like(earned)
    sales.scatter_add_(1, seller, moved.int())
    s.events[..., C.EVENT["EARN_GOLD"]] += sales
    return b, seller[b, p], price[b, p]
