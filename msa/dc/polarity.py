"""The 3-way polarity of a sentiment score, from the dataset's neutral band.

The band lives in :mod:`msa.data.specs` (one place for the facts), and this module only applies it:

* ``"right"`` closed, ``(low, high]``: MMSA's CH-SIMS 3-class bins, so on SIMS ``-0.1`` is negative
  and ``0.1`` is neutral;
* ``"both"`` closed, ``[low, high]``: MMSA's MOSI/MOSEI acc3, so ``-0.5`` and ``0.5`` are neutral.

Comparisons are made on Python floats (float64). A float32 copy of a score sits on the other side of
the SIMS edges (float32(0.1) = 0.10000000149 > 0.1), so float32/bf16 inputs are refused rather than
silently binned wrong; parse generated text straight to ``float``.
"""

from __future__ import annotations

import math

from msa.data.specs import get_spec

POLARITIES: tuple[str, str, str] = ("negative", "neutral", "positive")


def _as_float64(score) -> float:
    """``score`` as a Python float; numpy/torch scalars of a narrower float type are an error."""
    if isinstance(score, (bool, str, bytes)):  # float("0.3") would pass a string through unnoticed
        raise TypeError(f"score must be a number, got {score!r}")
    if not isinstance(score, (int, float)):  # np.float64 is a float subclass and passes here
        dtype = str(getattr(score, "dtype", ""))
        if dtype and "float64" not in dtype and "int" not in dtype:
            raise TypeError(f"score has dtype {dtype}; bin it as a float64 (the SIMS edges at +-0.1 and "
                            "+-0.7 flip in float32)")
    try:
        value = float(score)
    except (TypeError, ValueError):
        raise TypeError(f"score must be a number, got {score!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"score must be finite, got {value}")
    return value


def polarity_of(score: float, dataset: str) -> str:
    """The polarity of ``score`` under ``dataset``'s neutral band.

    >>> polarity_of(-0.1, "sims"), polarity_of(0.1, "sims"), polarity_of(0.2, "sims")
    ('negative', 'neutral', 'positive')
    >>> polarity_of(-0.5, "mosi"), polarity_of(0.5, "mosi"), polarity_of(-0.6, "mosi")
    ('neutral', 'neutral', 'negative')
    """
    spec = get_spec(dataset)
    x = _as_float64(score)
    low, high = spec.neutral_low, spec.neutral_high
    if spec.neutral_closed == "right":
        neutral = low < x <= high
    elif spec.neutral_closed == "both":
        neutral = low <= x <= high
    else:
        raise ValueError(f"{dataset}: unknown neutral_closed {spec.neutral_closed!r} (want 'right' or 'both')")
    if neutral:
        return "neutral"
    return "negative" if x <= low else "positive"
