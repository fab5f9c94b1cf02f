"""The media store's files: one entry per clip and modality, their layout, a size bound, and upkeep.

An entry is a small header, a JSON layout (plus plain values) and the raw bytes of its tensors,
64-byte aligned; the header carries a CRC32 of everything after it. Entries are written to a
temporary sibling and renamed into place, so a reader never sees half an entry (concurrent
DataLoader workers may race; the last identical write wins).

:class:`Store` keeps them under ``<dir>/<kind>/<key[:2]>/<key>.pt``. Its optional bound
(``max_bytes``) drops the least recently used entries first: a read sets the entry's mtime to now,
so mtime is the last use. Each process keeps a running total of the store's size (one directory scan
at its first write, another every :data:`RESCAN_EVERY` writes, so the writes of other DataLoader
workers are counted too) and, once over the bound, deletes the oldest entries down to
:data:`PRUNE_TO` of it.

Entries whose ``version`` value is not the reader's are stale: a store outlives format changes, and
never reads them again, so they are the least recently used and the bound drops them first.

``python -m msa.data.cache stats|prune|verify <dir>`` runs :meth:`Store.stats`, :meth:`Store.prune`
and :meth:`Store.verify` from the command line.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

MAGIC = b"MSACACHE"
HEADER = struct.Struct(">8sIIQ")  # magic, crc32 of everything after the header, meta length, data length
ALIGN = 64  # tensor data offsets, so every dtype's view is aligned
KINDS = ("video", "audio")
PRUNE_TO = 0.9  # a bound that is passed is pruned down to this fraction of itself
RESCAN_EVERY = 256  # writes between two scans of the store's size (other processes write too)
STALE_TMP_SECONDS = 3600  # a temporary file this old is a crashed writer's, not a write in progress


class CorruptEntry(Exception):
    """A cache file that fails its header, length or CRC check."""


def atomic_write(path: Path, chunks) -> int:
    """Write ``chunks`` (bytes-like) to a temporary sibling of ``path``, rename it into place; the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    n = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in ([chunks] if isinstance(chunks, (bytes, bytearray)) else chunks):
                n += fh.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def entry_chunks(obj: dict) -> list:
    """An entry as byte chunks: header, JSON layout (+ plain values), raw tensor bytes, 64-aligned.

    A raw layout rather than ``torch.save``: reading it back is one mmap and one CRC pass, with the
    tensors viewing the mapped pages; writing streams the tensors' own memory without extra copies.
    """
    tensors = {k: v.contiguous() for k, v in obj.items() if isinstance(v, torch.Tensor)}
    values = {k: v for k, v in obj.items() if k not in tensors}
    layout, offset = {}, 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        layout[name] = [str(t.dtype).removeprefix("torch."), list(t.shape), offset, nbytes]
        offset = aligned(offset + nbytes)
    meta = json.dumps({"tensors": layout, "values": values}).encode()
    data_start = aligned(HEADER.size + len(meta))
    chunks: list = [meta, bytes(data_start - HEADER.size - len(meta))]
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
    return [HEADER.pack(MAGIC, crc, len(meta), offset), *chunks]


def encode_entry(obj: dict) -> bytes:
    """An entry as one bytes object (see :func:`entry_chunks`)."""
    return b"".join(entry_chunks(obj))


def decode_entry(buffer) -> dict:
    """The entry in ``buffer`` (bytes, bytearray or a writable mmap); tensors view the buffer.

    Raises :class:`CorruptEntry` if the header, the lengths or the CRC do not match.
    """
    if isinstance(buffer, bytes):
        buffer = bytearray(buffer)  # torch.frombuffer wants a writable buffer
    if len(buffer) < HEADER.size:
        raise CorruptEntry(f"{len(buffer)} bytes, shorter than the header")
    magic, crc, meta_len, data_len = HEADER.unpack_from(buffer)
    data_start = aligned(HEADER.size + meta_len)
    if magic != MAGIC or len(buffer) != data_start + data_len:
        raise CorruptEntry("bad magic or length")
    with memoryview(buffer) as view:
        if zlib.crc32(view[HEADER.size:]) != crc:
            raise CorruptEntry("checksum mismatch")
        try:
            meta = json.loads(bytes(view[HEADER.size: HEADER.size + meta_len]))
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


def read_layout(path: Path) -> dict:
    """An entry's JSON layout and values (no tensor bytes read, no CRC check): what ``stats`` needs."""
    with open(path, "rb") as fh:
        head = fh.read(HEADER.size)
        if len(head) < HEADER.size:
            raise CorruptEntry(f"{len(head)} bytes, shorter than the header")
        magic, _, meta_len, _ = HEADER.unpack(head)
        if magic != MAGIC:
            raise CorruptEntry("bad magic")
        try:
            return json.loads(fh.read(meta_len))
        except ValueError as exc:
            raise CorruptEntry(f"unreadable layout: {exc}") from exc


def entry_bytes(tensor_bytes: list[int], meta_bytes: int = 192) -> int:
    """The size of an entry holding tensors of ``tensor_bytes`` bytes and a layout of about ``meta_bytes``.

    >>> entry_bytes([100, 8])  # header + layout 192 -> 256, then 128 + 64
    448
    """
    return aligned(HEADER.size + meta_bytes) + sum(aligned(n) for n in tensor_bytes)


@dataclass
class KindStats:
    entries: int = 0
    errors: int = 0  # cached error records (clips that cannot be decoded)
    stale: int = 0  # entries of another format version: never read by this one (the LRU bound drops them first)
    bytes: int = 0
    video_tokens: int = 0  # merged patches (t * h * w / 4) over the current video entries
    video_bytes: int = 0  # the bytes of those entries
    oldest: float | None = None  # last use (mtime), seconds since the epoch
    newest: float | None = None


class Store:
    """Entries under ``root`` (see the module doc); ``max_bytes`` bounds the store's size (None: no bound)."""

    def __init__(self, root: str | os.PathLike, max_bytes: int | None = None, version: int | None = None):
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0 or None, got {max_bytes}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.version = version  # the entries' ``version`` value this reader writes; others are stale
        self._total: int | None = None  # this process's running estimate of the store's size
        self._writes = 0
        self.pruned = 0  # entries this process deleted to keep under the bound

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.pt"

    def read(self, path: Path) -> dict:
        """The entry at ``path`` (:class:`CorruptEntry`/``OSError`` if unreadable); marks it as just used."""
        entry = read_entry(path)
        try:
            os.utime(path)  # least recently used = oldest mtime
        except OSError:
            pass  # pruned by another worker meanwhile, or a read-only store: the entry is still good
        return entry

    def write(self, path: Path, obj: dict) -> int:
        """Write ``obj`` at ``path`` atomically, then keep the store under its bound; the bytes written."""
        n = atomic_write(path, entry_chunks(obj))
        if self.max_bytes is not None:
            self._writes += 1
            if self._total is None or self._writes >= RESCAN_EVERY:
                self._total, self._writes = self._scan_total(), 0
            else:
                self._total += n
            if self._total > self.max_bytes:
                self.prune(int(self.max_bytes * PRUNE_TO), keep=path)
        return n

    # -- upkeep ----------------------------------------------------------------------------------------
    def files(self):
        """``(kind, path, stat)`` of every entry (temporary files left out)."""
        for kind in KINDS:
            base = self.root / kind
            if not base.is_dir():
                continue
            for sub in os.scandir(base):
                if not sub.is_dir():
                    continue
                for f in os.scandir(sub.path):
                    if f.name.endswith(".pt") and not f.name.startswith("."):
                        try:
                            yield kind, Path(f.path), f.stat()
                        except FileNotFoundError:  # pruned meanwhile
                            continue

    def _scan_total(self) -> int:
        return sum(st.st_size for _, _, st in self.files())

    def stale_temporaries(self, age: float = STALE_TMP_SECONDS) -> list[Path]:
        """Temporary files older than ``age`` seconds: writers that crashed before their rename."""
        now = time.time()
        out = []
        for kind in (*KINDS, "index"):
            base = self.root / kind
            if base.is_dir():
                out += [p for p in base.glob("*/.*") if p.is_file() and now - p.stat().st_mtime > age]
        return out

    def prune(self, max_bytes: int, keep: Path | None = None) -> tuple[int, int]:
        """Delete least recently used entries until the store holds at most ``max_bytes`` (never ``keep``),
        and stale temporary files; returns (entries deleted, bytes freed)."""
        files = sorted(self.files(), key=lambda f: f[2].st_mtime_ns)
        total = sum(st.st_size for _, _, st in files)
        deleted = freed = 0
        for _, path, st in files:
            if total <= max_bytes:
                break
            if keep is not None and path == keep:
                continue
            try:
                path.unlink()
            except FileNotFoundError:  # another worker pruned it first
                pass
            else:
                deleted += 1
                freed += st.st_size
            total -= st.st_size
        for tmp in self.stale_temporaries():
            tmp.unlink(missing_ok=True)
        self._total, self._writes = total, 0
        self.pruned += deleted
        return deleted, freed

    def stats(self) -> dict[str, KindStats]:
        """Per kind: entries, error records, bytes, video tokens, oldest and newest use (reads layouts only)."""
        out = {kind: KindStats() for kind in KINDS}
        for kind, path, st in self.files():
            s = out[kind]
            s.entries += 1
            s.bytes += st.st_size
            s.oldest = st.st_mtime if s.oldest is None else min(s.oldest, st.st_mtime)
            s.newest = st.st_mtime if s.newest is None else max(s.newest, st.st_mtime)
            try:
                layout = read_layout(path)
            except (CorruptEntry, OSError):
                continue  # verify reports it
            values = layout["values"]
            if self.version is not None and values.get("version") != self.version:
                s.stale += 1
            elif "error_kind" in values:
                s.errors += 1
            elif "grid" in values:  # video: [t, h, w] patches, merge_size**2 of them to a token
                t, h, w = values["grid"]
                s.video_tokens += t * h * w // values["merge_size"] ** 2
                s.video_bytes += st.st_size
        return out

    def verify(self, delete: bool = False) -> list[tuple[Path, str]]:
        """Every entry whose header, lengths or CRC fail, with why (deleted when ``delete``)."""
        bad = []
        for _, path, _ in self.files():
            try:
                entry = read_entry(path)
                del entry
            except (CorruptEntry, OSError) as exc:
                bad.append((path, str(exc)))
                if delete:
                    path.unlink(missing_ok=True)
        return bad


def format_stats(stats: dict[str, KindStats]) -> str:
    """The lines ``python -m msa.data.cache stats`` prints."""
    lines = []
    for kind, s in stats.items():
        line = f"{kind}: {s.entries} entries ({s.errors} error records, {s.stale} stale), {s.bytes / 1e9:.3f} GB"
        if kind == "video" and s.video_tokens:
            line += f", {s.video_tokens} video tokens, {s.video_bytes / s.video_tokens / 1e3:.2f} KB per video token"
        if s.oldest is not None:
            fmt = "%Y-%m-%d %H:%M"
            line += (f", last used {time.strftime(fmt, time.gmtime(s.oldest))} .. "
                     f"{time.strftime(fmt, time.gmtime(s.newest))} UTC")
        lines.append(line)
    total = sum(s.bytes for s in stats.values())
    lines.append(f"total: {sum(s.entries for s in stats.values())} entries, {total / 1e9:.3f} GB")
    return "\n".join(lines)


__all__ = ["ALIGN", "HEADER", "KINDS", "MAGIC", "CorruptEntry", "KindStats", "Store", "atomic_write",
           "decode_entry", "encode_entry", "entry_bytes", "entry_chunks", "format_stats", "read_entry",
           "read_layout"]
