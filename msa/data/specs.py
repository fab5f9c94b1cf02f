"""Facts about each dataset that more than one module needs: score range, metric family,
polarity bins and label precision.

One table, keyed by the same names everywhere (``data=sims`` <-> ``"sims"`` in predictions,
metrics and rewards). The neutral band is part of the spec so that a study can change it with
:func:`configure` without touching the parser, the rewards or the metrics.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

Family = Literal["sims", "mosi"]
Closed = Literal["right", "both"]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    family: Family  # which MMSA metric set applies: SIMS-style bins or MOSI-style rounding
    score_min: float
    score_max: float
    neutral_low: float  # neutral band for the 3-way polarity of a score
    neutral_high: float
    neutral_closed: Closed  # "right": (low, high] (MMSA SIMS bins); "both": [low, high] (MMSA MOSI acc3)
    precision: int  # decimals used when a label is written as a DC score
    language: str  # language of the transcripts ("zh" or "en"); the prompt stays English

    @property
    def span(self) -> float:
        return self.score_max - self.score_min


_SIMS = dict(family="sims", score_min=-1.0, score_max=1.0, neutral_low=-0.1, neutral_high=0.1,
             neutral_closed="right", precision=1)
_MOSI = dict(family="mosi", score_min=-3.0, score_max=3.0, neutral_low=-0.5, neutral_high=0.5,
             neutral_closed="both", precision=2)

DATASETS: dict[str, DatasetSpec] = {
    "sims": DatasetSpec(name="sims", language="zh", **_SIMS),
    "simsv2": DatasetSpec(name="simsv2", language="zh", **_SIMS),
    "mosi": DatasetSpec(name="mosi", language="en", **_MOSI),
    "mosei": DatasetSpec(name="mosei", language="en", **_MOSI),
    # The synthetic sets: a SIMS-like flavour (the demo's default) and a MOSI-like one, so that
    # cross-dataset evaluation has something to run on offline.
    "demo": DatasetSpec(name="demo", language="en", **_SIMS),
    "demo_mosi": DatasetSpec(name="demo_mosi", language="en", **_MOSI),
    # The demo family with a quarter of its clips text-conflict clips (data=study, the hint study).
    "study": DatasetSpec(name="study", language="en", **_SIMS),
    # The hard synthetic family (msa.data.synthetic.hard): no shortcuts, voted labels, conflict clips.
    "hard": DatasetSpec(name="hard", language="en", **_SIMS),
    "hard_mosi": DatasetSpec(name="hard_mosi", language="en", **_MOSI),
}


def get_spec(dataset: str) -> DatasetSpec:
    """The spec of ``dataset``; an unknown name is an error that lists the known ones."""
    try:
        return DATASETS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(DATASETS))}") from None


def configure(dataset: str, **changes) -> DatasetSpec:
    """Replace fields of a dataset's spec (e.g. ``neutral_low=-0.2``) for this process."""
    spec = dataclasses.replace(get_spec(dataset), **changes)
    if not spec.score_min < spec.score_max:
        raise ValueError(f"{dataset}: score_min must be < score_max, got {spec.score_min}, {spec.score_max}")
    if not spec.score_min <= spec.neutral_low <= spec.neutral_high <= spec.score_max:
        raise ValueError(f"{dataset}: neutral band [{spec.neutral_low}, {spec.neutral_high}] outside the range")
    DATASETS[dataset] = spec
    return spec


def _exact(x: float) -> Fraction:
    # The decimal a float prints as (its shortest repr): the value the text it was parsed from meant.
    return Fraction(repr(float(x)))


def rescale(score: float, source: str, target: str) -> float:
    """Map a score from ``source``'s range to ``target``'s linearly (x3 from SIMS to MOSI, /3 back).

    Scores are decimals written by a model or a label file, so the score is read as the decimal it
    prints as and mapped in exact rational arithmetic, rounded once at the end: a value on one range's
    grid lands on the other's exactly, where the bins can see it (float arithmetic gives
    ``-0.09999999999999998`` for -0.3 -> SIMS, which MMSA's bins call neutral, not weak negative).

    >>> rescale(-0.3, "mosi", "sims"), rescale(0.7, "sims", "mosi"), rescale(1.0, "mosi", "sims")
    (-0.1, 2.1, 0.3333333333333333)
    """
    s, t = get_spec(source), get_spec(target)
    if not math.isfinite(score):
        raise ValueError(f"rescale: score must be finite, got {score}")
    s_min, s_max, t_min, t_max = (_exact(v) for v in (s.score_min, s.score_max, t.score_min, t.score_max))
    return float(t_min + (_exact(score) - s_min) * (t_max - t_min) / (s_max - s_min))
