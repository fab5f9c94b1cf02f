"""A small synthetic multimodal sentiment set in the MMSA on-disk layout (the ``demo`` datasets).

Run::

    python -m msa.data.synthetic <root> [--flavour mosi] [--n-clips N] [--seed S]

CH-SIMS and CMU-MOSI cannot be shipped, so the demo, the tests and the smoke runs read a set that
this module draws. It is laid out exactly like the real ones::

    <root>/label.csv                      video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode
    <root>/Raw/<video_id>/<clip_id>.mp4   H.264 video + AAC mono speech-like audio
    <root>/synthetic.json                 manifest, written last: the parameters and VERSION

Ids are SIMS-style: ``video_0001`` ... with :data:`CLIPS_PER_VIDEO` clips each, and zero-padded clip
ids ``0001`` (read label.csv with ``dtype=str`` for the ids, as MMSA does).

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
and movie-review transcripts. Dataset names in :mod:`msa.datasets`: ``demo`` and ``demo_mosi``.

Everything is a function of the seed: the same parameters give the same label.csv bytes and the same
decoded frames and audio (the encoders run single-threaded for that reason).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import av
import numpy as np

from msa.datasets import get_spec
from msa.dc.polarity import polarity_of

VERSION = 1  # bump when the drawn content changes, so ensure() regenerates old sets
WEIGHTS = (0.4, 0.3, 0.3)  # text, audio, visual; text leads as in MSA datasets, where it is the strongest modality
STEP = 0.2  # SIMS label grid: five annotators' -1/0/1 votes averaged
FLAVOURS = {"sims": "demo", "mosi": "demo_mosi"}  # flavour -> dataset name in msa.datasets
COLUMNS = ("video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode")
MODES = ("train", "valid", "test")
CLIPS_PER_VIDEO = 10
MANIFEST = "synthetic.json"
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_OWN_ENTRIES = {"label.csv", "Raw", MANIFEST}  # what a set holds; anything else in root is not ours to delete


# ----------------------------------------------------------------------------------------------
# Labels: the grid and how the three cues combine
# ----------------------------------------------------------------------------------------------

def snap(x: float, step: float = STEP) -> float:
    """``x`` rounded to the nearest multiple of ``step``; ties go away from zero.

    The division is rounded to 9 decimals first so that float noise (0.1/0.2 = 0.5000000000000001)
    cannot decide a tie.

    >>> snap(0.29), snap(0.3), snap(-0.3), snap(0.05), snap(1.7, 0.6)
    (0.2, 0.4, -0.4, 0.0, 1.8)
    """
    if not step > 0:
        raise ValueError(f"snap: step must be > 0, got {step}")
    if not math.isfinite(x):
        raise ValueError(f"snap: x must be finite, got {x}")
    q = round(x / step, 9)
    n = math.floor(abs(q) + 0.5) * (1 if q >= 0 else -1)
    return round(n * step, 10) + 0.0  # + 0.0 turns -0.0 into 0.0


def combine(label_T: float, label_A: float, label_V: float, step: float = STEP) -> float:
    """The overall label of a clip from its unimodal labels: ``snap(WEIGHTS . (T, A, V), step)``.

    >>> combine(1.0, 1.0, 1.0)
    1.0
    >>> combine(-0.6, 0.8, 0.8)  # -0.24 + 0.24 + 0.24 = 0.24 -> 0.2
    0.2
    """
    w_t, w_a, w_v = WEIGHTS
    return snap(w_t * label_T + w_a * label_A + w_v * label_V, step)


def _check_label(label: float, what: str) -> float:
    """A SIMS-scale label in [-1, 1]; anything else names the cue that got it."""
    x = float(label)
    if not (math.isfinite(x) and -1.0 <= x <= 1.0):
        raise ValueError(f"{what}: label must be in [-1, 1] (SIMS scale), got {label!r}")
    return x


# ----------------------------------------------------------------------------------------------
# Cue <-> label mappings (SIMS scale; the mosi flavour maps label/3 through the same functions)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Voice:
    """How a unimodal audio label sounds."""

    f0_hz: float  # mean pitch: higher when positive
    glide: float  # pitch change over the clip, in octaves: rising (+) for positive, falling (-) for negative
    tilt: float  # harmonic k has amplitude k**-tilt: smaller tilt = brighter timbre (positive)
    loudness: float  # peak amplitude: louder with stronger sentiment of either sign
    vibrato: float  # relative pitch wobble depth: livelier with stronger sentiment


def voice_params(label: float, base_hz: float = 200.0) -> Voice:
    """The voice that carries audio label ``label``.

    >>> voice_params(1.0)
    Voice(f0_hz=282.842712474619, glide=0.8, tilt=0.8, loudness=0.7, vibrato=0.04)
    >>> voice_params(0.0).glide, voice_params(-0.5).glide
    (0.0, -0.4)
    """
    x = _check_label(label, "voice_params")
    return Voice(f0_hz=base_hz * 2.0 ** (0.5 * x), glide=0.8 * x, tilt=1.5 - 0.7 * x,
                 loudness=0.2 + 0.5 * abs(x), vibrato=0.01 + 0.03 * abs(x))


def voice_label(voice: Voice) -> float:
    """The audio label a voice encodes (read from the glide, which the speaker's pitch does not touch)."""
    return snap(voice.glide / 0.8)


_WARM = (0.95, 0.55, 0.15)  # orange: positive
_COOL = (0.15, 0.35, 0.90)  # blue: negative
_GRAY = (0.5, 0.5, 0.5)  # neutral


@dataclass(frozen=True)
class Face:
    """How a unimodal visual label looks."""

    mouth_curve: float  # +1: corners well above the middle (smile); -1: frown
    brow_tilt: float  # slope of the brows: the inner ends drop (a scowl) when negative, else level
    brow_lift: float  # brows raised (in units of the face radius / 10) when positive
    background: tuple[float, float, float]  # RGB in [0, 1]: warm when positive, cool when negative


def face_params(label: float) -> Face:
    """The face that shows visual label ``label``.

    The background saturation grows as ``|label| ** 0.6`` so that even 0.2 (38 % of the way from gray
    to the hue) is visible at 56x56 after H.264.

    >>> face_params(0.0)
    Face(mouth_curve=0.0, brow_tilt=0.0, brow_lift=0.0, background=(0.5, 0.5, 0.5))
    >>> face_params(-1.0).background == _COOL, face_params(1.0).mouth_curve
    (True, 1.0)
    """
    x = _check_label(label, "face_params")
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
    x = _check_label(label, "transcript")
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


def _split_counts(n: int, splits: Sequence[float]) -> list[int]:
    """Clips per split by largest remainder, so they sum to ``n`` (ties: earlier split first)."""
    raw = [f * n for f in splits]
    counts = [math.floor(r + 1e-9) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda s: (-(raw[s] - counts[s]), s))
    for s in by_remainder[: n - sum(counts)]:
        counts[s] += 1
    return counts


def _interleave(counts: Sequence[int]) -> list[int]:
    """Split indices with the given counts, spread evenly (each prefix is close to the proportions).

    Greedy on the largest integer deficit ``count*(j+1) - assigned*n``; a split is only picked while
    it is below its quota, so the final counts are exact.
    """
    n = sum(counts)
    assigned = [0] * len(counts)
    out = []
    for j in range(n):
        s = max(range(len(counts)), key=lambda s: (counts[s] * (j + 1) - assigned[s] * n, -s))
        assigned[s] += 1
        out.append(s)
    return out


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


def plan(n_clips: int, *, flavour: str = "sims", seed: int = 0,
         splits: Sequence[float] = (0.7, 0.15, 0.15), disagree: float = 0.25) -> list[Clip]:
    """The rows of a set: ids, transcripts, unimodal and overall labels, and splits.

    Classes are exactly balanced (n // 3 each, the rest spread), ``round(disagree * n)`` clips get a
    dissenting modality (T, A, V in turn), and splits are stratified by class.
    """
    _check_flavour(flavour)
    code = _flavour_code(flavour)
    rng = np.random.default_rng([seed, code, 0])
    polarity = rng.permutation(np.arange(n_clips) % 3) - 1  # [N] in {-1, 0, 1}
    n_dis = math.floor(disagree * n_clips + 0.5)
    dissenter = np.full(n_clips, -1)
    dissenter[rng.permutation(n_clips)[:n_dis]] = np.arange(n_dis) % 3
    order = np.lexsort((rng.random(n_clips), polarity))  # grouped by class, shuffled within
    mode = np.empty(n_clips, dtype=int)
    mode[order] = _interleave(_split_counts(n_clips, splits))
    clips = []
    for i in range(n_clips):
        clip_rng = np.random.default_rng([seed, code, 1, i])
        units, overall = _draw_units(int(polarity[i]), int(dissenter[i]), clip_rng)
        clips.append(Clip(index=i, video_id=f"video_{i // CLIPS_PER_VIDEO + 1:04d}",
                          clip_id=f"{i % CLIPS_PER_VIDEO + 1:04d}",
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
# Media: speaker traits, audio, frames, mp4
# ----------------------------------------------------------------------------------------------

_SKINS = ((0.98, 0.85, 0.68), (0.92, 0.76, 0.58), (0.80, 0.62, 0.45), (0.66, 0.48, 0.34), (0.97, 0.88, 0.55))
_FACE_RIM, _EYE, _MOUTH, _HAIR = 0.55, (0.08, 0.08, 0.1), (0.45, 0.05, 0.08), (0.22, 0.13, 0.08)


@dataclass(frozen=True)
class Speaker:
    """Per-video nuisance traits: the same "person" in every clip of a video."""

    skin: tuple[float, float, float]
    pitch: float  # multiplies the voice's f0
    scale: float  # face size


@dataclass(frozen=True)
class Take:
    """Per-clip nuisance: where the face sits, how bright the shot is, the speaking rhythm."""

    dx: float  # face offset in pixels at size 64
    dy: float
    brightness: float
    phase: float  # motion phase
    syllable_rate: float  # Hz; drives both the audio envelope and the mouth opening
    syllable_phase: float


def _speaker(seed: int, code: int, video: int) -> Speaker:
    rng = np.random.default_rng([seed, code, 2, video])
    return Speaker(skin=_SKINS[rng.integers(len(_SKINS))], pitch=float(rng.uniform(0.87, 1.13)),
                    scale=float(rng.uniform(0.92, 1.08)))


def _take(rng: np.random.Generator) -> Take:
    return Take(dx=float(rng.uniform(-4, 4)), dy=float(rng.uniform(-3, 3)),
                 brightness=float(rng.uniform(0.88, 1.12)), phase=float(rng.uniform(0, 2 * np.pi)),
                 syllable_rate=float(rng.uniform(2.8, 4.2)), syllable_phase=float(rng.uniform(0, 2 * np.pi)))


def _syllables(t: np.ndarray, take: Take) -> np.ndarray:
    """Speech-like loudness envelope in [0, 1]: one bump per syllable, brief pauses between."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * take.syllable_rate * t + take.syllable_phase)) ** 1.5


def render_audio(voice: Voice, pitch: float, take: Take, rng: np.random.Generator,
                 seconds: float, sample_rate: int) -> np.ndarray:
    """Mono float32 waveform ``[round(seconds * sample_rate)]`` of the voice, with a little noise."""
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate  # [N]
    vib_phase = rng.uniform(0, 2 * np.pi)
    f0 = (voice.f0_hz * pitch * 2.0 ** (voice.glide * (t / seconds - 0.5))
          * (1 + voice.vibrato * np.sin(2 * np.pi * 5.5 * t + vib_phase)))  # [N] Hz
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    y = np.zeros(n)
    for k in range(1, 9):
        if k * f0.max() > 0.45 * sample_rate:  # no aliased harmonics at low sample rates
            break
        y += k ** -voice.tilt * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    y /= max(np.abs(y).max(), 1e-9)
    fade = np.clip(np.minimum(t, seconds - t) / 0.02, 0, 1)  # 20 ms fades: no clicks at the ends
    y = voice.loudness * _syllables(t, take) * fade * y + rng.normal(0, 0.01, n)
    return y.astype(np.float32)


def _blend(img: np.ndarray, color, alpha: np.ndarray) -> np.ndarray:
    """Paint ``color`` over ``img`` [F, H, W, 3] with coverage ``alpha`` [F, H, W], in place."""
    img -= alpha[..., None] * (img - np.asarray(color, dtype=img.dtype))  # = img*(1-a) + color*a
    return img


def render_frames(face: Face, speaker: Speaker, take: Take, flavour: str, n_frames: int,
                  size: int, fps: int) -> np.ndarray:
    """RGB frames ``[n_frames, size, size, 3]`` uint8 of the face; soft-edged so cues survive 56x56."""
    u = size / 64.0  # geometry is designed at 64 px
    t = np.arange(n_frames) / fps  # [F]
    # float32 throughout (coordinates too, or the masks promote to float64): drawing is most of the time
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5).astype(np.float32)  # [H, W] pixel centres
    yy, xx = yy[None], xx[None]  # [1, H, W]
    # Gentle head motion so consecutive frames differ, as in a real talking-head clip.
    cx = (size / 2 + take.dx * u + 2.0 * u * np.sin(2 * np.pi * 0.4 * t + take.phase))[:, None, None]  # [F,1,1]
    cy = (size / 2 + take.dy * u + 1.2 * u * np.sin(2 * np.pi * 0.7 * t + 2 * take.phase))[:, None, None]
    cx, cy = cx.astype(np.float32), cy.astype(np.float32)
    radius = 19.0 * u * speaker.scale

    if flavour == "sims":  # soft vertical gradient
        shade = np.broadcast_to(1 + 0.16 * (0.5 - yy / size), (n_frames, size, size))
    else:  # diagonal stripes drifting across the frames
        shade = 1 + 0.10 * np.sin(2 * np.pi * (xx + yy + 6 * u * t[:, None, None].astype(np.float32)) / (10 * u))
    img = (np.asarray(face.background, dtype=np.float32) * shade[..., None]).astype(np.float32)  # [F, H, W, 3]

    if flavour == "sims":  # round face
        dist = np.hypot(xx - cx, yy - cy) - radius  # [F, H, W] signed distance, px
        top = cy - radius
    else:  # taller oval face with hair
        rx, ry = 0.85 * radius, 1.1 * radius
        dist = (np.hypot((xx - cx) / rx, (yy - cy) / ry) - 1) * rx
        top = cy - ry
    inside = np.clip(0.5 - dist, 0, 1)
    img = _blend(img, speaker.skin, inside)
    img = _blend(img, tuple(c * _FACE_RIM for c in speaker.skin), np.clip(1.2 - np.abs(dist) / u, 0, 1))
    if flavour == "mosi":
        hairline = top + 0.4 * (cy - top)
        img = _blend(img, _HAIR, inside * np.clip(0.5 - (yy - hairline), 0, 1))

    eye_y = cy - 0.22 * radius
    for side in (-1, 1):
        ex = cx + side * 0.38 * radius
        img = _blend(img, _EYE, np.clip(0.5 - (np.hypot(xx - ex, yy - eye_y) - 2.3 * u), 0, 1))
        # Brow: y = by + tilt * side * (x - ex); negative tilt lowers the inner ends (frown).
        by = cy - (0.45 + 0.1 * face.brow_lift) * radius
        line = np.abs(yy - by - face.brow_tilt * side * (xx - ex)) / np.hypot(1, face.brow_tilt)
        along = np.clip(0.5 - (np.abs(xx - ex) - 0.22 * radius), 0, 1)
        img = _blend(img, _EYE, np.clip(0.5 - (line - 0.9 * u), 0, 1) * along)

    # Mouth: a parabola whose corners sit mouth_curve * depth/2 above (smile) or below the middle,
    # opening with the syllables of the audio track.
    half_w, depth = 0.45 * radius, 0.4 * radius
    mouth_y = cy + 0.42 * radius
    curve = mouth_y - face.mouth_curve * depth * (((xx - cx) / half_w) ** 2 - 0.5)  # [F, H, W]
    opening = (1.8 * u * _syllables(t, take))[:, None, None].astype(np.float32)  # [F, 1, 1]
    thick = 2.0 * u
    band = np.abs(yy - curve - opening / 2) - (thick + opening) / 2
    across = np.clip(0.5 - (np.abs(xx - cx) - half_w), 0, 1)
    img = _blend(img, _MOUTH, np.clip(0.5 - band, 0, 1) * across)

    img = np.clip(img * take.brightness, 0, 1)
    return np.rint(img * 255).astype(np.uint8)


def write_mp4(path: Path, frames: np.ndarray, audio: np.ndarray, fps: int, sample_rate: int) -> None:
    """An mp4 with H.264 video (yuv420p, one keyframe a second, no B-frames) and AAC mono audio.

    Single-threaded x264 keeps the output a function of the input; short GOPs without B-frames
    keep seeking and decoding cheap.
    """
    _, height, width, _ = frames.shape
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps, options={
            "preset": "veryfast", "crf": "18", "g": str(fps), "bf": "0", "threads": "1"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=sample_rate, layout="mono")
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            container.mux(video.encode(vf))
        container.mux(video.encode())
        chunk = 1024  # the AAC frame size
        for start in range(0, len(audio), chunk):
            af = av.AudioFrame.from_ndarray(audio[None, start:start + chunk], format="fltp", layout="mono")
            af.sample_rate, af.pts = sample_rate, start
            container.mux(sound.encode(af))
        container.mux(sound.encode())


# ----------------------------------------------------------------------------------------------
# Writing a set; ensure() with its manifest
# ----------------------------------------------------------------------------------------------

def _params(flavour: str, n_clips: int, seed: int, seconds: float, size: int, fps: int,
            sample_rate: int, splits: Sequence[float], disagree: float) -> dict:
    """Validated generation parameters as a JSON-ready dict (also what the manifest stores)."""
    _check_flavour(flavour)

    def _int(name, value, low):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        return int(value)

    n_clips, seed, fps = _int("n_clips", n_clips, 1), _int("seed", seed, 0), _int("fps", fps, 1)
    size = _int("size", size, 32)
    if size % 2:
        raise ValueError(f"size must be even (yuv420p), got {size}")
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 0 < seconds <= 60):
        raise ValueError(f"seconds must be in (0, 60], got {seconds!r}")
    if sample_rate not in AAC_RATES:
        raise ValueError(f"sample_rate must be one of {AAC_RATES} (AAC), got {sample_rate!r}")
    splits = [float(f) for f in splits]
    if len(splits) != 3 or min(splits) < 0 or abs(sum(splits) - 1) > 1e-6:
        raise ValueError(f"splits must be three fractions >= 0 for train/valid/test summing to 1, got {splits}")
    if not 0 <= disagree <= 1:
        raise ValueError(f"disagree must be in [0, 1], got {disagree!r}")
    return dict(flavour=flavour, n_clips=n_clips, seed=seed, seconds=float(seconds), size=size, fps=fps,
                sample_rate=int(sample_rate), splits=splits, disagree=float(disagree))


def _write_set(out: Path, params: dict) -> None:
    """Every file of a set under ``out``; the manifest goes last, so its presence means complete."""
    flavour, seed = params["flavour"], params["seed"]
    code = _flavour_code(flavour)
    scale = get_spec(FLAVOURS[flavour]).score_max
    base_hz = 200.0 if flavour == "sims" else 140.0
    n_frames = max(1, round(params["seconds"] * params["fps"]))
    clips = plan(params["n_clips"], flavour=flavour, seed=seed, splits=params["splits"],
                 disagree=params["disagree"])
    speakers: dict[str, Speaker] = {}
    for clip in clips:
        if clip.video_id not in speakers:
            speakers[clip.video_id] = _speaker(seed, code, clip.index // CLIPS_PER_VIDEO)
        speaker = speakers[clip.video_id]
        rng = np.random.default_rng([seed, code, 3, clip.index])
        take = _take(rng)
        audio = render_audio(voice_params(clip.units_A * STEP, base_hz), speaker.pitch, take, rng,
                             params["seconds"], params["sample_rate"])
        frames = render_frames(face_params(clip.units_V * STEP), speaker, take, flavour, n_frames,
                               params["size"], params["fps"])
        folder = out / "Raw" / clip.video_id
        folder.mkdir(parents=True, exist_ok=True)
        write_mp4(folder / f"{clip.clip_id}.mp4", frames, audio, params["fps"], params["sample_rate"])

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(label_rows(clips, flavour))
    (out / "label.csv").write_text(buf.getvalue(), encoding="utf-8")
    manifest = dict(version=VERSION, dataset=FLAVOURS[flavour], weights=list(WEIGHTS), scale=scale,
                    params=params)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _manifest_matches(root: Path, params: dict) -> bool:
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (manifest.get("version") == VERSION and manifest.get("params") == json.loads(json.dumps(params))
            and (root / "label.csv").is_file())


def _check_replaceable(root: Path) -> None:
    """Refuse to delete a folder that holds anything but a (possibly half-written) synthetic set."""
    if not root.exists():
        return
    if not root.is_dir():
        raise FileExistsError(f"synthetic set root {root} exists and is not a folder")
    foreign = sorted(p.name for p in root.iterdir() if p.name not in _OWN_ENTRIES)
    if foreign:
        raise FileExistsError(f"synthetic set root {root} holds files that are not part of a synthetic set "
                              f"({', '.join(foreign[:5])}); refusing to replace it")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` so that concurrent ensure() calls (DDP ranks) generate once."""
    try:
        import fcntl
    except ImportError:  # no flock on this platform: callers must not race
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _generate_locked(root: Path, params: dict) -> None:
    _check_replaceable(root)
    parent = root.parent
    for stale in [*parent.glob(f".{root.name}.tmp-*"), *parent.glob(f".{root.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)  # left by a crashed run (we hold the lock)
    tmp = parent / f".{root.name}.tmp-{os.getpid()}"
    try:
        _write_set(tmp, params)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if root.exists():
        old = parent / f".{root.name}.old-{os.getpid()}"
        root.rename(old)
        tmp.rename(root)
        shutil.rmtree(old)
    else:
        tmp.rename(root)


def generate(root: str | os.PathLike, *, flavour: str = "sims", n_clips: int = 300, seed: int = 0,
             seconds: float = 2.0, size: int = 64, fps: int = 10, sample_rate: int = 16000,
             splits: Sequence[float] = (0.7, 0.15, 0.15), disagree: float = 0.25) -> Path:
    """Write a fresh set at ``root``, replacing an older synthetic set there.

    The set is written into a hidden sibling folder and renamed into place, so an interrupted run never
    leaves a folder that looks complete. A ``root`` holding other files is an error, not deleted.
    """
    params = _params(flavour, n_clips, seed, seconds, size, fps, sample_rate, splits, disagree)
    root = Path(root)
    root.absolute().parent.mkdir(parents=True, exist_ok=True)
    with _locked(root.absolute().parent):
        _generate_locked(root.absolute(), params)
    return root


def ensure(root: str | os.PathLike, *, flavour: str = "sims", n_clips: int = 300, seed: int = 0,
           seconds: float = 2.0, size: int = 64, fps: int = 10, sample_rate: int = 16000,
           splits: Sequence[float] = (0.7, 0.15, 0.15), disagree: float = 0.25) -> Path:
    """The set at ``root`` with these parameters: reused if its manifest matches, generated otherwise."""
    params = _params(flavour, n_clips, seed, seconds, size, fps, sample_rate, splits, disagree)
    root = Path(root)
    if _manifest_matches(root, params):  # the common case, without touching the lock
        return root
    root.absolute().parent.mkdir(parents=True, exist_ok=True)
    with _locked(root.absolute().parent):
        if not _manifest_matches(root, params):  # another process may have finished it meanwhile
            _generate_locked(root.absolute(), params)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msa.data.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("root", help="folder to write (label.csv, Raw/, synthetic.json)")
    parser.add_argument("--flavour", choices=sorted(FLAVOURS), default="sims",
                        help="sims: labels in [-1, 1] (dataset 'demo'); mosi: x3 in [-3, 3] ('demo_mosi')")
    parser.add_argument("--n-clips", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--force", action="store_true", help="regenerate even if a matching set exists")
    args = parser.parse_args(argv)
    kwargs = dict(flavour=args.flavour, n_clips=args.n_clips, seed=args.seed, seconds=args.seconds,
                  size=args.size, fps=args.fps, sample_rate=args.sample_rate)
    start = time.perf_counter()
    path = (generate if args.force else ensure)(args.root, **kwargs)
    print(f"{path}: {args.n_clips} clips, flavour {args.flavour} ({FLAVOURS[args.flavour]}), "
          f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
