"""Seeds that are the same in every process: :func:`stable_seed`; and each DDP rank's own: :func:`seed_rank`.

Python's ``hash()`` is salted per run, so seeds derived from ids or stage names go through SHA-256
instead (the rule teacher's per-clip draws, the model teachers' per-batch sampling, per-stage seeding).
"""

from __future__ import annotations

import hashlib
import os


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from ``parts`` that is the same in every process (``hash()`` is salted per run).

    >>> stable_seed(0, "video_0001$_$0001") == stable_seed(0, "video_0001$_$0001")
    True
    """
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def seed_rank(shared: int, rank: int | str) -> int:
    """The seed of DDP rank ``rank`` given the seed all ranks share (``PL_GLOBAL_SEED``, a stage's
    ``stable_seed(seed, stage)``): rank 0 keeps it (a one-process run draws what it always drew), every other
    rank gets a stream of its own, so that the ranks' rollouts and dropout masks are not copies of each
    other's (TRL seeds each device apart the same way).

    >>> seed_rank(7, 0), seed_rank(7, 1) == seed_rank(7, 1) != seed_rank(7, 2)
    (7, True)
    """
    return shared if rank in (0, "0") else stable_seed(shared, "rank", rank) % 2**32


def seed_globals(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs (CUDA's too) without touching ``PL_GLOBAL_SEED``."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def launch_rank() -> int | str:
    """Which DDP process this is, from what the launcher set before any process group exists (0 outside DDP).

    ``RANK`` (torchrun); else Lightning's launcher, which sets ``LOCAL_RANK`` (and ``NODE_RANK`` on several
    nodes, where the pair ``"node.local"`` is returned: unique, though not the global rank); else
    ``SLURM_PROCID`` (read last: SLURM sets it in interactive allocations that Lightning launches itself).
    For seeding only: the ranks' collectives use the process group's own numbering.
    """
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if "LOCAL_RANK" in os.environ:
        local, node = int(os.environ["LOCAL_RANK"]), int(os.environ.get("NODE_RANK", 0) or 0)
        return local if node == 0 else f"{node}.{local}"
    return int(os.environ.get("SLURM_PROCID", 0))
