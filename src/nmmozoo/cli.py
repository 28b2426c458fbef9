"""The ``nmmozoo`` command."""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import torch

from nmmozoo._files import file_in_the_way


def _fail(command: str, msg: str) -> int:
    """A command's clear one-line error on stderr; exit status 2."""
    print(f"nmmozoo {command}: {msg}", file=sys.stderr)
    return 2


def _positive_int(value: str) -> int:
    """An argparse type: an integer >= 1 (argparse names the flag when it is not)."""
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    return v


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
                   [--val_every N] [--val_maps N] [--val_episodes N] [--val_ticks N]

Train RECIPE (a name of recipes/, or a YAML path; default: demo) with PPO, through the
Lightning CLI: the recipe becomes the model's config, any field can be overridden
(--model.ppo.lr 1e-4, --model.env.num_maps 4, --model.policy takeru_tiny; --ppo.lr and
--env.num_maps are short for the same), any Trainer argument too (--trainer.max_steps 100,
--trainer.devices 2 --trainer.strategy ddp, --trainer.precision bf16-mixed).
Loggers: CSV by default; --logger tensorboard,wandb (W&B offline unless logged in); metrics
are logged for every update. --trainer.max_steps counts optimiser steps (ppo.epochs x
rollout_steps // minibatch_steps per update); by default the recipe's whole run.
--checkpoint_every N (default 20) writes RUN_DIR/checkpoints/last.ckpt at the end of each update
whose optimiser-step count is a multiple of N (give a multiple of the steps per update); SIGTERM
stops at the end of the update in progress and writes it there (exit status 143).
Resuming (--ckpt_path last|PATH) applies this command's ppo, rewards and env.num_maps/device/
workers/seed; a different model or env is refused. PPO owns its optimiser (Adam at ppo.lr):
--optimizer and --lr_scheduler are not options. The PPO settings: nmmozoo fit RECIPE --help.
Validation: every --val_every updates (default: about 10 per full run of the recipe's
ppo.total_steps; 0: none) and after the last update, a PvE evaluation on --val_maps held-out
maps (default: enough for every held-out task once) x --val_episodes (1) episodes of
--val_ticks (256) ticks with the held-out tasks, seed 0, logs val/score, val/completion and
val/lifespan beside the update's train/ figures (nmmozoo validate, nmmozoo report)."""

LOGGERS = ("csv", "tensorboard", "wandb")
REFUSED = {
    "optimizer": "PPO owns its optimiser (Adam, eps 1e-5, at ppo.lr, annealed when ppo.anneal_lr); "
                 "set --ppo.lr / --ppo.anneal_lr instead",
    "lr_scheduler": "PPO sets the learning rate every update (ppo.lr, linear annealing when "
                    "ppo.anneal_lr); set --ppo.lr / --ppo.anneal_lr instead",
    "data": "PPO collects its own data from the recipe's env; set --env.<field> instead",
}


def _fit_args(argv: list[str]) -> tuple[str, dict, list[str]]:
    """Split ``nmmozoo fit`` arguments: the recipe, our shortcuts, and LightningCLI's."""
    recipe, opts, rest = "demo", {}, []
    from nmmozoo.train.validate import FIT_FLAGS, parse_flag

    shortcuts = {"--run_dir", "--num_maps", "--seed", "--logger", "--checkpoint_every", *FIT_FLAGS}
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
            if key in FIT_FLAGS:
                val = parse_flag(key, val)
            elif key in ("--num_maps", "--seed", "--checkpoint_every"):
                if not val.lstrip("-").isdigit() or (key != "--seed" and int(val) < 1):
                    raise ValueError(f"{key} expects {'an integer' if key == '--seed' else 'a positive integer'}, "
                                     f"got {val!r}")
                val = int(val)
            opts[key[2:]] = val
            i += 1 if inline else 2
            continue
        head = key[2:].split(".")[0] if key.startswith("--") else ""
        if head in REFUSED:
            raise ValueError(f"{key}: {REFUSED[head]}")
        if head in ("env", "ppo", "rewards"):  # short for --model.<section>...
            tok = "--model." + tok[2:]
        elif key == "--model" or key.startswith("--model.model"):  # the policy spec
            tok = "--model.policy" + tok[len("--model.model") if key.startswith("--model.model") else len("--model"):]
        rest.append(tok)
        i += 1
    return recipe, opts, rest


def _loggers(names: str, run, name: str) -> list[dict]:
    """The loggers as Trainer config (``class_path`` + ``init_args``), so ``--print_config``
    shows them and ``--trainer.logger`` can replace them."""
    import os

    out = []
    for n in [x.strip() for x in names.split(",") if x.strip()]:
        if n == "csv":
            out.append({"class_path": "lightning.pytorch.loggers.CSVLogger",
                        "init_args": {"save_dir": str(run), "name": "logs"}})
        elif n == "tensorboard":
            out.append({"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                        "init_args": {"save_dir": str(run), "name": "tb"}})
        elif n == "wandb":
            logged_in = bool(os.environ.get("WANDB_API_KEY")) or "api.wandb.ai" in (
                (Path.home() / ".netrc").read_text() if (Path.home() / ".netrc").exists() else "")
            offline = os.environ.get("WANDB_MODE", "online" if logged_in else "offline") != "online"
            out.append({"class_path": "lightning.pytorch.loggers.WandbLogger",
                        "init_args": {"project": "nmmozoo", "name": name, "save_dir": str(run),
                                      "offline": offline}})
    return out


def _ppo_help(recipe: dict | None) -> str:
    from nmmozoo.recipe import ppo_fields_help

    mine = dict((recipe or {}).get("ppo") or {})
    head = f"PPO settings (--ppo.<name> VALUE; recipe {recipe.get('_path')}'s value, else the default):" \
        if recipe else "PPO settings (--ppo.<name> VALUE; default):"
    lines = [head]
    for name, default, doc in ppo_fields_help():
        val = f"{mine[name]!r} (default {default!r})" if name in mine else repr(default)
        lines.append(f"  --ppo.{name} {val}" + (f"\n      {doc}" if doc else ""))
    return "\n".join(lines)


def _progress_bar():
    """A progress bar that counts PPO updates (one per training batch), not epochs."""
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
    from lightning.pytorch.callbacks.progress.rich_progress import _RICH_AVAILABLE

    if _RICH_AVAILABLE:
        class UpdateBar(RichProgressBar):
            def _get_train_description(self, current_epoch: int) -> str:
                return "PPO updates"
    else:
        class UpdateBar(TQDMProgressBar):
            def on_train_epoch_start(self, trainer, *args):
                super().on_train_epoch_start(trainer, *args)
                self.train_progress_bar.set_description("PPO updates")
    return UpdateBar()


def _fit(argv: list[str]) -> int:
    """``nmmozoo fit``: a recipe through Lightning's CLI (see ``FIT_USAGE``)."""
    import tempfile
    import warnings

    import yaml
    from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
    from lightning.pytorch.cli import LightningCLI

    from nmmozoo.env.config import ConfigError
    from nmmozoo.hub import HubError, save_pretrained
    from nmmozoo.nn.registry import SpecError
    from nmmozoo.recipe import load_recipe, ppo_config
    from nmmozoo.tasks.spec import TaskError
    from nmmozoo.train import PPOModule
    from nmmozoo.train.ppo import (
        read_checkpoint,
        resume_changes,
        resume_conflicts,
        saved_recipe,
    )

    if argv and argv[0] in ("-h", "--help"):
        print(FIT_USAGE)
        print()
        print(_ppo_help(None))
        return 0
    helping = any(a in ("-h", "--help") for a in argv)
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
    blocker = file_in_the_way(run)
    if blocker is not None:
        print(f"nmmozoo fit: --run_dir {str(run)!r}: {str(blocker)!r} is a file, not a directory", file=sys.stderr)
        return 2
    model_cfg = {"recipe": str(recipe_arg), "policy": recipe["model"], "env": dict(recipe.get("env") or {}),
                 "rewards": list(recipe.get("rewards") or []), "ppo": dict(recipe.get("ppo") or {}),
                 "seed": opts.get("seed", 0)}
    if "num_maps" in opts:
        model_cfg["env"]["num_maps"] = opts["num_maps"]
    trainer_cfg = dict(recipe.get("trainer") or {})
    on_gpu = str(model_cfg["env"].get("device", "cpu")).startswith("cuda")
    trainer_cfg.setdefault("accelerator", "gpu" if on_gpu else "cpu")
    trainer_cfg.setdefault("logger", _loggers(opts.get("logger", "csv"), run, name))
    last = run / "checkpoints" / "last.ckpt"

    class FitCLI(LightningCLI):
        def parse_arguments(self, parser, args):
            # --print_config prints what the run uses: parse once without it, fill in the
            # effective max_steps (the recipe's whole run), then print
            printing = [a for a in args if a.split("=")[0] == "--print_config"]
            plain = [a for a in args if a not in printing]
            super().parse_arguments(parser, plain)
            c = self.config[self.config.subcommand]
            if c.trainer.max_steps in (-1, None):
                hp = c.model.as_dict() if hasattr(c.model, "as_dict") else dict(c.model)
                updates, per_update = PPOModule.schedule(ppo_config(PPOModule.resolve_recipe(**hp)))
                plain = [*plain, "--trainer.max_steps", str(updates * per_update)]
                c.trainer.max_steps = updates * per_update
            if printing:
                super().parse_arguments(parser, plain + printing)

        def _parse_ckpt_path(self):
            # Lightning's own would replace the command line's model arguments by the
            # checkpoint's; here the command line is kept, and what may not change is refused
            c = self.config[self.config.subcommand]
            path = c.get("ckpt_path")
            if not path or path in ("best", "hpc", "registry"):
                return
            if path == "last":
                if not last.exists():
                    print(f"nmmozoo fit: --ckpt_path last: no {last} yet; starting a new run", file=sys.stderr)
                    c["ckpt_path"] = None
                    return
                path = last
            ckpt = read_checkpoint(path)
            hp = c.model.as_dict() if hasattr(c.model, "as_dict") else dict(c.model)
            new, old = PPOModule.resolve_recipe(**hp), saved_recipe(ckpt)
            conflicts = resume_conflicts(old, new)
            if conflicts:
                raise SpecError(f"--ckpt_path {path}: the checkpoint was trained with a different "
                                + "; ".join(conflicts) + ". Start a new run (another --run_dir), or "
                                "resume without changing these")
            changes = resume_changes(old, new)
            if changes:
                print(f"nmmozoo fit: resuming {path} with this command's " + ", ".join(changes),
                      file=sys.stderr)
            c["ckpt_path"] = str(path)
            del ckpt

        def instantiate_trainer(self, **kwargs):
            cfg = self._get(self.config_init, "trainer", default={})
            if cfg.get("logger") is True:  # --trainer.logger true: ours, not Lightning's default
                import importlib

                kwargs["logger"] = [getattr(importlib.import_module(d["class_path"].rpartition(".")[0]),
                                            d["class_path"].rpartition(".")[2])(**d["init_args"])
                                    for d in _loggers(opts.get("logger", "csv"), run, name)]
            callbacks = list(cfg.get("callbacks") or [])
            if cfg.get("enable_progress_bar", True) is not False and not any(
                    isinstance(cb, ProgressBar) for cb in callbacks):
                kwargs["callbacks"] = [*callbacks, _progress_bar()]
            return super().instantiate_trainer(**kwargs)

        def before_fit(self):
            if self.trainer.is_global_zero:
                from nmmozoo.train.runinfo import record_start

                record_start(run, ["nmmozoo", "fit", *argv], device=str(self.model.env.device),
                             recipe=name, seed=self.model.seed)

        def after_fit(self):
            if self.trainer.is_global_zero:
                m = self.model
                out = save_pretrained(m.policy, run / "policy.safetensors",
                                      recipe={k: v for k, v in m.recipe.items() if not k.startswith("_")})
                print(f"trained {m.agent_steps * self.trainer.world_size:,} agent-steps; "
                      f"policy exported to {out}")

    # no version counter: a resume with another --checkpoint_every is another callback to
    # Lightning, which would write last-v1.ckpt beside the last.ckpt it did not write, and the
    # next --ckpt_path last would go back to the older file; no top-k copy (epoch=…-step=…ckpt)
    # beside it: one write of the run's state per checkpoint, one file to resume from
    ckpt = ModelCheckpoint(dirpath=run / "checkpoints", save_last=True, enable_version_counter=False, save_top_k=0,
                           every_n_train_steps=opts.get("checkpoint_every", 20))
    from nmmozoo.train.validate import FIT_FLAGS, Validation

    val = {arg: opts[flag[2:]] for flag, (arg, _) in FIT_FLAGS.items() if flag[2:] in opts}
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from nmmozoo.train.sigterm import CheckpointOnSigterm

    on_sigterm = CheckpointOnSigterm(run / "checkpoints" / "last.ckpt")
    callbacks = [ckpt, on_sigterm] + ([Validation(**val)] if val.get("every", None) != 0 else [])
    with tempfile.TemporaryDirectory() as tmp:
        cfg_file = Path(tmp) / "recipe.yaml"
        cfg_file.write_text(yaml.safe_dump({"model": model_cfg, "trainer": trainer_cfg}, sort_keys=False))
        try:
            FitCLI(PPOModule, args=["fit", "--config", str(cfg_file), *rest], save_config_callback=None,
                   seed_everything_default=opts.get("seed", 0), auto_configure_optimizers=False,
                   trainer_defaults={"default_root_dir": str(run), "callbacks": callbacks, "max_epochs": -1,
                                     "enable_model_summary": False, "log_every_n_steps": 1},
                   parser_kwargs={"fit": {"prog": "nmmozoo fit", "description": FIT_USAGE}})
        except (SpecError, ConfigError, TaskError, HubError, ValueError) as e:  # bad recipe field, env, task, ckpt
            print(f"nmmozoo fit: {e}", file=sys.stderr)
            return 2
        except MisconfigurationException as e:  # a Trainer argument Lightning refuses (--trainer.*)
            print(f"nmmozoo fit: --trainer: {str(e).splitlines()[0]}", file=sys.stderr)
            return 2
        except PermissionError as e:  # the run directory or a file in it cannot be written
            print(f"nmmozoo fit: {e.filename or run}: {e.strerror}", file=sys.stderr)
            return 2
        except SIGTERMException:  # stopped at an update's end; resumable from last.ckpt
            where = (f"saved {on_sigterm.saved}; resume with --ckpt_path last" if on_sigterm.saved else
                     "no checkpoint saved (data-parallel or outside training): the last periodic one stands")
            print(f"nmmozoo fit: stopped by SIGTERM at the end of an update; {where}", file=sys.stderr)
            return 128 + 15
        except SystemExit as e:  # the CLI's own exits: --help, --print_config (0), a bad argument (2)
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
            if helping and code == 0:
                print()
                print(_ppo_help(recipe))
            return code
    return 0


TEST_DESCRIPTION = """Evaluate policies on the held-out maps (PvE: every agent plays the policy; the
held-out tasks on a schedule, so each is tried equally often; --protocol pvp: the policies share
each map, the agent slots split into equal contiguous groups, one per policy, rotated across maps,
episodes and seeds, each policy scored on its own agents only). MODEL_OR_RECIPE: 'random' (the
random masked policy), 'forager' (the scripted forager, nmmozoo.scripted), a recipe (name or YAML path) or a zoo model; --ckpt_path: a pretrained
name (checkpoints/index.yaml), a .safetensors export, a fit's .ckpt, or 'last'
(runs/<recipe>/checkpoints/last.ckpt); without it, the untrained model (torch.manual_seed(
--init_seed)). Several MODEL_OR_RECIPE: each with its --ckpt_path in order ('none' for one without weights). Every
number comes with its 95%% Student-t interval over --seeds. The env: --preset (default: the
recipe's or checkpoint's, else competition2023) with the recipe's world fields (--world preset:
without them, one world for every policy), then --horizon / --num_npcs."""


def _test(a: argparse.Namespace) -> int:
    import os

    from nmmozoo.evaluate import (
        CI_METHOD,
        EvalError,
        evaluate_seeds,
        evaluate_seeds_pvp,
        load_for_test,
    )
    from nmmozoo.report import ReportError, read_report_dir, torch_threads, write_report

    fail = functools.partial(_fail, "test")

    pvp = a.protocol == "pvp"
    if pvp and len(a.model) < 2:
        return fail(f"--protocol pvp: give at least 2 policies to share the maps, got {a.model}")
    if a.ckpt_path and len(a.ckpt_path) != len(a.model):
        return fail(f"--ckpt_path: {len(a.ckpt_path)} path(s) for {len(a.model)} model(s); give one per "
                    "MODEL_OR_RECIPE, in order ('none' for one without weights)")
    if a.episodes < 1 or a.num_maps < 1:
        return fail(f"--episodes and --num_maps must be >= 1, got {a.episodes}, {a.num_maps}")
    if not a.seeds:
        return fail("--seeds: give at least one seed")
    if len(set(a.seeds)) != len(a.seeds):
        return fail(f"--seeds: repeated seed(s) in {a.seeds}")
    if a.threads:
        torch.set_num_threads(a.threads)
    overrides = {k: v for k, v in (("horizon", a.horizon), ("num_npcs", a.num_npcs)) if v is not None}
    from nmmozoo.env import make_config

    sources, setting, cfg = [], None, None
    for i, model in enumerate(a.model):
        ck = a.ckpt_path[i] if a.ckpt_path else None
        try:
            src = load_for_test(model, None if ck in (None, "none") else ck, run_dir=a.run_dir,
                                preset=a.preset, tasks=a.tasks, init_seed=a.init_seed, world=a.world,
                                **overrides)
        except (EvalError, ValueError) as e:
            return fail(str(e))
        cfg = make_config(src["preset"], **src["env"])
        this = {"protocol": a.protocol, "preset": src["preset"], "tasks": a.tasks, "num_maps": a.num_maps,
                "episodes": a.episodes, "seeds": list(a.seeds), "env": src["env"], "horizon": cfg.horizon,
                "deterministic": a.deterministic, "device": a.device, "threads": torch.get_num_threads()}
        if setting is not None and this != setting:
            return fail(f"{model}: evaluated in another setting than {a.model[0]} ({this} vs {setting}); "
                        "compare policies on one preset and env (give --preset)")
        setting = this
        sources.append(src)
    G = len(sources)
    if pvp:
        if cfg.num_agents < G:
            return fail(f"--protocol pvp: {G} policies need at least {G} agents per map, the env has "
                        f"{cfg.num_agents}")
        base = [s["name"] for s in sources]  # the same policy twice: told apart by its order
        names = [f"{n} #{base[:i].count(n) + 1}" if base.count(n) > 1 else n for i, n in enumerate(base)]
        setting["policies"] = names
        setting["group_size"] = cfg.num_agents // G
        setting["rest"] = cfg.num_agents - G * setting["group_size"]  # played by random, not scored
    per_seed = a.num_maps * a.episodes * (cfg.num_agents // G if pvp else cfg.num_agents)
    if a.tasks == "heldout" and per_seed < 63:
        print(f"nmmozoo test: warning: {per_seed} agent-episodes per seed and policy < 63 held-out tasks; "
              "tasks never tried count 0 in the score (raise --num_maps or --episodes)", file=sys.stderr)
    if a.report:  # before the evaluation: a report folder that cannot take it costs no run
        try:
            read_report_dir(a.report, setting)
        except ReportError as e:
            return fail(f"--report: {e}")
    kw = dict(preset=setting["preset"], tasks=a.tasks, num_maps=a.num_maps, episodes=a.episodes,
              deterministic=a.deterministic, device=a.device, **setting["env"])
    try:
        if pvp:
            results = evaluate_seeds_pvp([s["policy"] for s in sources], names, seeds=a.seeds, **kw)
        else:
            results = [evaluate_seeds(s["policy"], seeds=a.seeds, name=s["name"], **kw) for s in sources]
    except (EvalError, ValueError) as e:
        return fail(str(e))
    if pvp:
        rest = (f", the {setting['rest']} left over played by random and scored for nobody" if setting["rest"]
                else "")
        print(f"PvP: {G} policies share each of {a.num_maps} held-out maps, {setting['group_size']} agents each "
              f"(contiguous groups, rotated across maps, episodes and seeds{rest}); each scored on its own "
              "agents:")
    def fmt(st, k=1):  # a statistic {mean, half_width}, scaled by k, as the tables write it
        from .ship import format_pm
        return format_pm(st and [st["mean"] * k, None if st["half_width"] is None else st["half_width"] * k],
                         digits=2)

    for src, r in zip(sources, results):
        r["source"], r["training_steps"] = src["source"], src["training_steps"]
        print(f"{r['name']}: " + (f"score {fmt(r.get('score'))} / 100, " if "score" in r else "")
              + (f"completion {fmt(r.get('completion'), 100)}%, " if "completion" in r else "")
              + f"lifespan {fmt(r['lifespan'])} ticks; {r['agent_episodes']:,} agent-episodes, "
              f"{r['agent_steps']:,} agent-steps in {r['wall_s']:.1f}s")
        for c, st in (r.get("score_by_category") or {}).items():
            comp = r["completion_by_category"].get(c)
            print(f"  {c:<12} {fmt(st)} points  (completion {fmt(comp, 100)}%)")
    print(f"(±: {CI_METHOD}; seeds {list(a.seeds)}; {torch_threads(setting['threads'])}, "
          f"{os.cpu_count()} CPUs)")
    if a.report:
        try:
            files = write_report(a.report, setting, results, CI_METHOD)
        except (ReportError, OSError) as e:
            return fail(f"--report: {e}")
        print("report: " + ", ".join(str(f) for f in files))
    return 0


VALIDATE_DESCRIPTION = """Run the validation a fit runs (nmmozoo fit --val_every) once and print
val/score (the held-out score, points of 100), val/completion (share of agent-episodes whose
held-out task was completed) and val/lifespan (mean ticks lived): PvE on --val_maps held-out
maps (default: enough for every held-out task once) x --val_episodes episodes of --val_ticks
ticks, seed --seed, the world of the recipe or checkpoint. MODEL_OR_RECIPE and --ckpt_path as
in nmmozoo test (a pretrained name, a .safetensors export, a fit's .ckpt, or 'last':
runs/<recipe>/checkpoints/last.ckpt or --run_dir's)."""


def _validate(a: argparse.Namespace) -> int:
    from nmmozoo.evaluate import EvalError, load_for_test
    from nmmozoo.report import torch_threads
    from nmmozoo.train.validate import check_setting_sizes, run_validation, validation_setting

    fail = functools.partial(_fail, "validate")

    for flag, v in (("--val_maps", a.val_maps), ("--val_episodes", a.val_episodes), ("--val_ticks", a.val_ticks)):
        if v is not None and v < 1:
            return fail(f"{flag} must be >= 1, got {v}")
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        ck = None if a.ckpt_path in (None, "none") else a.ckpt_path  # as test and predict take it
        src = load_for_test(a.model, ck, run_dir=a.run_dir, init_seed=a.init_seed)
        pol = src["policy"]
        task_dim = pol.sizes["task_dim"] if pol is not None and hasattr(pol, "sizes") else None
        setting = validation_setting(src["preset"], src["env"], task_dim, a.val_maps, a.val_episodes,
                                     a.val_ticks, a.seed)
        check_setting_sizes(pol, setting)
        r = run_validation(pol, setting, a.device)
    except (EvalError, ValueError) as e:
        return fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    for k in ("val/score", "val/completion", "val/lifespan"):
        print(f"{k} {r[k]:.6g}" if k in r else f"{k} – (no held-out tasks: the policy has no task input)")
    print(f"({src['name']}: {setting['preset']}, {setting['num_maps']} held-out maps x {setting['episodes']} "
          f"episode(s) of {setting['horizon']} ticks, {setting['tasks']} tasks, seed {setting['seed']}; "
          f"{int(r['val/agent_episodes']):,} agent-episodes in {r['val/wall_s']:.1f}s, "
          f"{torch_threads(torch.get_num_threads())})")
    return 0


def _report(a: argparse.Namespace) -> int:
    from nmmozoo.report import ReportError, write_curves

    try:
        files, runs = write_curves(a.run_dirs, a.out)
    except (ReportError, OSError) as e:
        print(f"nmmozoo report: {e}", file=sys.stderr)
        return 2
    for label, rows in runs.items():
        vals = [r for r in rows if "val/score" in r or "val/lifespan" in r]
        last = vals[-1] if vals else {}
        print(f"{label}: {len(rows)} updates, {int(rows[-1]['train/agent_steps']):,} agent-steps, "
              f"{len(vals)} validations" + ("" if not last else "; last: " + ", ".join(
                  f"{k} {last[k]:.4g}" for k in ("val/score", "val/completion", "val/lifespan") if k in last)))
    print("curves: " + ", ".join(str(f) for f in files))
    return 0


def _ship(a: argparse.Namespace) -> int:
    """``nmmozoo ship``: a finished fit's policy into the zoo's checkpoints and index; with
    --docs, the zoo's tables and cards rewritten from the index."""
    from nmmozoo.ship import ShipError, ship, write_zoo_docs

    if a.run_dir is None and a.docs is None:
        return _fail("ship", "give RUN_DIR (a finished fit to ship), --docs ROOT (rewrite the zoo's tables), or both")
    if a.run_dir is not None and not a.name:
        return _fail("ship", "--name: required with RUN_DIR (it names the checkpoint)")
    if a.docs is not None and a.report is None:
        return _fail("ship", "--docs: needs --report, the PvE report whose floors the zoo table shows")
    try:
        if a.run_dir is not None:
            entry = ship(a.run_dir, a.name, into=a.into, report=a.report, report_name=a.report_name,
                         replace=a.replace, notes=a.notes, logs_into=a.logs_into)
            pve = entry.get("pve", {}).get("score")
            print(f"shipped {a.name}: {entry['file']} ({entry['bytes'] / 2**20:.1f} MiB, sha256 "
                  f"{entry['sha256'][:12]}…), {entry['agent_steps']:,} live agent-steps"
                  + (f", PvE score {pve[0]} ± {pve[1]}" if pve else "")
                  + (f"; logs kept in {Path(a.logs_into) / a.name}" if a.logs_into else ""))
        if a.docs is not None:
            import yaml

            index = None
            if a.into is not None:
                idx = Path(a.into) / "index.yaml"
                try:
                    index = (yaml.safe_load(idx.read_text()) or {}) if idx.is_file() else {}
                except yaml.YAMLError as e:
                    return _fail("ship", f"{idx}: not readable YAML ({str(e).splitlines()[0]})")
                if not isinstance(index, dict):
                    return _fail("ship", f"{idx}: expected a mapping of names")
            changed = write_zoo_docs(a.docs, a.report, index=index)
            print("rewrote " + (", ".join(str(f) for f in changed) if changed else "nothing (the docs were current)"))
    except (ShipError, ValueError, OSError) as e:  # ValueError: a damaged run_info.json, named
        return _fail("ship", str(e))
    return 0


def _predict(a: argparse.Namespace) -> int:
    """``nmmozoo predict``: play one map with a policy and record its replay."""
    from nmmozoo.evaluate import EvalError, load_for_test
    from nmmozoo.replay import ReplayError, record_episode

    fail = functools.partial(_fail, "predict")

    if a.ticks is not None and a.ticks < 1:
        return fail(f"--ticks must be >= 1, got {a.ticks}")
    if a.threads:
        torch.set_num_threads(a.threads)
    replay_path = Path(a.replay)  # before the episode: a path that cannot take the file costs no run
    if replay_path.is_dir():
        return fail(f"--replay {a.replay!r} is a directory; give the .npz file's path")
    blocker = file_in_the_way(replay_path, itself=False)
    if blocker is not None:
        return fail(f"--replay {a.replay!r}: {str(blocker)!r} is a file, not a directory")
    overrides = {k: v for k, v in (("horizon", a.horizon), ("num_npcs", a.num_npcs)) if v is not None}
    ck = None if a.ckpt_path in (None, "none") else a.ckpt_path
    t0 = time.perf_counter()
    try:
        src = load_for_test(a.model, ck, run_dir=a.run_dir, preset=a.preset, tasks=a.tasks,
                            init_seed=a.init_seed, **overrides)
        replay = record_episode(src["policy"], preset=src["preset"], ticks=a.ticks, seed=a.seed, tasks=a.tasks,
                                device=a.device, deterministic=a.deterministic, name=src["name"], **src["env"])
        out = replay.save(a.replay)
    except (EvalError, ReplayError, ValueError, OSError) as e:
        return fail(str(e))
    alive = int(replay["alive"][-1][:replay.num_agents].sum())
    print(f"{src['name']} on {src['preset']} (map {replay.meta['map_seed']}, seed {a.seed}): "
          f"{replay.ticks} ticks, {alive}/{replay.num_agents} players alive at the end, "
          f"{len(replay['attacks'])} attacks, {len(replay['deaths'])} deaths; "
          f"replay {out} ({out.stat().st_size / 1024:,.0f} KiB) in {time.perf_counter() - t0:.1f}s")
    return 0


def _render(a: argparse.Namespace) -> int:
    """``nmmozoo render``: a replay file to an animated GIF and an HTML viewer."""
    from nmmozoo.render import render_gif, render_html
    from nmmozoo.replay import Replay, ReplayError

    fail = functools.partial(_fail, "render")

    if a.every < 1 or not (0 < a.fps <= 1000) or (a.scale is not None and not 1 <= a.scale <= 64):
        return fail(f"--every must be >= 1, --scale in [1, 64] (pixels per tile) and --fps in (0, 1000], "
                    f"got {a.every}, {a.scale}, {a.fps}")
    t0 = time.perf_counter()
    try:
        replay = Replay.load(a.file)
    except ReplayError as e:
        return fail(str(e))
    stem = Path(a.file).with_suffix("") if Path(a.file).suffix == ".npz" else Path(a.file)
    gif, html = a.gif, a.html
    if gif is None and html is None:  # neither asked for: both, beside the replay
        gif, html = f"{stem}.gif", f"{stem}.html"
    try:
        for path, write in ((gif, lambda p: render_gif(replay, p, scale=a.scale, fps=a.fps, every=a.every)),
                            (html, lambda p: render_html(replay, p))):
            if path is not None:
                out = write(path)
                print(f"{out} ({out.stat().st_size / 1024:,.0f} KiB)")
    except (OSError, ValueError) as e:
        return fail(str(e))
    print(f"rendered {replay.ticks} ticks in {time.perf_counter() - t0:.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nmmozoo", description="Neural MMO 2 model zoo")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("rollout", help="run the bundled env with random masked actions")
    r.add_argument("--preset", default="competition2023")
    r.add_argument("--maps", type=int, default=8)
    r.add_argument("--ticks", type=_positive_int, default=300)
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
    t = sub.add_parser("test", help="evaluate policies on held-out maps and tasks (PvE or PvP), with "
                       "95%% intervals over seeds and an optional report", description=TEST_DESCRIPTION)
    t.add_argument("model", nargs="+", metavar="MODEL_OR_RECIPE")
    t.add_argument("--ckpt_path", nargs="+", metavar="NAME|PATH|last")
    t.add_argument("--protocol", default="pve", choices=["pve", "pvp"],
                   help="pve: each policy alone on its maps; pvp: the policies share each map, one equal "
                   "group of agents each, groups rotated, each scored on its own agents")
    t.add_argument("--episodes", type=int, default=1, help="whole episodes per map and seed")
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    t.add_argument("--num_maps", type=int, default=8)
    t.add_argument("--preset", default=None)
    t.add_argument("--tasks", default="heldout", help="heldout (default; gives the score), curriculum, "
                   "none, or a task file")
    t.add_argument("--world", default="recipe", choices=["recipe", "preset"],
                   help="recipe (default): the preset with each recipe's world fields (its NPCs, ...); "
                   "preset: the preset's own world for every policy (one world to compare recipes on)")
    t.add_argument("--horizon", type=int, default=None, help="episode length (ticks)")
    t.add_argument("--num_npcs", type=int, default=None)
    t.add_argument("--deterministic", action="store_true", help="argmax actions instead of sampling")
    t.add_argument("--device", default="cpu")
    t.add_argument("--threads", type=_positive_int, default=None, help="torch threads (default: torch's)")
    t.add_argument("--init_seed", type=int, default=0, help="seed of an untrained model's weights")
    t.add_argument("--run_dir", default=None, help="where --ckpt_path last looks (default runs/<recipe>)")
    t.add_argument("--report", default=None, metavar="DIR",
                   help="write results.json, results.md and PNG plots there (adds to a report of the same setting)")
    t.set_defaults(func=_test)
    v = sub.add_parser("validate", help="the fit's validation (held-out maps and tasks) once: val/score, "
                       "val/completion, val/lifespan", description=VALIDATE_DESCRIPTION)
    v.add_argument("model", metavar="MODEL_OR_RECIPE")
    v.add_argument("--ckpt_path", default=None, metavar="NAME|PATH|last")
    v.add_argument("--run_dir", default=None, help="where --ckpt_path last looks (default runs/<recipe>)")
    v.add_argument("--val_maps", type=int, default=None, help="held-out maps (default: every held-out task once)")
    v.add_argument("--val_episodes", type=int, default=1, help="whole episodes per map")
    v.add_argument("--val_ticks", type=int, default=256, help="episode horizon (ticks)")
    v.add_argument("--seed", type=int, default=0, help="seed of the maps and action sampling (fits use 0)")
    v.add_argument("--init_seed", type=int, default=0, help="seed of an untrained model's weights")
    v.add_argument("--device", default="cpu")
    v.add_argument("--threads", type=_positive_int, default=None, help="torch threads (default: torch's)")
    v.set_defaults(func=_validate)
    rp = sub.add_parser("report", help="learning curves (PNG) of fits, from their CSV logs")
    rp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="a fit's --run_dir (e.g. runs/demo)")
    rp.add_argument("--out", default="reports/curves", metavar="DIR", help="where the PNGs go (default reports/curves)")
    rp.set_defaults(func=_report)
    sh = sub.add_parser("ship", help="put a finished fit's policy into the zoo (checkpoints/NAME.safetensors "
                        "and its checkpoints/index.yaml entry)", description="Copy RUN_DIR/policy.safetensors "
                        "to checkpoints/NAME.safetensors (at most 30 MiB) and write its index entry: sha256, "
                        "recipe, model, live agent-steps, commit(s) and hardware (RUN_DIR/run_info.json), wall "
                        "time (the CSV logs), last validation, and with --report its nmmozoo test score. With --docs ROOT (RUN_DIR "
                        "optional then), rewrite the zoo's tables and model cards from the index and --report.")
    sh.add_argument("run_dir", metavar="RUN_DIR", nargs="?", default=None)
    sh.add_argument("--name", default=None, help="the pretrained name (nmmozoo.load_pretrained(NAME)); "
                    "required with RUN_DIR")
    sh.add_argument("--report", default=None, metavar="DIR", help="an nmmozoo test --report folder holding its score")
    sh.add_argument("--report_name", default=None, help="its policy's name in that report (default: --name)")
    sh.add_argument("--into", default=None, metavar="DIR", help="checkpoints folder (default: the package's)")
    sh.add_argument("--replace", action="store_true", help="overwrite a shipped file holding other weights")
    sh.add_argument("--notes", default=None)
    sh.add_argument("--logs_into", default=None, metavar="DIR", help="also keep the run's CSV logs and "
                    "run_info.json in DIR/NAME (a run directory nmmozoo report reads: docs/results/runs)")
    sh.add_argument("--docs", default=None, metavar="ROOT", help="rewrite the zoo table of ROOT/README.md and "
                    "ROOT/docs/zoo.md and the Pretrained section of ROOT/models/*.md from the index and --report")
    sh.set_defaults(func=_ship)
    pr = sub.add_parser("predict", help="play one map with a policy and record a replay (nmmozoo render "
                        "draws it)", description="Play one held-out map with MODEL_OR_RECIPE ('random', "
                        "'forager', a recipe or a zoo model; --ckpt_path as for nmmozoo test) and record the "
                        "episode into --replay FILE (nmmozoo.replay's .npz format).")
    pr.add_argument("model", metavar="MODEL_OR_RECIPE")
    pr.add_argument("--ckpt_path", default=None, metavar="NAME|PATH|last")
    pr.add_argument("--replay", required=True, metavar="FILE", help="the replay file to write (.npz)")
    pr.add_argument("--ticks", type=_positive_int, default=None, help="ticks to play (default: the whole episode)")
    pr.add_argument("--seed", type=int, default=0, help="picks the held-out map and seeds the actions")
    pr.add_argument("--preset", default=None)
    pr.add_argument("--tasks", default="heldout", help="heldout (default), curriculum, none, or a task file")
    pr.add_argument("--horizon", type=int, default=None)
    pr.add_argument("--num_npcs", type=int, default=None)
    pr.add_argument("--deterministic", action="store_true", help="argmax actions instead of sampling")
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--threads", type=_positive_int, default=None, help="torch threads (default: torch's)")
    pr.add_argument("--init_seed", type=int, default=0, help="seed of an untrained model's weights")
    pr.add_argument("--run_dir", default=None, help="where --ckpt_path last looks (default runs/<recipe>)")
    pr.set_defaults(func=_predict)
    rd = sub.add_parser("render", help="draw a replay: animated GIF and a self-contained HTML viewer",
                        description="Render a replay file (nmmozoo predict --replay). Without --gif and "
                        "--html both are written beside FILE (FILE without .npz, plus .gif / .html).")
    rd.add_argument("file", metavar="FILE")
    rd.add_argument("--gif", default=None, metavar="OUT.gif")
    rd.add_argument("--html", default=None, metavar="OUT.html")
    rd.add_argument("--fps", type=float, default=10.0, help="GIF frames per second, in (0, 1000]")
    rd.add_argument("--every", type=int, default=1, help="GIF: one frame every N ticks")
    rd.add_argument("--scale", type=int, default=None, help="GIF pixels per tile, 1-64 (default: ~640 px across)")
    rd.set_defaults(func=_render)
    sub.add_parser("fit", help="train a recipe with PPO (Lightning CLI over TorchRL); "
                   "nmmozoo fit --help for its options")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "fit":
        return _fit(argv[1:])
    a = ap.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
