"""Share of prompt positions that are padding in the training batches, with and without length buckets.

    python experiments/benchmarks/bench_padding.py                      # MOSEI-like mix, B=4
    python experiments/benchmarks/bench_padding.py --batch-size 2 --replicas 2

The lengths are a MOSEI-like synthetic mix (stated here, no data needed): the MOSEI train split's size
(16,326 clips), prompt lengths log-normal with median 3,860 tokens and sigma 0.668, which gives
DESIGN.md's "Real data at scale" figures (mean ~4,830, p95 ~11,600), floored at 370 tokens (the text
of the prompt alone). The batches are msa.data.sampling's own (``epoch_batches``), each rank's share
of a global batch padded to its longest prompt; the share is averaged over a few epochs.
"""

from __future__ import annotations

import argparse

import numpy as np

from msa.data.sampling import BUCKET_WINDOW, epoch_batches

N_CLIPS, MEDIAN, SIGMA, FLOOR = 16_326, 3_860, 0.668, 370


def mosei_like_lengths(n: int = N_CLIPS, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    return np.maximum(FLOOR, np.round(MEDIAN * np.exp(SIGMA * rng.standard_normal(n)))).astype(int).tolist()


def padding_share(lengths: list[int], batch_size: int, *, bucket: bool, replicas: int = 1,
                  window: int = BUCKET_WINDOW, epochs: int = 3) -> float:
    """Padding positions / all prompt positions over ``epochs`` epochs of every rank's batches."""
    pad = total = 0
    for epoch in range(epochs):
        for glob in epoch_batches(len(lengths), batch_size, seed=0, epoch=epoch, num_replicas=replicas,
                                  lengths=lengths if bucket else None, window=window):
            for rank in range(replicas):
                share = [lengths[i] for i in glob[rank::replicas]]
                pad += len(share) * max(share) - sum(share)
                total += len(share) * max(share)
    return pad / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--replicas", type=int, default=1, help="DDP ranks (each pads its own share)")
    args = ap.parse_args()
    lengths = mosei_like_lengths()
    arr = np.asarray(lengths)
    print(f"MOSEI-like mix: {len(arr)} clips, mean {arr.mean():,.0f}, median {np.median(arr):,.0f}, "
          f"p95 {np.percentile(arr, 95):,.0f} prompt tokens; B={args.batch_size}, ranks={args.replicas}")
    plain = padding_share(lengths, args.batch_size, bucket=False, replicas=args.replicas)
    print(f"  no buckets (data.bucket_by_length=false): {100 * plain:5.1f} % padding")
    for window in sorted({10, BUCKET_WINDOW, 200}):
        share = padding_share(lengths, args.batch_size, bucket=True, replicas=args.replicas, window=window)
        note = "  <- default (data.bucket_by_length=true)" if window == BUCKET_WINDOW else ""
        print(f"  buckets, window {window:3d} batches:          {100 * share:5.1f} % padding "
              f"({plain / share:.1f}x less){note}")


if __name__ == "__main__":
    main()
