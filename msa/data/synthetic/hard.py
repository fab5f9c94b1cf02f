"""The ``hard`` family (datasets ``hard`` and ``hard_mosi``): the plan of its clips and their cues.

The demo family (:mod:`.demo`) can be read without looking at anyone: the background colour follows
``label_V``, the phrase is a lookup of ``label_T`` and the label is a noise-free function of the
cues. This family is hard the way real sentiment data is hard:

* **cues only where a person would look.** The face: the mouth curves into a smile or a frown and the
  brows lift or scowl (:func:`face_for`). The voice: the pitch contour rises or falls, the speaking
  rate and the energy go up or down (:func:`voice_for`). The words: an adjective from a lexicon,
  shifted by intensifiers and downtoners and flipped by negation ("not bad" is mildly positive,
  "not very good" mildly negative; :func:`phrase_value`). The background, skin, face size, voice
  pitch and loudness of a speaker, the shot's brightness and framing, and every file property
  (duration, frame rate, resolution, sample rate, channels) are drawn from random streams that never
  see a label.
* **labels like real annotations.** Each annotator perceives the clip's sentiment with their own bias
  and noise and votes on their scale: five votes in {-1, 0, 1} averaged (SIMS-like, a 0.2 grid in
  [-1, 1]) or three to five votes in {-3, ..., 3} averaged (MOSI-like: thirds, quarters and fifths in
  [-3, 3]) (:func:`votes_label`). ``label_T/A/V`` are votes on each cue alone, as in CH-SIMS.
* **conflict clips.** A share ``conflict`` (default 25 %) of the clips say one thing in words and the
  other in voice and face, like sarcasm; annotators go with the voice and face, so a text-only reading
  is wrong there. Such rows have ``conflict=1`` in label.csv.
* **real-world media.** Durations 1-10 s (skewed to short, mean 4 s), 25 or 30 fps, three frame sizes
  (64x64, 80x60, 128x72), audio at 16, 44.1 or 48 kHz, mono or stereo.

The three polarity classes are planned at 40 / 20 / 40 % (negative / neutral / positive); votes then
move some clips across the edges, as real annotation does. Splits are stratified by planned class and
conflict, so every split has the same conflict share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from msa.data.synthetic.grid import COLUMNS as BASE_COLUMNS
from msa.data.synthetic.grid import CLIPS_PER_VIDEO, MODES, check_label, clip_ids, interleave, snap, split_counts
from msa.data.synthetic.render import Face, Speaker, Take, Voice, render_audio, render_frames
from msa.data.specs import get_spec
from msa.dc.polarity import polarity_of

VERSION = 1  # bump when the drawn content changes, so ensure() regenerates old sets
FLAVOURS = {"sims": "hard", "mosi": "hard_mosi"}  # flavour -> dataset name in msa.data.specs
COLUMNS = (*BASE_COLUMNS, "conflict")
DEFAULT_SPLITS = (0.3, 0.1, 0.6)  # a large test split, so the conflict subset can be read (see README)
CLASS_SHARES = (0.4, 0.2, 0.4)  # planned negative / neutral / positive
WEIGHTS = (0.5, 0.25, 0.25)  # text, voice, face: how annotators weigh cues that do not conflict
SIZES = ((64, 64), (60, 80), (72, 128))  # (height, width): square, 4:3, 16:9
FPS = (25, 30)
SAMPLE_RATES = (16000, 44100, 48000)
CHANNELS = (1, 2)
MIN_SECONDS, MAX_SECONDS = 1.0, 10.0
VOTE_NOISE = 0.25  # sd of an annotator's perception of a cue, on the [-1, 1] scale
BIAS_SD = 0.08  # sd of an annotator's own lean
SIMS_VOTERS = 5
SIMS_DEADZONE = 0.25  # perceived |x| below this is a 0 vote on SIMS's -1/0/1 scale


# ----------------------------------------------------------------------------------------------
# Words: a lexicon with intensifiers, downtoners and negation
# ----------------------------------------------------------------------------------------------

ADJECTIVES = {
    "great": 0.8, "wonderful": 0.8, "lovely": 0.8, "impressive": 0.8, "good": 0.6, "nice": 0.6,
    "pleasant": 0.6, "enjoyable": 0.6, "fun": 0.6, "fine": 0.4, "decent": 0.4,
    "terrible": -0.8, "awful": -0.8, "horrible": -0.8, "bad": -0.6, "boring": -0.6, "annoying": -0.6,
    "disappointing": -0.6, "unpleasant": -0.6, "dull": -0.4, "mediocre": -0.4, "messy": -0.4,
}
MODIFIERS = {"": 1.0, "really ": 1.25, "very ": 1.25, "so ": 1.25, "extremely ": 1.5,
             "a bit ": 0.5, "slightly ": 0.5, "somewhat ": 0.6, "kind of ": 0.6}
NEGATION_SHIFT = -0.5  # "not X" = -0.5 * X: negation flips and damps ("not bad" is not "good")
_NEUTRAL_PHRASES = ("ordinary", "average", "about what I expected", "the usual", "neither here nor there")
_PLAIN = ("{filler}{topic} was {phrase}{tail}", "{filler}honestly, {topic} is {phrase}{tail}",
          "{filler}I think {topic} was {phrase}{tail}", "{filler}to me {topic} felt {phrase} today{tail}",
          "{filler}I have to say {topic} seemed {phrase}{tail}")
_NEGATED = ("{filler}{topic} was not {phrase}{tail}", "{filler}honestly, {topic} isn't {phrase}{tail}",
            "{filler}I don't think {topic} was {phrase}{tail}", "{filler}to me {topic} never felt {phrase}{tail}",
            "{filler}I wouldn't say {topic} seemed {phrase}{tail}")
_FILLERS = ("", "Um, ", "So, ", "Well, ", "Uh, ", "You know, ", "Oh, ")
_TAILS = (".", ", to be honest.", ", really.", "!", " overall.", ", I guess.")
_TOPICS = {
    "sims": ("the dinner", "this apartment", "my new job", "the weather", "the trip", "the meeting",
             "our neighbours", "the train ride", "the party", "the weekend", "the exam", "this city"),
    "mosi": ("the acting", "the plot", "the soundtrack", "the ending", "the dialogue", "the special effects",
             "the cinematography", "the pacing", "the main character", "the script", "the cast", "the story"),
}


def phrase_value(adjective: str, modifier: str = "", negated: bool = False) -> float:
    """The sentiment a phrase carries on [-1, 1]: the adjective's valence, scaled by the modifier,
    flipped and damped by negation, capped at 1 in size.

    >>> phrase_value("good"), phrase_value("good", "very "), phrase_value("good", negated=True)
    (0.6, 0.75, -0.3)
    >>> phrase_value("bad", negated=True), phrase_value("great", "extremely "), phrase_value("dull", "a bit ")
    (0.3, 1.0, -0.2)
    """
    if adjective not in ADJECTIVES:
        raise ValueError(f"phrase_value: unknown adjective {adjective!r}")
    if modifier not in MODIFIERS:
        raise ValueError(f"phrase_value: unknown modifier {modifier!r}")
    x = float(np.clip(ADJECTIVES[adjective] * MODIFIERS[modifier], -1.0, 1.0))
    return round(NEGATION_SHIFT * x if negated else x, 6) + 0.0


def _phrases() -> list[tuple[str, str, bool, float]]:
    """Every (adjective, modifier, negated, value); downtoned negations ("not a bit good") are left out."""
    out = []
    for adj in ADJECTIVES:
        for mod, scale in MODIFIERS.items():
            for neg in (False, True):
                if neg and scale < 1:
                    continue
                out.append((adj, mod, neg, phrase_value(adj, mod, neg)))
    return out


PHRASES = _phrases()


def transcript_for(value_range: tuple[float, float], rng: np.random.Generator, flavour: str) -> tuple[str, float]:
    """A sentence whose phrase value lies in ``value_range`` (inclusive; ``(0, 0)``: a neutral phrase),
    and that value."""
    low, high = value_range
    fill = dict(filler=_FILLERS[rng.integers(len(_FILLERS))], topic=_TOPICS[flavour][rng.integers(12)],
                tail=_TAILS[rng.integers(len(_TAILS))])
    if low == high == 0:
        text, value = _PLAIN[rng.integers(len(_PLAIN))].format(
            phrase=_NEUTRAL_PHRASES[rng.integers(len(_NEUTRAL_PHRASES))], **fill), 0.0
    else:
        fits = [p for p in PHRASES if low <= p[3] <= high]
        if not fits:
            raise ValueError(f"transcript_for: no phrase with a value in [{low}, {high}]")
        adj, mod, neg, value = fits[rng.integers(len(fits))]
        templates = _NEGATED if neg else _PLAIN
        text = templates[rng.integers(len(templates))].format(phrase=mod + adj, **fill)
    return text[0].upper() + text[1:], value


# ----------------------------------------------------------------------------------------------
# Voice and face
# ----------------------------------------------------------------------------------------------

def voice_for(x: float, speaker_hz: float, gain: float, rng: np.random.Generator) -> tuple[Voice, float]:
    """The voice that carries cue ``x`` in [-1, 1], and its syllable rate (Hz).

    Positive: the pitch contour rises, the speech is faster, brighter and louder; negative: falling,
    slower, darker, softer. Each property gets its own jitter, and the speaker's pitch and the
    recording's ``gain`` vary far more than the cue moves them, so no single absolute level gives
    the cue away; the contour (a relative measure) carries it most reliably.
    """
    x = check_label(x, "voice_for")
    voice = Voice(f0_hz=speaker_hz * 2.0 ** (0.12 * x + rng.normal(0, 0.03)),
                  glide=0.55 * x + rng.normal(0, 0.08),
                  tilt=1.4 - 0.35 * x + rng.normal(0, 0.1),
                  loudness=gain * (0.42 + 0.12 * x),
                  vibrato=0.015)
    rate = 3.5 + 0.9 * x + rng.normal(0, 0.25)
    return voice, float(rate)


def face_for(x: float, background: tuple[float, float, float]) -> Face:
    """The face that shows cue ``x`` in [-1, 1] in front of ``background`` (a property of the video,
    never of the label).

    >>> face_for(-0.5, (0.2, 0.3, 0.4))
    Face(mouth_curve=-0.5, brow_tilt=-0.25, brow_lift=0.0, background=(0.2, 0.3, 0.4))
    """
    x = check_label(x, "face_for")
    return Face(mouth_curve=x, brow_tilt=0.5 * min(x, 0.0), brow_lift=max(x, 0.0), background=background)


# ----------------------------------------------------------------------------------------------
# Votes: how a cue value becomes a label
# ----------------------------------------------------------------------------------------------

def votes_label(x: float, rng: np.random.Generator, flavour: str) -> float:
    """The label that annotators give a clip whose sentiment is ``x`` in [-1, 1].

    SIMS-like: five annotators perceive ``x + bias + noise`` and vote -1, 0 or 1 (0 within
    :data:`SIMS_DEADZONE`); the label is the mean, on the 0.2 grid. MOSI-like: three to five
    annotators vote ``round(3 * perceived)`` clipped to [-3, 3]; the label is the mean (thirds,
    quarters or fifths), written with 4 decimals.
    """
    if flavour == "sims":
        perceived = x + rng.normal(0, BIAS_SD, SIMS_VOTERS) + rng.normal(0, VOTE_NOISE, SIMS_VOTERS)
        votes = np.where(perceived > SIMS_DEADZONE, 1, np.where(perceived < -SIMS_DEADZONE, -1, 0))
        return snap(float(votes.mean()))
    k = int(rng.integers(3, 6))
    perceived = x + rng.normal(0, BIAS_SD, k) + rng.normal(0, VOTE_NOISE, k)
    votes = np.clip(np.rint(3 * perceived), -3, 3)
    return round(float(votes.mean()), 4) + 0.0


# ----------------------------------------------------------------------------------------------
# The plan: cues, labels, media properties and split of every clip (pure, no media)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HardClip:
    """One clip: its label.csv row (labels on the flavour's scale), the latent cues on [-1, 1] and the
    media properties."""

    index: int
    video_id: str
    clip_id: str
    text: str
    label: float
    label_T: float
    label_A: float
    label_V: float
    conflict: bool
    mode: str
    polarity: int  # the planned class (-1, 0, 1); the label's own class can differ after the votes
    cue_T: float  # the phrase value of the transcript
    cue_A: float
    cue_V: float
    seconds: float
    fps: int
    size: tuple[int, int]  # (height, width)
    sample_rate: int
    channels: int


def check_flavour(flavour: str) -> None:
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {sorted(FLAVOURS)}, got {flavour!r}")


def flavour_code(flavour: str) -> int:
    # Part of every seed, so hard and hard_mosi are different draws (and differ from the demo's streams).
    return 100 + sorted(FLAVOURS).index(flavour)


def _cues(polarity: int, conflict: bool, rng: np.random.Generator, flavour: str) -> tuple[str, float, float, float]:
    """(transcript, text value, voice cue, face cue) for a clip of the planned class.

    Polar clips: the words carry the polarity (0.4..1 in size); voice and face both carry it in 40 %
    of them, only one of them in 20 % each, and neither (both near zero) in 20 %, so every modality
    is needed somewhere. Conflict clips: the words say the opposite (0.3..1), voice and face both
    carry the polarity (0.35..1). Neutral clips: a neutral or a faint phrase (|value| <= 0.2) and a
    faint voice and face.
    """
    def strong(sign: int, low: float = 0.35) -> float:
        return sign * float(rng.uniform(low, 1.0))

    def faint() -> float:
        return float(rng.uniform(-0.15, 0.15))

    if polarity == 0:
        span = (0.0, 0.0) if rng.random() < 0.6 else (-0.2, 0.2)
        text, t = transcript_for(span, rng, flavour)
        return text, t, faint(), faint()
    if conflict:
        span = (0.3, 1.0) if polarity < 0 else (-1.0, -0.3)
        text, t = transcript_for(span, rng, flavour)
        return text, t, strong(polarity), strong(polarity)
    span = (0.4, 1.0) if polarity > 0 else (-1.0, -0.4)
    text, t = transcript_for(span, rng, flavour)
    a, v = strong(polarity), strong(polarity)
    quiet = rng.random()
    if quiet < 0.2:
        a = faint()
    elif quiet < 0.4:
        v = faint()
    elif quiet < 0.6:
        a, v = faint(), faint()
    return text, t, a, v


def sentiment(t: float, a: float, v: float, conflict: bool) -> float:
    """What annotators perceive as the clip's sentiment: the weighted cues, or, when the words
    contradict voice and face, the voice and face alone (the words are read as sarcasm).

    >>> sentiment(0.6, 0.5, 0.4, False), sentiment(0.6, -0.5, -0.7, True)
    (0.525, -0.6)
    """
    if conflict:
        return round((a + v) / 2, 12)
    w_t, w_a, w_v = WEIGHTS
    return round(w_t * t + w_a * a + w_v * v, 12)


def _media_props(rng: np.random.Generator) -> dict:
    """Duration, frame rate, frame size, sample rate and channels: a stream that never sees a label."""
    seconds = round(MIN_SECONDS + (MAX_SECONDS - MIN_SECONDS) * float(rng.beta(1.5, 3.0)), 2)
    return dict(seconds=seconds, fps=int(FPS[rng.integers(len(FPS))]), size=SIZES[rng.integers(len(SIZES))],
                sample_rate=int(SAMPLE_RATES[rng.integers(len(SAMPLE_RATES))]),
                channels=int(CHANNELS[rng.integers(len(CHANNELS))]))


def plan(n_clips: int, *, flavour: str = "sims", seed: int = 0, splits: Sequence[float] = DEFAULT_SPLITS,
         conflict: float = 0.25) -> list[HardClip]:
    """The clips of a set. Classes follow :data:`CLASS_SHARES` (largest remainder), ``round(conflict * n)``
    polar clips are conflict clips (half of them planned positive, half negative), and the splits
    are stratified by planned class and conflict."""
    check_flavour(flavour)
    if not 0 <= conflict <= CLASS_SHARES[0] + CLASS_SHARES[2]:
        raise ValueError(f"conflict must be in [0, {CLASS_SHARES[0] + CLASS_SHARES[2]}] (a share of all clips, "
                         f"taken from the polar ones), got {conflict!r}")
    code = flavour_code(flavour)
    scale = get_spec(FLAVOURS[flavour]).score_max
    rng = np.random.default_rng([seed, code, 0])
    n_neg, n_neu, n_pos = split_counts(n_clips, CLASS_SHARES)
    n_conflict = math.floor(conflict * n_clips + 0.5)
    c_neg, c_pos = n_conflict // 2, n_conflict - n_conflict // 2
    if c_neg > n_neg or c_pos > n_pos:
        raise ValueError(f"conflict={conflict} needs more polar clips than {n_clips} clips have")
    slots = ([(-1, True)] * c_neg + [(-1, False)] * (n_neg - c_neg) + [(0, False)] * n_neu
             + [(1, True)] * c_pos + [(1, False)] * (n_pos - c_pos))
    slots = [slots[i] for i in rng.permutation(n_clips)]
    group = np.array([3 * (p + 1) + int(c) for p, c in slots])
    order = np.lexsort((rng.random(n_clips), group))  # grouped by (class, conflict), shuffled within
    mode = np.empty(n_clips, dtype=int)
    mode[order] = interleave(split_counts(n_clips, splits))

    clips = []
    for i, (polarity, is_conflict) in enumerate(slots):
        cue_rng = np.random.default_rng([seed, code, 1, i])
        vote_rng = np.random.default_rng([seed, code, 4, i])
        text, t, a, v = _cues(polarity, is_conflict, cue_rng, flavour)
        labels = [votes_label(x, vote_rng, flavour) for x in (sentiment(t, a, v, is_conflict), t, a, v)]
        if flavour == "sims":
            labels = [snap(x) for x in labels]
        video_id, clip_id = clip_ids(i)
        clips.append(HardClip(index=i, video_id=video_id, clip_id=clip_id, text=text,
                              label=labels[0], label_T=labels[1], label_A=labels[2], label_V=labels[3],
                              conflict=is_conflict, mode=MODES[mode[i]], polarity=polarity,
                              cue_T=t, cue_A=a, cue_V=v,
                              **_media_props(np.random.default_rng([seed, code, 5, i]))))
    assert all(abs(c.label) <= scale for c in clips)
    return clips


def _fmt(x: float, flavour: str) -> str:
    return f"{x:.1f}" if flavour == "sims" else repr(round(x, 4) + 0.0)


def label_rows(clips: Sequence[HardClip], flavour: str) -> list[dict[str, str]]:
    """label.csv rows (strings): the MMSA columns plus ``conflict`` (0/1)."""
    dataset = FLAVOURS[flavour]
    return [dict(video_id=c.video_id, clip_id=c.clip_id, text=c.text, label=_fmt(c.label, flavour),
                 label_T=_fmt(c.label_T, flavour), label_A=_fmt(c.label_A, flavour),
                 label_V=_fmt(c.label_V, flavour), annotation=polarity_of(c.label, dataset).capitalize(),
                 mode=c.mode, conflict=str(int(c.conflict)))
            for c in clips]


# ----------------------------------------------------------------------------------------------
# Media of a planned clip
# ----------------------------------------------------------------------------------------------

_SKINS = ((0.98, 0.85, 0.68), (0.92, 0.76, 0.58), (0.80, 0.62, 0.45), (0.66, 0.48, 0.34), (0.55, 0.38, 0.26))


@dataclass(frozen=True)
class Scene:
    """Per-video nuisance: the speaker and the room, the same in every clip of a video."""

    speaker: Speaker
    speaker_hz: float  # the voice's own pitch: 105..135 Hz or 185..235 Hz
    background: tuple[float, float, float]


def scene(seed: int, code: int, video: int) -> Scene:
    rng = np.random.default_rng([seed, code, 2, video])
    skin = _SKINS[rng.integers(len(_SKINS))]
    hz = float(rng.uniform(105, 135) if rng.random() < 0.5 else rng.uniform(185, 235))
    hue = rng.uniform(0.15, 0.85, 3)  # any colour, a property of the room only
    return Scene(speaker=Speaker(skin=skin, pitch=1.0, scale=float(rng.uniform(1.1, 1.3))), speaker_hz=hz,
                 background=tuple(round(float(c), 6) for c in hue))


def render_clip(clip: HardClip, params: dict) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(frames [F, H, W, 3] uint8, audio [N] or [2, N] float32, fps, sample rate) of a planned clip."""
    flavour, seed = params["flavour"], params["seed"]
    code = flavour_code(flavour)
    room = scene(seed, code, clip.index // CLIPS_PER_VIDEO)
    rng = np.random.default_rng([seed, code, 3, clip.index])
    voice, rate = voice_for(clip.cue_A, room.speaker_hz, float(rng.uniform(0.6, 1.2)), rng)
    take = Take(dx=float(rng.uniform(-4, 4)), dy=float(rng.uniform(-3, 3)), brightness=float(rng.uniform(0.85, 1.15)),
                phase=float(rng.uniform(0, 2 * np.pi)), syllable_rate=rate,
                syllable_phase=float(rng.uniform(0, 2 * np.pi)))
    audio = render_audio(voice, 1.0, take, rng, clip.seconds, clip.sample_rate)
    if clip.channels == 2:  # a second microphone: its own level and noise
        audio = np.stack([audio, float(rng.uniform(0.7, 1.0)) * audio
                          + rng.normal(0, 0.005, audio.size).astype(np.float32)]).astype(np.float32)
    n_frames = max(1, round(clip.seconds * clip.fps))
    frames = render_frames(face_for(clip.cue_V, room.background), room.speaker, take, flavour, n_frames,
                           clip.size, clip.fps)
    return frames, audio, clip.fps, clip.sample_rate
