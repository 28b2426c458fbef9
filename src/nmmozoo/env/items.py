"""Items, inventories and equipment (NMMO2.md §4): the 16 item types with the 2.0 stats.

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
from .config import EnvConfig
from .state import WorldState

GOLD_IN, GOLD_OUT, ITEMS_IN, ITEMS_OUT = range(4)
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
        self.levels = L + 1
        slot = torch.full((T,), -1, dtype=torch.int64)
        slot[C.HAT], slot[C.TOP], slot[C.BOTTOM] = HAT_SLOT, TOP_SLOT, BOTTOM_SLOT
        for t in (*WEAPONS, *TOOLS):
            slot[t] = HELD_SLOT
        for t in AMMO:
            slot[t] = AMMO_SLOT
        self.equip_slot = slot.to(device)
        self.stackable = torch.zeros(T, dtype=torch.bool)
        self.stackable[list(AMMO)] = True
        self.stackable = self.stackable.to(device)
        self.consumable = torch.zeros(T, dtype=torch.bool)
        self.consumable[[C.RATION, C.POTION]] = True
        self.consumable = self.consumable.to(device)
        # Skill whose level must reach the item's; -1: the player's highest level.
        req = torch.full((T,), -1, dtype=torch.int64)
        for t, skill in {**WEAPONS, **AMMO, **TOOLS}.items():
            req[t] = skill
        self.req_skill = req.to(device)
        tool = torch.zeros(C.NUM_SKILLS, dtype=torch.int64)  # skill -> the tool that helps it
        for t, skill in TOOLS.items():
            tool[skill] = t
        self.tool_for_skill = tool.to(device)
        self.capacity = torch.where(self.stackable, cfg.stack_capacity, 0).to(torch.int32)
        self.slot_range = torch.arange(cfg.inventory_slots, device=device)


def stats_of(t: ItemTables, typ: torch.Tensor, lvl: torch.Tensor) -> torch.Tensor:
    """Stat columns ``[..., 8]`` of items of type ``typ`` and level ``lvl``."""
    key = typ.long() * t.levels + lvl.long().clamp(0, t.levels - 1)
    return t.flat_stats.index_select(0, key.reshape(-1)).view(*key.shape, -1)


def first_true(mask: torch.Tensor) -> torch.Tensor:
    """Index of the first True along the last dim (any value where there is none)."""
    return mask.to(torch.uint8).argmax(-1)


def gather_slot(field: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    return field.gather(2, slot[..., None]).squeeze(-1)


def onehot_slot(t: ItemTables, slot: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (t.slot_range == slot[..., None]) & mask[..., None]


def space(s: WorldState) -> torch.Tensor:
    return (s.inv_type == 0).sum(-1)


def required_level(s: WorldState, cfg: EnvConfig, t: ItemTables, typ: torch.Tensor) -> torch.Tensor:
    """The player's level that counts for items of type ``typ`` ``[B, P, X]`` (same shape)."""
    P = cfg.num_agents
    lv = s.level[:, :P]
    skill = t.req_skill[typ]
    own = lv.gather(2, skill.clamp_min(0))
    return torch.where(skill < 0, lv.amax(-1, keepdim=True), own)


def stack_slot(s, t, cfg, typ, lvl, qty):
    """(has, slot): a stack of the same type and level with room for ``qty``."""
    match = ((s.inv_type == typ[..., None]) & (s.inv_level == lvl[..., None])
             & t.stackable[typ][..., None] & (s.inv_quantity + qty[..., None] <= cfg.stack_capacity))
    return match.any(-1), first_true(match)


def can_receive(s, t, cfg, typ, lvl, qty, need_space=False) -> torch.Tensor:
    has_stack, _ = stack_slot(s, t, cfg, typ, lvl, qty)
    free = space(s) > 0
    return free if need_space else (free | has_stack)


def new_ids(s: WorldState, create: torch.Tensor) -> torch.Tensor:
    """Fresh per-map item serials for the ``create`` mask ``[B, P]``."""
    rank = create.long().cumsum(1)
    ids = s.next_item_id[:, None] + rank
    s.next_item_id += create.sum(1)
    return ids.clamp(max=2 ** 31 - 1).int()


def receive(s: WorldState, cfg: EnvConfig, t: ItemTables, who: torch.Tensor, typ: torch.Tensor,
            lvl: torch.Tensor, qty: torch.Tensor, ids: torch.Tensor | None = None,
            need_space: bool = False) -> torch.Tensor:
    """Put one item per player (``who`` ``[B, P]``) into its inventory.

    Ammunition merges into a stack of the same type and level; anything else takes the first
    free slot. ``need_space`` (harvest drops, 2.0) asks for a free slot even for a merge.
    ``ids`` None creates new items (fresh serials). Returns the mask of players that took
    the item; the caller decides what becomes of the rest.
    """
    has_stack, sslot = stack_slot(s, t, cfg, typ, lvl, qty)
    free_any = s.inv_type == 0
    has_free = free_any.any(-1)
    merge = who & has_stack & (has_free | (not need_space))
    place = who & ~merge & has_free
    if ids is None:
        ids = new_ids(s, place)
    m = onehot_slot(t, sslot, merge)
    s.inv_quantity += m.int() * qty[..., None]
    p = onehot_slot(t, first_true(free_any), place)
    s.inv_type.copy_(torch.where(p, typ[..., None].int(), s.inv_type))
    s.inv_level.copy_(torch.where(p, lvl[..., None].int(), s.inv_level))
    s.inv_quantity.copy_(torch.where(p, qty[..., None].int(), s.inv_quantity))
    s.inv_id.copy_(torch.where(p, ids[..., None].int(), s.inv_id))
    s.inv_equipped.masked_fill_(p, False)
    s.inv_price.masked_fill_(p, 0)
    return merge | place


def clear(s: WorldState, mask: torch.Tensor) -> None:
    """Empty the slots in ``mask`` ``[B, P, S]`` (unequips and unlists them)."""
    for f in (s.inv_type, s.inv_level, s.inv_quantity, s.inv_id, s.inv_price, s.inv_listed_tick):
        f.masked_fill_(mask, 0)
    s.inv_equipped.masked_fill_(mask, False)


def destroy(s: WorldState, mask: torch.Tensor) -> None:
    """Remove the items in ``mask`` ``[B, P, S]`` from the world (ledger: destroyed)."""
    s.ledger[:, ITEMS_OUT] += (s.inv_quantity * mask).sum((1, 2))
    clear(s, mask)


def create(s, cfg, t, who, typ, lvl, need_space=True) -> torch.Tensor:
    """Create one new item per player in ``who`` where it fits (ledger: created)."""
    got = receive(s, cfg, t, who, typ, lvl.clamp(1, cfg.max_item_level),
                  torch.ones_like(typ), need_space=need_space)
    s.ledger[:, ITEMS_IN] += got.sum(1)
    return got


def in_combat(s: WorldState, P: int, ticks: int = 3) -> torch.Tensor:
    """2.0: fewer than ``ticks`` (``combat_status_ticks``) since the last attack made or
    received; the attack's tick is recorded as the tick after it."""
    last = s.latest_combat_tick[:, :P].long()
    return (last != 0) & (s.tick[:, None] - last < ticks)


def item_rows(t: ItemTables, cfg: EnvConfig, typ, lvl, qty, ids, owner, equipped, price):
    """Item observation rows ``[..., 16]`` int16 in the 2.0 column order; empty rows are 0."""
    typ = typ.long()
    st = stats_of(t, typ, lvl)
    cols = torch.stack([ids, typ.int(), owner.int(), lvl, t.capacity[typ], qty], -1)
    rows = torch.cat([cols.int(), st, torch.stack([equipped.int(), price], -1).int()], -1)
    return (rows * (typ > 0)[..., None]).clamp_(-32768, 32767).to(torch.int16)


def refresh_equipment(s: WorldState, cfg: EnvConfig, t: ItemTables) -> None:
    """Players' equipment offense/defense per style and item level from equipped items."""
    P = cfg.num_agents
    eq = s.inv_equipped
    st = stats_of(t, s.inv_type, s.inv_level) * eq[..., None]  # [B, P, S, 8]
    s.equip_offense[:, :P] = st[..., 0:3].sum(2)
    s.equip_defense[:, :P] = st[..., 3:6].sum(2)
    s.item_level[:, :P] = (s.inv_level * eq).sum(-1)


# --- actions ------------------------------------------------------------------------------------
def use(s: WorldState, cfg: EnvConfig, t: ItemTables, slot: torch.Tensor, busy: torch.Tensor) -> None:
    """Use: equip / unequip equipment, consume Ration and Potion (``slot`` ``[B, P]``, S: no-op)."""
    P, S = cfg.num_agents, cfg.inventory_slots
    j = slot.clamp_max(S - 1)
    typ = gather_slot(s.inv_type, j).long()
    lvl = gather_slot(s.inv_level, j)
    equipped = gather_slot(s.inv_equipped, j)
    listed = gather_slot(s.inv_price, j) > 0
    ok = s.alive[:, :P] & ~busy & (slot < S) & (typ > 0) & ~listed
    level_ok = lvl <= required_level(s, cfg, t, typ[..., None]).squeeze(-1)
    eslot = t.equip_slot[typ]
    is_equip = eslot >= 0
    unequip = ok & is_equip & equipped
    equip = ok & is_equip & ~equipped & level_ok
    # Equipping first takes off whatever holds the same equipment slot.
    same_slot = (t.equip_slot[s.inv_type.long()] == eslot[..., None]) & s.inv_equipped & equip[..., None]
    s.inv_equipped &= ~same_slot
    s.inv_equipped &= ~onehot_slot(t, j, unequip)
    s.inv_equipped |= onehot_slot(t, j, equip)
    s.events[..., C.EVENT["EQUIP_ITEM"]] += equip.int()

    eat = ok & t.consumable[typ] & level_ok
    restore = stats_of(t, typ, lvl)
    s.health[:, :P] = torch.where(eat, (s.health[:, :P] + restore[..., 6]).clamp(max=cfg.health_max),
                                  s.health[:, :P])
    for f in (s.food, s.water):
        f[:, :P] = torch.where(eat, (f[:, :P] + restore[..., 7]).clamp(max=cfg.resource_base), f[:, :P])
    s.events[..., C.EVENT["CONSUME_ITEM"]] += eat.int()
    destroy(s, onehot_slot(t, j, eat))


def destroy_action(s, cfg, t, slot, busy) -> None:
    """Destroy: any unequipped item (a listed one is unlisted with it)."""
    P, S = cfg.num_agents, cfg.inventory_slots
    j = slot.clamp_max(S - 1)
    ok = (s.alive[:, :P] & ~busy & (slot < S) & (gather_slot(s.inv_type, j) > 0)
          & ~gather_slot(s.inv_equipped, j))
    destroy(s, onehot_slot(t, j, ok))
    s.events[..., C.EVENT["DESTROY_ITEM"]] += ok.int()


def give_target(s, cfg, obs_slots, row, busy) -> tuple[torch.Tensor, torch.Tensor]:
    """(ok, target player slot) of a give target head: a live other player on the same tile."""
    P, K = cfg.num_agents, cfg.num_entity_obs
    tgt = obs_slots.gather(2, row.clamp_max(K - 1)[..., None]).squeeze(-1)
    ok = (row < K) & (tgt < P) & s.alive[:, :P] & ~busy
    tc = tgt.clamp_max(P - 1)
    me = torch.arange(P, device=s.device)
    ok &= (tc != me) & s.alive[:, :P].gather(1, tc)
    ok &= (s.row[:, :P].gather(1, tc) == s.row[:, :P]) & (s.col[:, :P].gather(1, tc) == s.col[:, :P])
    return ok, tc


def route(values: torch.Tensor, dst: torch.Tensor, P: int) -> torch.Tensor:
    """Values of sources ``[B, X]`` placed at their receivers ``dst`` (``P``: none) -> ``[B, P]``.
    Receivers must be distinct within a call."""
    out = torch.zeros(values.shape[0], P + 1, dtype=values.dtype, device=values.device)
    out.scatter_(1, dst, values)
    return out[:, :P]


def rank_by_key(key: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Rank of each valid entry among the valid entries of its map with the same key
    (by slot order); ``[B, P]`` -> ``[B, P]`` (pairwise: used only on rare events)."""
    same = (key[:, :, None] == key[:, None, :]) & valid[:, None, :] & valid[:, :, None]
    earlier = torch.ones_like(same[0], dtype=torch.bool).tril(-1)
    return (same & earlier).sum(-1)


def give(s, cfg, t, item, row, obs_slots, busy) -> None:
    """Give: move an unequipped, unlisted item to a player on the same tile. Several gifts to
    one player land one after another (lowest giver first) while they fit."""
    P, S = cfg.num_agents, cfg.inventory_slots
    ok, tgt = give_target(s, cfg, obs_slots, row, busy)
    j = item.clamp_max(S - 1)
    ok &= (item < S) & (gather_slot(s.inv_type, j) > 0) & ~gather_slot(s.inv_equipped, j)
    ok &= gather_slot(s.inv_price, j) == 0
    if not bool(ok.any()):
        return
    rank = rank_by_key(tgt, ok)
    for r in range(int(rank[ok].max()) + 1):
        now = ok & (rank == r)
        typ, lvl = gather_slot(s.inv_type, j), gather_slot(s.inv_level, j)
        qty, ids = gather_slot(s.inv_quantity, j), gather_slot(s.inv_id, j)
        dst = torch.where(now, tgt, P)
        recv = route(now, dst, P)
        typ, lvl, qty, ids = (route(x, dst, P) for x in (typ, lvl, qty, ids))
        fits = recv & can_receive(s, t, cfg, typ.long(), lvl, qty)
        sent = now & fits.gather(1, tgt)
        clear(s, onehot_slot(t, j, sent))
        receive(s, cfg, t, fits, typ.long(), lvl, qty, ids=ids)
        s.events[..., C.EVENT["GIVE_ITEM"]] += sent.int()


def give_gold(s, cfg, amount_idx, row, obs_slots, busy) -> None:
    """GiveGold: ``amount_idx + 1`` gold to a player on the same tile, if owned."""
    P = cfg.num_agents
    ok, tgt = give_target(s, cfg, obs_slots, row, busy)
    amount = (amount_idx + 1).int()
    ok &= amount <= s.gold[:, :P]
    amount = amount * ok
    s.gold[:, :P] -= amount
    gained = torch.zeros_like(s.gold[:, :P])
    gained.scatter_add_(1, tgt, amount)
    s.gold[:, :P] += gained
    s.events[..., C.EVENT["GIVE_GOLD"]] += ok.int()


def fire_ammo(s, cfg, t, fired: torch.Tensor, style: torch.Tensor) -> None:
    """One unit of equipped ammunition matching the style per executed attack (2.0)."""
    P = cfg.num_agents
    typ = s.inv_type.long()
    attack = stats_of(t, typ, s.inv_level)
    match = attack.gather(3, style[:, :, None, None].expand(*typ.shape, 1)).squeeze(-1) > 0
    ammo = s.inv_equipped & (t.equip_slot[typ] == AMMO_SLOT) & match & fired[..., None]
    s.inv_quantity -= ammo.int()
    s.ledger[:, ITEMS_OUT] += ammo.sum((1, 2))
    s.events[..., C.EVENT["FIRE_AMMO"]] += ammo.any(-1).int()
    clear(s, ammo & (s.inv_quantity <= 0))


def sell(s, cfg, t, item, price_idx, busy) -> None:
    """Sell: list an unequipped, unlisted item at ``price_idx + 1`` gold."""
    P, S = cfg.num_agents, cfg.inventory_slots
    j = item.clamp_max(S - 1)
    ok = (s.alive[:, :P] & ~busy & (item < S) & (gather_slot(s.inv_type, j) > 0)
          & ~gather_slot(s.inv_equipped, j) & (gather_slot(s.inv_price, j) == 0))
    m = onehot_slot(t, j, ok)
    s.inv_price.copy_(torch.where(m, (price_idx + 1).int()[..., None], s.inv_price))
    s.inv_listed_tick.copy_(torch.where(m, s.tick.int()[:, None, None], s.inv_listed_tick))
    s.events[..., C.EVENT["LIST_ITEM"]] += ok.int()


def expire(s, cfg) -> None:
    """End of tick: listings older than the duration are taken off the market."""
    old = (s.inv_price > 0) & (s.tick.int()[:, None, None] - s.inv_listed_tick > cfg.listing_duration)
    s.inv_price.masked_fill_(old, 0)
