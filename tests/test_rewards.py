"""Reward terms with the public numbers, on constructed values and on scripted env ticks; the
env's ``unique_events`` count (2.0's distinct event-log rows) and Yao Feng's spawn-immunity
redraw."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from tensordict import TensorDict

from nmmozoo.env import STAT_NAMES, World, make_config
from nmmozoo.env import constants as C
from nmmozoo.env import eventlog
from nmmozoo.env.config import ConfigError
from nmmozoo.env.state import WorldState
from nmmozoo.nn.registry import SpecError
from nmmozoo.recipe import load_recipe
from nmmozoo.rewards import RewardShaping

S = {n: i for i, n in enumerate(STAT_NAMES)}


def term(name, **args):
    """The registered term ``name`` built as a recipe would."""
    return RewardShaping([{"name": name, "weight": 1.0, **args}]).terms[0][0]


def obs(n=1, alive=True, events=None, **stats):
    """A constructed observation of ``n`` agents: stats by name, events by name."""
    st = torch.zeros(1, n, len(STAT_NAMES), dtype=torch.int32)
    for k, v in stats.items():
        st[0, :, S[k]] = torch.as_tensor(v, dtype=torch.int32)
    ev = torch.zeros(1, n, C.NUM_EVENTS, dtype=torch.int32)
    for k, v in (events or {}).items():
        ev[0, :, C.EVENT[k]] = torch.as_tensor(v, dtype=torch.int32)
    mask = torch.as_tensor(alive).expand(1, n).clone()
    return TensorDict({"agents": TensorDict({"stats": st, "events": ev, "mask": mask}, [1, n])}, [1])


def world_obs(world):
    """The observation the reward terms read, from a (sandbox) world."""
    s, P = world.state, world.cfg.num_agents
    return TensorDict({"agents": TensorDict({
        "stats": world.stats(), "events": s.events.clone(), "mask": s.alive[:, :P].clone()},
        [s.num_maps, P])}, [s.num_maps])


NO_MOVE = torch.zeros(1, 1, dtype=torch.long)


# --- unique event-log rows (the env's count) ---------------------------------------------------
def test_unique_events_harvest_same_row_once_new_level_again(sandbox):
    sb = sandbox(respawn_herb=1.0)  # the herb regrows at the end of every tick
    sb.set_tile(sb.c, sb.c, C.HERB)
    p = sb.player(0, sb.c, sb.c)
    counts = []
    for _ in range(2):
        sb.step()
        counts.append(int(sb.s.unique_events[0, p]))
    assert int(sb.s.event_totals[0, p, C.EVENT["HARVEST_ITEM"]]) == 2
    # GO_FARTHEST (spawned inside the edge: a new best progress) + HARVEST (Potion, 1); the
    # second Potion level 1 is the same row.
    assert counts == [2, 2]
    # Gloves of level 1 held: the Potion is level 2, a new (HARVEST, Potion, level) row.
    sb.s.inv_type[0, p, 11], sb.s.inv_level[0, p, 11], sb.s.inv_equipped[0, p, 11] = C.GLOVES, 1, True
    sb.step()
    assert (sb.s.inv_type[0, p] == C.POTION).sum() == 3
    assert sb.s.inv_level[0, p, :3].tolist() == [1, 1, 2]
    # + (HARVEST, Potion, 2) and, 90 herbalism XP reached, + (LEVEL_UP, herbalism, 2).
    assert int(sb.s.level[0, p, C.HERBALISM]) == 2
    assert int(sb.s.unique_events[0, p]) == 4
    sb.step()  # Potion 2 again, herbalism still 2: nothing new
    assert int(sb.s.unique_events[0, p]) == 4
    # The same count in the stats the rewards read.
    assert int(sb.world.stats()[0, p, S["unique_events"]]) == 4


def test_unique_events_every_kill_style_once_and_level_rows(sandbox):
    sb = sandbox(num_npcs=2, npc_spawn_attempts=0)
    p = sb.player(0, sb.c, sb.c)
    sb.s.inv_type[0, p] = C.RATION  # a full inventory: NPC drops find no room (no LOOT rows)
    sb.s.inv_level[0, p] = 1
    sb.s.exp[0, p, C.MELEE] = 88  # one hit (3 XP) reaches melee level 2
    a = sb.npc(0, sb.c, sb.c + 1, C.PASSIVE)
    b = sb.npc(1, sb.c + 1, sb.c, C.PASSIVE)
    sb.s.health[0, a] = sb.s.health[0, b] = 1
    sb.step(target={p: a}, style={p: C.MELEE})
    assert not sb.s.alive[0, a]
    # GO_FARTHEST + SCORE_HIT (melee) + PLAYER_KILL (victim a) + LEVEL_UP (melee, 2)
    assert int(sb.s.unique_events[0, p]) == 4
    sb.step(target={p: b}, style={p: C.MELEE})
    assert not sb.s.alive[0, b]
    # The second kill is a new row (another victim); the second melee hit is not.
    assert int(sb.s.unique_events[0, p]) == 5
    assert int(sb.s.event_totals[0, p, C.EVENT["PLAYER_KILL"]]) == 2


def test_unique_events_counting_only_events_once(sandbox):
    sb = sandbox()
    sb.set_tile(sb.c - 1, sb.c, C.WATER)
    p = sb.player(0, sb.c, sb.c, water=20)
    sb.step()
    first = int(sb.s.unique_events[0, p])
    assert first == 2  # DRINK_WATER + GO_FARTHEST
    sb.s.water[0, p] = 20
    sb.step()
    assert int(sb.s.events[0, p, C.EVENT["DRINK_WATER"]]) == 1
    assert int(sb.s.unique_events[0, p]) == first  # all of its attributes are 0 in 2.0: one row


def test_earn_gold_rows_once_per_amount_per_tick():
    cfg = make_config("tiny")
    s = WorldState.empty(cfg, 1, "cpu")
    z = torch.zeros(3, dtype=torch.long)
    eventlog.earnings(s, cfg, [(z, torch.tensor([0, 0, 1]), torch.tensor([5, 5, 5])),
                               (z[:1], torch.tensor([0]), torch.tensor([7])), None])
    assert s.unique_events[0, :2].tolist() == [2, 1]  # agent 0: amounts 5 and 7; agent 1: 5


def test_unique_events_reset_with_the_map():
    w = World(make_config("tiny"), num_maps=2, seed=0)
    w.reset()
    w.state.unique_events[:] = 9
    w.state.seen_rows[:] = True
    w.reset(torch.tensor([True, False]))
    assert (w.state.unique_events[0] == 0).all() and not w.state.seen_rows[0].any()
    assert (w.state.unique_events[1] == 9).all() and w.state.seen_rows[1].all()


# --- explore -------------------------------------------------------------------------------------
def test_explore_pays_new_rows_clipped_at_3():
    t = term("explore")
    before = obs(4, unique_events=[3, 3, 3, 3])
    now = obs(4, unique_events=[3, 4, 5, 10])
    assert t(now, before, NO_MOVE, {}).tolist() == [[0.0, 1.0, 2.0, 3.0]]
    assert term("explore", cap=1)(now, before, NO_MOVE, {}).tolist() == [[0.0, 1.0, 1.0, 1.0]]
    with pytest.raises(SpecError, match=r"rewards\[0\]: cap: expected an integer ≥ 0"):
        term("explore", cap=-1)


def test_explore_on_env_ticks_second_kill_pays_repeat_row_does_not(sandbox):
    sb = sandbox(num_npcs=2, npc_spawn_attempts=0)
    p = sb.player(0, sb.c, sb.c)
    sb.s.inv_type[0, p] = C.RATION
    a = sb.npc(0, sb.c, sb.c + 1, C.PASSIVE)
    b = sb.npc(1, sb.c + 1, sb.c, C.PASSIVE)
    sb.s.health[0, a] = sb.s.health[0, b] = 1
    t = term("explore")
    paid = []
    for target in (a, b, None):
        before = world_obs(sb.world)
        sb.step(target={p: target} if target is not None else None, style={p: C.MELEE})
        paid.append(float(t(world_obs(sb.world), before, NO_MOVE, {})[0, p]))
    # tick 1: GO_FARTHEST, SCORE_HIT melee, kill; tick 2: kill only; tick 3: nothing new.
    assert paid == [3.0, 1.0, 0.0]


# --- meander -------------------------------------------------------------------------------------
def public_entropy(moves):
    n = len(moves)
    return -sum(c / n * math.log2(c / n) for c in Counter(moves).values())


def test_meander_log2_entropy_after_five_moves():
    t, mem = term("meander"), {}
    now = before = obs(1)
    moves = [0, 1, 2, 3, 4, 0, 1, 2, 2, 2]
    got = [float(t(now, before, torch.tensor([[m]]), mem)) for m in moves]
    assert got[:5] == [0.0] * 5  # paid only once more than 5 moves were recorded
    for k in range(5, len(moves)):
        assert got[k] == pytest.approx(public_entropy(moves[max(0, k - 7):k + 1]) - 1, abs=1e-6)
    assert got[7] == pytest.approx(1.25, abs=1e-6)  # 0,1,2,3,4,0,1,2: H = 2.25 bits
    assert got[5] == pytest.approx(math.log2(6) * 4 / 6 + math.log2(3) / 3 - 1, abs=1e-6)
    mem2 = {}
    stays = [float(t(now, before, torch.tensor([[4]]), mem2)) for _ in range(8)]
    assert stays[5:] == [-1.0, -1.0, -1.0]  # standing still (stay is a move choice): H = 0


# --- heal ----------------------------------------------------------------------------------------
def test_heal_pays_only_for_regeneration(sandbox):
    sb = sandbox()
    regen = sb.player(0, sb.c, sb.c, health=50, food=90, water=90)
    full = sb.player(1, sb.c + 2, sb.c, health=100, food=90, water=90)
    potion = sb.player(2, sb.c - 2, sb.c, health=50, food=40, water=40)
    sb.s.inv_type[0, potion, 0], sb.s.inv_level[0, potion, 0] = C.POTION, 1
    t = term("heal")
    before = world_obs(sb.world)
    sb.step(use_item={potion: 0})
    now = world_obs(sb.world)
    assert sb.s.health[0, potion] > 50  # the potion healed it...
    who = [regen, full, potion]
    assert sb.s.health_restore[0, who].tolist() == [10, 0, 0]
    assert t(now, before, NO_MOVE, {})[0, who].tolist() == [1.0, 0.0, 0.0]  # ...but only regen pays
    dead = obs(1, alive=False, health_restore=10)
    assert float(t(dead, obs(1), NO_MOVE, {})) == 0.0


# --- Saidinesh ------------------------------------------------------------------------------------
def test_saidinesh_level_tiers_skills_and_once_per_tick():
    t = term("level_up", skills=["melee", "range", "mage", "fishing"], tier_level=5, high=2.0)
    before = obs(5, melee_level=[1, 5, 1, 1, 1], fishing_level=[1, 1, 1, 6, 1], herbalism_level=1)
    now = obs(5, melee_level=[2, 6, 2, 1, 1], fishing_level=[1, 1, 2, 7, 1],
              herbalism_level=[1, 1, 1, 1, 2])
    # melee 1→2: 0.01; melee 5→6: 0.02; melee and fishing at once: paid once; fishing 6→7:
    # 0.02; herbalism is not one of the four skills.
    assert t(now, before, NO_MOVE, {}).tolist() == [[1.0, 2.0, 1.0, 2.0, 0.0]]
    with pytest.raises(SpecError, match=r"skills: expected a list of skill names"):
        term("level_up", skills=["cooking"])


def test_saidinesh_player_kill_harvest_once_and_recipe():
    kill = term("player_kill")
    now = obs(3, events={"PLAYER_KILL": [2, 1, 3], "NPC_KILL": [1, 1, 0]})
    assert kill(now, obs(3), NO_MOVE, {}).tolist() == [[1.0, 0.0, 1.0]]  # NPC kills do not pay
    harvest = term("event", event="HARVEST_ITEM", once=True, alive_only=True)
    now = obs(2, alive=torch.tensor([True, False]), events={"HARVEST_ITEM": [2, 1]})
    assert harvest(now, obs(2), NO_MOVE, {}).tolist() == [[1.0, 0.0]]
    r = load_recipe("saidinesh")
    weights = {(n["name"], n.get("event")): n["weight"] for n in r["rewards"]}
    assert weights == {("heal", None): 0.03, ("meander", None): 0.02, ("explore", None): 0.01,
                       ("player_kill", None): 0.00056, ("level_up", None): 0.01,
                       ("event", "HARVEST_ITEM"): 0.01}
    assert r["env"]["num_npcs"] == 256 and r["env"]["early_stop_agents"] == 8
    assert r["env"]["resilient_fraction"] == 0.2 and r["env"]["map_pool_size"] == 128
    assert r["ppo"]["epochs"] == 3 and r["ppo"]["total_steps"] == 12_000_000


# --- Yao Feng ------------------------------------------------------------------------------------
def test_yaofeng_reward_exact():
    shaping = RewardShaping(load_recipe("yaofeng")["rewards"])
    before = obs(2, health=[80, 80], max_exp=[100, 100], gold=[3, 3], equip_defense=[0, 0])
    now = obs(2, alive=torch.tensor([True, False]), health=[70, 0], max_exp=[145, 145],
              gold=[10, 10], equip_defense=[90, 90])
    bonus = sum(w * t(now, before, NO_MOVE, {}) for t, w in shaping.terms)
    want = 0.1 * (0.03 * -10 + 0.002 * 45 + 0.04 * (90 / 3) / 15 + 0.001 * 7)
    assert float(bonus[0, 0]) == pytest.approx(want, rel=1e-6)
    assert float(bonus[0, 1]) == 0.0  # nothing on the tick the agent dies (public: not in realm.players)
    names = {n["name"] for n in load_recipe("yaofeng")["rewards"]}
    assert "damage_dealt" not in names  # public weight 0.0


def test_yaofeng_stats_max_exp_and_equipment_defense(sandbox):
    sb = sandbox()
    p = sb.player(0, sb.c, sb.c)
    sb.s.exp[0, p] = torch.tensor([10, 0, 0, 200, 0, 0, 0, 5], dtype=torch.int32)
    sb.s.inv_type[0, p, :2] = torch.tensor([C.HAT, C.TOP], dtype=torch.int32)
    sb.s.inv_level[0, p, :2] = 1
    sb.step(use_item={p: 0})
    sb.step(use_item={p: 1})
    st = sb.world.stats()[0, p]
    assert int(st[S["max_exp"]]) == 200  # the highest skill's XP, not the sum
    assert int(st[S["equip_defense"]]) == 2 * 3 * 10  # hat + top level 1: 10 per style each


def test_spawn_immunity_redraw_after_early_stop():
    cfg = make_config("tiny", early_stop_agents=4, spawn_immunity_redraw=True)
    w = World(cfg, num_maps=64, seed=0)
    w.reset()
    assert (w.state.immunity == 20).all()
    w.state.alive[:32, 2:cfg.num_agents] = False  # maps 0..31: 2 alive (early stop); 32..: all alive
    w.state.done[:] = True
    w.reset()
    drawn, kept = w.state.immunity[:32], w.state.immunity[32:]
    assert (kept == 20).all()  # ended with many alive (horizon): the value in play stays
    assert ((drawn >= 0) & (drawn < 20)).all() and len(set(drawn.tolist())) > 5
    # The drawn value is the one combat and the target mask use.
    assert make_config("tiny").spawn_immunity_redraw is False
    w2 = World(make_config("tiny", early_stop_agents=4), num_maps=4, seed=0)
    w2.reset()
    w2.state.alive[:, 2:16] = False
    w2.state.done[:] = True
    w2.reset()
    assert (w2.state.immunity == 20).all()  # off: always spawn_immunity
    with pytest.raises(ConfigError, match="spawn_immunity"):
        make_config("tiny", spawn_immunity=0, spawn_immunity_redraw=True)
    with pytest.raises(ConfigError, match="spawn_immunity_redraw"):
        make_config("tiny", spawn_immunity_redraw=1)


def test_spawn_immunity_in_play_gates_attacks(sandbox):
    sb = sandbox()
    a = sb.player(0, sb.c, sb.c, age=5)
    b = sb.player(1, sb.c + 1, sb.c, age=5)
    sb.s.immunity[0] = 3  # a redrawn value below both ages
    sb.step(target={a: b})
    assert sb.s.health[0, b] < 100


def test_mori_and_recipes_use_public_terms():
    mori = {n["name"]: n["weight"] for n in load_recipe("mori")["rewards"]}
    assert mori == {"heal": 0.02, "meander": 0.01, "explore": 0.5, "death": 0.02}
    takeru = load_recipe("takeru")
    assert [n["name"] for n in takeru["rewards"]] == ["explore"] and takeru["env"]["num_maps"] == 6
    for name in ("baseline", "jimyhzhu"):
        r = load_recipe(name)
        assert {n["name"]: n["weight"] for n in r["rewards"]} == {"heal": 0.03, "meander": 0.02,
                                                                  "explore": 0.01}
        assert (r["env"]["num_maps"], r["env"]["map_pool_size"], r["env"]["num_npcs"],
                r["env"]["early_stop_agents"], r["env"]["resilient_fraction"]) == (6, 128, 256, 8, 0.2)
