"""A disk cache of each clip's *processed* media: what the processor would compute from the file.

Per clip and modality one entry holds exactly what ``Qwen2_5OmniProcessor`` computes inside its
``__call__`` (its own ``_process_videos`` / ``_process_audio``, with the processor's merged kwargs):

* video: ``pixel_values_videos [P, C*2*14*14]``, ``video_grid_thw [1, 3]``,
  ``video_second_per_grid`` (float), plus ``seconds`` (the clip's duration);
* audio: ``input_features [1, n_mels, F]``, ``feature_attention_mask [1, F]``, plus ``seconds``.

The processor is given each clip's *sampled* frame rate as ``fps`` (as qwen-omni-utils does), so
``video_second_per_grid`` is the real time a pair of frames spans, also when ``max_frames`` binds.

Audio is padded to the clip itself (``max_length`` = its sample count), never to the feature
extractor's 300 s window, which would dominate CPU time and memory; like that window (and the
reference pipeline, which pads to it), audio longer than 300 s is cut there.

The key is the sha256 of the file's bytes, the decode settings and the processor's video or audio
settings (``to_dict()`` and the merged call kwargs) plus the transformers version, so a different
processor, fps or audio cap never reuses a stale entry. Hashing every file on every access would
cost as much as decoding it, so an index maps ``(path, size, mtime_ns)`` to the content hash.

Entries are written to a temporary file and renamed into place (readers never see half an entry;
concurrent DataLoader workers may race, and the last identical write wins). Each entry carries its
lengths and a CRC32; an entry that fails the check is reported, recomputed and rewritten. A warm
read maps the file and checks the CRC; its tensors view the mapped pages (copy-on-write), so the
only copy of the pixels is the one the collator makes when it concatenates the batch. A clip that
cannot be decoded is cached as an error record, so a warm pass re-raises the same
:class:`~msa.data.media.MediaError` without decoding it again; a missing file is never cached.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import mmap
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import torch

from msa.data import media

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # 3: sampled fps per clip, librosa-style audio (whole track, soxr)
MAGIC = b"MSACACHE"
_HEADER = struct.Struct(">8sIIQ")  # magic, crc32 of everything after the header, meta length, data length
_ALIGN = 64  # tensor data offsets, so every dtype's view is aligned
_ERRORS = {"MediaError": media.MediaError, "NoAudioError": media.NoAudioError}


class CorruptEntry(Exception):
    """A cache file that fails its header, length or CRC check."""


def _atomic_write(path: Path, chunks) -> None:
    """Write ``chunks`` (bytes-like) to a temporary sibling of ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in ([chunks] if isinstance(chunks, (bytes, bytearray)) else chunks):
                fh.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def entry_chunks(obj: dict) -> list:
    """An entry as byte chunks: header, JSON layout (+ plain values), raw tensor bytes, 64-aligned.

    A raw layout rather than ``torch.save``: reading it back is one mmap and one CRC pass, with the
    tensors viewing the mapped pages, which keeps a warm read of a large video entry in the low ms;
    writing streams the tensors' own memory to the file without extra copies.
    """
    tensors = {k: v.contiguous() for k, v in obj.items() if isinstance(v, torch.Tensor)}
    values = {k: v for k, v in obj.items() if k not in tensors}
    layout, offset = {}, 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        layout[name] = [str(t.dtype).removeprefix("torch."), list(t.shape), offset, nbytes]
        offset = _aligned(offset + nbytes)
    meta = json.dumps({"tensors": layout, "values": values}).encode()
    data_start = _aligned(_HEADER.size + len(meta))
    chunks: list = [meta, bytes(data_start - _HEADER.size - len(meta))]
    written = 0
    for name, t in tensors.items():
        _, _, off, nbytes = layout[name]
        chunks.append(bytes(off - written))  # alignment padding
        chunks.append(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        written = off + nbytes
    chunks.append(bytes(offset - written))
    crc = 0
    for chunk in chunks:
        crc = zlib.crc32(chunk, crc)
    return [_HEADER.pack(MAGIC, crc, len(meta), offset), *chunks]


def encode_entry(obj: dict) -> bytes:
    """An entry as one bytes object (see :func:`entry_chunks`)."""
    return b"".join(entry_chunks(obj))


def decode_entry(buffer) -> dict:
    """The entry in ``buffer`` (bytes, bytearray or a writable mmap); tensors view the buffer.

    Raises :class:`CorruptEntry` if the header, the lengths or the CRC do not match.
    """
    if isinstance(buffer, bytes):
        buffer = bytearray(buffer)  # torch.frombuffer wants a writable buffer
    if len(buffer) < _HEADER.size:
        raise CorruptEntry(f"{len(buffer)} bytes, shorter than the header")
    magic, crc, meta_len, data_len = _HEADER.unpack_from(buffer)
    data_start = _aligned(_HEADER.size + meta_len)
    if magic != MAGIC or len(buffer) != data_start + data_len:
        raise CorruptEntry("bad magic or length")
    with memoryview(buffer) as view:
        if zlib.crc32(view[_HEADER.size:]) != crc:
            raise CorruptEntry("checksum mismatch")
        try:
            meta = json.loads(bytes(view[_HEADER.size: _HEADER.size + meta_len]))
        except ValueError as exc:
            raise CorruptEntry(f"unreadable layout: {exc}") from exc
    out = dict(meta["values"])
    for name, (dtype, shape, offset, nbytes) in meta["tensors"].items():
        dt = getattr(torch, dtype)
        if nbytes == 0:
            out[name] = torch.empty(shape, dtype=dt)
            continue
        count = nbytes // torch.empty((), dtype=dt).element_size()
        out[name] = torch.frombuffer(buffer, dtype=dt, count=count, offset=data_start + offset).reshape(shape)
    return out


def read_entry(path: Path) -> dict:
    """Map ``path`` copy-on-write and decode it (the tensors keep the mapping alive)."""
    with open(path, "rb") as fh:
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
        except ValueError as exc:  # an empty file cannot be mapped
            raise CorruptEntry(f"cannot map: {exc}") from exc
    return decode_entry(mm)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _plain(value: Any) -> Any:
    """A python float from a 1-element tensor/array/list, else the value unchanged."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if hasattr(value, "item"):
        value = value.item()
    return value


class MediaCache:
    """Processed video and audio features per clip, computed once and then read from disk.

    ``cache_dir=None`` keeps nothing on disk (every access computes): useful in tests and for
    one-off runs. ``stats`` counts ``hit``, ``miss``, ``corrupt`` and ``error_hit`` per modality.
    """

    def __init__(self, processor, cache_dir: str | os.PathLike | None = None, *, fps: float = 2.0,
                 min_frames: int = 4, max_frames: int = 768, max_audio_seconds: float | None = None,
                 video_min_pixels: int | None = None, video_max_pixels: int | None = None):
        import transformers

        media.num_frames(2, 1.0, fps, min_frames, max_frames)  # validates the frame settings early
        if max_audio_seconds is not None and max_audio_seconds <= 0:
            raise ValueError(f"max_audio_seconds must be > 0 or None, got {max_audio_seconds}")
        self.processor = processor
        self.dir = Path(cache_dir) if cache_dir is not None else None
        self.fps, self.min_frames, self.max_frames = float(fps), int(min_frames), int(max_frames)
        fe = processor.feature_extractor
        self.sample_rate = int(fe.sampling_rate)
        # The feature extractor's window (300 s for Qwen2.5-Omni) is the most the reference keeps.
        window = float(fe.n_samples) / self.sample_rate
        self.max_audio_seconds = window if max_audio_seconds is None else min(float(max_audio_seconds), window)
        # Fewer samples than this give no audio token at all (STFT window, then two stride-2 stages).
        self.min_audio_samples = max(int(fe.n_fft) + 1, 4 * int(fe.hop_length))
        # The processor's own kwarg merge: class defaults (e.g. its video "size"), saved config, fps.
        # Per-frame pixel budget: None keeps the processor's (Qwen's 128*28*28 .. 768*28*28 for video);
        # the small demo clips set it low so that a frame is 2x2 merged patches instead of ~300 tokens.
        size = {}
        if video_min_pixels is not None:
            size["shortest_edge"] = int(video_min_pixels)
        if video_max_pixels is not None:
            size["longest_edge"] = int(video_max_pixels)
        extra: dict = {"videos_kwargs": {}}
        if size:
            default = processor._merge_kwargs(tokenizer_init_kwargs=processor.tokenizer.init_kwargs, fps=self.fps,
                                              return_tensors="pt")["videos_kwargs"]["size"]
            extra["videos_kwargs"]["size"] = {**default, **size}
        if hasattr(processor.video_processor, "cap_pixels_per_frame"):
            # qwen-omni-utils (the reference preprocessing) bounds a video's total pixels by sharing a budget
            # over its frames; transformers 5.x does so only when asked (and warns until then). For clips of
            # a few seconds the share exceeds the per-frame cap, so nothing changes but the warning.
            extra["videos_kwargs"]["cap_pixels_per_frame"] = True
        merged = processor._merge_kwargs(tokenizer_init_kwargs=processor.tokenizer.init_kwargs, fps=self.fps,
                                         return_tensors="pt", **extra)
        self._merged = dict(merged, load_audio_from_video=False)  # a lone clip, features only
        # Each modality's key holds only its own settings: a new fps keeps the audio entries.
        common = dict(version=CACHE_VERSION, transformers=transformers.__version__)
        self._fingerprint = {
            "video": _json(dict(common, kind="video", processor=processor.video_processor.to_dict(),
                                call=merged["videos_kwargs"], decode=dict(fps=self.fps, min_frames=self.min_frames,
                                                                          max_frames=self.max_frames))),
            "audio": _json(dict(common, kind="audio", processor=fe.to_dict(), call=merged["audio_kwargs"],
                                decode=dict(sample_rate=self.sample_rate, max_audio_seconds=self.max_audio_seconds,
                                            min_samples=self.min_audio_samples))),
        }
        self._hashes: dict[tuple[str, int, int], str] = {}
        self.stats: collections.Counter = collections.Counter()

    # -- public API --------------------------------------------------------------------------
    def video(self, path: str | os.PathLike, max_frames: int | None = None) -> dict:
        """``pixel_values_videos, video_grid_thw, video_second_per_grid, seconds`` of the clip; ``max_frames``
        caps this clip below the cache's own (``data.max_prompt_tokens``), with its real sampled fps."""
        return self._get("video", Path(path), self._frame_cap(max_frames))

    def audio(self, path: str | os.PathLike) -> dict:
        """``input_features, feature_attention_mask, seconds`` of the clip's audio track."""
        return self._get("audio", Path(path))

    def key(self, kind: str, path: str | os.PathLike, max_frames: int | None = None) -> str:
        """The cache key of ``path``'s ``kind`` entry (content hash + settings, + a per-clip frame cap)."""
        content = self.content_hash(Path(path))
        cap = self._frame_cap(max_frames)
        extra = "" if cap is None else f"\nmax_frames={cap}"
        return hashlib.sha256(f"{content}\n{self._fingerprint[kind]}{extra}".encode()).hexdigest()

    def _frame_cap(self, max_frames: int | None) -> int | None:
        return None if max_frames is None or int(max_frames) >= self.max_frames else int(max_frames)

    def content_hash(self, path: Path) -> str:
        """sha256 of the file, looked up by (path, size, mtime_ns) so unchanged files are not re-read."""
        try:
            st = path.stat()
        except FileNotFoundError:
            raise media.MediaError("file not found", path=path, kind="missing") from None
        ident = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
        if ident in self._hashes:
            return self._hashes[ident]
        index_file = None
        if self.dir is not None:
            ident_key = hashlib.sha256(_json(ident).encode()).hexdigest()
            index_file = self.dir / "index" / ident_key[:2] / ident_key
            try:
                digest = index_file.read_text().strip()
                if len(digest) == 64:
                    self._hashes[ident] = digest
                    return digest
            except OSError:
                pass
        digest = file_sha256(path)
        self._hashes[ident] = digest
        if index_file is not None:
            _atomic_write(index_file, digest.encode())
        return digest

    # -- internals -----------------------------------------------------------------------------
    def _entry_path(self, kind: str, key: str) -> Path:
        assert self.dir is not None
        return self.dir / kind / key[:2] / f"{key}.pt"

    def _get(self, kind: str, path: Path, max_frames: int | None = None) -> dict:
        entry_file = self._entry_path(kind, self.key(kind, path, max_frames)) if self.dir is not None else None
        if entry_file is not None and entry_file.exists():
            try:
                entry = read_entry(entry_file)
            except (CorruptEntry, OSError) as exc:
                self.stats[f"{kind}/corrupt"] += 1
                log.warning("corrupt cache entry %s (%s); recomputing", entry_file, exc)
            else:
                if "error_kind" in entry:
                    self.stats[f"{kind}/error_hit"] += 1
                    raise _ERRORS[entry["error_class"]](entry["error_reason"], path=path, kind=entry["error_kind"])
                self.stats[f"{kind}/hit"] += 1
                return entry
        self.stats[f"{kind}/miss"] += 1
        try:
            entry = self._compute_video(path, max_frames) if kind == "video" else self._compute_audio(path)
        except media.MediaError as err:
            if entry_file is not None and err.kind != "missing":
                record = dict(error_class=type(err).__name__, error_kind=err.kind, error_reason=err.reason)
                _atomic_write(entry_file, entry_chunks(record))
            raise
        if entry_file is not None:
            _atomic_write(entry_file, entry_chunks(entry))
        return entry

    def _compute_video(self, path: Path, max_frames: int | None = None) -> dict:
        cap = self.max_frames if max_frames is None else max(self.min_frames, max_frames)
        frames, info = media.sample_video(path, self.fps, self.min_frames, cap)  # [T, H, W, 3]
        frames = media.resize_frames(frames, *self.frame_size(frames.shape[1], frames.shape[2], frames.shape[0]))
        fps = media.sampled_fps(info.total_frames, info.fps, frames.shape[0])
        kwargs = dict(self._merged, videos_kwargs=dict(self._merged["videos_kwargs"], fps=fps))
        processed, _ = self.processor._process_videos([frames], **kwargs)
        return {
            "pixel_values_videos": processed["pixel_values_videos"].contiguous(),  # [P, C*tps*ps*ps]
            "video_grid_thw": processed["video_grid_thw"].contiguous(),  # [1, 3]
            "video_second_per_grid": float(_plain(processed["video_second_per_grid"])),
            "seconds": float(info.duration),
        }

    def frame_size(self, height: int, width: int, n_frames: int) -> tuple[int, int]:
        """The processor's frame size for this clip (its pixel bounds, Qwen's whole-video budget)."""
        vp = self.processor.video_processor
        size = self._merged["videos_kwargs"]["size"]
        return media.frame_size(height, width, n_frames, factor=vp.patch_size * vp.merge_size,
                                min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"],
                                max_tokens=getattr(vp, "max_video_tokens", 128000))

    def _compute_audio(self, path: Path) -> dict:
        audio = media.decode_audio(path, self.sample_rate, self.max_audio_seconds)  # [S]
        if audio.size < self.min_audio_samples:
            raise media.NoAudioError(f"audio track too short ({audio.size} samples, need "
                                     f"{self.min_audio_samples})", path=path)
        return self.audio_features(audio)

    def audio_features(self, audio) -> dict:
        """Features of a waveform already at ``sample_rate``, padded to its own length.

        Its length is rounded up to a whole hop: the reference pads to 300 s, which is a whole number
        of hops, and so keeps the mel frame that starts inside the last partial hop (``ceil(n / hop)``
        frames); padding to exactly ``n`` would drop it, and one clip in four would get one audio token
        fewer than the reference.
        """
        hop = int(self.processor.feature_extractor.hop_length)
        kwargs = dict(self._merged["audio_kwargs"], max_length=-(-int(audio.shape[0]) // hop) * hop)
        processed, _ = self.processor._process_audio([audio], **kwargs)
        return {
            "input_features": processed["input_features"].contiguous(),  # [1, n_mels, F]
            "feature_attention_mask": processed["feature_attention_mask"].contiguous(),  # [1, F]
            "seconds": audio.shape[0] / self.sample_rate,
        }


__all__ = ["CACHE_VERSION", "CorruptEntry", "MediaCache", "decode_entry", "encode_entry", "entry_chunks",
           "file_sha256", "read_entry"]
