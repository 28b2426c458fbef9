"""The game loop: resets and the tick, composing the game systems over batched state.

``World`` knows nothing of TorchRL; :class:`nmmozoo.env.NMMOEnv` wraps it. Every system is a
function over all maps and entities at once; the loop below is over the fixed list of
systems, in 2.0's order (docs/env.md#the-tick).
"""

from __future__ import annotations

import torch

from . import (combat, constants as C, eventlog, harvest, items, loot, market, movement, npc,
               progression, survival)
from .config import ConfigError, EnvConfig
from .grid import passable_table, tile_at
from .observe import Observer
from .state import NEVER, WorldState
from .terrain import MapPool, chebyshev_from_center


class World:
    def __init__(self, cfg: EnvConfig, num_maps: int, device="cpu", seed: int = 0,
                 dense: bool = True, eval_offset: int = 0, eval_stride: int = 1):
        self.cfg = cfg
        # A shard of a sharded env plays held-out maps offset, offset + stride, ... (no map twice).
        self.eval_offset, self.eval_stride = eval_offset, eval_stride
        self.dense = dense
        self.num_maps = num_maps
        self.device = torch.device(device)
        self.state = WorldState.empty(cfg, num_maps, self.device)
        self.gen = torch.Generator(self.device)
        self.seed(seed)
        self.pool = MapPool(cfg)
        self.passable = passable_table(self.device)
        self.deltas = torch.tensor(C.MOVE_DELTAS, device=self.device)
        self.harvest_tables = harvest.HarvestTables(cfg, num_maps, self.device)
        self.item_tables = items.ItemTables(cfg, self.device)
        drop = torch.zeros(C.NUM_SKILLS, dtype=torch.int64)
        rare = torch.zeros(C.NUM_SKILLS, dtype=torch.int64)
        for skill, item in harvest.HARVEST_ITEM.items():
            drop[skill] = item
        for skill, item in harvest.RARE_ITEM.items():
            rare[skill] = item
        self.drop_item, self.rare_item = drop.to(self.device), rare.to(self.device)
        self.thresholds = torch.tensor(cfg.level_thresholds, dtype=torch.int32, device=self.device)
        self.observer = Observer(cfg, num_maps, self.device, self.item_tables)
        ring = (chebyshev_from_center(cfg) == cfg.radius).nonzero()
        self.ring = ring.to(self.device)  # spawn tiles of players [R, 2]
        if len(ring) < cfg.num_agents:
            raise ConfigError(f"env config field 'num_agents': expected ≤ {len(ring)} (the spawn tiles "
                              f"on the edge of a {cfg.playable}-tile playable map), got {cfg.num_agents}")
        self.reward = torch.zeros(num_maps, cfg.num_agents, device=self.device)
        self.tasks, self.task_embeddings = self._make_tasks()
        self.terminated = torch.zeros(num_maps, dtype=torch.bool, device=self.device)
        self.truncated = torch.zeros(num_maps, dtype=torch.bool, device=self.device)

    def _make_tasks(self):
        specs, schedule = task_set(self.cfg)
        if specs is None:
            return None, None
        from ..tasks import TaskEngine

        engine = TaskEngine(self.cfg, specs, self.num_maps, self.device, schedule)
        return engine, task_table(specs, self.device)

    def seed(self, seed: int) -> None:
        self.gen.manual_seed(int(seed))
        self._eval_cursor = 0

    # --- saved state -------------------------------------------------------------------------------
    # Of the task engine: its per-map tensors (every public tensor attribute with the maps as
    # its first dimension: task_id, best, progress, held, completed, completed_tick, ...) and
    # the schedule's cursor. Its private fields are derived from task_id (``_prepare``).
    def _task_fields(self):
        if self.tasks is None:
            return []
        return [(k, v) for k, v in vars(self.tasks).items()
                if torch.is_tensor(v) and not k.startswith("_") and v.dim() >= 1
                and v.shape[0] == self.num_maps and v.stride(0) != 0]  # (not expanded views)

    def _generators(self):
        """Every random generator the world draws from (``gen``: maps, spawns, NPCs, combat
        loot, harvest, market, tasks), by attribute name."""
        owners = [("", self)] + ([("tasks.", self.tasks)] if self.tasks is not None else [])
        return [(pre + k, v) for pre, o in owners for k, v in vars(o).items()
                if isinstance(v, torch.Generator)]

    def state_dict(self) -> dict:
        """Everything that decides the world's future ticks, as CPU tensors and Python ints
        under flat names: every :class:`WorldState` tensor (``state.<field>``), every random
        generator's state (``generator.<name>``), the last step's reward and end flags, the
        held-out pool's cursor and the task engine's per-agent state (``tasks.<field>``).
        Not saved, since rebuilt: the map pool's cache (a map is a function of its seed) and
        the observer's caches (recomputed from the state by :meth:`load_state_dict`)."""
        out: dict = {}
        for name, t in self.state.tensors():
            out[f"state.{name}"] = t.detach().to("cpu", copy=True)
        for name, g in self._generators():
            out[f"generator.{name}"] = g.get_state()
        for name in ("reward", "terminated", "truncated"):
            out[name] = getattr(self, name).detach().to("cpu", copy=True)
        out["eval_cursor"] = int(self._eval_cursor)
        out["observed"] = self.observer.slots is not None
        if self.tasks is not None:
            for name, t in self._task_fields():
                out[f"tasks.{name}"] = t.detach().to("cpu", copy=True)
            out["tasks.cursor"] = int(self.tasks._cursor)
            out["tasks.count"] = len(self.tasks.specs)
            out["tasks.digest"] = _task_digest(self.tasks.specs)
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` of a world of the same config and number of maps.
        Everything is checked before anything is changed: a missing or unknown entry, or a
        tensor of another dtype or shape, is an :class:`EnvStateError` naming it."""
        from .state import EnvStateError

        if not isinstance(state, dict):
            raise EnvStateError(f"a world state is a dict, got {type(state).__name__}")
        cur = {f"state.{n}": t for n, t in self.state.tensors()}
        cur.update({n: getattr(self, n) for n in ("reward", "terminated", "truncated")})
        if self.tasks is not None:
            cur.update({f"tasks.{n}": t for n, t in self._task_fields()})
        gens = {f"generator.{n}": g for n, g in self._generators()}
        scalars = {"eval_cursor", "observed"}
        if self.tasks is not None:
            scalars |= {"tasks.cursor", "tasks.count", "tasks.digest"}
        missing = sorted((set(cur) | set(gens) | scalars) - set(state))
        unknown = sorted(set(state) - set(cur) - set(gens) - scalars)
        if missing or unknown:
            what = "; ".join(x for x in (f"missing {missing}" if missing else "",
                                         f"unknown {unknown}" if unknown else "") if x)
            hint = ""
            if any(k.startswith("tasks.") for k in missing + unknown):
                hint = " (one env has tasks and the other none?)"
            raise EnvStateError(f"the env state does not fit this env's world: {what}{hint}")
        if self.tasks is not None:
            n, digest = state["tasks.count"], state["tasks.digest"]
            if n != len(self.tasks.specs) or digest != _task_digest(self.tasks.specs):
                raise EnvStateError(f"the env state was saved with another task set ({n} tasks, "
                                    f"digest {digest}); this env has {len(self.tasks.specs)} tasks, "
                                    f"digest {_task_digest(self.tasks.specs)}")
        grow = {f"state.{n}" for n in WorldState.GROWABLE}
        plan = []  # (key, saved tensor, copy into the current tensor or replace it)
        for key, t in cur.items():
            v = state[key]
            if not torch.is_tensor(v):
                raise EnvStateError(f"env state entry {key!r}: expected a tensor, got {type(v).__name__}")
            if v.dtype != t.dtype:
                raise EnvStateError(f"env state entry {key!r}: dtype {v.dtype}, this env's is {t.dtype}")
            if v.shape == t.shape:
                plan.append((key, v, True))
            elif (key in grow and v.dim() == t.dim() and v.shape[0] == t.shape[0]
                  and v.shape[2:] == t.shape[2:]):
                plan.append((key, v, False))
            else:
                raise EnvStateError(f"env state entry {key!r}: shape {tuple(v.shape)}, this env's is "
                                    f"{tuple(t.shape)} (another config or number of maps?)")
        for key, g in gens.items():
            v, now = state[key], g.get_state()
            if not torch.is_tensor(v) or v.dtype != torch.uint8 or v.shape != now.shape:
                raise EnvStateError(
                    f"env state entry {key!r}: not a random generator state of this env's "
                    f"device ({g.device}): {tuple(now.shape)} bytes expected, got "
                    f"{tuple(v.shape) if torch.is_tensor(v) else type(v).__name__}")
        for key in scalars - {"observed", "tasks.digest"}:
            if not isinstance(state[key], int) or isinstance(state[key], bool):
                raise EnvStateError(f"env state entry {key!r}: expected an integer, got {state[key]!r}")

        # Apply.
        for key, v, same in plan:
            if same:
                cur[key].copy_(v)
            else:  # a grown capacity: the saved tensor replaces the field
                setattr(self.state, key[len("state."):], v.to(self.device, copy=True))
        for key, g in gens.items():
            g.set_state(state[key].clone())
        self._eval_cursor = state["eval_cursor"]
        if self.tasks is not None:
            self.tasks._cursor = state["tasks.cursor"]
            self.tasks._prepare()  # the evaluation groups of the restored tasks
        if state["observed"]:
            self.observe()  # the observer's caches (visible pairs, rows, market rows)
        else:  # saved before the first reset: nothing observed yet
            self.observer.slots = self.observer.pairs = None
            self.observer.market_rows.fill_(-1)


    # --- reset -------------------------------------------------------------------------------------
    def _pick_seeds(self, n: int) -> torch.Tensor:
        seeds = self.pool.seeds()
        if self.cfg.map_pool == "eval":  # every held-out map in turn
            idx = ((torch.arange(n) + self._eval_cursor) * self.eval_stride + self.eval_offset) % len(seeds)
            self._eval_cursor += n
            return seeds[idx]
        return seeds[torch.randint(len(seeds), (n,), generator=self.gen, device=self.device).cpu()]

    def reset(self, maps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Start new episodes on ``maps`` (bool ``[B]``; all maps if None); observe all maps."""
        cfg, s, dev = self.cfg, self.state, self.device
        if maps is None:
            maps = torch.ones(self.num_maps, dtype=torch.bool, device=dev)
        idx = maps.nonzero().squeeze(1)
        n = idx.numel()
        if n == 0:
            return self.observe()
        seeds = self._pick_seeds(n)
        material = self.pool.get(seeds).to(dev)
        need = int(self.harvest_tables.depletable[material.long()].view(n, -1).sum(1).max())
        if need > s.res_tile.shape[1]:  # grow the resource lists (reset time only)
            grow = need - s.res_tile.shape[1]
            s.res_tile = torch.cat([s.res_tile, s.res_tile.new_full((self.num_maps, grow), -1)], 1)
            s.res_due = torch.cat([s.res_due, s.res_due.new_full((self.num_maps, grow), NEVER)], 1)
        immunity = self._next_immunity(idx)
        fresh = WorldState.empty(cfg, n, dev, res_capacity=s.res_tile.shape[1],
                                 danger_capacity=s.npc_dangers.shape[1])
        for name, t in s.tensors():
            t[idx] = getattr(fresh, name)
        s.immunity[idx] = immunity
        s.map_seed[idx] = seeds.to(dev)
        s.material[idx] = material
        harvest.list_resources(s, self.harvest_tables, idx)

        P = cfg.num_agents
        # Players on distinct tiles of the edge ring, in random order.
        pick = torch.rand(n, len(self.ring), generator=self.gen, device=dev).argsort(1)[:, :P]
        pos = self.ring[pick]  # [n, P, 2]
        players = torch.zeros(self.num_maps, cfg.num_entities, dtype=torch.bool, device=dev)
        players[idx, :P] = True
        s.alive |= players
        s.row[idx, :P] = pos[..., 0]
        s.col[idx, :P] = pos[..., 1]
        s.spawn_row[idx, :P] = pos[..., 0]
        s.spawn_col[idx, :P] = pos[..., 1]
        s.ent_id[idx, :P] = torch.arange(1, P + 1, dtype=torch.int32, device=dev)
        s.health[idx, :P] = cfg.health_max
        s.food[idx, :P] = cfg.resource_base
        s.water[idx, :P] = cfg.resource_base
        s.gold[idx, :P] = cfg.starting_gold
        s.level[idx, :P] = 1
        n_res = round(cfg.resilient_fraction * P)
        if n_res:
            chosen = torch.rand(n, P, generator=self.gen, device=dev).argsort(1)[:, :n_res]
            res = torch.zeros(n, P, dtype=torch.bool, device=dev)
            res.scatter_(1, chosen, True)
            s.resilient[idx, :P] = res
        npc.reset_wander(s, cfg, self.gen, idx)
        npc.spawn(s, cfg, self.gen, self.passable, maps=maps)
        if self.tasks is not None:
            self.tasks.assign(idx, self.gen)
        self.reward = self.reward.masked_fill(maps[:, None], 0)  # the last step's output stays
        self.terminated[idx] = False
        self.truncated[idx] = False
        return self.observe()

    def _next_immunity(self, idx: torch.Tensor) -> torch.Tensor:
        """Spawn immunity of the maps ``idx`` for their new episode: ``spawn_immunity``, or with
        ``spawn_immunity_redraw`` a draw from [0, spawn_immunity) where the last episode ended
        with at most ``early_stop_agents`` players alive (else the value in play stays)."""
        cfg, s = self.cfg, self.state
        if not cfg.spawn_immunity_redraw:
            return torch.full_like(s.immunity[idx], cfg.spawn_immunity)
        few = s.done[idx] & (s.alive[idx, :cfg.num_agents].sum(1) <= cfg.early_stop_agents)
        draw = torch.randint(0, cfg.spawn_immunity, (idx.numel(),), generator=self.gen,
                             device=self.device, dtype=s.immunity.dtype)
        return torch.where(few, draw, s.immunity[idx])

    # --- the tick ----------------------------------------------------------------------------------
    def step(self, actions: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Advance every map one tick. ``actions`` maps each head of ``ACTION_HEADS`` to
        ``[B, P]`` int64 indices; entity and market rows refer to the last observation."""
        cfg, s, it = self.cfg, self.state, self.item_tables
        P, K = cfg.num_agents, cfg.num_entity_obs
        obs_slots = self.observer.slots
        s.events.zero_()

        # 1. NPCs decide from the start-of-tick state.
        npc_target, npc_style, npc_move = npc.decide(
            s, cfg, self.gen, self.observer.pairs, self.passable, self.deltas)
        # 2. Entity upkeep, survival and harvest at the start-of-tick positions.
        survival.entity_upkeep(s)
        r, c = s.row[:, :P], s.col[:, :P]
        here = tile_at(s.material, r, c)
        nbr = tile_at(s.material, r[..., None] + self.deltas[:4, 0], c[..., None] + self.deltas[:4, 1])
        survival.survive(s, cfg, (nbr == C.WATER).any(-1))
        won = harvest.harvest(s, cfg, self.harvest_tables, self.gen, here, nbr)
        if cfg.item_system:
            self._harvest_drops(won)
        survival.npc_regen(s, cfg)
        # 3. Actions in 2.0's order: Use, Buy, Give/GiveGold, Destroy, Attack, Move, Sell.
        sales = None  # the sellers' earnings (EARN_GOLD rows)
        # sequential_combat (2.0): an entity at 0 health at its turn does nothing; before the
        # attacks only starvation can have brought a player there.
        seq = cfg.sequential_combat
        if cfg.item_system:
            busy = items.in_combat(s, P, cfg.combat_status_ticks)
            if seq:
                busy = busy | (s.health[:, :P] <= 0)
            items.use(s, cfg, it, actions["use_item"], busy)  # later phases move only unequipped items
            sales = market.buy(s, cfg, it, actions["buy_item"], self.observer.market_rows, busy, self.gen)
            # Both give target heads at once (gifts move nothing that the checks read).
            ok, tgt = items.give_target(s, cfg, obs_slots, torch.stack(
                [actions["give_target"], actions["give_gold_target"]], -1), busy)
            if seq:  # 2.0: a gift needs a target with health
                ok = ok & (s.health[:, :P].gather(1, tgt.flatten(1)).view_as(tgt) > 0)
            items.give(s, cfg, it, actions["give_item"], actions["give_target"], obs_slots, busy,
                       (ok[..., 0], tgt[..., 0]))
            items.give_gold(s, cfg, actions["give_gold_amount"], actions["give_gold_target"],
                            obs_slots, busy, (ok[..., 1], tgt[..., 1]))
            items.destroy_action(s, cfg, it, actions["destroy_item"], busy)
        row = actions["attack_target"].clamp(0, K)
        slot = obs_slots.gather(2, row.clamp_max(K - 1)[..., None]).squeeze(-1).long()
        player_target = torch.where((row < K) & (slot < cfg.num_entities), slot, -1)
        style = actions["attack_style"]
        executed, killer, rolls = combat.attack(s, cfg, torch.cat([player_target, npc_target], 1),
                                                torch.cat([style, npc_style], 1))
        moves = torch.cat([actions["move"], npc_move], 1)
        if seq:
            moves = moves.masked_fill(s.health <= 0, C.NUM_MOVES - 1)
        movement.move(s, cfg, moves, self.passable, self.deltas)
        if cfg.item_system:
            items.fire_ammo(s, cfg, it, executed[:, :P], style)
            busy = items.in_combat(s, P, cfg.combat_status_ticks)
            if seq:
                busy = busy | (s.health[:, :P] <= 0)
            items.sell(s, cfg, it, actions["sell_item"], actions["sell_price"], busy)
        progression.update_levels(s, cfg, self.thresholds)
        # 4. Remove the dead and settle their gold and items; refill NPCs; regrow tiles;
        #    expire listings; next tick.
        dead = s.alive & (s.health <= 0)
        loot_gold = loot.loot(s, cfg, it, dead, killer, self.gen, rolls)
        eventlog.earnings(s, cfg, [sales, loot_gold])
        s.alive &= ~dead
        died = dead[:, :P]
        s.died_tick.copy_(torch.where(died, (s.tick[:, None] + 1).int(), s.died_tick))
        s.npc_target.masked_fill_(~s.alive.gather(1, s.npc_target.clamp_min(0)), -1)
        if cfg.npc_respawn_dead_danger:
            npc.remember_dead(s, cfg, dead[:, P:] & ~s.done[:, None])
        npc.spawn(s, cfg, self.gen, self.passable, maps=~s.done)
        harvest.respawn(s, self.harvest_tables)
        if cfg.item_system:
            items.expire(s, cfg)
        s.tick += 1
        self.reward = -died.float()
        if self.tasks is not None:
            self.reward += self.tasks.step(self)
        n_alive = s.alive[:, :P].sum(1)
        self.terminated = n_alive == 0
        self.truncated = ~self.terminated & (
            (s.tick >= cfg.horizon) | ((cfg.early_stop_agents > 0) & (n_alive <= cfg.early_stop_agents)))
        s.done = self.terminated | self.truncated
        eventlog.end_of_tick(s)
        s.event_totals += s.events
        return self.observe()

    def noop_actions(self) -> dict[str, torch.Tensor]:
        """Actions that do nothing: stay, and the no-op of every item, target and market head."""
        cfg = self.cfg
        B, P, S, K = self.num_maps, cfg.num_agents, cfg.inventory_slots, cfg.num_entity_obs
        full = lambda v: torch.full((B, P), v, dtype=torch.int64, device=self.device)  # noqa: E731
        return {"move": full(C.NUM_MOVES - 1), "attack_style": full(0), "attack_target": full(K),
                "use_item": full(S), "destroy_item": full(S), "give_item": full(S),
                "give_target": full(K), "give_gold_amount": full(0), "give_gold_target": full(K),
                "sell_item": full(S), "sell_price": full(0), "buy_item": full(cfg.market_size)}

    def _harvest_drops(self, won: dict[str, torch.Tensor]) -> None:
        """Items from this tick's harvests: level 1, or 1 + the matching held tool's level.

        A player may both gather (its tile) and fish (a neighbour) in one tick: the gathered
        item (and a rare weapon with it) goes in first, then the fish. All of it is done on
        one selection of the harvesters' inventories."""
        cfg, s, it = self.cfg, self.state, self.item_tables
        gather, fish = won["gather"], won["fish"]
        any_gather, any_fish = torch.stack([gather.any(), fish.any()]).tolist()
        if not (any_gather or any_fish):
            return
        # Rare-drop draws, one per harvest kind that happened (the fish draw is never lucky).
        u_gather = torch.rand(gather.shape, generator=self.gen, device=s.device) if any_gather else None
        if any_fish:
            torch.rand(fish.shape, generator=self.gen, device=s.device)
        ids_gather = items.new_ids(s, gather)
        r = items.Rows.where(s, gather | fish)
        b, p = r.b, r.p
        g, f = gather[b, p], fish[b, p]
        skill = torch.stack([won["gather_skill"][b, p], torch.full_like(b, C.FISHING)], 1)  # [n, 2]
        tool = it.tool_for_skill[skill]
        held = r.inv_equipped[:, None, :] & (r.inv_type[:, None, :] == tool[..., None])  # [n, 2, S]
        tool_level = (r.inv_level[:, None, :] * held).amax(-1)
        level = torch.where(held.any(-1), (1 + tool_level).clamp(max=cfg.max_item_level), 1).int()
        drop = self.drop_item[skill]
        one = torch.ones_like(b, dtype=torch.int32)
        got_g = items.receive(r, cfg, it, g, drop[:, 0], level[:, 0], one, ids_gather[b, p], need_space=True)
        took = got_g.long()
        if any_gather:
            rare = self.rare_item[skill[:, 0]]
            lucky = got_g & (rare > 0) & (u_gather[b, p] < cfg.rare_drop_probability)
            lucky_all = torch.zeros_like(gather)
            lucky_all[b, p] = lucky
            ids = items.new_ids(s, lucky_all)
            if bool(lucky.any()):
                got_rare = items.receive(r, cfg, it, lucky, rare, level[:, 0], one, ids[b, p],
                                         need_space=True)
                took += got_rare
                # Event-log rows: 2.0 logs a HARVEST_ITEM row for every drop received.
                eventlog.record(s, b, p, eventlog.item_key(cfg, eventlog.HARVEST, rare, level[:, 0]),
                                got_rare)
        ids_fish = items.new_ids(s, fish)
        got_f = items.receive(r, cfg, it, f, drop[:, 1], level[:, 1], one, ids_fish[b, p], need_space=True)
        took += got_f
        r.write(s)
        s.ledger[:, items.ITEMS_IN].index_add_(0, b, took)
        s.events[b, p, C.EVENT["HARVEST_ITEM"]] += got_g.int() + got_f.int()
        eventlog.record(s, b.repeat(2), p.repeat(2), eventlog.item_key(
            cfg, eventlog.HARVEST, drop.T.reshape(-1), level.T.reshape(-1)), torch.cat([got_g, got_f]))
        items.count_items(s, items.HARVESTED, b.repeat(2), p.repeat(2), drop.T.reshape(-1),
                          level.T.reshape(-1), torch.cat([got_g, got_f]).int())

    def observe(self) -> dict[str, torch.Tensor]:
        return self.observer.observe(self.state, self.dense)

    def stats(self) -> torch.Tensor:
        """Raw per-agent numbers ``[B, P, len(STAT_NAMES)]`` (int32) for tasks and rewards."""
        s, P = self.state, self.cfg.num_agents
        return torch.stack([
            s.health[:, :P], s.food[:, :P], s.water[:, :P], s.gold[:, :P], s.time_alive[:, :P],
            s.level[:, :P].amax(-1), s.exp[:, :P].sum(-1), s.damage_dealt, s.damage_taken,
            s.farthest, s.row[:, :P].int(), s.col[:, :P].int(),
            s.unique_events, s.health_restore, s.exp[:, :P].amax(-1), s.equip_defense[:, :P].sum(-1),
            *s.level[:, :P].unbind(-1),
        ], -1).int()


def task_set(cfg: EnvConfig):
    """(specs, schedule) of the config's task set: the specs (None without tasks), and
    whether they are handed out by a fixed schedule rather than sampled."""
    if cfg.tasks == "none":
        return None, False
    from ..tasks import heldout_tasks, training_curriculum

    if cfg.tasks == "curriculum":
        specs = training_curriculum()
    elif cfg.tasks == "heldout":
        specs = heldout_tasks()
    else:
        specs = training_curriculum(cfg.tasks)
    schedule = (cfg.task_assignment == "schedule"
                or (cfg.task_assignment == "auto" and cfg.tasks == "heldout"))
    return specs, schedule


def _task_digest(specs) -> int:
    """A checksum of a task list (its specs' text, weights and rewards), to tell task sets apart."""
    import zlib

    text = "\n".join(f"{sp.text()}|{sp.weight}|{sp.reward}|{sp.hold_ticks}|{sp.subject}" for sp in specs)
    return zlib.crc32(text.encode())


def task_table(specs, device="cpu") -> torch.Tensor:
    """The embedding of each task of ``specs`` (float16 ``[T, D]``), as agents observe it."""
    from ..tasks.embeddings import TaskEmbeddings

    return TaskEmbeddings()(specs).to(device, torch.float16)


STAT_NAMES = ("health", "food", "water", "gold", "time_alive", "max_level", "total_exp",
              "damage_dealt", "damage_taken", "farthest", "row", "col",
              "unique_events", "health_restore", "max_exp", "equip_defense",
              *(f"{skill}_level" for skill in C.SKILL_NAMES))
"""Columns of ``("agents","stats")``. ``unique_events``: distinct event-log rows of the episode
(:mod:`nmmozoo.env.eventlog`); ``health_restore``: health change of this tick's food/water
update; ``max_exp``: XP of the agent's highest-XP skill; ``equip_defense``: melee + range +
mage defense of the equipped items; then each skill's level."""
