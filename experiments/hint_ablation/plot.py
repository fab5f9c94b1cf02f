"""Reward curves and test metrics of a hint=true / hint=false GRPO sweep (any number of seeds).

    python train.py -m stage=grpo init_from=<sft run>/checkpoints/best hint=true,false seed=0,1 \
        hydra.sweep.dir=outputs/hint_ablation
    python experiments/hint_ablation/plot.py outputs/hint_ablation

The curve is the reward of the policy's own samples, *before* hard groups are replaced by hinted ones
(``own_reward``): after replacement a hint=true step scores the hinted answers, whose polarity
is given, so its raw ``reward`` is not comparable with hint=false's. Writes ``reward_curves.png`` into
the sweep directory and prints, per job and then averaged over seeds, the first/last fifth of that
curve, the hard-prompt rate and the test metrics.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from msa.analysis import load_metrics, plot_reward_curves, reward_curve
from msa.stages.grpo import fifths

FLAGS = ("hint=", "hard=", "seed=")


def job_name(job: Path) -> str:
    overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml") if (job / ".hydra").exists() else []
    # Hydra writes swept bools as True/False; the command line says true/false
    return ",".join(o.lower() for o in overrides if o.startswith(FLAGS)) or job.name


def summary(job: Path) -> dict:
    h = reward_curve(job)
    first, last = fifths(h["own_reward"].tolist())
    row = {"own reward first fifth": first, "own reward last fifth": last, "hard frac": h["hard/frac"].mean()}
    m = load_metrics(job).get("grpo", {})
    for ds, met in m.items():
        row[f"{ds} format-valid"] = 1 - met["parse_fail_rate"]
        for k in ("acc2", "acc2_non0", "acc3", "mae"):
            if isinstance(met.get(k), float):
                row[f"{ds} {k}"] = met[k]
    return row


def main(sweep: str) -> None:
    jobs = {job_name(j): j for j in sorted(Path(sweep).iterdir()) if (j / "metrics.json").exists()}
    if not jobs:
        sys.exit(f"{sweep}: no finished jobs (metrics.json) found")
    png = plot_reward_curves(jobs, Path(sweep) / "reward_curves.png", column="own_reward")
    table = pd.DataFrame({name: summary(j) for name, j in jobs.items()}).T
    pd.set_option("display.width", 200)
    print(table.round(3).to_string())
    setting = table.index.map(lambda n: ",".join(p for p in n.split(",") if not p.startswith("seed=")))
    print("\nmean over seeds:")
    print(table.groupby(setting).mean().round(3).to_string())
    print(f"curves: {png}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "outputs/hint_ablation")
