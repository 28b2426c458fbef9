"""Write the model cards ``models/<name>.md`` (``python -m nmmozoo.nn.cards``) from each spec's
``card:`` section: the public source (repository @ commit, file), what the network is, its
parameter count at both task embedding sizes (the shipped 384 and 2023's 4096) beside the
public count, the parameters the public code computes and never uses, and every remaining
difference from the public network with its reason.

    card:
      source: "[B] NeuralMMO/baselines @ 6654f30, reinforcement_learning/policy.py"
      summary: one paragraph on the network
      public_params: 3901687          # at task embedding 4096
      unused_params: 0                # public parameters left out (never used there)
      unused: what they are
      differences: ["...", "..."]     # every remaining difference and why
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..policy import _read_yaml, _spec_files, create_policy, resolve_spec


def pretrained_rows(name: str) -> str:
    """The card's row(s) of the zoo table: each shipped checkpoint of this model
    (``checkpoints/index.yaml``) with its budget, score and hardware."""
    from ..hub import pretrained_index
    from ..ship import format_pm, hardware_text

    entries = {k: e for k, e in pretrained_index().items() if isinstance(e, dict) and e.get("model") == name}
    if not entries:
        return "No pretrained weights ship yet for this model."

    def pm(x, unit=""):
        return format_pm(x, unit, digits=2)

    lines = ["| checkpoint | recipe | live agent-steps | PvE score | completion | lifespan | hardware, wall time |",
             "|---|---|---:|---:|---:|---:|---|"]
    for k, e in entries.items():
        pve = e.get("pve") or {}
        lines.append(f"| `{k}` | {e.get('recipe')} | {e.get('agent_steps', 0):,} | {pm(pve.get('score'))} | "
                     f"{pm(pve.get('completion_pct'), '%')} | {pm(pve.get('lifespan'))} | "
                     f"{hardware_text(e)} |")
    return "\n".join(lines) + ("\n\nScores: `nmmozoo test` PvE, the 63 held-out tasks on held-out maps, "
                               "± the 95% interval over seeds; setting and the zoo table: docs/zoo.md.")


def card(name: str) -> str:
    spec = resolve_spec(name)
    c = spec.get("card") or {}
    n384 = create_policy(name, task_dim=384).num_parameters()
    n4096 = create_policy(name, task_dim=4096).num_parameters()
    tiny = create_policy(f"{name}_tiny", task_dim=384).num_parameters()
    body = yaml.safe_dump({k: spec[k] for k in ("hidden", "streams", "encoders", "fusion", "memory",
                                                "decoder", "value", "restrictions", "init")
                           if k in spec}, sort_keys=False).strip()
    public = c.get("public_params")
    unused = int(c.get("unused_params", 0) or 0)
    rows = [f"| `{name}` | {n384:,} | {n4096:,} |"]
    if public is not None:
        rows.append(f"| public network | | {public:,} |")
        if unused:
            rows.append(f"| public, less never-used parameters | | {public - unused:,} |")
    rows.append(f"| `{name}_tiny` (tests) | {tiny:,} | |")
    diffs = c.get("differences") or []
    diff_text = "\n".join(f"- {d}" for d in diffs) if diffs else "- none known."
    unused_text = (f"\n**Left out.** {c['unused']} ({unused:,} parameters at task embedding 4096).\n"
                   if c.get("unused") else "")
    return f"""# {name}

{spec.get('description', '')}

**Source.** {c.get('source', 'not given')}

**Network.** {c.get('summary', '')}
{unused_text}
| parameters | task embedding 384 (shipped) | task embedding 4096 (2023) |
|---|---|---|
{chr(10).join(rows)}

**Pretrained.**

{pretrained_rows(name)}

**Remaining differences from the public network.**
{diff_text}

Spec: `models/{name}.yaml`; the full fidelity audit with line references: docs/zoo.md.

```yaml
{body}
```
"""


def main() -> None:
    root = Path(__file__).resolve().parents[3] / "models"
    for name, path in sorted(_spec_files().items()):
        if "card" not in _read_yaml(path):
            continue
        (root / f"{name}.md").write_text(card(name))
        print(f"wrote models/{name}.md")


if __name__ == "__main__":
    main()
