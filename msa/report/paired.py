"""Paired differences over seeds: a setting against a baseline trained from the same seed (same SFT
start, same batches), mean and sample std of the per-seed differences and a 95 % t-interval (df = n - 1).

Mean +- std of one setting over seeds is :func:`msa.report.tables.aggregate`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

# Two-sided 95 % critical values of Student's t (the 0.975 quantile) by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
       20: 2.086, 25: 2.060, 30: 2.042}


def t95(df: int) -> float:
    """The 95 % two-sided t critical value for ``df`` degrees of freedom (the next smaller df listed in
    :data:`T95` above 20, which errs wide).

    >>> t95(2), t95(4), t95(27)
    (4.303, 2.776, 2.06)
    """
    if df < 1:
        raise ValueError(f"t95: need at least 1 degree of freedom (2 seeds), got {df}")
    return T95[max(k for k in T95 if k <= df)]


@dataclass(frozen=True)
class Paired:
    """The per-seed differences ``setting - baseline``: mean, sample std, count, 95 % interval
    (``low``/``high`` None with one seed)."""

    mean: float
    std: float | None
    n: int
    low: float | None
    high: float | None

    def text(self, scale: float = 1.0, digits: int = 3) -> str:
        if self.low is None:
            return f"{scale * self.mean:+.{digits}f} (n=1)"
        return f"{scale * self.mean:+.{digits}f} [{scale * self.low:+.{digits}f}, {scale * self.high:+.{digits}f}]"


def paired_difference(values: Mapping[int, float], baseline: Mapping[int, float]) -> Paired:
    """``values[seed] - baseline[seed]`` over the seeds both have: mean, sample std (ddof 1) and the
    95 % t-interval mean +- t95(n - 1) * std / sqrt(n).

    >>> p = paired_difference({0: 0.60, 1: 0.70, 2: 0.65}, {0: 0.50, 1: 0.55, 2: 0.60})
    >>> round(p.mean, 4), round(p.std, 4), round(p.low, 4), round(p.high, 4)
    (0.1, 0.05, -0.0242, 0.2242)
    """
    seeds = sorted(set(values) & set(baseline))
    if not seeds:
        raise ValueError(f"paired_difference: no seed in common (setting has {sorted(values)}, "
                         f"baseline has {sorted(baseline)})")
    d = [float(values[s]) - float(baseline[s]) for s in seeds]
    mean = statistics.fmean(d)
    if len(d) == 1:
        return Paired(mean, None, 1, None, None)
    std = statistics.stdev(d)
    half = t95(len(d) - 1) * std / math.sqrt(len(d))
    return Paired(mean, std, len(d), mean - half, mean + half)
