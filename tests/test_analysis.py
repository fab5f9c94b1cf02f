"""msa.analysis on a hand-made run directory."""

from __future__ import annotations

import json

import pandas as pd

from msa.analysis import load_completions, load_metrics, metrics_table, plot_reward_curves, reward_curve


def make_run(root, rewards):
    (root / "grpo" / "completions").mkdir(parents=True)
    (root / "metrics.json").write_text(json.dumps({"grpo": {"demo": {"acc2": 0.5, "mae": 0.3}}}))
    pd.DataFrame({"step": range(len(rewards)), "reward": rewards}).to_csv(root / "grpo" / "train_history.csv",
                                                                          index=False)
    pd.DataFrame({"step": [0, 0], "prompt_id": ["a", "a"], "completion": ["x", "y"], "hinted": [True, False],
                  "advantage": [0.7, -0.7]}).to_parquet(root / "grpo" / "completions" / "completions_00000.parquet")
    return root


def test_analysis_reads_runs_and_plots(tmp_path):
    a = make_run(tmp_path / "a", [0.0, 1.0, 2.0])
    b = make_run(tmp_path / "b", [0.0, 0.5, 0.5])
    assert load_metrics(a)["grpo"]["demo"]["acc2"] == 0.5
    t = metrics_table({"hint": a, "nohint": b}, "grpo", "demo")
    assert list(t.index) == ["hint", "nohint"] and t.loc["hint", "mae"] == 0.3
    c = load_completions(a)
    assert c.hinted.sum() == 1 and abs(c.advantage.sum()) < 1e-12
    assert reward_curve(b)["reward"].tolist() == [0.0, 0.5, 0.5]
    png = plot_reward_curves({"hint=true": a, "hint=false": b}, tmp_path / "curves.png")
    assert png.exists() and png.stat().st_size > 1000
