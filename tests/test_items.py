"""Items, equipment, gold, the market and loot (docs/env.md#items-gold-and-the-market), on
constructed states, and conservation as a property over random play."""

from __future__ import annotations

import pytest
import torch

import nmmozoo
from nmmozoo.env import constants as C
from nmmozoo.env import items as I
from nmmozoo.env import random_actions


def give(sb, slot, typ, level=1, qty=1, equipped=False, price=0):
    """Put an item straight into a player's inventory (test set-up), counted as created."""
    s, t = sb.s, sb.world.item_tables
    who = torch.zeros(1, sb.P, dtype=torch.bool)
    who[0, slot] = True
    full = lambda v: torch.full((1, sb.P), v)  # noqa: E731
    assert I.receive(s, sb.cfg, t, who, full(typ), full(level), full(qty), I.new_ids(s, who))[0, slot]
    s.ledger[:, I.ITEMS_IN] += qty
    j = int(((s.inv_type[0, slot] == typ) & (s.inv_level[0, slot] == level)).int().argmax())
    s.inv_equipped[0, slot, j] = equipped
    s.inv_price[0, slot, j] = price
    s.inv_listed_tick[0, slot, j] = int(s.tick[0])
    I.refresh_equipment(s, sb.cfg, t, I.Rows.where(s, who))
    return j


def inv(sb, slot):
    s = sb.s
    return [(int(t), int(l), int(q), bool(e), int(p)) for t, l, q, e, p in zip(
        s.inv_type[0, slot], s.inv_level[0, slot], s.inv_quantity[0, slot],
        s.inv_equipped[0, slot], s.inv_price[0, slot]) if t > 0]


def test_item_stats_match_2_0(sandbox):
    t = I.ItemTables(sandbox().cfg, "cpu")
    st = lambda typ, lvl: t.stats[typ, lvl].tolist()  # noqa: E731
    assert st(C.HAT, 3)[3:6] == [30, 30, 30]
    assert st(C.SPEAR, 2)[:3] == [45, 0, 0] and st(C.BOW, 2)[:3] == [0, 45, 0]
    assert st(C.WAND, 7)[2] == 100  # 15 + 15*7 = 120, clipped at 100 as in 2.0
    assert st(C.ROD, 5)[3:6] == [30, 30, 30]
    assert st(C.RUNES, 1)[2] == 30
    assert st(C.RATION, 2)[7] == 60 and st(C.POTION, 4)[6] == 70


def test_equip_requirements_and_slot_swap(sandbox):
    sb = sandbox()
    p = sb.player(0, sb.c, sb.c)
    spear2 = give(sb, p, C.SPEAR, level=2)
    sb.step(use_item={p: spear2})
    assert not sb.s.inv_equipped[0, p, spear2]  # melee level 1 < 2
    sb.s.exp[0, p, C.MELEE] = 90
    sb.s.level[0, p, C.MELEE] = 2
    sb.step(use_item={p: spear2})
    assert sb.s.inv_equipped[0, p, spear2]
    assert sb.s.events[0, p, C.EVENT["EQUIP_ITEM"]] == 1
    rod = give(sb, p, C.ROD, level=1)
    sb.step(use_item={p: rod})  # the held slot: the rod replaces the spear
    assert sb.s.inv_equipped[0, p, rod] and not sb.s.inv_equipped[0, p, spear2]
    sb.step(use_item={p: rod})  # Use on an equipped item unequips it
    assert not sb.s.inv_equipped[0, p, rod]


def test_consumables(sandbox):
    sb = sandbox()
    p = sb.player(0, sb.c, sb.c, food=10, water=10, health=20)
    ration = give(sb, p, C.RATION, level=1)
    sb.step(use_item={p: ration})
    # food/water: 10 - 5 (depletion) + 55, health: no regen (food low)
    assert sb.s.food[0, p] == 60 and sb.s.water[0, p] == 60
    assert sb.s.events[0, p, C.EVENT["CONSUME_ITEM"]] == 1 and inv(sb, p) == []
    potion = give(sb, p, C.POTION, level=1)
    sb.step(use_item={p: potion})
    assert sb.s.health[0, p] == 20 + 10 + 55  # regen then potion
    high = give(sb, p, C.POTION, level=3)
    sb.step(use_item={p: high})
    assert len(inv(sb, p)) == 1  # level 3 > highest level 1: not usable


def test_damage_paths_with_equipment(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c)
    b = sb.player(1, sb.c + 1, sb.c)
    give(sb, a, C.SPEAR, level=1, equipped=True)  # +30 melee
    whet = give(sb, a, C.WHETSTONE, level=1, qty=3, equipped=True)  # +30 melee, fired
    give(sb, b, C.HAT, level=1, equipped=True)  # +10 defense
    give(sb, b, C.PICKAXE, level=1, equipped=True)  # +30 defense
    sb.step(target={a: b}, style={a: C.MELEE})
    offense, defense = 25 + 30 + 30, 5 + 10 + 30
    assert sb.s.health[0, b] == 100 - (offense * 15) // (15 + defense)
    assert sb.s.inv_quantity[0, a, whet] == 2
    assert sb.s.events[0, a, C.EVENT["FIRE_AMMO"]] == 1
    # Ammunition for another style neither fires nor adds offense.
    sb.s.health[0, b] = 100
    sb.step(target={a: b}, style={a: C.RANGE})
    assert sb.s.inv_quantity[0, a, whet] == 2
    assert sb.s.health[0, b] == 100 - (25 * 15) // (15 + defense)
    # The last unit fired removes the stack.
    sb.s.inv_quantity[0, a, whet] = 1
    sb.step(target={a: b}, style={a: C.MELEE})
    assert all(t != C.WHETSTONE for t, *_ in inv(sb, a))


def test_harvest_drops_items_with_tool_level(sandbox):
    sb = sandbox(respawn_ore=0.0)
    sb.set_tile(sb.c, sb.c, C.ORE)
    sb.set_tile(sb.c + 4, sb.c, C.ORE)
    a = sb.player(0, sb.c, sb.c)
    b = sb.player(1, sb.c + 4, sb.c, exp=torch.tensor([0, 0, 0, 0, 0, 400, 0, 0], dtype=torch.int32))
    sb.s.level[0, b] = torch.tensor([1, 1, 1, 1, 1, 4, 1, 1], dtype=torch.int32)
    give(sb, b, C.PICKAXE, level=3, equipped=True)
    sb.step()
    assert (C.WHETSTONE, 1, 1, False, 0) in inv(sb, a)
    assert (C.WHETSTONE, 4, 1, False, 0) in inv(sb, b)  # 1 + pickaxe level
    assert sb.s.events[0, a, C.EVENT["HARVEST_ITEM"]] == 1


def test_harvest_needs_a_free_slot(sandbox):
    sb = sandbox(respawn_ore=1.0)
    sb.set_tile(sb.c, sb.c, C.ORE)
    a = sb.player(0, sb.c, sb.c)
    for _ in range(sb.cfg.inventory_slots):
        give(sb, a, C.RATION)
    sb.step()
    assert sb.s.exp[0, a, C.PROSPECTING] == 15  # XP even when the item does not fit
    assert sb.s.events[0, a, C.EVENT["HARVEST_ITEM"]] == 0
    assert all(t == C.RATION for t, *_ in inv(sb, a))


def test_ammunition_stacks(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c)
    give(sb, a, C.ARROW, level=2, qty=3)
    give(sb, a, C.ARROW, level=2, qty=4)
    give(sb, a, C.ARROW, level=1, qty=1)
    give(sb, a, C.RATION)
    give(sb, a, C.RATION)
    assert sorted(inv(sb, a)) == sorted([(C.ARROW, 2, 7, False, 0), (C.ARROW, 1, 1, False, 0),
                                         (C.RATION, 1, 1, False, 0), (C.RATION, 1, 1, False, 0)])


def test_sell_list_expire(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c)
    j = give(sb, a, C.RATION)
    sb.step(sell_item={a: j}, sell_price={a: 9})
    assert sb.s.inv_price[0, a, j] == 10 and sb.s.events[0, a, C.EVENT["LIST_ITEM"]] == 1
    obs = sb.world.observe()
    assert obs["market"][0, 0, C.ITEM_COLUMNS.index("listed_price")] == 10
    assert obs["market"][0, 0, C.ITEM_COLUMNS.index("owner_id")] == 1
    for _ in range(sb.cfg.listing_duration):
        sb.step()
        assert sb.s.inv_price[0, a, j] == 10
    sb.step()  # listed at tick t: gone at the end of tick t + 6
    assert sb.s.inv_price[0, a, j] == 0
    assert sb.world.observe()["market"].abs().sum() == 0


def test_equipped_item_cannot_be_sold_given_or_destroyed(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c)
    b = sb.player(1, sb.c, sb.c)
    j = give(sb, a, C.HAT, equipped=True)
    obs = sb.world.observe()
    for head in ("sell_item", "give_item", "destroy_item"):
        assert not obs[head][0, a, j] and obs[head][0, a, sb.cfg.inventory_slots]
    sb.step(sell_item={a: j}, sell_price={a: 5})
    sb.step(give_item={a: j}, give_target={a: b})
    sb.step(destroy_item={a: j})
    assert inv(sb, a) == [(C.HAT, 1, 1, True, 0)] and inv(sb, b) == []


def test_buy_moves_item_and_gold(sandbox):
    sb = sandbox()
    seller = sb.player(0, sb.c, sb.c, gold=1)
    buyer = sb.player(1, sb.c + 5, sb.c, gold=30)
    give(sb, seller, C.POTION, level=2, price=25)
    obs = sb.world.observe()
    assert obs["buy_item"][0, buyer, 0] and not obs["buy_item"][0, seller, 0]  # own listing
    sb.step(buy_item={buyer: 0})
    assert inv(sb, seller) == [] and inv(sb, buyer) == [(C.POTION, 2, 1, False, 0)]
    assert sb.s.gold[0, seller] == 26 and sb.s.gold[0, buyer] == 5
    assert sb.s.events[0, buyer, C.EVENT["BUY_ITEM"]] == 1
    assert sb.s.events[0, seller, C.EVENT["EARN_GOLD"]] == 1


def test_buy_race_has_one_winner(sandbox):
    sb = sandbox()
    seller = sb.player(0, sb.c, sb.c)
    buyers = [sb.player(i, sb.c + i, sb.c, gold=50) for i in range(1, 6)]
    give(sb, seller, C.HAT, price=20)
    sb.step(buy_item={b: 0 for b in buyers})
    owners = [b for b in buyers if inv(sb, b)]
    assert len(owners) == 1 and inv(sb, seller) == []
    assert sorted(int(sb.s.gold[0, b]) for b in buyers) == [30, 50, 50, 50, 50]
    assert sb.s.gold[0, seller] == 21


def test_buy_unaffordable_or_full_fails(sandbox):
    sb = sandbox()
    seller = sb.player(0, sb.c, sb.c)
    poor = sb.player(1, sb.c + 1, sb.c, gold=5)
    full = sb.player(2, sb.c + 2, sb.c, gold=99)
    for _ in range(sb.cfg.inventory_slots):
        give(sb, full, C.RATION)
    give(sb, seller, C.HAT, price=10)
    give(sb, seller, C.ARROW, qty=2, price=10)
    obs = sb.world.observe()
    assert not obs["buy_item"][0, poor, :2].any()
    assert not obs["buy_item"][0, full, 0]  # a full inventory takes only a stacking buy
    sb.step(buy_item={poor: 0, full: 0})
    assert len(inv(sb, seller)) == 2 and sb.s.gold[0, poor] == 5 and sb.s.gold[0, full] == 99


def test_full_inventory_buys_a_stacking_listing(sandbox):
    sb = sandbox()
    seller = sb.player(0, sb.c, sb.c)
    full = sb.player(2, sb.c + 2, sb.c, gold=99)
    give(sb, full, C.ARROW, qty=1)
    for _ in range(sb.cfg.inventory_slots - 1):
        give(sb, full, C.RATION)
    give(sb, seller, C.ARROW, qty=2, price=10)
    assert sb.world.observe()["buy_item"][0, full, 0]
    sb.step(buy_item={full: 0})
    assert (C.ARROW, 1, 3, False, 0) in inv(sb, full) and sb.s.gold[0, full] == 89


def test_give_same_tile_only(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c)
    b = sb.player(1, sb.c, sb.c)
    c = sb.player(2, sb.c, sb.c + 1)
    j = give(sb, a, C.RATION)
    obs = sb.world.observe()
    assert obs["give_target"][0, a, sb.row_of(a, b)]
    assert not obs["give_target"][0, a, sb.row_of(a, c)]
    assert not obs["give_target"][0, a, sb.row_of(a, a)]
    sb.step(give_item={a: j}, give_target={a: c})
    assert inv(sb, c) == []
    sb.step(give_item={a: j}, give_target={a: b})
    assert inv(sb, a) == [] and inv(sb, b) == [(C.RATION, 1, 1, False, 0)]
    assert sb.s.events[0, a, C.EVENT["GIVE_ITEM"]] == 1


def test_give_gold(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c, gold=10)
    b = sb.player(1, sb.c, sb.c, gold=1)
    obs = sb.world.observe()
    assert obs["give_gold_amount"][0, a, :10].all() and not obs["give_gold_amount"][0, a, 10:].any()
    sb.step(give_gold_amount={a: 3}, give_gold_target={a: b})
    assert sb.s.gold[0, a] == 6 and sb.s.gold[0, b] == 5
    sb.step(give_gold_amount={a: 20}, give_gold_target={a: b})  # more than owned: no-op
    assert sb.s.gold[0, a] == 6


def test_destroy(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c)
    j = give(sb, a, C.ARROW, qty=5, price=3)  # a listed item can be destroyed
    sb.step(destroy_item={a: j})
    assert inv(sb, a) == [] and sb.s.events[0, a, C.EVENT["DESTROY_ITEM"]] == 1
    assert sb.world.observe()["market"].abs().sum() == 0


def test_in_combat_blocks_item_actions(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c)
    b = sb.player(1, sb.c + 1, sb.c)
    j = give(sb, a, C.RATION)
    sb.step(target={b: a})  # a is now in combat for 3 ticks
    obs = sb.world.observe()
    S = sb.cfg.inventory_slots
    for head in ("use_item", "destroy_item", "give_item", "sell_item"):
        assert not obs[head][0, a, :S].any() and obs[head][0, a, S]
    sb.step(use_item={a: j})
    sb.step(sell_item={a: j}, sell_price={a: 1})
    assert inv(sb, a) == [(C.RATION, 1, 1, False, 0)]
    sb.step()
    sb.step(sell_item={a: j}, sell_price={a: 1})  # 3 ticks later it works again
    assert inv(sb, a) == [(C.RATION, 1, 1, False, 2)]


def test_pvp_loot(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c, gold=3)
    b = sb.player(1, sb.c + 1, sb.c, health=5, food=50, water=50, gold=7)
    give(sb, b, C.HAT, equipped=True)
    give(sb, b, C.ARROW, qty=4)
    give(sb, a, C.ARROW, qty=1)
    sb.step(target={a: b})
    assert not sb.s.alive[0, b]
    assert sb.s.gold[0, a] == 10 and sb.s.gold[0, b] == 0
    assert sorted(inv(sb, a)) == sorted([(C.HAT, 1, 1, False, 0), (C.ARROW, 1, 5, False, 0)])
    assert inv(sb, b) == []
    assert sb.s.events[0, a, C.EVENT["LOOT_GOLD"]] == 1 and sb.s.events[0, a, C.EVENT["LOOT_ITEM"]] == 2


def test_npc_kill_drops(sandbox):
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0)
    a = sb.player(0, sb.c, sb.c, gold=0)
    n = sb.npc(0, sb.c + 1, sb.c, C.PASSIVE, level=3)
    sb.s.gold[0, n] = 3
    sb.s.health[0, n] = 1
    sb.step(target={a: n})
    assert not sb.s.alive[0, n] and sb.s.gold[0, a] == 3
    got = inv(sb, a)
    assert len(got) == 2 and all(lvl == 3 for _, lvl, *_ in got)
    assert {t for t, *_ in got} & {C.HAT, C.TOP, C.BOTTOM}
    assert {t for t, *_ in got} & set(I.TOOLS)


def test_death_by_npc_and_starvation_destroy_items(sandbox):
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0)
    a = sb.player(0, sb.c, sb.c, health=1, food=50, water=50, gold=4)
    b = sb.player(1, sb.c - 5, sb.c - 5, health=5, food=0, water=0, gold=2)
    n = sb.npc(0, sb.c + 1, sb.c, C.AGGRESSIVE, level=1)
    give(sb, a, C.HAT)
    give(sb, b, C.RATION)
    gold_npc = int(sb.s.gold[0, n])
    sb.step()
    assert not sb.s.alive[0, a] and not sb.s.alive[0, b]
    assert sb.s.gold[0, n] == gold_npc + 4  # the NPC takes the gold
    assert inv(sb, a) == [] and inv(sb, b) == []


def test_masks_of_every_head_keep_a_valid_option():
    env = nmmozoo.make_env("tiny", num_maps=2, seed=0)
    td = env.reset()
    for _ in range(60):
        random_actions(td)
        _, td = env.step_and_maybe_reset(td)
        for head, m in td["agents", "action_mask"].items():
            assert m.any(-1).all(), head


def _world_totals(w):
    s = w.state
    gold = int((s.gold * s.alive).sum())
    items = int(s.inv_quantity.sum())
    return gold, items


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conservation_property(seed):
    """Over random masked play: gold and items change only through the ledger's sources and
    sinks; no item is in two places; stacks within capacity; listings point at real items."""
    env = nmmozoo.make_env("tiny", num_maps=3, seed=seed, horizon=120, num_npcs=12)
    w, cfg = env.world, env.config
    td = env.reset()
    gen = torch.Generator().manual_seed(seed)
    # Encourage trade: everyone starts rich, so buys and gifts happen.
    w.state.gold[:, :cfg.num_agents] = 60
    prev = _world_totals(w)
    prev_ledger = w.state.ledger.sum(0).clone()
    seen_buy = 0
    for _ in range(120):
        random_actions(td, gen)
        step, td = env.step_and_maybe_reset(td)
        if step["next", "done"].any():
            break  # a reset starts new accounts
        s = w.state
        gold, items = _world_totals(w)
        led = s.ledger.sum(0)
        d = led - prev_ledger
        assert gold - prev[0] == int(d[I.GOLD_IN] - d[I.GOLD_OUT])
        assert items - prev[1] == int(d[I.ITEMS_IN] - d[I.ITEMS_OUT])
        prev, prev_ledger = (gold, items), led.clone()
        # No item id twice in a map; every non-empty slot is a real item.
        occupied = s.inv_type > 0
        for b in range(s.num_maps):
            ids = s.inv_id[b][occupied[b]]
            assert ids.unique().numel() == ids.numel()
        assert (s.inv_quantity[occupied] >= 1).all()
        assert (s.inv_quantity <= cfg.stack_capacity).all()
        assert (s.inv_quantity[~occupied] == 0).all()
        assert not (s.inv_type[:, :, :, None] == 0).squeeze(-1)[s.inv_price > 0].any()
        listed = s.inv_price > 0
        assert not (listed & s.inv_equipped).any()
        assert (s.inv_price[listed] <= cfg.max_price).all()
        assert ((s.tick[:, None, None] - 1 - s.inv_listed_tick)[listed] <= cfg.listing_duration).all()
        assert (s.gold >= 0).all()
        dead = ~s.alive[:, :cfg.num_agents]
        assert not occupied[dead].any() and (s.gold[:, :cfg.num_agents][dead] == 0).all()
        ev = step["next", "agents", "events"]
        seen_buy += int(ev[..., C.EVENT["BUY_ITEM"]].sum())
    assert seen_buy > 0  # the property was exercised on real trades
