"""Reading runs for notebooks and tables: metrics, predictions, GRPO completions and reward curves.

Notebooks stay thin; the logic lives here, where tests reach it.

    from msa.analysis import load_metrics, load_predictions, load_completions, plot_reward_curves
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def load_metrics(run_dir: str | Path) -> dict:
    """``metrics.json`` of a run: stage -> dataset -> metric -> value (older runs' F1 names upgraded:
    ``f1``/``f1_has0``/``f1_non0`` read as ``f1_weighted``/``f1_weighted_has0``/``f1_weighted_non0``)."""
    from msa.metrics import upgrade_keys

    return upgrade_keys(json.loads((Path(run_dir) / "metrics.json").read_text()))


def metrics_table(runs: dict[str, str | Path], stage: str, dataset: str) -> pd.DataFrame:
    """One row per named run: the test metrics of ``stage`` on ``dataset`` (e.g. hint=true vs false)."""
    rows = {name: load_metrics(d).get(stage, {}).get(dataset, {}) for name, d in runs.items()}
    return pd.DataFrame(rows).T


def load_predictions(run_dir: str | Path, stage: str = "eval") -> pd.DataFrame:
    """The per-clip predictions (``<run>/<stage>/predictions.jsonl``) as a DataFrame."""
    return pd.read_json(Path(run_dir) / stage / "predictions.jsonl", lines=True)


def load_completions(run_dir: str | Path) -> pd.DataFrame:
    """Every GRPO completions table of a run, concatenated (columns: step, prompt_id, completion,
    reward, reward_<fn>, hinted, advantage, label, dataset)."""
    files = sorted((Path(run_dir) / "grpo" / "completions").glob("completions_*.parquet"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no grpo/completions/*.parquet (set grpo.log_completions_every)")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def reward_curve(run_dir: str | Path) -> pd.DataFrame:
    """Per-step GRPO scalars (reward, hint/rate, hard/frac, kl, ...) from ``grpo/train_history.csv``."""
    return pd.read_csv(Path(run_dir) / "grpo" / "train_history.csv")


def smooth(values: pd.Series, window: int = 5) -> pd.Series:
    return values.rolling(window, min_periods=1).mean()


def plot_reward_curves(runs: dict[str, str | Path], out_png: str | Path, window: int = 5,
                       column: str = "reward") -> Path:
    """A per-step GRPO scalar (default the mean reward) for each named run, e.g.
    ``{"hint=true": dir1, "hint=false": dir2}``; ``column="hint/reward_before"`` plots the reward of the
    policy's own samples, before hinted groups replace hard ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, d in runs.items():
        h = reward_curve(d)
        ax.plot(h["step"], smooth(h[column], window), label=name)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel(f"{column} (rolling {window})")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
