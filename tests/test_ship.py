"""`nmmozoo ship`: a real tiny fit's export goes into a checkpoints folder with its index
entry (hash, live agent-steps, commit, hardware, wall time, score from an `nmmozoo test`
report), loads back by hash, and what cannot be shipped is refused with the file named."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from nmmozoo import load_pretrained
from nmmozoo.cli import main
from nmmozoo.hub import sha256_of
from nmmozoo.ship import ShipError, hours_text, ship, zoo_table

TINY = ["--num_maps", "1", "--ppo.rollout_steps", "256", "--ppo.minibatch_steps", "256",
        "--ppo.epochs", "1", "--trainer.enable_progress_bar", "false", "--val_every", "0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 3-update demo fit, and an `nmmozoo test` report of its export."""
    root = tmp_path_factory.mktemp("ship")
    assert main(["fit", "demo", "--run_dir", str(root / "run"), *TINY, "--trainer.max_steps", "3"]) == 0
    assert main(["test", "demo", "random", "--ckpt_path", str(root / "run" / "policy.safetensors"), "none",
                 "--preset", "tiny",
                 "--num_maps", "1", "--num_npcs", "4", "--horizon", "32", "--seeds", "0", "1",
                 "--report", str(root / "report")]) == 0
    return root


@pytest.mark.timeout(600)
def test_ship_writes_the_file_and_its_entry(run, tmp_path):
    into = tmp_path / "checkpoints"
    entry = ship(run / "run", "demo_tiny_run", into=into, report=run / "report", report_name="policy.safetensors")
    src = run / "run" / "policy.safetensors"
    dest = into / "demo_tiny_run.safetensors"
    assert dest.read_bytes() == src.read_bytes()
    index = yaml.safe_load((into / "index.yaml").read_text())
    assert index["demo_tiny_run"] == json.loads(json.dumps(entry))
    assert entry["sha256"] == sha256_of(dest) and entry["bytes"] == dest.stat().st_size
    assert entry["recipe"] == "demo" and entry["model"] == load_pretrained(src).spec["name"] and entry["seed"] == 0
    assert entry["agent_steps"] == 3 * 256 and entry["updates"] == 3
    assert entry["hardware"]["torch_threads"] >= 1 and entry["hardware"]["device"] == "cpu"
    assert entry["wall_s"] > 0 and entry["commit"]  # a git checkout: the fit's commit
    # every update logged its process CPU time: some, and no more than the machine's cores
    # could give in the wall time (+ the rounding to 0.1 s)
    assert entry["cpu_updates"] == entry["updates"] == 3
    assert 0 < entry["cpu_s"] <= entry["wall_s"] * os.cpu_count() + 0.2
    results = json.loads((run / "report" / "results.json").read_text())
    score = [p for p in results["policies"] if p["name"].endswith(" (policy.safetensors)")][0]["score"]
    assert entry["pve"]["score"] == [round(score["mean"], 2), round(score["half_width"], 2)]
    assert entry["pve"]["setting"]["preset"] == "tiny" and entry["pve"]["setting"]["seeds"] == [0, 1]
    table = zoo_table(run / "report", index=index).splitlines()
    assert table[2].startswith("| `demo_tiny_run` (demo) | 768 | " + "{:.1f} ± {:.1f}".format(*entry["pve"]["score"]))
    assert table[3].startswith("| random | 0 | ")  # the report's floor
    policy = load_pretrained(dest, sha256=entry["sha256"])  # loads, hash checked
    assert policy.spec["name"] == entry["model"]
    # shipping the same weights again changes nothing; other weights under the name are refused
    assert ship(run / "run", "demo_tiny_run", into=into)["sha256"] == entry["sha256"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "policy.safetensors").write_bytes(src.read_bytes())
    (run / "run" / "logs").rename(other / "logs")
    try:
        dest.write_bytes(dest.read_bytes()[:-1] + b" ")  # the shipped file now differs
        with pytest.raises(ShipError, match="exists with other weights"):
            ship(other, "demo_tiny_run", into=into)
        ship(other, "demo_tiny_run", into=into, replace=True)
        assert dest.read_bytes() == src.read_bytes()
    finally:
        (other / "logs").rename(run / "run" / "logs")
    assert not list(into.glob(".*.tmp"))


@pytest.mark.timeout(600)
def test_ship_refuses_what_it_cannot_ship(run, tmp_path, monkeypatch, capsys):
    with pytest.raises(ShipError, match="no exported policy"):
        ship(tmp_path, "x", into=tmp_path / "c")
    with pytest.raises(ShipError, match="--name"):
        ship(run / "run", "../x", into=tmp_path / "c")
    with pytest.raises(ShipError, match="no policy named 'nope'"):
        ship(run / "run", "x", into=tmp_path / "c", report=run / "report", report_name="nope")
    import nmmozoo.ship as shipping

    monkeypatch.setattr(shipping, "MAX_BYTES", 1000)
    with pytest.raises(ShipError, match="over the"):
        ship(run / "run", "x", into=tmp_path / "c")
    assert not (tmp_path / "c").exists()
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["ship", str(run / "run"), "--name", "x", "--into", str(tmp_path / "c")]) == 0
    assert "shipped x" in capsys.readouterr().out
    assert main(["ship", str(tmp_path), "--name", "x", "--into", str(tmp_path / "c")]) == 2
    assert "policy.safetensors" in capsys.readouterr().err


def test_a_resumed_fits_thread_counts_are_all_recorded():
    from nmmozoo.ship import _hardware, threads_text

    seg = lambda t: {"machine": {"cpu": "X", "cores": 2, "torch_threads": t}}  # noqa: E731
    assert threads_text(_hardware([seg(1)])) == "1 thread"
    assert threads_text(_hardware([seg(2), seg(2)])) == "2 threads"
    assert _hardware([seg(1), seg(2)])["torch_threads"] == [1, 2]
    assert threads_text(_hardware([seg(1), seg(2)])) == "1 then 2 threads"
    # a count kept over several starts is one stretch
    assert threads_text(_hardware([seg(1), seg(1), seg(2), seg(1), seg(1)])) == "1 then 2 then 1 threads"
    assert threads_text({"torch_threads": [1, 1]}) == "1 thread"
    assert _hardware([]) is None


def test_a_fit_resumed_on_other_machines_names_each_cpu():
    """A run carried from machine to machine (handoff/) lists each CPU model once, in the
    order its starts ran; one CPU stays a string."""
    from nmmozoo.ship import _hardware, hardware_text

    seg = lambda c: {"machine": {"cpu": c, "cores": 2, "torch_threads": 1}}  # noqa: E731
    assert _hardware([seg("A"), seg("A")])["cpu"] == "A"
    hw = _hardware([seg("A"), seg("B"), seg("B"), seg("A")])
    assert hw["cpu"] == ["A", "B"]
    assert hardware_text({"hardware": hw, "wall_s": 3600.0, "updates": 1}) == "2-core A and B, 1 thread, 1.0 h"
    hw = _hardware([seg("A"), seg("B"), seg("C")])
    assert hardware_text({"hardware": hw, "wall_s": 3600.0, "updates": 1}) == "2-core A, B and C, 1 thread, 1.0 h"


@pytest.mark.timeout(600)
def test_a_resumed_fits_commits_are_listed_in_the_order_its_starts_ran(run, tmp_path):
    import shutil

    resumed = tmp_path / "run"
    shutil.copytree(run / "run", resumed)
    info = json.loads((resumed / "run_info.json").read_text())
    first = info["segments"][0]
    info["segments"] = [dict(first, commit=c) for c in ("f" * 40, "0" * 40, "f" * 40, "a" * 40)]
    (resumed / "run_info.json").write_text(json.dumps(info))
    entry = ship(resumed, "resumed", into=tmp_path / "checkpoints")
    assert entry["commit"] == ["f" * 40, "0" * 40, "a" * 40]


def test_the_cpu_time_is_shown_only_when_every_update_logged_it():
    """Fits from before the CPU-time log have ``cpu_s`` for their later updates only: the
    table's hours are then the wall time alone, not a CPU figure that misses updates."""
    entry = {"wall_s": 7200.0, "updates": 10, "cpu_s": 6840.0, "cpu_updates": 10}
    assert hours_text(entry) == "2.0 h, 1.9 CPU-h"
    assert hours_text({**entry, "cpu_updates": 4}) == "2.0 h"
    assert hours_text({"wall_s": 7200.0, "updates": 10}) == "2.0 h"


def test_the_hardware_cell_is_one_text_for_the_table_and_the_cards():
    """`hardware_text` writes the zoo table's and the model cards' "hardware, wall time" cell."""
    from nmmozoo.ship import hardware_text

    entry = {"hardware": {"cpu": "AMD EPYC", "cores": 2, "torch_threads": [1, 1, 2]},
             "wall_s": 9000.0, "updates": 3, "cpu_s": 7200.0, "cpu_updates": 3}
    assert hardware_text(entry) == "2-core AMD EPYC, 1 then 2 threads, 2.5 h, 2.0 CPU-h"
    gpu = {**entry, "hardware": {**entry["hardware"], "gpu": "NVIDIA H200"}, "cpu_updates": 2}
    assert hardware_text(gpu) == "2-core AMD EPYC, 1 then 2 threads, NVIDIA H200, 2.5 h"


@pytest.mark.timeout(600)
def test_the_run_logs_are_kept_with_the_checkpoint_as_a_run_directory(run, tmp_path, capsys):
    """--logs_into keeps the CSV logs and run_info.json, so the learning curves can be drawn
    after the run's machine is gone."""
    from nmmozoo.report import read_metrics

    ship(run / "run", "kept", into=tmp_path / "c", logs_into=tmp_path / "runs")
    kept = tmp_path / "runs" / "kept"
    assert read_metrics(kept) == read_metrics(run / "run")
    assert (kept / "run_info.json").read_bytes() == (run / "run" / "run_info.json").read_bytes()
    assert not list(kept.rglob("*.ckpt")) and not list(kept.rglob("*.safetensors"))
    capsys.readouterr()
    assert main(["ship", str(run / "run"), "--name", "kept2", "--into", str(tmp_path / "c"),
                 "--logs_into", str(tmp_path / "runs")]) == 0
    assert "logs kept in" in capsys.readouterr().out and (tmp_path / "runs" / "kept2" / "run_info.json").is_file()


def _docs_copy(tmp_path):
    import shutil
    from pathlib import Path

    root = Path(__file__).parents[1]
    dst = tmp_path / "repo"
    (dst / "docs").mkdir(parents=True)
    shutil.copy(root / "README.md", dst / "README.md")
    shutil.copy(root / "docs" / "zoo.md", dst / "docs" / "zoo.md")
    shutil.copytree(root / "models", dst / "models", ignore=shutil.ignore_patterns("*.yaml", "*.py", "__pycache__"))
    return root, dst


def test_the_zoo_docs_are_the_ones_write_zoo_docs_gives(tmp_path):
    """The shipped zoo's tables and cards are current: rewriting them from the index and the
    PvE report changes no file (README.md, docs/zoo.md, every models/*.md)."""
    from nmmozoo.ship import write_zoo_docs

    root, dst = _docs_copy(tmp_path)
    assert write_zoo_docs(dst, root / "docs" / "results" / "zoo-pve") == []
    for f in dst.rglob("*.md"):
        assert f.read_text() == (root / f.relative_to(dst)).read_text()


def test_write_zoo_docs_adds_a_new_checkpoint_to_the_tables_and_its_card(tmp_path, capsys):
    from nmmozoo.hub import pretrained_index
    from nmmozoo.ship import NO_WEIGHTS, write_zoo_docs

    root, dst = _docs_copy(tmp_path)
    index = dict(pretrained_index())
    index["mori_test"] = {**index["jimyhzhu"], "model": "mori", "recipe": "mori", "agent_steps": 123456}
    report = root / "docs" / "results" / "zoo-pve"
    changed = write_zoo_docs(dst, report, index=index)
    assert sorted(f.relative_to(dst).as_posix() for f in changed) == ["README.md", "docs/zoo.md", "models/mori.md"]
    card = (dst / "models" / "mori.md").read_text()
    assert NO_WEIGHTS not in card and "| `mori_test` | mori | 123,456 | 10.43 ± 3.05 |" in card
    assert card.index("**Pretrained.**") < card.index("`mori_test`") < card.index("**Remaining differences")
    assert "| `mori_test` (mori) | 123,456 | 10.4 ± 3.0 |" in (dst / "README.md").read_text()
    # the same through the command, from an index file: the card goes back when the entry goes
    into = tmp_path / "c"
    into.mkdir()
    (into / "index.yaml").write_text(yaml.safe_dump(dict(pretrained_index()), sort_keys=False))
    capsys.readouterr()
    assert main(["ship", "--docs", str(dst), "--report", str(report), "--into", str(into)]) == 0
    assert "models/mori.md" in capsys.readouterr().out
    for f in dst.rglob("*.md"):
        assert f.read_text() == (root / f.relative_to(dst)).read_text()
    # a file without its table is named, and nothing is written
    (dst / "docs" / "zoo.md").write_text("no table here\n")
    with pytest.raises(ShipError, match="zoo.md: no table"):
        write_zoo_docs(dst, report, index=index)
    assert (dst / "README.md").read_text() == (root / "README.md").read_text()
    assert main(["ship"]) == 2 and "give RUN_DIR" in capsys.readouterr().err
    (into / "index.yaml").write_text("takeru: [unclosed\n")
    assert main(["ship", "--docs", str(dst), "--report", str(report), "--into", str(into)]) == 2
    assert "index.yaml: not readable YAML" in capsys.readouterr().err
    assert main(["ship", "--docs", str(dst)]) == 2 and "needs --report" in capsys.readouterr().err
