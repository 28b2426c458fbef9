"""The world state: every quantity of the game as a tensor with a leading map dimension.

Entities of a map live in one table of ``E = num_agents + num_npcs`` slots: players in
``[0, num_agents)``, NPCs after them. Each game system reads and writes only the fields it
owns (see the module of that system); nothing here holds Python objects per entity.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch

from .config import EnvConfig
from .constants import NUM_EVENTS, NUM_ITEM_TYPES, NUM_SKILLS

NEVER = 32767  # int16 sentinel tick: a depleted tile with no respawn pending


class EnvStateError(ValueError):
    """A saved env state that does not fit the env it is loaded into; the message names the
    field (config field, state tensor, transform) that differs."""


@dataclass
class WorldState:
    # Every tensor field below is part of a saved env state (``World.state_dict``), found by
    # ``tensors()``: a new field is saved and restored with no other change. A field whose
    # size past the map dimension may grow during play (its capacity is not fixed by the
    # config) must be listed here, so that a state saved after the growth loads into a fresh
    # env; any other size difference is an error.
    GROWABLE: ClassVar[tuple[str, ...]] = ("res_tile", "res_due", "npc_dangers")

    # --- per map [B] ---
    tick: torch.Tensor            # int64: ticks since the map's reset
    map_seed: torch.Tensor        # int64: seed of the terrain in play
    next_npc_id: torch.Tensor     # int64: the next (positive) NPC serial, ids are its negative
    done: torch.Tensor            # bool: the map has ended and waits for its reset
    immunity: torch.Tensor        # int32: spawn immunity in play (ticks; see spawn_immunity_redraw)
    # Spawn dangers of dead NPCs, a stack per map (npc_respawn_dead_danger): the distance of
    # each dead NPC's spawn tile from the playable edge, newest last; grows on demand.
    npc_dangers: torch.Tensor     # int16 [B, D]
    npc_danger_count: torch.Tensor  # int64 [B]: entries in use
    # 2.0's shared cycle of NPC wander start directions (npc_wander_sequence; npc.py).
    npc_wander_seq: torch.Tensor  # int8 [B, 1024] (npc.WANDER_SEQUENCE): 0..3 = N, S, W, E
    npc_wander_pos: torch.Tensor  # int64 [B]: the last position read
    # --- terrain [B, H, W] ---
    material: torch.Tensor        # uint8 material index per tile
    # Resource tiles of each map (those that can deplete), listed once at reset so the
    # per-tick respawn check scans a few thousand entries instead of the whole grid.
    res_tile: torch.Tensor        # int64 [B, R]: flat tile index in the map (-1: padding)
    res_due: torch.Tensor         # int16 [B, R]: tick at whose end the tile regrows (NEVER: none)
    res_slot: torch.Tensor        # int16 [B, H*W]: index into the resource list (-1: none)
    # --- entities [B, E] ---
    alive: torch.Tensor           # bool
    ent_id: torch.Tensor          # int32: players 1..P, NPCs negative serials, 0 = empty slot
    npc_type: torch.Tensor        # int32: 0 player, 1 passive, 2 neutral, 3 aggressive
    row: torch.Tensor             # int64
    col: torch.Tensor             # int64
    spawn_row: torch.Tensor       # int64
    spawn_col: torch.Tensor       # int64
    health: torch.Tensor          # int32
    food: torch.Tensor            # int32
    water: torch.Tensor           # int32
    gold: torch.Tensor            # int32
    time_alive: torch.Tensor      # int32
    damage: torch.Tensor          # int32: damage received in the last tick
    freeze: torch.Tensor          # int32: ticks the entity cannot move (0 in 2.0 play)
    item_level: torch.Tensor      # int32: summed level of equipped items
    attacker: torch.Tensor        # int64: slot of the last attacker (-1 none)
    attacker_id: torch.Tensor     # int32: id of the last attacker (0 none)
    latest_combat_tick: torch.Tensor  # int32: tick of the last attack made or received (0 none)
    message: torch.Tensor         # int32: comm token (off in the 2.0 competition)
    npc_level: torch.Tensor       # int32: NPC level (0 for players)
    npc_style: torch.Tensor       # int64: NPC combat style (0 melee, 1 range, 2 mage)
    npc_target: torch.Tensor      # int64: slot an NPC hunts (-1 none)
    spawn_seq: torch.Tensor       # int64: an NPC's spawn serial (monotone in the episode: 2.0's
                                  # order of NPCs), 0 for players
    equip_offense: torch.Tensor   # int32 [B, E, 3]: equipment offense per combat style
    equip_defense: torch.Tensor   # int32 [B, E, 3]: equipment defense per combat style
    resilient: torch.Tensor       # bool: starvation damage halved
    exp: torch.Tensor             # int32 [B, E, 8]
    level: torch.Tensor           # int32 [B, E, 8]
    # --- items: players' inventories [B, P, S]; an item is its slot (no item in two places) ---
    inv_type: torch.Tensor        # int32 item type id, 0 empty
    inv_level: torch.Tensor       # int32
    inv_quantity: torch.Tensor    # int32
    inv_id: torch.Tensor          # int32 item serial (per map)
    inv_equipped: torch.Tensor    # bool
    inv_price: torch.Tensor       # int32 listed price, 0 = not listed
    inv_listed_tick: torch.Tensor # int32 tick the listing was made
    next_item_id: torch.Tensor    # int64 [B]: the last item serial handed out in the map
    ledger: torch.Tensor          # int64 [B, 4]: gold created, gold destroyed, items created,
                                  # items destroyed (quantities) since the reset
    # --- per-agent bookkeeping [B, P] ---
    events: torch.Tensor          # int32 [B, P, NUM_EVENTS]: counts in the last tick
    event_totals: torch.Tensor    # int32 [B, P, NUM_EVENTS]: counts since the reset
    farthest: torch.Tensor        # int32 [B, P]: farthest Chebyshev distance from spawn reached
    damage_dealt: torch.Tensor    # int32 [B, P]: total damage dealt since the reset
    damage_taken: torch.Tensor    # int32 [B, P]: total damage received since the reset
    died_tick: torch.Tensor       # int32 [B, P]: tick of death, -1 while alive
    last_moves: torch.Tensor      # int64 [B, P, 8]: the last 8 move directions (reward shaping)
    health_restore: torch.Tensor  # int32 [B, P]: health change of this tick's food/water update
                                  # (2.0's Resources.health_restore)
    seen_rows: torch.Tensor       # bool [B, P, K]: event-log row keys seen this episode (eventlog.py)
    unique_events: torch.Tensor   # int32 [B, P]: distinct event-log rows this episode
    # --- typed counters since the reset, read by the task predicates [B, P, ...] ---
    item_events: torch.Tensor     # int32 [B, P, 4, item types, levels]: harvested, consumed,
                                  # listed, bought quantities by item type and level
    hits_by_style: torch.Tensor   # int32 [B, P, 3]: executed attacks per combat style
    kills: torch.Tensor           # int32 [B, P, 2, levels]: kills of players / NPCs by level
                                  # (levels: up to the highest NPC or skill level)
    gold_earned: torch.Tensor     # int32 [B, P]: gold from sales and loot
    gold_spent: torch.Tensor      # int32 [B, P]: gold paid for purchases

    @classmethod
    def empty(cls, cfg: EnvConfig, num_maps: int, device: torch.device | str,
              res_capacity: int = 1, danger_capacity: int = 16) -> "WorldState":
        B, E, P, S = num_maps, cfg.num_entities, cfg.num_agents, cfg.inventory_slots
        z = dict(device=device)

        def i32(*shape):
            return torch.zeros(*shape, dtype=torch.int32, **z)

        def i64(*shape):
            return torch.zeros(*shape, dtype=torch.int64, **z)

        def b(*shape):
            return torch.zeros(*shape, dtype=torch.bool, **z)

        from .eventlog import num_keys

        return cls(
            tick=i64(B), map_seed=i64(B), next_npc_id=i64(B), done=b(B),
            immunity=i32(B) + cfg.spawn_immunity,
            npc_dangers=torch.zeros(B, danger_capacity, dtype=torch.int16, **z),
            npc_danger_count=i64(B),
            npc_wander_seq=torch.zeros(B, 1024, dtype=torch.int8, **z), npc_wander_pos=i64(B),
            material=torch.zeros(B, cfg.map_size, cfg.map_size, dtype=torch.uint8, **z),
            res_tile=i64(B, res_capacity) - 1,
            res_due=torch.full((B, res_capacity), NEVER, dtype=torch.int16, **z),
            res_slot=torch.full((B, cfg.map_size ** 2), -1, dtype=torch.int16, **z),
            alive=b(B, E), ent_id=i32(B, E), npc_type=i32(B, E), row=i64(B, E), col=i64(B, E),
            spawn_row=i64(B, E), spawn_col=i64(B, E), health=i32(B, E), food=i32(B, E),
            water=i32(B, E), gold=i32(B, E), time_alive=i32(B, E), damage=i32(B, E),
            freeze=i32(B, E), item_level=i32(B, E), attacker=i64(B, E) - 1,
            attacker_id=i32(B, E), latest_combat_tick=i32(B, E), message=i32(B, E),
            npc_level=i32(B, E), npc_style=i64(B, E), npc_target=i64(B, E) - 1,
            spawn_seq=i64(B, E),
            equip_offense=i32(B, E, 3), equip_defense=i32(B, E, 3), resilient=b(B, E),
            exp=i32(B, E, NUM_SKILLS), level=i32(B, E, NUM_SKILLS),
            inv_type=i32(B, P, S), inv_level=i32(B, P, S), inv_quantity=i32(B, P, S),
            inv_id=i32(B, P, S), inv_equipped=b(B, P, S), inv_price=i32(B, P, S),
            inv_listed_tick=i32(B, P, S), next_item_id=i64(B), ledger=i64(B, 4),
            events=i32(B, P, NUM_EVENTS), event_totals=i32(B, P, NUM_EVENTS),
            farthest=i32(B, P), damage_dealt=i32(B, P), damage_taken=i32(B, P),
            died_tick=i32(B, P) - 1, last_moves=i64(B, P, 8) + 4,
            health_restore=i32(B, P), seen_rows=b(B, P, num_keys(cfg)), unique_events=i32(B, P),
            item_events=i32(B, P, 4, NUM_ITEM_TYPES, cfg.max_item_level + 1),
            hits_by_style=i32(B, P, 3),
            kills=i32(B, P, 2, max(cfg.npc_max_level, len(cfg.level_thresholds)) + 1),
            gold_earned=i32(B, P), gold_spent=i32(B, P),
        )

    def tensors(self):
        return ((f.name, getattr(self, f.name)) for f in fields(self))

    def clone(self) -> "WorldState":
        return WorldState(**{name: t.clone() for name, t in self.tensors()})

    @property
    def num_maps(self) -> int:
        return self.tick.shape[0]

    @property
    def device(self) -> torch.device:
        return self.tick.device
