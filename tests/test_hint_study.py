"""The hint study's statistics and summariser (experiments/hint_study): paired differences worked by hand,
one run's row from fake metrics.json / predictions / history, and the table over seeds."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

from msa.report.paired import paired_difference, t95
from msa.report.tables import aggregate

ROOT = Path(__file__).resolve().parents[1]


def load_summarise():
    spec = importlib.util.spec_from_file_location("hint_study_summarise", ROOT / "experiments/hint_study/summarise.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mean_std_and_paired_difference_by_hand():
    # mean of 0.60, 0.70, 0.65 = 0.65; deviations -0.05, 0.05, 0: std = sqrt(0.005 / 2) = 0.05
    c = aggregate([0.60, 0.70, 0.65])
    assert (c.mean, c.n) == (pytest.approx(0.65), 3) and c.std == pytest.approx(0.05)
    # differences to the baseline 0.10, 0.15, 0.05: mean 0.10, std 0.05,
    # half-width t(2) * 0.05 / sqrt(3) = 4.303 * 0.028868 = 0.124217
    p = paired_difference({0: 0.60, 1: 0.70, 2: 0.65}, {0: 0.50, 1: 0.55, 2: 0.60})
    assert (p.mean, p.std, p.n) == (pytest.approx(0.10), pytest.approx(0.05), 3)
    assert (p.low, p.high) == (pytest.approx(0.10 - 0.124217, abs=1e-6), pytest.approx(0.10 + 0.124217, abs=1e-6))
    assert p.text(100, 1) == "+10.0 [-2.4, +22.4]"
    # only the seeds both have are paired; one seed gives no interval
    one = paired_difference({0: 0.6, 5: 0.9}, {0: 0.5, 1: 0.1})
    assert (one.mean, one.n, one.low) == (pytest.approx(0.1), 1, None) and one.text() == "+0.100 (n=1)"
    assert (t95(2), t95(4), t95(40)) == (4.303, 2.776, 2.042)
    with pytest.raises(ValueError, match="no seed in common"):
        paired_difference({0: 1.0}, {1: 1.0})


def fake_predictions() -> pd.DataFrame:
    # ids c1, c2 are text-conflict clips; r1..r4 the rest (SIMS scale: neutral is (-0.1, 0.1])
    rows = [("c1", 0.4, -0.2, "negative"), ("c2", -0.6, 0.6, "positive"),
            ("r1", 0.6, 0.6, "positive"), ("r2", -0.4, -0.2, "negative"), ("r3", 0.0, 0.4, "positive"),
            ("r4", -0.8, -0.4, None)]
    return pd.DataFrame([{"id": i, "dataset": "study", "label": y, "prediction": p, "parse_fail": t is None,
                          "parsed_clamped": False, "parsed_polarity": t} for i, y, p, t in rows])


def test_run_row_reads_the_subset_contract_and_scores_the_rest_by_hand():
    s = load_summarise()
    tc = {"acc2": 0.25, "acc3": 0.5, "mae": 0.7, "corr": 0.1, "n": 2, "polarity_acc": 0.0}
    metrics = {"grpo": {"study": {"acc2": 0.5, "subsets": {"text_conflict": tc}}},
               "grpo_train": {"own_reward_first_fifth": 1.5, "own_reward_last_fifth": 1.8}}
    history = pd.DataFrame({"step": [0, 1], "hard/frac": [0.5, 0.25], "hard_ids": ["c1 r2", "c1"]})
    row = s.run_row(metrics, "grpo", "study", fake_predictions(), {"c1", "c2"}, history)
    assert (row["tc_acc2"], row["tc_acc3"], row["tc_mae"], row["tc_polarity_acc"], row["tc_n"]) == (0.25, 0.5, 0.7, 0.0, 2)
    # the rest, r1..r4: predictions 0.6, -0.2, 0.4, -0.4 for labels 0.6, -0.4, 0.0, -0.8
    # MAE (0 + 0.2 + 0.4 + 0.4) / 4 = 0.25; acc3 (SIMS bins): r1 pos=pos, r2 neg=neg, r3 pos!=neu, r4 neg=neg -> 3/4
    # tag: r1 right, r2 right, r3 positive for a neutral label wrong, r4 no tag wrong -> 2/4
    assert row["rest_n"] == 4 and row["rest_mae"] == pytest.approx(0.25)
    assert row["rest_acc3"] == pytest.approx(0.75) and row["rest_polarity_acc"] == 0.5
    # hard prompts: mean hard/frac 0.375; 3 hard prompt-steps (c1, r2, c1), 2 of them text-conflict clips
    assert (row["hard_frac"], row["hard_prompts"]) == (0.375, 3) and row["hard_tc_share"] == pytest.approx(2 / 3)
    assert (row["own_first"], row["own_last"]) == (1.5, 1.8)
    # an SFT run: no history, no GRPO training numbers
    sft = s.run_row({"sft": metrics["grpo"]}, "sft", "study", fake_predictions(), {"c1", "c2"})
    assert sft["hard_prompts"] == 0 and math.isnan(sft["hard_frac"]) and math.isnan(sft["own_last"])


def test_run_row_names_a_missing_subset():
    s = load_summarise()
    with pytest.raises(s.ReportError, match=r"outputs/x: metrics.json has no grpo.study.subsets.text_conflict"):
        s.run_row({"grpo": {"study": {"acc2": 0.5}}}, "grpo", "study", fake_predictions(), set(), where="outputs/x")


def test_table_over_seeds_and_paired_to_hint_false():
    s = load_summarise()

    def row(acc2):
        return {**{k: 0.0 for k in s.COLUMNS}, "tc_acc2": acc2}

    rows = {"grpo_no_hint": {0: row(0.50), 1: row(0.55), 2: row(0.60)},
            "grpo": {0: row(0.60), 1: row(0.70), 2: row(0.65)},
            "sft_dc": {0: row(0.40), 1: row(0.40), 2: row(0.40)}}
    lines = s.tables(rows).splitlines()
    assert lines[2].startswith("| SFT (text-led CoT) | 3 | 0.400 ± 0.000 |")
    assert lines[3].startswith("| hint=true | 3 | 0.650 ± 0.050 |") and lines[4].startswith("| hint=false | 3 | 0.550 ± 0.050 |")
    # hint=true - hint=false per seed: 0.10, 0.15, 0.05 (the worked example above)
    assert lines[-1].startswith("| hint=true | 3 | +0.100 [-0.024, +0.224] |")


def test_a_run_still_going_is_left_out_and_named(tmp_path, monkeypatch):
    """A GRPO run whose metrics.json has no ``grpo`` entry yet (still training, or died) is neither read
    (its predictions do not exist) nor averaged in: collect names it."""
    import json
    from types import SimpleNamespace

    s = load_summarise()
    done, going = tmp_path / "nohint_s0", tmp_path / "nohint_s1"
    for path, metrics in ((done, {"grpo": {"study": {}}}), (going, {"wall_time_s": {}})):
        path.mkdir()
        (path / "metrics.json").write_text(json.dumps(metrics))
    runs = [SimpleNamespace(path=done, seed=0, settings={"grpo_no_hint": "grpo"}),
            SimpleNamespace(path=going, seed=1, settings={"grpo_no_hint": "grpo"})]
    monkeypatch.setattr(s, "find_runs", lambda paths: runs)
    monkeypatch.setattr(s, "by_setting", lambda found: {"grpo_no_hint": found})
    monkeypatch.setattr(s, "_read_run", lambda run, stage, conflict: {"read": run.seed})
    rows, dirs, unfinished = s.collect([tmp_path])
    assert rows == {"grpo_no_hint": {0: {"read": 0}}} and dirs == {"grpo_no_hint": [done]}
    assert unfinished == [going]
