"""The Lightning callbacks of this project. ``conf/callbacks`` names them (with Lightning's own
checkpoint and learning-rate callbacks) as ``_target_`` nodes; :func:`msa.stages.common.build_trainer`
builds them with :func:`msa.runtime.instantiate`.

    SkipCounter     sums the clips a loader skipped (``data.on_error=skip``), logs them per epoch and feeds
                    the data module's :class:`msa.data.datamodule.SkipReport`
    LastCheckpoint  the one ``last.ckpt`` to resume from: every N training steps and at each epoch end
"""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities import rank_zero_info

from msa.data.datamodule import SkipReport


class SkipCounter(L.Callback):
    """Sums ``batch["skipped"]`` per epoch; logs ``data/skipped`` (train), ``data/skipped_val`` and
    ``data/skipped_test``, prints a line when clips were skipped, and feeds the data module's
    :class:`SkipReport` (``trainer.datamodule.skip_report``) when there is one."""

    KEYS = {"train": "data/skipped", "valid": "data/skipped_val", "test": "data/skipped_test",
            "predict": "data/skipped_predict"}

    def __init__(self):
        self.epoch: collections.Counter = collections.Counter()  # split -> skipped this epoch
        self.total: collections.Counter = collections.Counter()

    def _count(self, trainer, split: str, batch) -> None:
        skipped = batch.get("skipped", []) if isinstance(batch, Mapping) else []
        if not skipped:
            return
        report = getattr(getattr(trainer, "datamodule", None), "skip_report", None)
        if isinstance(report, SkipReport):
            report.add(split, skipped)
        self.epoch[split] += len(skipped)
        self.total[split] += len(skipped)

    def _end(self, pl_module, split: str, log_it: bool = True) -> None:
        n = self.epoch.pop(split, 0)
        if log_it:
            pl_module.log(self.KEYS[split], float(n), on_step=False, on_epoch=True, sync_dist=True)
        if n:
            rank_zero_info(f"{self.KEYS[split]}: {n} clips skipped this epoch ({self.total[split]} in all)")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._count(trainer, "train", batch)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._count(trainer, "valid", batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._count(trainer, "test", batch)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._count(trainer, "predict", batch)

    def on_train_epoch_end(self, trainer, pl_module):
        self._end(pl_module, "train")

    def on_validation_epoch_end(self, trainer, pl_module):
        self._end(pl_module, "valid", log_it=not trainer.sanity_checking)

    def on_test_epoch_end(self, trainer, pl_module):
        self._end(pl_module, "test")

    def on_predict_epoch_end(self, trainer, pl_module):
        self._end(pl_module, "predict", log_it=False)  # Lightning does not log in predict


class LastCheckpoint(Checkpoint):
    """Writes ``<dirpath>/last.ckpt`` every ``every_n_train_steps`` training steps (None: never mid-epoch)
    and at the end of every training epoch, after that epoch's validation; always the newest state.
    A training step is Lightning's ``global_step``: an optimizer step in SFT, a sampled batch in GRPO
    (however many optimizer passes ``num_iterations`` makes over it).

    One writer, one file: two Lightning ``ModelCheckpoint`` with ``save_last`` in one folder write
    ``last.ckpt`` and ``last-v1.ckpt``, either of them the older, and since Lightning 2.6 a monitoring one
    writes ``last`` only when the epoch improved its monitor. The file is replaced atomically, so a kill
    while writing leaves the previous one.

    A step that ends an epoch whose validation follows is not written there: a checkpoint taken between
    the last batch and the validation resumes into the next epoch (Lightning treats the epoch as done),
    so a crash during validation would lose that epoch's validation, and with it the chance that the
    epoch becomes ``best``. The previous write then resumes before the end of the epoch, which trains
    the remaining batches and validates; the epoch-end write follows the validation.
    """

    FILE = "last.ckpt"

    def __init__(self, dirpath: str | os.PathLike | None = None, every_n_train_steps: int | None = None):
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be >= 1 or None, got {every_n_train_steps!r}")
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.every_n_train_steps = every_n_train_steps
        self._saved_step: int | None = None

    @property
    def path(self) -> Path:
        if self.dirpath is None:
            raise ValueError("LastCheckpoint needs a dirpath (the stage sets <stage>.checkpoint_dir)")
        return self.dirpath / self.FILE

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        n, step = self.every_n_train_steps, trainer.global_step
        if not n or step == 0 or step % n or step == self._saved_step or trainer.sanity_checking:
            return
        if self._validation_follows(trainer):
            return  # written after the validation instead (class docstring)
        self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking and not trainer.fast_dev_run:
            self._save(trainer)

    @staticmethod
    def _validation_follows(trainer) -> bool:
        """Whether this batch ends the epoch and the epoch's validation runs after it."""
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch or not trainer.enable_validation:
            return False
        every = trainer.check_val_every_n_epoch
        return every is None or (trainer.current_epoch + 1) % every == 0

    def _save(self, trainer) -> None:
        path = self.path
        tmp = path.with_name(f".{path.name}.tmp")
        trainer.save_checkpoint(tmp)  # every rank takes part; rank 0 writes; ends with a barrier
        if trainer.is_global_zero:
            os.replace(tmp, path)
        trainer.strategy.barrier("LastCheckpoint")
        self._saved_step = trainer.global_step


__all__ = ["LastCheckpoint", "SkipCounter"]
