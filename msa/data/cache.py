"""The media store: each clip's media as ``Qwen2_5OmniProcessor`` would see it, kept on disk.

    python -m msa.data.cache stats <dir>                  # entries, GB, KB per video token, last use
    python -m msa.data.cache prune <dir> --max-gb 400     # least recently used entries go first
    python -m msa.data.cache verify <dir> [--delete]      # every entry's CRC

Per clip and modality one entry (:mod:`msa.data.store`) holds:

* video: the sampled frames, upright (:func:`msa.data.media.sample_video`) and resized as
  qwen-omni-utils resizes them, as uint8 in the processor's patch order (``patches [P, 3*2*14*14]``;
  :func:`patchify`), with the grid, the sampled frame rate and the clip's duration. Loading converts
  and normalises them as the processor does (:func:`normalise`), so every access, cold or warm,
  returns exactly what the processor computes:
  ``pixel_values_videos [P, C*2*14*14]`` float32, ``video_grid_thw [1, 3]``, ``video_second_per_grid``
  and ``seconds``. The uint8 frames are 4x smaller than the float32 patches: 4.7 KB per video token
  (2 frames x 28 x 28 pixels x 3 bytes) instead of 18.8 KB; :func:`store_bytes` gives an entry's size
  from its grid without decoding anything.
* audio: the processor's ``input_features [1, n_mels, F]``, ``feature_attention_mask [1, F]`` and
  ``seconds``; the audio is padded to the clip itself (``max_length`` = its sample count), never to
  the feature extractor's 300 s window, and, like that window, cut at 300 s.

``mode`` says what is kept: ``all`` (video and audio), ``audio`` (video is decoded on every access) or
``none`` (everything is decoded on every access, in the DataLoader workers; nothing is hashed).

The key is the sha256 of the file's bytes, the decode settings (``fps``, ``min_frames``,
``max_frames``, which a caller may set per clip) and the processor's settings plus the transformers
version, so a different processor, fps or audio cap never reuses a stale entry. Hashing every file
on every access would cost as much as decoding it, so an index maps ``(path, size, mtime_ns)`` to
the content hash.

Each entry carries its lengths and a CRC32; an entry that fails the check is reported, recomputed and
rewritten. A clip that cannot be decoded is cached as an error record, so a warm pass re-raises the
same :class:`~msa.data.media.MediaError` without decoding it again; the record names the clip by the
path it is read under (another file with the same bytes is another clip). A missing or unreadable
file is never cached.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import torch

from msa.data import media
from msa.data.store import (CorruptEntry, Store, atomic_write, decode_entry, encode_entry, entry_bytes,
                            entry_chunks, format_stats, read_entry)

log = logging.getLogger(__name__)

CACHE_VERSION = 5  # 5: video entries hold the resized uint8 frames in patch order (normalised on load); rotation
MODES = ("all", "audio", "none")
_STORED = {"all": ("video", "audio"), "audio": ("audio",), "none": ()}
_ERRORS = {"MediaError": media.MediaError, "NoAudioError": media.NoAudioError}
_CLIP = "<clip>"  # stands for the clip's path in a cached error reason


def store_bytes(video_grid_thw=None, audio_seconds: float | None = None, *, patch_size: int = 14,
                temporal_patch_size: int = 2, sample_rate: int = 16000, hop_length: int = 160,
                n_mels: int = 128) -> int:
    """Bytes the store takes for one clip: its video entry from the grid, its audio entry from the seconds.

    ``video_grid_thw``: ``(t, h, w)`` in patches (a list, or the processor's ``[1, 3]`` tensor), None
    without video; ``audio_seconds``: the audio kept (the track, cut at 300 s), None without audio.
    Qwen2.5-Omni's settings are the defaults. Exact to within the entries' layout text (+-64 bytes each).

    >>> store_bytes([10, 40, 72])  # 10 s at 720p, Qwen's budget: 20 frames of 560x1008 x 3 + 256, 7,200 tokens
    33869056
    >>> store_bytes(None, 10.0)  # 1,000 mel frames: 512,000 + 4,000 (-> 4,032) + 256
    516288
    """
    n = 0
    if video_grid_thw is not None:
        t, h, w = (int(x) for x in torch.as_tensor(video_grid_thw).reshape(-1)[:3])
        n += entry_bytes([t * temporal_patch_size * h * patch_size * w * patch_size * 3])  # uint8 RGB frames
    if audio_seconds is not None:
        samples = int(round(audio_seconds * sample_rate))
        frames = -(-samples // hop_length)
        n += entry_bytes([4 * n_mels * frames, 4 * frames])  # float32 features, int32 mask
    return n


def patchify(frames: torch.Tensor, patch: int = 14, merge: int = 2, tps: int = 2) -> tuple[torch.Tensor, list]:
    """``frames [T, H, W, C]`` -> ``patches [gt*gh*gw, C*tps*patch*patch]`` (same dtype) and the grid
    ``[gt, gh, gw]``, in the processor's order (``Qwen2VLVideoProcessor.patchify``: time, merged rows,
    merged columns, the merge window, then channel, frame, pixel row, pixel column). An odd frame count
    repeats the last frame, as the processor does.

    >>> px, grid = patchify(torch.arange(2 * 28 * 28 * 3).reshape(2, 28, 28, 3))
    >>> grid, tuple(px.shape), px[0, :3].tolist()  # one merged token: 2x2 patches of 3*2*14*14 values
    ([1, 2, 2], (4, 1176), [0, 3, 6])
    """
    if frames.shape[0] % tps:
        frames = torch.cat([frames, frames[-1:].expand(tps - frames.shape[0] % tps, -1, -1, -1)])
    t, h, w, c = frames.shape
    gt, gh, gw = t // tps, h // patch, w // patch
    x = frames.reshape(gt, tps, gh // merge, merge, patch, gw // merge, merge, patch, c)
    x = x.permute(0, 2, 5, 3, 6, 8, 1, 4, 7).reshape(gt * gh * gw, c * tps * patch * patch)
    return x, [gt, gh, gw]


def normalise(patches: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``patches [P, C*K]`` uint8 -> float32 ``(x - mean[c]) / std[c]``: the processor's fused rescale and
    normalise (``mean``, ``std`` already times 255), the same float32 operation on every value.

    >>> normalise(torch.full((1, 6), 255, dtype=torch.uint8), torch.full((3,), 127.5), torch.full((3,), 127.5))
    tensor([[1., 1., 1., 1., 1., 1.]])
    """
    p, c = patches.shape[0], mean.shape[0]
    x = patches.view(p, c, -1).to(torch.float32).sub_(mean.view(1, c, 1)).div_(std.view(1, c, 1))
    return x.view(p, -1)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def content_hash(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                 memo: dict | None = None) -> str:
    """sha256 of the file at ``path``, looked up by (absolute path, size, mtime_ns) so unchanged files are
    not re-read: in ``memo`` (this process) and in the store's index under ``cache_dir`` (``index/``), which
    :class:`MediaCache` and the split-overlap check (:mod:`msa.data.audit`) share.

    Raises :class:`~msa.data.media.MediaError` for a path that is missing, a directory or unreadable.
    """
    path = Path(path)
    cache_dir = Path(cache_dir) if cache_dir is not None else None
    memo = {} if memo is None else memo
    try:
        st = path.stat()
    except FileNotFoundError:
        raise media.MediaError("file not found", path=path, kind="missing") from None
    except OSError as exc:
        raise media.MediaError(f"cannot read the file: {exc.strerror or exc}", path=path) from exc
    if stat.S_ISDIR(st.st_mode):
        raise media.MediaError("a directory, not a clip file", path=path, kind="missing")
    ident = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if ident in memo:
        return memo[ident]
    index_file = None
    if cache_dir is not None:
        ident_key = hashlib.sha256(_json(ident).encode()).hexdigest()
        index_file = cache_dir / "index" / ident_key[:2] / ident_key
        try:
            digest = index_file.read_text().strip()
            if len(digest) == 64:
                memo[ident] = digest
                return digest
        except OSError:
            pass
    try:
        digest = file_sha256(path)
    except OSError as exc:  # no read permission, an I/O error, a special file
        raise media.MediaError(f"cannot read the file: {exc.strerror or exc}", path=path) from exc
    memo[ident] = digest
    if index_file is not None:
        atomic_write(index_file, digest.encode())
    return digest


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
    """Processed video and audio features per clip, decoded once and then read from disk.

    ``cache_dir=None`` or ``mode="none"`` keeps nothing on disk (every access decodes). ``max_gb``
    bounds the store (least recently used entries go first; None: no bound). ``stats`` counts
    ``hit``, ``miss``, ``corrupt``, ``error_hit`` and ``decode`` (not stored) per modality.
    """

    def __init__(self, processor, cache_dir: str | os.PathLike | None = None, *, fps: float = 2.0,
                 min_frames: int = 4, max_frames: int = 768, max_audio_seconds: float | None = None,
                 video_min_pixels: int | None = None, video_max_pixels: int | None = None, mode: str = "all",
                 max_gb: float | None = None):
        import transformers

        media.num_frames(2, 1.0, fps, min_frames, max_frames)  # validates the frame settings early
        if max_audio_seconds is not None and max_audio_seconds <= 0:
            raise ValueError(f"max_audio_seconds must be > 0 or None, got {max_audio_seconds}")
        if mode not in MODES:
            raise ValueError(f"cache mode must be one of {MODES}, got {mode!r}")
        if max_gb is not None and max_gb <= 0:
            raise ValueError(f"cache_max_gb must be > 0 or null, got {max_gb}")
        self.processor = processor
        self.dir = Path(cache_dir) if cache_dir is not None and mode != "none" else None
        self.mode = mode
        self.stored = _STORED[mode] if self.dir is not None else ()
        self.store = (Store(self.dir, None if max_gb is None else int(max_gb * 1e9), version=CACHE_VERSION)
                      if self.dir is not None else None)
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
        call = {k: v for k, v in merged["videos_kwargs"].items() if k != "fps"}  # fps: the decode settings'
        self._video_common = dict(common, kind="video", processor=processor.video_processor.to_dict(), call=call)
        self._fingerprints: dict[tuple, str] = {}
        self._audio_fingerprint = _json(dict(common, kind="audio", processor=fe.to_dict(), call=merged["audio_kwargs"],
                                             decode=dict(sample_rate=self.sample_rate,
                                                         max_audio_seconds=self.max_audio_seconds,
                                                         min_samples=self.min_audio_samples)))
        self._hashes: dict[tuple[str, int, int], str] = {}
        self.stats: collections.Counter = collections.Counter()

    # -- public API --------------------------------------------------------------------------
    def video(self, path: str | os.PathLike, *, fps: float | None = None, min_frames: int | None = None,
              max_frames: int | None = None) -> dict:
        """``pixel_values_videos, video_grid_thw, video_second_per_grid, seconds`` of the clip.

        ``fps``, ``min_frames``, ``max_frames`` override the cache's frame settings for this clip (a
        long clip given fewer frames, say); each setting has its own entry.
        """
        settings = self._settings(fps, min_frames, max_frames)
        return self._get("video", Path(path), settings)

    def audio(self, path: str | os.PathLike) -> dict:
        """``input_features, feature_attention_mask, seconds`` of the clip's audio track."""
        return self._get("audio", Path(path), None)

    def key(self, kind: str, path: str | os.PathLike, settings: tuple | None = None) -> str:
        """The cache key of ``path``'s ``kind`` entry (content hash + settings; video: the cache's frame
        settings unless ``settings = (fps, min_frames, max_frames)``)."""
        content = self.content_hash(Path(path))
        return hashlib.sha256(f"{content}\n{self._fingerprint(kind, settings)}".encode()).hexdigest()

    def content_hash(self, path: Path) -> str:
        """sha256 of the file, looked up by (path, size, mtime_ns) so unchanged files are not re-read
        (:func:`content_hash`, with this store's index).

        Raises :class:`~msa.data.media.MediaError` for a path that is missing, a directory or unreadable.
        """
        return content_hash(path, self.dir, self._hashes)

    def frame_size(self, height: int, width: int, n_frames: int) -> tuple[int, int]:
        """The processor's frame size for this clip (its pixel bounds, Qwen's whole-video budget)."""
        vp = self.processor.video_processor
        size = self._merged["videos_kwargs"]["size"]
        return media.frame_size(height, width, n_frames, factor=vp.patch_size * vp.merge_size,
                                min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"],
                                max_tokens=getattr(vp, "max_video_tokens", 128000))

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

    def video_features(self, entry: dict) -> dict:
        """The processor's video outputs from a stored video entry: ``patches`` (uint8, the processor's
        patch order) or, where the shortcut does not apply, ``frames`` (uint8 ``[T, H, W, 3]``), and ``fps``.

        Patches are normalised with the processor's fused mean and std, ``(x - mean*255) / (std*255)``
        in float32, the same operation on every value as the processor does after its own patchify, so
        the result is bit-identical (tests compare the two); the uint8 reorder happened when the entry
        was written, so a warm read is one pass over the pixels.
        """
        fps = float(entry["fps"])
        if "patches" in entry:
            p = self._patch_settings()
            pixels = normalise(entry["patches"], p["mean"], p["std"])
            grid = torch.tensor([entry["grid"]])
            second_per_grid = p["tps"] / fps  # as the processor computes it
        else:
            kwargs = dict(self._merged, videos_kwargs=dict(self._merged["videos_kwargs"], fps=fps))
            processed, _ = self.processor._process_videos([entry["frames"].numpy()], **kwargs)
            pixels, grid = processed["pixel_values_videos"], processed["video_grid_thw"]
            second_per_grid = float(_plain(processed["video_second_per_grid"]))
        return {
            "pixel_values_videos": pixels.contiguous(),  # [P, C*tps*ps*ps]
            "video_grid_thw": grid.contiguous(),  # [1, 3]
            "video_second_per_grid": second_per_grid,
            "seconds": float(entry["seconds"]),
        }

    def _patch_settings(self) -> dict | None:
        """The video processor's patch sizes and fused mean/std, or None if it does not rescale and normalise."""
        if not hasattr(self, "_patch"):
            vp, kw = self.processor.video_processor, self._merged["videos_kwargs"]

            def get(name):
                return kw.get(name, getattr(vp, name, None))

            self._patch = None
            if get("do_rescale") and get("do_normalize") and get("rescale_factor"):
                # The processor's fusion: float32 tensors scaled by 1 / rescale_factor (image_processing_backends)
                self._patch = dict(mean=torch.tensor(get("image_mean")) * (1.0 / get("rescale_factor")),
                                   std=torch.tensor(get("image_std")) * (1.0 / get("rescale_factor")),
                                   patch=int(get("patch_size")), merge=int(get("merge_size")),
                                   tps=int(get("temporal_patch_size")))
        return self._patch

    # -- internals -----------------------------------------------------------------------------
    def _settings(self, fps, min_frames, max_frames) -> tuple[float, int, int]:
        settings = (float(self.fps if fps is None else fps), int(self.min_frames if min_frames is None else min_frames),
                    int(self.max_frames if max_frames is None else max_frames))
        media.num_frames(2, 1.0, *settings)  # bad values fail here, naming them
        return settings

    def _fingerprint(self, kind: str, settings: tuple | None) -> str:
        if kind == "audio":
            return self._audio_fingerprint
        settings = settings or (self.fps, self.min_frames, self.max_frames)
        if settings not in self._fingerprints:
            decode = dict(zip(("fps", "min_frames", "max_frames"), settings))
            self._fingerprints[settings] = _json(dict(self._video_common, decode=decode))
        return self._fingerprints[settings]

    def _get(self, kind: str, path: Path, settings: tuple | None) -> dict:
        entry_file = None
        if kind in self.stored:
            entry_file = self.store.path(kind, self.key(kind, path, settings))
        if entry_file is not None and entry_file.exists():
            try:
                entry = self.store.read(entry_file)
            except FileNotFoundError:  # pruned by another worker since: a miss
                pass
            except (CorruptEntry, OSError) as exc:
                self.stats[f"{kind}/corrupt"] += 1
                log.warning("corrupt cache entry %s (%s); recomputing", entry_file, exc)
            else:
                if "error_kind" in entry:
                    self.stats[f"{kind}/error_hit"] += 1
                    reason = entry["error_reason"].replace(_CLIP, str(path))
                    raise _ERRORS[entry["error_class"]](reason, path=path, kind=entry["error_kind"])
                self.stats[f"{kind}/hit"] += 1
                return self._load(kind, entry)
        self.stats[f"{kind}/{'miss' if entry_file is not None else 'decode'}"] += 1
        try:
            entry = self._decode_video(path, settings) if kind == "video" else self._decode_audio(path)
        except media.MediaError as err:
            if entry_file is not None and err.kind != "missing":
                # The record serves every file with these bytes: each names itself when it is read.
                record = dict(error_class=type(err).__name__, error_kind=err.kind,
                              error_reason=err.reason.replace(str(path), _CLIP), version=CACHE_VERSION)
                self.store.write(entry_file, record)
            raise
        if entry_file is not None:
            self.store.write(entry_file, dict(entry, version=CACHE_VERSION))
        return self._load(kind, entry)

    def _load(self, kind: str, entry: dict) -> dict:
        # Cold and warm accesses go through the same step on the same bytes, so they agree bit for bit.
        if kind == "video":
            return self.video_features(entry)
        return {k: v for k, v in entry.items() if k != "version"}

    def _decode_video(self, path: Path, settings: tuple | None) -> dict:
        """The stored form of a clip's video: the resized uint8 frames, patchified (or as frames where the
        processor would resize them again or does not fuse rescale and normalise), the sampled fps, the grid."""
        fps, min_frames, max_frames = settings or (self.fps, self.min_frames, self.max_frames)
        frames, info = media.sample_video(path, fps, min_frames, max_frames)  # [T, H, W, 3], upright
        height, width = self.frame_size(frames.shape[1], frames.shape[2], frames.shape[0])
        frames = torch.from_numpy(media.resize_frames(frames, height, width))  # [T, H', W', 3] uint8
        vp = self.processor.video_processor
        p = self._patch_settings()
        entry = {"fps": media.sampled_fps(info.total_frames, info.fps, frames.shape[0]),
                 "seconds": float(info.duration), "merge_size": int(vp.merge_size)}
        if p is not None and self.frame_size(height, width, frames.shape[0]) == (height, width):
            entry["patches"], entry["grid"] = patchify(frames, p["patch"], p["merge"], p["tps"])  # [P, C*tps*ps*ps]
        else:
            tps = int(vp.temporal_patch_size)
            entry["frames"] = frames
            entry["grid"] = [-(-frames.shape[0] // tps), height // vp.patch_size, width // vp.patch_size]
        return entry

    def _decode_audio(self, path: Path) -> dict:
        audio = media.decode_audio(path, self.sample_rate, self.max_audio_seconds)  # [S]
        if audio.size < self.min_audio_samples:
            raise media.NoAudioError(f"audio track too short ({audio.size} samples, need "
                                     f"{self.min_audio_samples})", path=path)
        return self.audio_features(audio)


# -- command line ----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """``python -m msa.data.cache stats|prune|verify <dir>``: see the module doc."""
    parser = argparse.ArgumentParser(prog="python -m msa.data.cache", description="Inspect and trim a media store.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stats", help="entries, GB, KB per video token, last use, per modality")
    p.add_argument("dir", type=Path)
    p = sub.add_parser("prune", help="delete least recently used entries down to --max-gb")
    p.add_argument("dir", type=Path)
    p.add_argument("--max-gb", type=float, required=True)
    p = sub.add_parser("verify", help="check every entry's CRC; --delete removes the bad ones")
    p.add_argument("dir", type=Path)
    p.add_argument("--delete", action="store_true")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.error(f"{args.dir}: no such directory")
    store = Store(args.dir, version=CACHE_VERSION)
    if args.command == "stats":
        print(format_stats(store.stats()))
        stale = store.stale_temporaries()
        if stale:
            print(f"{len(stale)} temporary files of crashed writers (prune removes them)")
        return 0
    if args.command == "prune":
        if args.max_gb < 0:
            parser.error(f"--max-gb must be >= 0, got {args.max_gb}")
        deleted, freed = store.prune(int(args.max_gb * 1e9))
        left = sum(s.bytes for s in store.stats().values())
        print(f"deleted {deleted} entries ({freed / 1e9:.3f} GB); {left / 1e9:.3f} GB left")
        return 0
    bad = store.verify(delete=args.delete)
    for path, why in bad:
        print(f"{'deleted' if args.delete else 'corrupt'}: {path}: {why}")
    print(f"{len(bad)} corrupt entries" + (" deleted" if args.delete and bad else ""))
    return 1 if bad and not args.delete else 0


__all__ = ["CACHE_VERSION", "MODES", "CorruptEntry", "MediaCache", "decode_entry", "encode_entry", "entry_chunks",
           "file_sha256", "main", "normalise", "patchify", "read_entry", "store_bytes"]

if __name__ == "__main__":
    sys.exit(main())
