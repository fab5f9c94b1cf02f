"""Filters for teacher chains of thought (paper §III-A2/A3): pure functions returning verdicts.

Each filter looks at one parsed teacher answer (:class:`msa.dc.Parsed`) and says whether it may
become a cold-start example, and if not, why (``reason`` is a short key the stage counts):

* :func:`check_format` -- the answer must be well formed DC (strict parser): ``format``.
  Always on: without a readable tag and reasoning there is nothing to keep.
* :func:`check_polarity` -- §III-A2, polarity consistency: the ``<polarity>`` tag and the polarity of
  the teacher's score must both equal the true polarity: ``polarity:tag``, ``polarity:score``.
* :func:`check_plausibility` -- §III-A3, reasoning plausibility, structural part: a reasoning of
  sane length (``plausibility:length``), every enabled modality discussed (``plausibility:modality``),
  and a concluding stance that does not contradict the tag (``plausibility:stance``).
* the optional judge pass (:mod:`msa.cot.judge`): a local model answers yes or no; anything but an
  exact yes/no is ``judge:unparsed``, a no is ``judge:no``. Its verdicts are :class:`Verdict` too.

The stance check is a small English lexicon, not a sentiment model. Limits: it reads only the last
one or two sentences; it handles simple negation ("not happy" counts as negative) within three
tokens and nothing subtler (sarcasm, "hardly a disaster", double negation); a conclusion with no
lexicon word has no stance and passes; hedges ("slightly positive", "mixed") are allowed with a
neutral tag. It is meant to catch the flagrant case -- "<polarity>positive</polarity> ... overall the
speaker is clearly upset" -- that random or careless teachers produce, and to let real chains through.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from msa.dc.parser import Parsed
from msa.dc.polarity import POLARITIES, polarity_of

FILTERS = ("format", "polarity", "plausibility", "judge")  # the order they run in; the first failure names the drop


@dataclass(frozen=True)
class Verdict:
    """One filter's decision: ``ok``; ``reason`` (a short key) when not ok; ``detail`` for people."""

    ok: bool
    reason: str | None = None
    detail: str | None = None
    skipped: bool = False  # the filter is switched off (counts as ok)

    def to_dict(self) -> dict:
        return asdict(self)


PASS = Verdict(ok=True)
SKIPPED = Verdict(ok=True, skipped=True)


def _fail(reason: str, detail: str) -> Verdict:
    return Verdict(ok=False, reason=reason, detail=detail)


# ----------------------------------------------------------------------------------------------
# Format and polarity consistency
# ----------------------------------------------------------------------------------------------

def check_format(parsed: Parsed) -> Verdict:
    """Well formed DC answer, by the strict parser.

    >>> from msa.dc import parse_completion
    >>> check_format(parse_completion("<think>x</think><score>0.3</score>", "sims")).reason
    'format'
    """
    if parsed.well_formed:
        return PASS
    return _fail("format", parsed.error or "not well formed")


def check_polarity(parsed: Parsed, true_polarity: str, dataset: str) -> Verdict:
    """The teacher's tag and the polarity of its score must both be the true polarity (§III-A2).

    >>> from msa.dc import parse_completion
    >>> p = parse_completion("<polarity>positive</polarity><think>x</think><score>0.05</score>", "sims")
    >>> check_polarity(p, "positive", "sims")   # 0.05 is neutral on SIMS, (-0.1, 0.1]
    Verdict(ok=False, reason='polarity:score', detail='score 0.05 is neutral, true polarity positive', skipped=False)
    """
    if true_polarity not in POLARITIES:
        raise ValueError(f"true_polarity must be one of {POLARITIES}, got {true_polarity!r}")
    if parsed.polarity != true_polarity:
        return _fail("polarity:tag", f"tag {parsed.polarity!r}, true polarity {true_polarity}")
    if parsed.score is None:
        return _fail("polarity:score", "no score")
    score_pol = polarity_of(parsed.score, dataset)
    if score_pol != true_polarity:
        return _fail("polarity:score", f"score {parsed.raw_score:g} is {score_pol}, true polarity {true_polarity}")
    return PASS


# ----------------------------------------------------------------------------------------------
# Plausibility: length, modalities discussed, stance of the conclusion
# ----------------------------------------------------------------------------------------------

# Words that show a modality is discussed. Stems match word starts ("express" -> expression, expressive).
MODALITY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "text": ("text", "transcript", "word", "wording", "phrase", "phrasing", "sentence", "verbal", "lexical",
             "utterance", "statement", "says", "said", "language", "content"),
    "audio": ("audio", "voice", "vocal", "pitch", "tone", "prosod", "intonation", "acoustic", "loud",
              "speech", "speaking", "pace", "volume", "sound"),
    "video": ("visual", "video", "face", "facial", "expression", "smil", "frown", "gaz", "gesture", "posture",
              "eye", "brow", "mouth"),
}
MODALITY_NAMES = {"text": "text", "audio": "audio", "video": "visual"}
_MODALITY_RE = {m: re.compile(r"\b(?:" + "|".join(map(re.escape, ws)) + ")", re.IGNORECASE)
                for m, ws in MODALITY_KEYWORDS.items()}

# Stance lexicon (lower case; stems match word starts). Cue words such as "smile" count: a conclusion
# that says "the smile wins" has a positive stance.
POSITIVE_WORDS = ("positiv", "happ", "joy", "pleas", "glad", "delight", "cheer", "satisf", "optimis", "enthusias",
                  "excit", "upbeat", "warm", "good", "great", "love", "approv", "favo", "content", "hopeful",
                  "grateful", "proud", "smil", "laugh", "amus")
NEGATIVE_WORDS = ("negativ", "sad", "unhapp", "angr", "anger", "upset", "frustrat", "disappoint", "annoy", "bad",
                  "hate", "pessimis", "bitter", "depress", "unpleas", "critic", "dissatisf", "displeas",
                  "anxi", "worr", "gloom", "disgust", "resent", "complain", "frown", "scowl", "hostil", "downbeat",
                  "dislike", "irritat", "sorrow", "miser", "grief", "fear")
NEUTRAL_WORDS = ("neutral", "mixed", "balanc", "flat", "calm", "indifferen", "ambivalen", "neither", "cancel",
                 "matter-of-fact", "impartial", "objective", "unemotional")
HEDGE_WORDS = ("slight", "mild", "somewhat", "weak", "faint", "lean", "mixed", "cancel", "balanc")
NEGATORS = ("not", "no", "never", "hardly", "barely", "without", "nor", "nothing", "lacks", "lacking", "none")
NEGATION_WINDOW = 3  # a negator at most this many tokens before a stance word flips it
CONCLUSION_SENTENCES = 2  # how far back from the end a marked conclusion is looked for
CONCLUSION_MARKERS = ("overall", "therefore", "thus", "hence", "so", "in conclusion", "in summary", "altogether",
                      "taken together", "combined", "combining", "weighing", "all in all", "ultimately", "in sum",
                      "final", "conclude")

_CONCLUSION_RE = re.compile(r"\b(?:" + "|".join(map(re.escape, CONCLUSION_MARKERS)) + r")", re.IGNORECASE)
_TOKEN = re.compile(r"[a-z]+(?:[-'][a-z]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?;。！？；])\s+|\n+")


def _starts(token: str, stems: Sequence[str]) -> bool:
    return any(token.startswith(s) for s in stems)


def _is_negator(token: str) -> bool:
    return token in NEGATORS or token.endswith("n't")


def sentence_stance(sentence: str) -> tuple[str | None, bool]:
    """The stance of one sentence by the lexicon, and whether it is hedged.

    Negative stems are tried first so that "unhappy" is not read as "happy"; a negated positive
    counts as negative and vice versa; a negated neutral word ("not neutral") counts for nothing.
    Ties between positive and negative give "mixed".

    >>> sentence_stance("Overall the speaker is not happy.")
    ('negative', False)
    >>> sentence_stance("So the sentiment is slightly positive.")
    ('positive', True)
    >>> sentence_stance("The score is 0.4."), sentence_stance("It is neutral overall.")
    ((None, False), ('neutral', False))
    """
    tokens = _TOKEN.findall(sentence.lower())
    pos = neg = neu = 0
    hedged = False
    for i, tok in enumerate(tokens):
        negated = any(_is_negator(t) for t in tokens[max(0, i - NEGATION_WINDOW):i])
        if _starts(tok, HEDGE_WORDS):
            hedged = True
        if _starts(tok, NEGATIVE_WORDS):
            pos, neg = (pos + 1, neg) if negated else (pos, neg + 1)
        elif _starts(tok, POSITIVE_WORDS):
            pos, neg = (pos, neg + 1) if negated else (pos + 1, neg)
        elif _starts(tok, NEUTRAL_WORDS) and not negated:
            neu += 1
    if pos > neg:
        return "positive", hedged
    if neg > pos:
        return "negative", hedged
    if pos:  # a tie between polar words
        return "mixed", True
    return ("neutral", hedged) if neu else (None, hedged)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after . ! ? ; and their CJK forms, and at newlines), non-empty."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def conclusion_stance(reasoning: str) -> tuple[str | None, str]:
    """The stance of the reasoning's conclusion, and the sentence it was read from.

    The conclusion is the last sentence with a conclusion marker ("overall", "therefore", ...) among the
    last :data:`CONCLUSION_SENTENCES`, else the last sentence: a chain that ends on its visual cue has
    no conclusion, and reading that cue as one would drop chains for a cue that disagrees. A hedged
    polar stance ("leans slightly positive") is returned as ``"hedged-positive"``/``"hedged-negative"``.

    >>> conclusion_stance("The words are harsh. Overall, positive. The score is 0.4.")
    ('positive', 'Overall, positive.')
    >>> conclusion_stance("The words are kind. The face frowns. The score is 0.1.")   # no conclusion
    (None, 'The score is 0.1.')
    """
    sentences = split_sentences(reasoning)
    if not sentences:
        return None, ""
    tail = sentences[-CONCLUSION_SENTENCES:]
    marked = [s for s in tail if _CONCLUSION_RE.search(s)]
    sentence = marked[-1] if marked else tail[-1]
    stance, hedged = sentence_stance(sentence)
    if hedged and stance in ("positive", "negative"):
        stance = f"hedged-{stance}"
    return stance, sentence


def stance_contradicts(stance: str | None, tag: str) -> bool:
    """Whether a conclusion's stance contradicts the polarity tag.

    Polar tags are contradicted by the opposite polarity (hedged or not) and by a plain neutral
    conclusion; a neutral tag by an unhedged polar conclusion. No stance or a mixed one contradicts
    nothing.

    >>> stance_contradicts("negative", "positive"), stance_contradicts("hedged-positive", "neutral")
    (True, False)
    >>> stance_contradicts("neutral", "negative"), stance_contradicts(None, "negative")
    (True, False)
    """
    if stance is None or stance == "mixed":
        return False
    if tag == "neutral":
        return stance in ("positive", "negative")
    opposite = "negative" if tag == "positive" else "positive"
    return stance in (opposite, f"hedged-{opposite}", "neutral")


def missing_modalities(reasoning: str, modalities: Sequence[str]) -> list[str]:
    """The enabled modalities (``text``/``audio``/``video``) that the reasoning never mentions.

    >>> missing_modalities("The words are kind and the voice is warm.", ["text", "audio", "video"])
    ['video']
    """
    unknown = [m for m in modalities if m not in _MODALITY_RE]
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; known: {tuple(_MODALITY_RE)}")
    return [m for m in modalities if not _MODALITY_RE[m].search(reasoning)]


def check_plausibility(parsed: Parsed, modalities: Sequence[str], *, min_chars: int = 40,
                       max_chars: int = 4000) -> Verdict:
    """Structural plausibility of the reasoning (§III-A3): length, modalities, stance vs tag.

    >>> from msa.dc import parse_completion
    >>> p = parse_completion("<polarity>positive</polarity><think>The words are kind, the voice is warm and "
    ...                      "the face smiles. Overall the speaker sounds upset.</think><score>0.6</score>", "sims")
    >>> check_plausibility(p, ["text", "audio", "video"]).reason
    'plausibility:stance'
    """
    reasoning = (parsed.reasoning or "").strip()
    n = len(reasoning)
    if not min_chars <= n <= max_chars:
        return _fail("plausibility:length", f"{n} characters, want {min_chars}..{max_chars}")
    missing = missing_modalities(reasoning, modalities)
    if missing:
        names = ", ".join(MODALITY_NAMES[m] for m in missing)
        return _fail("plausibility:modality", f"no {names} cues discussed")
    stance, sentence = conclusion_stance(reasoning)
    if parsed.polarity is not None and stance_contradicts(stance, parsed.polarity):
        return _fail("plausibility:stance", f"tag {parsed.polarity}, conclusion reads {stance}: {sentence[:120]!r}")
    return PASS


# ----------------------------------------------------------------------------------------------
# All filters on one sample
# ----------------------------------------------------------------------------------------------

def evaluate(parsed: Parsed, *, true_polarity: str, dataset: str, modalities: Sequence[str],
             polarity: bool = True, plausibility: bool = True, min_chars: int = 40,
             max_chars: int = 4000) -> dict[str, Verdict]:
    """The verdicts of the cheap filters (format, polarity, plausibility) for one sample.

    All of them are computed even after a failure (the record keeps them for inspection); the first
    failing one in :data:`FILTERS` order is the drop reason (:func:`first_failure`). A malformed answer
    is not judged further: its later verdicts are failures with reason ``format``.
    """
    fmt = check_format(parsed)
    if not fmt.ok:
        return {"format": fmt, "polarity": fmt if polarity else SKIPPED,
                "plausibility": fmt if plausibility else SKIPPED}
    return {
        "format": fmt,
        "polarity": check_polarity(parsed, true_polarity, dataset) if polarity else SKIPPED,
        "plausibility": (check_plausibility(parsed, modalities, min_chars=min_chars, max_chars=max_chars)
                         if plausibility else SKIPPED),
    }


def first_failure(verdicts: dict[str, Verdict]) -> Verdict | None:
    """The first failing verdict in :data:`FILTERS` order, or None when all pass."""
    for name in FILTERS:
        v = verdicts.get(name)
        if v is not None and not v.ok:
            return v
    return None
