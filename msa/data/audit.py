"""What a dataset holds, read before any training, and the clips its splits share.

    python -m msa.data.audit data=sims data.root=/data/CH-SIMS [--out DIR]

Read-only on the dataset (the header and fingerprint caches go to ``paths.cache_dir``; a synthetic set
is generated first if it is not there yet). Prints a Markdown report and writes it to
``DIR/audit.md`` (default ``outputs/audit/<data.name>``): clips per split and class, label and
unimodal-label histograms, clips shared between splits (pairs), clips without audio or video,
duration, frame-size, frame-rate and sample-rate spread, transcript lengths.

Clips shared between splits are found in three steps, each only where the one before cannot settle it,
so that a second plan of the same dataset costs a few file stats:

1. the same file listed in two splits;
2. the same bytes: only files whose sizes collide across splits are hashed (the media store's content
   hash and its ``(path, size, mtime)`` index, :func:`msa.data.cache.content_hash`);
3. the same decoded content (a re-encode: other bytes, same frames and sound): only clips whose header
   facts (frame count, frame rate, frame size; duration without video) collide across splits get a
   fingerprint, :func:`fingerprint`: four frames of the first two seconds as 8x8 grey thumbnails, and the
   loudness of 32 windows and the spectrum in 24 bands of the audio there, compared with tolerances a
   re-encode stays within (:func:`same_content`). Fingerprints are kept next to the header cache, per ``(path, size, mtime)``.

The run plan (:mod:`msa.plan`) calls :func:`check_split_overlap` for the training dataset of every
training run; a shared clip refuses the run, naming both sides, unless ``data.allow_split_overlap=true``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msa.config import ConfigError

log = logging.getLogger(__name__)

FP_SECONDS = 2.0  # the stretch at the start of a clip the fingerprint reads
FP_FRAMES = 4  # frames kept from it, evenly spaced
FP_GRID = 8  # each frame as an 8x8 grey thumbnail (area-averaged)
FP_WINDOWS = 32  # audio loudness (mean square, dB) in this many equal windows of the same stretch
# Measured on the demo set (2 s, 64x64): a re-encode (mpeg4 400 kb/s, or x264 100 kb/s, AAC 32-48 kb/s)
# moves the thumbnails by 1.1-1.2 grey levels and the loudness by 0.04-0.13 dB; the closest two different
# clips of that set (one speaker, one face, other takes) are 4.4 levels and 1.5 dB apart.
PIXEL_TOL = 3.0  # mean |difference| of the thumbnails, grey levels of 255
AUDIO_TOL_DB = 0.75  # mean |difference| of the window loudness
# The loudness alone cannot tell two steady tones (or voices) of one level apart: the spectrum of the same
# stretch, in FP_BANDS log-spaced bands, can. Re-encodes move it by 0.1-0.24 dB; two sines 50 Hz apart 3.3 dB.
FP_BANDS = 24
BAND_HZ = (80.0, 4000.0)  # below what a low-bitrate AAC encoder cuts
SPECTRUM_FLOOR_DB = 40.0  # bands more than this below the strongest compare as equal (codec noise lives there)
SPECTRUM_TOL_DB = 1.0
FP_VERSION = 3  # cached fingerprints of another version are computed again
TOLERANCES = (("frames", PIXEL_TOL), ("audio", AUDIO_TOL_DB), ("spectrum", SPECTRUM_TOL_DB))
SILENCE_DB = -80.0  # loudness floor: digital silence and dither compare equal


@dataclass(frozen=True)
class ClipRef:
    split: str
    id: str
    path: str

    def __str__(self) -> str:
        return f"{self.split} {self.id} ({self.path})"


@dataclass(frozen=True)
class Overlap:
    """Two clips of different splits that are one clip: ``how`` is ``same file``, ``same bytes`` or
    ``same content`` (decoded)."""

    a: ClipRef
    b: ClipRef
    how: str

    def __str__(self) -> str:
        return f"{self.a} = {self.b} [{self.how}]"


# ---------------------------------------------------------------- fingerprints

def _thumbnail(frame) -> np.ndarray:
    """A :data:`FP_GRID` x :data:`FP_GRID` grey thumbnail (float32) of a decoded frame, upright, by area
    averaging; the luma plane is read as it is (no colour conversion) when the frame has one."""
    from msa.data.media import upright

    w, h = frame.width, frame.height
    if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"):
        plane = frame.planes[0]
        grey = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:h, :w]
    else:
        grey = frame.to_ndarray(format="gray")
    grey = upright(grey[..., None], frame.rotation)[..., 0]  # [H, W]
    rows = np.linspace(0, grey.shape[0], FP_GRID + 1).astype(int)
    cols = np.linspace(0, grey.shape[1], FP_GRID + 1).astype(int)
    sums = np.add.reduceat(np.add.reduceat(grey.astype(np.float32), rows[:-1], axis=0), cols[:-1], axis=1)
    return sums / np.outer(np.diff(rows), np.diff(cols))


def fingerprint(path: str | os.PathLike) -> dict:
    """``{"frames": [FP_FRAMES * FP_GRID**2] grey levels or None, "audio": [FP_WINDOWS] dB or None}`` of
    the clip's first :data:`FP_SECONDS`, from one pass over its packets; a file that cannot be decoded
    raises :class:`~msa.data.media.MediaError` naming it."""
    import av

    from msa.data import media

    path = Path(path)
    kept: list[np.ndarray] = []
    parts: list[np.ndarray] = []
    with media._open(path) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        want: list[int] = []
        if video is not None:
            rate = float(video.average_rate or video.guessed_rate or 25)
            window = max(1, int(round(FP_SECONDS * rate)))
            if video.frames:
                window = min(window, video.frames)
            want = sorted(set(np.linspace(0, window - 1, FP_FRAMES).round().astype(int).tolist()))
        sample_rate = int(audio.codec_context.sample_rate or audio.rate or 0) if audio is not None else 0
        need = int(FP_SECONDS * sample_rate)
        seen, got = 0, 0
        video_done, audio_done = video is None, not need
        try:
            for packet in container.demux(*(s for s in (video, audio) if s is not None)):
                if packet.stream is video and not video_done:
                    for frame in packet.decode():
                        if seen in want:
                            kept.append(_thumbnail(frame))
                        seen += 1
                        video_done = seen > want[-1]
                elif packet.stream is audio and not audio_done:
                    for frame in packet.decode():
                        x = frame.to_ndarray()  # [C, S] planar or [1, S*C] packed
                        y = x.astype(np.float32)
                        if np.issubdtype(x.dtype, np.integer):
                            y /= float(np.iinfo(x.dtype).max)
                        mono = y.mean(axis=0) if frame.format.is_planar else y.reshape(-1, len(frame.layout.channels)).mean(axis=1)
                        parts.append(mono)
                        got += mono.shape[0]
                        audio_done = got >= need
                if video_done and audio_done:
                    break
        except av.error.FFmpegError as exc:
            raise media.MediaError(f"decoding failed (truncated or corrupt): {exc}", path=path) from exc
    frames = None
    if kept:
        while len(kept) < FP_FRAMES:  # fewer frames than asked for: the last one again
            kept.append(kept[-1])
        frames = np.concatenate([k.ravel() for k in kept]).round().astype(int).tolist()  # whole grey levels
    samples = np.concatenate(parts)[:need] if parts else np.zeros(0, np.float32)
    sound = _loudness(samples)
    return {"frames": frames, "audio": sound, "spectrum": _spectrum(samples, sample_rate) if sound else None}


def _loudness(samples: np.ndarray) -> list[float] | None:
    """Mean-square loudness (dB) of :data:`FP_WINDOWS` equal windows, floored at :data:`SILENCE_DB`.

    >>> _loudness(np.full(1600, 0.1, np.float32))[:2]
    [-20.0, -20.0]
    """
    if samples.shape[0] < FP_WINDOWS:
        return None
    windows = np.array_split(samples.astype(np.float64), FP_WINDOWS)
    db = [10 * np.log10(max(float(np.mean(w ** 2)), 1e-12)) for w in windows]
    return [round(float(max(d, SILENCE_DB)), 2) for d in db]


def _spectrum(samples: np.ndarray, rate: int) -> list[float]:
    """Power (dB) in :data:`FP_BANDS` log-spaced bands over :data:`BAND_HZ`, floored
    :data:`SPECTRUM_FLOOR_DB` below the strongest band."""
    x = samples.astype(np.float64) * np.hanning(samples.shape[0])
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(samples.shape[0], 1.0 / rate)
    edges = np.geomspace(*BAND_HZ, FP_BANDS + 1)
    band = np.array([power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(edges, edges[1:])])
    db = 10 * np.log10(np.maximum(band, 1e-20))
    return [round(float(v), 2) for v in np.maximum(db, db.max() - SPECTRUM_FLOOR_DB)]


def same_content(fa: Mapping, fb: Mapping) -> bool:
    """Whether two fingerprints are one clip: the thumbnails, the loudness and the spectrum each within
    its tolerance (:data:`TOLERANCES`, mean absolute differences), and the same modalities present.

    >>> a = {"frames": [10] * 256, "audio": [-20.0] * 32, "spectrum": [-30.0] * 24}
    >>> same_content(a, {"frames": [12] * 256, "audio": [-20.5] * 32, "spectrum": [-30.5] * 24})
    True
    >>> same_content(a, {**a, "frames": [30] * 256}), same_content(a, {**a, "spectrum": [-33.0] * 24})
    (False, False)
    >>> same_content(a, {"frames": [10] * 256, "audio": None, "spectrum": None})
    False
    """
    for key, tol in TOLERANCES:
        x, y = fa.get(key), fb.get(key)
        if (x is None) != (y is None):
            return False
        if x is not None and (len(x) != len(y) or float(np.mean(np.abs(np.subtract(x, y, dtype=float)))) > tol):
            return False
    return fa.get("frames") is not None or fa.get("audio") is not None


def fingerprints(paths: Iterable[str], store: Path | None = None, workers: int = 4) -> dict[str, dict | Exception]:
    """:func:`fingerprint` of every path, reusing the entries of ``store`` (a JSON file, ``{absolute path:
    {size, mtime_ns, fp}}``) whose file is unchanged, and adding the new ones to it."""
    from msa.data.media import MediaError

    paths = list(dict.fromkeys(str(p) for p in paths))
    known = {}
    if store is not None:
        try:
            known = json.loads(store.read_text())
        except (OSError, ValueError):
            known = {}
    fresh: dict = {}

    def one(p: str):
        st = os.stat(p)
        ident = os.path.abspath(p)
        try:
            fp = fingerprint(p)
        except MediaError as exc:
            return exc
        fresh[ident] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "v": FP_VERSION, "fp": fp}
        return fp

    out = {}
    for p in paths:  # the cached ones first, without threads (a second plan finds them all here)
        st = os.stat(p)
        rec = known.get(os.path.abspath(p))
        if rec and rec["size"] == st.st_size and rec["mtime_ns"] == st.st_mtime_ns and rec.get("v") == FP_VERSION:
            out[p] = rec["fp"]
    missing = [p for p in paths if p not in out]
    if len(missing) < 8 or workers <= 1:
        out.update({p: one(p) for p in missing})
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            out.update(zip(missing, pool.map(one, missing)))
    out = {p: out[p] for p in paths}
    if store is not None and fresh:
        from msa.data.store import atomic_write

        atomic_write(store, json.dumps({**known, **fresh}).encode())
    return out


# ---------------------------------------------------------------- shared clips

def header_key(h) -> tuple | None:
    """The header facts two copies of one clip share, whatever their encoding: frame count, frame rate
    and frame size (duration to 0.1 s without video)."""
    if h is None or isinstance(h, Exception):
        return None
    if h.has_video:
        return ("video", h.n_frames, round(float(h.fps), 2), h.width, h.height)
    return ("audio", round(float(h.duration), 1))


def _across(groups: Iterable[list[ClipRef]]) -> Iterable[list[ClipRef]]:
    """The groups whose clips come from more than one split."""
    return (g for g in groups if len({c.split for c in g}) > 1)


def _pairs(group: Sequence[ClipRef]) -> Iterable[tuple[ClipRef, ClipRef]]:
    for i, a in enumerate(group):
        for b in group[i + 1:]:
            if a.split != b.split:
                yield a, b


def _content_pairs(group: Sequence[ClipRef], fps: Mapping[str, Mapping]) -> Iterable[tuple[ClipRef, ClipRef]]:
    """The pairs of ``group`` (clips of different splits) whose fingerprints are one clip, by
    :func:`same_content`'s rule, one clip against a whole split at a time (a demo split is 210 clips)."""
    def matrix(refs, key, width):
        rows = [fps[c.path].get(key) for c in refs]
        out = np.full((len(refs), width), np.nan, np.float32)
        for i, r in enumerate(rows):
            if r is not None and len(r) == width:
                out[i] = r
        return out

    splits = sorted({c.split for c in group})
    parts = {s: [c for c in group if c.split == s] for s in splits}
    widths = {"frames": FP_FRAMES * FP_GRID ** 2, "audio": FP_WINDOWS, "spectrum": FP_BANDS}
    mats = {s: [matrix(parts[s], key, widths[key]) for key, _ in TOLERANCES] for s in splits}
    for i, s1 in enumerate(splits):
        for s2 in splits[i + 1:]:
            n2 = len(parts[s2])
            step = max(1, (1 << 22) // max(1, n2 * widths["frames"]))  # rows at a time: <= 16 MB of differences
            for start in range(0, len(parts[s1]), step):
                rows = slice(start, start + step)
                ok = np.ones((len(parts[s1][rows]), n2), bool)
                present = np.zeros_like(ok)
                for m1, m2, (_, tol) in zip(mats[s1], mats[s2], TOLERANCES):
                    has1, has2 = ~np.isnan(m1[rows, 0]), ~np.isnan(m2[:, 0])
                    ok &= has1[:, None] == has2[None, :]
                    both = has1[:, None] & has2[None, :]
                    dist = np.abs(m1[rows, None, :] - m2[None, :, :]).mean(axis=2)  # [rows, n2]
                    ok &= ~both | (dist <= tol)
                    present |= both
                for r, c in zip(*np.nonzero(ok & present)):
                    yield parts[s1][start + r], parts[s2][c]


def find_overlaps(clips: Sequence[ClipRef], headers: Mapping[str, object], *, cache_dir: str | os.PathLike | None = None,
                  root: str | os.PathLike | None = None) -> list[Overlap]:
    """Every pair of clips of different splits that are one clip (same file, same bytes, same decoded
    content), each pair once, in the order of ``clips``. ``headers``: path -> :class:`ClipHeaders` (or the
    error it raised; such clips are compared by path only). ``cache_dir``/``root``: where the content
    hashes and fingerprints of the dataset at ``root`` are kept (None: this process only)."""
    from msa.data.cache import content_hash
    from msa.data.headers import store_file
    from msa.data.media import MediaError

    found: dict[frozenset, Overlap] = {}

    def add(a: ClipRef, b: ClipRef, how: str) -> None:
        found.setdefault(frozenset((a, b)), Overlap(a, b, how))

    by_path: dict[str, list[ClipRef]] = defaultdict(list)
    for c in clips:
        by_path[os.path.abspath(c.path)].append(c)
    for group in _across(by_path.values()):
        for a, b in _pairs(group):
            add(a, b, "same file")
    usable = [c for c in clips if header_key(headers.get(c.path)) is not None]

    # same bytes: hash only the files whose size another split's file has
    by_size: dict[int, list[ClipRef]] = defaultdict(list)
    for c in usable:
        by_size[os.stat(c.path).st_size].append(c)
    by_digest: dict[str, list[ClipRef]] = defaultdict(list)
    memo: dict = {}
    for group in _across(by_size.values()):
        for c in group:
            try:
                by_digest[content_hash(c.path, cache_dir, memo)].append(c)
            except MediaError:
                continue
    for group in _across(by_digest.values()):
        for a, b in _pairs(group):
            add(a, b, "same bytes")

    # same decoded content: fingerprint only the clips whose header facts another split's clip has
    by_key: dict[tuple, list[ClipRef]] = defaultdict(list)
    for c in usable:
        by_key[header_key(headers[c.path])].append(c)
    candidates = [g for g in _across(by_key.values())]
    if candidates:
        store = store_file(cache_dir, root, kind="fingerprints") if cache_dir is not None and root is not None else None
        fps = fingerprints((c.path for g in candidates for c in g), store)
        for group in candidates:
            group = [c for c in group if not isinstance(fps[c.path], Exception)]
            for a, b in _content_pairs(group, fps):
                if frozenset((a, b)) not in found and os.path.abspath(a.path) != os.path.abspath(b.path):
                    add(a, b, "same content")
    order = {c: i for i, c in enumerate(clips)}
    pairs = [o if order[o.a] < order[o.b] else Overlap(o.b, o.a, o.how) for o in found.values()]  # listed first
    return sorted(pairs, key=lambda o: (order[o.a], order[o.b]))


def check_split_overlap(clips: Sequence[ClipRef], headers: Mapping[str, object], *, dataset: str, root: str,
                        allow: bool = False, cache_dir: str | os.PathLike | None = None,
                        show: int = 5) -> list[Overlap]:
    """:func:`find_overlaps`, and a :class:`~msa.config.ConfigError` naming the pairs (split, id and path
    of both sides) when there are any, unless ``allow`` (``data.allow_split_overlap``)."""
    overlaps = find_overlaps(clips, headers, cache_dir=cache_dir, root=root)
    if overlaps and not allow:
        listed = "; ".join(str(o) for o in overlaps[:show]) + (f"; ... ({len(overlaps) - show} more)"
                                                               if len(overlaps) > show else "")
        raise ConfigError(f"data.allow_split_overlap: {dataset} at {root} has {len(overlaps)} pair"
                          f"{'s' if len(overlaps) != 1 else ''} of clips shared between splits: {listed}. "
                          f"Remove one side of each (python -m msa.data.audit data={dataset} data.root={root} "
                          "lists them all), or set data.allow_split_overlap=true to train anyway")
    if overlaps:
        log.warning("%s: %d pairs of clips shared between splits (data.allow_split_overlap=true)", dataset,
                    len(overlaps))
    return overlaps


# ---------------------------------------------------------------- the report

def _spread(values: Sequence[float], fmt: str = "{:.1f}") -> str:
    if not len(values):
        return "-"
    v = np.asarray(values, dtype=float)
    return " / ".join(fmt.format(x) for x in (v.min(), np.median(v), np.percentile(v, 95), v.max()))


def _table(header: Sequence[str], rows: Iterable[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines + [""]


def _histogram(table, column: str, dataset: str) -> list[str]:
    """Counts per split in the label's bins (width 0.2 on SIMS' [-1, 1], 1 on MOSI's [-3, 3])."""
    from msa.data.labels import SPLITS
    from msa.data.specs import get_spec

    spec = get_spec(dataset)
    width = 0.2 if spec.span <= 2 else 1.0
    edges = np.round(np.arange(spec.score_min, spec.score_max + width / 2, width), 6) + 0.0  # no -0
    values = table[column].astype(float)
    if values.isna().all():
        return [f"`{column}`: empty in this label file", ""]
    names = [f"[{lo:g}, {hi:g}{']' if i == len(edges) - 2 else ')'}" for i, (lo, hi) in enumerate(zip(edges, edges[1:]))]
    rows = []
    for split in SPLITS:
        v = values[table["mode"] == split].dropna().to_numpy()
        counts, _ = np.histogram(v, bins=edges)
        rows.append([split, *counts.tolist()])
    return [f"`{column}`", "", *_table(["split", *names], rows)]


def audit_report(table, headers: Mapping[str, object], overlaps: Sequence[Overlap], *, dataset: str, root: str) -> str:
    """The Markdown report of a label table (all splits), the clips' headers and the shared pairs."""
    from msa.data.labels import SPLITS, UNIMODAL
    from msa.dc.polarity import polarity_of

    lines = [f"# Audit of {dataset} at {root}", ""]
    classes = ("negative", "neutral", "positive")
    polarity = table["label"].map(lambda x: polarity_of(float(x), dataset))
    rows = []
    for split in (*SPLITS, "all"):
        part = polarity if split == "all" else polarity[table["mode"] == split]
        rows.append([split, len(part), *(int((part == c).sum()) for c in classes)])
    lines += ["## Clips per split and class", "", *_table(["split", "clips", *classes], rows)]

    lines += ["## Labels", ""]
    for column in ("label", *[c for c in UNIMODAL if c in table.columns]):
        lines += _histogram(table, column, dataset)

    lines += ["## Clips shared between splits", ""]
    if overlaps:
        lines += _table(["split", "id", "path", "split", "id", "path", "how"],
                        ([o.a.split, o.a.id, o.a.path, o.b.split, o.b.id, o.b.path, o.how] for o in overlaps))
    else:
        lines += ["none (same file, same bytes, same decoded content)", ""]

    broken, no_audio, no_video = [], [], []
    per_split = defaultdict(lambda: defaultdict(list))
    for split, clip_id, path in zip(table["mode"], table["id"], table["path"]):
        h = headers.get(str(path))
        if h is None or isinstance(h, Exception):
            broken.append([split, clip_id, str(h) if h is not None else "no headers read"])
            continue
        (no_audio if not h.has_audio else []).append([split, clip_id, path])
        (no_video if not h.has_video else []).append([split, clip_id, path])
        s = per_split[split]
        s["seconds"].append(h.duration)
        if h.has_video:
            s["pixels"].append(h.width * h.height)
            s["sizes"].append(f"{h.width}x{h.height}")
            s["fps"].append(h.fps)
        if h.has_audio:
            s["rates"].append(h.audio_rate)
    lines += ["## Clips without audio or video, or unreadable", ""]
    if not (broken or no_audio or no_video):
        lines += ["none", ""]
    for title, found in (("unreadable", broken), ("no audio track", no_audio), ("no video stream", no_video)):
        if found:
            lines += [f"{title}: {len(found)}", "", *_table(["split", "id", "file / reason"], found[:50])]
            if len(found) > 50:
                lines += [f"... and {len(found) - 50} more", ""]

    rows = []
    for split in SPLITS:
        s = per_split.get(split)
        if not s:
            continue
        sizes = sorted(set(s["sizes"]), key=lambda x: int(x.split("x")[0]) * int(x.split("x")[1]))
        size_text = "-" if not sizes else (sizes[0] if len(sizes) == 1 else f"{sizes[0]} .. {sizes[-1]} ({len(sizes)} sizes)")
        rows.append([split, _spread(s["seconds"]), size_text, _spread(s["fps"], "{:.2f}"),
                     ", ".join(str(r) for r in sorted(set(s["rates"]))) or "-"])
    lines += ["## Media (min / median / p95 / max)", "",
              *_table(["split", "seconds", "frame size", "frames per second", "audio sample rates"], rows)]

    rows = []
    for split in SPLITS:
        text = table.loc[table["mode"] == split, "text"].astype(str)
        if len(text):
            rows.append([split, _spread(text.str.split().str.len().tolist(), "{:.0f}"),
                         _spread(text.str.len().tolist(), "{:.0f}")])
    lines += ["## Transcripts (min / median / p95 / max)", "", *_table(["split", "words", "characters"], rows)]
    return "\n".join(lines).rstrip() + "\n"


def audit(cfg) -> tuple[str, list[Overlap]]:
    """The report of the dataset ``cfg.data`` names (all its splits) and the shared pairs."""
    from msa.data.headers import read_many, store_file
    from msa.data.labels import SPLITS
    from msa.plan import DataRead, _label_table, store_dir

    from omegaconf import OmegaConf

    from msa.data.datamodule import is_generated

    name = str(cfg.data.name)
    if OmegaConf.is_missing(cfg.data, "root"):
        raise ConfigError(f"data.root: give the directory of {name} (MMSA layout: label.csv and Raw/)")
    root = str(cfg.data.root)
    if not is_generated(name) and not Path(root).expanduser().exists():
        raise ConfigError(f"data.root: {root} does not exist ({name} in the MMSA layout: label.csv and Raw/)")
    table = _label_table(cfg, DataRead(name, root, "all", "data.root", ("audit",), 1, False, "data.root"))
    where = store_dir(cfg)
    headers = read_many(table["path"], store=store_file(where, root) if where else None)
    clips = [ClipRef(str(s), str(i), str(p)) for s, i, p in zip(table["mode"], table["id"], table["path"])
             if s in SPLITS]
    overlaps = find_overlaps(clips, headers, cache_dir=where, root=root)
    return audit_report(table, headers, overlaps, dataset=name, root=root), overlaps


def main(argv: list[str] | None = None) -> int:
    """``python -m msa.data.audit data=<name> data.root=<dir> [--out DIR] [other overrides]``"""
    import argparse

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import msa.config  # noqa: F401  (the schema conf/train.yaml names)

    parser = argparse.ArgumentParser(prog="python -m msa.data.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="config overrides as for train.py: data=sims data.root=/data/SIMS")
    parser.add_argument("--out", default=None, help="folder for audit.md (default outputs/audit/<data.name>)")
    args = parser.parse_args(argv)
    conf = Path(__file__).resolve().parents[2] / "conf"
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            cfg = compose(config_name="train", overrides=args.overrides)
        OmegaConf.set_struct(cfg, False)
        text, overlaps = audit(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or f"outputs/audit/{cfg.data.name}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "audit.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"written: {out / 'audit.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
