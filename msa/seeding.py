"""Seeds that are the same in every process: :func:`stable_seed`.

Python's ``hash()`` is salted per run, so seeds derived from ids or stage names go through SHA-256
instead (the rule teacher's per-clip draws, the model teachers' per-batch sampling, per-stage seeding).
"""

from __future__ import annotations

import hashlib


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from ``parts`` that is the same in every process (``hash()`` is salted per run).

    >>> stable_seed(0, "video_0001$_$0001") == stable_seed(0, "video_0001$_$0001")
    True
    """
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
