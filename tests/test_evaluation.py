"""msa.evaluation: prediction records carry the unimodal labels; polarity_acc and the subset metrics
(text/audio/visual_conflict, conflict) on ten SIMS answers worked out by hand."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from msa.evaluation import SUBSETS, in_subset, prediction_records, summarize

NAN = math.nan


def dc(polarity: str, score: float) -> str:
    return f"<polarity>{polarity}</polarity><think>cues</think><score>{score}</score>"


# label, label_T, label_A, label_V, conflict, answer
ROWS = [
    (0.6, -0.4, 0.6, 0.8, 1.0, dc("positive", 0.6)),
    (0.8, -0.2, 0.4, NAN, 1.0, dc("positive", -0.2)),  # the tag is right, the score is not
    (-0.6, 0.4, -0.6, -0.8, 1.0, dc("negative", -0.6)),
    (-0.4, 0.2, 0.2, -0.4, 0.0, dc("positive", 0.4)),
    (0.2, 0.2, 0.0, 0.2, 0.0, dc("positive", 0.2)),
    (0.0, -0.6, 0.2, 0.0, 0.0, dc("neutral", 0.0)),  # label 0: in no unimodal subset
    (-0.8, -0.8, -0.8, 0.6, 0.0, dc("negative", -0.8)),
    (0.4, 0.4, -0.2, 0.4, 0.0, "positive 0.4"),  # not DC: parse failure, predicts 0
    (-0.2, -0.2, 0.2, NAN, NAN, dc("negative", -0.2)),
    (1.0, 0.8, 0.8, 0.8, 0.0, dc("positive", 1.0)),
]


def batch_of(rows, with_conflict=True):
    cols = ["label", "label_T", "label_A", "label_V", "conflict"][:5 if with_conflict else 4]
    batch = {"ids": [f"c{i}" for i in range(len(rows))]}
    for j, k in enumerate(cols):
        batch[k] = torch.tensor([r[j] for r in rows], dtype=torch.float64)
    return batch, [r[5] for r in rows]


@pytest.fixture
def records():
    batch, texts = batch_of(ROWS)
    return prediction_records(texts, batch, dataset="sims", range_dataset="sims")


def test_records_carry_the_unimodal_labels_as_json(records):
    r1, r8 = records[1], records[8]
    assert (r1["label_T"], r1["label_A"], r1["label_V"], r1["conflict"]) == (-0.2, 0.4, None, 1.0)
    assert r8["conflict"] is None and records[7]["parse_fail"] and records[7]["prediction"] == 0.0
    json.loads(json.dumps(records, allow_nan=False))  # NaN became null: predictions.jsonl stays JSON


def test_membership_worked_by_hand(records):
    members = {s: [i for i, r in enumerate(records) if in_subset(s, r)] for s in SUBSETS}
    # text: label_T * label < 0 in rows 0-3 (row 5 has label 0); audio: rows 3, 7, 8 (row 4's label_A is 0);
    # visual: row 6 (rows 1 and 8 unknown); conflict: the rows whose column says 1
    assert members == {"text_conflict": [0, 1, 2, 3], "audio_conflict": [3, 7, 8], "visual_conflict": [6],
                       "conflict": [0, 1, 2]}


def test_whole_split_and_subset_metrics_worked_by_hand(records):
    m = summarize(records, "sims", subsets=True)
    # whole split: preds 0.6 -0.2 -0.6 0.4 0.2 0 -0.8 0 -0.2 1 vs labels: the 2-class (x > 0) is wrong in rows
    # 1, 3, 7 -> acc2 0.7; |errors| 1.0 + 0.8 + 0.4 = 2.2 -> MAE 0.22; tags wrong in row 3 and row 7 (a
    # parse failure counts as wrong) -> polarity_acc 0.8 (row 5: 0.0 is neutral on SIMS, tag neutral)
    assert (m["acc2"], m["polarity_acc"], m["n"]) == (0.7, 0.8, 10)
    assert m["mae"] == pytest.approx(0.22)
    assert set(m["subsets"]) == set(SUBSETS)
    text = m["subsets"]["text_conflict"]
    # rows 0-3: preds 0.6 -0.2 -0.6 0.4, labels 0.6 0.8 -0.6 -0.4: rows 0 and 2 right -> acc2 = acc3 = 0.5;
    # MAE (0 + 1.0 + 0 + 0.8) / 4 = 0.45; tags right in rows 0, 1, 2 -> 0.75
    assert (text["n"], text["acc2"], text["acc3"], text["polarity_acc"]) == (4, 0.5, 0.5, 0.75)
    assert text["mae"] == pytest.approx(0.45)
    assert set(text) == set(m) - {"subsets"}  # the same metric names as the whole split
    audio = m["subsets"]["audio_conflict"]
    # rows 3, 7, 8: preds 0.4 0 -0.2 vs -0.4 0.4 -0.2: only row 8 right (0 is negative in the 2-class);
    # MAE (0.8 + 0.4 + 0) / 3; row 8's tag right; row 7 a parse failure
    assert (audio["n"], audio["acc2"], audio["polarity_acc"], audio["parse_fail_rate"]) == (3, 1 / 3, 1 / 3, 1 / 3)
    assert audio["mae"] == pytest.approx(0.4)
    visual = m["subsets"]["visual_conflict"]
    assert (visual["n"], visual["acc2"], visual["mae"]) == (1, 1.0, 0.0) and math.isnan(visual["corr"])
    conflict = m["subsets"]["conflict"]
    assert (conflict["n"], conflict["acc2"], conflict["polarity_acc"]) == (3, 2 / 3, 1.0)
    assert conflict["mae"] == pytest.approx(1.0 / 3)


def test_subsets_only_where_labels_exist_and_empty_ones_are_n0():
    # no conflict column, no unimodal labels (MOSI): no subsets at all
    batch, texts = batch_of([(1.2, NAN, NAN, NAN, NAN, dc("positive", 1.2)),
                             (-2.0, NAN, NAN, NAN, NAN, dc("negative", -1.0))], with_conflict=False)
    recs = prediction_records(texts, batch, dataset="mosi", range_dataset="mosi")
    assert "label_T" in recs[0] and "conflict" not in recs[0]
    m = summarize(recs, "mosi", subsets=True)
    assert m["subsets"] == {} and m["polarity_acc"] == 1.0
    # labels that exist but never oppose: the subset is there, with n 0 and no metrics
    batch, texts = batch_of([(0.6, 0.4, 0.2, 0.2, 0.0, dc("positive", 0.6)),
                             (-0.6, -0.4, -0.2, -0.2, 0.0, dc("negative", -0.6))])
    m = summarize(prediction_records(texts, batch, dataset="sims", range_dataset="sims"), "sims", subsets=True)
    assert m["subsets"] == {s: {"n": 0} for s in SUBSETS}
    # off by default: SFT validation logs every value as a scalar
    assert "subsets" not in summarize(prediction_records(texts, batch, dataset="sims", range_dataset="sims"), "sims")


def test_subset_metrics_nest_through_summary_and_wandb(records, monkeypatch):
    import sys
    import types

    from msa.runtime import format_summary, summarize_to_wandb

    m = summarize(records, "sims", subsets=True)
    lines = format_summary({"grpo": {"sims": m}}).splitlines()
    head = lines[0].split()
    row = next(ln for ln in lines if ln.startswith("grpo/sims text_conflict")).split()[2:]
    assert row[head.index("acc2") - 1] == "50.00" and row[head.index("n") - 1] == "4"
    summary = {}
    fake = types.SimpleNamespace(run=types.SimpleNamespace(summary=summary))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    summarize_to_wandb("grpo", {"sims": m})
    assert summary["grpo/sims/subsets/text_conflict/acc2"] == 0.5
    assert summary["grpo/sims/subsets/visual_conflict/n"] == 1 and summary["grpo/sims/polarity_acc"] == 0.8


def test_predictions_with_labels_read_back_exactly(records, tmp_path):
    from msa.analysis import load_predictions

    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    df = load_predictions(tmp_path)
    assert isinstance(df, pd.DataFrame) and df.loc[1, "label_T"] == -0.2 and pd.isna(df.loc[1, "label_V"])
