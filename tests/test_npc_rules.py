"""NPC decisions as nmmo 2.0.3 makes them (``nmmo/systems/ai``), on small hand-made states:
the aggressive scan order and NPC targets (``npc_attack_npcs``), neutral retaliation against
NPCs, the hunting step of 2.0's obstacle-blind A*, and the shared wander sequence
(``npc_wander_sequence``)."""

from __future__ import annotations

import pytest
import torch

from nmmozoo.env import constants as C
from nmmozoo.env import npc

N_, S_, E_, W_, STAY = 0, 1, 2, 3, 4  # move indices


def decide(sb):
    """The NPCs' (attack target, style, move) of the next tick, from the current state."""
    w = sb.world
    w.observe()
    return npc.decide(sb.s, sb.cfg, w.gen, w.observer.pairs, w.passable, w.deltas)


def place(sb, index, r, c, kind, seq=None, **kw):
    slot = sb.npc(index, r, c, kind, **kw)
    sb.s.spawn_seq[0, slot] = index + 1 if seq is None else seq
    sb.s.npc_target[0, slot] = -1
    sb.s.attacker[0, slot] = -1
    return slot


# --- targets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("attack_npcs", [True, False])
def test_aggressive_npc_targets_an_npc(sandbox, attack_npcs):
    """2.0's ``closestTarget`` takes any live entity in range: with no player near, an
    aggressive NPC hunts a passive NPC two tiles east, steps toward it and hits it."""
    sb = sandbox(num_npcs=2, npc_spawn_attempts=0, npc_attack_npcs=attack_npcs)
    sb.player(0, sb.c - 10, sb.c - 10)  # out of range
    a = place(sb, 0, sb.c, sb.c, C.AGGRESSIVE, level=5)
    v = place(sb, 1, sb.c, sb.c + 2, C.PASSIVE)
    target, _, move = decide(sb)
    i = a - sb.P
    if attack_npcs:
        assert target[0, i] == v and move[0, i] == E_ and sb.s.npc_target[0, a] == v
        sb.step()
        assert sb.s.health[0, v] < 100 and sb.s.attacker[0, v] == a
    else:
        assert target[0, i] == -1 and sb.s.npc_target[0, a] == -1


def test_scan_order_within_a_ring(sandbox):
    """At one Chebyshev distance 2.0 scans r = -d..d over the tiles (r,-d), (r,+d), (-d,r),
    (+d,r): the NPC at (-2, +2) comes before the player at (+2, -2) (rank 1 against 3), and
    the NPC at (0, -2) before the player at (-2, 0) (rank 8 against 10), whatever the slots."""
    sb = sandbox(num_npcs=3, npc_spawn_attempts=0)
    c = sb.c
    a = place(sb, 0, c, c, C.AGGRESSIVE, level=5)
    p = sb.player(0, c + 2, c - 2)
    n = place(sb, 1, c - 2, c + 2, C.PASSIVE)
    assert decide(sb)[0][0, a - sb.P] == n
    sb.s.npc_target[0, a] = -1
    sb.s.row[0, p], sb.s.col[0, p] = c - 2, c
    sb.s.row[0, n], sb.s.col[0, n] = c, c - 2
    assert decide(sb)[0][0, a - sb.P] == n
    # Nearer rings first: the player one tile away beats the NPC.
    sb.s.npc_target[0, a] = -1
    sb.s.row[0, p], sb.s.col[0, p] = c + 1, c + 1
    assert decide(sb)[0][0, a - sb.P] == p
    ranks = npc.scan_rank(2, "cpu")  # (dr, dc) at [dr + 3, dc + 3]
    assert ranks[3 - 2, 3 - 2] < ranks[3 - 2, 3 + 2] < ranks[3 + 2, 3 - 2] < ranks[3, 3 - 2]
    assert ranks[3, 3 - 2] < ranks[3 - 2, 3] and ranks[0, 3] == ranks.max()  # beyond range last


def test_aggressive_npc_keeps_its_target(sandbox):
    """A valid target (alive, within 7) is kept even when another entity comes nearer."""
    sb = sandbox(num_npcs=2, npc_spawn_attempts=0)
    c = sb.c
    a = place(sb, 0, c, c, C.AGGRESSIVE, level=5)
    p = sb.player(0, c, c + 5)
    decide(sb)
    assert sb.s.npc_target[0, a] == p
    n = place(sb, 1, c + 1, c, C.PASSIVE)
    decide(sb)
    assert sb.s.npc_target[0, a] == p
    sb.s.col[0, p] = c + 8  # out of range: dropped, the NPC next to it is taken
    decide(sb)
    assert sb.s.npc_target[0, a] == n


@pytest.mark.parametrize("attack_npcs", [True, False])
def test_neutral_npc_retaliates_against_an_npc(sandbox, attack_npcs):
    """2.0 records any attacker (``Attack.call``); a neutral NPC hunts it while valid."""
    sb = sandbox(num_npcs=2, npc_spawn_attempts=0, npc_attack_npcs=attack_npcs)
    c = sb.c
    sb.player(0, c - 10, c - 10)
    a = place(sb, 0, c, c + 3, C.AGGRESSIVE, level=1)
    n = place(sb, 1, c, c, C.NEUTRAL, level=1)
    sb.s.attacker[0, n] = a
    sb.s.damage[0, n] = 5
    target, _, move = decide(sb)
    if attack_npcs:
        assert target[0, n - sb.P] == a and move[0, n - sb.P] == E_
    else:
        assert target[0, n - sb.P] == -1


def test_refilled_slot_is_not_the_old_attacker(sandbox):
    """A dead NPC's slot refilled by a newcomer is no longer anyone's attacker."""
    sb = sandbox(num_npcs=2, npc_spawn_attempts=25, npc_respawn_dead_danger=False)
    c = sb.c
    sb.player(0, c - 10, c - 10)
    a = place(sb, 0, c, c + 3, C.AGGRESSIVE, level=1)
    n = place(sb, 1, c, c, C.NEUTRAL, level=1)
    sb.s.attacker[0, n] = a
    sb.s.alive[0, a] = False  # died: its slot is free for the refill
    npc.spawn(sb.s, sb.cfg, sb.world.gen, sb.world.passable)
    assert sb.s.alive[0, a] and sb.s.attacker[0, n] == -1


def test_npc_killer_takes_the_gold(sandbox):
    """2.0's ``NPC.receive_damage`` gives the dead NPC's gold to its killer, an NPC too."""
    sb = sandbox(num_npcs=2, npc_spawn_attempts=0)
    c = sb.c
    sb.player(0, c - 10, c - 10)
    a = place(sb, 0, c, c + 1, C.AGGRESSIVE, level=9)
    v = place(sb, 1, c, c, C.PASSIVE, level=1)
    sb.s.gold[0, a], sb.s.gold[0, v], sb.s.health[0, v] = 9, 3, 1
    sb.step()
    assert not sb.s.alive[0, v] and sb.s.gold[0, a] == 12


def test_gold_passes_along_an_npc_chain(sandbox):
    """NPC A kills NPC B, then NPC C (later in spawn order) kills A in the same tick: C ends
    with A's gold and B's (2.0 hands the gold on at each death)."""
    sb = sandbox(num_npcs=3, npc_spawn_attempts=0)
    c = sb.c
    sb.player(0, c - 10, c - 10)
    b = place(sb, 1, c, c, C.PASSIVE, level=1)
    a = place(sb, 0, c, c + 1, C.AGGRESSIVE, level=9)
    k = place(sb, 2, c, c + 3, C.AGGRESSIVE, level=9)
    sb.s.gold[0, b], sb.s.gold[0, a], sb.s.gold[0, k] = 3, 5, 7
    sb.s.health[0, b], sb.s.health[0, a] = 1, 1
    sb.step()
    assert not sb.s.alive[0, a] and not sb.s.alive[0, b]
    assert sb.s.gold[0, k] == 15


# --- hunting step --------------------------------------------------------------------------------


@pytest.mark.parametrize("dr,dc,move", [
    (3, 3, E_), (3, -3, W_), (-3, 3, N_), (-3, -3, N_),   # diagonals: North, else sideways
    (2, 3, E_), (3, 2, S_), (-3, 2, N_), (-2, -3, W_),  # otherwise the larger axis
    (5, 0, S_), (0, -5, W_), (1, 1, STAY), (0, 0, None)])
def test_hunting_step_is_2_0s_astar(sandbox, dr, dc, move):
    """2.0's A* ignores obstacles; its first step toward an offset: the larger axis, and on a
    diagonal North when the target is north, else East/West. Adjacent: hold; same tile:
    wander."""
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0)
    c = sb.c
    a = place(sb, 0, c, c, C.AGGRESSIVE, level=1)
    sb.player(0, c + dr, c + dc)
    target, _, got = decide(sb)
    in_reach = max(abs(dr), abs(dc)) <= 3
    assert sb.s.npc_target[0, a] == 0 and target[0, a - sb.P] == (0 if in_reach else -1)
    if move is not None:
        assert got[0, a - sb.P] == move


def test_hunting_step_into_water_fails(sandbox):
    """The step is chosen blind to the terrain: into Water, the NPC stays."""
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0)
    c = sb.c
    a = place(sb, 0, c, c, C.AGGRESSIVE, level=1)
    sb.player(0, c + 3, c + 3)
    sb.set_tile(c, c + 1, C.WATER)
    sb.step()
    assert (sb.s.row[0, a], sb.s.col[0, a]) == (c, c)


# --- wandering -----------------------------------------------------------------------------------


def test_wander_sequence_in_spawn_order(sandbox):
    """Wanderers read the next entries of the map's cyclic sequence in spawn order (not slot
    order); a blocked start deflects to the next of N, S, W, E; hunters do not read."""
    sb = sandbox(num_npcs=4, npc_spawn_attempts=0)
    c = sb.c
    s = sb.s
    # Slots 0..3 spawned in the order 2, 0, 3, 1; slot 3 hunts (no read).
    place(sb, 0, c - 5, c - 5, C.PASSIVE, seq=2)
    place(sb, 1, c + 5, c + 5, C.PASSIVE, seq=9)
    place(sb, 2, c - 5, c + 5, C.PASSIVE, seq=1)
    place(sb, 3, c + 5, c - 5, C.AGGRESSIVE, seq=5)
    sb.player(0, c + 5, c - 2)
    s.npc_wander_seq[0] = 0
    s.npc_wander_seq[0, 10:13] = torch.tensor([2, 0, 3])  # W, N, E in 2.0's order N, S, W, E
    s.npc_wander_pos[0] = 9
    sb.set_tile(c - 6, c - 5, C.STONE)  # North of slot 0 blocked: N -> S
    _, _, move = decide(sb)
    assert move[0].tolist() == [S_, E_, W_, E_]  # slot 2 reads 10 (W), slot 0 11, slot 1 12
    assert s.npc_wander_pos[0] == 12
    # Every way blocked: stay (2.0 returns North, which fails).
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        sb.set_tile(c - 5 + dr, c + 5 + dc, C.WATER)
    assert decide(sb)[2][0, 2] == STAY


def test_wander_sequence_wraps_and_is_drawn_at_reset(sandbox):
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0)
    s = sb.s
    place(sb, 0, sb.c, sb.c, C.PASSIVE)
    s.npc_wander_seq[0] = 1  # South
    s.npc_wander_seq[0, 0] = 3  # East
    s.npc_wander_pos[0] = npc.WANDER_SEQUENCE - 1
    assert decide(sb)[2][0, 0] == E_ and s.npc_wander_pos[0] == 0
    assert decide(sb)[2][0, 0] == S_ and s.npc_wander_pos[0] == 1
    sb.world.reset()
    seq = sb.s.npc_wander_seq[0]
    assert sb.s.npc_wander_pos[0] == 0 and seq.min() >= 0 and seq.max() <= 3
    assert len(set(seq.tolist())) == 4


def test_uniform_wander_when_off(sandbox):
    sb = sandbox(num_npcs=1, npc_spawn_attempts=0, npc_wander_sequence=False)
    place(sb, 0, sb.c, sb.c, C.PASSIVE)
    moves = {int(decide(sb)[2][0, 0]) for _ in range(40)}
    assert moves == {N_, S_, E_, W_} and sb.s.npc_wander_pos[0] == 0
