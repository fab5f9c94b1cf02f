"""The train loader's batches: seeded per-epoch order, optional length buckets, DDP shares, exact resume.

A plain ``DataLoader(shuffle=True)`` draws each epoch's order from a generator that lives only in
memory, and Lightning cannot tell it where an interrupted epoch stopped: after ``ckpt_path=`` the
resumed epoch starts over in a new order, so some clips are seen twice and others not at all. Here:

- :func:`epoch_batches` builds an epoch's *global* batches (``batch_size x num_replicas`` clips each)
  from ``(seed, epoch)`` alone, so any epoch can be rebuilt after a restart. Given prompt lengths it
  groups clips of similar length: the shuffled epoch is cut into windows of :data:`BUCKET_WINDOW`
  global batches, each window is sorted by length and cut into batches, and the batches are shuffled
  (padding falls from ~40 % to a few % on a MOSEI-like mix, ``experiments/benchmarks/bench_padding.py``);
- :class:`ResumableBatchSampler` hands each rank its share of every global batch (positions
  ``rank, rank + num_replicas, ...``), so all ranks agree on the order and run the same number of
  batches, and can leave out the first ``skip`` batches of its next pass (indices only: the skipped
  clips are never loaded). Under DDP Lightning rebuilds it around a ``DistributedSampler``; it reads
  the rank and world size from that sampler and ignores its order;
- :class:`ResumableDataLoader` implements Lightning's ``state_dict``/``load_state_dict`` hooks for
  loaders. Its state is the epoch and the number of batches the training loop has finished in it,
  read from the trainer's progress counters at checkpoint time (counting inside the loader would be
  off by Lightning's prefetch, and by the workers'). The data module supplies those counters and
  carries the same position in its own checkpoint entry (see ``MSADataModule.state_dict``).

Batches are drawn in the main process, so worker processes change nothing in the order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Callable, Iterator

import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, Sampler

# Global batches per sorted window: wide enough that neighbours in length share a batch, narrow
# enough that each window is a random draw of the epoch (bench_padding.py prints the padding).
BUCKET_WINDOW = 50


def epoch_batches(n: int, batch_size: int, *, seed: int = 0, epoch: int = 0, shuffle: bool = True,
                  lengths: Sequence[int] | None = None, num_replicas: int = 1,
                  window: int = BUCKET_WINDOW) -> list[list[int]]:
    """The global batches of one epoch over ``range(n)``: lists of ``batch_size * num_replicas`` indices
    (the last may be shorter), in an order that depends only on the arguments.

    Under several replicas the epoch is padded to a multiple of ``num_replicas`` by repeating its first
    clips (``DistributedSampler``'s rule), so every rank gets a share of every batch. ``lengths`` (one per
    clip) turns on length buckets; without shuffling the order is ``range(n)``, sorted within windows.

    >>> epoch_batches(5, 2, shuffle=False)
    [[0, 1], [2, 3], [4]]
    >>> epoch_batches(6, 2, shuffle=False, lengths=[5, 1, 4, 2, 6, 3], window=3)
    [[1, 3], [5, 2], [0, 4]]
    """
    if lengths is not None and len(lengths) != n:
        raise ValueError(f"{len(lengths)} lengths for {n} clips")
    if shuffle:
        g = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(n, generator=g).tolist()
    else:
        g, order = None, list(range(n))
    if num_replicas > 1 and order:
        pad = -len(order) % num_replicas
        order += (order * math.ceil(pad / len(order)))[:pad]
    size = batch_size * num_replicas
    if lengths is None:
        return [order[i:i + size] for i in range(0, len(order), size)]
    batches = []
    span = size * window  # a multiple of size: only the epoch's last batch can be short
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: lengths[i])  # stable: ties keep the drawn order
        batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
    if g is not None:  # else the longest batch of each window would always come last
        batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
    return batches


class EpochSampler(Sampler[int]):
    """``range(n)`` and the current epoch: Lightning calls ``set_epoch`` on the batch sampler's sampler."""

    def __init__(self, n: int):
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


class ResumableBatchSampler(BatchSampler):
    """This rank's batches of :func:`epoch_batches`; the next pass can start after ``skip`` batches.

    ``sampler`` holds the clip count and the epoch (Lightning sets it there each epoch): an
    :class:`EpochSampler`, or under DDP the ``DistributedSampler`` Lightning injects, which also says
    which rank this is of how many (its own order is not used). ``epoch``/``skip`` give the position to
    start from (a resume); ``skip`` resets to 0 after one pass.
    """

    def __init__(self, sampler, batch_size: int, drop_last: bool = False, *, seed: int = 0, shuffle: bool = True,
                 lengths: Sequence[int] | None = None, epoch: int = 0, skip: int = 0):
        # Same leading signature as BatchSampler: Lightning rebuilds it with its sampler under DDP, keeping
        # the other arguments, so a resume position given here survives that.
        super().__init__(sampler, batch_size, drop_last)
        if drop_last:
            raise ValueError("drop_last is not supported: the train loader keeps every clip")
        if isinstance(sampler, DistributedSampler):
            self.n, self.rank, self.num_replicas = len(sampler.dataset), sampler.rank, sampler.num_replicas
        else:
            self.n, self.rank, self.num_replicas = len(sampler), 0, 1
        self.seed, self.shuffle = seed, shuffle
        self.lengths = list(lengths) if lengths is not None else None
        self.skip = skip
        self.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def batches(self) -> list[list[int]]:
        """This rank's batches of the current epoch (all of them, ``skip`` aside)."""
        return [b[self.rank::self.num_replicas]
                for b in epoch_batches(self.n, self.batch_size, seed=self.seed, epoch=self.epoch, shuffle=self.shuffle,
                                       lengths=self.lengths, num_replicas=self.num_replicas)]

    def __iter__(self) -> Iterator[list[int]]:
        # A generator: the epoch and the skip are read at the first batch drawn, not here, because a
        # multi-worker DataLoader calls iter() twice and draws from the second iterator only.
        skip, self.skip = self.skip, 0
        yield from itertools.islice(self.batches(), skip, None)

    def __len__(self) -> int:
        per_rank = math.ceil(self.n / self.num_replicas)
        return math.ceil(per_rank / self.batch_size)


# (epoch, batches the training loop finished in it, batches it runs per epoch), or None outside a fit.
# The last is the trainer's count, which limit_train_batches may make shorter than the loader.
Progress = Callable[[], "tuple[int, int, int] | None"]


def train_position(progress: Progress | None) -> dict:
    """The checkpointed position of a fit (``{}`` outside one): what ``load_state_dict`` takes back."""
    now = progress() if progress is not None else None
    if now is None:
        return {}
    epoch, done, per_epoch = now
    return {"epoch": int(epoch), "batches_done": int(done), "batches_per_epoch": int(per_epoch)}


def resume_point(state: dict, batches_per_epoch: int) -> tuple[int, int]:
    """(epoch, batches to skip) to resume from a :func:`train_position`; an ended epoch moves to the next."""
    epoch, done = state["epoch"], state["batches_done"]
    per_epoch = min(state.get("batches_per_epoch", batches_per_epoch), batches_per_epoch)
    if done >= per_epoch:  # saved at the end of an epoch: the next one starts from its beginning
        return epoch + 1, 0
    return epoch, done


class ResumableDataLoader(DataLoader):
    """A DataLoader over a :class:`ResumableBatchSampler` with Lightning's loader-state hooks."""

    def __init__(self, *args, progress: Progress | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.progress = progress

    def state_dict(self) -> dict:
        return train_position(self.progress)

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        epoch, skip = resume_point(state, len(self.batch_sampler))
        # Lightning draws the resumed epoch's first batch before it calls set_epoch: set it here.
        self.batch_sampler.set_epoch(epoch)
        self.batch_sampler.skip = skip


def one_thread_worker(worker_id: int) -> None:
    """worker_init_fn: one torch thread per loader worker (N workers x all cores would oversubscribe)."""
    torch.set_num_threads(1)


def resumable_loader(dataset, *, batch_size: int, shuffle: bool, seed: int, progress: Progress | None = None,
                     lengths: Sequence[int] | None = None, resume: dict | None = None, num_workers: int = 0,
                     **kwargs) -> ResumableDataLoader:
    """A loader with seeded per-epoch order, resumable mid-epoch (``kwargs`` go to DataLoader).

    ``lengths``: prompt length per clip, for length buckets. ``resume``: a :func:`train_position` to
    start from. Workers (``num_workers``) are persistent and run one torch thread each.
    """
    epoch, skip = resume_point(resume, math.ceil(len(dataset) / batch_size)) if resume else (0, 0)
    batches = ResumableBatchSampler(EpochSampler(len(dataset)), batch_size, seed=seed, shuffle=shuffle, lengths=lengths,
                                    epoch=epoch, skip=skip)
    # Its own generator: creating an iterator would otherwise draw a worker seed from the global RNG,
    # and the draw would fall at a different point of a resumed run than of the uninterrupted one.
    kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
    if num_workers > 0:
        kwargs.setdefault("worker_init_fn", one_thread_worker)
        kwargs.setdefault("persistent_workers", True)
    return ResumableDataLoader(dataset, batch_sampler=batches, progress=progress, num_workers=num_workers, **kwargs)
