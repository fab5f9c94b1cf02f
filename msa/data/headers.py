"""A clip's container headers (duration, frame size, frame rate, audio track) without decoding a frame.

What the run plan (:mod:`msa.plan`) reads for every clip before any model loads: enough to know how
many frames Qwen's rule will sample, at what size, how many audio tokens follow, and what the media
store will hold (:mod:`msa.data.budget`). Opening a container and reading its stream parameters costs
a few milliseconds; :func:`read_many` spreads thousands of clips over a few threads and remembers each
result per ``(path, size, mtime)``: for the process, and in a JSON file when given one (``store``), so a
second run over MOSEI's 23k clips stats the files instead of opening them.

    h = read_headers("Raw/video_0001/0001.mp4")   # ClipHeaders(duration=2.0, width=640, ...)
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av

from msa.data import media


@dataclass(frozen=True)
class ClipHeaders:
    path: str
    duration: float  # seconds: frames / frame rate when there is video (the frame rule's), else the audio's
    width: int | None  # stored frame size (None without video)
    height: int | None
    fps: float | None  # the video stream's average frame rate
    n_frames: int | None  # frames in the video stream (estimated from duration x fps when the header has none)
    rotation: int  # degrees (0/90/180/270) from the stream's rotate tag; 0 when the container gives none
    has_video: bool
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None
    # Samples the decoder gives at audio_rate: the track's duration rounded up to whole codec frames
    # (AAC's padded last frame, which the reference's reader keeps too); None without audio.
    audio_samples: int | None = None


def _seconds(stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _rotation(stream) -> int:
    try:
        return int(round(float(stream.metadata.get("rotate", 0)))) % 360
    except (TypeError, ValueError):
        return 0


def read_headers(path: str | os.PathLike) -> ClipHeaders:
    """The headers of the clip at ``path``; a missing, empty or unreadable file raises
    :class:`~msa.data.media.MediaError` naming the path (``kind`` says which)."""
    path = Path(path)
    with media._open(path) as container:  # the decoder's own checks: missing, empty, unopenable
        total = float(container.duration) / av.time_base if container.duration else None
        width = height = fps = n_frames = None
        rotation = 0
        video = container.streams.video[0] if container.streams.video else None
        if video is not None:
            width, height = video.codec_context.width or None, video.codec_context.height or None
            rate = video.average_rate or video.guessed_rate
            fps = float(rate) if rate else None
            seconds = _seconds(video) or total
            n_frames = video.frames or None
            if fps is None and n_frames and seconds:
                fps = n_frames / seconds
            if n_frames is None and fps and seconds:  # no frame count in the header (mkv, webm): estimate
                n_frames = max(1, round(seconds * fps))
            if not fps or not n_frames:
                raise media.MediaError("video stream has no frame rate or no frames in its header", path=path,
                                       kind="empty" if not n_frames else None)
            if not width or not height:
                raise media.MediaError("video stream has no frame size in its header", path=path)
            rotation = _rotation(video)
        audio = container.streams.audio[0] if container.streams.audio else None
        rate = channels = samples = None
        if audio is not None:
            rate = int(audio.codec_context.sample_rate or audio.rate or 0) or None
            channels = int(audio.codec_context.channels or 0) or None
            seconds = _seconds(audio) or total
            if rate and seconds:
                samples = round(seconds * rate)
                frame = int(audio.codec_context.frame_size or 0)
                if frame > 0:
                    samples = -(-samples // frame) * frame
        if video is not None:
            duration = n_frames / fps
        elif audio is not None:
            duration = _seconds(audio) or total or 0.0
        else:
            raise media.MediaError("no video and no audio stream", path=path, kind="no_video")
    return ClipHeaders(path=str(path), duration=float(duration), width=width, height=height, fps=fps,
                       n_frames=n_frames, rotation=rotation, has_video=video is not None,
                       has_audio=audio is not None and rate is not None, audio_rate=rate, audio_channels=channels,
                       audio_samples=samples)


_MEMO: dict[tuple[str, int, int], ClipHeaders] = {}
_LOCK = threading.Lock()


def cached_headers(path: str | os.PathLike) -> ClipHeaders:
    """:func:`read_headers`, remembered per ``(absolute path, size, mtime_ns)`` for this process."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise media.MediaError("file not found", path=path, kind="missing") from None
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    with _LOCK:
        hit = _MEMO.get(key)
    if hit is not None:
        return hit
    h = read_headers(path)
    with _LOCK:
        _MEMO[key] = h
    return h


def store_file(cache_dir: str | os.PathLike, root: str | os.PathLike, kind: str = "headers") -> Path:
    """Where :func:`read_many` keeps the headers of the dataset at ``root``: one JSON file per dataset in
    the media cache's ``headers/`` folder (``kind="fingerprints"``: the split-overlap check's decoded
    fingerprints, :mod:`msa.data.audit`, in ``fingerprints/`` beside it)."""
    import hashlib

    return Path(cache_dir) / kind / f"{hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:24]}.json"


def _load(store: Path) -> dict:
    try:
        return json.loads(store.read_text())
    except (OSError, ValueError):
        return {}


def read_many(paths: Iterable[str | os.PathLike], *, workers: int = 8,
              store: str | os.PathLike | None = None) -> dict[str, ClipHeaders | media.MediaError]:
    """Headers of every path (as given, in order), or the :class:`~msa.data.media.MediaError` it raised.

    ``store``: a JSON file of earlier results, ``{absolute path: {size, mtime_ns, headers}}``; an entry is
    used while the file's size and mtime are unchanged, and new results are added to it.
    """
    paths = [str(p) for p in paths]
    known = _load(Path(store)) if store is not None else {}
    fresh = {}

    def one(p: str):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            return media.MediaError("file not found", path=p, kind="missing")
        ident = os.path.abspath(p)
        rec = known.get(ident)
        if rec and rec["size"] == st.st_size and rec["mtime_ns"] == st.st_mtime_ns:
            return ClipHeaders(**{**rec["headers"], "path": p})
        try:
            h = cached_headers(p)
        except media.MediaError as exc:
            return exc
        fresh[ident] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "headers": dataclasses.asdict(h)}
        return h

    if len(paths) < 16 or workers <= 1:
        out = {p: one(p) for p in paths}
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(paths))) as pool:
            out = dict(zip(paths, pool.map(one, paths)))
    if store is not None and fresh:
        from msa.data.store import atomic_write

        atomic_write(Path(store), json.dumps({**known, **fresh}).encode())
    return out


__all__ = ["ClipHeaders", "cached_headers", "read_headers", "read_many", "store_file"]
