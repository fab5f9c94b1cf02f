"""Reward curves and test metrics of a hint=true / hint=false GRPO sweep.

    python train.py -m stage=grpo init_from=<sft run>/checkpoints/best hint=true,false \
        hydra.sweep.dir=outputs/hint_ablation
    python experiments/hint_ablation/plot.py outputs/hint_ablation

Writes ``reward_curves.png`` into the sweep directory and prints reward first/last fifth and the test
metrics of each job.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from msa.analysis import load_metrics, plot_reward_curves


def main(sweep: str) -> None:
    runs = {}
    for job in sorted(p for p in Path(sweep).iterdir() if (p / "metrics.json").exists()):
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml") if (job / ".hydra").exists() else []
        name = ",".join(o for o in overrides if o.startswith(("hint=", "hard="))) or job.name
        runs[name] = job
    if not runs:
        sys.exit(f"{sweep}: no finished jobs (metrics.json) found")
    png = plot_reward_curves(runs, Path(sweep) / "reward_curves.png")
    for name, job in runs.items():
        m = load_metrics(job)
        t = m.get("grpo_train", {})
        print(f"{name}: reward first fifth {t.get('reward_first_fifth'):.3f} -> last fifth "
              f"{t.get('reward_last_fifth'):.3f}, hint rate {t.get('hint_rate'):.2f}, hard frac {t.get('hard_frac'):.2f}")
        for ds, met in m.get("grpo", {}).items():
            print(f"   test {ds}: " + ", ".join(f"{k}={v:.3f}" for k, v in met.items() if isinstance(v, float)))
    print(f"curves: {png}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "outputs/hint_ablation")
