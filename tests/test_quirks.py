"""nmmo 2.0.3's rule quirks, each behind a config switch (on in ``competition2023``), on
constructed states: with the switch on the 2.0 outcome, with it off the corrected rules. The
NPC switches (``npc_attack_npcs``, ``npc_wander_sequence``) are tested in test_npc_rules.py."""

from __future__ import annotations

import pytest

from nmmozoo.env import constants as C
from nmmozoo.env import items as I
from nmmozoo.env.config import make_config

OFF = dict(npc_respawn_dead_danger=False, sequential_combat=False, kill_every_hit=False,
           npc_attack_npcs=False, npc_wander_sequence=False)


def give(sb, slot, typ, level=1, qty=1):
    s = sb.s
    j = int((s.inv_type[0, slot] == 0).nonzero()[0, 0])
    s.inv_type[0, slot, j], s.inv_level[0, slot, j], s.inv_quantity[0, slot, j] = typ, level, qty
    s.inv_id[0, slot, j] = 1000 + slot * 20 + j


def inv_types(sb, slot):
    return sorted(int(t) for t in sb.s.inv_type[0, slot] if t > 0)


def events(sb, slot, name):
    return int(sb.s.events[0, slot, C.EVENT[name]])


def test_competition_preset_has_the_quirks_on():
    cfg = make_config("competition2023")
    assert all(getattr(cfg, k) for k in OFF)
    fixed = make_config("competition2023", **OFF)
    assert not any(getattr(fixed, k) for k in OFF)


# --- sequential_combat -------------------------------------------------------------------------


@pytest.mark.parametrize("quirks", [True, False])
def test_mutual_hit_one_death(sandbox, quirks):
    sb = sandbox(**({} if quirks else OFF))
    a = sb.player(0, sb.c, sb.c, health=11, food=50, water=50)
    b = sb.player(1, sb.c + 1, sb.c, health=11, food=50, water=50)
    sb.step(target={a: b, b: a}, style={a: C.MAGE, b: C.MAGE})  # 18 damage each way
    if quirks:  # slot 0 strikes first; the dead slot 1 never swings
        assert sb.s.alive[0, a] and sb.s.health[0, a] == 11 and not sb.s.alive[0, b]
        assert events(sb, a, "PLAYER_KILL") == 1 and events(sb, b, "PLAYER_KILL") == 0
        assert events(sb, b, "SCORE_HIT") == 0 and sb.s.exp[0, b, C.MAGE] == 0
        assert sb.s.damage_taken[0, a] == 0 and sb.s.damage_dealt[0, b] == 0
    else:  # simultaneous: both die, both score
        assert not sb.s.alive[0, a] and not sb.s.alive[0, b]
        assert events(sb, a, "PLAYER_KILL") == 1 and events(sb, b, "PLAYER_KILL") == 1


@pytest.mark.parametrize("quirks", [True, False])
def test_starving_attacker_does_not_hit(sandbox, quirks):
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0, **({} if quirks else OFF))
    a = sb.player(0, sb.c, sb.c, health=10, food=0, water=0)  # starves to 0 in its update
    n = sb.npc(0, sb.c + 1, sb.c, C.PASSIVE)
    sb.s.health[0, n] = 1
    sb.step(target={a: n}, move={a: 1})
    assert not sb.s.alive[0, a]
    if quirks:
        assert sb.s.alive[0, n] and sb.s.health[0, n] == 2  # regenerated, never hit
        assert events(sb, a, "SCORE_HIT") == 0 and events(sb, a, "PLAYER_KILL") == 0
        assert sb.s.row[0, a] == sb.c  # the dead do not move either
    else:
        assert not sb.s.alive[0, n] and events(sb, a, "PLAYER_KILL") == 1
        assert sb.s.row[0, a] == sb.c + 1


def test_chain_of_attacks_in_order(sandbox):
    """0 hits 1, 1 hits 2, 2 hits 3: with 1 killed first, 2 survives and kills 3."""
    sb = sandbox()
    p = [sb.player(i, sb.c, sb.c - 1 + i, health=11, food=50, water=50) for i in range(4)]
    sb.step(target={0: 1, 1: 2, 2: 3}, style={i: C.MAGE for i in range(3)})
    assert sb.s.alive[0, :4].tolist() == [True, False, True, False]
    assert [events(sb, i, "PLAYER_KILL") for i in p] == [1, 0, 1, 0]


def test_killer_killed_later_passes_the_loot_on(sandbox):
    sb = sandbox()
    v = sb.player(0, sb.c, sb.c, health=11, food=50, water=50, gold=5)
    k = sb.player(1, sb.c, sb.c + 1, health=11, food=50, water=50, gold=2)
    h = sb.player(2, sb.c, sb.c + 2, food=50, water=50, gold=0)
    give(sb, v, C.HAT)
    sb.step(target={k: v, h: k}, style={k: C.MAGE, h: C.MAGE})
    assert not sb.s.alive[0, v] and not sb.s.alive[0, k]
    assert sb.s.gold[0, h] == 7 and inv_types(sb, h) == [C.HAT]
    sb2 = sandbox(**OFF)  # off: the killer who dies inherits nothing; what it had is looted
    v = sb2.player(0, sb2.c, sb2.c, health=11, food=50, water=50, gold=5)
    k = sb2.player(1, sb2.c, sb2.c + 1, health=11, food=50, water=50, gold=2)
    h = sb2.player(2, sb2.c, sb2.c + 2, food=50, water=50, gold=0)
    give(sb2, v, C.HAT)
    sb2.step(target={k: v, h: k}, style={k: C.MAGE, h: C.MAGE})
    assert sb2.s.gold[0, h] == 2 and inv_types(sb2, h) == []


# --- kill_every_hit ------------------------------------------------------------------------------


@pytest.mark.parametrize("quirks", [True, False])
def test_two_attackers_on_a_1hp_npc(sandbox, quirks):
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0, **({} if quirks else OFF))
    a = sb.player(0, sb.c, sb.c, gold=0)
    b = sb.player(1, sb.c, sb.c + 2, gold=0)
    n = sb.npc(0, sb.c + 1, sb.c + 1, C.PASSIVE, level=3)
    sb.s.gold[0, n] = 3
    sb.s.health[0, n] = 1
    sb.step(target={a: n, b: n})
    assert not sb.s.alive[0, n]
    armour, tools = {C.HAT, C.TOP, C.BOTTOM}, set(I.TOOLS)
    if quirks:  # two kills, two drops; the gold to the first hit
        assert [events(sb, x, "PLAYER_KILL") for x in (a, b)] == [1, 1]
        assert [events(sb, x, "NPC_KILL") for x in (a, b)] == [1, 1]
        assert sb.s.gold[0, a] == 3 and sb.s.gold[0, b] == 0
        assert events(sb, a, "LOOT_GOLD") == 1 and events(sb, b, "LOOT_GOLD") == 0
        for x in (a, b):
            got = inv_types(sb, x)
            assert len(got) == 2 and set(got) & armour and set(got) & tools
            assert events(sb, x, "LOOT_ITEM") == 2
        assert int(sb.s.kills[0, a, 1].sum()) == int(sb.s.kills[0, b, 1].sum()) == 1
    else:  # one kill, to the last attacker in slot order
        assert [events(sb, x, "PLAYER_KILL") for x in (a, b)] == [0, 1]
        assert sb.s.gold[0, b] == 3 and len(inv_types(sb, b)) == 2 and inv_types(sb, a) == []


def test_overkill_on_a_player_counts_but_loots_once(sandbox):
    sb = sandbox()
    v = sb.player(1, sb.c, sb.c, health=5, food=50, water=50, gold=4)
    a = sb.player(0, sb.c + 1, sb.c, gold=0)
    b = sb.player(2, sb.c - 1, sb.c, gold=0)
    give(sb, v, C.HAT)
    sb.step(target={a: v, b: v})
    assert not sb.s.alive[0, v]
    assert events(sb, a, "PLAYER_KILL") == 1 and events(sb, b, "PLAYER_KILL") == 1
    assert sb.s.gold[0, a] == 4 and inv_types(sb, a) == [C.HAT]
    assert sb.s.gold[0, b] == 0 and inv_types(sb, b) == []


@pytest.mark.parametrize("quirks", [True, False])
def test_starved_then_hit_is_looted(sandbox, quirks):
    sb = sandbox(**({} if quirks else OFF))
    a = sb.player(0, sb.c, sb.c, gold=0)
    v = sb.player(1, sb.c + 1, sb.c, health=10, food=0, water=0, gold=7)  # starves to 0
    give(sb, v, C.HAT)
    sb.step(target={a: v})
    assert not sb.s.alive[0, v]
    if quirks:
        assert events(sb, a, "PLAYER_KILL") == 1
        assert sb.s.gold[0, a] == 7 and inv_types(sb, a) == [C.HAT]
        assert events(sb, a, "LOOT_ITEM") == 1
    else:
        assert events(sb, a, "PLAYER_KILL") == 0
        assert sb.s.gold[0, a] == 0 and inv_types(sb, a) == []
    assert inv_types(sb, v) == [] and sb.s.gold[0, v] == 0


# --- npc_respawn_dead_danger ----------------------------------------------------------------------


def edge_distance(sb, r, c):
    lo, hi = sb.cfg.map_border, sb.cfg.map_border + sb.cfg.playable - 1
    return min(r - lo, hi - r, c - lo, hi - c)


def test_npc_respawn_on_dead_danger_ring(sandbox):
    sb = sandbox(num_npcs=2, npc_spawn_attempts=25)
    a = sb.player(0, sb.c, sb.c)
    b = sb.player(1, sb.c, sb.c + 2)
    lo = sb.cfg.map_border
    for i, d in enumerate((3, 5)):  # spawn edge distances 3 (older) and 5 (newer)
        n = sb.npc(i, sb.c + 1, sb.c + i, C.PASSIVE)
        sb.s.health[0, n] = 1
        sb.s.spawn_row[0, n], sb.s.spawn_col[0, n] = lo + d, sb.c
        sb.s.spawn_seq[0, n] = 10 + i
    sb.step(target={a: sb.P, b: sb.P + 1})
    s, P = sb.s, sb.P
    assert s.alive[0, P:].all()  # both refilled this tick, on the newest dead NPC's ring
    for n in (P, P + 1):
        assert edge_distance(sb, int(s.spawn_row[0, n]), int(s.spawn_col[0, n])) == 5
        assert s.npc_level[0, n] == int(2 * 5 / sb.cfg.playable * 9 + 1)
    assert s.npc_danger_count[0] == 1 and s.npc_dangers[0, 0] == 3  # one memory popped
    sb.step()  # full population: no spawn, but 2.0 still pops one memory per tick
    assert s.npc_danger_count[0] == 0


def test_npc_respawn_uniform_when_off(sandbox):
    sb = sandbox(num_npcs=8, npc_spawn_attempts=25, **OFF)
    a = sb.player(0, sb.c, sb.c)
    lo = sb.cfg.map_border
    n = sb.npc(0, sb.c + 1, sb.c, C.PASSIVE)
    sb.s.health[0, n] = 1
    sb.s.spawn_row[0, n], sb.s.spawn_col[0, n] = lo + 3, sb.c
    sb.step(target={a: n})
    s, P = sb.s, sb.P
    d = [edge_distance(sb, int(r), int(c)) for r, c in zip(s.spawn_row[0, P:], s.spawn_col[0, P:])]
    assert len(set(d)) > 1 and s.npc_danger_count[0] == 0
