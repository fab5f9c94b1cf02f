"""The three GRPO rewards of MSA-Thinker (format, polarity, score) and their weighted sum.

Every function has TRL's reward signature ``fn(completions, **fields) -> list[float]``: ``completions``
are strings (or TRL's conversational form, ``[{"role": "assistant", "content": str}]``), and the batch
fields come as lists aligned with them (``label``: the true scores; ``dataset``: a name per sample or
one name for all).

* Rewards are computed on **prefill + completion**: under Hint-GRPO the ``<polarity>`` tag is the
  prefill, so the caller passes the concatenated text or the format reward would fail every hinted
  rollout.
* Only well-formed answers earn anything (see :mod:`msa.dc.parser`): a second polarity or score tag,
  "positive/negative", tags out of order, text after ``</score>`` or an empty ``<think>`` get 0 from
  all three functions, even when a score could be recovered.
* The score reward is paid only when the polarity is right. The paper's equation (5) did not survive
  in our copy; its text says "under the premise of consistent polarity, ... close to the true value
  ... bounds of score annotations", which we read as ``form="linear"``:
  ``1 - |s_pred - s_true| / (s_max - s_min)`` with ``s_pred`` clamped. ``form="gaussian"``,
  ``exp(-(d / (0.25 * span))**2)``, is sharper near the label. ``sign_check=True`` (our addition,
  off by default) also asks the score to fall in the tagged polarity's bin, so that a hinted model
  cannot keep the free polarity tag and ignore it in the score.

``total_reward`` parses each completion once and hands the result to the three functions through
``parsed=``; used alone, each function parses for itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from msa.dc import Parsed, parse_completion, polarity_of
from msa.data.specs import get_spec

_FORMAT_ONLY_DATASET = "sims"  # the form does not depend on the range; any dataset parses it the same


def _text(completion) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return completion[-1]["content"]  # TRL conversational: the assistant turn
    raise TypeError(f"a completion must be a str or a list of chat messages, got {type(completion).__name__}")


def _per_sample(value, n: int, name: str) -> list:
    """``value`` as a list aligned with the completions; one dataset name stands for all samples."""
    if name == "dataset" and isinstance(value, str):
        return [value] * n
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list aligned with completions, got {type(value).__name__}")
    if len(value) != n:
        raise ValueError(f"{name} has {len(value)} entries for {n} completions")
    return list(value)


def parse_all(completions: Sequence, dataset: str | Sequence[str] = _FORMAT_ONLY_DATASET) -> list[Parsed]:
    """Parse each completion (DC format) under its dataset."""
    datasets = _per_sample(dataset, len(completions), "dataset")
    return [parse_completion(_text(c), d) for c, d in zip(completions, datasets)]


def _parsed(completions, dataset, parsed) -> list[Parsed]:
    if parsed is None:
        return parse_all(completions, dataset)
    if len(parsed) != len(completions):
        raise ValueError(f"parsed has {len(parsed)} entries for {len(completions)} completions")
    return list(parsed)


def format_reward(completions: Sequence, *, dataset: str | Sequence[str] = _FORMAT_ONLY_DATASET,
                  parsed: Sequence[Parsed] | None = None, **kw) -> list[float]:
    """1.0 iff the answer is well formed DC (``dataset`` only sets the clamp range, which the form ignores).

    >>> format_reward(["<polarity>positive</polarity><think>smile</think><score>0.4</score>",
    ...                "<polarity>positive</polarity><think>smile</think><score>0.4</score> 0.9"])
    [1.0, 0.0]
    """
    return [1.0 if p.well_formed else 0.0 for p in _parsed(completions, dataset, parsed)]


def _right_polarity(p: Parsed, label, dataset: str) -> bool:
    return p.well_formed and p.polarity == polarity_of(label, dataset)


def polarity_reward(completions: Sequence, label: Sequence[float], dataset: str | Sequence[str], *,
                    parsed: Sequence[Parsed] | None = None, **kw) -> list[float]:
    """1.0 iff well formed and the tagged polarity is the label's (``polarity_of(label, dataset)``).

    >>> polarity_reward(["<polarity>neutral</polarity><think>flat</think><score>0.0</score>",
    ...                  "<polarity>positive</polarity><think>flat</think><score>0.2</score>"],
    ...                 label=[0.1, 0.1], dataset="sims")   # sims: 0.1 is neutral, (-0.1, 0.1]
    [1.0, 0.0]
    """
    n = len(completions)
    labels, datasets = _per_sample(label, n, "label"), _per_sample(dataset, n, "dataset")
    ps = _parsed(completions, datasets, parsed)
    return [1.0 if _right_polarity(p, y, d) else 0.0 for p, y, d in zip(ps, labels, datasets)]


def _closeness(d: float, span: float, form: str) -> float:
    if form == "linear":
        return 1.0 - d / span
    if form == "gaussian":
        return math.exp(-((d / (0.25 * span)) ** 2))
    raise ValueError(f"form must be 'linear' or 'gaussian', got {form!r}")


def score_reward(completions: Sequence, label: Sequence[float], dataset: str | Sequence[str], *,
                 form: str = "linear", sign_check: bool = False, parsed: Sequence[Parsed] | None = None,
                 **kw) -> list[float]:
    """Closeness of the (clamped) score to the label, paid only when well formed with the right polarity.

    >>> r = score_reward(["<polarity>positive</polarity><think>smile</think><score>0.6</score>",
    ...                   "<polarity>negative</polarity><think>frown</think><score>0.6</score>"],
    ...                  label=[0.8, 0.8], dataset="sims")   # 1 - 0.2 / 2
    >>> [round(x, 6) for x in r]
    [0.9, 0.0]
    """
    _closeness(0.0, 1.0, form)  # reject a bad form even for an empty batch
    n = len(completions)
    labels, datasets = _per_sample(label, n, "label"), _per_sample(dataset, n, "dataset")
    out = []
    for p, y, d in zip(_parsed(completions, datasets, parsed), labels, datasets):
        ok = _right_polarity(p, y, d) and (not sign_check or polarity_of(p.score, d) == p.polarity)
        out.append(_closeness(abs(p.score - float(y)), get_spec(d).span, form) if ok else 0.0)
    return out


RewardFn = Callable[..., list[float]]
REWARD_FUNCS: dict[str, RewardFn] = {"format": format_reward, "polarity": polarity_reward, "score": score_reward}


def check_weights(weights: dict[str, float] | None) -> dict[str, float]:
    """All reward weights (missing names default to 1.0); unknown names or negative values are errors."""
    full = dict.fromkeys(REWARD_FUNCS, 1.0)
    for name, w in (weights or {}).items():
        if name not in REWARD_FUNCS:
            raise ValueError(f"unknown reward {name!r}; known: {', '.join(REWARD_FUNCS)}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"reward weight {name!r} must be a finite number >= 0, got {w!r}")
        full[name] = float(w)
    return full


def total_reward(completions: Sequence, weights: dict[str, float] | None = None,
                 **fields) -> tuple[list[float], dict[str, list[float]]]:
    """Weighted sum of the three rewards, and each reward's values (for logging ``rewards/<name>``).

    >>> good = "<polarity>positive</polarity><think>smile</think><score>0.6</score>"
    >>> totals, per = total_reward([good], label=[0.8], dataset="sims", weights={"score": 2.0})
    >>> round(totals[0], 6), sorted(per)   # 1 + 1 + 2 * 0.9
    (3.8, ['format', 'polarity', 'score'])
    """
    w = check_weights(weights)
    fields.pop("parsed", None)
    parsed = parse_all(completions, fields.get("dataset", _FORMAT_ONLY_DATASET))
    per = {name: fn(completions, parsed=parsed, **fields) for name, fn in REWARD_FUNCS.items()}
    totals = [sum(w[name] * per[name][i] for name in REWARD_FUNCS) for i in range(len(completions))]
    return totals, per
