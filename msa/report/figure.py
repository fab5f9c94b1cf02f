"""Fig. 3: the GRPO reward curves of w/ Hint, w/o Hint and w/o Hard."""

from __future__ import annotations

from pathlib import Path

from msa.report.runs import ReportError, Run

FIGURE_RUNS = (("grpo", "w/ Hint"), ("grpo_no_hint", "w/o Hint"), ("grpo_no_hard", "w/o Hard"))  # Fig. 3


def plot_figure(groups: dict[str, list[Run]], out_dir: Path, window: int = 5) -> list[Path]:
    """Fig. 3: the GRPO reward per step of w/ Hint, w/o Hint and w/o Hard (mean over seeds, +-std band);
    a second PNG with the reward of the policy's own samples, before hinted groups replace hard ones."""
    from msa.analysis import plot_reward_curves

    curves = {label: [r.path for r in groups[s]] for s, label in FIGURE_RUNS if s in groups}
    for label, paths in curves.items():
        for p in paths:
            if not (p / "grpo" / "train_history.csv").exists():
                raise ReportError(f"{p}: no grpo/train_history.csv for the {label} reward curve")
    missing = [s for s, _ in FIGURE_RUNS if s not in groups]
    if missing:
        raise ReportError(f"Fig. 3 needs runs of {', '.join(missing)}")
    return [plot_reward_curves(curves, out_dir / "fig3_reward.png", window=window, column="reward",
                               title="Fig. 3: GRPO reward"),
            plot_reward_curves(curves, out_dir / "fig3_own_reward.png", window=window, column="own_reward",
                               title="GRPO reward of the policy's own samples (before hints)")]
