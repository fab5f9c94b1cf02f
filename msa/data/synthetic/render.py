"""Rendering synthetic clips: a drawn talking face, a harmonic "voice", and the mp4 that holds them.

Both families (:mod:`.demo`, :mod:`.hard`) describe a clip as a :class:`Voice`, a :class:`Face`, a
:class:`Speaker` (per video) and a :class:`Take` (per clip); the functions here turn those into
frames, a waveform and an H.264/AAC mp4. Nothing here knows about labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class Voice:
    """How a unimodal audio label sounds."""

    f0_hz: float  # mean pitch: higher when positive
    glide: float  # pitch change over the clip, in octaves: rising (+) for positive, falling (-) for negative
    tilt: float  # harmonic k has amplitude k**-tilt: smaller tilt = brighter timbre (positive)
    loudness: float  # peak amplitude: louder with stronger sentiment of either sign
    vibrato: float  # relative pitch wobble depth: livelier with stronger sentiment


@dataclass(frozen=True)
class Face:
    """How a unimodal visual label looks."""

    mouth_curve: float  # +1: corners well above the middle (smile); -1: frown
    brow_tilt: float  # slope of the brows: the inner ends drop (a scowl) when negative, else level
    brow_lift: float  # brows raised (in units of the face radius / 10) when positive
    background: tuple[float, float, float]  # RGB in [0, 1]: warm when positive, cool when negative


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


def draw_speaker(seed: int, code: int, video: int) -> Speaker:
    """The demo families' speaker of video number ``video`` (0-based)."""
    rng = np.random.default_rng([seed, code, 2, video])
    return Speaker(skin=_SKINS[rng.integers(len(_SKINS))], pitch=float(rng.uniform(0.87, 1.13)),
                    scale=float(rng.uniform(0.92, 1.08)))


def draw_take(rng: np.random.Generator) -> Take:
    """The demo families' per-clip nuisance, drawn from ``rng``."""
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
                  size: int | tuple[int, int], fps: float) -> np.ndarray:
    """RGB frames ``[n_frames, H, W, 3]`` uint8 of the face; soft-edged so cues survive 56x56.

    ``size`` is the side of a square frame or ``(height, width)``; the face is scaled to the shorter side.
    """
    height, width = (size, size) if isinstance(size, (int, np.integer)) else size
    u = min(height, width) / 64.0  # geometry is designed at 64 px
    t = np.arange(n_frames) / fps  # [F]
    # float32 throughout (coordinates too, or the masks promote to float64): drawing is most of the time
    yy, xx = (np.mgrid[0:height, 0:width] + 0.5).astype(np.float32)  # [H, W] pixel centres
    yy, xx = yy[None], xx[None]  # [1, H, W]
    # Gentle head motion so consecutive frames differ, as in a real talking-head clip.
    cx = (width / 2 + take.dx * u + 2.0 * u * np.sin(2 * np.pi * 0.4 * t + take.phase))[:, None, None]  # [F,1,1]
    cy = (height / 2 + take.dy * u + 1.2 * u * np.sin(2 * np.pi * 0.7 * t + 2 * take.phase))[:, None, None]
    cx, cy = cx.astype(np.float32), cy.astype(np.float32)
    radius = 19.0 * u * speaker.scale

    if flavour == "sims":  # soft vertical gradient
        shade = np.broadcast_to(1 + 0.16 * (0.5 - yy / height), (n_frames, height, width))
    else:  # diagonal stripes drifting across the frames
        shade = 1 + 0.10 * np.sin(2 * np.pi * (xx + yy + 6 * u * t[:, None, None].astype(np.float32)) / (10 * u))
    full = (np.asarray(face.background, dtype=np.float32) * shade[..., None]).astype(np.float32)  # [F, H, W, 3]

    # Every mark below has zero coverage beyond the face's reach, so drawing only inside that box (over
    # all frames) gives the same pixels as drawing on the whole frame, for a fraction of the work.
    reach = 1.1 * radius + 3 * u + 2
    y0, y1 = max(0, math.floor(cy.min() - reach)), min(height, math.ceil(cy.max() + reach) + 1)
    x0, x1 = max(0, math.floor(cx.min() - reach)), min(width, math.ceil(cx.max() + reach) + 1)
    img = full[:, y0:y1, x0:x1]  # a view: the blends below write into ``full``
    yy, xx = yy[:, y0:y1, x0:x1], xx[:, y0:y1, x0:x1]

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

    img = np.clip(full * take.brightness, 0, 1)
    return np.rint(img * 255).astype(np.uint8)


def write_mp4(path: Path, frames: np.ndarray, audio: np.ndarray, fps: int, sample_rate: int,
              fast_aac: bool = False) -> None:
    """An mp4 with H.264 video (yuv420p, one keyframe a second, no B-frames) and AAC audio.

    ``audio`` is mono ``[N]`` or ``[channels, N]`` (1 or 2 channels). Single-threaded x264 keeps the
    output a function of the input; short GOPs without B-frames keep seeking and decoding cheap.
    ``fast_aac`` uses ffmpeg's fast AAC coder instead of its default two-loop search (several times
    faster at 44.1/48 kHz stereo, a little less faithful; the demo sets keep the default).
    """
    _, height, width, _ = frames.shape
    planes = audio[None] if audio.ndim == 1 else audio  # [C, N]
    if planes.shape[0] not in (1, 2):
        raise ValueError(f"write_mp4: audio must be mono [N] or [channels, N] with 1 or 2 channels, got {audio.shape}")
    layout = "mono" if planes.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps, options={
            "preset": "veryfast", "crf": "18", "g": str(fps), "bf": "0", "threads": "1"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream("aac", rate=sample_rate, layout=layout,
                                     options={"aac_coder": "fast"} if fast_aac else {})
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            container.mux(video.encode(vf))
        container.mux(video.encode())
        chunk = 1024  # the AAC frame size
        for start in range(0, planes.shape[1], chunk):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes[:, start:start + chunk]), format="fltp",
                                            layout=layout)
            af.sample_rate, af.pts = sample_rate, start
            container.mux(sound.encode(af))
        container.mux(sound.encode())
