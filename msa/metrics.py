"""MMSA-exact sentiment metrics (``thuiar/MMSA`` ``utils/metricsTop.py``, plus the two CH-SIMS v2
extras ``Mult_acc_2_weak`` and ``R_squre``), as plain functions and as a torchmetrics ``Metric``.

Values are fractions (not x100) and unrounded; MMSA rounds to 4 places, papers multiply by 100.

* family ``mosi``: Acc7/Acc5/Acc3 = ``np.round`` (half-to-even) of the values clipped to +-3/+-2/+-1;
  Has0 = (x >= 0) over all samples (a 0 prediction is *positive*); Non0 = (x > 0) over the samples
  whose label is exactly != 0 (a 0 prediction is *negative*); MAE and Corr on the unclipped values.
* family ``sims``: both sides clipped to [-1, 1] first; right-closed bins (e[i] < x <= e[i+1]) with
  inner edges 0 / +-0.1 / +-0.1, +-0.7 (a 0 prediction is *negative* in the 2-class); ``acc2_weak``
  only over -0.4 <= label <= 0.4; MAE, Corr and R2 (``r2_score(labels, preds)``) on clipped values.
* F1 comes in two flavours, named by their averaging in every key. ``f1_weighted*`` is MMSA's (and the
  default every table reports): sklearn's ``f1_score(y_true, y_pred, average="weighted")``, the
  per-class F1 weighted by the *true* support. ``f1_macro*`` is the unweighted mean of the per-class
  F1 (what the paper's text calls "macro-averaged"); both average over the classes present in labels
  or predictions, as sklearn does. Files written before the split said ``f1``, ``f1_has0`` and
  ``f1_non0`` for the weighted values: :func:`upgrade_keys` renames them.

Precision rule. Bin edges are compared *in the input's own precision*, like MMSA's NumPy code does
(a float32 array against a Python float compares in float32). Our pipeline parses LLM text straight
to Python floats and keeps labels float64, so it compares in float64; a caller that passes float32
arrays gets what MMSA gives on those float32 arrays (float32(0.1) is neutral there, but weak
positive once up-cast). Lists are float64; float16/32/64 arrays and tensors keep their dtype for
the comparisons (bf16 tensors become the exact float32). MAE, Corr and R2 are computed in float64
from the same values, so they match MMSA's float32 arithmetic to ~1e-7. Where MMSA would crash or
return garbage we return NaN: an empty Non0 or weak subset, and Corr when a side is constant (MMSA's
``np.corrcoef`` can give +-1 from rounding noise on a constant like 0.1).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.metrics import f1_score, r2_score
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from msa.data.specs import get_spec

MOSI_KEYS = ("acc7", "acc5", "acc3", "acc2_has0", "f1_weighted_has0", "f1_macro_has0", "acc2_non0",
             "f1_weighted_non0", "f1_macro_non0", "mae", "corr")
SIMS_KEYS = ("acc5", "acc3", "acc2", "f1_weighted", "f1_macro", "acc2_weak", "r2", "mae", "corr")
# Metric names before the weighted/macro split (all three were weighted F1, MMSA's F1_score).
LEGACY_KEYS = {"f1": "f1_weighted", "f1_has0": "f1_weighted_has0", "f1_non0": "f1_weighted_non0"}
# Inner edges of MMSA's SIMS bins (the outer +-1.01 never bind once values are clipped to [-1, 1]).
_SIMS_EDGES = {2: (0.0,), 3: (-0.1, 0.1), 5: (-0.7, -0.1, 0.1, 0.7)}
_KEEP_DTYPES = (np.float16, np.float32, np.float64)
_THREE_DECIMALS = {"mae", "corr", "r2"}
_RAW = {"clips_per_s"}  # throughput, not a fraction: printed as is


def metric_keys(dataset: str) -> list[str]:
    """The keys :func:`sentiment_metrics` returns for ``dataset``.

    >>> metric_keys("sims")
    ['acc5', 'acc3', 'acc2', 'f1_weighted', 'f1_macro', 'acc2_weak', 'r2', 'mae', 'corr']
    """
    return list(MOSI_KEYS if get_spec(dataset).family == "mosi" else SIMS_KEYS)


def upgrade_keys(results: Any) -> Any:
    """``results`` (a metrics dict, or any nesting of them, e.g. a whole metrics.json) with the
    pre-split F1 names renamed to today's (:data:`LEGACY_KEYS`); other values are returned as they are.

    >>> upgrade_keys({"eval": {"sims": {"f1": 0.79, "mae": 0.3}}})
    {'eval': {'sims': {'f1_weighted': 0.79, 'mae': 0.3}}}
    """
    if not isinstance(results, dict):
        return results
    is_metrics = "mae" in results  # every metrics dict has it; stage/dataset levels do not
    return {(LEGACY_KEYS.get(k, k) if is_metrics else k): upgrade_keys(v) for k, v in results.items()}


def _as_array(x: Any, name: str) -> np.ndarray:
    """1-D NumPy view of ``x`` in the precision its bins are compared in (see the module docstring)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.float() if x.dtype == torch.bfloat16 else x).numpy()  # NumPy has no bf16; float32 is exact
    if isinstance(x, np.ndarray) and x.dtype.type in _KEEP_DTYPES:
        return x.reshape(-1)  # MMSA flattens with .view(-1)
    try:
        return np.asarray(x, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers (list, array or tensor), got {type(x).__name__}: {err}") from None


def _check(p: np.ndarray, t: np.ndarray) -> None:
    if p.size != t.size:
        raise ValueError(f"preds has {p.size} values but labels has {t.size}; they must be the same length")
    if p.size == 0:
        raise ValueError("no samples: preds and labels are empty")
    for name, arr in (("preds", p), ("labels", t)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"{name} has a non-finite value {arr[bad[0]]} at index {bad[0]} ({bad.size} in all); "
                             "map unparseable outputs to 0 before scoring")


def _acc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b)) if a.size else math.nan


def _f1(y_true: np.ndarray, y_pred: np.ndarray, average: str) -> float:
    """sklearn's F1 in MMSA's argument order (true, pred); ``average`` is "weighted" or "macro"."""
    if y_true.size == 0:
        return math.nan
    with warnings.catch_warnings():  # sklearn warns about classes never predicted; the value (0) is MMSA's
        warnings.simplefilter("ignore")
        return float(f1_score(y_true, y_pred, average=average))


def _pearson(p: np.ndarray, t: np.ndarray) -> float:
    """``np.corrcoef(p, t)[0, 1]``, but NaN (silently) when either side is constant."""
    if p.size < 2 or np.all(p == p[0]) or np.all(t == t[0]):
        return math.nan
    with np.errstate(all="ignore"):
        return float(np.corrcoef(p, t)[0, 1])


def _sims_classes(x: np.ndarray, k: int) -> np.ndarray:
    # class = number of inner edges strictly below x, i.e. e[i] < x <= e[i+1]. ``x > e`` with a Python
    # float e compares in x's dtype (NEP 50), exactly as MMSA's float32 arrays do.
    return np.sum([x > e for e in _SIMS_EDGES[k]], axis=0)


def _mosi_metrics(p: np.ndarray, t: np.ndarray) -> dict[str, float]:
    out = {}
    for key, bound in (("acc7", 3.0), ("acc5", 2.0), ("acc3", 1.0)):
        # np.round is half-to-even: 2.5 -> 2, -0.5 -> -0 (== 0), 1.5 -> 2
        out[key] = _acc(np.round(np.clip(p, -bound, bound)), np.round(np.clip(t, -bound, bound)))
    out["acc2_has0"] = _acc(p >= 0, t >= 0)
    out["f1_weighted_has0"] = _f1(t >= 0, p >= 0, "weighted")
    out["f1_macro_has0"] = _f1(t >= 0, p >= 0, "macro")
    non0 = t != 0
    out["acc2_non0"] = _acc(p[non0] > 0, t[non0] > 0)
    out["f1_weighted_non0"] = _f1(t[non0] > 0, p[non0] > 0, "weighted")
    out["f1_macro_non0"] = _f1(t[non0] > 0, p[non0] > 0, "macro")
    p64, t64 = p.astype(np.float64), t.astype(np.float64)
    out["mae"] = float(np.mean(np.abs(p64 - t64)))
    out["corr"] = _pearson(p64, t64)
    return out


def _sims_metrics(p: np.ndarray, t: np.ndarray) -> dict[str, float]:
    p, t = np.clip(p, -1.0, 1.0), np.clip(t, -1.0, 1.0)  # stays in the input's dtype
    cp = {k: _sims_classes(p, k) for k in _SIMS_EDGES}
    ct = {k: _sims_classes(t, k) for k in _SIMS_EDGES}
    weak = (t >= -0.4) & (t <= 0.4)  # the v2 code's comment says +-0.6; its code uses +-0.4
    p64, t64 = p.astype(np.float64), t.astype(np.float64)
    if p.size < 2:
        r2 = math.nan  # sklearn warns and returns NaN
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r2 = float(r2_score(t64, p64))
    return {
        "acc5": _acc(cp[5], ct[5]),
        "acc3": _acc(cp[3], ct[3]),
        "acc2": _acc(cp[2], ct[2]),
        "f1_weighted": _f1(ct[2], cp[2], "weighted"),
        "f1_macro": _f1(ct[2], cp[2], "macro"),
        "acc2_weak": _acc(cp[2][weak], ct[2][weak]),
        "r2": r2,
        "mae": float(np.mean(np.abs(p64 - t64))),
        "corr": _pearson(p64, t64),
    }


def sentiment_metrics(preds: Any, labels: Any, dataset: str) -> dict[str, float]:
    """MMSA's regression metrics for ``dataset``'s family, as unrounded fractions.

    ``preds`` and ``labels`` are lists, arrays or tensors of equal length N >= 1 without NaN (map
    unparseable outputs to 0 first). Keys: :func:`metric_keys`.

    >>> m = sentiment_metrics([0.0, 2.5, -1.0], [1.0, 2.0, -1.4], "mosi")
    >>> m["acc7"], m["acc2_has0"], m["acc2_non0"]  # 0 -> 0 vs 1; 2.5 -> 2 (half-to-even); -1 vs -1
    (0.6666666666666666, 1.0, 0.6666666666666666)
    """
    family = get_spec(dataset).family
    p, t = _as_array(preds, "preds"), _as_array(labels, "labels")
    _check(p, t)
    return _mosi_metrics(p, t) if family == "mosi" else _sims_metrics(p, t)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "n" or (isinstance(value, (int, np.integer)) and not isinstance(value, bool)):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "nan"
    if key in _RAW:
        return f"{value:.1f}"
    return f"{value:.3f}" if key in _THREE_DECIMALS else f"{100 * value:.2f}"


def format_table(results: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one row per dataset, one column per key (first-seen order).

    Rates and accuracies are shown x100 with 2 decimals, mae/corr/r2 with 3 decimals, counts as ints.

    >>> print(format_table({"mosi": {"acc2_has0": 0.8344, "mae": 0.708, "n": 686},
    ...                     "sims": {"acc2": 0.8, "mae": 0.29, "parse_fail_rate": 0.0125}}))
    dataset  acc2_has0    mae    n   acc2  parse_fail_rate
    mosi         83.44  0.708  686      -                -
    sims             -  0.290    -  80.00             1.25
    """
    keys = list(dict.fromkeys(k for row in results.values() for k in row))
    rows = [["dataset", *keys]] + [[name, *(_cell(k, row.get(k)) for k in keys)] for name, row in results.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        for r in rows)


class SentimentMetric(Metric):
    """Accumulates predictions and labels over batches; ``compute()`` == :func:`sentiment_metrics`.

    States are float64 ``cat`` lists, so DDP ranks gather every sample before the metrics are
    computed. Two extra ``max`` states remember the widest input precision (bytes per value), so
    float32 inputs are binned in float32 exactly as the one-shot function would (the float64 store
    is lossless for them). Dtype casts never touch the states: torchmetrics already ignores
    ``.half()``/``.float()``, and ``_apply`` below also shields them from ``set_dtype`` and
    ``.to(dtype)`` (Lightning's "16-true"/"bf16-true" precision), which would otherwise round the
    stored scores and move values across the SIMS bin edges.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False
    _STATES = ("preds", "labels", "preds_bytes", "labels_bytes")

    def __init__(self, dataset: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        get_spec(dataset)  # fail early on an unknown name
        self.dataset = dataset
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("preds_bytes", default=torch.tensor(0), dist_reduce_fx="max")
        self.add_state("labels_bytes", default=torch.tensor(0), dist_reduce_fx="max")

    def update(self, preds: Any, labels: Any) -> None:
        p, t = _as_array(preds, "preds"), _as_array(labels, "labels")
        if p.size != t.size:
            raise ValueError(f"preds has {p.size} values but labels has {t.size} in this batch")
        self.preds.append(torch.from_numpy(p.astype(np.float64)).to(self.device))  # [B]
        self.labels.append(torch.from_numpy(t.astype(np.float64)).to(self.device))  # [B]
        self.preds_bytes = torch.clamp(self.preds_bytes, min=p.dtype.itemsize)
        self.labels_bytes = torch.clamp(self.labels_bytes, min=t.dtype.itemsize)

    @staticmethod
    def _restore(values: Any, nbytes: torch.Tensor) -> np.ndarray:
        if isinstance(values, list) and not values:
            return np.zeros(0)
        arr = dim_zero_cat(values).detach().cpu().numpy()  # [N] float64
        dtype = {2: np.float16, 4: np.float32}.get(int(nbytes), np.float64)
        return arr.astype(dtype)  # exact: the float64 values came from this dtype

    def compute(self) -> dict[str, float]:
        p = self._restore(self.preds, self.preds_bytes)
        t = self._restore(self.labels, self.labels_bytes)
        return sentiment_metrics(p, t, self.dataset)

    def _apply(self, fn: Any, exclude_state: Sequence[str] = ()) -> Metric:
        # Let the base class update the device, then move (never cast) our states to it.
        this = super()._apply(fn, exclude_state=(*exclude_state, *self._STATES))
        for key in self._STATES:
            value = getattr(this, key)
            moved = [v.to(this.device) for v in value] if isinstance(value, list) else value.to(this.device)
            setattr(this, key, moved)
        return this
