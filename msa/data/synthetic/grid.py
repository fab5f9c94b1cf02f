"""What both synthetic families share: the label grid, the label.csv columns, ids and the split plan."""

from __future__ import annotations

import math
from typing import Sequence

STEP = 0.2  # SIMS label grid: five annotators' -1/0/1 votes averaged
COLUMNS = ("video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode")
MODES = ("train", "valid", "test")
CLIPS_PER_VIDEO = 10


def snap(x: float, step: float = STEP) -> float:
    """``x`` rounded to the nearest multiple of ``step``; ties go away from zero.

    The division is rounded to 9 decimals first so that float noise (0.1/0.2 = 0.5000000000000001)
    cannot decide a tie.

    >>> snap(0.29), snap(0.3), snap(-0.3), snap(0.05), snap(1.7, 0.6)
    (0.2, 0.4, -0.4, 0.0, 1.8)
    """
    if not step > 0:
        raise ValueError(f"snap: step must be > 0, got {step}")
    if not math.isfinite(x):
        raise ValueError(f"snap: x must be finite, got {x}")
    q = round(x / step, 9)
    n = math.floor(abs(q) + 0.5) * (1 if q >= 0 else -1)
    return round(n * step, 10) + 0.0  # + 0.0 turns -0.0 into 0.0


def check_label(label: float, what: str) -> float:
    """A SIMS-scale label in [-1, 1]; anything else names the cue that got it."""
    x = float(label)
    if not (math.isfinite(x) and -1.0 <= x <= 1.0):
        raise ValueError(f"{what}: label must be in [-1, 1] (SIMS scale), got {label!r}")
    return x


def clip_ids(index: int) -> tuple[str, str]:
    """SIMS-style ids of the ``index``-th clip: ``video_0001``/``0001``, :data:`CLIPS_PER_VIDEO` per video."""
    return f"video_{index // CLIPS_PER_VIDEO + 1:04d}", f"{index % CLIPS_PER_VIDEO + 1:04d}"


def split_counts(n: int, splits: Sequence[float]) -> list[int]:
    """Clips per split by largest remainder, so they sum to ``n`` (ties: earlier split first).

    >>> split_counts(12, (0.7, 0.15, 0.15))
    [8, 2, 2]
    """
    raw = [f * n for f in splits]
    counts = [math.floor(r + 1e-9) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda s: (-(raw[s] - counts[s]), s))
    for s in by_remainder[: n - sum(counts)]:
        counts[s] += 1
    return counts


def interleave(counts: Sequence[int]) -> list[int]:
    """Split indices with the given counts, spread evenly (each prefix is close to the proportions).

    Greedy on the largest integer deficit ``count*(j+1) - assigned*n``; a split is only picked while
    it is below its quota, so the final counts are exact.
    """
    n = sum(counts)
    assigned = [0] * len(counts)
    out = []
    for j in range(n):
        s = max(range(len(counts)), key=lambda s: (counts[s] * (j + 1) - assigned[s] * n, -s))
        assigned[s] += 1
        out.append(s)
    return out


def check_splits(splits: Sequence[float]) -> list[float]:
    splits = [float(f) for f in splits]
    if len(splits) != 3 or min(splits) < 0 or abs(sum(splits) - 1) > 1e-6:
        raise ValueError(f"splits must be three fractions >= 0 for train/valid/test summing to 1, got {splits}")
    return splits
