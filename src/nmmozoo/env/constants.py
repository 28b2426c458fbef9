"""Fixed enumerations of the game: materials, skills, entity columns, events, items.

These are the Neural MMO 2.0 indices (docs/env.md#observations-and-actions); sizes that
vary between presets live in :mod:`nmmozoo.env.config`, never here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import EnvConfig

# --- materials -------------------------------------------------------------------------
VOID, WATER, GRASS, SCRUB, FOLIAGE, STONE, SLAG, ORE = 0, 1, 2, 3, 4, 5, 6, 7
STUMP, TREE, FRAGMENT, CRYSTAL, WEEDS, HERB, OCEAN, FISH = 8, 9, 10, 11, 12, 13, 14, 15
MATERIAL_NAMES = (
    "void", "water", "grass", "scrub", "foliage", "stone", "slag", "ore",
    "stump", "tree", "fragment", "crystal", "weeds", "herb", "ocean", "fish",
)
NUM_MATERIALS = len(MATERIAL_NAMES)
IMPASSABLE = (VOID, WATER, STONE, OCEAN, FISH)

# --- skills ------------------------------------------------------------------------------
MELEE, RANGE, MAGE, FISHING, HERBALISM, PROSPECTING, CARVING, ALCHEMY = range(8)
SKILL_NAMES = ("melee", "range", "mage", "fishing", "herbalism", "prospecting", "carving", "alchemy")
NUM_SKILLS = len(SKILL_NAMES)
COMBAT_SKILLS = (MELEE, RANGE, MAGE)
HARVEST_SKILLS = (FISHING, HERBALISM, PROSPECTING, CARVING, ALCHEMY)

# --- NPC kinds (entity column npc_type) --------------------------------------------------
PLAYER, PASSIVE, NEUTRAL, AGGRESSIVE = 0, 1, 2, 3

# --- entity observation columns (docs/env.md#observations-and-actions) ----------------------------
ENTITY_COLUMNS = (
    "id", "npc_type", "row", "col", "damage", "time_alive", "freeze", "item_level",
    "attacker_id", "latest_combat_tick", "message", "gold", "health", "food", "water",
) + tuple(f"{skill}_{kind}" for skill in SKILL_NAMES for kind in ("level", "exp"))
NUM_ENTITY_COLUMNS = len(ENTITY_COLUMNS)  # 31
COL = {name: i for i, name in enumerate(ENTITY_COLUMNS)}

# --- tile observation columns ---------------------------------------------------------------
TILE_COLUMNS = ("row", "col", "material")

# --- movement ---------------------------------------------------------------------------
# Direction index -> (d_row, d_col); the last index is "stay", the move head's no-op.
MOVE_DELTAS = ((-1, 0), (1, 0), (0, 1), (0, -1), (0, 0))
MOVE_NAMES = ("north", "south", "east", "west", "stay")
NUM_MOVES = len(MOVE_DELTAS)

# --- events (per-agent, per-tick counters) --------------------------------------------------
EVENT_NAMES = (
    "EAT_FOOD", "DRINK_WATER", "GO_FARTHEST", "SCORE_HIT", "PLAYER_KILL", "FIRE_AMMO",
    "CONSUME_ITEM", "GIVE_ITEM", "DESTROY_ITEM", "HARVEST_ITEM", "EQUIP_ITEM", "LOOT_ITEM",
    "GIVE_GOLD", "LIST_ITEM", "EARN_GOLD", "BUY_ITEM", "LOOT_GOLD", "LEVEL_UP",
    "NPC_KILL",
)
EVENT = {name: i for i, name in enumerate(EVENT_NAMES)}
NUM_EVENTS = len(EVENT_NAMES)

# --- items (docs/env.md#items-gold-and-the-market); type ids 2..17, 0 = empty slot ----------------
ITEM_NAMES = {
    2: "Hat", 3: "Top", 4: "Bottom", 5: "Spear", 6: "Bow", 7: "Wand", 8: "Rod", 9: "Gloves",
    10: "Pickaxe", 11: "Axe", 12: "Chisel", 13: "Whetstone", 14: "Arrow", 15: "Runes",
    16: "Ration", 17: "Potion",
}
HAT, TOP, BOTTOM, SPEAR, BOW, WAND, ROD, GLOVES = 2, 3, 4, 5, 6, 7, 8, 9
PICKAXE, AXE, CHISEL, WHETSTONE, ARROW, RUNES, RATION, POTION = 10, 11, 12, 13, 14, 15, 16, 17
NUM_ITEM_TYPES = 18  # type ids index a table of this size
ITEM_COLUMNS = (
    "id", "type_id", "owner_id", "level", "capacity", "quantity", "melee_attack",
    "range_attack", "mage_attack", "melee_defense", "range_defense", "mage_defense",
    "health_restore", "resource_restore", "equipped", "listed_price",
)
NUM_ITEM_COLUMNS = len(ITEM_COLUMNS)  # 16
# Equipment slots an entity holds (part 2 of the environment fills them).
EQUIP_SLOTS = ("hat", "top", "bottom", "held", "ammunition")
NUM_EQUIP_SLOTS = len(EQUIP_SLOTS)


# --- action heads (the env, the workers, the observation and the policy all read these) ---
ACTION_HEADS = ("move", "attack_style", "attack_target", "use_item", "destroy_item", "give_item",
                "give_target", "give_gold_amount", "give_gold_target", "sell_item", "sell_price",
                "buy_item")


def head_sizes(cfg: "EnvConfig") -> dict[str, int]:
    """Options of each action head; the no-op is the last option of every item, target and
    market head (prices have none: index i means i + 1 gold)."""
    S1, K1 = cfg.inventory_slots + 1, cfg.num_entity_obs + 1
    return {"move": NUM_MOVES, "attack_style": 3, "attack_target": K1, "use_item": S1,
            "destroy_item": S1, "give_item": S1, "give_target": K1,
            "give_gold_amount": cfg.max_price, "give_gold_target": K1, "sell_item": S1,
            "sell_price": cfg.max_price, "buy_item": cfg.market_size + 1}
