"""Task assignment, per-tick evaluation and task rewards for all agents of all maps.

Specs are compiled once into tensors (predicate index, arguments, negation per clause; the
combination, subject, reward kind per task). Each tick, every clause slot is evaluated by
looping over the fixed list of predicate types present, each on the rows of the agents whose
task uses it.
"""

from __future__ import annotations

import torch

from ..env.config import EnvConfig
from .predicates import PREDICATES, resolve_args
from .spec import MAX_CLAUSES, TaskSpec

PRED_NAMES = tuple(sorted(PREDICATES))
PRED_INDEX = {n: i for i, n in enumerate(PRED_NAMES)}
MAX_ARGS = max(len(p.args) for p in PREDICATES.values())
KIND_PROGRESS, KIND_ONGOING, KIND_HOLD = range(3)
CATEGORIES = ("survival", "combat", "exploration", "skill", "item", "market")


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
        self.category = torch.tensor([CATEGORIES.index(sp.category) if sp.category in CATEGORIES
                                      else -1 for sp in specs], device=dev)
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
        """Group every agent's clauses by predicate type, with their arguments and subject
        members, once per assignment: tasks do not change within an episode."""
        B, P = self.task_id.shape
        tid = self.task_id.view(-1)
        groups = []
        for k in range(MAX_CLAUSES):
            pk = self.pred[tid, k]
            order = torch.argsort(pk, stable=True)
            counts = torch.bincount(pk + 1, minlength=len(PRED_NAMES) + 1).tolist()
            start = counts[0]  # -1: no k-th clause
            for pid, n in enumerate(counts[1:]):
                if n == 0:
                    continue
                rows = order[start:start + n]
                start += n
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
                groups.append((k, pred, b, p, a, who, who >= 0, self.neg[t, k]))
        self._groups = groups

    def _evaluate(self, ctx: Context) -> torch.Tensor:
        """Progress in [0, 1] of every agent's task ``[B, P]`` (dead agents included)."""
        tid = self.task_id
        is_or = self.is_or[tid]
        clause = torch.where(is_or, 0.0, 1.0)[..., None].repeat(1, 1, MAX_CLAUSES)
        for k, pred, b, p, a, who, valid, neg in self._groups:
            m = pred.measure(ctx, b[:, None], who, a) * valid
            if pred.combine == "sum":
                prog = m.sum(-1) / a[pred.goal][:, 0].clamp_min(1)
            elif pred.combine == "members":
                prog = (m >= 1).sum(-1).float() / a["num_agent"][:, 0].clamp_min(1)
            elif pred.combine == "any":
                prog = (m > 0).any(-1).float()
            elif pred.combine == "all":
                prog = ((m > 0) | ~valid).all(-1).float()
            else:  # self
                prog = m[:, 0]
            prog = prog.clamp(0, 1)
            clause[b, p, k] = torch.where(neg, 1 - prog, prog)
        return torch.where(is_or, clause.amax(-1), clause.amin(-1))

    def step(self, world) -> torch.Tensor:
        """Evaluate every live agent's task on the state after the tick; returns the task
        reward ``[B, P]`` and updates progress and completion."""
        s, P = world.state, self.cfg.num_agents
        alive = s.alive[:, :P]
        prog = self._evaluate(Context(world, self.team)) * alive
        tid = self.task_id
        kind = self.kind[tid]
        open_ = alive & ~self.completed
        gain = (prog - self.best).clamp_min(0)
        self.best = torch.maximum(self.best, prog)
        self.held = torch.where(alive & (prog >= 1), self.held + 1, 0)
        held_done = (kind == KIND_HOLD) & (self.held >= self.hold[tid])
        is_p, is_o, is_h = kind == KIND_PROGRESS, kind == KIND_ONGOING, kind == KIND_HOLD
        reward = gain * is_p + prog * is_o + (is_h & held_done & open_).float()
        reward = reward * (is_o | open_)
        done_now = open_ & (((kind != KIND_HOLD) & (prog >= 1)) | held_done)
        self.completed_tick = torch.where(done_now, s.tick[:, None], self.completed_tick)
        self.completed |= done_now
        self.progress = prog
        return reward * alive
