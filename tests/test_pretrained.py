"""The zoo's shipped checkpoints (`checkpoints/index.yaml`): each loads by name with its hash
checked, is what its entry says (file size, hash, budget), is served by every entry point
(`load_pretrained`, `create_policy(pretrained=True)`, `list_models(pretrained=True)`,
`nmmozoo test NAME --ckpt_path NAME`), and beats the untrained policy and the random policy on
the held-out tasks and maps by more than the seed interval (the evaluation of docs/zoo.md's
table with 10 seeds: 6-15 minutes of one core per checkpoint, yaofeng the longest, the random floor once per world)."""

from __future__ import annotations

import json

import pytest

import nmmozoo
from nmmozoo.cli import main
from nmmozoo.evaluate import t_interval
from nmmozoo.hub import pretrained_index, sha256_of
from nmmozoo.ship import MAX_BYTES, checkpoints_dir

INDEX = pretrained_index()
NAMES = sorted(INDEX)
BUDGET = 10_000_000  # live agent-steps, every recipe alike (the 2023 baseline's own budget)
# the zoo table's evaluation (docs/zoo.md: the preset's own world, 2 held-out maps, whole
# episodes) with 10 seeds instead of the table's 3. Scores are heavy-tailed over seeds: the
# demo's seeds 0-4 gave 3.2, 3.3, 7.4, 13.2, 2.8 points, and the baseline's differences from
# random were all positive over seeds 0-4 (2.0, 4.1, 1.7, 0.5, 0.2) with a 5-seed interval
# still reaching -0.2; a paired interval over 3 seeds has t = 4.30, over 5 t = 2.78, over 10
# t = 2.26 (256-tick episodes on one map were too short to separate the policies at all)
SHORT = ["--world", "preset", "--num_maps", "2", "--seeds", *map(str, range(10))]


def test_the_index_and_the_listing_agree():
    """Every entry names its file beside the index; the zoo lists an entry whose name is a
    model's as that model's pretrained weights."""
    for name in NAMES:
        assert (checkpoints_dir() / INDEX[name]["file"]).is_file(), name
    models = set(nmmozoo.list_models())
    assert set(nmmozoo.list_models(pretrained=True)) == {n for n in NAMES if n in models}


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_checkpoint_is_what_its_entry_says(name):
    entry = INDEX[name]
    path = checkpoints_dir() / entry["file"]
    assert path.stat().st_size == entry["bytes"] <= MAX_BYTES
    assert sha256_of(path) == entry["sha256"]
    assert entry["agent_steps"] >= BUDGET
    policy = nmmozoo.load_pretrained(name)  # the hash is checked on load
    assert policy.spec["name"] == entry["model"]
    assert sum(p.numel() for p in policy.parameters()) == entry["parameters"]
    again = nmmozoo.create_policy(entry["model"], pretrained=True) if entry["model"] == name else None
    if again is not None:
        assert all((a == b).all() for a, b in zip(again.state_dict().values(), policy.state_dict().values()))


@pytest.fixture(scope="session")
def random_floor(tmp_path_factory):
    """The random policy's row of the short evaluation in a preset's world: it depends on the
    world and the seeds alone, so it is evaluated once per world (per test process) and shared
    by every checkpoint scored there."""
    rows: dict[str, dict] = {}

    def floor(preset: str) -> dict:
        if preset not in rows:
            report = tmp_path_factory.mktemp(f"random-{preset}")
            assert main(["test", "random", *SHORT, "--preset", preset, "--report", str(report)]) == 0
            (rows[preset],) = json.loads((report / "results.json").read_text())["policies"]
        return rows[preset]

    return floor


@pytest.mark.timeout(2400)
@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_checkpoint_beats_untrained_and_random(name, tmp_path, random_floor):
    """`nmmozoo test NAME --ckpt_path NAME` beside NAME untrained and the random policy, on the
    same maps and seeds: the per-seed score differences have a 95% interval above 0."""
    report = tmp_path / "report"
    # the world it trained in (demo's recipe says tiny); an entry without one: the table's
    preset = (INDEX[name].get("env") or {}).get("preset", "competition2023")
    assert main(["test", name, name, "--ckpt_path", name, "none", *SHORT, "--preset", preset,
                 "--report", str(report)]) == 0
    rows = {p["name"]: p for p in json.loads((report / "results.json").read_text())["policies"]}
    model = INDEX[name]["model"]
    trained = rows[f"{model} ({name})"]
    floors = {"random": random_floor(preset), "untrained": rows[f"{model} (untrained)"]}
    for floor, row in floors.items():
        assert row["seeds"] == trained["seeds"]
        diffs = [a - b for a, b in zip(trained["score"]["per_seed"], row["score"]["per_seed"])]
        low = t_interval(diffs)["ci95"][0]
        assert low > 0, (floor, diffs, trained["score"], row["score"])
