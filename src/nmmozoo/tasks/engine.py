"""Task assignment, per-tick evaluation and task rewards for all agents of all maps.

Specs are compiled once into tensors (predicate index, arguments, negation per clause; the
combination, subject, reward kind per task). Each tick, every clause is evaluated by looping
over the predicate types present, each once on the rows of all clauses that use it.
"""

from __future__ import annotations

import torch

from ..env.config import EnvConfig
from .predicates import PREDICATES, resolve_args
from .spec import MAX_CLAUSES, TaskError, TaskSpec

PRED_NAMES = tuple(sorted(PREDICATES))
PRED_INDEX = {n: i for i, n in enumerate(PRED_NAMES)}
MAX_ARGS = max(len(p.args) for p in PREDICATES.values())
KIND_PROGRESS, KIND_ONGOING, KIND_HOLD = range(3)
CATEGORIES = ("survival", "combat", "exploration", "skill", "item", "market")


ITEM_PREDICATES = ("OwnItem", "EquipItem", "FullyArmed", "ConsumeItem", "HarvestItem", "ListItem",
                   "BuyItem")


def check_fits(specs: list[TaskSpec], cfg: EnvConfig, source: str = "tasks") -> None:
    """Refuse a task that can never complete on this world: a tile outside the walkable
    square, a level above its cap, more members than the subject has, more free slots than the inventory has. The error names ``source[i]`` (the
    file and entry), the task and the argument. (The shipped task sets are written for the
    competition map and are not checked: they run on the small presets too. A tick past the
    horizon is allowed: short horizons are a common way to run a quick test.)"""
    lo, hi = cfg.map_border, cfg.map_size - cfg.map_border  # walkable rows and columns
    for i, sp in enumerate(specs):
        members = cfg.team_size if sp.subject == "team" else 1
        for c in sp.clauses:
            a = resolve_args(c.predicate, dict(c.args))
            limits = []
            if c.predicate == "OccupyTile":
                limits += [("row", lo, hi, f"a walkable row of the {cfg.map_size}-tile map"),
                           ("col", lo, hi, f"a walkable column of the {cfg.map_size}-tile map")]
            if c.predicate == "AttainSkill":
                cap = len(cfg.level_thresholds)
                limits.append(("level", 0, cap, f"≤ the level cap ({cap})"))
            if c.predicate in ITEM_PREDICATES:
                limits.append(("level", 0, cfg.max_item_level, f"≤ max_item_level ({cfg.max_item_level})"))
            if c.predicate == "InventorySpaceGE":
                limits.append(("space", 0, cfg.inventory_slots, f"≤ inventory_slots ({cfg.inventory_slots})"))
            if PREDICATES[c.predicate].combine == "members":
                limits.append(("num_agent", 1, members, f"≤ the subject's members ({members})"))
            for arg, low, high, what in limits:
                if not low <= a[arg] <= high:
                    raise TaskError(f"{source}[{i}] ({sp.name or sp.text()}): {c.predicate} argument "
                                    f"{arg}={a[arg]} can never be met: expected {what}, in [{low}, {high}]")


class Context:
    """What predicates read: the state, the config, teams, and what agents see."""

    def __init__(self, world, team: torch.Tensor):
        self.s, self.cfg, self.team = world.state, world.cfg, team
        self.observer = world.observer
        self.window = world.observer.win_flat

    def seen_slots(self, b, who):
        return self.observer.slots[b.expand(*who.shape), who.clamp_min(0)].long()  # [n, T, K]

    def seen_ids(self, b, who):
        slots = self.seen_slots(b, who)
        E = self.cfg.num_entities
        ids = self.s.ent_id[b[..., None].expand_as(slots), slots.clamp_max(E - 1)]
        return torch.where(slots < E, ids, 0)


class TaskEngine:
    def __init__(self, cfg: EnvConfig, specs: list[TaskSpec], num_maps: int, device,
                 schedule: bool):
        if not specs:
            raise ValueError("a task set needs at least one task")
        self.cfg, self.specs, self.schedule = cfg, list(specs), schedule
        if cfg.tasks not in ("curriculum", "heldout", "none"):  # a user's task file
            check_fits(self.specs, cfg, cfg.tasks)
        T, K, A = len(specs), MAX_CLAUSES, MAX_ARGS
        pred = torch.full((T, K), -1, dtype=torch.int64)
        args = torch.zeros(T, K, A, dtype=torch.int64)
        neg = torch.zeros(T, K, dtype=torch.bool)
        for i, sp in enumerate(specs):
            for k, c in enumerate(sp.clauses):
                pred[i, k] = PRED_INDEX[c.predicate]
                vals = resolve_args(c.predicate, dict(c.args))
                for j, (name, _, _) in enumerate(PREDICATES[c.predicate].args):
                    args[i, k, j] = vals[name]
                neg[i, k] = c.negate
        kinds = {"progress": KIND_PROGRESS, "ongoing": KIND_ONGOING, "hold": KIND_HOLD}
        dev = torch.device(device)
        self.pred, self.args, self.neg = pred.to(dev), args.to(dev), neg.to(dev)
        self.is_or = torch.tensor([sp.combine == "or" for sp in specs], device=dev)
        self.is_team = torch.tensor([sp.subject == "team" for sp in specs], device=dev)
        self.kind = torch.tensor([kinds[sp.reward] for sp in specs], device=dev)
        self.hold = torch.tensor([sp.hold_ticks for sp in specs], device=dev)
        self.weight = torch.tensor([sp.weight for sp in specs], dtype=torch.float32)
        if float(self.weight.sum()) <= 0:
            raise ValueError("task weights sum to 0: no task can be sampled")
        B, P = num_maps, cfg.num_agents
        self.task_id = torch.zeros(B, P, dtype=torch.int64, device=dev)
        self.best = torch.zeros(B, P, device=dev)
        self.progress = torch.zeros(B, P, device=dev)
        self.held = torch.zeros(B, P, dtype=torch.int64, device=dev)
        self.completed = torch.zeros(B, P, dtype=torch.bool, device=dev)
        self.completed_tick = torch.full((B, P), -1, dtype=torch.int64, device=dev)
        ts = max(1, cfg.team_size)
        self.team = (torch.arange(P, device=dev) // ts).expand(B, P)
        n_teams = (P + ts - 1) // ts
        members = torch.full((n_teams, ts), -1, dtype=torch.int64)
        for t in range(n_teams):  # team rosters: built once
            m = torch.arange(t * ts, min(P, (t + 1) * ts))
            members[t, :len(m)] = m
        self.members = members.to(dev)
        self._cursor = 0
        self._groups: list = []

    # --- assignment ---------------------------------------------------------------------------------
    def assign(self, idx: torch.Tensor, gen: torch.Generator) -> None:
        """New tasks for the agents of maps ``idx`` (sampled by weight, or the schedule)."""
        n, P = idx.numel(), self.cfg.num_agents
        T = len(self.specs)
        if self.schedule:  # every task in turn, so each is tried equally often
            tid = (torch.arange(n * P) + self._cursor) % T
            self._cursor = (self._cursor + n * P) % T
        else:
            cpu = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=gen,
                                                                   device=gen.device)))
            tid = torch.multinomial(self.weight, n * P, replacement=True, generator=cpu)
        dev = self.task_id.device
        self.task_id[idx] = tid.view(n, P).to(dev)
        for f, v in ((self.best, 0), (self.progress, 0), (self.held, 0), (self.completed, False),
                     (self.completed_tick, -1)):
            f[idx] = v
        self._prepare()

    # --- evaluation ----------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Group every agent's clauses by predicate type (all clause slots together), with
        their arguments, subject members and where their progress goes, once per assignment:
        tasks do not change within an episode. Also the per-agent task constants."""
        P = self.task_id.shape[1]
        K = MAX_CLAUSES
        tid = self.task_id.view(-1)
        pk = self.pred[tid].view(-1)  # [B*P*K] predicate of each clause slot (-1: none)
        order = torch.argsort(pk, stable=True)
        counts = torch.bincount(pk + 1, minlength=len(PRED_NAMES) + 1).tolist()
        start = counts[0]  # -1: no clause in that slot
        groups, dest, neg = [], [], []
        for pid, n in enumerate(counts[1:]):
            if n == 0:
                continue
            flat = order[start:start + n]  # b*P*K + p*K + k
            start += n
            rows, k = torch.div(flat, K, rounding_mode="floor"), flat % K
            b, p = torch.div(rows, P, rounding_mode="floor"), rows % P
            t = tid[rows]
            pred = PREDICATES[PRED_NAMES[pid]]
            args = self.args[t, k]
            a = {name: args[:, j:j + 1] for j, (name, _, _) in enumerate(pred.args)}
            team = self.is_team[t]
            who = torch.where(team[:, None], self.members[self.team[b, p]], -1)
            who[:, 0] = torch.where(team, who[:, 0], p)
            if not bool(team.any()):
                who = who[:, :1]
            valid = who >= 0
            # Divisor of the combined measure (sum: the goal; members: num_agent).
            goal = {"sum": pred.goal, "members": "num_agent"}.get(pred.combine)
            div = a[goal][:, 0].clamp_min(1).float() if goal else None
            groups.append((pred, b[:, None], who, a, valid, div))
            dest.append(flat)
            neg.append(self.neg[t, k])
        self._groups = groups
        self._dest = torch.cat(dest) if dest else torch.zeros(0, dtype=torch.int64)
        self._neg = torch.cat(neg) if neg else torch.zeros(0, dtype=torch.bool)
        is_or = self.is_or[self.task_id]
        self._is_or = is_or
        self._clause0 = torch.where(is_or, 0.0, 1.0)[..., None].repeat(1, 1, K)  # empty slots
        kind = self.kind[self.task_id]
        self._is_p, self._is_o, self._is_h = kind == KIND_PROGRESS, kind == KIND_ONGOING, kind == KIND_HOLD
        self._hold = self.hold[self.task_id]

    def _evaluate(self, ctx: Context) -> torch.Tensor:
        """Progress in [0, 1] of every agent's task ``[B, P]`` (dead agents included)."""
        progs = []
        for pred, b, who, a, valid, div in self._groups:
            m = pred.measure(ctx, b, who, a)
            if pred.combine == "sum":
                prog = (m * valid).sum(-1) / div
            elif pred.combine == "members":
                prog = ((m >= 1) & valid).sum(-1) / div
            elif pred.combine == "any":
                prog = ((m > 0) & valid).any(-1)
            elif pred.combine == "all":
                prog = ((m > 0) | ~valid).all(-1)
            else:  # self
                prog = m[:, 0]
            progs.append(prog.float())
        clause = self._clause0.clone()
        if progs:  # every clause at once: clamp, negate, and put in its slot
            prog = torch.cat(progs).clamp_(0, 1)
            prog = torch.where(self._neg, 1 - prog, prog)
            clause.view(-1).index_put_((self._dest,), prog)
        return torch.where(self._is_or, clause.amax(-1), clause.amin(-1))

    def step(self, world) -> torch.Tensor:
        """Evaluate every live agent's task on the state after the tick; returns the task
        reward ``[B, P]`` and updates progress and completion."""
        s, P = world.state, self.cfg.num_agents
        alive = s.alive[:, :P]
        prog = self._evaluate(Context(world, self.team)) * alive
        is_p, is_o, is_h = self._is_p, self._is_o, self._is_h
        open_ = alive & ~self.completed
        gain = (prog - self.best).clamp_min(0)
        self.best = torch.maximum(self.best, prog)
        self.held = torch.where(alive & (prog >= 1), self.held + 1, 0)
        held_done = is_h & (self.held >= self._hold)
        reward = gain * is_p + prog * is_o + (held_done & open_).float()
        reward = reward * (is_o | open_)
        done_now = open_ & ((~is_h & (prog >= 1)) | held_done)
        self.completed_tick = torch.where(done_now, s.tick[:, None], self.completed_tick)
        self.completed |= done_now
        self.progress = prog
        return reward * alive
