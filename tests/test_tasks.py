"""The task system: each predicate on constructed states, combinators, reward kinds,
assignment, the held-out set and its score, the shipped embeddings, and a scripted policy
that completes survival and harvest tasks in the env."""

from __future__ import annotations

import pytest
import torch

import nmmozoo
from nmmozoo.env import constants as C
from nmmozoo.tasks import (CATEGORIES, PREDICATES, PredicateError, TaskEngine, TaskError,
                           from_dict, heldout_tasks, load_tasks, score, task, training_curriculum)
from nmmozoo.tasks.engine import Context


def progress(sb, spec, slot=0):
    """Progress of ``spec`` for player ``slot`` of a sandbox, on its current state."""
    eng = TaskEngine(sb.cfg, [spec], 1, "cpu", schedule=True)
    eng.assign(torch.tensor([0]), sb.world.gen)
    sb.world.observe()
    return round(float(eng._evaluate(Context(sb.world, eng.team))[0, slot]), 5)


def test_every_base_predicate_is_registered():
    names = {"Success", "TickGE", "StayAlive", "AllDead", "CanSeeTile", "CanSeeAgent",
             "CanSeeGroup", "OccupyTile", "DistanceTraveled", "AllMembersWithinRange",
             "AttainSkill", "GainExperience", "CountEvent", "ScoreHit", "DefeatEntity",
             "HoardGold", "EarnGold", "SpendGold", "MakeProfit", "InventorySpaceGE", "OwnItem",
             "EquipItem", "FullyArmed", "ConsumeItem", "HarvestItem", "ListItem", "BuyItem"}
    assert names <= set(PREDICATES)


def test_success_tick_alive(sandbox):
    sb = sandbox()
    sb.player(0, sb.c, sb.c)
    assert progress(sb, task("Success")) == 1
    sb.s.tick[0] = 25
    assert progress(sb, task("TickGE", num_tick=100)) == 0.25
    assert progress(sb, task("StayAlive")) == 1


def test_all_dead(sandbox):
    sb = sandbox()
    sb.player(0, sb.c, sb.c)
    assert progress(sb, task("AllDead", target="others")) == 1  # everyone else is gone
    sb.player(1, sb.c + 5, sb.c)
    assert progress(sb, task("AllDead", target="others")) == 0


def test_can_see(sandbox):
    sb = sandbox()
    sb.player(0, sb.c, sb.c)
    sb.set_tile(sb.c + 3, sb.c - 2, C.ORE)
    assert progress(sb, task("CanSeeTile", tile_type="ore")) == 1
    assert progress(sb, task("CanSeeTile", tile_type="crystal")) == 0
    assert progress(sb, task("CanSeeGroup", target="others")) == 0
    sb.player(5, sb.c + 6, sb.c)
    assert progress(sb, task("CanSeeAgent", target=6)) == 1
    assert progress(sb, task("CanSeeAgent", target=7)) == 0
    assert progress(sb, task("CanSeeGroup", target="others")) == 1


def test_occupy_and_distance(sandbox):
    sb = sandbox()
    sb.player(0, sb.c, sb.c, spawn_row=sb.c - 4, spawn_col=sb.c)
    assert progress(sb, task("OccupyTile", row=sb.c, col=sb.c)) == 1
    assert progress(sb, task("OccupyTile", row=sb.c, col=sb.c + 1)) == 0
    assert progress(sb, task("DistanceTraveled", dist=8)) == 0.5


def test_team_subject_and_range(sandbox):
    sb = sandbox(team_size=4)
    for i in range(4):
        sb.player(i, sb.c, sb.c + i)
    assert progress(sb, task("AllMembersWithinRange", dist=3, subject="team")) == 1
    assert progress(sb, task("AllMembersWithinRange", dist=2, subject="team")) == 0
    sb.s.event_totals[0, 0, C.EVENT["EAT_FOOD"]] = 2
    sb.s.event_totals[0, 3, C.EVENT["EAT_FOOD"]] = 4
    assert progress(sb, task("CountEvent", event="EAT_FOOD", N=10)) == 0.2
    assert progress(sb, task("CountEvent", event="EAT_FOOD", N=10, subject="team")) == 0.6


def test_skills(sandbox):
    sb = sandbox(team_size=2)
    sb.player(0, sb.c, sb.c)
    sb.player(1, sb.c, sb.c)
    sb.s.level[0, 0, C.CARVING] = 5
    sb.s.exp[0, 0, C.CARVING] = 600
    assert progress(sb, task("AttainSkill", skill="carving", level=5)) == 1
    assert progress(sb, task("AttainSkill", skill="carving", level=6)) == 0
    assert progress(sb, task("AttainSkill", skill="carving", level=5, num_agent=2, subject="team")) == 0.5
    assert progress(sb, task("GainExperience", skill="carving", experience=500)) == 1


def test_combat_counters(sandbox):
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0)
    a = sb.player(0, sb.c, sb.c)
    n = sb.npc(0, sb.c + 1, sb.c, C.PASSIVE, level=3)
    sb.s.health[0, n] = 1
    sb.step(target={a: n}, style={a: C.RANGE})
    assert progress(sb, task("ScoreHit", combat_style="range", N=2)) == 0.5
    assert progress(sb, task("ScoreHit", combat_style="melee", N=2)) == 0
    assert progress(sb, task("DefeatEntity", agent_type="npc", level=3)) == 1
    assert progress(sb, task("DefeatEntity", agent_type="npc", level=4)) == 0
    assert progress(sb, task("DefeatEntity", agent_type="player")) == 0
    assert progress(sb, task("CountEvent", event="PLAYER_KILL", N=1)) == 1


def test_kills_of_npcs_above_the_item_levels_count(sandbox):
    """The kill counter's level axis reaches the highest NPC level, not the item levels."""
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0, npc_max_level=15)
    a = sb.player(0, sb.c, sb.c)
    n = sb.npc(0, sb.c + 1, sb.c, C.PASSIVE, level=14)
    sb.s.health[0, n] = 1
    sb.s.equip_defense[0, n] = 0  # the hit must land
    sb.step(target={a: n}, style={a: C.RANGE})
    assert progress(sb, task("DefeatEntity", agent_type="npc", level=12)) == 1
    assert progress(sb, task("DefeatEntity", agent_type="npc", level=15)) == 0


def test_gold_predicates(sandbox):
    sb = sandbox()
    seller = sb.player(0, sb.c, sb.c, gold=10)
    buyer = sb.player(1, sb.c + 2, sb.c, gold=50)
    from tests.test_items import give  # noqa: PLC0415
    give(sb, seller, C.HAT, price=30)
    sb.step(buy_item={buyer: 0})
    assert progress(sb, task("HoardGold", amount=80), seller) == 0.5
    assert progress(sb, task("EarnGold", amount=60), seller) == 0.5
    assert progress(sb, task("MakeProfit", amount=30), seller) == 1
    assert progress(sb, task("SpendGold", amount=30), buyer) == 1
    assert progress(sb, task("MakeProfit", amount=1), buyer) == 0
    assert progress(sb, task("BuyItem", item="Hat", quantity=1), buyer) == 1
    assert progress(sb, task("BuyItem", item="Top", quantity=1), buyer) == 0


def test_item_predicates(sandbox):
    sb = sandbox(respawn_ore=0.0)
    from tests.test_items import give  # noqa: PLC0415
    a = sb.player(0, sb.c, sb.c)
    assert progress(sb, task("InventorySpaceGE", space=12)) == 1
    give(sb, a, C.ARROW, level=3, qty=4)
    give(sb, a, C.HAT, level=2, equipped=True)
    assert progress(sb, task("InventorySpaceGE", space=11)) == 0
    assert progress(sb, task("OwnItem", item="Arrow", level=3, quantity=8)) == 0.5
    assert progress(sb, task("OwnItem", item="Arrow", level=4, quantity=1)) == 0
    assert progress(sb, task("EquipItem", item="Hat", level=2)) == 1
    assert progress(sb, task("EquipItem", item="Hat", level=3)) == 0
    assert progress(sb, task("FullyArmed", combat_style="range", level=1)) == 0
    for typ in (C.TOP, C.BOTTOM, C.BOW):
        give(sb, a, typ, equipped=True)
    j = int((sb.s.inv_type[0, a] == C.ARROW).int().argmax())
    sb.s.inv_equipped[0, a, j] = True
    assert progress(sb, task("FullyArmed", combat_style="range", level=1)) == 1
    assert progress(sb, task("FullyArmed", combat_style="range", level=2)) == 0
    sb.set_tile(sb.c, sb.c, C.ORE)
    sb.step()
    assert progress(sb, task("HarvestItem", item="Whetstone", quantity=1)) == 1
    ration = give(sb, a, C.RATION)
    sb.step(use_item={a: ration})
    assert progress(sb, task("ConsumeItem", item="Ration", quantity=2)) == 0.5
    potion = give(sb, a, C.POTION)
    sb.step(sell_item={a: potion}, sell_price={a: 4})
    assert progress(sb, task("ListItem", item="Potion", quantity=1)) == 1


def test_combinators(sandbox):
    sb = sandbox()
    sb.player(0, sb.c, sb.c, gold=5)
    half = task("HoardGold", amount=10)
    full = task("Success")
    none = task("OccupyTile", row=1, col=1)
    assert progress(sb, task.all_of(half, full)) == 0.5
    assert progress(sb, task.any_of(half, none)) == 0.5
    assert progress(sb, task.all_of(full, task.negate(none))) == 1
    assert progress(sb, task.negate(half)) == 0.5
    with pytest.raises(TaskError):
        task.all_of(task.any_of(half, full), none)


def test_reward_kinds():
    def run(spec, ticks):
        env = nmmozoo.make_env("tiny", num_maps=1, seed=0, num_npcs=0)
        env.reset()
        w = env.world
        from nmmozoo.tasks.engine import TaskEngine as TE
        w.tasks = TE(env.config, [spec], 1, "cpu", schedule=True)
        w.tasks.assign(torch.tensor([0]), w.gen)
        total = torch.zeros(16)
        for _ in range(ticks):
            w.step(w.noop_actions())
            total += w.reward[0].clamp_min(0)  # no deaths this early: the task reward
        return total, w.tasks
    # progress: pays the increase, at most 1 in all.
    total, eng = run(task("TickGE", num_tick=10), 15)
    assert torch.allclose(total, torch.ones(16)) and eng.completed.all()
    # ongoing: pays the progress every tick.
    total, eng = run(task("StayAlive", reward="ongoing"), 5)
    assert torch.allclose(total, torch.full((16,), 5.0))
    # hold: 1 once the predicate held for N ticks in a row.
    total, eng = run(task("Success", reward="hold", hold_ticks=3), 6)
    assert torch.allclose(total, torch.ones(16)) and (eng.completed_tick == 3).all()


def test_specs_from_yaml_and_errors(tmp_path):
    f = tmp_path / "tasks.yaml"
    f.write_text("- predicate: HarvestItem\n  args: {item: Arrow, level: 3, quantity: 20}\n"
                 "- all_of:\n  - {predicate: CountEvent, args: {event: EAT_FOOD, N: 5}}\n"
                 "  - {predicate: CountEvent, args: {event: DRINK_WATER, N: 5}}\n  weight: 3\n")
    specs = load_tasks(f)
    assert specs[0] == task("HarvestItem", item="Arrow", level=3, quantity=20, name="tasks.yaml[0]")
    assert specs[1].combine == "and" and specs[1].weight == 3
    with pytest.raises(PredicateError, match="HarvestItem.*item='Sword'"):
        from_dict({"predicate": "HarvestItem", "args": {"item": "Sword", "quantity": 1}})
    with pytest.raises(TaskError, match="unknown predicate 'Fly'"):
        from_dict({"predicate": "Fly"})
    with pytest.raises(PredicateError, match="missing argument 'N'"):
        task("CountEvent", event="EAT_FOOD")
    with pytest.raises(TaskError, match="does not exist"):
        load_tasks(tmp_path / "nope.yaml")
    env = nmmozoo.make_env("tiny", num_maps=1, tasks=str(f))
    assert len(env.world.tasks.specs) == 2


def test_curriculum_breadth_and_weights():
    cur = training_curriculum()
    assert 1200 <= len(cur) <= 1400
    preds = [s.clauses[0].predicate for s in cur]
    for p, n in (("OwnItem", 224), ("ListItem", 224), ("BuyItem", 224), ("AttainSkill", 56)):
        assert preds.count(p) == n
    scaffold = [s for s in cur if "scaffold" in s.tags]
    assert scaffold and all(s.weight == 100 for s in scaffold)
    held = {t.text() for t in heldout_tasks()}
    assert not held & {s.text() for s in cur}


def test_heldout_categories_and_score():
    tasks = heldout_tasks()
    assert len(tasks) == 63 and len({t.name for t in tasks}) == 63
    counts = {c: sum(t.category == c for t in tasks) for c in CATEGORIES}
    assert counts == {"survival": 1, "combat": 3, "exploration": 2, "skill": 8, "item": 44, "market": 5}
    assert score({})["total"] == 0
    assert score({t.name: 1.0 for t in tasks})["total"] == pytest.approx(100)
    s = score({"survive_1024": 1.0, "attain_melee_10": 1.0})
    assert s["survival"] == pytest.approx(100 / 6) and s["skill"] == pytest.approx(100 / 6 / 8)
    with pytest.raises(KeyError):
        score({"not_a_task": 1.0})


def test_schedule_tries_every_task_equally():
    env = nmmozoo.make_env("tiny", num_maps=4, tasks="heldout", seed=0)
    counts = torch.zeros(63, dtype=torch.long)
    for _ in range(63):
        env.reset()
        counts += torch.bincount(env.world.tasks.task_id.flatten(), minlength=63)
    assert counts.min() == counts.max()


def test_sampling_follows_weights():
    env = nmmozoo.make_env("competition2023", num_maps=8, seed=0)
    env.reset()
    tid = env.world.tasks.task_id.flatten()
    eat = {i for i, s in enumerate(env.world.tasks.specs) if "scaffold" in s.tags}
    share = sum(int(t) in eat for t in tid) / len(tid)
    w = env.world.tasks.weight
    expect = float(w[list(eat)].sum() / w.sum())
    assert abs(share - expect) < 0.05


def test_shipped_embeddings():
    from nmmozoo.tasks.embeddings import TaskEmbeddings
    emb = TaskEmbeddings()
    assert emb.dim == 384
    cur = training_curriculum()
    v = emb(cur)
    assert v.shape == (len(cur), emb.dim) and torch.isfinite(v).all()
    by = lambda spec: emb([spec])[0]  # noqa: E731
    cos = lambda a, b: float(torch.nn.functional.cosine_similarity(a, b, dim=0))  # noqa: E731
    h1 = by(task("HarvestItem", item="Arrow", level=1, quantity=3))
    h2 = by(task("HarvestItem", item="Runes", level=3, quantity=20))
    d1 = by(task("DefeatEntity", agent_type="npc", level=3, num_agent=3))
    g1 = by(task("HoardGold", amount=50))
    assert cos(h1, h2) > cos(h1, d1) + 0.1 and cos(h1, h2) > cos(h1, g1) + 0.1


def test_new_task_is_embedded_at_run_time():
    from nmmozoo.tasks.embeddings import TaskEmbeddings
    emb = TaskEmbeddings()
    n = emb.table.shape[0]
    new = task("HarvestItem", item="Arrow", level=7, quantity=13)
    v = emb([new])
    assert emb.table.shape[0] == n + 1 and v.shape == (1, emb.dim)
    known = emb([task("HarvestItem", item="Arrow", level=3, quantity=20)])
    assert float(torch.nn.functional.cosine_similarity(v, known)) > 0.8


def test_task_observation_in_env():
    """The task embedding each agent observes is its task's row of the table (the rewards:
    test_reward_kinds)."""
    env = nmmozoo.make_env("tiny", num_maps=2, seed=0)
    td = env.reset()
    emb = env.world.task_embeddings
    assert td["agents", "task"].shape == (2, 16, emb.shape[1])
    assert torch.equal(td["agents", "task"], emb[env.world.tasks.task_id])
    compact = nmmozoo.make_env("tiny", num_maps=2, seed=0, obs_mode="compact")
    assert compact.reset()["agents", "task_id"].shape == (2, 16)


def _scripted(td, cfg):
    """Walk toward water when thirsty, foliage when hungry, else onto ore/tree/crystal/herb."""
    tile = td["agents", "tile"].long()  # [B, P, 225, 3]
    stats = td["agents", "stats"]
    food, water = stats[..., 1], stats[..., 2]
    mat = tile[..., 2]
    w = cfg.window
    off = torch.arange(-cfg.vision, cfg.vision + 1)
    dr = off[:, None].expand(w, w).reshape(-1)
    dc = off[None, :].expand(w, w).reshape(-1)
    dist = (dr.abs() + dc.abs()).float()  # drinking needs a 4-neighbour: Manhattan
    want_water = water < 75
    want_food = ~want_water & (food < 75)
    res = (mat == C.ORE) | (mat == C.TREE) | (mat == C.CRYSTAL) | (mat == C.HERB)
    target = torch.where(want_water[..., None], mat == C.WATER,
                         torch.where(want_food[..., None], mat == C.FOLIAGE, res))
    score_ = torch.where(target, dist, 1e9)
    best = score_.argmin(-1)
    has = target.any(-1)
    ddr, ddc = dr[best], dc[best]
    close = torch.where(want_water, dist[best] <= 1, dist[best] == 0)
    vertical = torch.where(ddr < 0, 0, 1)
    horizontal = torch.where(ddc > 0, 2, 3)
    first = torch.where(ddr.abs() >= ddc.abs(), vertical, horizontal)
    second = torch.where(ddr.abs() >= ddc.abs(), torch.where(ddc != 0, horizontal, first),
                         torch.where(ddr != 0, vertical, first))
    mask = td["agents", "action_mask", "move"]
    allowed = lambda m: mask.gather(-1, m[..., None]).squeeze(-1)  # noqa: E731
    move = torch.where(allowed(first), first, second)
    move = torch.where(has & ~close, move, 4)
    # Blocked both ways? a random allowed move.
    ok = allowed(move)
    rnd = nmmozoo.env.sample_masked(mask)
    nmmozoo.env.random_actions(td)  # creates every head; all but move and targets reset below
    for head in td["agents", "action"].keys():  # everything else: no-op
        n = td["agents", "action_mask", head].shape[-1]
        td["agents", "action", head] = torch.full_like(move, 0 if head in ("attack_style",
                                                       "give_gold_amount", "sell_price") else n - 1)
    td["agents", "action", "move"] = torch.where(ok, move, rnd)
    # attack_target must be allowed: its no-op may be masked out when a target is near.
    td["agents", "action", "attack_target"] = nmmozoo.env.sample_masked(
        td["agents", "action_mask", "attack_target"])
    return td


def test_scripted_policy_completes_survival_and_harvest_tasks(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("- {predicate: CountEvent, args: {event: EAT_FOOD, N: 2}}\n"
                 "- {predicate: CountEvent, args: {event: DRINK_WATER, N: 2}}\n"
                 "- {predicate: CountEvent, args: {event: HARVEST_ITEM, N: 1}}\n"
                 "- {predicate: HarvestItem, args: {item: Whetstone, quantity: 1}}\n")

    def run(policy):
        torch.manual_seed(0)
        env = nmmozoo.make_env("tiny", num_maps=4, seed=1, tasks=str(f), task_assignment="schedule",
                               num_npcs=0, horizon=120)
        td = env.reset()
        for _ in range(100):
            policy(td, env.config)
            _, td = env.step_and_maybe_reset(td)
        eng = env.world.tasks
        rate = [float(eng.completed[eng.task_id == i].float().mean()) for i in range(4)]
        return rate

    scripted = run(_scripted)
    rand = run(lambda td, cfg: nmmozoo.env.random_actions(td))
    print("completion scripted", scripted, "random", rand)
    assert scripted[0] > 0.5 and scripted[1] > 0.5 and scripted[2] > 0.5
    assert sum(scripted) > sum(rand) + 0.3


def test_task_file_combinators_follow_the_builder_rules():
    from nmmozoo.tasks.spec import TaskError, from_dict

    eat = {"predicate": "CountEvent", "args": {"event": "EAT_FOOD", "N": 1}}
    with pytest.raises(TaskError, match="nesting AND inside OR"):
        from_dict({"all_of": [{"any_of": [eat, eat]}, eat]})
    with pytest.raises(TaskError, match="give one of 'predicate', 'all_of', 'any_of'"):
        from_dict({**eat, "all_of": [eat]})
    with pytest.raises(TaskError, match="tags must be a list of strings"):
        from_dict({**eat, "tags": "survival"})
