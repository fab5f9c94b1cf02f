"""What the split-overlap check (msa.data.audit) adds to a run plan, on the demo pipeline's plan.

    python experiments/benchmarks/bench_split_overlap.py [--repeats 5]

Builds the demo pipeline's plan once (generating the demo sets into a temporary cache when MSA_CACHE is
unset), then times, in one process: the check with no fingerprints cached (the first training plan on a
dataset: every demo clip has the same frame count, rate and size, so all 300 are fingerprinted), and a
warm plan with and without the check, alternating, median of the repeats.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import msa.plan as plan
    from conftest import compose_cfg

    cache = Path(os.environ.get("MSA_CACHE") or tempfile.mkdtemp(prefix="msa-bench-"))
    out = Path(tempfile.mkdtemp(prefix="msa-bench-run-"))
    cfg = compose_cfg([], out, cache)
    t = time.perf_counter()
    plan.build_plan(cfg)  # imports, the demo sets (first time), headers
    print(f"first plan (imports, demo sets if new, headers): {time.perf_counter() - t:.1f} s")
    budgets = plan.check_data(cfg)
    clips = sum(len(b.clip_refs) for b in budgets if b.read.name == cfg.data.name)
    shutil.rmtree(plan.store_dir(cfg) / "fingerprints", ignore_errors=True)
    t = time.perf_counter()
    shared, _ = plan.check_overlap(cfg, budgets)
    print(f"check, no fingerprints cached ({clips} clips of {cfg.data.name}, {shared} pairs): "
          f"{time.perf_counter() - t:.2f} s")
    real = plan.check_overlap
    with_check, without = [], []
    for _ in range(args.repeats):
        for times, fn in ((with_check, real), (without, lambda cfg, budgets: (0, None))):
            plan.check_overlap = fn
            t = time.perf_counter()
            plan.build_plan(cfg)
            times.append(time.perf_counter() - t)
    plan.check_overlap = real
    a, b = statistics.median(with_check), statistics.median(without)
    print(f"warm plan: {a:.3f} s with the check, {b:.3f} s without (+{a - b:.3f} s), median of {args.repeats}")


if __name__ == "__main__":
    main()
