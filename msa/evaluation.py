"""Turning generated answers into predictions and MMSA metrics: shared by the eval stage, SFT
validation and the GRPO test pass, so every stage reports the same numbers the same way.

Rules (see README "Evaluation"): strict DC parsing; an answer that is not well formed counts as a
parse failure and predicts 0 (kept in N, the field's convention), reported as ``parse_fail_rate``;
scores outside the range are clamped at parse time (``clamp_rate``). Cross-dataset: the model answers
in the range it was trained on (``range_dataset``); its score is mapped linearly to the target's range
(x3 from SIMS to MOSI, /3 back) before the target's metrics.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Iterable

from msa.data.specs import get_spec, rescale
from msa.dc import parse_completion
from msa.metrics import sentiment_metrics
from msa.rl.rewards import total_reward


def prediction_records(completions: list[str], batch: dict, *, dataset: str, range_dataset: str,
                       answer: str = "dc") -> list[dict]:
    """One JSON-ready record per completion: id, labels, the completion, parsed fields, prediction, rewards."""
    labels = [float(x) for x in batch["label"]]
    parsed = [parse_completion(c, range_dataset, answer=answer) for c in completions]
    # Rewards are defined in the range the model answers in.
    in_range = [rescale(y, dataset, range_dataset) for y in labels]
    if answer == "dc":
        _, per_fn = total_reward(completions, label=in_range, dataset=range_dataset)
    else:
        per_fn = {}
    records = []
    for i, (c, p) in enumerate(zip(completions, parsed)):
        ok = p.well_formed and p.score is not None
        pred = rescale(p.score, range_dataset, dataset) if ok else 0.0
        rec = {"id": batch["ids"][i], "dataset": dataset, "label": labels[i], "completion": c,
               "prediction": pred, "parse_fail": not ok, **{f"parsed_{k}": v for k, v in asdict(p).items()}}
        rec.update({f"reward_{k}": v[i] for k, v in per_fn.items()})
        records.append(rec)
    return records


def summarize(records: Iterable[dict], dataset: str) -> dict[str, float]:
    """MMSA metrics of ``dataset`` plus parse_fail_rate, clamp_rate and n."""
    records = list(records)
    if not records:
        raise ValueError(f"{dataset}: no predictions to evaluate")
    metrics = sentiment_metrics([r["prediction"] for r in records], [r["label"] for r in records], dataset)
    n = len(records)
    metrics["parse_fail_rate"] = sum(r["parse_fail"] for r in records) / n
    metrics["clamp_rate"] = sum(bool(r["parsed_clamped"]) for r in records) / n
    metrics["n"] = n
    return metrics


def selection_score(metrics: dict[str, float], dataset: str) -> float:
    """The checkpoint-selection number: acc3 + acc2 - MAE / range (higher is better).

    Coarse polarity decisions (acc3, acc2) are what the DC format is built around; the MAE term, scaled
    to the range so that it weighs the same on SIMS and MOSI, breaks ties toward better calibration.
    MOSI/MOSEI use the Non0 acc2 (the figure most papers report).
    """
    spec = get_spec(dataset)
    acc2 = metrics["acc2_non0"] if spec.family == "mosi" else metrics["acc2"]
    acc2 = 0.0 if acc2 != acc2 else acc2  # NaN (no non-zero labels) counts as 0
    return metrics["acc3"] + acc2 - metrics["mae"] / spec.span
