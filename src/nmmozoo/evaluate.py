"""Evaluation on the held-out map pool: lifespan and task completion of a policy (or of the
uniform random masked policy, the reference any learning must beat).

    from nmmozoo.evaluate import evaluate
    evaluate(policy, preset="tiny", tasks="heldout", num_maps=8, episodes=2)

Every map plays ``episodes`` whole episodes on the evaluation pool (maps never used for
training); each agent-episode counts once. With the ``heldout`` tasks the schedule gives
every task equally often, and the result carries the competition's category score.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torchrl.envs import TransformedEnv

from .env import make_env, random_actions
from .train.metrics import LIFESPAN, TaskIds, mean_by


class EvalError(ValueError):
    """An evaluation that cannot run as asked (a policy built for another env size, an
    unknown model or checkpoint); the message names the problem."""


def resolve_tasks(tasks: str, base: str | None = None) -> str:
    """A task set name as given; a task file path as given when it exists from the working
    directory, else beside ``base`` (a recipe's folder), else in the package's recipes folder
    (``recipes/tasks/survival.yaml`` works from anywhere). A file found nowhere is an
    :class:`EvalError` naming the path and where it was looked for."""
    from importlib import resources
    from pathlib import Path

    if not isinstance(tasks, str) or tasks in ("curriculum", "heldout", "none"):
        return tasks
    p = Path(tasks)
    if p.is_absolute() or p.exists():
        if not p.exists():
            raise EvalError(f"tasks: task file {tasks!r} does not exist")
        return tasks
    recipes = Path(str(resources.files("nmmozoo.recipes")))
    tried = ([Path(base)] if base else []) + [recipes]
    rel = [p] + ([Path(*p.parts[1:])] if len(p.parts) > 1 and p.parts[0] == "recipes" else [])
    for root in tried:
        for r in rel:
            if (root / r).is_file():
                return str(root / r)
    raise EvalError(f"tasks: task file {tasks!r} not found (looked in the working directory "
                    f"{str(Path.cwd())!r} and in {[str(t) for t in tried]})")


def check_sizes(policy, env) -> None:
    """Refuse a policy built for observation and action sizes other than ``env``'s (as
    ``create_policy(pretrained=True)`` does), naming every size that differs."""
    from .policy import env_sizes

    want = env_sizes(env)
    have = dict(policy.sizes)
    if have != want:
        diff = {k: (have.get(k), want.get(k)) for k in sorted(set(have) | set(want))
                if have.get(k) != want.get(k)}
        raise EvalError(f"policy {getattr(policy, 'name', '?')!r} was built for other observation and "
                        f"action sizes than this env; (policy, env): {diff}. Evaluate it on the "
                        "preset and env settings it was trained with")


def _actor(p, seed: int):
    """A policy as evaluated: None (random masked actions), ``"forager"`` (or another scripted
    policy's name) or a policy object with ``act(td)``."""
    if isinstance(p, str):
        from .scripted import SCRIPTED, make_scripted

        if p not in SCRIPTED:
            raise EvalError(f"unknown policy {p!r}: None (random), a policy object or a scripted "
                            f"policy ({', '.join(SCRIPTED)})")
        return make_scripted(p, seed=seed)
    return p


def _summary(lifespans, task_ids, completed, agent_steps: int, specs, tasks, samples: bool) -> dict[str, Any]:
    life = torch.cat(lifespans) if lifespans else torch.zeros(0)
    out: dict[str, Any] = {"lifespan": float(life.mean()) if life.numel() else float("nan"),
                           "agent_episodes": int(life.numel()), "agent_steps": agent_steps}
    if samples:
        out["lifespans"] = life.tolist()
    if specs:
        ids, comp = torch.cat(task_ids), torch.cat(completed)
        out["completion"] = float(comp.mean())
        names = [sp.name or f"task_{i}" for i, sp in enumerate(specs)]
        out["by_task"] = {k: float(v) for k, v in mean_by(ids, comp, names).items()}
        out["by_category"] = {k: float(v) for k, v in mean_by(ids, comp, [sp.group for sp in specs]).items()}
        if tasks == "heldout":
            from .tasks import score

            out["score"] = score(out["by_task"])
    return out


@torch.no_grad()
def evaluate(policy=None, preset: str = "competition2023", tasks: str = "heldout", num_maps: int = 8,
             episodes: int = 1, seed: int = 0, deterministic: bool = False, device: str = "cpu",
             samples: bool = False, policies: list | None = None, rest=None, own_rows: bool = True,
             **env_overrides: Any) -> dict[str, Any]:
    """Play ``episodes`` episodes on each of ``num_maps`` held-out maps. ``policy`` is a zoo
    :class:`~nmmozoo.policy.Policy` (None: random masked actions; ``"forager"``: the scripted
    forager of :mod:`nmmozoo.scripted`). Returns the mean
    ``lifespan`` (ticks), ``completion`` (share of agent-episodes whose task was completed),
    ``by_task`` and ``by_category`` completion rates, the held-out ``score`` when the tasks
    are the held-out set, ``agent_episodes``, ``agent_steps`` (live agent-steps played in the
    counted episodes) and ``wall_s``; with ``samples`` also every agent-episode's
    ``lifespans`` (a list). A policy built for other env sizes is an :class:`EvalError`.

    **PvP**: ``policies=[p0, p1, ...]`` (each as ``policy``) share every map. The first
    ``G·⌊P/G⌋`` agent slots are split into ``G = len(policies)`` equal contiguous groups; on
    map ``b`` in its ``e``-th episode policy ``i`` plays group ``(i + seed + b + e) % G``, so
    over maps, episodes and seeds each policy plays each group's positions. The ``P mod G``
    slots left over (as the 2023 PvP filled its 128 slots with 9 groups of 14 and the rest
    with a baseline) are played by ``rest`` (as ``policy``; None: random masked actions) and
    scored for nobody. With ``own_rows`` a zoo policy's network runs on its own live agents
    only (the same actions for them; False: on every live agent, the others' actions thrown
    away — the reference the shortcut is tested against). Returns ``{"protocol": "pvp",
    "groups", "group_size", "rest", "policies": [one PvE-style result per policy, from its
    own agents only], "wall_s"}``."""
    t0 = time.perf_counter()
    if episodes < 1 or num_maps < 1:
        raise ValueError(f"episodes and num_maps must be ≥ 1, got {episodes}, {num_maps}")
    pvp = policies is not None
    actors = [_actor(p, seed + 7919 * i) for i, p in enumerate(policies if pvp else [policy])]
    if pvp and len(actors) < 2:
        raise EvalError(f"PvP needs at least 2 policies, got {len(actors)}")
    G = len(actors)
    obs_mode = env_overrides.pop("obs_mode", "dense")
    tasks = resolve_tasks(tasks)
    env = make_env(preset, num_maps=num_maps, device=device, seed=seed, obs_mode=obs_mode,
                   tasks=tasks, map_pool="eval", **env_overrides)
    P = env.config.num_agents
    size = P // G
    if size < 1:
        raise EvalError(f"PvP: {G} policies need at least {G} agents per map, the env has {P}")
    n_rest = P - G * size
    if n_rest:  # the filler of the left-over slots: one more actor, index G, scored for nobody
        actors.append(_actor(rest, seed + 7919 * G))
    for i, a in enumerate(actors):
        if a is not None:
            if getattr(a, "sizes", None) is not None:
                check_sizes(a, env)
            actors[i] = a.to(device).eval()
    engine = env.world.tasks
    if engine is not None:  # each ended agent-episode's task comes with the step
        env = TransformedEnv(env, TaskIds())
    specs = engine.specs if engine is not None else []
    gen = torch.Generator(device="cpu").manual_seed(seed)
    torch.manual_seed(seed)
    td = env.reset()
    B = num_maps
    states = [None] * len(actors)  # recurrent states, per policy
    for i, a in enumerate(actors):
        if a is not None and getattr(a, "recurrent_shape", None) is not None:
            states[i] = torch.zeros(B, P, *a.recurrent_shape, device=device)
    is_init = torch.ones(B, 1, dtype=torch.bool, device=device)
    group = (torch.arange(P) // size)[None, :]  # [1, P]; G for the left-over slots

    def owners(fin: torch.Tensor) -> torch.Tensor:  # [B, P]: the policy playing each agent slot
        rot = (seed + torch.arange(B) + fin) % G
        return torch.where(group < G, (group - rot[:, None]) % G, G).to(td.device)

    finished = torch.zeros(B, dtype=torch.int64)
    lifespans = [[] for _ in range(G)]
    task_ids = [[] for _ in range(G)]
    completed = [[] for _ in range(G)]
    agent_steps = [0] * G
    while bool((finished < episodes).any()):
        counted = (finished < episodes).to(td.device)
        own = owners(finished)
        live = td["agents", "mask"] & counted[:, None]
        for i in range(G):
            agent_steps[i] += int((live & (own == i)).sum())
        chosen = {}
        alive = td["agents", "mask"]
        for i, a in enumerate(actors):
            if a is None:
                random_actions(td, generator=gen)
            else:
                # the shortcut: a network that runs on the live rows alone sees only its own
                own_only = pvp and own_rows and getattr(a, "live_only", False)
                if own_only:
                    td["agents", "mask"] = alive & (own == i)
                if states[i] is not None:
                    td["agents", "recurrent_state"] = states[i]
                    td["is_init"] = is_init
                a.act(td, deterministic=deterministic)
                if own_only:
                    td["agents", "mask"] = alive
                if states[i] is not None:
                    states[i] = td["next", "agents", "recurrent_state"]
                    del td["next"]
                    del td["agents", "recurrent_state"]
                    del td["is_init"]
            if not pvp:
                break
            for h, v in td["agents", "action"].items():
                chosen[h] = v.clone() if i == 0 else torch.where(own == i, v, chosen[h])
        for h, v in chosen.items():
            td.set(("agents", "action", h), v)
        step, td = env.step_and_maybe_reset(td)
        nxt = step["next"]
        done = nxt["done"].reshape(B).cpu()
        ended = done & (finished < episodes)
        if ended.any():
            own_c = own.cpu()[ended]
            life = nxt["agents", "stats"][..., LIFESPAN].cpu()[ended].float()
            comp = nxt["agents", "task_completed"].cpu()[ended].float() if engine is not None else None
            tid = nxt["agents", "task_id"].cpu()[ended] if engine is not None else None
            for i in range(G):
                sel = own_c == i
                lifespans[i].append(life[sel].reshape(-1))
                if engine is not None:
                    completed[i].append(comp[sel].reshape(-1))
                    task_ids[i].append(tid[sel].reshape(-1))
        finished += done.long()
        is_init = nxt["done"].reshape(B, 1).clone()
        for i in range(len(actors)):
            if states[i] is not None:  # a new episode starts from a zero state
                states[i] = torch.where(is_init.reshape(B, *[1] * (states[i].dim() - 1)),
                                        torch.zeros_like(states[i]), states[i])
    outs = [_summary(lifespans[i], task_ids[i], completed[i], agent_steps[i], specs, tasks, samples)
            for i in range(G)]
    wall = time.perf_counter() - t0
    if not pvp:
        outs[0]["wall_s"] = wall
        return outs[0]
    for o in outs:
        o["wall_s"] = wall
    return {"protocol": "pvp", "groups": G, "group_size": size, "rest": n_rest, "policies": outs, "wall_s": wall}


# --- several seeds: 95% confidence intervals ---------------------------------------------------------

# Student's t 0.975 quantiles for 1..30 degrees of freedom (beyond: a Cornish-Fisher expansion)
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010,
         2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739,
         2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
CI_METHOD = "95% Student-t interval over seeds: mean ± t(0.975, n-1) · s / √n (s: sample sd of the per-seed values)"


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"a t quantile needs ≥ 1 degree of freedom, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def t_interval(values) -> dict[str, Any]:
    """Mean and 95% t-interval of per-seed ``values``: ``{mean, ci95: [lo, hi] | None,
    half_width | None, n, per_seed}`` (one value: no interval)."""
    v = [float(x) for x in values]
    n = len(v)
    if n == 0:
        raise ValueError("no values")
    mean = sum(v) / n
    if n < 2:
        return {"mean": mean, "ci95": None, "half_width": None, "n": n, "per_seed": v}
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    h = t975(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "ci95": [mean - h, mean + h], "half_width": h, "n": n, "per_seed": v}


def _over_seeds(runs: list[dict], name: str, seeds: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "seeds": seeds, "lifespan": t_interval(r["lifespan"] for r in runs),
                           "agent_episodes": sum(r["agent_episodes"] for r in runs),
                           "agent_steps": sum(r["agent_steps"] for r in runs),
                           "wall_s": sum(r["wall_s"] for r in runs),
                           "lifespans": [x for r in runs for x in r["lifespans"]]}
    if "completion" in runs[0]:
        out["completion"] = t_interval(r["completion"] for r in runs)
        for key, src in (("completion_by_category", "by_category"), ("completion_by_task", "by_task")):
            names = sorted({k for r in runs for k in r[src]})
            # a task no agent had in one seed's episodes is missing there: that seed is left out
            out[key] = {k: t_interval(r[src][k] for r in runs if k in r[src]) for k in names}
    if "score" in runs[0]:
        out["score"] = t_interval(r["score"]["total"] for r in runs)
        cats = [c for c in runs[0]["score"] if c != "total"]
        out["score_by_category"] = {c: t_interval(r["score"][c] for r in runs) for c in cats}
    return out


def evaluate_seeds(policy=None, seeds=(0, 1, 2), name: str = "policy", **kwargs: Any) -> dict[str, Any]:
    """:func:`evaluate` once per seed; every number with its 95% t-interval over seeds
    (``CI_METHOD``). Returns ``{name, seeds, lifespan, completion, score, score_by_category,
    completion_by_category, completion_by_task, agent_episodes, agent_steps, wall_s,
    lifespans}`` (``score*`` with the held-out tasks only)."""
    seeds = list(seeds)
    if not seeds:
        raise EvalError("no seeds to evaluate")
    runs = [evaluate(policy, seed=s, samples=True, **kwargs) for s in seeds]
    return _over_seeds(runs, name, seeds)


def evaluate_seeds_pvp(policies: list, names: list[str], seeds=(0, 1, 2), **kwargs: Any) -> list[dict[str, Any]]:
    """PvP (:func:`evaluate` with ``policies``) once per seed: one result per policy, as
    :func:`evaluate_seeds` gives, from that policy's own agents only (``wall_s``: the shared
    games' time)."""
    seeds = list(seeds)
    if not seeds:
        raise EvalError("no seeds to evaluate")
    if len(names) != len(policies) or len(set(names)) != len(names):
        raise EvalError(f"PvP: give one distinct name per policy, got {names}")
    runs = [evaluate(policies=policies, seed=s, samples=True, **kwargs) for s in seeds]
    return [_over_seeds([r["policies"][i] for r in runs], n, seeds) for i, n in enumerate(names)]


# --- what `nmmozoo test` evaluates -----------------------------------------------------------------

# recipe env fields that say how a run is executed, not what world it plays: not carried over
RUN_FIELDS = ("num_maps", "device", "seed", "workers", "obs_mode", "tasks", "early_stop_agents",
              "mask_last_sell_price", "map_pool")


def _recipe_world(recipe: dict | None) -> tuple[str | None, dict]:
    """(preset, world fields) of a recipe's env section, run fields left out."""
    env = dict((recipe or {}).get("env") or {})
    preset = env.pop("preset", None)
    return preset, {k: v for k, v in env.items() if k not in RUN_FIELDS}


def _trained_sizes(recipe: dict) -> dict:
    """The sizes of the env a recipe trained on (a Lightning checkpoint records its recipe,
    not its sizes)."""
    from .env import make_config
    from .policy import env_sizes

    env = dict(recipe.get("env") or {})
    preset, world = _recipe_world(recipe)
    tasks = env.get("tasks", "curriculum")
    cfg = make_config(preset or "competition2023", **world)
    return env_sizes(config=cfg, task_dim=0 if tasks == "none" else None)


def _pretrained_index() -> dict:
    """The shipped index, a damaged one an :class:`EvalError` naming it."""
    from .hub import HubError, pretrained_index

    try:
        return pretrained_index()
    except HubError as e:
        raise EvalError(str(e)) from None


def load_for_test(model: str, ckpt_path: str | None = None, run_dir: str | None = None,
                  preset: str | None = None, tasks: str = "heldout", init_seed: int = 0,
                  world: str = "recipe", **env_overrides: Any) -> dict[str, Any]:
    """Resolve ``nmmozoo test MODEL_OR_RECIPE --ckpt_path ...``: ``model`` is ``random``, ``forager`` (scripted), a
    recipe (name or YAML path) or a model of the zoo; ``ckpt_path`` a pretrained name of
    ``checkpoints/index.yaml``, a ``.safetensors`` export, a fit's ``.ckpt``, ``last``
    (``runs/<recipe>/checkpoints/last.ckpt``, or ``run_dir``'s), or None: the untrained model
    (initialised after ``torch.manual_seed(init_seed)``). Returns ``{policy (None: random),
    name, source, training_steps, preset, env}`` (``env``: the world fields the evaluation
    env is made with: the recipe's, or with ``world="preset"`` none, then ``env_overrides``). Anything unknown is an :class:`EvalError`."""
    from pathlib import Path

    from .env import make_config
    from .env.config import ConfigError
    from .hub import HubError, load_pretrained
    from .nn.registry import SpecError
    from .policy import Policy, create_policy, list_models, resolve_spec
    from .recipe import list_recipes, load_recipe

    recipe = None
    from .scripted import SCRIPTED

    if model in SCRIPTED:
        if ckpt_path:
            raise EvalError(f"the scripted {model} has no weights: drop --ckpt_path {ckpt_path!r}")
        world = dict(env_overrides)
        preset = preset or "competition2023"
        tasks = resolve_tasks(tasks)
        try:
            make_config(preset, tasks=tasks, map_pool="eval", **world)
        except ConfigError as e:
            raise EvalError(str(e)) from None
        return {"policy": model, "name": model, "source": f"scripted (nmmozoo.scripted.{SCRIPTED[model].__name__})",
                "training_steps": 0, "preset": preset, "env": world}
    if model == "random":
        if ckpt_path:
            raise EvalError(f"the random policy has no weights: drop --ckpt_path {ckpt_path!r}")
    elif model in list_recipes() or (model.endswith((".yaml", ".yml")) and Path(model).exists()):
        try:
            recipe = load_recipe(model)
        except SpecError as e:
            raise EvalError(str(e)) from None
    elif model not in list_models():
        raise EvalError(f"unknown model or recipe {model!r}: 'random', 'forager', a recipe ({', '.join(list_recipes())}), "
                        f"a recipe YAML path or a model ({', '.join(list_models())})")
    spec_name = None if model == "random" else model
    if recipe is not None:
        m = recipe["model"]
        spec_name = m if isinstance(m, str) else m.get("name")
    policy, source, steps, name = None, "random masked actions", 0, model
    if ckpt_path:
        path = ckpt_path
        if ckpt_path == "last":
            stem = Path(model).stem
            path = str(Path(run_dir or f"runs/{stem}") / "checkpoints" / "last.ckpt")
            if not Path(path).exists():
                raise EvalError(f"--ckpt_path last: no {path} (fit {stem} first, or give --run_dir)")
        if str(path).endswith(".ckpt") or (Path(path).is_file() and not str(path).endswith(".safetensors")
                                           and ckpt_path not in _pretrained_index()):
            from .train.ppo import CheckpointError, read_checkpoint, saved_recipe

            try:
                ckpt = read_checkpoint(path)
            except CheckpointError as e:
                raise EvalError(f"--ckpt_path: {e}") from None
            trained = saved_recipe(ckpt)
            if trained is None:
                raise EvalError(f"--ckpt_path {path!r}: the checkpoint records no recipe; cannot rebuild its policy")
            recipe = trained
            try:
                spec = resolve_spec(trained["model"] if not isinstance(trained["model"], dict)
                                    or "encoders" in trained["model"] else trained["model"]["name"],
                                    **({k: v for k, v in trained["model"].items() if k != "name"}
                                       if isinstance(trained["model"], dict) and "encoders" not in trained["model"]
                                       else {}))
                policy = Policy(spec, _trained_sizes(trained))
                state = {k[len("policy."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("policy.")}
                policy.load_state_dict(state, strict=True)
            except (SpecError, ConfigError, RuntimeError) as e:
                raise EvalError(f"--ckpt_path {path!r}: its policy does not rebuild from its recipe: "
                                f"{str(e).splitlines()[0]}") from None
            steps = int(ckpt.get("nmmozoo_agent_steps", 0)) or None
        else:
            try:
                policy = load_pretrained(path)
            except HubError as e:
                raise EvalError(f"--ckpt_path: {e}") from None
            recipe = getattr(policy, "recipe", None) or recipe
            entry = _pretrained_index().get(str(ckpt_path), {})
            steps = entry.get("agent_steps", entry.get("training_steps"))
        source = str(path)
        if spec_name is not None and policy.spec["name"] != spec_name:
            raise EvalError(f"--ckpt_path {str(path)!r} holds a {policy.spec['name']!r} policy, not {spec_name!r}")
        name = f"{policy.spec['name']} ({Path(str(ckpt_path)).name if ckpt_path != 'last' else 'last'})"
    if world not in ("recipe", "preset"):
        raise EvalError(f"--world {world!r}: 'recipe' (the recipe's world fields on the preset) or "
                        "'preset' (the preset's own world)")
    rec_preset, fields = _recipe_world(recipe)
    if world == "preset":
        fields = {}
    preset = preset or rec_preset or "competition2023"
    fields.update(env_overrides)
    world = fields
    tasks = resolve_tasks(tasks, (recipe or {}).get("_dir"))
    try:
        cfg = make_config(preset, tasks=tasks, map_pool="eval", **world)
    except ConfigError as e:
        raise EvalError(str(e)) from None
    if policy is None and model != "random":
        from .policy import env_sizes

        torch.manual_seed(init_seed)
        try:
            if recipe is not None:
                m = recipe["model"]
                policy = (create_policy(m["name"], config=cfg, task_dim=env_sizes(config=cfg)["task_dim"]
                                        if tasks != "none" else 0, **{k: v for k, v in m.items() if k != "name"})
                          if isinstance(m, dict) and "encoders" not in m else
                          create_policy(m, config=cfg, task_dim=None if tasks != "none" else 0))
            else:
                policy = create_policy(model, config=cfg, task_dim=None if tasks != "none" else 0)
        except (SpecError, ConfigError) as e:
            raise EvalError(str(e)) from None
        source, steps = f"untrained (torch.manual_seed({init_seed}))", 0
        name = f"{policy.spec['name']} (untrained)"
    return {"policy": policy, "name": name, "source": source, "training_steps": steps,
            "preset": preset, "env": world}
