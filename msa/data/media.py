"""Decode a clip's frames and speech with PyAV (no ffmpeg binary, no torchcodec), as Qwen2.5-Omni's own
preprocessing (qwen-omni-utils) does.

Frames follow qwen-omni-utils' ``smart_nframes``: ``n = total_frames / video_fps * fps``, clamped to
``[min_frames, min(max_frames, total_frames)]`` and floored to an even count (the vision encoder groups
frames in pairs, ``temporal_patch_size=2``), at indices ``linspace(0, total - 1, n).round()``. The rate
actually sampled, ``n / total_frames * video_fps`` (:func:`sampled_fps`), is what the processor must be
given as ``fps``: it sets ``video_second_per_grid`` and so where each frame sits on TMRoPE's time axis.

Audio follows ``librosa.load(path, sr=16000)``: every sample the decoder gives (AAC's padded last
frame included, as ffmpeg's reader returns it), averaged over the channels to mono, then resampled
with librosa's default (soxr, high quality). The one deliberate difference: qwen-omni-utils reads
through ffmpeg's 16-bit PCM output, and we keep the decoder's float samples (a rounding of at most
1.5e-5, far below anything the features resolve).

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


def num_frames(total_frames: int, video_fps: float, fps: float = 2.0, min_frames: int = 4,
               max_frames: int = 768) -> int:
    """How many frames Qwen's rule (qwen-omni-utils' ``smart_nframes``) samples from a clip.

    >>> num_frames(20, 10.0)  # 2 s at 10 fps: 2 s * 2 fps = 4
    4
    >>> num_frames(33, 10.0)  # 3.3 s: 6.6 -> floor to an even count
    6
    >>> num_frames(5, 10.0)  # 0.5 s: 1 -> raised to min_frames
    4
    >>> num_frames(1199, 30000 / 1001)  # 40 s at 29.97 fps: 80.02 -> 80
    80
    >>> num_frames(30000, 25.0)  # 20 min: 2400 -> max_frames
    768
    >>> num_frames(3, 10.0)  # never more frames than the clip has: 2
    2
    """
    if fps <= 0 or video_fps <= 0:
        raise ValueError(f"fps and video_fps must be > 0, got {fps}, {video_fps}")
    if not 2 <= min_frames <= max_frames:
        raise ValueError(f"need 2 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    if total_frames < 2:
        raise ValueError(f"Qwen's frame rule needs a clip of at least 2 frames, got {total_frames}")
    low = -(-min_frames // 2) * 2
    high = min(max_frames, total_frames) // 2 * 2
    n = min(max(total_frames / video_fps * fps, low), high, total_frames)
    return int(n // 2 * 2)


def sampled_fps(total_frames: int, video_fps: float, n: int) -> float:
    """The frame rate of ``n`` frames spread over the clip: the ``fps`` to give the processor.

    >>> sampled_fps(20, 10.0, 4)  # the demo's clips: exactly 2 fps, video_second_per_grid 1.0
    2.0
    >>> 2 / sampled_fps(30000, 25.0, 768)  # 20 min capped at 768 frames: a grid spans 3.125 s, not 1 s
    3.125
    """
    return n / total_frames * video_fps


def frame_indices(total_frames: int, n: int) -> np.ndarray:
    """``n`` indices spread uniformly from the first to the last frame.

    >>> frame_indices(20, 4).tolist()  # linspace(0, 19, 4) = 0, 6.33, 12.67, 19
    [0, 6, 13, 19]
    """
    if total_frames < 1:
        raise ValueError(f"total_frames must be >= 1, got {total_frames}")
    return np.linspace(0, total_frames - 1, n).round().astype(np.int64)


def frame_size(height: int, width: int, n_frames: int, *, factor: int = 28, min_pixels: int = 128 * 28 * 28,
               max_pixels: int = 768 * 28 * 28, max_tokens: int = 128000) -> tuple[int, int]:
    """The size every frame of an ``n_frames`` clip is resized to, as qwen-omni-utils' ``fetch_video``.

    The per-frame cap ``max_pixels`` is also bounded by an even share of a whole-video budget (90% of
    ``max_tokens`` tokens of ``factor x factor`` pixels, two frames to a token's time step), but never
    below ``1.05 * min_pixels``; then ``smart_resize`` keeps the aspect ratio on multiples of ``factor``.

    >>> frame_size(360, 640, 8)  # 29.97 fps 640x360: 13 x 23 merged patches
    (364, 644)
    >>> frame_size(1080, 1920, 768)  # a 1080p clip capped at 768 frames: the budget binds
    (336, 644)
    """
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    budget = int(max_tokens * factor * factor * 0.9)
    cap = max(min(max_pixels, budget * 2 // n_frames), int(min_pixels * 1.05))
    return smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=cap)


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[T, H, W, 3]`` uint8 frames resized as qwen-omni-utils does (bicubic, antialiased, on uint8).

    Resizing here rather than in the processor keeps its rounding and clipping to 0..255, which the
    processor (resizing in float) would not, so the pixels match the reference exactly.
    """
    if frames.shape[1:3] == (height, width):
        return frames
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as tvf  # v1: its uint8 kernel (v2 goes through float)

    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # [T, 3, H, W]
    out = tvf.resize(video, [height, width], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return out.permute(0, 2, 3, 1).contiguous().numpy()  # [T, H', W', 3]


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """``image`` ``[H, W, 3]`` turned as its display matrix says: ``rotation`` degrees counter-clockwise
    (PyAV's ``VideoFrame.rotation``), rounded to a quarter turn; a phone's portrait clip stands up.

    Qwen's own pipeline sees such clips upright: qwen-omni-utils reads video with torchcodec when it is
    installed (its first choice), and torchcodec applies the display matrix's rotation when it decodes
    (since 0.11). Its other readers (decord, torchvision) ignore it; we follow the first choice.
    Mirroring in a display matrix is ignored, as torchcodec does.

    >>> upright(np.arange(6).reshape(2, 3, 1).repeat(3, -1), -90)[..., 0].tolist()  # a quarter turn clockwise
    [[3, 0], [4, 1], [5, 2]]
    """
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise MediaError("a directory, not a clip file", path=path, kind="missing")
    if not path.is_file():
        raise MediaError("file not found", path=path, kind="missing")
    if path.stat().st_size == 0:
        raise MediaError("file is empty (0 bytes)", path=path, kind="empty")


def _open(path: Path):
    _check_file(path)
    try:
        return av.open(str(path))
    except PermissionError as exc:  # PyAV's own PermissionError is also an FFmpegError
        raise MediaError(f"cannot read the file: {exc.strerror or exc}", path=path) from exc
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
    """Sampled RGB frames, ``[T, H, W, 3]`` uint8 with ``T = num_frames(total_frames, video_fps, ...)``.

    Only the sampled frames are kept, so a long high-resolution clip does not fill the memory.
    """
    return sample_video(path, fps, min_frames, max_frames)[0]


def sample_video(path: str | os.PathLike, fps: float = 2.0, min_frames: int = 4,
                 max_frames: int = 768) -> tuple[np.ndarray, VideoInfo]:
    """:func:`decode_video`'s frames and the stream's :class:`VideoInfo`, from one opening of the file
    (the cache needs both; probing separately would read the header, or count packets, twice)."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError("no video stream", path=path, kind="no_video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        info = _video_info(container, stream, path)
        if info.total_frames < 2:
            raise MediaError(f"video stream has {info.total_frames} frame; Qwen's frame rule needs at least 2",
                             path=path, kind="empty")
        wanted = frame_indices(info.total_frames, num_frames(info.total_frames, info.fps, fps, min_frames, max_frames))
        picked: dict[int, np.ndarray] = {}
        need = set(wanted.tolist())
        last = -1
        try:
            for i, frame in enumerate(container.decode(stream)):
                last = i
                if i in need:
                    picked[i] = upright(frame.to_ndarray(format="rgb24"), frame.rotation)  # [H, W, 3]
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
    return np.stack([picked[i] for i in wanted.tolist()]), info  # [T, H, W, 3]


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``librosa.resample(audio, orig_sr=rate, target_sr=target)`` (its default, soxr's high quality), without
    importing librosa: soxr, then the length set to ``ceil(n * target / rate)`` (zero-padded or cut).

    >>> resample(np.ones(44100, np.float32), 44100, 16000).shape
    (16000,)
    """
    import soxr

    out = soxr.resample(audio, rate, target, quality="soxr_hq")
    n = int(np.ceil(audio.shape[0] * float(target) / rate))
    return out[:n] if out.shape[0] >= n else np.pad(out, (0, n - out.shape[0]))


def decode_audio(path: str | os.PathLike, sample_rate: int = 16000, max_seconds: float | None = None) -> np.ndarray:
    """The first audio track as mono float32 at ``sample_rate``, cut to ``max_seconds`` if given.

    As ``librosa.load(path, sr=sample_rate)``: all decoded samples at the track's own rate, the mean
    of the channels, then one soxr (high quality) resampling of the whole waveform. The tail is not
    trimmed to the stream's declared duration: ffmpeg's reader, which the reference goes through,
    keeps AAC's padded last frame too (up to 1023 samples at the source rate).
    """
    path = Path(path)
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
    with _open(path) as container:
        if not container.streams.audio:
            raise NoAudioError("no audio track", path=path)
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        if not rate:
            raise MediaError("audio track has no sample rate", path=path)
        # Decoding stops a little past the cut: the resampler's filter then sees the same samples around
        # the cut as it would in the whole track.
        source_limit = None if max_seconds is None else int((max_seconds + 0.1) * rate)
        # Any sample format to planar float at the source rate and layout: [channels, samples] per frame.
        converter = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=rate)
        chunks: list[np.ndarray] = []
        n = 0
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the converter count samples; odd timestamps are not our concern
                for out in converter.resample(frame):
                    chunks.append(out.to_ndarray())
                    n += chunks[-1].shape[1]
                if source_limit is not None and n >= source_limit:
                    break
            for out in converter.resample(None):  # flush
                chunks.append(out.to_ndarray())
        except av.error.FFmpegError as exc:
            raise MediaError(f"audio decoding failed (truncated or corrupt): {exc}", path=path) from exc
    if not chunks or sum(c.shape[1] for c in chunks) == 0:
        raise NoAudioError("audio track has no samples", path=path)
    audio = np.concatenate(chunks, axis=1).astype(np.float32, copy=False).mean(axis=0)  # [C, S] -> [S]
    if rate != sample_rate:
        audio = resample(audio, rate, sample_rate)
    if max_seconds is not None:
        audio = audio[:int(round(max_seconds * sample_rate))]
    return np.ascontiguousarray(audio, dtype=np.float32)


__all__ = [
    "KINDS", "MediaError", "NoAudioError", "VideoInfo", "decode_audio", "decode_video", "frame_indices",
    "frame_size", "num_frames", "probe_video", "resample", "resize_frames", "sample_video", "sampled_fps", "upright",
]
