"""W&B grouping: two tiny runs of one study, offline, read back from their run directories.

An offline run keeps its group, job type, config and summary only in its ``run-<id>.wandb`` file (the
``files/`` folder is filled at sync time). That file is a LevelDB-style log of protobuf records;
:func:`read_offline_run` reads it with W&B's own protobuf classes."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

SMALL = ["model=tiny", "data.limit=2", "data.n_clips=24", "eval.max_new_tokens=4", "eval.datasets=[demo]",
         "grpo.max_steps=1", "grpo.max_new_tokens=4", "grpo.num_generations=2", "data.batch_size=2",
         "callbacks.step_checkpoint.every_n_train_steps=null"]

_BLOCK = 32768  # LevelDB log block size
_HEADER = 7  # crc32 (4), length (2), type (1); W&B's file header is 7 bytes too


def _records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B run file"
    pos, out, buf = _HEADER, [], b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        if n == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + _HEADER:pos + _HEADER + n]
        pos += _HEADER + n
        buf = chunk if kind in (1, 2) else buf + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            out.append(buf)
    return out


def read_offline_run(run_dir: Path) -> dict:
    """group, job_type, name, config (values decoded) and summary of one ``offline-run-*`` folder."""
    from wandb.proto import wandb_internal_pb2 as pb

    (file,) = run_dir.glob("run-*.wandb")
    out = {"config": {}, "summary": {}, "exited": False}
    for data in _records(file):
        rec = pb.Record()
        rec.ParseFromString(data)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out.update(group=rec.run.run_group, job_type=rec.run.job_type, name=rec.run.display_name)
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.config.update})
        elif kind == "summary":
            out["summary"].update({i.key: json.loads(i.value_json) for i in rec.summary.update if i.key})
        elif kind == "exit":
            out["exited"] = True
    return out


def read_finished_run(run_dir: Path, timeout: float = 60.0) -> dict:
    """:func:`read_offline_run` once the run's exit record is on disk: ``wandb.finish()`` returns before
    the writer process has flushed the last records (the summary among them) in offline mode."""
    deadline = time.monotonic() + timeout
    while True:
        out = read_offline_run(run_dir)
        if out["exited"] or time.monotonic() > deadline:
            return out
        time.sleep(0.5)


def test_setting_names_the_flags_a_study_varies(make_cfg):
    from msa.runtime import run_setting

    cfg = make_cfg("stage=sft", "sft.answer=score", "logger=wandb", "logger.group=paper", "seed=2",
                   "eval.datasets=[demo,demo_mosi]", "model.path=/ckpt/Qwen2.5-Omni-7B")
    assert cfg.logger.group == "paper"
    assert run_setting(cfg, "sft") == {
        "study": "paper", "experiment": "demo", "stage": "sft", "dataset": "demo", "eval_datasets": "demo,demo_mosi",
        "model": "tiny_demo:Qwen2.5-Omni-7B", "answer": "score", "hint": True, "hint_mode": "replace", "hard": True,
        "seed": 2,
        "init_from": ""}
    assert run_setting(cfg, "grpo")["answer"] == "dc"  # GRPO always writes DC answers
    assert run_setting(make_cfg("logger=wandb"), "cot")["study"] == "demo"  # default group: the preset


@pytest.mark.slow
def test_two_runs_of_a_study_share_its_group_and_carry_their_setting(make_cfg, tmp_path, monkeypatch):
    """A zero-shot eval (the eval stage's own W&B run) and a GRPO run with hint=false (the trainer's)."""
    from train import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    jobs = {"eval": ["stage=eval", "seed=1"], "grpo": ["stage=grpo", "hint=false"]}
    runs = {}
    for stage, overrides in jobs.items():
        cfg = make_cfg(*overrides, "logger=wandb", "logger.group=study-x", *SMALL)
        cfg.paths.output_dir = str(tmp_path / stage)
        train(cfg)
        (folder,) = (tmp_path / stage / "wandb").glob("offline-run-*")
        runs[stage] = read_finished_run(folder)
    for stage, r in runs.items():
        assert r["exited"]
        assert r["group"] == "study-x" and r["job_type"] == stage
        hint, seed = stage == "eval", 1 if stage == "eval" else 0
        assert r["name"] == f"{stage}-hint_{str(hint).lower()}-hard_true-s{seed}"
        assert r["config"]["setting"] == {
            "study": "study-x", "experiment": "demo", "stage": stage, "dataset": "demo", "eval_datasets": "demo",
            "model": "tiny", "answer": "dc", "hint": hint, "hint_mode": "replace", "hard": True, "seed": seed,
            "init_from": ""}
        assert r["config"]["hint"] is hint and r["config"]["seed"] == seed  # the full config too
        # the test pass is in the run's summary, as in metrics.json
        saved = json.loads((tmp_path / stage / "metrics.json").read_text())
        assert r["summary"][f"{stage}/demo/mae"] == saved[stage]["demo"]["mae"]
    assert runs["grpo"]["summary"]["grpo_train/steps"] == 1
