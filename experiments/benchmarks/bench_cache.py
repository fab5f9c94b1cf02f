"""Processed-media cache: clips/s with an empty cache (cold) vs a second pass (warm), in one run.

    python experiments/benchmarks/bench_cache.py [--n-clips 40] [--batch-size 4] [--workdir DIR]

Reads the demo set (synthetic, SIMS flavour, 2 s 64x64 clips) with video and audio on and the tiny
model's real processor. Cold = PyAV decode + the processor's video processor and feature extractor +
writing the entry; warm = a fresh ``MediaCache`` on the same directory (nothing in memory) reading
the entries back. Two measurements, each cold then warm on its own cache directory:

* ``items``: ``MSADataset[i]`` for every clip: the cache itself. Target: warm >= 10x cold.
* ``batches``: a DataLoader with ``MultimodalCollator`` (prompt rendering, token expansion,
  tokenisation, concatenating the pixels): what a training or eval step waits for.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def run(n_clips: int, batch_size: int, workdir: Path) -> dict:
    from torch.utils.data import DataLoader
    from transformers import AutoProcessor

    from msa.data.cache import MediaCache
    from msa.data.collate import MultimodalCollator
    from msa.data.dataset import MSADataset
    from msa.data.labels import read_labels
    from msa.data.synthetic import ensure
    from msa.models.tiny import ensure_tiny

    processor = AutoProcessor.from_pretrained(ensure_tiny(workdir / "models"))
    root = ensure(workdir / "demo", flavour="sims", n_clips=n_clips, seed=0)
    frame = read_labels(root, "demo")
    collator = MultimodalCollator(processor)

    def items(cache_dir: Path) -> tuple[float, dict]:
        cache = MediaCache(processor, cache_dir)
        dataset = MSADataset(frame, "demo", cache)
        t0 = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        return time.perf_counter() - t0, dict(cache.stats)

    def batches(cache_dir: Path) -> tuple[float, dict]:
        cache = MediaCache(processor, cache_dir)
        loader = DataLoader(MSADataset(frame, "demo", cache), batch_size=batch_size, collate_fn=collator)
        t0 = time.perf_counter()
        for _ in loader:
            pass
        return time.perf_counter() - t0, dict(cache.stats)

    out = {"n": len(frame)}
    for name, fn in (("items", items), ("batches", batches)):
        cache_dir = workdir / f"media-{name}"
        out[name] = {"cold": fn(cache_dir), "warm": fn(cache_dir)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-clips", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--workdir", default=None, help="keep the demo set, model and caches here (default: a temp dir)")
    args = ap.parse_args()
    if args.workdir:
        r = run(args.n_clips, args.batch_size, Path(args.workdir))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            r = run(args.n_clips, args.batch_size, Path(tmp))
    n = r["n"]
    print(f"clips: {n} (demo set, video + audio, tiny processor)")
    for name in ("items", "batches"):
        (cold, cold_stats), (warm, warm_stats) = r[name]["cold"], r[name]["warm"]
        print(f"{name:8s} cold: {n / cold:8.1f} clips/s ({cold:.2f} s)  {cold_stats}")
        print(f"{name:8s} warm: {n / warm:8.1f} clips/s ({warm:.2f} s)  {warm_stats}")
        verdict = ("met" if cold / warm >= 10 else "NOT met") if name == "items" else "info"
        print(f"{name:8s} warm/cold: {cold / warm:.1f}x" + (f"  (target >= 10x: {verdict})" if name == "items" else ""))


if __name__ == "__main__":
    main()
