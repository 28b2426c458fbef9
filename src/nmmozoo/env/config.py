"""Environment configuration: a frozen dataclass of every game number, and named presets.

A preset is data. ``make_config("tiny", num_npcs=4)`` overrides field by field through
OmegaConf (``EnvConfig`` is its structured config: one type check for every setting); an
unknown field, a value of the wrong type or out of range is a :class:`ConfigError` naming the
field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .. import _typed


class ConfigError(ValueError):
    """A bad environment setting; the message names the field and what was expected."""


@dataclass(frozen=True)
class EnvConfig:
    """Every number of the game. Defaults are the Neural MMO 2.0 competition values."""

    # --- world -------------------------------------------------------------------------------
    map_size: int = 160
    """Side of the square map in tiles, border included."""
    map_border: int = 16
    """Width of the Void border around the playable square (must be ≥ ``vision``)."""
    num_agents: int = 128
    """Players per map."""
    num_npcs: int = 128
    """NPC population each map is refilled toward (NPC_N)."""
    horizon: int = 1024
    """Ticks after which a map is truncated."""
    early_stop_agents: int = 0
    """End a map once at most this many agents are alive (0: off; the 2023 baseline used 8)."""
    resilient_fraction: float = 0.0
    """Fraction of agents whose starvation/dehydration damage is halved (training option)."""
    map_pool_size: int = 128
    """Number of distinct training maps; each reset draws one seed from the pool."""
    map_pool: str = "train"
    """``train`` draws from the training pool, ``eval`` from the disjoint held-out pool."""
    eval_pool_size: int = 128
    """Number of held-out evaluation maps."""

    # --- terrain -------------------------------------------------------------------------------
    terrain_frequency: float = 0.125
    """Frequency of every noise layer in cycles per tile (2.0: TERRAIN_FREQUENCY = -3, log2)."""
    terrain_tiles_per_octave: int = 8
    """Playable tiles per noise layer: ``playable // this`` layers (2.0: 128 // 8 = 16)."""
    terrain_interpolate_min: float = -2.0
    terrain_interpolate_max: float = 0.0
    """log10 of the width of the layer-weight bump, spread log-uniformly over a map's index in
    its pool (2.0: TERRAIN_LOG_INTERPOLATE_MIN/MAX over the map index). Narrow bumps make flat
    grassland with small sharp lakes and rocks; wide ones average the layers everywhere."""
    terrain_water: float = 0.30
    terrain_grass: float = 0.70
    terrain_foliage: float = 0.85
    """Height thresholds: ≤water Water, ≤grass Grass, ≤foliage Foliage, else Stone (2.0's)."""
    num_ore_clusters: int = 64
    num_tree_clusters: int = 64
    num_crystal_clusters: int = 64
    """Plus-shaped clusters (≤5 tiles) of each gathering resource."""
    num_herbs: int = 256
    """Herb tiles placed on Grass."""
    num_fish: int = 256
    """Fish tiles placed on Water next to Grass."""

    # --- survival --------------------------------------------------------------------------------
    resource_base: int = 100
    """Starting and maximum food and water."""
    resource_depletion: int = 5
    """Food and water lost per tick."""
    health_max: int = 100
    """Starting and maximum health of players."""
    health_regen: int = 10
    """Health gained per tick while food and water are above ``regen_threshold``."""
    regen_threshold: int = 50
    """Food and water must both exceed this (percent of ``resource_base``) to regenerate."""
    starvation_damage: int = 10
    """Health lost per tick at zero food, and again at zero water."""

    # --- resources ----------------------------------------------------------------------------------
    respawn_foliage: float = 0.025
    respawn_tree: float = 0.105
    respawn_ore: float = 0.10
    respawn_crystal: float = 0.10
    respawn_herb: float = 0.02
    respawn_fish: float = 0.02
    """Per-tick probability that a depleted tile turns back into its resource."""
    rare_drop_probability: float = 0.025
    """Chance of a weapon (Wand, Spear, Bow) alongside a prospecting/carving/alchemy harvest."""

    # --- progression ---------------------------------------------------------------------------------
    xp_fishing_herbalism: int = 30
    """XP per Fishing or Herbalism harvest."""
    xp_other_harvest: int = 15
    """XP per Prospecting, Carving or Alchemy harvest."""
    xp_per_attack: int = 3
    """XP to the attack's combat skill per landed attack."""
    level_thresholds: tuple[int, ...] = (0, 90, 217, 373, 553, 754, 974, 1212, 1467, 1737)
    """XP needed for levels 1..len; the last entry's level is the cap."""

    # --- combat --------------------------------------------------------------------------------------
    attack_reach: int = 3
    """Chebyshev reach of all three styles."""
    weakness_multiplier: float = 1.5
    """Damage multiplier when the style beats the target's main combat style."""
    spawn_immunity: int = 20
    """Players older than this cannot attack players younger than this."""
    spawn_immunity_redraw: bool = False
    """Yao Feng's training option (CarperAI/nmmo-baselines @ f7d9850,
    ``contrib/sub_246505/environment.py`` l.155-159, ``config.py`` l.65-66): when a map's episode
    ends with at most ``early_stop_agents`` players alive (an early stop, or everyone dead),
    its next episodes play with a spawn immunity drawn uniformly from ``[0, spawn_immunity)``,
    until the next such end draws again. Off: always ``spawn_immunity``."""
    combat_status_ticks: int = 3
    """Ticks an entity stays "in combat" after attacking or being attacked."""
    damage_scale: int = 15
    """2.0 damage: ``int(mult * offense * scale / (scale + defense))``."""
    skill_offense_base: int = 20
    skill_offense_per_level: int = 5
    defense_per_level: int = 5
    """Defense = this × the target's highest level over all skills (+ equipment)."""
    npc_offense_base: int = 15
    npc_offense_per_level: int = 15
    npc_defense_per_level: int = 15

    # --- NPCs ----------------------------------------------------------------------------------------
    npc_spawn_attempts: int = 25
    """Random spawn tries per map per tick while below ``num_npcs``."""
    npc_aggressive_danger: float = 0.8
    npc_neutral_danger: float = 0.5
    """Danger thresholds (0 at the playable edge, 1 at the centre) for NPC types."""
    npc_max_level: int = 10
    """NPC level = int(danger × (max_level - 1) + 1)."""
    npc_aggression_range: int = 7
    """Aggressive NPCs hunt the first entity found within this Chebyshev distance, and any
    hunter drops a target farther than this (2.0: the vision radius)."""
    npc_health_regen: int = 1
    """Health NPCs regain per tick."""

    # --- 2.0 quirks (nmmo 2.0.3 behaviour; all on in ``competition2023``, off = the corrected rules) ---
    npc_respawn_dead_danger: bool = True
    """2.0 remembers the spawn danger of every NPC that dies (a stack, newest on top) and aims
    all spawn tries of the next tick at a random tile of the top danger's ring (the tiles at
    that distance from the playable edge), popping one entry per tick; only with an empty
    stack are tries uniform over the map. Why 2.0 did it: to keep the population's danger
    profile in place of the dead (NeuralMMO/environment @ 685ea09, ``NPCManager.cull``/
    ``spawn``, ``combat.spawn``). Since the edge NPCs die most, it skews the population to
    passive low-level NPCs (random play: about 111/16/1 passive/neutral/aggressive against
    90/33/5 uniform). Off: every try is uniform over the playable square."""
    sequential_combat: bool = True
    """2.0 runs the actions of a tick one entity at a time — all attacks of players in id
    order, then of NPCs in spawn order, then all moves, then sells — and each only if its
    entity still has health at that point: an entity brought to 0 by an earlier hit (or by
    starving in its own update) does nothing more that tick (no attack, move, item action;
    gifts to it fail). Loot taken by a killer who is killed later in the same tick passes on
    to that killer's killer. Why 2.0 did it: the realm loops over the merged action list and
    checks ``entity.alive`` before each call (``Realm.step``). Off: every attack of the tick
    resolves from the start-of-attack state, the dead still move and sell, and a killer who
    dies in the same tick inherits nothing."""
    kill_every_hit: bool = True
    """2.0 counts a kill for every hit that leaves its target at 0 health, including hits on a
    target already at 0 in the same tick: each is a PLAYER_KILL (and, on an NPC, another
    armour + tool drop roll for that attacker); gold and a player's items go to the first
    such hit; a player who starved earlier in the tick and is then hit counts as killed and
    is looted. Why 2.0 did it: ``Attack.call`` does not check that its target is alive and
    ``receive_damage`` runs the death branch on every hit (``Entity``/``Player``/``NPC``
    ``.receive_damage``). Off: one kill per target brought from above 0 to 0, credited to its
    last attacker; a starved player's gold and items are destroyed."""
    npc_attack_npcs: bool = True
    """2.0's aggressive NPCs take the first *entity* of their scan for a target, other NPCs
    included, and neutral NPCs hunt whoever hit them, NPCs included: aggressive NPCs near the
    centre spend much of their time fighting the NPCs around them, NPCs kill NPCs (the killer
    takes the gold), and the dead respawn on their rings (``npc_respawn_dead_danger``). Why
    2.0 did it: ``utils.closestTarget`` checks only that a tile's entity is alive and in range
    (``nmmo/systems/ai/utils.py``); 2.1 made it ``NPC_ALLOW_ATTACK_OTHER_NPCS``. Off: NPCs
    target and hunt players only."""
    npc_wander_sequence: bool = True
    """2.0's wandering NPCs do not draw a fresh direction: each wanderer of a tick, in spawn
    order, reads the next entry of one cyclic sequence of 1024 start directions per map
    (drawn at the reset) and goes the first passable way from it in the order North, South,
    West, East. The walks of a map's NPCs are therefore correlated, and a blocked direction
    deflects to the next one in that order (not to a random free one). Why 2.0 did it: a
    cheap ``get_direction`` on its random generator (``nmmo/lib/seeding.py``,
    ``nmmo/systems/ai/move.py: habitable``). Off: a uniformly random passable direction."""

    # --- observation ------------------------------------------------------------------------------------
    vision: int = 7
    """Observation radius: the tile window is (2·vision+1)²."""
    num_entity_obs: int = 100
    """Entity rows observed per agent (nearest first, self included)."""

    # --- tasks ------------------------------------------------------------------------------------------
    tasks: str = "curriculum"
    """Tasks handed to agents at reset: ``curriculum`` (the shipped training curriculum),
    ``heldout`` (the 63 evaluation tasks), ``none``, or the path of a YAML/JSON task file."""
    task_assignment: str = "auto"
    """``sample`` by weight, ``schedule`` (every task in turn, equally often), or ``auto``:
    schedule for ``heldout``, sample otherwise."""
    team_size: int = 1
    """Agents per team (consecutive ids); a task with subject ``team`` reads the whole team."""

    # --- items, gold, market -----------------------------------------------------------------------------
    item_system: bool = True
    """Items, equipment, harvest drops, gifts, Destroy, the market and item loot (2.0's
    equipment, profession and exchange systems). Off: their 9 action heads allow only the
    no-op, inventories and the market stay empty; gold still passes to killers."""
    inventory_slots: int = 12
    """Inventory slots per player (NPCs carry none)."""
    starting_gold: int = 1
    """Gold of a new player."""
    market_size: int = 1024
    """Rows of the per-map market observation (listings beyond it are not shown)."""
    listing_duration: int = 5
    """A listing made at tick t can be bought until the end of tick t + duration + 1 (2.0)."""
    max_price: int = 99
    """Prices and gold gifts are 1..max_price (the price heads' size)."""
    stack_capacity: int = 32767
    """Most ammunition one stack holds (2.0 had no limit; the observation is int16)."""
    max_item_level: int = 10
    """Item levels are capped here (harvest with a tool, NPC drops)."""
    item_stat_cap: int = 100
    """2.0 clips every attack and defense column of an item at 100."""

    def __post_init__(self) -> None:
        _validate(self)

    # Derived sizes ----------------------------------------------------------------------------------------
    @property
    def playable(self) -> int:
        """Side of the playable square."""
        return self.map_size - 2 * self.map_border

    @property
    def center(self) -> int:
        return self.map_size // 2

    @property
    def radius(self) -> int:
        """Chebyshev radius of the walkable square around the centre (64 in 2.0: rows 16..144)."""
        return self.playable // 2

    @property
    def num_entities(self) -> int:
        """Entity slots per map: players first, then NPCs."""
        return self.num_agents + self.num_npcs

    @property
    def window(self) -> int:
        return 2 * self.vision + 1

    @property
    def num_tiles_obs(self) -> int:
        return self.window * self.window

    def replace(self, **overrides: Any) -> "EnvConfig":
        return make_config(self, **overrides)


INT32_MAX = 2 ** 31 - 1
GOLD_MAX = 10 ** 9


def _check(cond: bool, name: str, expected: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"env config field '{name}': expected {expected}, got {value!r}")


def _validate(c: EnvConfig) -> None:
    """The range rules (types are checked where settings come in, by :func:`make_config`)."""
    for f in dataclasses.fields(c):
        value, default = getattr(c, f.name), f.default
        if isinstance(default, bool):
            continue
        if isinstance(default, int):  # every integer setting is a count, a tick or an amount
            _check(isinstance(value, int) and value >= 0, f.name, "an integer ≥ 0", value)
            _check(value <= INT32_MAX, f.name, f"≤ {INT32_MAX} (the game state is int32)", value)
        elif isinstance(default, float):
            _check(isinstance(value, (int, float)) and math.isfinite(value), f.name,
                   "a finite number", value)
    _check(c.map_border >= c.vision, "map_border", f"≥ vision ({c.vision})", c.map_border)
    _check(c.playable >= 8 and c.playable % 2 == 0, "map_size",
           f"2·map_border + an even playable side ≥ 8 (map_border={c.map_border})", c.map_size)
    _check(c.num_agents >= 1, "num_agents", "≥ 1", c.num_agents)
    _check(c.num_npcs >= 0, "num_npcs", "≥ 0", c.num_npcs)
    _check(c.num_entities <= 32767, "num_agents", "num_agents + num_npcs ≤ 32767", c.num_entities)
    _check(1 <= c.horizon < 32767, "horizon", "in [1, 32767) (ticks are int16)", c.horizon)
    _check(c.damage_scale >= 1, "damage_scale", "≥ 1", c.damage_scale)
    _check(not c.spawn_immunity_redraw or c.spawn_immunity >= 1, "spawn_immunity",
           "≥ 1 when spawn_immunity_redraw is on (draws are from [0, spawn_immunity))",
           c.spawn_immunity)
    _check(0 <= c.early_stop_agents < c.num_agents, "early_stop_agents",
           f"in [0, num_agents={c.num_agents})", c.early_stop_agents)
    _check(0.0 <= c.resilient_fraction <= 1.0, "resilient_fraction", "in [0, 1]", c.resilient_fraction)
    _check(c.map_pool in ("train", "eval"), "map_pool", "'train' or 'eval'", c.map_pool)
    _check(c.map_pool_size >= 1, "map_pool_size", "≥ 1", c.map_pool_size)
    _check(c.eval_pool_size >= 1, "eval_pool_size", "≥ 1", c.eval_pool_size)
    _check(c.terrain_tiles_per_octave >= 1, "terrain_tiles_per_octave", "≥ 1",
           c.terrain_tiles_per_octave)
    _check(0 < c.terrain_frequency <= 1, "terrain_frequency", "in (0, 1] cycles per tile",
           c.terrain_frequency)
    _check(-6 <= c.terrain_interpolate_min <= c.terrain_interpolate_max <= 3,
           "terrain_interpolate_min", "-6 ≤ min ≤ max ≤ 3 (log10 of the blend width)",
           (c.terrain_interpolate_min, c.terrain_interpolate_max))
    _check(0 <= c.terrain_water <= c.terrain_grass <= c.terrain_foliage <= 1, "terrain_water",
           "0 ≤ water ≤ grass ≤ foliage ≤ 1", (c.terrain_water, c.terrain_grass, c.terrain_foliage))
    for name in ("respawn_foliage", "respawn_tree", "respawn_ore", "respawn_crystal",
                 "respawn_herb", "respawn_fish", "rare_drop_probability"):
        _check(0.0 <= getattr(c, name) <= 1.0, name, "a probability in [0, 1]", getattr(c, name))
    _check(len(c.level_thresholds) >= 1 and c.level_thresholds[0] == 0
           and all(a < b for a, b in zip(c.level_thresholds, c.level_thresholds[1:])),
           "level_thresholds", "strictly increasing XP values starting at 0", c.level_thresholds)
    _check(c.vision >= 1, "vision", "≥ 1", c.vision)
    _check(1 <= c.num_entity_obs <= 32767, "num_entity_obs", "in [1, 32767]", c.num_entity_obs)
    _check(c.attack_reach >= 0, "attack_reach", "≥ 0", c.attack_reach)
    _check(0 <= c.npc_neutral_danger <= c.npc_aggressive_danger <= 1, "npc_neutral_danger",
           "0 ≤ neutral ≤ aggressive ≤ 1", (c.npc_neutral_danger, c.npc_aggressive_danger))
    _check(0 <= c.npc_aggression_range <= c.vision, "npc_aggression_range",
           f"in [0, vision={c.vision}] (NPCs find targets among who sees them)", c.npc_aggression_range)
    _check(c.npc_max_level >= 1, "npc_max_level", "≥ 1", c.npc_max_level)
    _check(c.inventory_slots >= 1, "inventory_slots", "≥ 1", c.inventory_slots)
    _check(1 <= c.market_size <= 32767, "market_size", "in [1, 32767] (rows of the market observation)",
           c.market_size)
    _check(c.weakness_multiplier >= 0, "weakness_multiplier", "a damage multiplier ≥ 0",
           c.weakness_multiplier)
    _check(c.starting_gold <= GOLD_MAX, "starting_gold", f"in [0, {GOLD_MAX}] (gold is int32 and grows)",
           c.starting_gold)
    for name in ("health_max", "resource_base"):
        _check(getattr(c, name) <= 32767, name, "≤ 32767 (observed as int16)", getattr(c, name))
    _check(c.listing_duration >= 0, "listing_duration", "≥ 0", c.listing_duration)
    _check(1 <= c.max_price <= 32767, "max_price", "in [1, 32767]", c.max_price)
    _check(1 <= c.stack_capacity <= 32767, "stack_capacity", "in [1, 32767]", c.stack_capacity)
    _check(1 <= c.max_item_level <= 99, "max_item_level", "in [1, 99]", c.max_item_level)
    _check(c.task_assignment in ("auto", "sample", "schedule"), "task_assignment",
           "'auto', 'sample' or 'schedule'", c.task_assignment)
    _check(isinstance(c.tasks, str) and c.tasks != "", "tasks",
           "'curriculum', 'heldout', 'none' or a task file path", c.tasks)
    _check(1 <= c.team_size <= c.num_agents, "team_size", f"in [1, num_agents={c.num_agents}]", c.team_size)
    _check(c.inventory_slots <= 254, "inventory_slots", "≤ 254", c.inventory_slots)
    _check(c.resource_base >= 1 and c.health_max >= 1, "resource_base", "≥ 1", c.resource_base)


PRESETS: dict[str, dict[str, Any]] = {
    # The NeurIPS 2023 competition (nmmo 2.0.3) numbers: all defaults, 2.0's quirks included
    # (named here so that a corrected variant is one override away).
    "competition2023": dict(npc_respawn_dead_danger=True, sequential_combat=True,
                            kill_every_hit=True, npc_attack_npcs=True, npc_wander_sequence=True),
    # A small world for tests and demos: 32×32 playable, 16 agents, a few NPCs.
    "tiny": dict(
        map_size=48, map_border=8, num_agents=16, num_npcs=8, horizon=256,
        num_ore_clusters=4, num_tree_clusters=4, num_crystal_clusters=4,
        num_herbs=16, num_fish=16, map_pool_size=16, eval_pool_size=16,
        market_size=64, terrain_interpolate_min=0.0,  # 2.0's Small config: wide blends only
    ),
}


def make_config(preset: str | EnvConfig = "competition2023", **overrides: Any) -> EnvConfig:
    """Build a config from a preset name (or another config) with field overrides: the preset
    and the overrides are merged in that order onto ``EnvConfig``'s OmegaConf structured
    config, which checks every value's type (``"2"`` for an integer field is 2, a list for
    ``level_thresholds`` a tuple; a bool field takes only true or false), then
    ``EnvConfig.__post_init__`` checks the ranges."""
    if isinstance(preset, EnvConfig):
        base = {f.name: getattr(preset, f.name) for f in dataclasses.fields(EnvConfig)}
    else:
        if preset not in PRESETS:
            raise ConfigError(f"unknown env preset {preset!r}; known presets: {sorted(PRESETS)}")
        base = PRESETS[preset]
    try:
        return _typed.instance(EnvConfig, base, overrides)
    except _typed.UnknownFieldsError as e:
        raise ConfigError(f"unknown env config field(s) {e.unknown}; known fields: {e.known}") from None
    except _typed.FieldTypeError as e:
        expected = _EXPECTED.get(e.annotation, _typed.type_name(e.annotation))
        raise ConfigError(f"env config field '{e.key}': expected {expected}, got {e.value!r}") from None


_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             tuple[int, ...]: "a list of integers"}
