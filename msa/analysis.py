"""Reading runs for notebooks and tables: metrics, predictions, GRPO completions and reward curves.

Notebooks stay thin; the logic lives here, where tests reach it.

    from msa.analysis import load_metrics, load_predictions, load_completions, plot_reward_curves
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd


def load_metrics(run_dir: str | Path) -> dict:
    """``metrics.json`` of a run: stage -> dataset -> metric -> value."""
    return json.loads((Path(run_dir) / "metrics.json").read_text())


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


def plot_reward_curves(runs: dict[str, str | Path | Sequence[str | Path]], out_png: str | Path, window: int = 5,
                       column: str = "reward", title: str | None = None) -> Path:
    """A per-step GRPO scalar (default the mean reward) for each named run, e.g.
    ``{"hint=true": dir1, "hint=false": dir2}``; ``column="hint/reward_before"`` plots the reward of the
    policy's own samples, before hinted groups replace hard ones. A name may map to several runs (seeds):
    their mean is drawn, with a +-1 std band over the seeds at each step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, d in runs.items():
        dirs = [d] if isinstance(d, (str, Path)) else list(d)
        curves = pd.concat({i: reward_curve(x).set_index("step")[column] for i, x in enumerate(dirs)}, axis=1)
        mean = smooth(curves.mean(axis=1), window)
        line, = ax.plot(mean.index, mean.values, label=name if len(dirs) == 1 else f"{name} (n={len(dirs)})")
        if len(dirs) > 1:
            std = smooth(curves.std(axis=1), window)
            ax.fill_between(mean.index, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel(f"{column} (rolling {window})")
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
