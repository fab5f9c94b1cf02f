"""The real-scale GPU benchmark has a CPU smoke mode on the tiny model; it must keep running."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_benchmark_smoke_on_tiny(cache_dir):
    env = dict(os.environ, MSA_CACHE=str(cache_dir), HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "experiments/benchmarks/bench_gpu.py", "--model", "tiny", "--new-tokens", "8",
                        "--steps", "2", "--prompts", "2"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "SFT step (2 clips" in r.stdout and "GRPO step (2 prompts x G=4" in r.stdout
