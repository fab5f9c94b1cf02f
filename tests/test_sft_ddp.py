"""DDP (two CPU processes, gloo): an SFT rank whose whole batch was skipped must still join the step.
Before the fix its training_step returned None, which Lightning refuses in distributed training, and the
other rank waited in its gradient all-reduce."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sft_rank_with_a_skipped_batch_keeps_ddp_in_step(cache_dir, tmp_path):
    env = dict(os.environ, MSA_CACHE=str(cache_dir), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "sft_ddp_worker.py"), str(tmp_path), str(cache_dir)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{k}.pt") for k in range(2)]
    assert ranks[0]["step"] == ranks[1]["step"] == 2  # the skipped batch's step was taken on both ranks
    assert ranks[0]["lr"] == ranks[1]["lr"]
    for k, v in ranks[0]["after"].items():
        assert torch.equal(v, ranks[1]["after"][k]), k
    moved = [k for k in ranks[0]["after"] if not torch.equal(ranks[0]["after"][k], ranks[0]["before"][k])]
    assert any("lora_B" in k for k in moved)
