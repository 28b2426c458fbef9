"""A fit stopped with SIGTERM (a scheduler's pre-emption, ``kill``, the end of a job's time)
saves its checkpoint before it exits, so it resumes from the update it stopped at.

Lightning answers SIGTERM by finishing the update in progress (one training batch is one
PPO update) and raising :class:`~lightning.pytorch.utilities.exceptions.SIGTERMException`
at its end; :class:`CheckpointOnSigterm` then writes ``last.ckpt`` — the same exact-resume
checkpoint the periodic ones are (weights, optimiser, update index, env state, random
generators) — so ``--ckpt_path last`` continues from there and ends with the weights of the
uninterrupted fit (``tests/test_resume.py``). Ctrl+C (SIGINT) stops mid-update, where no
consistent state exists: it keeps the last periodic checkpoint. Single-process fits only:
data-parallel ranks keep their last periodic checkpoint too.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException


class CheckpointOnSigterm(Callback):
    """Save ``path`` when a fit stops on SIGTERM at an update's end; ``saved`` is then the
    path written (None otherwise)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.saved: Path | None = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or not trainer.training or trainer.world_size > 1:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # the whole state: a resume, not an export
        self.saved = self.path
