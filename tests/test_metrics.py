"""MMSA-exact metrics: every quirk pinned with numbers worked out by hand."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch

from msa.metrics import SentimentMetric, format_table, metric_keys, sentiment_metrics

# ---------------------------------------------------------------- ten-sample examples, by hand

MOSI_P = [2.5, 1.5, -2.5, 0.5, 0.0, 0.0, -0.4, -1.2, 3.6, -0.6]
MOSI_T = [2.0, 2.0, -3.0, 1.0, 0.0, 0.6, 0.0, -1.6, 2.6, 0.4]

SIMS_P = [0.1, -0.1, 0.7, -0.7, 0.0, 1.4, -0.3, 0.5, -1.0, 0.2]
SIMS_T = [0.0, -0.2, 0.8, -0.6, 0.2, 1.0, 0.4, 0.6, -1.0, -0.4]


def test_mosi_ten_by_hand():
    m = sentiment_metrics(MOSI_P, MOSI_T, "mosi")
    # acc7 (clip +-3, round half-to-even), pred class vs label class:
    #  2.5->2 v 2 ok | 1.5->2 v 2 ok | -2.5->-2 v -3 X | 0.5->0 v 1 X | 0 v 0 ok | 0 v 0.6->1 X
    #  -0.4->0 v 0 ok | -1.2->-1 v -1.6->-2 X | 3.6->3 v 2.6->3 ok | -0.6->-1 v 0.4->0 X   => 5/10
    assert m["acc7"] == 0.5
    # acc5 (clip +-2): as acc7 but -2.5->-2 v -3->-2 now ok                               => 6/10
    assert m["acc5"] == 0.6
    # acc3 (clip +-1): 1 v 1, 1 v 1, -1 v -1 ok; 0.5->0 v 1 X; 0 v 0 ok; 0 v 1 X; 0 v 0 ok;
    #  -1 v -1 ok; 1 v 1 ok; -0.6->-1 v 0.4->0 X                                          => 7/10
    assert m["acc3"] == 0.7
    # Has0 (x >= 0): preds T T F T T T F F T F, labels T T F T T T T F T T; misses at #7, #10 => 8/10
    assert m["acc2_has0"] == 0.8
    # weighted F1, weights = true support (T: 8, F: 2):
    #  T: tp 6, fp 0, fn 2 -> 12/14 = 6/7;  F: tp 2, fp 2, fn 0 -> 4/6 = 2/3
    #  (8 * 6/7 + 2 * 2/3) / 10 = 172/210
    assert m["f1_weighted_has0"] == pytest.approx(172 / 210, abs=1e-12)
    # macro F1: the plain mean of the two per-class F1s, (6/7 + 2/3) / 2 = 16/21
    assert m["f1_macro_has0"] == pytest.approx(16 / 21, abs=1e-12)
    # Non0 drops #5 and #7 (label exactly 0); x > 0: preds T T F T F F T F, labels T T F T T F T T;
    #  misses at #6 (pred 0 is negative here) and #10                                    => 6/8
    assert m["acc2_non0"] == 0.75
    #  T (support 6): tp 4, fp 0, fn 2 -> 8/10;  F (support 2): tp 2, fp 2, fn 0 -> 2/3
    #  (6 * 0.8 + 2 * 2/3) / 8 = 23/30
    assert m["f1_weighted_non0"] == pytest.approx(23 / 30, abs=1e-12)
    #  macro: (0.8 + 2/3) / 2 = 11/15
    assert m["f1_macro_non0"] == pytest.approx(11 / 15, abs=1e-12)
    # |p - t|: .5 .5 .5 .5 0 .6 .4 .4 1 1 -> 5.4 / 10 (unclipped: 3.6 vs 2.6 counts 1.0)
    assert m["mae"] == pytest.approx(0.54, abs=1e-12)
    # mean p = 3.4/10, mean t = 4/10; sum p^2 = 29.92, sum t^2 = 27.84, sum pt = 27.04
    # Sxy = 27.04 - 10*.34*.4 = 25.68; Sxx = 29.92 - 1.156 = 28.764; Syy = 27.84 - 1.6 = 26.24
    assert m["corr"] == pytest.approx(25.68 / math.sqrt(28.764 * 26.24), abs=1e-12)  # 0.93473...
    assert list(m) == metric_keys("mosi")


def test_sims_ten_by_hand():
    m = sentiment_metrics(SIMS_P, SIMS_T, "sims")
    # 5-class (edges -0.7, -0.1, 0.1, 0.7; right-closed), pred v label:
    #  0.1->2 v 0->2 ok | -0.1->1 v -0.2->1 ok | 0.7->3 v 0.8->4 X | -0.7->0 v -0.6->1 X | 0->2 v 0.2->3 X
    #  1.4 (clipped 1)->4 v 4 ok | -0.3->1 v 0.4->3 X | 0.5->3 v 0.6->3 ok | -1 v -1 ok | 0.2->3 v -0.4->1 X
    assert m["acc5"] == 0.5
    # 3-class: 1v1 0v0 2v2 0v0 | 1v2 X | 2v2 | 0v2 X | 2v2 0v0 | 2v0 X                     => 7/10
    assert m["acc3"] == 0.7
    # 2-class (0 is negative): preds 1 0 1 0 0 1 0 1 0 1, labels 0 0 1 0 1 1 1 1 0 0; misses #1 #5 #7 #10
    assert m["acc2"] == 0.6
    # class 1 (support 5): tp 3, fp 2, fn 2 -> 0.6; class 0 (support 5): tp 3, fp 2, fn 2 -> 0.6
    assert m["f1_weighted"] == pytest.approx(0.6, abs=1e-12)
    assert m["f1_macro"] == pytest.approx(0.6, abs=1e-12)  # equal supports: macro == weighted
    # weak subset, -0.4 <= t <= 0.4 (both ends included): #1 X, #2 ok, #5 X, #7 X, #10 X => 1/5
    assert m["acc2_weak"] == pytest.approx(0.2, abs=1e-12)
    # MAE on clipped values: .1 .1 .1 .1 .2 0 .7 .1 0 .6 -> 2.0 / 10 (unclipped it would be 0.24)
    assert m["mae"] == pytest.approx(0.2, abs=1e-12)
    # clipped p: mean 0.04, sum p^2 3.38; t: mean 0.08, sum t^2 3.76; sum pt 3.10
    # Sxy = 3.10 - 0.032 = 3.068; Sxx = 3.38 - 0.016 = 3.364; Syy = 3.76 - 0.064 = 3.696
    assert m["corr"] == pytest.approx(3.068 / math.sqrt(3.364 * 3.696), abs=1e-12)
    # R2 = 1 - SSres/SStot: SSres = 4*.01 + .04 + 0 + .49 + .01 + 0 + .36 = 0.94; SStot = Syy
    assert m["r2"] == pytest.approx(1 - 0.94 / 3.696, abs=1e-12)
    assert list(m) == metric_keys("sims")


@pytest.mark.parametrize("name, family_keys", [("mosi", "acc7"), ("mosei", "acc7"), ("demo_mosi", "acc7"),
                                               ("sims", "acc2_weak"), ("simsv2", "acc2_weak"), ("demo", "acc2_weak")])
def test_metric_keys_follow_family(name, family_keys):
    assert family_keys in metric_keys(name)


# ---------------------------------------------------------------- rounding ties (MOSI family)

@pytest.mark.parametrize("pred, label, acc7, acc5", [
    (2.5, 2.0, 1.0, 1.0),    # 2.5 -> 2 (half-to-even); half-up would give 3
    (2.5, 3.0, 0.0, 1.0),    # acc7: 2 v 3; acc5 clips both to 2
    (1.5, 2.0, 1.0, 1.0),    # 1.5 -> 2
    (1.5, 1.0, 0.0, 0.0),    # 2 v 1
    (0.5, 0.0, 1.0, 1.0),    # 0.5 -> 0
    (0.5, 1.0, 0.0, 0.0),
    (-0.5, 0.0, 1.0, 1.0),   # -0.5 -> -0 == 0
    (-1.5, -2.0, 1.0, 1.0),  # -1.5 -> -2
    (-2.5, -2.0, 1.0, 1.0),  # -2.5 -> -2
    (-2.5, -3.0, 0.0, 1.0),  # acc7: -2 v -3; acc5: -2 v -2
])
def test_mosi_round_half_to_even(pred, label, acc7, acc5):
    m = sentiment_metrics([pred], [label], "mosi")
    assert (m["acc7"], m["acc5"]) == (acc7, acc5)


def test_mosi_acc3_neutral_band_is_closed():
    # clip +-1 then round: -0.5 and 0.5 are neutral (0), 0.6 -> 1, -0.6 -> -1
    m = sentiment_metrics([-0.5, 0.5, 0.6, -0.6], [0.0, 0.0, 0.0, 0.0], "mosi")
    assert m["acc3"] == 0.5


# ---------------------------------------------------------------- SIMS bin edges and precision

# pred on an edge, and a label that sits in the class MMSA gives that edge (right-closed bins).
# A left-closed binning would fail every row.
SIMS_EDGE_P = [-0.7, -0.1, 0.1, 0.7]
SIMS_EDGE_T = [-0.8, -0.2, 0.0, 0.6]  # strong neg, weak neg, neutral, weak pos


def test_sims_edges_python_floats():
    m = sentiment_metrics(SIMS_EDGE_P, SIMS_EDGE_T, "sims")
    assert m["acc5"] == 1.0
    # 3-class: -0.7, -0.1 -> negative; 0.1 -> neutral; 0.7 -> positive; labels the same
    assert m["acc3"] == 1.0


def test_sims_edges_float32_compare_in_float32():
    # MMSA compares float32 arrays with float edges in float32, so float32(0.1) is still neutral.
    p32 = np.array(SIMS_EDGE_P, dtype=np.float32)
    assert sentiment_metrics(p32, SIMS_EDGE_T, "sims")["acc5"] == 1.0
    assert sentiment_metrics(torch.tensor(SIMS_EDGE_P, dtype=torch.float32), SIMS_EDGE_T, "sims")["acc5"] == 1.0
    # The same float32 values up-cast to float64 are taken as given: -0.69999999 -> weak neg (X),
    # -0.10000000149 -> weak neg (ok), 0.10000000149 -> weak pos (X), 0.69999999 -> weak pos (ok)
    m = sentiment_metrics(p32.astype(np.float64), SIMS_EDGE_T, "sims")
    assert m["acc5"] == 0.5
    assert m["acc3"] == 0.75  # only 0.10000000149 changes 3-class (positive v neutral)


def test_sims_weak_subset_edges_in_label_precision():
    p = [0.5, -0.5, 0.9]
    # float64 labels 0.4 / -0.4 are inside [-0.4, 0.4]; 0.8 is not -> 2/2 correct
    assert sentiment_metrics(p, [0.4, -0.4, 0.8], "sims")["acc2_weak"] == 1.0
    t32 = np.array([0.4, -0.4, 0.8], dtype=np.float32)
    assert sentiment_metrics(p, t32, "sims")["acc2_weak"] == 1.0  # float32 compare, as MMSA
    # up-cast float32(0.4) = 0.40000000596 > 0.4: the subset is empty -> NaN, not a crash
    assert math.isnan(sentiment_metrics(p, t32.astype(np.float64), "sims")["acc2_weak"])


def test_sims_clips_both_sides():
    # clipped: pred 1 v label 1, pred -1 v label -1 -> MAE 0, all classes right
    m = sentiment_metrics([3.0, -2.0, 0.5], [1.5, -1.0, 0.4], "sims")
    assert m["acc5"] == 1.0 and m["mae"] == pytest.approx(0.1 / 3, abs=1e-12)


# ---------------------------------------------------------------- a prediction of exactly 0

def test_zero_prediction_is_positive_in_has0_negative_in_non0():
    m = sentiment_metrics([0.0, 0.0], [1.0, 2.0], "mosi")
    assert m["acc2_has0"] == 1.0  # 0 >= 0: positive
    assert m["acc2_non0"] == 0.0  # 0 > 0 is false: negative
    m = sentiment_metrics([0.0, 0.0], [-1.0, -2.0], "mosi")
    assert (m["acc2_has0"], m["acc2_non0"]) == (0.0, 1.0)


def test_zero_prediction_is_negative_in_sims_two_class():
    assert sentiment_metrics([0.0, 0.0], [-0.2, -0.4], "sims")["acc2"] == 1.0
    assert sentiment_metrics([0.0, 0.0], [0.2, 0.4], "sims")["acc2"] == 0.0


def test_non0_subset_empty_gives_nan():
    m = sentiment_metrics([0.3, -0.2], [0.0, 0.0], "mosi")
    assert math.isnan(m["acc2_non0"]) and math.isnan(m["f1_weighted_non0"]) and math.isnan(m["f1_macro_non0"])
    assert m["acc2_has0"] == 0.5  # 0.3 -> pos v pos ok; -0.2 -> neg v pos X


# ---------------------------------------------------------------- cross-dataset rescale

def _grid(dataset):
    """Every value a score of ``dataset`` can be written as (its DC precision) plus its bin edges, as
    the floats parsing the decimal text gives."""
    from msa.data.specs import get_spec

    spec = get_spec(dataset)
    step = Fraction(1, 10 ** spec.precision)
    lo, hi = Fraction(repr(spec.score_min)), Fraction(repr(spec.score_max))
    values = [lo + k * step for k in range(int((hi - lo) / step) + 1)]
    values += [Fraction(e) for e in ("-0.7", "-0.1", "0.1", "0.7", "-2.5", "-1.5", "-0.5", "0.5", "1.5", "2.5")
               if lo <= Fraction(e) <= hi]
    return sorted({float(v) for v in values})


def _exact_classes(x: Fraction, family: str) -> tuple:
    """The classes MMSA gives the exact value ``x``, computed in rational arithmetic."""
    if family == "sims":
        x = min(max(x, Fraction(-1)), Fraction(1))
        return tuple(sum(x > Fraction(e) for e in edges) for edges in
                     (("0",), ("-0.1", "0.1"), ("-0.7", "-0.1", "0.1", "0.7")))
    clip = lambda b: min(max(x, Fraction(-b)), Fraction(b))  # noqa: E731
    return (round(clip(3)), round(clip(2)), round(clip(1)), x >= 0, x > 0)  # round(): half-to-even


def _float_classes(y: float, family: str) -> tuple:
    from msa.metrics import _SIMS_EDGES

    a = np.array([y])
    if family == "sims":
        a = np.clip(a, -1.0, 1.0)
        return tuple(int(np.sum([a > e for e in _SIMS_EDGES[k]])) for k in (2, 3, 5))
    return tuple(int(np.round(np.clip(a, -b, b))[0]) for b in (3.0, 2.0, 1.0)) + (bool(y >= 0), bool(y > 0))


def test_rescale_issue_example_lands_in_weak_negative():
    from msa.data.specs import rescale

    y = rescale(-0.3, "mosi", "sims")
    assert y == -0.1  # was -0.09999999999999998: neutral in MMSA's bins
    m = sentiment_metrics([y], [-0.2], "sims")  # -0.2 is weak negative: (-0.7, -0.1]
    assert (m["acc5"], m["acc3"], m["acc2"]) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("source, target", [(a, b) for a in ("sims", "simsv2", "mosi", "mosei", "demo", "demo_mosi")
                                            for b in ("sims", "mosi")])
def test_rescale_is_exact_on_every_grid_value(source, target):
    from msa.data.specs import get_spec, rescale

    s, t = get_spec(source), get_spec(target)
    for x in _grid(source):
        exact = Fraction(repr(t.score_min)) + (Fraction(repr(x)) - Fraction(repr(s.score_min))) * \
            (Fraction(repr(t.score_max)) - Fraction(repr(t.score_min))) / \
            (Fraction(repr(s.score_max)) - Fraction(repr(s.score_min)))
        y = rescale(x, source, target)
        assert y == float(exact), (x, y)  # the nearest float to the exact image
        # the bins and roundings of the target see the value the decimal text meant
        assert _float_classes(y, t.family) == _exact_classes(exact, t.family), (x, y)
        if exact.denominator in (1, 2, 4, 5, 10, 20, 25, 50, 100):  # on a decimal grid: the literal's float
            assert y == float(f"{float(exact):.2f}"), (x, y)
            assert rescale(y, target, source) == x, (x, y)  # and back

def test_weighted_f1_uses_true_support():
    # F1 per class is symmetric in (y_true, y_pred); the weights are not. preds + + - - -, labels + + + + -:
    #  pos: tp 2, fp 0, fn 2 -> 4/6 = 2/3;  neg: tp 1, fp 2, fn 0 -> 2/4 = 1/2
    p = [1.0, 1.0, -1.0, -1.0, -1.0]
    t = [1.0, 1.0, 1.0, 1.0, -1.0]
    m = sentiment_metrics(p, t, "mosi")
    # (y_true, y_pred): (4 * 2/3 + 1 * 1/2) / 5 = 19/30; swapped would be (2 * 2/3 + 3 * 1/2) / 5 = 17/30
    assert m["f1_weighted_has0"] == pytest.approx(19 / 30, abs=1e-12)
    assert m["f1_weighted_non0"] == pytest.approx(19 / 30, abs=1e-12)
    m = sentiment_metrics([0.5, 0.5, -0.5, -0.5, -0.5], [0.6, 0.6, 0.6, 0.6, -0.6], "sims")
    assert m["f1_weighted"] == pytest.approx(19 / 30, abs=1e-12)


def test_sims_macro_and_weighted_f1_ten_by_hand():
    # 2-class (x > 0): labels 7 positive, 3 not (0 is negative); preds 1 1 1 1 1 0 0 0 1 0
    p = [0.2, 0.4, 0.6, 0.8, 1.0, -0.2, 0.0, -0.4, 0.2, 0.0]
    t = [0.2, 0.4, 0.6, 0.8, 1.0, 0.6, 0.4, -0.2, -0.6, 0.0]
    m = sentiment_metrics(p, t, "sims")
    assert m["acc2"] == pytest.approx(0.7, abs=1e-12)  # misses #6, #7 (pred <= 0) and #9
    # positive: tp 5, fp 1 (#9), fn 2 (#6, #7) -> 10/13;  negative: tp 2, fp 2, fn 1 -> 4/7
    # weighted by the true support (7, 3): (7 * 10/13 + 3 * 4/7) / 10 = 323/455 (0.7099)
    assert m["f1_weighted"] == pytest.approx(323 / 455, abs=1e-12)
    # macro: (10/13 + 4/7) / 2 = 61/91 (0.6703)
    assert m["f1_macro"] == pytest.approx(61 / 91, abs=1e-12)


def test_legacy_f1_names_are_upgraded_for_readers(tmp_path):
    import json

    from msa.analysis import load_metrics
    from msa.metrics import upgrade_keys

    old = {"eval": {"mosi": {"acc2_has0": 0.8, "f1_has0": 0.81, "f1_non0": 0.82, "mae": 0.7},
                    "sims": {"f1": 0.79, "mae": 0.3}},
           "sft_train": {"best_val": {"f1": 0.5, "mae": 0.4}}, "wall_time_s": {"eval": 1.0}}
    (tmp_path / "metrics.json").write_text(json.dumps(old))
    new = load_metrics(tmp_path)
    assert new["eval"]["mosi"] == {"acc2_has0": 0.8, "f1_weighted_has0": 0.81, "f1_weighted_non0": 0.82,
                                   "mae": 0.7}
    assert new["eval"]["sims"] == {"f1_weighted": 0.79, "mae": 0.3}
    assert new["sft_train"]["best_val"] == {"f1_weighted": 0.5, "mae": 0.4}
    assert new["wall_time_s"] == {"eval": 1.0}
    assert upgrade_keys(new) == new  # today's names pass through


# ---------------------------------------------------------------- degenerate inputs

def test_constant_predictions_corr_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = sentiment_metrics([0.1] * 4, [0.2, -0.4, 0.6, 0.0], "sims")
        # np.corrcoef would give rounding noise for a constant 0.1; we say NaN
        assert math.isnan(m["corr"])
        # R2 = 1 - SSres/SStot: mean t = 0.1 -> SSres = SStot -> 0
        assert m["r2"] == pytest.approx(0.0, abs=1e-12)
        m = sentiment_metrics([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], "mosi")  # constant labels
        assert math.isnan(m["corr"])
        m = sentiment_metrics([1.0], [2.0], "mosi")  # N = 1
        assert math.isnan(m["corr"]) and m["mae"] == 1.0
        assert math.isnan(sentiment_metrics([1.0], [2.0], "sims")["r2"])


def test_errors():
    with pytest.raises(ValueError, match="empty"):
        sentiment_metrics([], [], "mosi")
    with pytest.raises(ValueError, match="preds has 2 values but labels has 3"):
        sentiment_metrics([0.0, 1.0], [0.0, 1.0, 2.0], "sims")
    with pytest.raises(ValueError, match="preds has a non-finite value nan at index 1"):
        sentiment_metrics([0.0, float("nan")], [0.0, 1.0], "mosi")
    with pytest.raises(ValueError, match="labels has a non-finite"):
        sentiment_metrics([0.0, 1.0], [0.0, float("inf")], "mosi")
    with pytest.raises(ValueError, match="unknown dataset"):
        sentiment_metrics([0.0], [0.0], "nope")
    with pytest.raises(ValueError, match="preds must be numbers"):
        sentiment_metrics(["a"], [0.0], "mosi")


def test_inputs_lists_arrays_tensors_agree():
    ref = sentiment_metrics(MOSI_P, MOSI_T, "mosi")
    assert sentiment_metrics(np.array(MOSI_P), np.array(MOSI_T), "mosi") == ref
    assert sentiment_metrics(torch.tensor(MOSI_P, dtype=torch.float64).view(5, 2),
                             torch.tensor(MOSI_T, dtype=torch.float64), "mosi") == ref


# ---------------------------------------------------------------- table

def test_format_table():
    table = format_table({"mosi": {"acc7": 0.5, "corr": 0.93473, "n": 686},
                          "sims": {"acc5": 0.5, "r2": float("nan"), "clamp_rate": 0.02}})
    assert table.splitlines() == [
        "dataset   acc7   corr    n   acc5   r2  clamp_rate",
        "mosi     50.00  0.935  686      -    -           -",
        "sims         -      -    -  50.00  nan        2.00",
    ]


# ---------------------------------------------------------------- torchmetrics Metric

@pytest.mark.parametrize("dataset, p, t", [("mosi", MOSI_P, MOSI_T), ("sims", SIMS_P, SIMS_T)])
def test_metric_three_batches_equals_one_shot(dataset, p, t):
    metric = SentimentMetric(dataset)
    for lo, hi in ((0, 3), (3, 7), (7, 10)):
        metric.update(torch.tensor(p[lo:hi], dtype=torch.float64), t[lo:hi])
    assert metric.compute() == sentiment_metrics(p, t, dataset)
    metric.reset()
    metric.update(p[:2], t[:2])
    assert metric.compute() == sentiment_metrics(p[:2], t[:2], dataset)


def test_metric_float32_batches_bin_like_one_shot():
    p32 = torch.tensor(SIMS_EDGE_P, dtype=torch.float32)
    metric = SentimentMetric("sims")
    metric.update(p32[:2], SIMS_EDGE_T[:2])
    metric.update(p32[2:], SIMS_EDGE_T[2:])
    assert metric.preds[0].dtype == torch.float64
    assert metric.compute()["acc5"] == 1.0  # as sentiment_metrics(float32 array) (see above)


def test_metric_states_survive_dtype_casts():
    metric = SentimentMetric("sims")
    metric.update(SIMS_P[:5], SIMS_T[:5])
    metric.set_dtype(torch.float16)
    metric.half()
    metric.to(torch.bfloat16)  # what Lightning's "bf16-true" precision does to the whole module
    metric.update(SIMS_P[5:], SIMS_T[5:])
    assert all(v.dtype == torch.float64 for v in metric.preds + metric.labels)
    assert metric.compute() == sentiment_metrics(SIMS_P, SIMS_T, "sims")


def test_metric_forward_and_errors():
    metric = SentimentMetric("mosi")
    batch = metric([0.0, 2.5], [1.0, 2.0])  # forward: this batch's metrics, and accumulates
    assert batch["acc7"] == 0.5  # 0 v 1 X; 2.5 -> 2 v 2 ok
    metric(MOSI_P, MOSI_T)
    assert metric.compute() == sentiment_metrics([0.0, 2.5, *MOSI_P], [1.0, 2.0, *MOSI_T], "mosi")
    with pytest.raises(ValueError, match="preds has 1 values but labels has 2"):
        metric.update([0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="unknown dataset"):
        SentimentMetric("nope")
    with pytest.raises(ValueError, match="empty"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns that compute() ran before update()
        SentimentMetric("sims").compute()


_DDP_SCRIPT = '''
import json, os, socket, torch, torch.distributed as dist, torch.multiprocessing as mp

P, T = {p!r}, {t!r}

def run(rank, port, q):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from msa.metrics import SentimentMetric
    metric = SentimentMetric("sims")
    part = slice(0, 4) if rank == 0 else slice(4, 10)  # uneven shards
    metric.update(torch.tensor(P[part], dtype=torch.float32), T[part])
    q.put(metric.compute())
    dist.destroy_process_group()

if __name__ == "__main__":
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    ctx = mp.get_context("spawn"); q = ctx.Queue()
    procs = [ctx.Process(target=run, args=(r, port, q)) for r in range(2)]
    [p.start() for p in procs]
    out = [q.get(timeout=120) for _ in procs]
    [p.join() for p in procs]
    print(json.dumps(out))
'''


@pytest.mark.slow
def test_metric_gathers_across_ddp_ranks(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "ddp_metric.py"
    script.write_text(_DDP_SCRIPT.format(p=SIMS_P, t=SIMS_T))
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    per_rank = json.loads(done.stdout.strip().splitlines()[-1])
    # both ranks see all ten samples, binned in float32 like the one-shot call on the float32 array
    ref = sentiment_metrics(np.array(SIMS_P, dtype=np.float32), SIMS_T, "sims")
    assert per_rank == [ref, ref]
