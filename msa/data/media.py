"""Decode a clip's frames and speech with PyAV (no ffmpeg binary, no torchcodec).

Frames are sampled the way qwen-omni-utils samples them for Qwen2.5-Omni: ``n = duration * fps``
clamped to ``[min_frames, max_frames]`` and floored to an even count (the vision encoder groups
frames in pairs, ``temporal_patch_size=2``), at indices ``linspace(0, total - 1, n).round()``.
Audio is resampled to float32 at the feature extractor's rate with PyAV's resampler and averaged
over its channels to mono (as ``librosa.load`` does; ffmpeg's own downmix would scale by 1/sqrt(2)).

Every failure is a :class:`MediaError` that names the file and, once the data layer adds them, the
dataset and clip id. A clip without an audio track raises the subclass :class:`NoAudioError`, so a
caller can choose to run it video-only instead of failing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

# Why a clip could not be used; ``MediaError.kind`` is one of these (reports group skips by it).
KINDS = ("missing", "empty", "unreadable", "no_video", "no_audio")


class MediaError(Exception):
    """A clip that cannot be decoded: names the dataset, clip id, file and the reason."""

    kind = "unreadable"

    def __init__(self, reason: str, *, path: str | os.PathLike, dataset: str | None = None,
                 clip_id: str | None = None, kind: str | None = None):
        self.reason = reason
        self.path = str(path)
        self.dataset = dataset
        self.clip_id = clip_id
        if kind is not None:
            if kind not in KINDS:
                raise ValueError(f"unknown media error kind {kind!r}; known: {KINDS}")
            self.kind = kind
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.dataset}: " if self.dataset else ""
        clip = f"clip {self.clip_id} " if self.clip_id is not None else ""
        return f"{where}{clip}({self.path}): {self.reason}"

    def with_context(self, *, dataset: str | None = None, clip_id: str | None = None) -> "MediaError":
        """The same error (same class and kind) with the dataset and clip id filled in."""
        err = type(self)(self.reason, path=self.path, dataset=dataset or self.dataset,
                         clip_id=clip_id if clip_id is not None else self.clip_id, kind=self.kind)
        err.__cause__ = self.__cause__
        return err

    def __reduce__(self):  # picklable across DataLoader worker processes
        return (_rebuild_media_error, (type(self), self.reason, self.path, self.dataset, self.clip_id, self.kind))


class NoAudioError(MediaError):
    """The clip has no usable audio track (absent or without samples); video may still be fine."""

    kind = "no_audio"


def _rebuild_media_error(cls, reason, path, dataset, clip_id, kind):
    return cls(reason, path=path, dataset=dataset, clip_id=clip_id, kind=kind)


@dataclass(frozen=True)
class VideoInfo:
    total_frames: int  # frames in the video stream
    fps: float  # the stream's average frame rate
    duration: float  # seconds, total_frames / fps (the duration the frame rule uses)


def num_frames(duration: float, fps: float = 2.0, min_frames: int = 4, max_frames: int = 768) -> int:
    """How many frames Qwen's rule samples from a clip of ``duration`` seconds.

    >>> num_frames(2.0)  # 2.0 s * 2 fps = 4
    4
    >>> num_frames(3.3)  # 6.6 -> floor to an even count
    6
    >>> num_frames(0.5)  # 1.0 -> clamped up to min_frames
    4
    >>> num_frames(1000.0)  # 2000 -> clamped down to max_frames
    768
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if not 2 <= min_frames <= max_frames:
        raise ValueError(f"need 2 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    n = min(max(duration * fps, min_frames), max_frames)
    return int(n // 2 * 2)


def frame_indices(total_frames: int, n: int) -> np.ndarray:
    """``n`` indices spread uniformly from the first to the last frame (repeats if ``n > total``).

    >>> frame_indices(20, 4).tolist()  # linspace(0, 19, 4) = 0, 6.33, 12.67, 19
    [0, 6, 13, 19]
    >>> frame_indices(3, 4).tolist()  # linspace(0, 2, 4) = 0, 0.67, 1.33, 2
    [0, 1, 1, 2]
    """
    if total_frames < 1:
        raise ValueError(f"total_frames must be >= 1, got {total_frames}")
    return np.linspace(0, total_frames - 1, n).round().astype(np.int64)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise MediaError("file not found", path=path, kind="missing")
    if path.stat().st_size == 0:
        raise MediaError("file is empty (0 bytes)", path=path, kind="empty")


def _open(path: Path):
    _check_file(path)
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot open the container (unreadable or truncated): {exc}", path=path) from exc


def _video_info(container, stream, path: Path) -> VideoInfo:
    total = stream.frames
    if total <= 0:  # containers without a frame count in the header: count packets (no decoding)
        total = sum(1 for p in container.demux(stream) if p.size > 0)
        container.seek(0)
    rate = stream.average_rate or stream.guessed_rate
    if rate:
        fps = float(rate)
    elif stream.duration and stream.time_base and total:
        fps = total / float(stream.duration * stream.time_base)
    else:
        raise MediaError("video stream has no frame rate", path=path)
    if total <= 0:
        raise MediaError("video stream has no frames (zero-length clip)", path=path, kind="empty")
    return VideoInfo(total_frames=total, fps=fps, duration=total / fps)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count, frame rate and duration of the first video stream (header only, no decoding)."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError("no video stream", path=path, kind="no_video")
        return _video_info(container, container.streams.video[0], path)


def decode_video(path: str | os.PathLike, fps: float = 2.0, min_frames: int = 4,
                 max_frames: int = 768) -> np.ndarray:
    """Sampled RGB frames, ``[T, H, W, 3]`` uint8 with ``T = num_frames(duration, ...)``.

    Only the sampled frames are kept, so a long high-resolution clip does not fill the memory.
    """
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError("no video stream", path=path, kind="no_video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        info = _video_info(container, stream, path)
        wanted = frame_indices(info.total_frames, num_frames(info.duration, fps, min_frames, max_frames))
        picked: dict[int, np.ndarray] = {}
        need = set(wanted.tolist())
        last = -1
        try:
            for i, frame in enumerate(container.decode(stream)):
                last = i
                if i in need:
                    picked[i] = frame.to_ndarray(format="rgb24")  # [H, W, 3]
                if len(picked) == len(need):
                    break
        except av.error.FFmpegError as exc:
            raise MediaError(f"decoding failed after {last + 1} of {info.total_frames} frames "
                             f"(truncated or corrupt): {exc}", path=path) from exc
    if last < 0:
        raise MediaError("no decodable video frames (zero-length clip)", path=path, kind="empty")
    missing = sorted(need - picked.keys())
    if missing:
        # The header promised more frames than the stream holds; a decoder may drop one or two at the
        # end, which we bridge with the last frame kept, but a larger gap means a truncated file.
        if info.total_frames - (last + 1) > 2:
            raise MediaError(f"only {last + 1} of {info.total_frames} frames decodable (truncated)", path=path)
        fill = picked[max(picked)] if picked else None
        if fill is None:
            raise MediaError("no decodable video frames (zero-length clip)", path=path, kind="empty")
        for i in missing:
            picked[i] = fill
    return np.stack([picked[i] for i in wanted.tolist()])  # [T, H, W, 3]


def decode_audio(path: str | os.PathLike, sample_rate: int = 16000, max_seconds: float | None = None) -> np.ndarray:
    """The first audio track as mono float32 at ``sample_rate``, cut to ``max_seconds`` if given.

    The decoded tail is trimmed to the stream's declared duration: AAC pads its last frame to 1024
    samples, which would otherwise add up to 64 ms of silence at 16 kHz.
    """
    path = Path(path)
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
    limit = None if max_seconds is None else int(round(max_seconds * sample_rate))
    with _open(path) as container:
        if not container.streams.audio:
            raise NoAudioError("no audio track", path=path)
        stream = container.streams.audio[0]
        declared = None
        if stream.duration and stream.time_base:
            declared = int(round(float(stream.duration * stream.time_base) * sample_rate))
        # Keep the channel layout and average later: the planar output is [channels, samples].
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=sample_rate)
        chunks: list[np.ndarray] = []
        n = 0
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler count samples; odd timestamps are not our concern
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().mean(axis=0))  # [C, S] -> [S]
                    n += chunks[-1].size
                if limit is not None and n >= limit:
                    break
            for out in resampler.resample(None):  # flush
                chunks.append(out.to_ndarray().mean(axis=0))
        except av.error.FFmpegError as exc:
            raise MediaError(f"audio decoding failed (truncated or corrupt): {exc}", path=path) from exc
    audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if declared is not None and 0 < declared < audio.size:
        audio = audio[:declared]
    if limit is not None:
        audio = audio[:limit]
    if audio.size == 0:
        raise NoAudioError("audio track has no samples", path=path)
    return audio


__all__ = [
    "KINDS", "MediaError", "NoAudioError", "VideoInfo", "decode_audio", "decode_video", "frame_indices",
    "num_frames", "probe_video",
]
