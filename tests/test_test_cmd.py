"""`nmmozoo test`: PvE and PvP evaluation with 95% t-intervals over seeds, sources (random, untrained,
.safetensors, .ckpt, last), clear errors, and the report (JSON, Markdown, PNG)."""

from __future__ import annotations

import json
import math

import pytest

from nmmozoo.cli import main
from nmmozoo.evaluate import EvalError, load_for_test, t975, t_interval

TINY = ["--preset", "tiny", "--num_maps", "2", "--episodes", "2", "--horizon", "8", "--num_npcs", "4",
        "--threads", "1"]


def test_t_interval_on_constructed_numbers():
    r = t_interval([1.0, 2.0, 3.0])  # mean 2, s = 1, t(0.975, 2) = 4.3027
    assert r["mean"] == 2.0 and r["n"] == 3
    assert r["half_width"] == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert r["ci95"] == pytest.approx([2 - 4.3027 / math.sqrt(3), 2 + 4.3027 / math.sqrt(3)], rel=1e-4)
    assert t_interval([5.0, 5.0])["half_width"] == 0.0
    one = t_interval([0.7])
    assert one["ci95"] is None and one["half_width"] is None and one["mean"] == 0.7
    assert t975(1) == pytest.approx(12.7062) and t975(30) == pytest.approx(2.0423)
    assert t975(60) == pytest.approx(2.0003, abs=2e-4) and t975(10 ** 6) == pytest.approx(1.96, abs=1e-3)
    scipy = pytest.importorskip("scipy.stats")
    for df in (1, 2, 5, 29, 31, 45, 120):
        assert t975(df) == pytest.approx(scipy.t.ppf(0.975, df), rel=2e-4)


def test_test_command_writes_the_report(tmp_path, capsys):
    rep = tmp_path / "rep"
    assert main(["test", "random", "baseline_tiny", "--seeds", "0", "1", *TINY, "--report", str(rep)]) == 0
    out = capsys.readouterr().out
    assert "random: score" in out and "baseline_tiny (untrained): score" in out and "Student-t" in out
    assert sorted(p.name for p in rep.iterdir()) == ["categories.png", "lifespan.png", "results.json",
                                                     "results.md", "tasks.png"]
    res = json.loads((rep / "results.json").read_text())
    assert res["setting"]["preset"] == "tiny" and res["setting"]["seeds"] == [0, 1]
    assert "Student-t" in res["ci_method"]
    names = [p["name"] for p in res["policies"]]
    assert names == ["random", "baseline_tiny (untrained)"]
    for p in res["policies"]:
        for key in ("score", "score_by_category", "completion", "completion_by_category",
                    "completion_by_task", "lifespan", "agent_episodes", "agent_steps", "wall_s",
                    "source", "training_steps"):
            assert key in p, key
        assert set(p["score_by_category"]) == {"survival", "combat", "exploration", "skill", "item", "market"}
        assert p["score"]["n"] == 2 and len(p["score"]["ci95"]) == 2
        assert p["lifespan"]["mean"] == 8.0 and p["agent_episodes"] == 2 * 2 * 2 * 16
        assert p["agent_steps"] == 2 * 2 * 2 * 16 * 8  # nobody dies in 8 ticks
        assert len(res["lifespan_samples"][p["name"]]) == p["agent_episodes"]
        sc, life = p["score"], p["lifespan"]  # the printed line carries the report's mean ± half-width
        assert (f"{p['name']}: score {sc['mean']:.2f} ± {sc['half_width']:.2f} / 100, " in out
                and f"lifespan {life['mean']:.2f} ± {life['half_width']:.2f} ticks;" in out)
    md = (rep / "results.md").read_text()
    assert "| policy | training steps | score |" in md and "| random | 0 |" in md
    for png in ("categories.png", "lifespan.png", "tasks.png"):
        assert (rep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(rep.glob(".*.tmp"))  # no temporary files left
    # another setting into the same report is refused; the same setting adds a policy
    assert main(["test", "random", "--seeds", "0", *TINY, "--report", str(rep)]) == 2
    assert "another setting" in capsys.readouterr().err


def test_exports_and_checkpoints_evaluate(tmp_path):
    import nmmozoo
    from nmmozoo.hub import save_pretrained

    p = nmmozoo.create_policy("baseline_tiny", config=nmmozoo.make_config("tiny"))
    path = save_pretrained(p, tmp_path / "p.safetensors", recipe={"env": {"preset": "tiny", "num_npcs": 4}})
    src = load_for_test("baseline_tiny", str(path), horizon=8)
    assert src["preset"] == "tiny" and src["env"] == {"num_npcs": 4, "horizon": 8}  # the recipe's world
    assert main(["test", "baseline_tiny", "--ckpt_path", str(path), "--seeds", "0", *TINY]) == 0
    with pytest.raises(EvalError, match="holds a 'baseline_tiny' policy, not 'takeru_tiny'"):
        load_for_test("takeru_tiny", str(path))


def test_clear_errors(tmp_path, capsys):
    def err(*argv):
        assert main(["test", *argv, "--seeds", "0", *TINY]) == 2
        return capsys.readouterr().err

    assert "unknown model or recipe 'nosuch'" in err("nosuch")
    assert "no checkpoint 'nosuch'" in err("baseline_tiny", "--ckpt_path", "nosuch")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert "not readable" in err("baseline_tiny", "--ckpt_path", str(bad))
    assert "--ckpt_path last: no" in err("demo", "--ckpt_path", "last", "--run_dir", str(tmp_path))
    assert "random policy has no weights" in err("random", "--ckpt_path", "x")
    assert "at least 2 policies" in err("random", "--protocol", "pvp")
    assert "17 policies need at least 17 agents per map, the env has 16" in err(*["random"] * 17, "--protocol", "pvp")
    assert "unknown model or recipe 'nosuch'" in err("random", "nosuch", "--protocol", "pvp")
    assert "scripted forager has no weights" in err("forager", "--ckpt_path", "x")
    assert "repeated seed" in (main(["test", "random", "--seeds", "1", "1"]) == 2 and capsys.readouterr().err)


def test_a_checkpoint_for_another_env_size_is_refused(tmp_path, capsys):
    import nmmozoo
    from nmmozoo.hub import save_pretrained

    p = nmmozoo.create_policy("baseline_tiny", config=nmmozoo.make_config("tiny"))
    path = save_pretrained(p, tmp_path / "p.safetensors", recipe={"env": {"preset": "tiny"}})
    # the export played tiny (16 agents, 48 tiles); evaluated on competition2023 (128 agents)
    assert main(["test", "baseline_tiny", "--ckpt_path", str(path), "--preset", "competition2023",
                 "--num_maps", "1", "--horizon", "2", "--seeds", "0"]) == 2
    e = capsys.readouterr().err
    assert "built for other observation and action sizes" in e and "num_agents" in e and "(16, 128)" in e


def test_a_fits_checkpoint_and_last(tmp_path, capsys):
    """A Lightning checkpoint as `nmmozoo fit` writes it: the policy's weights under
    ``policy.*``, the recipe and the agent-steps trained."""
    import torch

    import nmmozoo

    p = nmmozoo.create_policy("baseline_tiny", config=nmmozoo.make_config("tiny"))
    ckpt = {"state_dict": {f"policy.{k}": v for k, v in p.state_dict().items()}, "global_step": 3,
            "nmmozoo_agent_steps": 12288,
            "nmmozoo_recipe": {"model": "baseline_tiny", "env": {"preset": "tiny", "num_npcs": 4, "num_maps": 8}}}
    (tmp_path / "checkpoints").mkdir()
    torch.save(ckpt, tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(EvalError, match="holds a 'baseline_tiny' policy, not 'baseline_tinycorrected'"):
        load_for_test("demo", "last", run_dir=str(tmp_path))  # the demo recipe's model is another
    src = load_for_test("baseline_tiny", "last", run_dir=str(tmp_path))
    assert src["training_steps"] == 12288 and src["preset"] == "tiny" and src["env"] == {"num_npcs": 4}
    assert all(v.equal(p.state_dict()[k]) for k, v in src["policy"].state_dict().items())
    rep = tmp_path / "rep"
    assert main(["test", "baseline_tiny", "--ckpt_path", str(tmp_path / "checkpoints" / "last.ckpt"),
                 "--seeds", "0", *TINY, "--report", str(rep)]) == 0
    res = json.loads((rep / "results.json").read_text())
    assert res["policies"][0]["training_steps"] == 12288 and res["policies"][0]["score"]["ci95"] is None
    assert "| 12,288 |" in (rep / "results.md").read_text()


def test_the_scripted_forager_acts_within_the_masks():
    import torch

    from nmmozoo import make_env
    from nmmozoo.env.constants import ACTION_HEADS
    from nmmozoo.scripted import Forager

    env = make_env("tiny", num_maps=2, tasks="none", map_pool="eval", horizon=20, num_npcs=4)
    td, f = env.reset(), Forager(seed=0)
    for _ in range(20):
        f.act(td)
        for h in ACTION_HEADS:
            a = td["agents", "action", h]
            ok = td["agents", "action_mask", h].gather(-1, a[..., None]).squeeze(-1)
            assert bool(ok[td["agents", "mask"]].all()), h
        td = env.step(td)["next"]
    assert torch.is_tensor(td["agents", "mask"])


def test_pvp_random_against_the_forager(tmp_path, capsys):
    """Random and the scripted forager share the same 4 held-out maps (8 agents each, groups
    rotated): each is scored on its own agents, and the forager lives longer and completes
    its survival task more often."""
    from nmmozoo.evaluate import evaluate

    kw = {"preset": "tiny", "tasks": "recipes/tasks/survival.yaml", "num_maps": 4, "episodes": 1, "horizon": 60}
    r = evaluate(policies=[None, "forager"], seed=0, **kw)
    rnd, fo = r["policies"]
    assert r["protocol"] == "pvp" and r["groups"] == 2 and r["group_size"] == 8
    assert rnd["agent_episodes"] == fo["agent_episodes"] == 4 * 8
    assert fo["lifespan"] > rnd["lifespan"] and fo["completion"] > rnd["completion"]
    # the same seed, the policies' order swapped: the same games with the groups exchanged
    swapped = evaluate(policies=["forager", None], seed=1, **kw)["policies"]
    assert swapped[0]["lifespan"] > swapped[1]["lifespan"]
    rep = tmp_path / "rep"
    assert main(["test", "random", "forager", "--protocol", "pvp", "--preset", "tiny", "--num_maps", "4",
                 "--horizon", "60", "--tasks", "recipes/tasks/survival.yaml", "--seeds", "0", "1",
                 "--threads", "1", "--report", str(rep)]) == 0
    out = capsys.readouterr().out
    assert "PvP: 2 policies share each of 4 held-out maps, 8 agents each" in out
    res = json.loads((rep / "results.json").read_text())
    assert res["protocol"] == "pvp" and res["setting"]["policies"] == ["random", "forager"]
    by = {p["name"]: p for p in res["policies"]}
    assert set(by) == {"random", "forager"}
    assert by["forager"]["lifespan"]["mean"] > by["random"]["lifespan"]["mean"]
    assert by["forager"]["completion"]["mean"] > by["random"]["completion"]["mean"]
    assert by["random"]["agent_episodes"] == by["forager"]["agent_episodes"] == 2 * 4 * 8
    assert "# PvP evaluation" in (rep / "results.md").read_text()
    # one policy twice: told apart
    assert main(["test", "forager", "forager", "--protocol", "pvp", "--preset", "tiny", "--num_maps", "1",
                 "--horizon", "4", "--tasks", "none", "--seeds", "0", "--threads", "1"]) == 0
    assert "forager #2: lifespan" in capsys.readouterr().out


def test_world_preset_drops_the_recipes_world_fields():
    """`--world preset` evaluates every policy in the preset's own world (one world to compare
    recipes on); the default plays each recipe's world fields."""
    own = load_for_test("takeru", tasks="none")
    assert own["env"]["num_npcs"] == 128 and own["env"]["map_pool_size"] == 1280
    plain = load_for_test("takeru", tasks="none", world="preset", num_npcs=16)
    assert plain["env"] == {"num_npcs": 16} and plain["preset"] == "competition2023"
    with pytest.raises(EvalError, match="--world 'mine'"):
        load_for_test("takeru", tasks="none", world="mine")


def test_pvp_groups_with_slots_left_over():
    """Three policies in tiny's 16 slots: three groups of 5 (rotated), the one slot left over
    played by the filler and scored for nobody, as 2023's 9 groups of 14 left 2 of 128."""
    from nmmozoo.evaluate import evaluate

    kw = {"preset": "tiny", "tasks": "recipes/tasks/survival.yaml", "num_maps": 3, "episodes": 1, "horizon": 20}
    r = evaluate(policies=[None, "forager", None], seed=0, **kw)
    assert r["groups"] == 3 and r["group_size"] == 5 and r["rest"] == 1
    assert [p["agent_episodes"] for p in r["policies"]] == [3 * 5] * 3
    assert all(0 < p["agent_steps"] <= 3 * 5 * 20 for p in r["policies"])
    # the filler may be any policy: the groups' numbers do not count its slot
    f = evaluate(policies=[None, "forager", None], rest="forager", seed=0, **kw)
    assert [p["agent_episodes"] for p in f["policies"]] == [15] * 3


@pytest.mark.parametrize("names", [("baseline_tiny", "yaofeng_tiny"), ("takeru_tiny", "saidinesh_tiny")])
def test_pvp_own_rows_equal_every_row(names):
    """The PvP shortcut (each zoo network on its own live agents only) plays the same games as
    running every network on every live agent and keeping its own agents' actions: with argmax
    actions, every agent-episode's lifespan and completion are equal (recurrent models
    included, whose memories then hold their own agents' states only)."""
    import nmmozoo
    from nmmozoo.evaluate import evaluate

    cfg = nmmozoo.make_config("tiny", num_npcs=4)
    policies = []
    for i, n in enumerate(names):
        import torch

        torch.manual_seed(i)
        policies.append(nmmozoo.create_policy(n, config=cfg))
    kw = {"preset": "tiny", "num_npcs": 4, "tasks": "heldout", "num_maps": 2, "episodes": 1, "horizon": 24,
          "deterministic": True, "samples": True, "seed": 1}
    fast = evaluate(policies=[*policies, None], own_rows=True, **kw)
    plain = evaluate(policies=[*policies, None], own_rows=False, **kw)
    for a, b in zip(fast["policies"], plain["policies"]):
        assert a["lifespans"] == b["lifespans"] and a["agent_steps"] == b["agent_steps"] > 0
        assert a["by_task"] == b["by_task"] and a["score"] == b["score"]
