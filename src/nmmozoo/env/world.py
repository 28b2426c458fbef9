"""The game loop: resets and the tick, composing the game systems over batched state.

``World`` knows nothing of TorchRL; :class:`nmmozoo.env.NMMOEnv` wraps it. Every system is a
function over all maps and entities at once; the loop below is over the fixed list of
systems, in 2.0's order (NMMO2.md §4).
"""

from __future__ import annotations

import torch

from . import combat, constants as C, harvest, movement, npc, progression, survival
from .config import EnvConfig
from .grid import chebyshev, passable_table, tile_at
from .observe import Observer
from .state import NEVER, WorldState
from .terrain import MapPool, chebyshev_from_center


class World:
    def __init__(self, cfg: EnvConfig, num_maps: int, device="cpu", seed: int = 0,
                 dense: bool = True):
        self.cfg = cfg
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
        self.thresholds = torch.tensor(cfg.level_thresholds, dtype=torch.int32, device=self.device)
        self.observer = Observer(cfg, num_maps, self.device)
        ring = (chebyshev_from_center(cfg) == cfg.radius).nonzero()
        self.ring = ring.to(self.device)  # spawn tiles of players [R, 2]
        self._eval_cursor = 0
        self.reward = torch.zeros(num_maps, cfg.num_agents, device=self.device)
        self.terminated = torch.zeros(num_maps, dtype=torch.bool, device=self.device)
        self.truncated = torch.zeros(num_maps, dtype=torch.bool, device=self.device)

    def seed(self, seed: int) -> None:
        self.gen.manual_seed(int(seed))
        self._eval_cursor = 0

    # --- reset -------------------------------------------------------------------------------------
    def _pick_seeds(self, n: int) -> torch.Tensor:
        seeds = self.pool.seeds()
        if self.cfg.map_pool == "eval":  # every held-out map in turn
            idx = (torch.arange(n) + self._eval_cursor) % len(seeds)
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
        fresh = WorldState.empty(cfg, n, dev, res_capacity=s.res_tile.shape[1])
        for name, t in s.tensors():
            t[idx] = getattr(fresh, name)
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
        npc.spawn(s, cfg, self.gen, self.passable, maps=maps)
        self.reward[idx] = 0
        self.terminated[idx] = False
        self.truncated[idx] = False
        return self.observe()

    # --- the tick ----------------------------------------------------------------------------------
    def step(self, move: torch.Tensor, attack_style: torch.Tensor, attack_target: torch.Tensor):
        """Advance every map one tick. Actions are ``[B, P]`` int64 indices per head;
        ``attack_target`` indexes the entity rows of the last observation (K: no-op)."""
        cfg, s = self.cfg, self.state
        P, K = cfg.num_agents, cfg.num_entity_obs
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
        self.harvested = harvest.harvest(s, cfg, self.harvest_tables, self.gen, here, nbr)
        survival.npc_regen(s, cfg)
        # 3. Attacks (players, then NPCs), then moves.
        row = attack_target.clamp(0, K)
        slot = self.observer.slots.gather(2, row.clamp_max(K - 1)[..., None]).squeeze(-1)
        player_target = torch.where((row < K) & (slot < cfg.num_entities), slot, -1)
        combat.attack(s, cfg, torch.cat([player_target, npc_target], 1),
                      torch.cat([attack_style, npc_style], 1))
        movement.move(s, cfg, torch.cat([move, npc_move], 1), self.passable, self.deltas)
        progression.update_levels(s, cfg, self.thresholds)
        # 4. Remove the dead; refill NPCs; regrow tiles; next tick.
        dead = s.alive & (s.health <= 0)
        s.alive &= ~dead
        died = dead[:, :P]
        s.died_tick.copy_(torch.where(died, (s.tick[:, None] + 1).int(), s.died_tick))
        s.npc_target.masked_fill_(~s.alive.gather(1, s.npc_target.clamp_min(0)), -1)
        npc.spawn(s, cfg, self.gen, self.passable, maps=~s.done)
        harvest.respawn(s, self.harvest_tables)
        s.tick += 1
        self.reward = -died.float()
        n_alive = s.alive[:, :P].sum(1)
        self.terminated = n_alive == 0
        self.truncated = ~self.terminated & (
            (s.tick >= cfg.horizon) | ((cfg.early_stop_agents > 0) & (n_alive <= cfg.early_stop_agents)))
        s.done = self.terminated | self.truncated
        s.event_totals += s.events
        return self.observe()

    def observe(self) -> dict[str, torch.Tensor]:
        return self.observer.observe(self.state, self.dense)

    def stats(self) -> torch.Tensor:
        """Raw per-agent numbers ``[B, P, len(STAT_NAMES)]`` (int32) for tasks and rewards."""
        s, P = self.state, self.cfg.num_agents
        return torch.stack([
            s.health[:, :P], s.food[:, :P], s.water[:, :P], s.gold[:, :P], s.time_alive[:, :P],
            s.level[:, :P].amax(-1), s.exp[:, :P].sum(-1), s.damage_dealt, s.damage_taken,
            s.farthest, s.row[:, :P].int(), s.col[:, :P].int(),
        ], -1).int()


STAT_NAMES = ("health", "food", "water", "gold", "time_alive", "max_level", "total_exp",
              "damage_dealt", "damage_taken", "farthest", "row", "col")
