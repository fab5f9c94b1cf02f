"""Clips in real-world formats, written with PyAV, and the reference preprocessing they are checked against.

``write_clip`` makes H.264/AAC mp4s at broadcast frame rates (29.97, 25 fps), any size, 44.1/48 kHz
stereo, with or without audio, at a constant or variable frame rate. Each frame carries its own index
as a row of 12 black/white blocks, so a test reads back exactly which frames were sampled; the audio is
broadband (a chirp up to 20 kHz plus noise, different per channel), so resampling and downmixing
show in the top mel bins.

The reference follows qwen-omni-utils (QwenLM/Qwen2.5-Omni, ``qwen_omni_utils.v2_5``):

* frames: ``smart_nframes`` (2 fps, at least 4 and at most ``min(768, total)`` frames, floored to an
  even count), indices ``linspace(0, total - 1, n).round()``, and the sampled rate
  ``n / total * video_fps`` passed on as the processor's ``fps``;
* audio: ``librosa.load(audioread.ffdec.FFmpegAudioFile(path), sr=16000)``, i.e. every sample the
  ffmpeg decoder gives as 16-bit PCM at the track's own rate and channels, averaged to mono and
  resampled with soxr's high quality. Without an ffmpeg binary the same samples are decoded here with
  PyAV to s16 and written to a WAV file that ``librosa.load`` then reads the same way.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from data_fixtures import mux_audio

INDEX_BITS = 12  # frame indices up to 4095 (40 s at 29.97 fps is 1199 frames)


def index_image(i: int, height: int, width: int) -> np.ndarray:
    """A gray frame whose top band shows ``i`` in binary (most significant block first), ``[H, W, 3]``."""
    img = np.full((height, width, 3), 96, np.uint8)
    block = width // INDEX_BITS
    band = max(8, height // 4)
    for b in range(INDEX_BITS):
        if (i >> (INDEX_BITS - 1 - b)) & 1:
            img[:band, b * block:(b + 1) * block] = 255
        else:
            img[:band, b * block:(b + 1) * block] = 0
    img[band:, :, 1] = (7 * i) % 256  # some motion below the band
    return img


def read_index(frame: np.ndarray) -> int:
    """The index drawn by :func:`index_image` (robust to compression and to resizing)."""
    height, width = frame.shape[:2]
    block = width // INDEX_BITS
    band = max(8, height // 4)
    value = 0
    for b in range(INDEX_BITS):
        cell = frame[band // 4: 3 * band // 4, b * block + block // 4: (b + 1) * block - block // 4, 0]
        value = value * 2 + int(cell.mean() > 128)
    return value


def broadband(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """``[C, S]`` float32: a log chirp 100 Hz -> 20 kHz (capped below Nyquist) plus noise, per channel."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    top = min(20000.0, 0.45 * rate)
    k = np.log(top / 100.0) / max(seconds, 1e-6)
    chirp = np.sin(2 * np.pi * 100.0 * (np.exp(k * t) - 1) / k)
    rng = np.random.default_rng(seed)
    out = [0.25 * chirp + 0.05 * rng.standard_normal(n) + 0.1 * np.sin(2 * np.pi * (300 + 200 * c) * t)
           for c in range(channels)]
    return np.asarray(out, np.float32)


def write_clip(path: str | Path, seconds: float, *, fps: Fraction | int = Fraction(30000, 1001),
               width: int = 640, height: int = 360, audio_rate: int | None = 44100, channels: int = 2,
               vfr: bool = False, audio_bitrate: int = 64000, crf: int = 28, rotation: int = 0) -> Path:
    """An H.264 (yuv420p) + AAC mp4; ``audio_rate=None`` writes no audio track.

    ``rotation``: a display matrix in the track header turning the picture ``rotation`` degrees
    counter-clockwise for display (a phone held upright records -90: landscape pixels, shown portrait).

    ``vfr``: the first half runs at ``fps``, the second half at a third of it (pts in ms), which is how
    phone recordings and screen captures vary their rate.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fps = Fraction(fps)
    layout = "mono" if channels == 1 else "stereo"
    if vfr:
        # First half at fps, second half at fps/3: frame times in ms.
        times, t = [], 0.0
        while t < seconds - 1e-9:
            times.append(t)
            t += float(1 / fps) * (1 if t < seconds / 2 else 3)
        pts = [int(round(x * 1000)) for x in times]
    else:
        count = int(round(seconds * fps))
        pts = list(range(count))
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": str(crf), "threads": "1",
                                                          "bf": "0"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        if rotation:
            vs.set_display_rotation(rotation)
        if vfr:
            vs.time_base = Fraction(1, 1000)
            vs.codec_context.time_base = Fraction(1, 1000)
        aus = None
        if audio_rate is not None:
            aus = out.add_stream("aac", rate=audio_rate, layout=layout)
            aus.bit_rate = audio_bitrate
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(index_image(i, height, width), format="rgb24")
            frame.pts = p
            if vfr:
                frame.time_base = Fraction(1, 1000)
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
        if aus is not None:
            mux_audio(out, aus, broadband(seconds, audio_rate, channels), audio_rate, layout)
    return path


# -- the reference ---------------------------------------------------------------------------------------

def reference_nframes(total_frames: int, video_fps: float, fps: float = 2.0, min_frames: int = 4,
                      max_frames: int = 768) -> int:
    """qwen-omni-utils' ``smart_nframes`` for the fps mode, restated from its documented rule."""
    lo = -(-min_frames // 2) * 2
    hi = min(max_frames, total_frames) // 2 * 2
    n = total_frames / video_fps * fps
    n = min(min(max(n, lo), hi), total_frames)
    return int(n // 2 * 2)


def reference_indices(total_frames: int, n: int) -> list[int]:
    """``torch.linspace(0, total - 1, n).round()`` as qwen-omni-utils computes it (float32 linspace)."""
    import torch

    return torch.linspace(0, total_frames - 1, n).round().long().tolist()


def ffmpeg_pcm(path: str | Path) -> tuple[np.ndarray, int]:
    """Every decoded sample as ffmpeg's ``-f s16le`` would write it: ``[S, C]`` int16 and the track's rate."""
    chunks = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="s16", layout=stream.layout.name, rate=rate)
        for frame in container.decode(stream):
            for o in resampler.resample(frame):
                chunks.append(o.to_ndarray().reshape(-1, o.layout.nb_channels))
        for o in resampler.resample(None):
            chunks.append(o.to_ndarray().reshape(-1, o.layout.nb_channels))
    return np.concatenate(chunks), rate


def reference_audio(path: str | Path, tmp_dir: str | Path, sr: int = 16000) -> np.ndarray:
    """``librosa.load(..., sr=16000)`` of the clip's audio as qwen-omni-utils loads it (see module doc)."""
    import librosa
    import soundfile as sf

    pcm, rate = ffmpeg_pcm(path)
    wav = Path(tmp_dir) / (Path(path).stem + ".ref.wav")
    sf.write(wav, pcm, rate, subtype="PCM_16")
    return librosa.load(wav, sr=sr)[0]


def reference_frame_size(height: int, width: int, n_frames: int, min_pixels: int = 128 * 28 * 28,
                         max_pixels: int | None = None, seq_len: int = 128000) -> tuple[int, int]:
    """qwen-omni-utils' ``fetch_video`` frame size (``smart_resize`` with its whole-video budget), restated."""
    import math

    factor = 28
    total = seq_len * factor * factor * 0.9
    cap = max(min(768 * factor * factor, total / n_frames * 2), int(min_pixels * 1.05))
    if max_pixels is not None:
        cap = min(max_pixels, cap)
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > cap:
        beta = math.sqrt(height * width / cap)
        h, w = math.floor(height / beta / factor) * factor, math.floor(width / beta / factor) * factor
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h, w


def reference_resize(frames: np.ndarray, height: int, width: int):
    """Frames resized as ``fetch_video`` does: ``[T, C, H, W]`` uint8, torchvision bicubic, antialiased."""
    import torch
    from torchvision.transforms import InterpolationMode, functional

    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).contiguous()
    return functional.resize(video, [height, width], interpolation=InterpolationMode.BICUBIC, antialias=True).float()
