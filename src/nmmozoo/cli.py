"""The ``nmmozoo`` command."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

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


FIT_USAGE = """usage: nmmozoo fit [RECIPE] [--model.<section>.<key> VALUE ...] [--trainer.<arg> VALUE ...]
                   [--ckpt_path last|PATH] [--print_config] [--logger csv,tensorboard,wandb]
                   [--run_dir DIR] [--num_maps N] [--seed N] [--checkpoint_every N]

Train RECIPE (a name of recipes/, or a YAML path; default: demo) with PPO, through the
Lightning CLI: the recipe becomes the model's config, any field can be overridden
(--model.ppo.lr 1e-4, --model.env.num_maps 4, --model.policy takeru_tiny; --ppo.lr and
--env.num_maps are short for the same), any Trainer argument too (--trainer.max_steps 100,
--trainer.devices 2 --trainer.strategy ddp, --trainer.precision bf16-mixed).
Loggers: CSV by default; --logger tensorboard,wandb (W&B offline unless logged in)."""

LOGGERS = ("csv", "tensorboard", "wandb")


def _fit_args(argv: list[str]) -> tuple[str, dict, list[str]]:
    """Split ``nmmozoo fit`` arguments: the recipe, our shortcuts, and LightningCLI's."""
    recipe, opts, rest = "demo", {}, []
    shortcuts = {"--run_dir", "--num_maps", "--seed", "--logger", "--checkpoint_every"}
    i = 0
    if argv and not argv[0].startswith("-"):
        recipe, argv = argv[0], argv[1:]
    while i < len(argv):
        tok = argv[i]
        key, _, inline = tok.partition("=")
        if key in shortcuts:
            if not inline and i + 1 >= len(argv):
                raise ValueError(f"{key} needs a value")
            val = inline or argv[i + 1]
            if key in ("--num_maps", "--seed", "--checkpoint_every"):
                if not val.lstrip("-").isdigit() or (key != "--seed" and int(val) < 1):
                    raise ValueError(f"{key} expects {'an integer' if key == '--seed' else 'a positive integer'}, "
                                     f"got {val!r}")
                val = int(val)
            opts[key[2:]] = val
            i += 1 if inline else 2
            continue
        head = key[2:].split(".")[0] if key.startswith("--") else ""
        if head in ("env", "ppo", "rewards"):  # short for --model.<section>...
            tok = "--model." + tok[2:]
        elif key == "--model" or key.startswith("--model.model"):  # the policy spec
            tok = "--model.policy" + tok[len("--model.model") if key.startswith("--model.model") else len("--model"):]
        rest.append(tok)
        i += 1
    return recipe, opts, rest


def _loggers(names: str, run, name: str):
    import os

    from lightning.pytorch import loggers

    out = []
    for n in [x.strip() for x in names.split(",") if x.strip()]:
        if n == "csv":
            out.append(loggers.CSVLogger(str(run), name="logs"))
        elif n == "tensorboard":
            out.append(loggers.TensorBoardLogger(str(run), name="tb"))
        elif n == "wandb":
            logged_in = bool(os.environ.get("WANDB_API_KEY")) or "api.wandb.ai" in (
                (Path.home() / ".netrc").read_text() if (Path.home() / ".netrc").exists() else "")
            offline = os.environ.get("WANDB_MODE", "online" if logged_in else "offline") != "online"
            out.append(loggers.WandbLogger(project="nmmozoo", name=name, save_dir=str(run), offline=offline))
    return out


def _fit(argv: list[str]) -> int:
    """``nmmozoo fit``: a recipe through Lightning's CLI (see ``FIT_USAGE``)."""
    import tempfile
    import warnings

    import yaml
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    from nmmozoo.env.config import ConfigError
    from nmmozoo.hub import save_pretrained
    from nmmozoo.nn.registry import SpecError
    from nmmozoo.recipe import load_recipe
    from nmmozoo.tasks.spec import TaskError
    from nmmozoo.train import PPOModule

    if argv and argv[0] in ("-h", "--help"):
        print(FIT_USAGE)
        return 0
    # The checkpoint holds the state after the step's updates, which is what resuming needs.
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    try:
        recipe_arg, opts, rest = _fit_args(argv)
        recipe = load_recipe(recipe_arg)
    except (SpecError, ValueError) as e:
        print(f"nmmozoo fit: {e}", file=sys.stderr)
        return 2
    bad = [n for n in opts.get("logger", "csv").split(",") if n.strip() not in LOGGERS]
    if bad:
        print(f"nmmozoo fit: --logger: unknown logger(s) {bad}; known: {', '.join(LOGGERS)}", file=sys.stderr)
        return 2
    name = Path(str(recipe_arg)).stem
    run = Path(opts.get("run_dir") or f"runs/{name}")
    model_cfg = {"recipe": str(recipe_arg), "policy": recipe["model"], "env": dict(recipe.get("env") or {}),
                 "rewards": list(recipe.get("rewards") or []), "ppo": dict(recipe.get("ppo") or {}),
                 "seed": opts.get("seed", 0)}
    if "num_maps" in opts:
        model_cfg["env"]["num_maps"] = opts["num_maps"]
    trainer_cfg = dict(recipe.get("trainer") or {})
    on_gpu = str(model_cfg["env"].get("device", "cpu")).startswith("cuda")
    trainer_cfg.setdefault("accelerator", "gpu" if on_gpu else "cpu")

    class FitCLI(LightningCLI):
        def instantiate_trainer(self, **kwargs):
            cfg = self._get(self.config_init, "trainer", default={})
            if cfg.get("logger") in (None, True):
                kwargs["logger"] = _loggers(opts.get("logger", "csv"), run, name)
            if cfg.get("max_steps", -1) in (-1, None):
                kwargs["max_steps"] = self.model.updates * self.model.steps_per_update
            return super().instantiate_trainer(**kwargs)

        def after_fit(self):
            if self.trainer.is_global_zero:
                m = self.model
                out = save_pretrained(m.policy, run / "policy.safetensors",
                                      recipe={k: v for k, v in m.recipe.items() if not k.startswith("_")})
                print(f"trained {m.agent_steps * self.trainer.world_size:,} agent-steps; "
                      f"policy exported to {out}")

    ckpt = ModelCheckpoint(dirpath=run / "checkpoints", save_last=True,
                           every_n_train_steps=opts.get("checkpoint_every", 20))
    with tempfile.TemporaryDirectory() as tmp:
        cfg_file = Path(tmp) / "recipe.yaml"
        cfg_file.write_text(yaml.safe_dump({"model": model_cfg, "trainer": trainer_cfg}, sort_keys=False))
        try:
            FitCLI(PPOModule, args=["fit", "--config", str(cfg_file), *rest], save_config_callback=None,
                   seed_everything_default=opts.get("seed", 0),
                   trainer_defaults={"default_root_dir": str(run), "callbacks": [ckpt], "max_epochs": -1,
                                     "enable_model_summary": False},
                   parser_kwargs={"fit": {"prog": "nmmozoo fit", "description": FIT_USAGE}})
        except (SpecError, ConfigError, TaskError, ValueError) as e:  # bad recipe field, env, task file
            print(f"nmmozoo fit: {e}", file=sys.stderr)
            return 2
        except SystemExit as e:  # the CLI's own exits: --print_config (0), a bad argument (2)
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
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
    sub.add_parser("fit", help="train a recipe with PPO (Lightning CLI over TorchRL); "
                   "nmmozoo fit --help for its options")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "fit":
        return _fit(argv[1:])
    a = ap.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
