"""A train loader that an interrupted run can resume mid-epoch, batch for batch.

A plain ``DataLoader(shuffle=True)`` draws each epoch's order from a generator that lives only in
memory, and Lightning cannot tell it where an interrupted epoch stopped: after ``ckpt_path=`` the
resumed epoch starts over in a new order, so some clips are seen twice and others not at all. Here:

- :class:`EpochSampler` derives each epoch's order from ``(seed, epoch)`` alone, so the order of any
  epoch can be rebuilt after a restart;
- :class:`ResumableBatchSampler` can leave out the first ``skip`` batches of its next pass (indices
  only: the skipped clips are never loaded);
- :class:`ResumableDataLoader` implements Lightning's ``state_dict``/``load_state_dict`` hooks for
  loaders. Its state is the epoch and the number of batches the training loop has finished in it,
  read from the trainer's progress counters at checkpoint time. (Counting batches inside the loader
  would be off by Lightning's one-batch prefetch.) The data module supplies those counters, so the
  resume is exact when the module is passed as ``fit(datamodule=...)``, as every stage does; a loader
  passed on its own saves an empty state.

Under DDP Lightning swaps the sampler for a ``DistributedSampler`` (its own seeded per-epoch shuffle)
and rebuilds the batch sampler around it; skipping works on each rank's shard the same way.
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterator

import torch
from torch.utils.data import BatchSampler, DataLoader, Sampler


class EpochSampler(Sampler[int]):
    """``range(n)`` in an order that depends only on ``seed`` and the epoch (``set_epoch``)."""

    def __init__(self, n: int, *, seed: int = 0, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class ResumableBatchSampler(BatchSampler):
    """A ``BatchSampler`` whose next pass can start after ``skip`` batches (then ``skip`` resets to 0)."""

    def __init__(self, sampler, batch_size: int, drop_last: bool = False):
        # Same signature as BatchSampler: Lightning rebuilds it around a DistributedSampler under DDP.
        super().__init__(sampler, batch_size, drop_last)
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        if callable(getattr(self.sampler, "set_epoch", None)):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        return itertools.islice(super().__iter__(), skip, None)


# (epoch, batches the training loop finished in it, batches it runs per epoch), or None outside a fit.
# The last is the trainer's count, which limit_train_batches may make shorter than the loader.
Progress = Callable[[], "tuple[int, int, int] | None"]


class ResumableDataLoader(DataLoader):
    """A DataLoader over a :class:`ResumableBatchSampler` with Lightning's loader-state hooks."""

    def __init__(self, *args, progress: Progress | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.progress = progress

    def state_dict(self) -> dict:
        now = self.progress() if self.progress is not None else None
        if now is None:
            return {}
        epoch, done, per_epoch = now
        return {"epoch": int(epoch), "batches_done": int(done), "batches_per_epoch": int(per_epoch)}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        epoch, done = state["epoch"], state["batches_done"]
        per_epoch = min(state.get("batches_per_epoch", len(self.batch_sampler)), len(self.batch_sampler))
        if done >= per_epoch:  # saved at the end of an epoch: the next one starts from its beginning
            epoch, done = epoch + 1, 0
        # Lightning draws the resumed epoch's first batch before it calls set_epoch: set it here.
        self.batch_sampler.set_epoch(epoch)
        self.batch_sampler.skip = done


def resumable_loader(dataset, *, batch_size: int, shuffle: bool, seed: int, progress: Progress | None = None,
                     **kwargs) -> ResumableDataLoader:
    """The train loader: seeded per-epoch order, resumable mid-epoch (``kwargs`` go to DataLoader)."""
    batches = ResumableBatchSampler(EpochSampler(len(dataset), seed=seed, shuffle=shuffle), batch_size)
    # Its own generator: creating an iterator would otherwise draw a worker seed from the global RNG,
    # and the draw would fall at a different point of a resumed run than of the uninterrupted one.
    kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
    return ResumableDataLoader(dataset, batch_sampler=batches, progress=progress, **kwargs)
