"""Helpers for the data-layer tests: tiny mp4 clips written with PyAV, broken files, MMSA label files.

Clips are 64x64 at 10 fps with a 16 kHz mono AAC track. Frame ``i`` has red = ``(20 * i + shade) % 256``
so a test can tell which frames were sampled; the audio is a sine of ``tone`` Hz, so clips differ.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import av
import numpy as np
import pytest


def make_clip(path: str | Path, seconds: float = 2.0, *, fps: int = 10, size: int = 64, audio: bool = True,
              video: bool = True, sample_rate: int = 16000, channels: int = 1, tone: float = 440.0,
              shade: int = 0) -> Path:
    """Write an H.264/AAC mp4 of ``seconds`` (``round(seconds * fps)`` frames, ``seconds * rate`` samples)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format="mp4") as out:
        # Every stream is added before the first packet: the header is written with the first mux.
        if video:
            vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "threads": "1"})
            vs.width = vs.height = size
            vs.pix_fmt = "yuv420p"
        if audio:
            aus = out.add_stream("aac", rate=sample_rate, layout=layout)
        if video:
            for i in range(int(round(seconds * fps))):
                img = np.zeros((size, size, 3), np.uint8)
                img[..., 0] = (20 * i + shade) % 256
                img[:, : i % size, 1] = 200
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = i
                out.mux(vs.encode(frame))
            out.mux(vs.encode())
        if audio:
            n = int(round(seconds * sample_rate))
            wave = (0.3 * np.sin(2 * np.pi * tone * np.arange(n) / sample_rate)).astype(np.float32)
            mux_audio(out, aus, np.repeat(wave[None], channels, axis=0), sample_rate, layout)
    return path


def mux_audio(out, stream, planes: np.ndarray, sample_rate: int, layout: str) -> None:
    """Encode float planes ``[C, S]`` into the audio ``stream`` of ``out`` (1024-sample frames), then flush."""
    for start in range(0, planes.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes[:, start:start + 1024]), format="fltp",
                                           layout=layout)
        frame.sample_rate, frame.pts = sample_rate, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


def truncate(path: str | Path, fraction: float = 0.5) -> Path:
    """Cut a file to ``fraction`` of its bytes (the moov atom sits at the end: it no longer opens)."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def write_labels(root: str | Path, rows: list[list[str]], header: list[str] | None,
                 name: str = "label.csv") -> Path:
    """A label file with ``header`` (None: header-less) and ``rows`` written verbatim as strings."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / name, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return root / name


SIMS_HEADER = ["video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode"]


def make_sims_set(root: str | Path, *, broken: dict[str, str] | None = None) -> Path:
    """A SIMS-layout set: 3 train, 2 valid, 1 test clip, 2 s each; ``broken`` maps clip ids to a defect
    (``truncated``, ``no_audio``, ``missing``)."""
    root = Path(root)
    rows = [
        ["video_0001", "0001", "very happy today", "0.8", "0.6", "1.0", "0.8", "Positive", "train"],
        ["video_0001", "0002", "it is fine", "0.0", "0.2", "0.0", "-0.2", "Neutral", "train"],
        ["video_0002", "0001", "this is awful", "-1.0", "-1.0", "-0.8", "-1.0", "Negative", "train"],
        ["video_0002", "0002", "rather good", "0.4", "0.4", "0.2", "0.6", "Positive", "valid"],
        ["video_0003", "0001", "not great", "-0.4", "-0.6", "-0.2", "-0.4", "Negative", "valid"],
        ["video_0003", "0002", "wonderful", "1.0", "1.0", "1.0", "1.0", "Positive", "test"],
    ]
    write_labels(root, rows, SIMS_HEADER)
    broken = broken or {}
    for k, (vid, cid, *_) in enumerate(rows):
        defect = broken.get(f"{vid}$_${cid}")
        if defect == "missing":
            continue
        path = make_clip(root / "Raw" / vid / f"{cid}.mp4", 2.0, audio=defect != "no_audio",
                         tone=300.0 + 50 * k, shade=10 * k)
        if defect == "truncated":
            truncate(path)
    return root


@functools.lru_cache(maxsize=None)
def load_processor(path: str):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(path)


@pytest.fixture(scope="session")
def processor(tiny_dir):
    """The tiny model's real Qwen2.5-Omni processor (built once per session by conftest's tiny_dir)."""
    return load_processor(str(tiny_dir))


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Shared clips: ``a``/``b`` (2.0 s, different content), ``long`` (3.3 s), ``silent`` (no audio track),
    ``stereo44`` (2.0 s, 44.1 kHz stereo), ``audio_only`` (no video), ``truncated``, ``empty`` (0 bytes)."""
    d = tmp_path_factory.mktemp("clips")
    out = {
        "a": make_clip(d / "a.mp4", 2.0, tone=440.0),
        "b": make_clip(d / "b.mp4", 2.0, tone=330.0, shade=7),
        "long": make_clip(d / "long.mp4", 3.3),
        "silent": make_clip(d / "silent.mp4", 2.0, audio=False),
        "stereo44": make_clip(d / "stereo44.mp4", 2.0, sample_rate=44100, channels=2),
        "audio_only": make_clip(d / "audio_only.mp4", 2.0, video=False),
        "truncated": truncate(make_clip(d / "truncated.mp4", 2.0)),
        "empty": d / "empty.mp4",
    }
    out["empty"].write_bytes(b"")
    return out


def reencode(src: str | Path, dst: str | Path, *, codec: str = "mpeg4", bit_rate: int = 400_000,
             audio_bit_rate: int = 48_000) -> Path:
    """Decode ``src`` and encode its frames and sound again (another codec and bitrate by default): other
    bytes, the same clip, as a copy of a clip in another split of a public dataset would be."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        vin = inp.streams.video[0] if inp.streams.video else None
        ain = inp.streams.audio[0] if inp.streams.audio else None
        if vin is not None:
            vs = out.add_stream(codec, rate=vin.average_rate)
            vs.width, vs.height, vs.pix_fmt, vs.bit_rate = vin.codec_context.width, vin.codec_context.height, "yuv420p", bit_rate
        if ain is not None:
            aus = out.add_stream("aac", rate=ain.codec_context.sample_rate, layout=ain.codec_context.layout.name)
            aus.bit_rate = audio_bit_rate
        if vin is not None:
            for i, frame in enumerate(inp.decode(vin)):
                frame = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                frame.pts = i
                out.mux(vs.encode(frame))
            out.mux(vs.encode())
        if ain is not None:
            inp.seek(0)
            planes = np.concatenate([f.to_ndarray() for f in inp.decode(ain)], axis=1)  # [C, S] fltp
            mux_audio(out, aus, planes.astype(np.float32), ain.codec_context.sample_rate, ain.codec_context.layout.name)
    return dst
