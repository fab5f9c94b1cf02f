"""The Lightning callbacks of this project. ``conf/callbacks`` names them (with Lightning's own
checkpoint and learning-rate callbacks) as ``_target_`` nodes; :func:`msa.stages.common.build_trainer`
builds them with :func:`msa.runtime.instantiate`.

    SkipCounter  sums the clips a loader skipped (``data.on_error=skip``), logs them per epoch and feeds
                 the data module's :class:`msa.data.datamodule.SkipReport`
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

import lightning as L
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


__all__ = ["SkipCounter"]
