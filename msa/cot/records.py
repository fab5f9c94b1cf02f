"""One clip's teacher samples: parsed, filtered, ranked (:func:`assess`), and the JSONL record of the
best one (:func:`build_record`), with the true polarity and score (paper §III-A: "replace the generated
score with the real score label").

The best sample of a clip is the one that passes the most filters, then the one whose score is closest
to the true label, then the first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from msa.cot.filters import FILTERS, SKIPPED, Verdict, evaluate, first_failure
from msa.data.labels import is_text_conflict
from msa.dc import format_answer, format_score, parse_completion, polarity_of
from msa.dc.parser import Parsed


@dataclass
class Candidate:
    index: int  # which of the clip's samples
    text: str
    parsed: Parsed
    verdicts: dict[str, Verdict]

    @property
    def failure(self) -> Verdict | None:
        return first_failure(self.verdicts)

    def rank(self, label: float) -> tuple:
        """Sort key: more filters passed first, then the score closest to the label, then the first."""
        fail = self.failure
        passed = len(FILTERS) if fail is None else FILTERS.index(fail.reason.split(":")[0])
        dist = abs(self.parsed.score - label) if self.parsed.score is not None else math.inf
        return (-passed, dist, self.index)


def assess(texts: Sequence[str], *, label: float, dataset: str, modalities: Sequence[str],
           filters: Mapping[str, Any], min_chars: int, max_chars: int) -> list[Candidate]:
    """Parse and filter (format, polarity, plausibility) each sample of one clip; best first."""
    true_pol = polarity_of(label, dataset)
    cands = []
    for i, text in enumerate(texts):
        parsed = parse_completion(text, dataset)
        verdicts = evaluate(parsed, true_polarity=true_pol, dataset=dataset, modalities=modalities,
                            polarity=bool(filters.get("polarity", True)),
                            plausibility=bool(filters.get("plausibility", True)), min_chars=min_chars,
                            max_chars=max_chars)
        cands.append(Candidate(i, text, parsed, verdicts))
    return sorted(cands, key=lambda c: c.rank(label))


def build_record(*, clip_id: str, dataset: str, split: str, transcript: str, modalities: Sequence[str],
                 label: float, teacher: str, cands: Sequence[Candidate], judge: Verdict | None = None,
                 judge_raw: str | None = None, label_T: float | None = None) -> dict:
    """The JSONL record of one clip from its ranked candidates (``cands[0]`` is the one kept or shown).

    ``judge`` is the judge's verdict on ``cands[0]`` (None: the judge is off). The answer uses the true
    polarity and the true score written at the dataset's precision; if that rounding moves the score
    across the neutral band's edge the clip is dropped (``label:precision``), since its tag and score
    would disagree. ``label_T`` (the transcript's label, None or NaN where the dataset has none) marks
    a text-conflict clip (``text_conflict``, :func:`msa.data.labels.is_text_conflict`).
    """
    best = cands[0]
    true_pol = polarity_of(label, dataset)
    score_text = format_score(label, dataset)
    verdicts = dict(best.verdicts)
    verdicts["judge"] = judge if judge is not None else SKIPPED
    fail = first_failure(verdicts)
    reason, detail = (fail.reason, fail.detail) if fail else (None, None)
    if fail is None and polarity_of(float(score_text), dataset) != true_pol:
        reason, detail = "label:precision", f"label {label!r} written as {score_text} is not {true_pol}"
    kept = reason is None
    p = best.parsed
    return {
        "id": clip_id, "dataset": dataset, "split": split, "transcript": transcript, "modalities": list(modalities),
        "label": float(label), "polarity": true_pol, "score": float(score_text),
        "text_conflict": label_T is not None and is_text_conflict(label, label_T),
        "reasoning": p.reasoning,
        "answer": format_answer(true_pol, p.reasoning, label, dataset) if kept else None,
        "kept": kept, "reason": reason, "detail": detail,
        "teacher": teacher, "raw": best.text, "teacher_polarity": p.polarity, "teacher_score": p.raw_score,
        "sample": best.index, "num_samples": len(cands),
        "sample_reasons": [None if c.failure is None else c.failure.reason for c in sorted(cands, key=lambda c: c.index)],
        "filters": {k: v.to_dict() for k, v in verdicts.items()},
        "judge_raw": judge_raw,
    }


def check_against_labels(records: Sequence[Mapping], labels, *, dataset: str, source: str) -> None:
    """Refuse CoT records that no longer describe the dataset they would train on: a record whose clip
    the label table lacks (a CoT set from another dataset or copy whose ids overlap), or whose ``label``
    differs from the table's (labels corrected after the CoT run: its answer carries the old score).

    ``labels``: the dataset's label table (``id``, ``label`` columns, :func:`msa.data.labels.read_labels`);
    ``source`` names the CoT file in the message.

    >>> import pandas as pd
    >>> table = pd.DataFrame({"id": ["a", "b"], "label": [0.8, -0.2]})
    >>> check_against_labels([{"id": "a", "label": 0.8}], table, dataset="demo", source="cot.jsonl")
    >>> check_against_labels([{"id": "a", "label": -0.8}], table, dataset="demo", source="cot.jsonl")
    Traceback (most recent call last):
    ...
    ValueError: demo: 1 of 1 records in cot.jsonl disagree with the label file: a (CoT label -0.8, label file 0.8). The labels changed after the CoT run, or the CoT set is from another copy of the data: rerun stage=cot with a new cot.output.
    """
    truth = dict(zip(labels["id"].astype(str), labels["label"].astype(float)))
    unknown = [str(r["id"]) for r in records if str(r["id"]) not in truth]
    if unknown:
        raise ValueError(f"{dataset}: {len(unknown)} of {len(records)} records in {source} name clips the label file "
                         f"does not have ({', '.join(unknown[:3])}): the CoT set comes from another dataset or "
                         f"copy. Point sft.cot at this dataset's CoT file, or rerun stage=cot.")
    stale = [(str(r["id"]), float(r["label"]), truth[str(r["id"])]) for r in records
             if "label" in r and float(r["label"]) != truth[str(r["id"])]]
    if stale:
        shown = ", ".join(f"{i} (CoT label {old:g}, label file {new:g})" for i, old, new in stale[:3])
        raise ValueError(f"{dataset}: {len(stale)} of {len(records)} records in {source} disagree with the label "
                         f"file: {shown}. The labels changed after the CoT run, or the CoT set is from another "
                         "copy of the data: rerun stage=cot with a new cot.output.")


def skipped_record(clip_id: str, reason: str, *, dataset: str, split: str, teacher: str) -> dict:
    """A clip whose media could not be read (``data.on_error=skip``): dropped as ``media:<kind>``."""
    kind = reason.split(":", 1)[0] if ":" in reason else "error"
    return {"id": clip_id, "dataset": dataset, "split": split, "kept": False, "reason": f"media:{kind}",
            "detail": reason, "teacher": teacher, "raw": None, "sample_reasons": [], "filters": {}}
