"""One test per game rule, on constructed states (docs/env.md)."""

from __future__ import annotations

import torch

from nmmozoo.env import constants as C
from nmmozoo.env.combat import damage_of, dominant_style
from nmmozoo.env.config import make_config
from nmmozoo.env.harvest import respawn_delay
from nmmozoo.env.npc import danger, npc_kind
from nmmozoo.env.progression import levels_for


def test_starvation_schedule(sandbox):
    sb = sandbox()
    p = sb.player(0, sb.c, sb.c, health=100, food=100, water=100)
    health = []
    for tick in range(1, 26):
        sb.step()
        if tick <= 20:
            assert sb.s.food[0, p] == 100 - 5 * tick and sb.s.water[0, p] == 100 - 5 * tick
        health.append(int(sb.s.health[0, p]))
    # Full health until food and water run out at tick 20, then -20 per tick: dead at tick 25.
    assert health[:20] == [100] * 20
    assert health[20:] == [80, 60, 40, 20, 0]
    assert not sb.s.alive[0, p]
    assert sb.world.reward[0, p] == -1


def test_regeneration_threshold_and_resilience(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c, health=50, food=55, water=55)
    b = sb.player(1, sb.c + 2, sb.c, health=50, food=50, water=55)
    c = sb.player(2, sb.c - 2, sb.c, health=50, food=0, water=0, resilient=True)
    sb.step()
    assert sb.s.health[0, a] == 60  # food and water > 50: +10
    assert sb.s.health[0, b] == 50  # food not above 50: no regeneration
    assert sb.s.health[0, c] == 40  # resilient: 5 per empty resource


def test_water_refill_adjacent_only(sandbox):
    sb = sandbox()
    sb.set_tile(sb.c - 1, sb.c, C.WATER)
    a = sb.player(0, sb.c, sb.c, water=20)
    b = sb.player(1, sb.c - 2, sb.c + 1, water=20)  # diagonal to the water: no drink
    sb.step()
    assert sb.s.water[0, a] == 100
    assert sb.s.water[0, b] == 15
    assert sb.s.events[0, a, C.EVENT["DRINK_WATER"]] == 1
    assert sb.s.material[0, sb.c - 1, sb.c] == C.WATER  # water never depletes


def test_food_refill_depletes_foliage_one_eater(sandbox):
    sb = sandbox(respawn_foliage=0.0)
    sb.set_tile(sb.c, sb.c, C.FOLIAGE)
    a = sb.player(0, sb.c, sb.c, food=30)
    b = sb.player(1, sb.c, sb.c, food=30)
    sb.step()
    assert sb.s.food[0, a] == 100 and sb.s.food[0, b] == 25  # the lower slot eats
    assert sb.s.material[0, sb.c, sb.c] == C.SCRUB
    assert sb.s.events[0, a, C.EVENT["EAT_FOOD"]] == 1


def test_harvest_yields_xp_and_depletion(sandbox):
    sb = sandbox(respawn_ore=0.0, respawn_herb=0.0, respawn_fish=0.0, respawn_tree=0.0,
                 respawn_crystal=0.0)
    cases = [(C.ORE, C.SLAG, C.PROSPECTING, 15), (C.HERB, C.WEEDS, C.HERBALISM, 30),
             (C.TREE, C.STUMP, C.CARVING, 15), (C.CRYSTAL, C.FRAGMENT, C.ALCHEMY, 15)]
    for i, (mat, _, _, _) in enumerate(cases):
        sb.set_tile(sb.c - 6 + 3 * i, sb.c, mat)
        sb.player(i, sb.c - 6 + 3 * i, sb.c)
    sb.set_tile(sb.c + 6, sb.c + 1, C.FISH)
    fisher = sb.player(4, sb.c + 6, sb.c)
    sb.step()
    for i, (_, depleted, skill, xp) in enumerate(cases):
        assert sb.s.exp[0, i, skill] == xp
        assert sb.s.material[0, sb.c - 6 + 3 * i, sb.c] == depleted
        assert sb.s.events[0, i, C.EVENT["HARVEST_ITEM"]] == 1
    assert sb.s.exp[0, fisher, C.FISHING] == 30
    assert sb.s.material[0, sb.c + 6, sb.c + 1] == C.OCEAN
    sb.step()  # depleted tiles give nothing
    assert sb.s.exp[0, 0, C.PROSPECTING] == 15 and sb.s.exp[0, fisher, C.FISHING] == 30


def test_respawn_delay_is_geometric():
    gen = torch.Generator().manual_seed(0)
    p = 0.025
    d = respawn_delay(torch.full((200_000,), float(torch.log1p(torch.tensor(-p)))), gen)
    assert abs(float(d.mean()) - (1 - p) / p) < 0.6  # mean failures before the first success
    assert abs(float((d == 0).float().mean()) - p) < 0.003
    assert abs(float((d == 10).float().mean()) - p * (1 - p) ** 10) < 0.003


def test_depleted_tiles_regrow_at_their_rate(sandbox):
    sb = sandbox(respawn_foliage=0.1)
    cells = [(sb.c - 4 + i, sb.c - 4 + j) for i in range(9) for j in range(9)]
    for r, c in cells:
        sb.s.material[0, r, c] = C.FOLIAGE
    sb.set_tile(*cells[0], C.FOLIAGE)
    # Deplete them all by hand through the harvest tables, as a harvest would.
    s = sb.s
    regrown = []
    idx = torch.tensor([r * sb.cfg.map_size + c for r, c in cells])
    for trial in range(30):
        s.material.view(-1)[idx] = C.SCRUB
        delay = respawn_delay(torch.full((len(cells),), float(torch.log1p(torch.tensor(-0.1)))), sb.world.gen)
        slot = s.res_slot[0, idx].long()
        s.res_due[0, slot] = (s.tick[0] + delay.long()).to(torch.int16)
        sb.step()
        regrown.append(float((s.material.view(-1)[idx] == C.FOLIAGE).float().mean()))
    # P(regrown at the end of the same tick) = p = 0.1.
    assert abs(sum(regrown) / len(regrown) - 0.1) < 0.04


def test_level_thresholds():
    cfg = make_config()
    th = torch.tensor(cfg.level_thresholds, dtype=torch.int32)
    exp = torch.tensor([0, 89, 90, 216, 217, 373, 1736, 1737, 99999], dtype=torch.int32)
    assert levels_for(exp, th).tolist() == [1, 1, 2, 2, 3, 4, 9, 10, 10]


def test_level_up_event(sandbox):
    sb = sandbox(respawn_herb=1.0)
    sb.set_tile(sb.c, sb.c, C.HERB)
    p = sb.player(0, sb.c, sb.c, exp=torch.tensor([0, 0, 0, 0, 80, 0, 0, 0], dtype=torch.int32))
    sb.step()
    assert sb.s.level[0, p, C.HERBALISM] == 2
    assert sb.s.events[0, p, C.EVENT["LEVEL_UP"]] == 1


def test_damage_numbers():
    cfg = make_config()
    no, yes = torch.tensor(False), torch.tensor(True)
    dmg = lambda off, de, w: int(damage_of(cfg, torch.tensor(off), torch.tensor(de), w))  # noqa
    assert dmg(25, 5, no) == 18  # fresh player vs fresh player
    assert dmg(25, 5, yes) == 28  # int(1.5 * 25 * 15 / 20)
    # Level-5 melee player vs level-3 NPC (defense 5*3 + 15*lvl with lvl = 2.5 -> 37).
    assert dmg(20 + 5 * 5, 15 + 37, no) == int(45 * 15 / (15 + 52))
    # Level-9 NPC (offense skill 20+45 + equipment 15+15*8.5) vs fresh player: a one-shot.
    assert dmg(65 + int(15 + 15 * 8.5), 5, no) >= 100


def test_attack_in_combat_damage_and_xp(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c, health=100)
    b = sb.player(1, sb.c, sb.c + 3, health=100)
    sb.step(target={a: b}, style={a: C.MAGE})
    assert sb.s.health[0, b] == 100 - 18
    assert sb.s.damage[0, b] == 18 and sb.s.attacker_id[0, b] == 1
    assert sb.s.exp[0, a, C.MAGE] == 3
    assert sb.s.events[0, a, C.EVENT["SCORE_HIT"]] == 1
    assert sb.s.latest_combat_tick[0, a] == sb.s.latest_combat_tick[0, b] == 1


def test_attack_out_of_reach_does_nothing(sandbox):
    sb = sandbox(vision=7)
    a = sb.player(0, sb.c, sb.c)
    b = sb.player(1, sb.c + 4, sb.c)
    sb.step(target={a: b})
    assert sb.s.health[0, b] == 100 and sb.s.exp[0, a, C.MELEE] == 0


def test_weakness(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c)
    b = sb.player(1, sb.c + 1, sb.c, exp=torch.tensor([0, 50, 0, 0, 0, 0, 0, 0], dtype=torch.int32))
    assert dominant_style(sb.s.exp)[0, b] == C.RANGE
    assert dominant_style(sb.s.exp)[0, a] == -1  # all equal: no weakness
    sb.step(target={a: b}, style={a: C.MELEE})  # Melee beats Range
    assert sb.s.health[0, b] == 100 - 28


def test_spawn_immunity(sandbox):
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0)
    a = sb.player(0, sb.c, sb.c, age=5)
    b = sb.player(1, sb.c + 1, sb.c, age=5)
    obs = sb.world.observe()
    row_b = (sb.world.observer.slots[0, a] == b).nonzero()[0, 0]
    assert not obs["target_mask"][0, a, row_b]  # players masked while young
    assert obs["target_mask"][0, a, sb.K]  # so the no-op is the only option
    sb.step(target={a: b})
    assert sb.s.health[0, b] == 100
    # An NPC is a valid target at any age, and then the no-op is masked out.
    n = sb.npc(0, sb.c, sb.c + 2, C.PASSIVE)
    obs = sb.world.observe()
    row_n = (sb.world.observer.slots[0, a] == n).nonzero()[0, 0]
    assert obs["target_mask"][0, a, row_n] and not obs["target_mask"][0, a, sb.K]


def test_npc_type_and_level_by_danger():
    cfg = make_config()
    r = torch.tensor([16, 80, 50, 68, 143, 40])
    c = torch.tensor([80, 80, 80, 80, 80, 80])
    d = danger(cfg, r, c)
    assert npc_kind(cfg, d).tolist() == [C.PASSIVE, C.AGGRESSIVE, C.NEUTRAL, C.AGGRESSIVE,
                                         C.PASSIVE, C.PASSIVE]
    level = (d * 9 + 1).int()
    assert level.tolist()[:3] == [1, 9, 5]


def test_spawned_npcs_follow_danger():
    from nmmozoo.env import World
    # NPCs fighting NPCs (npc_attack_npcs) would hand the dead's gold to their killers.
    cfg = make_config(num_agents=8, npc_attack_npcs=False)
    w = World(cfg, num_maps=4, seed=1)
    w.reset()
    for _ in range(10):
        w.step(w.noop_actions())
    s, P = w.state, cfg.num_agents
    alive = s.alive[:, P:]
    assert alive.sum() > 4 * 64  # refilled by 25 tries per tick
    d = danger(cfg, s.spawn_row[:, P:], s.spawn_col[:, P:])[alive]
    assert (npc_kind(cfg, d) == s.npc_type[:, P:][alive]).all()
    assert ((d * 9 + 1).int() == s.npc_level[:, P:][alive]).all()
    assert (s.gold[:, P:][alive] == s.npc_level[:, P:][alive]).all()
    assert (s.ent_id[:, P:][alive] < 0).all()


def test_aggressive_npc_chases_and_attacks(sandbox):
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0)
    p = sb.player(0, sb.c, sb.c - 6, health=100)
    n = sb.npc(0, sb.c, sb.c, C.AGGRESSIVE, level=1)
    dists = []
    for _ in range(4):
        sb.step()
        dists.append(abs(int(sb.s.col[0, n]) - int(sb.s.col[0, p])))
    assert dists[0] == 5 and dists[1] == 4  # one step closer per tick
    assert sb.s.health[0, p] < 100  # attacked once within reach 3
    assert sb.s.attacker_id[0, p] == -1 or sb.s.damage_taken[0, p] > 0


def test_passive_npc_does_not_attack(sandbox):
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0)
    p = sb.player(0, sb.c, sb.c - 1)
    sb.npc(0, sb.c, sb.c, C.PASSIVE)
    for _ in range(5):
        sb.step()
    assert sb.s.damage_taken[0, p] == 0


def test_neutral_npc_retaliates(sandbox):
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0)
    p = sb.player(0, sb.c, sb.c - 2)
    n = sb.npc(0, sb.c, sb.c, C.NEUTRAL, level=1)
    sb.step()
    assert sb.s.damage_taken[0, p] == 0
    sb.step(target={p: n})
    sb.step()
    assert sb.s.damage_taken[0, p] > 0


def test_death_and_removal(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c, health=10, food=0, water=0)
    b = sb.player(1, sb.c + 1, sb.c)
    sb.step()
    assert not sb.s.alive[0, a] and sb.world.reward[0, a] == -1 and sb.s.died_tick[0, a] == 1
    obs = sb.world.observe()
    assert not obs["mask"][0, a]
    assert (sb.world.observer.slots[0, b] != a).all()  # no longer seen
    assert (sb.world.observer.slots[0, a] == sb.cfg.num_entities).all()  # sees nothing
    sb.step()
    assert sb.world.reward[0, a] == 0  # -1 only once


def test_kill_credit(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c)
    b = sb.player(1, sb.c + 1, sb.c, health=5, food=50, water=50)  # no regen, no starving
    sb.step(target={a: b})
    assert not sb.s.alive[0, b]
    assert sb.s.events[0, a, C.EVENT["PLAYER_KILL"]] == 1


def test_movement_passability_and_sharing(sandbox):
    sb = sandbox()
    sb.set_tile(sb.c - 1, sb.c, C.STONE)
    a = sb.player(0, sb.c, sb.c)
    b = sb.player(1, sb.c, sb.c + 1)
    obs = sb.world.observe()
    assert obs["move_mask"][0, a].tolist() == [False, True, True, True, True]
    sb.step(move={a: 0, b: 3})  # north into stone fails; b moves west onto a's tile
    assert (int(sb.s.row[0, a]), int(sb.s.col[0, a])) == (sb.c, sb.c)
    assert (int(sb.s.row[0, b]), int(sb.s.col[0, b])) == (sb.c, sb.c)


def test_go_farthest(sandbox):
    sb = sandbox()
    edge = sb.cfg.center - sb.cfg.radius
    a = sb.player(0, edge, sb.c)
    sb.step(move={a: 1})
    assert sb.s.events[0, a, C.EVENT["GO_FARTHEST"]] == 1 and sb.s.farthest[0, a] == 1
    sb.step(move={a: 0})
    assert sb.s.events[0, a, C.EVENT["GO_FARTHEST"]] == 0
