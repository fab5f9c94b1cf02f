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
                 judge_raw: str | None = None) -> dict:
    """The JSONL record of one clip from its ranked candidates (``cands[0]`` is the one kept or shown).

    ``judge`` is the judge's verdict on ``cands[0]`` (None: the judge is off). The answer uses the true
    polarity and the true score written at the dataset's precision; if that rounding moves the score
    across the neutral band's edge the clip is dropped (``label:precision``), since its tag and score
    would disagree.
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
        "reasoning": p.reasoning,
        "answer": format_answer(true_pol, p.reasoning, label, dataset) if kept else None,
        "kept": kept, "reason": reason, "detail": detail,
        "teacher": teacher, "raw": best.text, "teacher_polarity": p.polarity, "teacher_score": p.raw_score,
        "sample": best.index, "num_samples": len(cands),
        "sample_reasons": [None if c.failure is None else c.failure.reason for c in sorted(cands, key=lambda c: c.index)],
        "filters": {k: v.to_dict() for k, v in verdicts.items()},
        "judge_raw": judge_raw,
    }


def skipped_record(clip_id: str, reason: str, *, dataset: str, split: str, teacher: str) -> dict:
    """A clip whose media could not be read (``data.on_error=skip``): dropped as ``media:<kind>``."""
    kind = reason.split(":", 1)[0] if ":" in reason else "error"
    return {"id": clip_id, "dataset": dataset, "split": split, "kept": False, "reason": f"media:{kind}",
            "detail": reason, "teacher": teacher, "raw": None, "sample_reasons": [], "filters": {}}
