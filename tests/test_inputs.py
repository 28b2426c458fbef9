"""Bad inputs give a clear error naming the field, the file and the entry (issue 14 item 6),
relative task paths resolve, and no module of the package needs another imported first."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

import nmmozoo
from nmmozoo.env import make_config, make_env
from nmmozoo.env.config import ConfigError
from nmmozoo.evaluate import EvalError, resolve_tasks
from nmmozoo.nn.registry import SpecError
from nmmozoo.recipe import load_recipe, make_recipe_env
from nmmozoo.rewards import RewardShaping
from nmmozoo.tasks import PredicateError, TaskError, load_tasks


@pytest.mark.parametrize("entry, error, match", [
    ("{predicate: CountEvent, args: {event: EAT, N: 1}}", PredicateError, r"bad\.yaml\[1\]: CountEvent.*event='EAT'"),
    ("{predicate: CountEvent, args: {event: EAT_FOOD, N: 1.5}}", PredicateError, r"bad\.yaml\[1\]: CountEvent.*N=1\.5"),
    ("{predicate: CountEvent, args: {event: EAT_FOOD}}", PredicateError, r"bad\.yaml\[1\]: CountEvent: missing argument 'N'"),
    ("{predicate: HoardGold, args: {amount: 100000000000000000000}}", PredicateError, r"bad\.yaml\[1\]: HoardGold.*amount"),
    ("{predicate: Success, weight: .nan}", TaskError, r"bad\.yaml\[1\]: weight must be a finite"),
    ("{predicate: Success, weight: .inf}", TaskError, r"bad\.yaml\[1\]: weight must be a finite"),
    ("{predicate: Success, not: 'no'}", TaskError, r"bad\.yaml\[1\]\.not: expected true or false"),
    ("{predicate: Success, name: 3}", TaskError, r"bad\.yaml\[1\]: name must be a string"),
    ("{not: true, all_of: [{predicate: Success}, {predicate: Success}]}", TaskError, r"bad\.yaml\[1\]: 'not'"),
])
def test_task_file_errors_name_file_and_entry(tmp_path, entry, error, match):
    f = tmp_path / "bad.yaml"
    f.write_text(f"- {{predicate: Success}}\n- {entry}\n")
    with pytest.raises(error, match=match):
        load_tasks(f)


@pytest.mark.parametrize("entry, match", [
    ("{predicate: OccupyTile, args: {row: 500, col: 500}}", r"occ\.yaml\[1\].*OccupyTile argument row=500"),
    ("{predicate: OwnItem, args: {item: Hat, level: 1000}}", r"occ\.yaml\[1\].*OwnItem argument level=1000"),
    ("{predicate: InventorySpaceGE, args: {space: 13}}", r"occ\.yaml\[1\].*InventorySpaceGE argument space=13"),
    ("{predicate: AttainSkill, args: {skill: melee, level: 3, num_agent: 2}}", r"occ\.yaml\[1\].*num_agent=2"),
])
def test_task_that_can_never_complete_is_refused(tmp_path, entry, match):
    f = tmp_path / "occ.yaml"
    f.write_text(f"- {{predicate: OccupyTile, args: {{row: 20, col: 20}}}}\n- {entry}\n")
    with pytest.raises(TaskError, match=match):
        make_env("tiny", num_maps=1, tasks=str(f))
    f.write_text("- {predicate: OccupyTile, args: {row: 20, col: 20}}\n")
    assert len(make_env("tiny", num_maps=1, tasks=str(f)).world.tasks.specs) == 1


@pytest.mark.parametrize("field, value, match", [
    ("weakness_multiplier", -3, "'weakness_multiplier'"),
    ("weakness_multiplier", float("nan"), "'weakness_multiplier': expected a finite"),
    ("market_size", 10 ** 7, "'market_size'"),
    ("starting_gold", 10 ** 10, "'starting_gold'"),
    ("health_max", 10 ** 10, "'health_max'"),
])
def test_env_config_ranges(field, value, match):
    with pytest.raises(ConfigError, match=match):
        make_config("tiny", **{field: value})


def _recipe(tmp_path, env="", rewards=""):
    f = tmp_path / "my.yaml"
    f.write_text(f"model: baseline_tiny\nenv:\n  preset: tiny\n  num_maps: 1\n{env}{rewards}")
    return load_recipe(str(f))


@pytest.mark.parametrize("env, match", [
    ("  starting_gold: 10000000000\n", r"my\.yaml: env: .*'starting_gold'"),
    ("  weakness_multiplier: -3\n", r"my\.yaml: env: .*'weakness_multiplier'"),
    ("  market_size: 10000000\n", r"my\.yaml: env: .*'market_size'"),
    ("  seed: abc\n", r"my\.yaml: env: seed must be an integer.*'abc'"),
])
def test_recipe_env_errors_name_field_and_file(tmp_path, env, match):
    with pytest.raises(SpecError, match=match):
        make_recipe_env(_recipe(tmp_path, env=env))


def test_seed_and_reward_weight_checked():
    for seed in ("abc", 1.5, True):
        with pytest.raises(ValueError, match="seed must be an integer"):
            make_env("tiny", num_maps=1, seed=seed)
    for w in (float("nan"), float("inf")):
        with pytest.raises(SpecError, match=r"my\.rewards\[0\]\.weight: expected a finite number"):
            RewardShaping([{"name": "heal", "weight": w}], "my.rewards")


def test_relative_task_paths_resolve(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository root
    p = resolve_tasks("recipes/tasks/survival.yaml")
    assert os.path.isfile(p) and p.endswith(os.path.join("tasks", "survival.yaml"))
    assert resolve_tasks("heldout") == "heldout"
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "mine.yaml").write_text("- {predicate: Success}\n")
    assert resolve_tasks("mine.yaml", str(tmp_path / "r")) == str(tmp_path / "r" / "mine.yaml")
    with pytest.raises(EvalError, match="task file 'nope.yaml' not found"):
        resolve_tasks("nope.yaml")
    r = nmmozoo.evaluate.evaluate(None, preset="tiny", tasks="recipes/tasks/survival.yaml", num_maps=1,
                                  horizon=4, num_npcs=0)
    assert r["agent_episodes"] == 16 and "completion" in r


def test_no_import_circle():
    """Each module of the package imported first, on a fresh set of ``nmmozoo`` modules (the
    heavy third-party ones stay loaded): a circle fails with a partially initialised module."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import nmmozoo
        names = ["nmmozoo"] + [m.name for m in pkgutil.walk_packages(nmmozoo.__path__, "nmmozoo.")]
        bad = []
        for n in names:
            for k in [k for k in sys.modules if k == "nmmozoo" or k.startswith("nmmozoo.")]:
                del sys.modules[k]
            try:
                importlib.import_module(n)
            except Exception as e:
                bad.append(f"{n}: {e!r}")
        print(len(names))
        assert not bad, bad
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout.split()[-1]) > 40


def test_env_settings_are_typed_in_one_place():
    """``make_config`` merges preset and overrides onto ``EnvConfig``'s structured config:
    conversions that keep the value are made, none that invents one."""
    c = make_config("tiny", num_npcs="4", weakness_multiplier=2, level_thresholds=[0, 10, 30])
    assert c.num_npcs == 4 and c.weakness_multiplier == 2.0 and isinstance(c.weakness_multiplier, float)
    assert c.level_thresholds == (0, 10, 30)
    assert c.replace(horizon="64").horizon == 64
    for field, value, expected in [("sequential_combat", "yes", "true or false"),
                                   ("sequential_combat", 2, "true or false"),
                                   ("num_npcs", 4.0, "an integer"), ("num_npcs", True, "an integer"),
                                   ("terrain_water", "wet", "a number"), ("tasks", 3, "a string"),
                                   ("level_thresholds", [0, "x"], "a list of integers")]:
        with pytest.raises(ConfigError, match=re.escape(f"field '{field}': expected {expected}, got {value!r}")):
            make_config("tiny", **{field: value})


def test_model_specs_interpolate_and_overrides_stay_local(tmp_path):
    from nmmozoo.policy import resolve_spec

    spec = resolve_spec("baseline")
    spec["encoders"]["tile"]["embed_dim"] = "${hidden}"
    assert resolve_spec(spec, hidden=12)["encoders"]["tile"]["embed_dim"] == 12
    assert spec["encoders"]["tile"]["embed_dim"] == "${hidden}"  # the caller's dict is untouched
    spec["encoders"]["tile"]["embed_dim"] = "${hiddn}"
    with pytest.raises(SpecError, match=r"baseline\.encoders\.tile\.embed_dim: .*'hiddn' not found"):
        resolve_spec(spec)
    with pytest.raises(SpecError, match=r"override 'fusion\.name\.x': 'name' is not a mapping"):
        resolve_spec("baseline_tiny", **{"fusion.name.x": 1})
    # component arguments are typed like every setting: "4" is 4, 'big' is refused
    p = nmmozoo.create_policy("baseline_tiny", config=make_config("tiny"), **{"encoders.tile.embed_dim": "4"})
    assert p.spec["encoders"]["tile"]["embed_dim"] == "4" and p.tile.embed.weight.shape[-1] == 4
