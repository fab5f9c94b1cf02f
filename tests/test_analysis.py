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


def test_hint_ablation_script_compares_own_rewards_over_seeds(tmp_path, capsys):
    """Two seeds per setting; 5 steps, so each fifth is one step. Numbers by hand:
    hint=true own rewards [1,2,3,4,5] and [1,1,1,1,3] -> first 1, last (5+3)/2 = 4;
    hint=false [2,2,2,2,2] and [0,0,0,0,0] -> first 1, last 1."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "hint_plot", Path(__file__).resolve().parent.parent / "experiments" / "hint_ablation" / "plot.py")
    plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot)

    own = {"hint=true,seed=0": [1, 2, 3, 4, 5], "hint=true,seed=1": [1, 1, 1, 1, 3],
           "hint=false,seed=0": [2] * 5, "hint=false,seed=1": [0] * 5}
    for i, (name, rewards) in enumerate(own.items()):
        job = tmp_path / f"{i}_grpo"
        (job / ".hydra").mkdir(parents=True)
        (job / "grpo").mkdir()
        (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in ["stage=grpo", *name.split(",")]))
        (job / "metrics.json").write_text(json.dumps({"grpo": {"demo": {"acc2": 0.5 + i / 10, "mae": 0.2,
                                                                   "parse_fail_rate": 0.1}}}))
        pd.DataFrame({"step": range(5), "reward": rewards, "hint/reward_before": rewards,
                      "hard/frac": [0.5] * 5}).to_csv(job / "grpo" / "train_history.csv", index=False)
    plot.main(str(tmp_path))
    out = capsys.readouterr().out
    means = out.split("mean over seeds:")[1]
    rows = {line.split()[0]: line.split()[1:] for line in means.strip().splitlines()[1:] if line.startswith("hint=")}
    assert [float(x) for x in rows["hint=true"][:2]] == [1.0, 4.0]
    assert [float(x) for x in rows["hint=false"][:2]] == [1.0, 1.0]
    assert (tmp_path / "reward_curves.png").exists()
