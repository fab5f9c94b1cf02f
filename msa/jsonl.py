"""Append-only JSONL files that survive a crash and resume cleanly: the CoT set and its rejects.

One JSON object per line, each line ending in ``\\n``. The writer appends whole batches and makes each
one durable (``flush`` + ``fsync``) before the caller moves on, so a crash loses at most the batch in
flight. A crash in the middle of a write can leave a torn last line (no trailing newline); opening the
file again for writing truncates it back to the last complete line, so a restart never appends after a
fragment. Lines already written are never rewritten.

    with JsonlWriter(path) as out:          # repairs a torn tail, then appends
        out.write_many(records)             # one write + fsync per batch
    done = done_ids(path, rejected_path)    # ids to skip on restart

An exclusive advisory lock (``flock``) is held while a writer is open, so two runs pointed at the same
file fail at once instead of interleaving their lines; the kernel drops the lock when a process dies,
even by SIGKILL.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path


class JsonlError(ValueError):
    """A JSONL file whose content cannot be read back (a bad line that is not a torn tail)."""


def repair_tail(path: str | os.PathLike) -> int:
    """Truncate ``path`` after its last newline (a torn line from a crash); returns the bytes removed.

    A missing or empty file needs nothing. The tail is read backwards in blocks, so repairing a large
    file costs one short read.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = p.write_bytes(b'{"id": "a"}\\n{"id": "b')
    >>> repair_tail(p), p.read_bytes()
    (9, b'{"id": "a"}\\n')
    """
    p = Path(path)
    if not p.exists():
        return 0
    size = p.stat().st_size
    if size == 0:
        return 0
    with open(p, "r+b") as f:
        keep, block = 0, 1 << 16
        end = size
        while end > 0:  # find the last b"\n"
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            end = start
        if keep < size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    return size - keep


def dumps(record: dict) -> str:
    """One line of JSON (no newline inside: ``json.dumps`` escapes them); NaN is refused, not written."""
    return json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


class JsonlWriter:
    """Appends records to a JSONL file, one durable batch at a time (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._f = None
        self.repaired = 0  # bytes of a torn tail removed on open

    def open(self) -> "JsonlWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "ab")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise RuntimeError(f"{self.path} is being written by another process; wait for it to finish or "
                               "point this run at another output file") from None
        # Repair only once we hold the lock: another live writer's half-written batch is not a torn tail.
        self.repaired = repair_tail(self.path)
        self._f = f
        return self

    def write_many(self, records: Iterable[dict]) -> int:
        """Append ``records`` in one write, then flush and fsync; returns how many were written."""
        if self._f is None:
            raise RuntimeError(f"JsonlWriter({self.path}) is not open")
        lines = [dumps(r) + "\n" for r in records]
        if not lines:
            return 0
        self._f.write("".join(lines).encode("utf-8"))
        self._f.flush()
        os.fsync(self._f.fileno())
        return len(lines)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()  # closing the file releases the flock
            self._f = None

    def __enter__(self) -> "JsonlWriter":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """The records of ``path`` in order; a torn last line (no newline: a crash mid-write) is skipped.

    A complete line that is not a JSON object is an error naming the file and line: that is damage a
    crash cannot cause, and resuming past it would hide it.
    """
    p = Path(path)
    if not p.exists():
        return
    with open(p, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                return  # torn tail; the next writer truncates it
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as e:
                raise JsonlError(f"{p}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise JsonlError(f"{p}:{n}: expected a JSON object, got {type(rec).__name__}")
            yield rec


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All complete records of ``path`` (empty when it does not exist)."""
    return list(iter_jsonl(path))


def done_ids(*paths: str | os.PathLike, key: str = "id") -> set[str]:
    """The ``key`` of every complete record across ``paths`` (the clips a restart skips)."""
    out: set[str] = set()
    for p in paths:
        for n, rec in enumerate(iter_jsonl(p), start=1):
            if key not in rec:
                raise JsonlError(f"{p}: record {n} has no {key!r} field")
            out.add(str(rec[key]))
    return out
