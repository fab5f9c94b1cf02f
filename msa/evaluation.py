"""Turning generated answers into predictions and MMSA metrics: shared by the eval stage, SFT
validation and the GRPO test pass, so every stage reports the same numbers the same way.

Rules (see README "Evaluation"): strict DC parsing; an answer that is not well formed counts as a
parse failure and predicts 0 (kept in N, the field's convention), reported as ``parse_fail_rate``;
scores outside the range are clamped at parse time (``clamp_rate``). Cross-dataset: the model answers
in the range it was trained on (``range_dataset``); its score is mapped linearly to the target's range
(x3 from SIMS to MOSI, /3 back) before the target's metrics.

Beside the MMSA metrics: ``polarity_acc``, the share of answers whose parsed ``<polarity>`` (for a
score-only answer, its score's polarity) names the true label's polarity under the target's neutral
band (:func:`msa.dc.polarity_of`); a parse failure counts as wrong. With ``subsets=True`` (every test
pass and eval), ``summarize`` adds the same metrics on named subsets of the split (:data:`SUBSETS`),
the clips where one cue points the other way ("how does it do when the words mislead"):

* ``text_conflict`` / ``audio_conflict`` / ``visual_conflict``: the unimodal label (``label_T`` /
  ``label_A`` / ``label_V``) and the overall label are both non-zero and of opposite sign. Only CH-SIMS,
  CH-SIMS v2 and the synthetic sets have unimodal labels; a clip whose unimodal label is missing (NaN)
  is in no such subset.
* ``conflict``: the label file's own ``conflict`` column is 1 (the synthetic ``hard`` family).

A subset appears only where its labels exist (some clip of the split has that column); one that exists
but holds no clip is ``{"n": 0}``, without metrics.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Iterable

from msa.data.labels import opposing
from msa.data.specs import get_spec, rescale
from msa.dc import parse_completion, polarity_of
from msa.metrics import sentiment_metrics
from msa.rl.rewards import total_reward


# Subset name -> the record field it reads: the unimodal label opposing the overall label, or a 0/1 flag.
SUBSETS = {"text_conflict": "label_T", "audio_conflict": "label_A", "visual_conflict": "label_V",
           "conflict": "conflict"}
# Per-clip label fields a batch may carry beyond ``label`` (NaN when the release has none).
SUBSET_FIELDS = ("label_T", "label_A", "label_V", "conflict")


def _known(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def in_subset(name: str, record: dict) -> bool:
    """Whether ``record`` (needs ``label`` and the subset's field) belongs to subset ``name``.

    >>> r = {"label": 0.6, "label_T": -0.4, "label_A": 0.0, "label_V": float("nan"), "conflict": 1.0}
    >>> [in_subset(s, r) for s in SUBSETS]   # text opposes; audio 0 has no sign; visual unknown
    [True, False, False, True]
    >>> in_subset("text_conflict", {"label": 0.0, "label_T": -0.4}), in_subset("conflict", {"label": 0.2})
    (False, False)
    """
    field = SUBSETS[name]
    value = record.get(field)
    if not _known(value):
        return False
    if name == "conflict":
        return float(value) == 1.0
    return opposing(record["label"], value)


def subset_available(name: str, records: list[dict]) -> bool:
    """Whether any record carries the field subset ``name`` is defined by (MOSI has no unimodal labels)."""
    return any(_known(r.get(SUBSETS[name])) for r in records)


def polarity_accuracy(records: list[dict], dataset: str) -> float:
    """The share of answers whose parsed polarity names the true label's polarity on ``dataset``'s band;
    a parse failure is wrong whatever its tag says.

    >>> recs = [{"label": 0.6, "parsed_polarity": "positive", "parse_fail": False},
    ...         {"label": 0.1, "parsed_polarity": "positive", "parse_fail": False},  # 0.1 is neutral on SIMS
    ...         {"label": -0.8, "parsed_polarity": "negative", "parse_fail": True}]
    >>> polarity_accuracy(recs, "sims")
    0.3333333333333333
    """
    right = sum(not r["parse_fail"] and r.get("parsed_polarity") == polarity_of(float(r["label"]), dataset)
                for r in records)
    return right / len(records)


def prediction_records(completions: list[str], batch: dict, *, dataset: str, range_dataset: str,
                       answer: str = "dc") -> list[dict]:
    """One JSON-ready record per completion: id, labels (``label``, and ``label_T/A/V`` and ``conflict``
    when the batch has them, None where unknown), the completion, parsed fields, prediction, rewards."""
    labels = [float(x) for x in batch["label"]]
    extra = {k: [float(x) if _known(float(x)) else None for x in batch[k]] for k in SUBSET_FIELDS if k in batch}
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
        rec = {"id": batch["ids"][i], "dataset": dataset, "label": labels[i], **{k: v[i] for k, v in extra.items()},
               "completion": c,
               "prediction": pred, "parse_fail": not ok, **{f"parsed_{k}": v for k, v in asdict(p).items()}}
        rec.update({f"reward_{k}": v[i] for k, v in per_fn.items()})
        records.append(rec)
    return records


def summarize(records: Iterable[dict], dataset: str, *, subsets: bool = False) -> dict:
    """MMSA metrics of ``dataset`` plus polarity_acc, parse_fail_rate, clamp_rate and n; with ``subsets``,
    ``"subsets": {name: the same metrics and n on that subset}`` for every subset whose labels exist
    (``{}`` without unimodal labels). Off by default: SFT validation logs every value as a scalar."""
    records = list(records)
    if not records:
        raise ValueError(f"{dataset}: no predictions to evaluate")
    metrics = _metrics(records, dataset)
    if subsets:
        metrics["subsets"] = {}
        for name in SUBSETS:
            if subset_available(name, records):
                members = [r for r in records if in_subset(name, r)]
                metrics["subsets"][name] = _metrics(members, dataset) if members else {"n": 0}
    return metrics


def _metrics(records: list[dict], dataset: str) -> dict[str, float]:
    metrics = sentiment_metrics([r["prediction"] for r in records], [r["label"] for r in records], dataset)
    n = len(records)
    metrics["polarity_acc"] = polarity_accuracy(records, dataset)
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
