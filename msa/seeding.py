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


def seed_rank(seed: int, stage: str, rank: int | str) -> int:
    """The seed of DDP rank ``rank`` in ``stage``: rank 0 keeps ``stable_seed(seed, stage)`` (a one-process
    run draws what it always drew), every other rank a stream of its own, so that the ranks' rollouts and
    dropout masks are not copies of each other's (TRL seeds each device apart the same way).

    >>> seed_rank(0, "grpo", 0) == stable_seed(0, "grpo") != seed_rank(0, "grpo", 1)
    True
    """
    return stable_seed(seed, stage) if rank in (0, "0") else stable_seed(seed, stage, "rank", rank)


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
