"""Reward curves and test metrics of a hint=true / hint=false GRPO sweep (any number of seeds).

    python train.py -m stage=grpo init_from=<sft run>/checkpoints/best hint=true,false seed=0,1 \
        hydra.sweep.dir=outputs/hint_ablation
    python experiments/hint_ablation/plot.py outputs/hint_ablation

The curve is the reward of the policy's own samples, *before* hard groups are replaced by hinted ones
(``own_reward``): after replacement a hint=true step scores the hinted answers, whose polarity
is given, so its raw ``reward`` is not comparable with hint=false's. Writes ``reward_curves.png`` into
the sweep directory and prints, per job and then averaged over seeds (mean and std), the first/last
fifth of that curve, the hard-prompt rate and the test metrics, and two subsets of them:

* ``conflict``: the test clips whose label file says ``conflict=1`` (the hard family: words against
  voice and face), scored with the same MMSA metrics;
* ``hard@start``: the training prompts that were hard for the starting policy, when the job directory
  holds ``probe_hard_start.parquet`` (``probe.py`` of the job's export on those ids): greedy polarity
  accuracy, MAE, and the share still hard (none of G samples right).

A job is named by its overrides (a Hydra multirun), else by its saved config (hint, grpo.hint_mode when
not the paper's, hard, seed). Evaluation-only runs (``stage=eval``) are read too, for Table III.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from msa.analysis import load_metrics, load_predictions, plot_reward_curves, reward_curve, run_config
from msa.stages.grpo import fifths

FLAGS = ("hint=", "grpo.hint_mode=", "hard=", "seed=")
PROBE = "probe_hard_start.parquet"


def job_name(job: Path) -> str:
    overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml") if (job / ".hydra").exists() else []
    # Hydra writes swept bools as True/False; the command line says true/false
    named = ",".join(o.lower() for o in overrides if o.startswith(FLAGS))
    if named or not (job / "resolved_config.yaml").exists():
        return named or job.name
    cfg = run_config(job)
    if list(cfg.stage.run) == ["eval"]:
        return "sft (eval)" if cfg.init_from else "zero-shot (eval)"
    mode = cfg.grpo.get("hint_mode", "replace")
    return ",".join([f"hint={str(cfg.hint).lower()}"] + ([f"grpo.hint_mode={mode}"] if mode != "replace" else [])
                    + [f"hard={str(cfg.hard).lower()}", f"seed={cfg.seed}"])


SUBSET_KEYS = ("acc2", "acc2_has0", "acc2_non0", "acc3", "mae")  # acc2: SIMS family; has0/non0: MOSI family


def subset_metrics(predictions: pd.DataFrame, dataset: str, prefix: str) -> dict:
    """The 2-class accuracies (``acc2``, or MOSI's ``acc2_has0`` and ``acc2_non0``), acc3 and MAE (MMSA's
    definitions for ``dataset``'s family, msa.metrics) of a subset of predictions, and its size."""
    from msa.metrics import sentiment_metrics

    if predictions.empty:
        return {}
    m = sentiment_metrics(predictions["prediction"].tolist(), predictions["label"].tolist(), dataset)
    return {**{f"{prefix} {k}": m[k] for k in SUBSET_KEYS if k in m}, f"{prefix} n": float(len(predictions))}


def tag_accuracy(predictions: pd.DataFrame, dataset: str) -> float:
    """How often the answer's polarity tag (what the hint writes) names the label's polarity; a malformed
    answer counts as wrong. The MMSA metrics score the answer's score instead."""
    from msa.dc import polarity_of

    truth = [polarity_of(y, dataset) for y in predictions["label"]]
    return float(sum(t == p for t, p in zip(truth, predictions["parsed_polarity"])) / max(1, len(truth)))


def test_subsets(job: Path, stage: str, dataset: str) -> dict:
    """The polarity tag's accuracy on ``dataset``'s test predictions, and the MMSA metrics and tag accuracy
    of its conflict clips (label file column ``conflict``), if it has any."""
    from msa.data.labels import read_labels

    if not (job / stage / "predictions.jsonl").exists() or not (job / "resolved_config.yaml").exists():
        return {}
    preds = load_predictions(job, stage)
    preds = preds[preds["dataset"] == dataset]
    out = {f"{dataset} tag acc": tag_accuracy(preds, dataset)}
    cfg = run_config(job)
    if dataset != cfg.data.name:  # cross-dataset targets: their roots are in eval.roots, not read here
        return out
    labels = read_labels(cfg.data.root, dataset)
    if labels["conflict"].isna().all():
        return out
    conflict = preds[preds["id"].isin(set(labels.loc[labels["conflict"] == 1, "id"]))]
    out.update(subset_metrics(conflict, dataset, f"{dataset} conflict"))
    out[f"{dataset} conflict tag acc"] = tag_accuracy(conflict, dataset)
    return out


def hard_start_metrics(job: Path) -> dict:
    """The job's answers on the prompts that were hard at the start (``probe_hard_start.parquet``): training
    prompts of the job's own dataset, so scored with that dataset's metrics, whatever the eval targets."""
    if not (job / PROBE).exists() or not (job / "resolved_config.yaml").exists():
        return {}
    dataset = run_config(job).data.name
    probe = pd.read_parquet(job / PROBE)
    greedy = probe.rename(columns={"greedy_prediction": "prediction"})
    out = subset_metrics(greedy, dataset, "hard@start")
    out["hard@start polarity right"] = float(probe["greedy_polarity_right"].mean())
    if probe["n_right"].notna().all():
        out["hard@start still hard"] = float((probe["n_right"] == 0).mean())
    return out


def summary(job: Path) -> dict:
    metrics = load_metrics(job)
    stage = "grpo" if "grpo" in metrics else "eval"
    row = {}
    if (job / "grpo" / "train_history.csv").exists():
        h = reward_curve(job)
        first, last = fifths(h["own_reward"].tolist())
        row = {"own reward first fifth": first, "own reward last fifth": last, "hard frac": h["hard/frac"].mean()}
    for ds, met in metrics.get(stage, {}).items():
        row[f"{ds} format-valid"] = 1 - met["parse_fail_rate"]
        for k in ("acc2", "acc2_non0", "acc3", "mae"):
            if isinstance(met.get(k), float):
                row[f"{ds} {k}"] = met[k]
        row.update(test_subsets(job, stage, ds))
    row.update(hard_start_metrics(job))
    return row


def without_seed(name: str) -> str:
    return ",".join(p for p in name.split(",") if not p.startswith("seed="))


def main(sweep: str) -> None:
    jobs = {job_name(j): j for j in sorted(Path(sweep).iterdir()) if (j / "metrics.json").exists()}
    if not jobs:
        sys.exit(f"{sweep}: no finished jobs (metrics.json) found")
    curves: dict[str, list[Path]] = {}  # one line per setting: the mean over its seeds, with a +-1 std band
    for name, job in jobs.items():
        if (job / "grpo" / "train_history.csv").exists():
            curves.setdefault(without_seed(name), []).append(job)
    longest = max((len(reward_curve(j[0])) for j in curves.values()), default=0)
    window = 10 if longest >= 100 else 5  # long runs: a wider rolling mean, or the lines drown in noise
    png = plot_reward_curves(curves, Path(sweep) / "reward_curves.png", column="own_reward",
                             window=window) if curves else None
    table = pd.DataFrame({name: summary(j) for name, j in jobs.items()}).T
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 60)
    print(table.round(3).to_string())
    setting = table.index.map(without_seed)
    print("\nmean over seeds:")
    print(table.groupby(setting).mean().round(3).to_string())
    print("\nstd over seeds:")
    print(table.groupby(setting).std().round(3).to_string())
    print(f"curves: {png}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "outputs/hint_ablation")
