"""The hint study's table and curves from its run directories.

    python experiments/hint_study/summarise.py outputs/hint_study [--out experiments/hint_study]

Reads every run under the folder (``msa.report.runs``: the SFT run of each seed and its four GRPO
settings), and writes ``results.md`` (per setting mean +- std over seeds; per GRPO setting the paired
difference to hint=false with its 95 % t-interval) and ``own_reward_curves.png`` (the policy's own
reward per step, mean over seeds with a +-1 std band) into ``--out`` (default: the runs folder).

Per run (:func:`run_row`): on the test split's text-conflict clips, acc2 / acc3 / MAE and the polarity
tag's accuracy from ``metrics.json`` (``metrics[<stage>][<dataset>]["subsets"]["text_conflict"]``); the
same four on the rest of the test split, from the run's ``<stage>/predictions.jsonl`` and the label file;
for GRPO runs, the share of hard prompts over training (``hard/frac``), how many prompt-steps were hard
and the share of those that were text-conflict clips (``hard_ids`` of ``grpo/train_history.csv``), and
the own reward's first and last fifth.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from msa.report.paired import paired_difference
from msa.report.runs import ReportError, Run, by_setting, find_runs
from msa.report.tables import aggregate

SUBSET = "text_conflict"
BASELINE = "grpo_no_hint"
# setting (msa.report.runs.classify) -> the row's name in the table
ROWS = {"sft_dc": "SFT (text-led CoT)", "grpo": "hint=true", "grpo_no_hint": "hint=false",
        "grpo_no_hard": "hard=false", "grpo_anchored": "grpo.hint_mode=anchored"}
COLUMNS = {  # column -> header
    "tc_acc2": "conflict acc2", "tc_acc3": "conflict acc3", "tc_mae": "conflict MAE", "tc_polarity_acc": "conflict tag acc",
    "rest_acc2": "rest acc2", "rest_acc3": "rest acc3", "rest_mae": "rest MAE", "rest_polarity_acc": "rest tag acc",
    "hard_frac": "hard prompts", "hard_tc_share": "hard: conflict share",
    "own_first": "own reward first fifth", "own_last": "own reward last fifth",
}
PAIRED = ("tc_acc2", "tc_acc3", "tc_mae", "tc_polarity_acc", "rest_acc2", "rest_mae", "own_last")


def subset_metrics(predictions: pd.DataFrame, dataset: str) -> dict[str, float]:
    """acc2, acc3, MAE and the polarity tag's accuracy (``polarity_acc``: a parse failure counts wrong)
    of some predictions, computed as ``metrics.json`` computes them (:func:`msa.evaluation.summarize`),
    so the rest of the split is scored like the text-conflict subset it is compared with."""
    from msa.evaluation import summarize

    if predictions.empty:
        return {"acc2": math.nan, "acc3": math.nan, "mae": math.nan, "polarity_acc": math.nan, "n": 0}
    m = summarize(predictions.to_dict("records"), dataset)
    return {k: m[k] for k in ("acc2", "acc3", "mae", "polarity_acc", "n")}


def hard_prompts(history: pd.DataFrame | None, conflict_ids: set[str]) -> dict[str, float]:
    """Mean ``hard/frac`` over the steps, the number of hard prompt-steps, and the share of those that
    were text-conflict clips (from ``hard_ids``, space-separated; empty or NaN: none that step).

    >>> h = pd.DataFrame({"hard/frac": [0.5, 0.0, 0.25], "hard_ids": ["a b", float("nan"), "a"]})
    >>> hard_prompts(h, {"a"})
    {'hard_frac': 0.25, 'hard_prompts': 3, 'hard_tc_share': 0.6666666666666666}
    """
    if history is None or history.empty:
        return {"hard_frac": math.nan, "hard_prompts": 0, "hard_tc_share": math.nan}
    if "hard_ids" not in history:
        raise ReportError("grpo/train_history.csv has no hard_ids column (a run older than the hint study's)")
    ids = [i for cell in history["hard_ids"] if isinstance(cell, str) for i in cell.split()]
    share = sum(i in conflict_ids for i in ids) / len(ids) if ids else math.nan
    return {"hard_frac": float(history["hard/frac"].mean()), "hard_prompts": len(ids), "hard_tc_share": share}


def run_row(metrics: Mapping, stage: str, dataset: str, predictions: pd.DataFrame, conflict_ids: set[str],
            history: pd.DataFrame | None = None, where: str = "run") -> dict[str, float]:
    """One run's numbers (the keys of :data:`COLUMNS`): the text-conflict subset from ``metrics.json``
    (``metrics[stage][dataset]["subsets"]["text_conflict"]``), the rest of the test split from its
    predictions, and the training's hard prompts (GRPO runs: ``history``)."""
    try:
        tc = metrics[stage][dataset]["subsets"][SUBSET]
    except (KeyError, TypeError):
        raise ReportError(f"{where}: metrics.json has no {stage}.{dataset}.subsets.{SUBSET} (a run from before "
                          "the subset metrics, or tested on another dataset)") from None
    rest = subset_metrics(predictions[~predictions["id"].astype(str).isin(conflict_ids)], dataset)
    row = {f"tc_{k}": float(tc[k]) for k in ("acc2", "acc3", "mae", "polarity_acc")}
    row["tc_n"] = int(tc["n"])
    row.update({f"rest_{k}": float(v) for k, v in rest.items()})
    row.update(hard_prompts(history, conflict_ids) if history is not None else
               {"hard_frac": math.nan, "hard_prompts": 0, "hard_tc_share": math.nan})
    train = metrics.get("grpo_train") or {}
    row["own_first"] = float(train.get("own_reward_first_fifth", math.nan))
    row["own_last"] = float(train.get("own_reward_last_fifth", math.nan))
    return row


def _cell(values: Sequence[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "–"
    c = aggregate(values)
    return f"{c.mean:.3f}" if c.std is None else f"{c.mean:.3f} ± {c.std:.3f}"


def tables(rows: Mapping[str, Mapping[int, Mapping[str, float]]]) -> str:
    """Markdown: mean +- std over seeds per setting, then each GRPO setting's paired difference to
    hint=false. ``rows``: setting -> seed -> :func:`run_row`.

    >>> r = lambda x: {k: x for k in COLUMNS}
    >>> md = tables({"grpo_no_hint": {0: r(0.5), 1: r(0.6)}, "grpo": {0: r(0.6), 1: r(0.8)}})
    >>> print(md.splitlines()[2])
    | hint=true | 2 | 0.700 ± 0.141 | 0.700 ± 0.141 | 0.700 ± 0.141 | 0.700 ± 0.141 | 0.700 ± 0.141 | 0.700 ± 0.141 | 0.700 ± 0.141 | 0.700 ± 0.141 | 0.700 ± 0.141 | 0.700 ± 0.141 | 0.700 ± 0.141 | 0.700 ± 0.141 |
    >>> print(md.splitlines()[-1])  # differences 0.1 and 0.2: mean 0.15, std 0.0707, t(1) = 12.706
    | hint=true | 2 | +0.150 [-0.485, +0.785] | +0.150 [-0.485, +0.785] | +0.150 [-0.485, +0.785] | +0.150 [-0.485, +0.785] | +0.150 [-0.485, +0.785] | +0.150 [-0.485, +0.785] | +0.150 [-0.485, +0.785] |
    """
    out = ["| setting | seeds | " + " | ".join(COLUMNS.values()) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for setting, name in ROWS.items():
        if setting not in rows:
            continue
        seeds = rows[setting]
        out.append(f"| {name} | {len(seeds)} | "
                   + " | ".join(_cell([r[c] for r in seeds.values()]) for c in COLUMNS) + " |")
    if BASELINE in rows:
        base = rows[BASELINE]
        out += ["", f"Paired difference to {ROWS[BASELINE]} (same seed), mean [95 % t-interval, df = seeds - 1]:", "",
                "| setting | seeds | " + " | ".join(COLUMNS[c] for c in PAIRED) + " |", "|---|---|" + "---|" * len(PAIRED)]
        for setting in ("grpo", "grpo_no_hard", "grpo_anchored"):
            if setting not in rows:
                continue
            cells = [paired_difference({s: r[c] for s, r in rows[setting].items()},
                                       {s: r[c] for s, r in base.items()}) for c in PAIRED]
            out.append(f"| {ROWS[setting]} | {cells[0].n} | " + " | ".join(p.text() for p in cells) + " |")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------

def _read_run(run: Run, stage: str, conflict: dict[str, set[str]]) -> dict[str, float]:
    from msa.analysis import dataset_roots, load_metrics, load_predictions, reward_curve
    from msa.data.labels import read_labels, text_conflict_ids

    dataset = run.dataset
    if dataset not in conflict:
        conflict[dataset] = text_conflict_ids(read_labels(dataset_roots(run.path)[dataset], dataset))
    preds = load_predictions(run.path, stage)
    preds = preds[preds["dataset"] == dataset]
    history = reward_curve(run.path) if stage == "grpo" else None
    return run_row(load_metrics(run.path), stage, dataset, preds, conflict[dataset], history, where=str(run.path))


def collect(paths: Iterable[str | Path]) -> tuple[dict, dict, list[Path]]:
    """setting -> seed -> row, setting -> the run directories (for the curves), and the runs left out
    because their stage has not finished (no test metrics yet: a run still going, or one that died)."""
    from msa.analysis import load_metrics

    runs = by_setting(find_runs(paths))
    rows: dict[str, dict[int, dict]] = {}
    dirs: dict[str, list[Path]] = {}
    unfinished: list[Path] = []
    conflict: dict[str, set[str]] = {}
    for setting, group in runs.items():
        if setting not in ROWS:
            continue
        for run in group:
            if run.settings[setting] not in load_metrics(run.path):
                unfinished.append(run.path)
                continue
            rows.setdefault(setting, {})[run.seed] = _read_run(run, run.settings[setting], conflict)
            dirs.setdefault(setting, []).append(run.path)
    return rows, dirs, unfinished


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="the study's output folder(s)")
    parser.add_argument("--out", default=None, help="where results.md and own_reward_curves.png go (default: the first runs folder)")
    args = parser.parse_args(argv)
    try:
        rows, dirs, unfinished = collect(args.runs)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in unfinished:  # named, never averaged in
        print(f"left out (not finished: no test metrics in metrics.json): {path}", file=sys.stderr)
    out = Path(args.out or args.runs[0])
    out.mkdir(parents=True, exist_ok=True)
    md = tables(rows)
    (out / "results.md").write_text(md + "\n", encoding="utf-8")
    print(md)
    grpo = {ROWS[s]: d for s, d in dirs.items() if s != "sft_dc"}
    if grpo:
        from msa.analysis import plot_reward_curves

        png = plot_reward_curves(grpo, out / "own_reward_curves.png", column="own_reward",
                                 title="own reward per step (mean ± std over seeds)")
        print(f"\nwrote {out / 'results.md'} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
