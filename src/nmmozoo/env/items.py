"""Items, inventories and equipment, the 16 item types with the 2.0 stats
(docs/env.md#items-gold-and-the-market).

An item *is* an inventory slot of a player (``inv_*`` fields, ``[B, P, S]``), so no item can
be in two inventories; moving an item clears one slot and fills another. Stats are not
stored per item: they are a function of (type, level) read from :class:`ItemTables`.
Every operation here works on all players of all maps at once, with at most one item per
player per call; callers that move several items per player (loot) call it a fixed number of
times.

The ledger (``state.ledger``) counts what enters and leaves the world: gold created (NPC
spawns), gold destroyed (deaths with no heir), item quantities created (harvest, NPC drops)
and destroyed (consumption, firing, Destroy, items that fit nowhere, deaths). Transfers are
not in it, which is what makes it a check: the held totals must move by exactly the ledger.
"""

from __future__ import annotations

import torch

from . import constants as C
from . import eventlog as EL
from .config import EnvConfig
from .state import WorldState

GOLD_IN, GOLD_OUT, ITEMS_IN, ITEMS_OUT = range(4)
HARVESTED, CONSUMED, LISTED, BOUGHT = range(4)  # kinds of state.item_events
HAT_SLOT, TOP_SLOT, BOTTOM_SLOT, HELD_SLOT, AMMO_SLOT = range(5)
ARMOUR = (C.HAT, C.TOP, C.BOTTOM)
WEAPONS = {C.SPEAR: C.MELEE, C.BOW: C.RANGE, C.WAND: C.MAGE}
AMMO = {C.WHETSTONE: C.MELEE, C.ARROW: C.RANGE, C.RUNES: C.MAGE}
TOOLS = {C.ROD: C.FISHING, C.GLOVES: C.HERBALISM, C.PICKAXE: C.PROSPECTING, C.AXE: C.CARVING,
         C.CHISEL: C.ALCHEMY}
# Stat columns of the table, in the item observation's order from melee_attack on.
STAT_COLUMNS = ("melee_attack", "range_attack", "mage_attack", "melee_defense",
                "range_defense", "mage_defense", "health_restore", "resource_restore")


class ItemTables:
    """Per-type look-ups on the env's device."""

    def __init__(self, cfg: EnvConfig, device):
        T, L = C.NUM_ITEM_TYPES, cfg.max_item_level
        lv = torch.arange(L + 1)
        stats = torch.zeros(T, L + 1, len(STAT_COLUMNS), dtype=torch.int32)
        cap = cfg.item_stat_cap
        for t in ARMOUR:
            stats[t, :, 3:6] = (10 * lv).clamp(max=cap)[:, None]
        for t, style in {**WEAPONS, **AMMO}.items():
            stats[t, :, style] = (15 + 15 * lv).clamp(max=cap)
        for t in TOOLS:
            stats[t, :, 3:6] = min(30, cap)
        stats[C.POTION, :, 6] = 50 + 5 * lv
        stats[C.RATION, :, 7] = 50 + 5 * lv
        self.stats = stats.to(device)
        self.flat_stats = stats.view(T * (L + 1), -1).to(device)
        stackable = torch.zeros(T, dtype=torch.bool)
        stackable[list(AMMO)] = True
        capacity = torch.where(stackable, cfg.stack_capacity, 0)[:, None, None].expand(T, L + 1, 1)
        self.levels = L + 1
        # Whole observation rows by (type, level): type, level, capacity and the 8 stats; the
        # per-item columns (ROW_* below) are left 0 and filled by inventory_rows.
        row = torch.zeros(T, L + 1, C.NUM_ITEM_COLUMNS, dtype=torch.int32)
        row[..., 1] = torch.arange(T)[:, None]
        row[..., 3] = lv
        row[..., 4] = capacity[..., 0]
        row[..., 6:14] = stats
        self.row_table = row.view(T * (L + 1), -1).to(torch.int16).to(device)
        slot = torch.full((T,), -1, dtype=torch.int64)
        slot[C.HAT], slot[C.TOP], slot[C.BOTTOM] = HAT_SLOT, TOP_SLOT, BOTTOM_SLOT
        for t in (*WEAPONS, *TOOLS):
            slot[t] = HELD_SLOT
        for t in AMMO:
            slot[t] = AMMO_SLOT
        self.equip_slot = slot.to(device)
        self.stackable = stackable.to(device)
        self.consumable = torch.zeros(T, dtype=torch.bool)
        self.consumable[[C.RATION, C.POTION]] = True
        self.consumable = self.consumable.to(device)
        # Skill whose level must reach the item's; -1: the player's highest level.
        req = torch.full((T,), -1, dtype=torch.int64)
        for t, skill in {**WEAPONS, **AMMO, **TOOLS}.items():
            req[t] = skill
        self.req_skill = req.to(device)
        # Ammunition that an attack of each style fires: [(type * levels + level) * 3 + style].
        fires = (slot[:, None, None] == AMMO_SLOT) & (stats[..., :3] > 0)
        self.fires = fires.reshape(-1).to(device)
        # The same as a column of [levels..., highest level] (see item_levels_ok).
        self.req_col = torch.where(req < 0, C.NUM_SKILLS, req).to(device)
        tool = torch.zeros(C.NUM_SKILLS, dtype=torch.int64)  # skill -> the tool that helps it
        for t, skill in TOOLS.items():
            tool[skill] = t
        self.tool_for_skill = tool.to(device)
        self.slot_range = torch.arange(cfg.inventory_slots, device=device)


def stats_of(t: ItemTables, typ: torch.Tensor, lvl: torch.Tensor) -> torch.Tensor:
    """Stat columns ``[..., 8]`` of items of type ``typ`` and level ``lvl``."""
    key = typ.long() * t.levels + lvl.long().clamp(0, t.levels - 1)
    return t.flat_stats.index_select(0, key.reshape(-1)).view(*key.shape, -1)


def first_true(mask: torch.Tensor) -> torch.Tensor:
    """Index of the first True along the last dim (any value where there is none)."""
    return mask.to(torch.uint8).argmax(-1)


def gather_slot(field: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    return field.gather(-1, slot[..., None]).squeeze(-1)


def onehot_slot(t: ItemTables, slot: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (t.slot_range == slot[..., None]) & mask[..., None]


INV_FIELDS = ("inv_type", "inv_level", "inv_quantity", "inv_id", "inv_equipped", "inv_price",
              "inv_listed_tick")


class Rows:
    """Copies of the inventories (and gold, levels) of chosen players, ``[n, S]``.

    Item phases act on the few players involved (harvesters, buyers, givers, killers), not
    on every slot of every map: select, work on the rows, write back. ``b``, ``p`` must not
    repeat within one selection.
    """

    def __init__(self, s: WorldState, b: torch.Tensor, p: torch.Tensor):
        self.b, self.p = b, p
        # Rows of the [B * P, S] views by index_select / index_copy_: several times faster on
        # the CPU than indexing with (b, p).
        self.flat = b * s.inv_type.shape[1] + p
        for f in INV_FIELDS:
            x = getattr(s, f)
            setattr(self, f, x.view(-1, x.shape[-1]).index_select(0, self.flat))

    @classmethod
    def where(cls, s: WorldState, mask: torch.Tensor) -> "Rows":
        b, p = mask.nonzero(as_tuple=True)
        return cls(s, b, p)

    def __len__(self) -> int:
        return self.b.numel()

    def write(self, s: WorldState) -> None:
        for f in INV_FIELDS:
            x = getattr(s, f)
            x.view(-1, x.shape[-1]).index_copy_(0, self.flat, getattr(self, f))


def space(inv) -> torch.Tensor:
    return (inv.inv_type == 0).sum(-1)


def required_level(s: WorldState, cfg: EnvConfig, t: ItemTables, typ: torch.Tensor,
                   b: torch.Tensor | None = None, p: torch.Tensor | None = None) -> torch.Tensor:
    """The player's level that counts for items of type ``typ`` (``[B, P, X]``, or ``[n, X]``
    for the players ``b``, ``p``)."""
    lv = s.level[:, :cfg.num_agents] if b is None else s.level[b, p]
    skill = t.req_skill[typ]
    own = lv.gather(-1, skill.clamp_min(0))
    return torch.where(skill < 0, lv.amax(-1, keepdim=True), own)


def item_levels_ok(s: WorldState, t: ItemTables, P: int) -> torch.Tensor:
    """Every inventory slot's item is within its owner's level for it ``[B, P, S]``."""
    lv = s.level[:, :P]
    lv = torch.cat([lv, lv.amax(-1, keepdim=True)], -1)
    need = t.req_col.index_select(0, s.inv_type.view(-1)).view(s.inv_type.shape)
    return s.inv_level <= lv.gather(-1, need)


def stack_slot(inv, t, cfg, typ, lvl, qty):
    """(has, slot): a stack of the same type and level with room for ``qty``."""
    match = ((inv.inv_type == typ[..., None]) & (inv.inv_level == lvl[..., None])
             & t.stackable[typ][..., None] & (inv.inv_quantity + qty[..., None] <= cfg.stack_capacity))
    return match.any(-1), first_true(match)


def can_receive(inv, t, cfg, typ, lvl, qty, need_space=False) -> torch.Tensor:
    free = space(inv) > 0
    if need_space:
        return free
    has_stack, _ = stack_slot(inv, t, cfg, typ, lvl, qty)
    return free | has_stack


def new_ids(s: WorldState, create: torch.Tensor) -> torch.Tensor:
    """Fresh per-map item serials for the ``create`` mask ``[B, P]``."""
    rank = create.long().cumsum(1)
    ids = s.next_item_id[:, None] + rank
    s.next_item_id += create.sum(1)
    return ids.clamp(max=2 ** 31 - 1).int()


def receive(inv, cfg: EnvConfig, t: ItemTables, who: torch.Tensor, typ: torch.Tensor,
            lvl: torch.Tensor, qty: torch.Tensor, ids: torch.Tensor,
            need_space: bool = False) -> torch.Tensor:
    """Put one item per row (``who``) into the inventories ``inv`` (state or :class:`Rows`).

    Ammunition merges into a stack of the same type and level; anything else takes the first
    free slot. ``need_space`` (harvest drops, 2.0) asks for a free slot even for a merge.
    Returns the rows that took the item; the caller decides what becomes of the rest.
    """
    has_stack, sslot = stack_slot(inv, t, cfg, typ, lvl, qty)
    free_any = inv.inv_type == 0
    has_free = free_any.any(-1)
    merge = who & has_stack & (has_free | (not need_space))
    place = who & ~merge & has_free
    inv.inv_quantity += onehot_slot(t, sslot, merge).int() * qty[..., None]
    m = onehot_slot(t, first_true(free_any), place)
    for f, v in (("inv_type", typ), ("inv_level", lvl), ("inv_quantity", qty), ("inv_id", ids)):
        field = getattr(inv, f)
        field.copy_(torch.where(m, v[..., None].to(field.dtype), field))
    inv.inv_equipped.masked_fill_(m, False)
    inv.inv_price.masked_fill_(m, 0)
    return merge | place


def clear(inv, mask: torch.Tensor) -> None:
    """Empty the slots in ``mask`` ``[..., S]`` (unequips and unlists them)."""
    for f in INV_FIELDS:
        getattr(inv, f).masked_fill_(mask, 0)


def destroy(s: WorldState, inv, mask: torch.Tensor) -> None:
    """Remove the items in ``mask`` from the world (ledger: destroyed); ``inv`` is the state
    or :class:`Rows` of it."""
    qty = (inv.inv_quantity * mask).sum(-1)
    if isinstance(inv, Rows):
        s.ledger[:, ITEMS_OUT].index_add_(0, inv.b, qty.long())
    else:
        s.ledger[:, ITEMS_OUT] += qty.sum(-1)
    clear(inv, mask)


def count_items(s: WorldState, kind: int, b, p, typ, lvl, n) -> None:
    """Add ``n`` to the typed item counter ``kind`` of players ``(b, p)``."""
    L = s.item_events.shape[-1] - 1
    s.item_events.index_put_((b, p, torch.full_like(b, kind), typ.long(), lvl.long().clamp(0, L)),
                             n.to(s.item_events.dtype), accumulate=True)


def in_combat(s: WorldState, P: int, ticks: int = 3) -> torch.Tensor:
    """2.0: fewer than ``ticks`` (``combat_status_ticks``) since the last attack made or
    received; the attack's tick is recorded as the tick after it."""
    last = s.latest_combat_tick[:, :P].long()
    return (last != 0) & (s.tick[:, None] - last < ticks)


# Columns of an item observation row that are not a function of (type, level).
ROW_ID, ROW_OWNER, ROW_QUANTITY, ROW_EQUIPPED, ROW_PRICE = 0, 2, 5, 14, 15


def inventory_rows(t: ItemTables, s: WorldState, P: int) -> torch.Tensor:
    """Item observation rows of every inventory slot ``[B, P, S, 16]`` int16 in the 2.0 column
    order; empty slots read 0 (type, level, quantity, id and price are 0 there).

    The columns that depend only on (type, level) come from one table look-up; then the
    five per-item columns are written."""
    key = s.inv_type * t.levels + s.inv_level.clamp(0, t.levels - 1)
    out = t.row_table.index_select(0, key.view(-1))  # [N, 16]
    out[:, ROW_ID] = s.inv_id.clamp(max=32767).view(-1)
    out[:, ROW_OWNER] = (s.ent_id[:, :P, None] * (s.inv_type > 0)).view(-1)
    out[:, ROW_QUANTITY] = s.inv_quantity.view(-1)
    out[:, ROW_EQUIPPED] = s.inv_equipped.view(-1)
    out[:, ROW_PRICE] = s.inv_price.view(-1)
    return out.view(*key.shape, C.NUM_ITEM_COLUMNS)


def refresh_equipment(s: WorldState, cfg: EnvConfig, t: ItemTables, rows: Rows) -> None:
    """Equipment offense/defense per style and item level of the players in ``rows``."""
    eq = rows.inv_equipped
    st = stats_of(t, rows.inv_type, rows.inv_level) * eq[..., None]  # [n, S, 8]
    s.equip_offense[rows.b, rows.p] = st[..., 0:3].sum(-2, dtype=torch.int32)
    s.equip_defense[rows.b, rows.p] = st[..., 3:6].sum(-2, dtype=torch.int32)
    s.item_level[rows.b, rows.p] = (rows.inv_level * eq).sum(-1, dtype=torch.int32)


# --- actions ------------------------------------------------------------------------------------
def _chosen(s, cfg, slot, busy, extra=None):
    """Rows of the live, not-in-combat players whose item head names a real item."""
    S = cfg.inventory_slots
    j = slot.clamp_max(S - 1)
    ok = s.alive[:, :cfg.num_agents] & ~busy & (slot < S) & (gather_slot(s.inv_type, j) > 0)
    if extra is not None:
        ok &= extra(j)
    rows = Rows.where(s, ok)
    return rows, j[rows.b, rows.p]


def use(s: WorldState, cfg: EnvConfig, t: ItemTables, slot: torch.Tensor, busy: torch.Tensor) -> None:
    """Use: equip / unequip equipment, consume Ration and Potion (``slot`` ``[B, P]``, S: no-op)."""
    r, j = _chosen(s, cfg, slot, busy, lambda j: gather_slot(s.inv_price, j) == 0)  # not listed
    if not len(r):
        return
    typ = gather_slot(r.inv_type, j).long()
    lvl = gather_slot(r.inv_level, j)
    equipped = gather_slot(r.inv_equipped, j)
    level_ok = lvl <= required_level(s, cfg, t, typ[:, None], r.b, r.p).squeeze(-1)
    eslot = t.equip_slot[typ]
    is_equip = eslot >= 0
    unequip = is_equip & equipped
    equip = is_equip & ~equipped & level_ok
    # Equipping first takes off whatever holds the same equipment slot.
    same = (t.equip_slot[r.inv_type.long()] == eslot[:, None]) & r.inv_equipped & equip[:, None]
    r.inv_equipped &= ~same
    r.inv_equipped &= ~onehot_slot(t, j, unequip)
    r.inv_equipped |= onehot_slot(t, j, equip)
    s.events[r.b, r.p, C.EVENT["EQUIP_ITEM"]] += equip.int()
    EL.record(s, r.b, r.p, EL.item_key(cfg, EL.EQUIP, typ, lvl), equip)

    eat = t.consumable[typ] & level_ok
    restore = stats_of(t, typ, lvl)
    s.health[r.b, r.p] = torch.where(eat, (s.health[r.b, r.p] + restore[:, 6]).clamp(max=cfg.health_max),
                                     s.health[r.b, r.p])
    for f in (s.food, s.water):
        f[r.b, r.p] = torch.where(eat, (f[r.b, r.p] + restore[:, 7]).clamp(max=cfg.resource_base),
                                  f[r.b, r.p])
    s.events[r.b, r.p, C.EVENT["CONSUME_ITEM"]] += eat.int()
    count_items(s, CONSUMED, r.b, r.p, typ, lvl, eat.int())
    EL.record(s, r.b, r.p, EL.item_key(cfg, EL.CONSUME, typ, lvl), eat)
    destroy(s, r, onehot_slot(t, j, eat))
    r.write(s)
    refresh_equipment(s, cfg, t, r)


def destroy_action(s, cfg, t, slot, busy) -> None:
    """Destroy: any unequipped item (a listed one is unlisted with it)."""
    r, j = _chosen(s, cfg, slot, busy, lambda j: ~gather_slot(s.inv_equipped, j))
    if not len(r):
        return
    destroy(s, r, onehot_slot(t, j, torch.ones_like(j, dtype=torch.bool)))
    r.write(s)
    s.events[r.b, r.p, C.EVENT["DESTROY_ITEM"]] += 1


def give_target(s, cfg, obs_slots, row, busy) -> tuple[torch.Tensor, torch.Tensor]:
    """(ok, target player slot) of a give target head: a live other player on the same tile.
    ``row`` is ``[B, P]``, or ``[B, P, n]`` for n target heads at once."""
    P, K = cfg.num_agents, cfg.num_entity_obs
    r = row if row.dim() == 3 else row[..., None]
    tgt = obs_slots.gather(2, r.clamp_max(K - 1)).long()  # [B, P, n]
    tc = tgt.clamp_max(P - 1)
    flat = tc.view(tc.shape[0], -1)
    alive = s.alive[:, :P]
    me = torch.arange(P, device=s.device)[:, None]
    ok = (r < K) & (tgt < P) & (alive & ~busy)[..., None] & (tc != me)
    ok &= alive.gather(1, flat).view_as(tc)
    ok &= (s.row[:, :P].gather(1, flat).view_as(tc) == s.row[:, :P, None])
    ok &= (s.col[:, :P].gather(1, flat).view_as(tc) == s.col[:, :P, None])
    return (ok, tc) if row.dim() == 3 else (ok[..., 0], tc[..., 0])


def route(values: torch.Tensor, dst: torch.Tensor, P: int) -> torch.Tensor:
    """Values of sources ``[B, X]`` placed at their receivers ``dst`` (``P``: none) -> ``[B, P]``.
    Receivers must be distinct within a call."""
    out = torch.zeros(values.shape[0], P + 1, dtype=values.dtype, device=values.device)
    out.scatter_(1, dst, values)
    return out[:, :P]


def rank_by_key(key: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Rank of each valid entry among the valid entries of its map with the same key
    (by slot order); ``[B, X]`` -> ``[B, X]``."""
    B, X = key.shape
    k = torch.where(valid, key, -1)
    order = torch.argsort(k * X + torch.arange(X, device=key.device), dim=1)
    sk = k.gather(1, order)
    pos = torch.arange(X, device=key.device).expand(B, X)
    new_group = torch.ones_like(sk, dtype=torch.bool)
    new_group[:, 1:] = sk[:, 1:] != sk[:, :-1]
    start = torch.where(new_group, pos, 0).cummax(1).values
    rank = torch.empty_like(pos)
    rank.scatter_(1, order, pos - start)
    return rank


def transfer(s, cfg, t, src_b, src_p, src_j, dst_p, need_space=False):
    """Move the item in slot ``src_j`` of players ``(src_b, src_p)`` to players
    ``(src_b, dst_p)`` where it fits. Receivers must be distinct. Returns the moved mask."""
    src = Rows(s, src_b, src_p)
    dst = Rows(s, src_b, dst_p)
    vals = [gather_slot(getattr(src, f), src_j) for f in ("inv_type", "inv_level", "inv_quantity", "inv_id")]
    has = vals[0] > 0
    typ, lvl, qty, ids = vals
    fits = has & can_receive(dst, t, cfg, typ.long(), lvl, qty, need_space)
    clear(src, onehot_slot(t, src_j, fits))
    src.write(s)
    dst = Rows(s, src_b, dst_p)  # the sender may also be a receiver: read after the clear
    receive(dst, cfg, t, fits, typ.long(), lvl, qty, ids)
    dst.write(s)
    return fits


def give(s, cfg, t, item, row, obs_slots, busy, target=None) -> None:
    """Give: move an unequipped, unlisted item to a player on the same tile. Several gifts to
    one player land one after another (lowest giver first) while they fit."""
    S = cfg.inventory_slots
    ok, tgt = give_target(s, cfg, obs_slots, row, busy) if target is None else target
    j = item.clamp_max(S - 1)
    ok &= (item < S) & (gather_slot(s.inv_type, j) > 0) & ~gather_slot(s.inv_equipped, j)
    ok &= gather_slot(s.inv_price, j) == 0
    if not bool(ok.any()):
        return
    rank = rank_by_key(tgt, ok)
    for r in range(int(rank[ok].max()) + 1):
        b, p = (ok & (rank == r)).nonzero(as_tuple=True)
        sent = transfer(s, cfg, t, b, p, j[b, p], tgt[b, p])
        s.events[b, p, C.EVENT["GIVE_ITEM"]] += sent.int()


def give_gold(s, cfg, amount_idx, row, obs_slots, busy, target=None) -> None:
    """GiveGold: ``amount_idx + 1`` gold to a player on the same tile, if owned."""
    P = cfg.num_agents
    ok, tgt = give_target(s, cfg, obs_slots, row, busy) if target is None else target
    amount = (amount_idx + 1).int()
    ok &= amount <= s.gold[:, :P]
    if not bool(ok.any()):
        return
    amount = amount * ok
    s.gold[:, :P] -= amount
    gained = torch.zeros_like(s.gold[:, :P])
    gained.scatter_add_(1, tgt, amount)
    s.gold[:, :P] += gained
    s.events[..., C.EVENT["GIVE_GOLD"]] += ok.int()


def fire_ammo(s, cfg, t, fired: torch.Tensor, style: torch.Tensor) -> None:
    """One unit of equipped ammunition matching the style per executed attack (2.0)."""
    r = Rows.where(s, fired)
    if not len(r):
        return
    # Equipped ammunition with attack in the style used (a (type, level, style) look-up).
    key = (r.inv_type * t.levels + r.inv_level.clamp(0, t.levels - 1)) * 3 + style[r.b, r.p, None]
    ammo = r.inv_equipped & t.fires.index_select(0, key.view(-1)).view(key.shape)
    if not bool(ammo.any()):
        return
    r.inv_quantity -= ammo.int()
    s.ledger[:, ITEMS_OUT].index_add_(0, r.b, ammo.sum(-1))
    s.events[r.b, r.p, C.EVENT["FIRE_AMMO"]] += ammo.any(-1).int()
    clear(r, ammo & (r.inv_quantity <= 0))
    r.write(s)
    refresh_equipment(s, cfg, t, r)


def sell(s, cfg, t, item, price_idx, busy) -> None:
    """Sell: list an unequipped, unlisted item at ``price_idx + 1`` gold."""
    r, j = _chosen(s, cfg, item, busy, lambda j: ~gather_slot(s.inv_equipped, j)
                   & (gather_slot(s.inv_price, j) == 0))
    if not len(r):
        return
    m = onehot_slot(t, j, torch.ones_like(j, dtype=torch.bool))
    count_items(s, LISTED, r.b, r.p, gather_slot(r.inv_type, j), gather_slot(r.inv_level, j),
                gather_slot(r.inv_quantity, j))
    EL.record(s, r.b, r.p, EL.item_key(cfg, EL.LIST, gather_slot(r.inv_type, j),
                                       gather_slot(r.inv_level, j)))
    r.inv_price.copy_(torch.where(m, (price_idx[r.b, r.p] + 1).int()[:, None], r.inv_price))
    r.inv_listed_tick.copy_(torch.where(m, s.tick[r.b].int()[:, None], r.inv_listed_tick))
    r.write(s)
    s.events[r.b, r.p, C.EVENT["LIST_ITEM"]] += 1


def expire(s, cfg) -> None:
    """End of tick: listings older than the duration are taken off the market."""
    old = (s.inv_price > 0) & (s.tick.int()[:, None, None] - s.inv_listed_tick > cfg.listing_duration)
    s.inv_price.masked_fill_(old, 0)


def create(s, cfg, t, who, typ, lvl, need_space=True) -> torch.Tensor:
    """Create one new item (type ``typ``, level ``lvl``, ``[B, P]``) for each player in ``who``
    where it fits (ledger: created). Returns the mask of players that got it."""
    ids = new_ids(s, who)
    r = Rows.where(s, who)
    got = torch.zeros_like(who)
    if not len(r):
        return got
    b, p = r.b, r.p
    took = receive(r, cfg, t, torch.ones_like(b, dtype=torch.bool), typ[b, p].long(),
                   lvl[b, p].clamp(1, cfg.max_item_level), torch.ones_like(b, dtype=torch.int32),
                   ids[b, p], need_space=need_space)
    r.write(s)
    got[b, p] = took
    s.ledger[:, ITEMS_IN].index_add_(0, b, took.long())
    return got
