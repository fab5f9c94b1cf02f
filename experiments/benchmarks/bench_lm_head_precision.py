"""How much bf16 logits move GRPO's log-probs and k3 KL at 7B-like logit scales (CPU, synthetic logits):
the measurement behind ``grpo.cast_lm_head_to_fp32``'s default in ``experiment=paper``.

    python experiments/benchmarks/bench_lm_head_precision.py [--vocab 152064] [--positions 256] [--seed 0]

Under bf16-mixed the lm_head accumulates in float32 and rounds its output to bf16: a logit in [16, 32) is
rounded to a multiple of 0.125. The policy's and the reference's logits come from two passes and are
rounded separately, so the KL's per-token log-ratio ``delta = ref_logp - logp`` (and, with
num_iterations > 1, the ratio's ``logp - old_logp``) carries that rounding too.

Synthetic logits, per position: the vocabulary (Qwen2.5-Omni's 152,064) ~ N(0, 2^2), and 16 candidate
tokens at ``top`` minus cumulative Exp(mean 1) gaps (a peaked next-token distribution, entropy printed);
``top`` sweeps the scale of the leading logits (8 .. 32; Qwen2.5-7B's sit in the upper half, an assumption
we could not check without the weights). The reference is the policy plus N(0, sigma^2) on every logit
(sigma sweeps how far training moved the policy: the true KL is printed). The token is sampled from the
policy. "fp32" = float64 arithmetic on the float32 logits (what the fp32 head gives); "bf16" = the same
logits rounded to bf16 first, then the same float64 arithmetic (what token_logprobs does with bf16 logits).

Printed per (top, sigma): mean entropy; mean and p99 |logp error|; the mean k3 KL (fp32 vs bf16: the
logged ``kl`` and the loss term); mean |k3 error| per token; mean |delta| against mean |delta error| (the
KL gradient per token is beta * (1 - e^delta) ~ -beta * delta, so this is its signal against its noise).
"""

from __future__ import annotations

import argparse

import torch


def logits_like_7b(n: int, vocab: int, top: float, g: torch.Generator) -> torch.Tensor:
    """``[n, vocab]`` float32: N(0, 2^2) background, 16 candidates descending from ``top``."""
    z = 2.0 * torch.randn(n, vocab, generator=g)
    gaps = torch.distributions.Exponential(1.0).sample((n, 16)).cumsum(1)  # [n, 16]
    cand = torch.randint(0, vocab, (n, 16), generator=g)  # [n, 16] (a repeat now and then is harmless)
    z.scatter_(1, cand, top - gaps + gaps[:, :1])  # the first candidate exactly at top
    return z


def logp_at(z: torch.Tensor, tok: torch.Tensor) -> torch.Tensor:
    z = z.double()
    return z.gather(1, tok[:, None]).squeeze(1) - torch.logsumexp(z, 1)


def k3(delta: torch.Tensor) -> torch.Tensor:
    return torch.exp(delta) - delta - 1.0


def measure(top: float, sigma: float, positions: int, vocab: int, seed: int, chunk: int = 32) -> dict:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # Exponential draws use the global generator
    rows = {k: [] for k in ("ent", "lp32", "lp16", "kl32", "kl16", "d32", "d16")}
    for start in range(0, positions, chunk):
        n = min(chunk, positions - start)
        z = logits_like_7b(n, vocab, top, g)  # [n, V] policy
        zr = z + sigma * torch.randn(n, vocab, generator=g)  # [n, V] reference
        p = torch.softmax(z.double(), 1)
        tok = torch.multinomial(p, 1, generator=g).squeeze(1)  # [n]
        rows["ent"].append(-(p * torch.log(p.clamp_min(1e-300))).sum(1))
        lp32, lr32 = logp_at(z, tok), logp_at(zr, tok)
        lp16, lr16 = logp_at(z.bfloat16(), tok), logp_at(zr.bfloat16(), tok)
        rows["lp32"].append(lp32), rows["lp16"].append(lp16)
        rows["d32"].append(lr32 - lp32), rows["d16"].append(lr16 - lp16)
        rows["kl32"].append(k3(lr32 - lp32)), rows["kl16"].append(k3(lr16 - lp16))
    r = {k: torch.cat(v) for k, v in rows.items()}
    err = (r["lp16"] - r["lp32"]).abs()
    return {"top": top, "sigma": sigma, "entropy": r["ent"].mean().item(), "logp_err_mean": err.mean().item(),
            "logp_err_p99": err.quantile(0.99).item(), "kl_fp32": r["kl32"].mean().item(),
            "kl_bf16": r["kl16"].mean().item(), "kl_err_tok": (r["kl16"] - r["kl32"]).abs().mean().item(),
            "delta_abs": r["d32"].abs().mean().item(), "delta_err": (r["d16"] - r["d32"]).abs().mean().item()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", type=int, default=152064)
    ap.add_argument("--positions", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tops", type=float, nargs="+", default=[8.0, 16.0, 24.0, 32.0])
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.03, 0.1, 0.3])
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"vocab {args.vocab}, {args.positions} positions per row, seed {args.seed}")
    head = (f"{'top':>5} {'sigma':>5} {'entropy':>7} | {'|dlogp| mean':>12} {'p99':>7} | {'KL fp32':>9} {'KL bf16':>9} "
            f"{'|dKL|/tok':>9} | {'|delta|':>8} {'|d delta|':>9}")
    print(head)
    print("-" * len(head))
    for top in args.tops:
        for sigma in args.sigmas:
            m = measure(top, sigma, args.positions, args.vocab, args.seed)
            print(f"{m['top']:5.0f} {m['sigma']:5.2f} {m['entropy']:7.3f} | {m['logp_err_mean']:12.4f} "
                  f"{m['logp_err_p99']:7.4f} | {m['kl_fp32']:9.5f} {m['kl_bf16']:9.5f} {m['kl_err_tok']:9.5f} | "
                  f"{m['delta_abs']:8.4f} {m['delta_err']:9.4f}")


if __name__ == "__main__":
    main()
