"""Action decoders: logits for the 12 argument heads from the fused state and the rows
(entities, inventory items, market listings) the pointer heads choose among."""

from __future__ import annotations

import torch
from torch import nn

from ..env.constants import ACTION_HEADS
from .registry import SpecError, register


# The public ActionDecoder's layer order ([B] policy.py l.234-249: attack_style, attack_target,
# market_buy, inventory_destroy, inventory_give_item, inventory_give_player, gold_quantity,
# gold_target, move, inventory_sell, inventory_price, inventory_use) in our head names.
PUBLIC_ORDER = ("attack_style", "attack_target", "buy_item", "destroy_item", "give_item",
                "give_target", "give_gold_amount", "give_gold_target", "move", "sell_item",
                "sell_price", "use_item")


def _ordered(head_sizes: dict) -> dict:
    """Heads in the public decoder's order, whatever order the sizes came in (a stable weights
    layout; any head the public action space lacks follows in the env's order)."""
    order = PUBLIC_ORDER + tuple(h for h in ACTION_HEADS if h not in PUBLIC_ORDER)
    return {h: head_sizes[h] for h in order if h in head_sizes}


POINTER = {"attack_target": "entity", "give_target": "entity", "give_gold_target": "entity",
           "use_item": "inventory", "destroy_item": "inventory", "give_item": "inventory",
           "sell_item": "inventory", "buy_item": "market"}


class SparseRows:
    """Row embeddings, present rows only: ``rows`` ``[K, H]`` of the present rows at
    (``group``, ``slot``) of ``G`` groups × ``M`` slots, and ``empty`` ``[H]``, the embedding
    of an empty row (the row encoders are row-wise, so every empty row has it). A group is a
    map (the market: its listings, shared by the map's agents) or an agent (its entity rows).
    ``dense()`` rebuilds ``[G, M, H]``; the pointers and the pools never need to."""

    def __init__(self, rows, group, slot, empty, maps: int, slots: int):
        self.rows, self.group, self.slot, self.empty = rows, group, slot, empty
        self.maps, self.slots = maps, slots

    def dense(self) -> torch.Tensor:
        out = self.empty.expand(self.maps, self.slots, -1).clone()
        out[self.group, self.slot] = self.rows
        return out


MarketRows = SparseRows  # the market's listed rows (the name the first sparse path used)


def dense_rows(rows) -> torch.Tensor:
    """``rows`` as a dense ``[G, M, H]`` tensor, whichever form it came in."""
    return rows.dense() if isinstance(rows, SparseRows) else rows


def _sparse_pointer(query: torch.Tensor, rows: SparseRows, per_group: int) -> torch.Tensor:
    """``query`` ``[G*A, H]`` (``A`` = ``per_group`` queries per group) dotted with every row
    of its group: every empty row's logit is the query dotted with the one empty-row
    embedding, and only the present rows are dotted one by one. ``[G*A, M]``."""
    G, M = rows.maps, rows.slots
    q = query.view(G, per_group, -1)
    base = (query @ rows.empty).view(G, per_group, 1).expand(G, per_group, M)
    if per_group == 1:  # one query per group (the entity pointers): row-wise dot products, which
        # einsum would run as K batched 1×H·H×1 matmuls (and their backward as K outer products)
        listed = (q[rows.group, 0] * rows.rows).sum(-1, keepdim=True)  # [K, 1]
    else:
        listed = torch.einsum("kah,kh->ka", q[rows.group], rows.rows)  # [K, A]
    K = len(rows.group)
    agent = torch.arange(per_group, device=query.device).expand(K, per_group)
    logits = base.index_put((rows.group[:, None].expand(K, per_group), agent,
                             rows.slot[:, None].expand(K, per_group)), listed)
    return logits.reshape(G * per_group, M)


def _pointer(query: torch.Tensor, rows) -> torch.Tensor:
    """Dot products of a query ``[N, H]`` with its rows (``[N, R, H]`` or one
    :class:`SparseRows` group per query), plus a no-op logit 0."""
    if isinstance(rows, SparseRows):
        logits = _sparse_pointer(query, rows, 1)
    else:
        logits = torch.einsum("nh,nrh->nr", query, rows)
    return torch.cat([logits, logits.new_zeros(logits.shape[0], 1)], -1)


class MapIndex:
    """Which map each query row belongs to: ``map_of`` ``[N]`` (an index into the maps'
    market rows), and ``per_map`` when the rows are whole maps of ``per_map`` agents in order
    (then the market is read map by map, without gathering it per row)."""

    def __init__(self, map_of: torch.Tensor, per_map: int | None = None):
        self.map_of, self.per_map = map_of, per_map


def _sparse_pointer_by_row(query: torch.Tensor, rows: SparseRows, map_of: torch.Tensor) -> torch.Tensor:
    """:func:`_sparse_pointer` for queries of any maps: query ``n`` is dotted with the present
    rows of group ``map_of[n]`` only (every (query, listing of its map) pair, no dense
    ``[N, M, H]`` copy). ``rows`` must list each group's rows together, in group order (as
    ``nonzero`` gives them). ``[N, M]``."""
    N, M = query.shape[0], rows.slots
    base = (query @ rows.empty)[:, None].expand(N, M)
    count = torch.bincount(rows.group, minlength=rows.maps)
    start = torch.cumsum(count, 0) - count
    per_query = count[map_of]
    q = torch.repeat_interleave(torch.arange(N, device=query.device), per_query)
    first = torch.cumsum(per_query, 0) - per_query
    k = start[map_of][q] + torch.arange(q.numel(), device=query.device) - first[q]
    listed = (query[q] * rows.rows[k]).sum(-1)
    return base.index_put((q, rows.slot[k]), listed)


def _market_pointer(query: torch.Tensor, market, where: MapIndex) -> torch.Tensor:
    """Market logits without copying listings per agent: ``query`` ``[N, H]``, each row of
    the map ``where.map_of``; ``market`` ``[G, M, H]`` or :class:`SparseRows` by map."""
    A = where.per_map
    if isinstance(market, SparseRows):
        logits = (_sparse_pointer(query, market, A) if A is not None
                  else _sparse_pointer_by_row(query, market, where.map_of))
    elif A is not None:
        G = market.shape[0]
        q = query.view(G, A, -1)
        logits = torch.einsum("gah,gmh->gam", q, market).reshape(G * A, -1)
    else:
        logits = torch.einsum("nh,nmh->nm", query, market.index_select(0, where.map_of))
    return torch.cat([logits, logits.new_zeros(logits.shape[0], 1)], -1)


@register("decoder", "pointer_decoder")
class PointerDecoder(nn.Module):
    """2023 baseline ActionDecoder ([B] policy.py l.231-308): linear heads for move, style,
    gold amount and price; pointer heads (a Linear hidden→hidden query dotted with the entity,
    item or listing embeddings, plus a zero row for the no-op) for the rest.

    ``drop``: heads whose layers are deleted (Takeru, [T] policy_reduce_v2.py l.324-327). Such
    a head emits fixed logits as [T]'s ``act_noob_action`` does (l.345-356): 0 at one index and
    −1e9 elsewhere, the index being the no-op (last) for a pointer head and 0 for a linear one
    (gold amount). Pair it with the ``fixed_heads`` restriction at the same index: the mask is
    then one-hot, the sampled action fixed, and the head adds exactly 0 to the log-probability
    and to the entropy (one option with probability 1)."""

    def __init__(self, hidden: int, head_sizes: dict, drop: list = []):  # noqa: B006 (read only)
        super().__init__()
        self.sizes = _ordered(head_sizes)
        unknown = set(drop) - set(self.sizes)
        if unknown:
            raise SpecError(f"drop: unknown head(s) {sorted(unknown)}; heads: {list(self.sizes)}")
        self.dropped = {h: (n - 1 if h in POINTER else 0) for h, n in self.sizes.items() if h in drop}
        self.layers = nn.ModuleDict({h: nn.Linear(hidden, hidden if h in POINTER else n)
                                     for h, n in self.sizes.items() if h not in self.dropped})

    def query(self, head: str, layer: nn.Module, x: torch.Tensor, rows) -> torch.Tensor:
        """The query a pointer head dots with its rows."""
        return layer(x)

    def forward(self, x, rows, where: MapIndex):
        out = {}
        for h, layer in self.layers.items():
            if h not in POINTER:
                out[h] = layer(x)
            elif POINTER[h] == "market":
                out[h] = _market_pointer(layer(x), rows["market"], where)
            else:
                out[h] = _pointer(self.query(h, layer, x, rows), rows[POINTER[h]])
        for h, i in self.dropped.items():
            fixed = x.new_full((x.shape[0], self.sizes[h]), -1e9)
            fixed[:, i] = 0
            out[h] = fixed
        return out


@register("decoder", "linear_decoder")
class LinearDecoder(nn.Module):
    """Every head a linear layer over the fused state (targets by row position)."""

    def __init__(self, hidden: int, head_sizes: dict):
        super().__init__()
        self.layers = nn.ModuleDict({h: nn.Linear(hidden, n) for h, n in _ordered(head_sizes).items()})

    def forward(self, x, rows, where: MapIndex):
        return {h: layer(x) for h, layer in self.layers.items()}
