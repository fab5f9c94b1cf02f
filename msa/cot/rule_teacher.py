"""The rule teacher: DC chains written from a clip's unimodal labels, without a model (``teacher=rule``).

Each chain has one cue sentence per enabled modality (text, audio, visual), whose valence and strength
follow that modality's label (label_T/A/V, which CH-SIMS, CH-SIMS v2 and the demo sets carry), a
conclusion that weighs them, and the true score. Templates and words vary, drawn from an RNG seeded per
clip (:func:`msa.seeding.stable_seed`), so a resumed run writes what an uninterrupted one would.

``teacher.text_led=true`` makes it a teacher that over-reads transcripts: on a text-conflict clip (the
transcript's label against the clip's, :func:`msa.data.labels.is_text_conflict`) its chain concludes what
the words say, with the text label's polarity and the text label as its score, as a real teacher that
follows the words would. Every other chain is the same. The polarity-consistency filter then drops
exactly those chains (``polarity:tag``), so SFT never sees a clip on which the words mislead; the cot
stage counts them (``text_conflict`` in its summary).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from msa.data.labels import is_text_conflict
from msa.data.specs import get_spec
from msa.dc import format_answer, polarity_of
from msa.dc.parser import contains_tag
from msa.dc.prompt import MODALITIES
from msa.seeding import stable_seed

# Cue descriptions by sign of the unimodal label; each sentence names its modality in words the
# plausibility filter recognises (msa.cot.filters.MODALITY_KEYWORDS).
_DESC = {
    "text": {1: ("positive", "approving", "upbeat", "warm"), -1: ("negative", "critical", "unhappy", "bitter"),
             0: ("neutral", "matter-of-fact", "plain")},
    "audio": {1: ("cheerful", "bright", "energetic", "warm"), -1: ("tense", "heavy", "strained", "downcast"),
              0: ("level", "flat", "even")},
    "video": {1: ("pleased", "happy", "relaxed and positive"), -1: ("displeased", "unhappy", "tense and negative"),
              0: ("neutral", "composed", "blank")},
}
_ADVERB = {1: ("slightly", "mildly", "a little"), 2: ("moderately", "clearly", "noticeably"),
           3: ("very", "markedly", "distinctly")}
_PITCH = {1: "the pitch rises and the pace is lively", -1: "the pitch falls and the pace drags",
          0: "the pitch stays level"}
_FACE = {1: {1: "a faint smile", 2: "a smile", 3: "a broad smile"},
         -1: {1: "a slight frown", 2: "a frown", 3: "a deep frown and lowered brows"}}
_TEMPLATES = {
    "text": (
        "Text: the transcript is {adv} {desc}{quote}.",
        "The wording of the transcript reads as {adv} {desc}{quote}.",
        "In the text, the speaker's words are {adv} {desc}{quote}.",
    ),
    "audio": (
        "Audio: the tone of voice sounds {adv} {desc}, and {pitch}.",
        "The voice is {adv} {desc}; {pitch}.",
        "Acoustically, the speech comes across as {adv} {desc}: {pitch}.",
    ),
    "video": (
        "Visual: the facial expression looks {adv} {desc}{face}.",
        "In the video, the speaker's face appears {adv} {desc}{face}.",
        "Visually, the expression is {adv} {desc}{face}.",
    ),
}
_NEUTRAL_TEMPLATES = {
    "text": ("Text: the transcript is {desc}, with no clear sentiment in the wording{quote}.",
             "The wording of the transcript is {desc} and carries little sentiment{quote}."),
    "audio": ("Audio: the tone of voice is {desc}, and {pitch}.",
              "The voice sounds {desc}; {pitch}, without emotional emphasis."),
    "video": ("Visual: the facial expression is {desc}, without a smile or a frown.",
              "In the video, the speaker's face stays {desc}."),
}
_MOD_WORD = {"text": "textual", "audio": "vocal", "video": "visual"}


def strength(x: float, dataset: str) -> int:
    """0 (none), 1 (slight), 2 (moderate), 3 (strong) for a unimodal label on ``dataset``'s scale.

    The label is first put on [-1, 1] (MOSI-scale labels are divided by 3); a magnitude within the
    neutral band's half-width counts as none.

    >>> [strength(v, "demo") for v in (0.0, 0.1, 0.2, 0.4, 0.8)], strength(-2.4, "demo_mosi")
    ([0, 0, 1, 2, 3], 3)
    """
    spec = get_spec(dataset)
    a = abs(float(x)) / spec.score_max
    if a <= spec.neutral_high / spec.score_max:
        return 0
    return 1 if a < 0.35 else 2 if a < 0.7 else 3


def _sign(x: float, dataset: str) -> int:
    return 0 if strength(x, dataset) == 0 else (1 if x > 0 else -1)


def _quote(transcript: str | None, rng: random.Random) -> str:
    """A short quotation of the transcript (or nothing: sometimes, and when it could break the answer)."""
    if not transcript or contains_tag(transcript) or "<" in transcript or rng.random() < 0.3:
        return ""
    words = transcript.split()
    if len(words) > 12:
        snippet = " ".join(words[:12]) + " ..."
    elif len(words) == 1 and len(transcript) > 40:  # unsegmented (Chinese) text
        snippet = transcript[:40] + "..."
    else:
        snippet = transcript.strip()
    return f' ("{snippet}")'


def cue_sentence(modality: str, x: float, dataset: str, rng: random.Random, transcript: str | None = None,
                 quote: bool = True) -> str:
    """One sentence about ``modality``'s cue, whose valence and strength follow its unimodal label.

    ``quote=False`` never quotes the transcript: shorter chains with nothing to copy (the CPU demo)."""
    s, k = _sign(x, dataset), strength(x, dataset)
    desc = rng.choice(_DESC[modality][s])
    quote = _quote(transcript, rng) if modality == "text" and quote else ""
    if s == 0:
        return rng.choice(_NEUTRAL_TEMPLATES[modality]).format(desc=desc, quote=quote, pitch=_PITCH[0])
    face = f", with {_FACE[s][k]}" if modality == "video" and rng.random() < 0.7 else ""
    return rng.choice(_TEMPLATES[modality]).format(adv=rng.choice(_ADVERB[k]), desc=desc, quote=quote,
                                                   pitch=_PITCH[s], face=face)


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def conclusion_sentence(polarity: str, label: float, signs: Mapping[str, int], dataset: str,
                        rng: random.Random) -> str:
    """The weighing sentence: consistent with ``polarity`` and honest about dissenting cues."""
    if polarity == "neutral":
        if all(v == 0 for v in signs.values()):
            return rng.choice(("None of the cues carries a clear sentiment, so overall the sentiment is neutral.",
                               "Taken together, the cues are weak, and the overall sentiment is neutral."))
        if len({v for v in signs.values() if v}) > 1:
            return rng.choice(("The cues pull in opposite directions and roughly cancel out, so overall the "
                               "sentiment is neutral.",
                               "Weighing the cues against each other, they balance out: overall the sentiment "
                               "is neutral."))
        return rng.choice(("The cues lean one way only weakly, so overall the sentiment stays neutral.",
                           "Overall the signal is too weak to call, and the sentiment is neutral."))
    s = 1 if polarity == "positive" else -1
    k = strength(label, dataset)
    adv = {1: "slightly ", 2: "", 3: "clearly "}[max(k, 1)]
    agree = [_MOD_WORD[m] for m, v in signs.items() if v == s]
    dissent = [_MOD_WORD[m] for m, v in signs.items() if v == -s]
    if dissent and agree:
        return (f"The {_join(dissent)} cue{'s' if len(dissent) > 1 else ''} point{'' if len(dissent) > 1 else 's'} "
                f"the other way, but the {_join(agree)} cues outweigh {'them' if len(dissent) > 1 else 'it'}, "
                f"so overall the sentiment is {adv}{polarity}.")
    if dissent:
        many = len(dissent) > 1
        return (f"Although the {_join(dissent)} cue{'s point' if many else ' points'} the other way, overall the "
                f"sentiment is {adv}{polarity}.")
    if len(agree) > 1:
        return rng.choice((f"All cues point the same way, so overall the sentiment is {adv}{polarity}.",
                           f"Taken together, the {_join(agree)} cues agree: the overall sentiment is "
                           f"{adv}{polarity}."))
    return f"Overall the sentiment is {adv}{polarity}."


def rule_chain(row: Mapping[str, Any], dataset: str, modalities: Sequence[str], rng: random.Random,
               quote: bool = True, text_led: bool = False) -> str:
    """A DC answer for one clip from its labels: cue sentences (text, audio, visual), a conclusion,
    the true score. ``row`` needs ``label``, ``label_T/A/V`` and ``transcript``. ``text_led``: on a
    text-conflict clip the conclusion, the tag and the score follow ``label_T`` instead (the cue
    sentences still describe every cue as it is).

    >>> row = {"id": "v$_$1", "transcript": "great day", "label": 0.6, "label_T": 0.8, "label_A": 0.6,
    ...        "label_V": -0.2}
    >>> out = rule_chain(row, "demo", ["text", "audio", "video"], random.Random(0))
    >>> out.startswith("<polarity>positive</polarity><think>") and out.endswith("<score>0.6</score>")
    True
    >>> row["label_T"] = -0.4  # the words say negative, the clip is positive: the text-led chain says negative
    >>> led = rule_chain(row, "demo", ["text", "audio", "video"], random.Random(0), text_led=True)
    >>> led.startswith("<polarity>negative</polarity><think>") and led.endswith("<score>-0.4</score>")
    True
    """
    label = float(row["label"])
    if text_led and row.get("label_T") is not None and is_text_conflict(label, float(row["label_T"])):
        label = float(row["label_T"])  # the teacher believes the words
    polarity = polarity_of(label, dataset)
    unimodal = {"text": row.get("label_T"), "audio": row.get("label_A"), "video": row.get("label_V")}
    missing = [f"label_{m[0].upper()}" for m in modalities
               if unimodal[m] is None or (isinstance(unimodal[m], float) and math.isnan(unimodal[m]))]
    if missing:
        raise ValueError(f"{dataset}: clip {row.get('id')} has no {', '.join(missing)}; teacher=rule writes chains "
                         "from the unimodal labels, which only CH-SIMS, CH-SIMS v2 and the demo sets have "
                         "(use a model teacher, teacher=hf teacher.path=..., for MOSI/MOSEI)")
    ordered = [m for m in MODALITIES if m in modalities]
    sentences = [cue_sentence(m, float(unimodal[m]), dataset, rng, row.get("transcript"), quote) for m in ordered]
    signs = {m: _sign(float(unimodal[m]), dataset) for m in ordered}
    sentences.append(conclusion_sentence(polarity, label, signs, dataset, rng))
    return format_answer(polarity, " ".join(sentences), label, dataset)


class RuleTeacher:
    """DC chains from the unimodal labels (no model); ``num_samples`` variants per clip, seeded by id,
    so a resumed run writes what an uninterrupted one would."""

    needs_processor = False

    def __init__(self, dataset: str, modalities: Sequence[str], *, seed: int = 0, num_samples: int = 1,
                 quote_transcript: bool = True, text_led: bool = False):
        get_spec(dataset)
        self.quote_transcript = bool(quote_transcript)
        self.text_led = bool(text_led)
        self.dataset, self.modalities = dataset, tuple(modalities)
        self.seed, self.num_samples = int(seed), int(num_samples)
        self.name = "rule"

    def generate(self, batch: Mapping[str, Any]) -> list[list[str]]:
        out = []
        for i, clip_id in enumerate(batch["ids"]):
            row = {"id": clip_id, "transcript": batch["transcripts"][i], "label": _item(batch["label"][i]),
                   **{k: _item(batch[k][i]) for k in ("label_T", "label_A", "label_V")}}
            out.append([rule_chain(row, self.dataset, self.modalities, random.Random(stable_seed(self.seed, clip_id, k)),
                                   quote=self.quote_transcript, text_led=self.text_led)
                        for k in range(self.num_samples)])
        return out


def _item(x) -> float:
    return float(x.item()) if hasattr(x, "item") else float(x)
