"""Reading and writing DC answers: ``<polarity>p</polarity><think>r</think><score>s</score>``.

Strict by design, because the rewards and the metrics both stand on it:

* **Well formed** (``answer="dc"``) means exactly one ``<polarity>``, one ``<think>`` and one ``<score>``
  block, in that order, with nothing but whitespace before, between and after them; the polarity is one
  word of the closed set (case and surrounding whitespace ignored), the reasoning is not empty, and the
  score is exactly one plain decimal number. Tag-like variants (``<Score>``, ``< /think >``) count as
  tags, so smuggling a second answer in another spelling breaks the form instead of passing as text.
* **Trailing special tokens**: a run of ``<|im_end|>`` / ``<|endoftext|>`` at the very end (what a
  decode without ``skip_special_tokens`` leaves) is dropped before checking; anywhere else it is text.
* **Score text** is normalised first: the minus look-alikes (U+2212, en/em dash, non-breaking hyphen,
  and the Chinese 一 used as a minus), full-width digits, sign and dot; a leading ``+`` is allowed. The
  number goes straight to a Python float (float64), never through float32 (see :mod:`msa.dc.polarity`),
  and is clamped to the dataset's range (``clamped`` says so, ``raw_score`` keeps the original).
* **Not well formed** still yields what can be read unambiguously: a block whose open and close tag
  each occur exactly once (in that order) gives its content, so a lone parseable ``<score>`` fills
  ``score`` and a closed-set ``<polarity>`` fills ``polarity``. ``well_formed`` is then False and
  ``error`` says why. The caller decides what that is worth: the rewards give nothing, evaluation may
  keep the score for the metrics and must report the parse-failure rate.
* ``answer="score"`` (the direct-score baseline) expects only ``<score>x</score>``; the polarity is
  then derived from the score with :func:`~msa.dc.polarity.polarity_of` and the reasoning is None.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from msa.data.specs import get_spec
from msa.dc.polarity import POLARITIES, polarity_of

TAGS = ("polarity", "think", "score")
_TAG_RE = {t: re.compile(rf"<\s*(/?)\s*{t}\s*>", re.IGNORECASE) for t in TAGS}  # open: group(1) == ""
_SPECIAL_TOKENS = ("<|im_end|>", "<|endoftext|>")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)  # no exponent, nan or inf: not "one number"
_MINUS_LIKE = "\u2212\u2013\u2014\u2011\u2010\ufe63\u4e00"  # − – — ‑ ‐ ﹣ 一
_NORMALISE = str.maketrans({**{c: "-" for c in _MINUS_LIKE}, "\uff0b": "+", "\uff0d": "-", "\uff0e": ".",
                            **{chr(0xFF10 + i): str(i) for i in range(10)}})
_COUNT = {0: "no", 2: "two", 3: "three"}


@dataclass(frozen=True)
class Parsed:
    polarity: str | None  # lower-case, from POLARITIES
    reasoning: str | None  # stripped
    score: float | None  # clamped to the dataset range
    well_formed: bool
    clamped: bool = False
    raw_score: float | None = None  # before clamping
    error: str | None = None  # why it is not well formed


def normalise_number(text: str) -> str:
    """Map minus look-alikes and full-width characters to ASCII and strip whitespace.

    >>> normalise_number(" \u2212０．５ "), normalise_number("一0.3")
    ('-0.5', '-0.3')
    """
    return text.translate(_NORMALISE).strip()


def _strip_special_tail(text: str) -> str:
    body = text.rstrip()
    while body.endswith(_SPECIAL_TOKENS):
        body = body[:body.rindex("<|")].rstrip()
    return body


def contains_tag(text: str) -> bool:
    """Whether ``text`` holds anything the parser counts as a DC tag (``<score>``, ``< /Think >``, ...)."""
    return any(_TAG_RE[t].search(text) for t in TAGS)


def _read_number(text: str) -> float | None:
    s = normalise_number(text)
    return float(s) if _NUMBER.fullmatch(s) else None


def _blocks(body: str, tag: str) -> tuple[list[re.Match], list[re.Match]]:
    found = list(_TAG_RE[tag].finditer(body))
    return [m for m in found if not m.group(1)], [m for m in found if m.group(1)]


def _tag_error(tag: str, opens: list, closes: list) -> str | None:
    if len(opens) == 1 and len(closes) == 1:
        return None if opens[0].end() <= closes[0].start() else f"</{tag}> before <{tag}>"
    if not opens and not closes:
        return f"missing <{tag}>"
    if len(opens) == 1 and not closes:
        return f"unclosed <{tag}>"
    if not opens:
        return f"</{tag}> without <{tag}>"
    n = max(len(opens), len(closes))
    return f"{_COUNT.get(n, n)} <{tag}> tags"


def _structure_error(body: str, spans: list[tuple[re.Match, re.Match]], tags: tuple[str, ...]) -> str | None:
    """Order, exact spelling and whitespace-only gaps of blocks that each occur once."""
    for (_, prev_close), (next_open, _) in zip(spans, spans[1:]):
        if prev_close.end() > next_open.start():
            return "tags out of order"
    for (o, c), tag in zip(spans, tags):
        for m, want in ((o, f"<{tag}>"), (c, f"</{tag}>")):
            if m.group(0) != want:
                return f"malformed tag {m.group(0)!r}"
    gaps = [body[:spans[0][0].start()]] + [body[a[1].end():b[0].start()] for a, b in zip(spans, spans[1:])]
    gaps.append(body[spans[-1][1].end():])
    names = [f"before <{tags[0]}>"] + [f"between </{a}> and <{b}>" for a, b in zip(tags, tags[1:])]
    names.append(f"after </{tags[-1]}>")
    for gap, name in zip(gaps, names):
        if gap.strip():
            return f"text {name}"
    return None


def parse_completion(text: str, dataset: str, answer: str = "dc") -> Parsed:
    """Parse one generated answer strictly (see the module docstring for the rules).

    >>> p = parse_completion("<polarity>Positive</polarity><think>warm words</think><score>1.7</score>", "sims")
    >>> p.polarity, p.reasoning, p.score, p.raw_score, p.clamped, p.well_formed
    ('positive', 'warm words', 1.0, 1.7, True, True)
    >>> p = parse_completion("<polarity>negative</polarity><think>x</think><score>−0.4</score> ok", "sims")
    >>> p.well_formed, p.error, p.polarity, p.score   # not well formed, but the parts are readable
    (False, 'text after </score>', 'negative', -0.4)
    >>> parse_completion("<score>0.05</score><|im_end|>", "sims", answer="score").polarity
    'neutral'
    """
    if not isinstance(text, str):
        raise TypeError(f"completion must be a str, got {type(text).__name__}")
    if answer not in ("dc", "score"):
        raise ValueError(f"answer must be 'dc' or 'score', got {answer!r}")
    spec = get_spec(dataset)
    body = _strip_special_tail(text)
    expected = TAGS if answer == "dc" else ("score",)
    found = {t: _blocks(body, t) for t in TAGS}
    inner = {t: body[o[0].end():c[0].start()] for t, (o, c) in found.items() if _tag_error(t, o, c) is None}

    # What can be read regardless of the form.
    raw = _read_number(inner["score"]) if "score" in inner else None
    score = None if raw is None else min(max(raw, spec.score_min), spec.score_max)
    if answer == "dc":
        word = inner["polarity"].strip().lower() if "polarity" in inner else None
        polarity = word if word in POLARITIES else None
        reasoning = inner["think"].strip() if "think" in inner else None
    else:
        polarity = None if score is None else polarity_of(score, dataset)
        reasoning = None

    error = None
    for tag in TAGS:
        opens, closes = found[tag]
        if tag in expected:
            error = _tag_error(tag, opens, closes)
        elif opens or closes:
            error = f"unexpected <{tag}> in a score-only answer"
        if error:
            break
    if error is None:
        error = _structure_error(body, [(found[t][0][0], found[t][1][0]) for t in expected], expected)
    if error is None and answer == "dc":
        word = inner["polarity"].strip()
        if word.lower() not in POLARITIES:
            error = f"polarity {word!r} not in closed set" if word else "empty <polarity>"
        elif not reasoning:
            error = "empty <think>"
    if error is None and raw is None:
        number = inner["score"].strip()
        error = f"score {number!r} is not one number" if number else "empty <score>"
    return Parsed(polarity=polarity, reasoning=reasoning, score=score, well_formed=error is None,
                  clamped=score is not None and score != raw, raw_score=raw, error=error)


def format_score(score: float, dataset: str) -> str:
    """A score written at the dataset's precision, trailing zeros dropped (one decimal kept).

    >>> format_score(-0.6, "sims"), format_score(0.0, "sims"), format_score(1.3333, "mosi"), format_score(2.0, "mosi")
    ('-0.6', '0.0', '1.33', '2.0')
    """
    spec = get_spec(dataset)
    value = float(score)
    if not math.isfinite(value):
        raise ValueError(f"score must be finite, got {value}")
    s = f"{value:.{spec.precision}f}"
    if "." in s:
        s = s.rstrip("0")
        s = s + "0" if s.endswith(".") else s
    return s.lstrip("-") if float(s) == 0.0 else s  # no "-0.0"


def _check_polarity(polarity: str) -> None:
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES}, got {polarity!r}")


def format_answer(polarity: str, reasoning: str, score: float, dataset: str) -> str:
    """The canonical DC answer (the SFT target); ``parse_completion`` reads it back unchanged.

    >>> format_answer("negative", "flat tone", -0.6, "sims")
    '<polarity>negative</polarity><think>flat tone</think><score>-0.6</score>'
    """
    _check_polarity(polarity)
    if not isinstance(reasoning, str) or not reasoning.strip():
        raise ValueError(f"reasoning must be a non-empty string, got {reasoning!r}")
    if contains_tag(reasoning):
        raise ValueError(f"reasoning contains a DC tag, which would break the answer: {reasoning[:80]!r}")
    return f"<polarity>{polarity}</polarity><think>{reasoning}</think><score>{format_score(score, dataset)}</score>"


# What follows the polarity tag in every SFT answer (format_answer): the prefill of a hint is cut at a
# token boundary that exists in front of it (msa.generation.prefix_ids), so the model can go on.
HINT_FOLLOWS = "<think>"


def hint_prefill(polarity: str) -> str:
    """The Hint-GRPO in-answer injection: the true polarity tag, written before the model continues
    (the sampler cuts it at a token boundary the model knows; see ``HINT_FOLLOWS``).

    >>> hint_prefill("positive")
    '<polarity>positive</polarity>'
    """
    _check_polarity(polarity)
    return f"<polarity>{polarity}</polarity>"
