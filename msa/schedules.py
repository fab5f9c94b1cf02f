"""Learning-rate schedules shared by the training stages."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """LR multiplier: linear warmup from 1/warmup to 1, then cosine to 0 at ``total``.

    >>> [round(warmup_cosine(s, 10, 2), 3) for s in (0, 1, 6, 10)]
    [0.5, 1.0, 0.5, 0.0]
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))
