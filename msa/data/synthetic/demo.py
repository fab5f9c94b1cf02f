"""The ``demo`` family (datasets ``demo`` and ``demo_mosi``): the plan of its clips and their cues.

Every clip carries three cues, each with its own unimodal label on the SIMS grid {-1.0, -0.8, ..., 1.0}:

* text: the transcript's sentiment phrase, graded in strength (:func:`transcript`, :func:`text_label`);
* audio: a harmonic "voice" whose pitch glides up (positive) or down (negative), brighter and higher
  when positive, louder with stronger sentiment (:func:`voice_params`, :func:`voice_label`);
* visual: a drawn face whose mouth curves up (smile) or down (frown), with scowling or raised brows, in front of
  a warm (positive), gray (neutral) or cool (negative) background (:func:`face_params`, :func:`face_label`).

The overall label is ``snap(0.4*T + 0.3*A + 0.3*V)`` (:data:`WEIGHTS`, :func:`combine`). A fraction
``disagree`` (default 25 %) of the clips has one modality that contradicts the others in sign, spread
evenly over text, audio and visual, so no single modality predicts the label; the sign of the
majority of the three cues always does. The three polarity classes are balanced.

The ``mosi`` flavour is the same design on the MOSI scale (every label x3, so on a 0.6 grid in
[-3, 3]) with a different look: an oval face with hair over moving diagonal stripes, a lower voice
and movie-review transcripts.

This family is easy on purpose (the CPU demo learns it in minutes): the background colour follows
``label_V``, the phrase is a lookup of ``label_T`` and the label is a noise-free function of the cues.
:mod:`msa.data.synthetic.hard` is the family without those shortcuts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from msa.data.synthetic.grid import (CLIPS_PER_VIDEO, COLUMNS, MODES, STEP, check_label, clip_ids, interleave, snap,
                                     split_counts)
from msa.data.synthetic.render import (Face, Voice, draw_speaker, draw_take, render_audio,
                                       render_frames)
from msa.data.specs import get_spec
from msa.dc.polarity import polarity_of

VERSION = 1  # bump when the drawn content changes, so ensure() regenerates old sets
WEIGHTS = (0.4, 0.3, 0.3)  # text, audio, visual; text leads as in MSA datasets, where it is the strongest modality
FLAVOURS = {"sims": "demo", "mosi": "demo_mosi"}  # flavour -> dataset name in msa.data.specs
DEFAULT_SPLITS = (0.7, 0.15, 0.15)


def combine(label_T: float, label_A: float, label_V: float, step: float = STEP) -> float:
    """The overall label of a clip from its unimodal labels: ``snap(WEIGHTS . (T, A, V), step)``.

    >>> combine(1.0, 1.0, 1.0)
    1.0
    >>> combine(-0.6, 0.8, 0.8)  # -0.24 + 0.24 + 0.24 = 0.24 -> 0.2
    0.2
    """
    w_t, w_a, w_v = WEIGHTS
    return snap(w_t * label_T + w_a * label_A + w_v * label_V, step)


# ----------------------------------------------------------------------------------------------
# Cue <-> label mappings (SIMS scale; the mosi flavour maps label/3 through the same functions)
# ----------------------------------------------------------------------------------------------

def voice_params(label: float, base_hz: float = 200.0) -> Voice:
    """The voice that carries audio label ``label``.

    >>> voice_params(1.0)
    Voice(f0_hz=282.842712474619, glide=0.8, tilt=0.8, loudness=0.7, vibrato=0.04)
    >>> voice_params(0.0).glide, voice_params(-0.5).glide
    (0.0, -0.4)
    """
    x = check_label(label, "voice_params")
    return Voice(f0_hz=base_hz * 2.0 ** (0.5 * x), glide=0.8 * x, tilt=1.5 - 0.7 * x,
                 loudness=0.2 + 0.5 * abs(x), vibrato=0.01 + 0.03 * abs(x))


def voice_label(voice: Voice) -> float:
    """The audio label a voice encodes (read from the glide, which the speaker's pitch does not touch)."""
    return snap(voice.glide / 0.8)



_WARM = (0.95, 0.55, 0.15)  # orange: positive
_COOL = (0.15, 0.35, 0.90)  # blue: negative
_GRAY = (0.5, 0.5, 0.5)  # neutral

def face_params(label: float) -> Face:
    """The face that shows visual label ``label``.

    The background saturation grows as ``|label| ** 0.6`` so that even 0.2 (38 % of the way from gray
    to the hue) is visible at 56x56 after H.264.

    >>> face_params(0.0)
    Face(mouth_curve=0.0, brow_tilt=0.0, brow_lift=0.0, background=(0.5, 0.5, 0.5))
    >>> face_params(-1.0).background == _COOL, face_params(1.0).mouth_curve
    (True, 1.0)
    """
    x = check_label(label, "face_params")
    target = _WARM if x > 0 else _COOL
    sat = abs(x) ** 0.6
    background = tuple(round(g + sat * (t - g), 6) for g, t in zip(_GRAY, target))
    return Face(mouth_curve=x, brow_tilt=0.5 * min(x, 0.0), brow_lift=max(x, 0.0), background=background)


def face_label(face: Face) -> float:
    """The visual label a face encodes (read from the mouth)."""
    return snap(face.mouth_curve)


# Sentiment phrases by strength level (level = |label| / 0.2). The phrases are distinct as whole-word
# matches once longer ones are tried first ("not bad" before "bad"), which text_label relies on.
_POSITIVE = {
    5: ("absolutely wonderful", "fantastic", "amazing", "truly outstanding"),
    4: ("great", "excellent", "really lovely", "delightful"),
    3: ("good", "enjoyable", "pleasant", "nice"),
    2: ("fairly good", "pretty decent", "quite nice", "rather pleasant"),
    1: ("not bad", "slightly better than expected", "mildly pleasant", "a little nice"),
}
_NEGATIVE = {
    5: ("absolutely terrible", "awful", "horrible", "a complete disaster"),
    4: ("really bad", "very disappointing", "miserable", "dreadful"),
    3: ("bad", "disappointing", "unpleasant", "annoying"),
    2: ("fairly poor", "rather dull", "somewhat annoying", "a bit disappointing"),
    1: ("not great", "slightly off", "a little dull", "mildly annoying"),
}
_NEUTRAL = ("ordinary", "average", "about what I expected", "neither good nor bad", "the usual")

_LEXICON: dict[str, int] = {p: 0 for p in _NEUTRAL}
_LEXICON.update({p: lvl for lvl, ps in _POSITIVE.items() for p in ps})
_LEXICON.update({p: -lvl for lvl, ps in _NEGATIVE.items() for p in ps})
_LEXICON_ORDER = sorted(_LEXICON, key=lambda p: (-len(p), p))
_LEXICON_RE = [(re.compile(r"\b" + re.escape(p.lower()) + r"\b"), _LEXICON[p]) for p in _LEXICON_ORDER]

_FILLERS = ("", "Um, ", "So, ", "Well, ", "Uh, ", "You know, ", "Hmm, ")
_TEMPLATES = {
    # Everyday scenes (CH-SIMS clips are from films and TV series; here in English).
    "sims": ("{filler}I think {topic} was {adj}{tail}",
             "{filler}honestly, {topic} is {adj}{tail}",
             "{filler}{topic} turned out {adj}{tail}",
             "{filler}to me {topic} felt {adj} today{tail}",
             "{filler}I have to say {topic} seemed {adj}{tail}",
             "{filler}my friend said {topic} was {adj}, and I agree{tail}"),
    # Spoken movie reviews, as in CMU-MOSI.
    "mosi": ("{filler}the movie was {adj}{tail}",
             "{filler}I found the {topic} {adj}{tail}",
             "{filler}overall the film is {adj}{tail}",
             "{filler}in my opinion the {topic} was {adj}{tail}",
             "{filler}I thought the {topic} was {adj}{tail}",
             "{filler}watching it, the {topic} felt {adj}{tail}"),
}
_TOPICS = {
    "sims": ("the dinner", "this apartment", "my new job", "the weather", "the trip", "the meeting",
             "our neighbours", "the train ride", "the party", "the weekend", "the exam", "this city"),
    "mosi": ("acting", "plot", "soundtrack", "ending", "dialogue", "special effects", "cinematography",
             "pacing", "main character", "script", "cast", "story"),
}
_TAILS = (".", ", to be honest.", ", really.", ".", " overall.")


def transcript(label: float, rng: np.random.Generator, flavour: str = "sims") -> str:
    """A one-sentence transcript whose wording carries text label ``label`` (SIMS scale)."""
    x = check_label(label, "transcript")
    _check_flavour(flavour)
    level = round(abs(x) / STEP)
    if level == 0:
        phrases = _NEUTRAL
    else:
        phrases = (_POSITIVE if x > 0 else _NEGATIVE)[level]
    template = _TEMPLATES[flavour][rng.integers(len(_TEMPLATES[flavour]))]
    tail = "!" if level >= 4 and rng.random() < 0.5 else _TAILS[rng.integers(len(_TAILS))]
    text = template.format(filler=_FILLERS[rng.integers(len(_FILLERS))],
                           topic=_TOPICS[flavour][rng.integers(len(_TOPICS[flavour]))],
                           adj=phrases[rng.integers(len(phrases))], tail=tail)
    return text[0].upper() + text[1:]


def text_label(text: str) -> float:
    """The text label a transcript encodes (SIMS scale), from its sentiment phrase.

    >>> text_label("Um, the movie was not bad."), text_label("I think the trip was really bad!")
    (0.2, -0.8)
    """
    lower = text.lower()
    for pattern, level in _LEXICON_RE:
        if pattern.search(lower):
            return snap(level * STEP)
    raise ValueError(f"text_label: no sentiment phrase in transcript {text!r}")


# ----------------------------------------------------------------------------------------------
# The label plan: which clip gets which labels, text and split (pure, no media)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """One row of label.csv. Labels are in grid units (label = units * step of the flavour)."""

    index: int
    video_id: str
    clip_id: str
    text: str
    units: int  # overall label / step
    units_T: int
    units_A: int
    units_V: int
    mode: str


def _check_flavour(flavour: str) -> None:
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {sorted(FLAVOURS)}, got {flavour!r}")


def _flavour_code(flavour: str) -> int:
    # Part of every seed, so demo and demo_mosi are not the same plan rescaled.
    return sorted(FLAVOURS).index(flavour)


def _draw_units(polarity: int, dissenter: int, rng: np.random.Generator) -> tuple[list[int], int]:
    """Unimodal units (T, A, V) and the overall units for one clip of the given polarity class.

    Agreeing cues share a base strength (1..5) with +-1 jitter. A dissenting cue takes the opposite
    sign with strength 1..3 (or +-1 around neutral); draws whose combined label would leave the
    class are redrawn, so the majority sign is always the label's sign.
    """
    for _ in range(1000):
        if polarity == 0:
            units = [0, 0, 0]
            if dissenter >= 0:
                units[dissenter] = int(rng.choice([-1, 1]))  # 0.4 * 0.2 snaps back to 0
        else:
            base = int(rng.integers(1, 6))
            units = [polarity * int(np.clip(base + rng.integers(-1, 2), 1, 5)) for _ in range(3)]
            if dissenter >= 0:
                units[dissenter] = -polarity * int(rng.integers(1, 4))
        overall = round(combine(*(u * STEP for u in units)) / STEP)
        if np.sign(overall) == polarity:
            return units, overall
    raise RuntimeError(f"could not draw cues for polarity {polarity} with dissenter {dissenter}")


def _add_text_conflict(dissenter: np.ndarray, polarity: np.ndarray, share: float, seed: int, code: int) -> np.ndarray:
    """``dissenter`` with the text made the dissenting cue of more polar clips, so that exactly
    ``round(share * n)`` clips are text-conflict clips (polar, text against the label). The clips are
    chosen from the polar clips without a dissenter, on a stream of their own (the rest of the plan
    is drawn as without ``text_conflict``)."""
    n = len(dissenter)
    want = math.floor(share * n + 0.5)
    have = int(((dissenter == 0) & (polarity != 0)).sum())
    free = np.flatnonzero((dissenter < 0) & (polarity != 0))
    if want < have:
        raise ValueError(f"text_conflict={share} asks for {want} text-conflict clips, but disagree already gives "
                         f"{have} of {n}: raise text_conflict or lower disagree")
    if want - have > len(free):
        raise ValueError(f"text_conflict={share} asks for {want} text-conflict clips of {n}; at most "
                         f"{have + len(free)} polar clips can take one (lower text_conflict or disagree)")
    out = dissenter.copy()
    out[np.random.default_rng([seed, code, 2]).permutation(free)[:want - have]] = 0
    return out


def plan(n_clips: int, *, flavour: str = "sims", seed: int = 0,
         splits: Sequence[float] = (0.7, 0.15, 0.15), disagree: float = 0.25,
         text_conflict: float | None = None) -> list[Clip]:
    """The rows of a set: ids, transcripts, unimodal and overall labels, and splits.

    Classes are exactly balanced (n // 3 each, the rest spread), ``round(disagree * n)`` clips get a
    dissenting modality (T, A, V in turn), and splits are stratified by class.

    ``text_conflict`` (the ``study`` set): the share of all clips that are text-conflict clips
    (:func:`msa.data.labels.is_text_conflict`), reached by making the text the dissenter of more polar clips; splits
    are then stratified by class and text conflict, so every split has the same share. ``None``
    leaves the plan exactly as ``disagree`` draws it (the demo set).
    """
    _check_flavour(flavour)
    code = _flavour_code(flavour)
    rng = np.random.default_rng([seed, code, 0])
    polarity = rng.permutation(np.arange(n_clips) % 3) - 1  # [N] in {-1, 0, 1}
    n_dis = math.floor(disagree * n_clips + 0.5)
    dissenter = np.full(n_clips, -1)
    dissenter[rng.permutation(n_clips)[:n_dis]] = np.arange(n_dis) % 3
    tie = rng.random(n_clips)
    group = polarity
    if text_conflict is not None:
        dissenter = _add_text_conflict(dissenter, polarity, text_conflict, seed, code)
        group = 2 * polarity + ((dissenter == 0) & (polarity != 0))
    order = np.lexsort((tie, group))  # grouped by class (and text conflict), shuffled within
    mode = np.empty(n_clips, dtype=int)
    mode[order] = interleave(split_counts(n_clips, splits))
    clips = []
    for i in range(n_clips):
        clip_rng = np.random.default_rng([seed, code, 1, i])
        units, overall = _draw_units(int(polarity[i]), int(dissenter[i]), clip_rng)
        video_id, clip_id = clip_ids(i)
        clips.append(Clip(index=i, video_id=video_id, clip_id=clip_id,
                          text=transcript(units[0] * STEP, clip_rng, flavour),
                          units=overall, units_T=units[0], units_A=units[1], units_V=units[2],
                          mode=MODES[mode[i]]))
    return clips


def _fmt(units: int, step: float) -> str:
    return f"{round(units * step, 6) + 0.0:.1f}"


def label_rows(clips: Sequence[Clip], flavour: str) -> list[dict[str, str]]:
    """label.csv rows (strings) for ``clips`` on the flavour's scale."""
    dataset = FLAVOURS[flavour]
    step = STEP * get_spec(dataset).score_max  # 0.2 (SIMS) or 0.6 (MOSI)
    rows = []
    for c in clips:
        label = _fmt(c.units, step)
        rows.append(dict(video_id=c.video_id, clip_id=c.clip_id, text=c.text, label=label,
                         label_T=_fmt(c.units_T, step), label_A=_fmt(c.units_A, step),
                         label_V=_fmt(c.units_V, step),
                         annotation=polarity_of(float(label), dataset).capitalize(), mode=c.mode))
    return rows


# ----------------------------------------------------------------------------------------------


def render_clip(clip: Clip, params: dict) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(frames [F, H, W, 3] uint8, mono audio [N] float32, fps, sample rate) of a planned clip."""
    flavour, seed = params["flavour"], params["seed"]
    code = _flavour_code(flavour)
    base_hz = 200.0 if flavour == "sims" else 140.0
    n_frames = max(1, round(params["seconds"] * params["fps"]))
    speaker = draw_speaker(seed, code, clip.index // CLIPS_PER_VIDEO)
    rng = np.random.default_rng([seed, code, 3, clip.index])
    take = draw_take(rng)
    audio = render_audio(voice_params(clip.units_A * STEP, base_hz), speaker.pitch, take, rng,
                         params["seconds"], params["sample_rate"])
    frames = render_frames(face_params(clip.units_V * STEP), speaker, take, flavour, n_frames,
                           params["size"], params["fps"])
    return frames, audio, params["fps"], params["sample_rate"]
