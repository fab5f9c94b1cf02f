"""What ``token_logprobs`` keeps for backward on bf16 logits, against the per-row float32 log-softmax it
replaced (issue 20, item 5), and the time of forward + backward of both, alternating, in one run.

    python experiments/benchmarks/bench_logprob_memory.py [--rows 2] [--completion 512] [--vocab 152064]

(PYTHONPATH=. in front when the installed msa is another checkout's)

Saved bytes are counted with ``torch.autograd.graph.saved_tensors_hooks`` (each storage once), leaving out
the logits themselves (the lm_head's output, alive until the loss's backward either way). Both keep one row's
``[C, V]`` at a time while computing, so the saved bytes grow linearly with the rows: the figure for the
7B's B=4 prompts x G=8 rollouts (N=32) is printed scaled from the measured rows.
"""

from __future__ import annotations

import argparse
import time

import torch

from msa.rl.losses import token_logprobs


def previous(logits: torch.Tensor, ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """The formula token_logprobs used for half-precision logits before (autograd keeps each row's float32
    log-softmax)."""
    rows = [torch.log_softmax(row.float() / temperature, -1).gather(-1, i[:, None]).squeeze(-1)
            for row, i in zip(logits, ids)]
    return torch.stack(rows)


def saved_bytes(fn, logits, ids, temperature) -> tuple[int, torch.Tensor]:
    seen = {logits.untyped_storage().data_ptr(): 0}  # storage -> bytes; one tensor saved by two ops counts once

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(logits, ids, temperature)
    seen.pop(logits.untyped_storage().data_ptr())
    return sum(seen.values()), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2, help="completions N measured (memory: N x C x V x 2 bytes)")
    ap.add_argument("--completion", type=int, default=512, help="completion tokens C")
    ap.add_argument("--vocab", type=int, default=152064, help="V (Qwen2.5-Omni-7B's lm_head)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--scale-to", type=int, default=32, help="N to scale the saved bytes to (B=4 x G=8)")
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    n, c, v = args.rows, args.completion, args.vocab
    logits = (8 * torch.randn(n, c, v, generator=g)).bfloat16().requires_grad_()
    ids = torch.randint(0, v, (n, c), generator=g)
    gib = 2 ** 30
    print(f"bf16 logits [N={n}, C={c}, V={v}]: {logits.numel() * 2 / gib:.3f} GiB; T={args.temperature}")
    results = {}
    for name, fn in (("before (per-row float32 log_softmax)", previous), ("token_logprobs", token_logprobs)):
        b, _ = saved_bytes(fn, logits, ids, args.temperature)
        results[name] = b
        print(f"  {name:38s} saved for backward: {b / 2 ** 20:10.2f} MiB ({b / logits.numel() / 2:.4f}x the logits); "
              f"at N={args.scale_to}: {b * args.scale_to / n / gib:7.3f} GiB")
    times = {"before (per-row float32 log_softmax)": [], "token_logprobs": []}
    for _ in range(args.repeats):  # alternating, so that load on the machine hits both alike
        for name, fn in (("before (per-row float32 log_softmax)", previous), ("token_logprobs", token_logprobs)):
            t0 = time.perf_counter()
            out = fn(logits, ids, args.temperature)
            (grad,) = torch.autograd.grad(out.sum(), logits)
            times[name].append(time.perf_counter() - t0)
            del out, grad
    a, b = (min(t) for t in times.values())
    print(f"  forward + backward, best of {args.repeats}: before {a:.2f} s, token_logprobs {b:.2f} s "
          f"(ratio {b / a:.2f})")


if __name__ == "__main__":
    main()
