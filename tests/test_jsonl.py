"""The append-only JSONL writer: durable batches, torn-tail repair, done ids, the single-writer lock,
and a real SIGKILL in the middle of a writing loop."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from msa.jsonl import JsonlError, JsonlWriter, done_ids, dumps, iter_jsonl, read_jsonl, repair_tail

ROOT = Path(__file__).resolve().parents[1]


def test_write_and_read_back(tmp_path):
    p = tmp_path / "sub" / "a.jsonl"  # the parent is created
    with JsonlWriter(p) as w:
        assert w.write_many([{"id": "a", "x": 1}, {"id": "b", "text": "line\nbreak"}]) == 2
        assert w.write_many([]) == 0
    raw = p.read_bytes()
    assert raw.count(b"\n") == 2 and raw.endswith(b"\n")  # the newline inside "text" is escaped
    assert read_jsonl(p) == [{"id": "a", "x": 1}, {"id": "b", "text": "line\nbreak"}]
    with JsonlWriter(p) as w:  # reopening appends
        w.write_many([{"id": "c"}])
    assert [r["id"] for r in iter_jsonl(p)] == ["a", "b", "c"]


def test_torn_tail_is_skipped_by_readers_and_truncated_by_the_next_writer(tmp_path):
    p = tmp_path / "a.jsonl"
    good = b'{"id": "a"}\n{"id": "b"}\n'
    fragment = b'{"id": "c", "reas'  # 17 bytes: a crash in the middle of a write
    p.write_bytes(good + fragment)
    assert [r["id"] for r in iter_jsonl(p)] == ["a", "b"]
    assert done_ids(p) == {"a", "b"}
    with JsonlWriter(p) as w:
        assert w.repaired == len(fragment) == 17
        w.write_many([{"id": "c"}])
    assert p.read_bytes() == good + b'{"id": "c"}\n'  # earlier lines byte for byte, no fragment left


def test_repair_tail_cases(tmp_path):
    p = tmp_path / "a.jsonl"
    assert repair_tail(p) == 0  # missing
    p.write_bytes(b"")
    assert repair_tail(p) == 0
    p.write_bytes(b'{"id": "a"')  # no newline at all: everything is torn
    assert repair_tail(p) == 10 and p.read_bytes() == b""
    big = b"".join(b'{"id": "%d"}\n' % i for i in range(20000))  # > one 64 KiB block to scan back through
    p.write_bytes(big + b"x" * 70000)
    assert repair_tail(p) == 70000 and p.read_bytes() == big


def test_damaged_complete_line_is_an_error_naming_the_line(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"id": "a"}\nnot json\n{"id": "c"}\n')
    with pytest.raises(JsonlError, match=r"a\.jsonl:2: not valid JSON"):
        read_jsonl(p)
    p.write_bytes(b'{"id": "a"}\n[1, 2]\n')
    with pytest.raises(JsonlError, match=r":2: expected a JSON object, got list"):
        read_jsonl(p)
    p.write_bytes(b'{"name": "a"}\n')
    with pytest.raises(JsonlError, match="no 'id' field"):
        done_ids(p)


def test_done_ids_is_the_union_over_files(tmp_path):
    a, b = tmp_path / "kept.jsonl", tmp_path / "rejected.jsonl"
    a.write_text('{"id": "x"}\n{"id": "y"}\n')
    b.write_text('{"id": "z"}\n')
    assert done_ids(a, b, tmp_path / "missing.jsonl") == {"x", "y", "z"}


def test_nan_is_refused_not_written():
    with pytest.raises(ValueError):
        dumps({"id": "a", "score": math.nan})


def test_a_second_writer_on_the_same_file_is_refused(tmp_path):
    p = tmp_path / "a.jsonl"
    with JsonlWriter(p):
        with pytest.raises(RuntimeError, match="being written by another process"):
            JsonlWriter(p).open()
    with JsonlWriter(p) as w:  # released on close
        w.write_many([{"id": "a"}])


CHILD = r"""
import sys
from msa.jsonl import JsonlWriter
with JsonlWriter(sys.argv[1]) as w:
    i = 0
    while True:
        w.write_many([{"id": f"{i}-{j}", "pad": "x" * 5000} for j in range(20)])
        i += 1
"""


def test_sigkill_mid_loop_leaves_whole_batches_after_repair(tmp_path):
    p = tmp_path / "a.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(p)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 30
    while time.time() < deadline and (not p.exists() or p.stat().st_size < 2_000_000):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with JsonlWriter(p):  # the lock died with the child; any torn tail is cut here
        pass
    raw = p.read_bytes()
    assert raw.endswith(b"\n")
    ids = [json.loads(line)["id"] for line in raw.splitlines()]
    assert len(ids) >= 20 and len(set(ids)) == len(ids)
    # Records come in order: batch i holds i-0 .. i-19; only the last batch may be partial.
    expected = [f"{i}-{j}" for i in range(len(ids) // 20 + 1) for j in range(20)][:len(ids)]
    assert ids == expected
