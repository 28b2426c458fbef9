"""Write the model cards ``models/<name>.md`` (``python -m nmmozoo.nn.cards``): where each
model comes from, what differs from the baseline, and its parameter count at both task
embedding sizes (the shipped 384 and 2023's 4096)."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..policy import create_policy, resolve_spec

NOTES = {
    "baseline": ("The NeurIPS 2023 competition baseline (NeuralMMO/baselines, branch 2.0).",
                 "It is the reference: tile CNN over embedded (row, col, material), every entity "
                 "attribute embedded, items embedded and shared by inventory and market, a "
                 "1280→256 projection, linear and pointer heads, no memory."),
    "mori": ("Mori's entry (2023), which kept the baseline network.",
             "Identical to the baseline; Mori's gains came from reward shaping "
             "(see recipes/mori.yaml)."),
    "takeru": ("Takeru's 1st-place entry (2023).",
               "Entity attributes as continuous features scaled to about [0, 1] with embedded ids; "
               "the tile encoder reads the material alone; a residual MLP after the projection; "
               "the give and give-gold heads are removed (masked to their no-op)."),
    "yaofeng": ("Yao Feng's 2nd-place entry (Netease-Games-OPD-AI/neural-mmo-2023).",
                "ResNet blocks with LayerNorm in the tile encoder, fed the normalised absolute "
                "position; LayerNorm before activations; 2 LSTM cells; orthogonal init; give "
                "disabled and attacks on neutral/aggressive NPCs masked."),
    "saidinesh": ("Saidinesh's entry (saidineshpola/nmmo-rl).",
                  "A deeper SiLU tile CNN with multi-head attention over the cells; self-attention "
                  "over entities and across the fused streams; an LSTM; attention pooling of the "
                  "inventory and a cross-attention pointer decoder."),
    "jimyhzhu": ("Jimyhzhu's entry (JimyhZhu/Neurips_NeuralMMO2023).",
                 "Categorical entity attributes one-hot (NPC type, skill levels) with the rest "
                 "scaled to [0, 1]; one-hot items; average pooling of the item and market "
                 "embeddings."),
}


def card(name: str) -> str:
    spec = resolve_spec(name)
    source, diff = NOTES[name]
    n384 = create_policy(name, task_dim=384).num_parameters()
    n4096 = create_policy(name, task_dim=4096).num_parameters()
    tiny = create_policy(f"{name}_tiny", task_dim=384).num_parameters()
    body = yaml.safe_dump({k: spec[k] for k in ("hidden", "encoders", "fusion", "memory", "decoder",
                                                "value") if k in spec}, sort_keys=False).strip()
    restr = ", ".join(r if isinstance(r, str) else r["name"] for r in spec.get("restrictions", []))
    return f"""# {name}

{spec.get('description', '')}

**Source.** {source}

**Differences from the baseline.** {diff}

| parameters | task embedding 384 (shipped) | task embedding 4096 (2023) |
|---|---|---|
| `{name}` | {n384:,} | {n4096:,} |
| `{name}_tiny` (tests) | {tiny:,} | |

Action restrictions: {restr or 'none'}. Spec: `models/{name}.yaml`.

```yaml
{body}
```

Rebuilt from the public description of the network with nmmozoo's components; layer sizes
follow the source where it states them (NMMO2.md §7). No pretrained weights yet.
"""


def main() -> None:
    root = Path(__file__).resolve().parents[3] / "models"
    for name in NOTES:
        (root / f"{name}.md").write_text(card(name))
        print(f"wrote models/{name}.md")


if __name__ == "__main__":
    main()
