"""The ``nmmozoo`` command."""

from __future__ import annotations

import argparse
import sys
import time

import torch


def _rollout(a: argparse.Namespace) -> int:
    from nmmozoo.env import ConfigError, make_env, random_actions
    from nmmozoo.env.constants import EVENT_NAMES

    try:
        env = make_env(a.preset, num_maps=a.maps, device=a.device, seed=a.seed,
                       obs_mode=a.obs_mode, tasks=a.tasks)
    except (ConfigError, ValueError) as e:
        print(f"nmmozoo rollout: {e}", file=sys.stderr)
        return 2
    td = env.reset()
    P = env.config.num_agents
    totals = torch.zeros(len(EVENT_NAMES), dtype=torch.int64)
    episodes, lifespans = 0, []
    t0 = time.perf_counter()
    for tick in range(a.ticks):
        random_actions(td)
        step, td = env.step_and_maybe_reset(td)
        nxt = step["next"]
        totals += nxt["agents", "events"].sum((0, 1)).long().cpu()
        ended = nxt["done"].squeeze(-1)
        if ended.any():
            episodes += int(ended.sum())
            lifespans += nxt["agents", "stats"][ended][..., 4].float().mean(-1).tolist()
    dt = time.perf_counter() - t0
    agent_steps = a.ticks * a.maps * P
    print(f"{a.preset}: {a.maps} maps x {P} agents, {a.ticks} ticks of random masked actions "
          f"on {a.device} in {dt:.1f}s ({agent_steps / dt:,.0f} agent-steps/s)")
    print(f"episodes ended: {episodes}; alive now: {float(td['agents', 'mask'].float().mean()):.0%}")
    if env.world.tasks is not None:
        done = float(env.world.tasks.completed.float().mean())
        print(f"tasks ({env.config.tasks}) completed in the current episodes: {done:.1%}")
    print("events per agent-tick: " + ", ".join(
        f"{n}={int(v) / agent_steps:.4f}" for n, v in zip(EVENT_NAMES, totals) if v))
    return 0


def _bench(a: argparse.Namespace) -> int:
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "env_throughput.py"
    if not script.exists():
        print("nmmozoo bench: benchmarks/env_throughput.py is in the source checkout only",
              file=sys.stderr)
        return 2
    sys.argv = [str(script), *a.args]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def _list(a: argparse.Namespace) -> int:
    from nmmozoo.nn.registry import REGISTRY
    from nmmozoo.policy import list_models

    print("models:")
    pretrained = set(list_models(pretrained=True))
    for m in list_models(a.pattern):
        print(f"  {m}{'  (pretrained)' if m in pretrained else ''}")
    for kind, entries in REGISTRY.items():
        if entries:
            print(f"{kind}:")
            for name, e in sorted(entries.items()):
                print(f"  {name:<26} {e.doc}")
    return 0


def _value(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _fit(a: argparse.Namespace, extra: list[str]) -> int:
    """``nmmozoo fit [RECIPE] [--section.key value ...] [--trainer.key value ...]``."""
    import json
    from pathlib import Path

    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from nmmozoo.hub import save_pretrained
    from nmmozoo.nn.registry import SpecError
    from nmmozoo.recipe import load_recipe
    from nmmozoo.train import PPOModule

    overrides, trainer_kw = {}, {}
    it = iter(extra)
    for tok in it:
        if not tok.startswith("--"):
            print(f"nmmozoo fit: expected --<section>[.<key>] <value>, got {tok!r}", file=sys.stderr)
            return 2
        key = tok[2:]
        try:
            val = _value(next(it))
        except StopIteration:
            print(f"nmmozoo fit: {tok} needs a value", file=sys.stderr)
            return 2
        if key.startswith("trainer."):
            trainer_kw[key[len("trainer."):]] = val
        else:
            overrides[key.removeprefix("model.") if key.startswith("model.ppo.") else key] = val
    try:
        recipe = load_recipe(a.recipe, overrides)
    except SpecError as e:
        print(f"nmmozoo fit: {e}", file=sys.stderr)
        return 2
    if a.print_config:
        print(json.dumps({k: v for k, v in recipe.items() if not k.startswith("_")}, indent=2))
        return 0
    name = Path(str(a.recipe)).stem
    run = Path(a.run_dir or f"runs/{name}")
    env_over = {"num_maps": a.num_maps} if a.num_maps else {}
    try:
        module = PPOModule(a.recipe, overrides=overrides, env_overrides=env_over, seed=a.seed)
    except (SpecError, ValueError) as e:  # bad model, env field, task file or reward term
        print(f"nmmozoo fit: {e}", file=sys.stderr)
        return 2
    trainer_kw.setdefault("max_steps", module.updates * module.steps_per_update)
    ckpt = ModelCheckpoint(dirpath=run / "checkpoints", save_last=True,
                           every_n_train_steps=int(trainer_kw.pop("checkpoint_every", 20)))
    try:
        trainer = L.Trainer(default_root_dir=str(run), logger=CSVLogger(str(run), name="logs"),
                            callbacks=[ckpt], max_epochs=-1, accelerator="cpu",
                            enable_model_summary=False, **trainer_kw)
    except TypeError as e:
        print(f"nmmozoo fit: bad trainer setting: {e}", file=sys.stderr)
        return 2
    trainer.fit(module, ckpt_path=a.ckpt_path)
    out = save_pretrained(module.policy, run / "policy.safetensors",
                          recipe={k: v for k, v in recipe.items() if not k.startswith("_")})
    print(f"trained {module.agent_steps:,} agent-steps; policy exported to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nmmozoo", description="Neural MMO 2 model zoo")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("rollout", help="run the bundled env with random masked actions")
    r.add_argument("--preset", default="competition2023")
    r.add_argument("--maps", type=int, default=8)
    r.add_argument("--ticks", type=int, default=300)
    r.add_argument("--device", default="cpu")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--obs-mode", default="dense", choices=["dense", "compact"])
    r.add_argument("--tasks", default="curriculum",
                   help="curriculum, heldout, none, or a task file (YAML/JSON)")
    r.set_defaults(func=_rollout)
    ls = sub.add_parser("list", help="registered models and components")
    ls.add_argument("pattern", nargs="?", default="*")
    ls.set_defaults(func=_list)
    b = sub.add_parser("bench", help="env throughput (benchmarks/env_throughput.py)")
    b.add_argument("args", nargs=argparse.REMAINDER)
    b.set_defaults(func=_bench)
    f = sub.add_parser("fit", help="train a recipe with PPO (Lightning over TorchRL)")
    f.add_argument("recipe", nargs="?", default="demo", help="recipe name or YAML path")
    f.add_argument("--ckpt_path", default=None, help="resume: 'last' or a .ckpt path")
    f.add_argument("--print_config", action="store_true", help="print the merged recipe")
    f.add_argument("--run_dir", default=None)
    f.add_argument("--num_maps", type=int, default=None)
    f.add_argument("--seed", type=int, default=0)
    f.set_defaults(func=None)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "fit":
        # Dotted recipe/trainer overrides are open-ended: split them off by hand.
        known, extra, rest = [], [], argv[1:]
        flags = {"--ckpt_path", "--run_dir", "--num_maps", "--seed"}
        i = 0
        while i < len(rest):
            tok = rest[i]
            if tok in flags:
                known += rest[i:i + 2]
                i += 2
            elif tok in ("--print_config", "-h", "--help"):
                known.append(tok)
                i += 1
            elif tok.startswith("--"):
                extra += rest[i:i + 2]
                i += 2
            else:
                known.append(tok)
                i += 1
        return _fit(f.parse_args(known), extra)
    a = ap.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
