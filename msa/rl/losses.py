"""Per-token log-probs and the GRPO clipped-surrogate loss with a k3 KL penalty (TRL's formulas).

Per completion token t of rollout i, with ratio rho = exp(logp - old_logp):

    l_it = -min(rho * A_i, clip(rho, 1 - eps_low, 1 + eps_high) * A_i) + beta * KL_it
    KL_it = exp(ref - logp) - (ref - logp) - 1                                   (k3, >= 0)

On-policy (num_iterations=1) the caller passes ``old_logp = logp.detach()``: rho is 1 in value but
carries the gradient, so clipping never triggers. With num_iterations=2 the second update reuses the
first pass's rollouts off-policy, rho drifts from 1 and clipping can trigger. ``logp - old_logp`` is
clamped to +-20 before ``exp`` (as verl does; TRL does not): a token whose log-prob moved by more
would make rho inf and the loss inf or NaN.

``importance_sampling_level="sequence"`` (GSPO, TRL's option of that name): one ratio per sequence,
``rho_i = exp(mean_t (logp - old_logp))`` over its loss tokens, clipped and applied to every token of
the sequence; the KL stays per token.

Aggregations (``loss_type``), with m the loss mask (prefill and padding are 0):

    "grpo"    mean_i [ sum_t l m / max(1, sum_t m) ]      per-sequence token mean (the paper's GRPO)
    "dapo"    sum l m / max(1, sum m)                     token mean over the batch
    "dr_grpo" sum l m / (B * max_completion_length)       constant normaliser

TRL's "bnpo" is "dapo" without ``num_items`` (a local token mean).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

LOSS_TYPES = ("grpo", "dapo", "dr_grpo")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")
LOG_RATIO_CLAMP = 20.0  # |logp - old_logp| bound before exp (verl's value): exp(20) ~ 4.9e8 stays finite


class _TokenLogprobs(torch.autograd.Function):
    """``log softmax(logits / T)`` at ``index`` that keeps nothing of size ``[N, C, V]`` for backward but
    ``logits`` themselves (alive anyway: the lm_head's output). Autograd through ``log_softmax`` would keep
    its output, and for half-precision logits that is a float32 copy, twice the logits' bytes (9.3 GiB for
    B=4, G=8, 512 tokens on the 7B). Forward and backward run one row ``[C, V]`` at a time in float32
    (float64 for float64 logits); the backward recomputes the softmax from the saved log-sum-exp."""

    @staticmethod
    def forward(ctx, logits: Tensor, index: Tensor, temperature: float) -> Tensor:  # [N, C, V], [N, C, 1]
        wide = torch.float64 if logits.dtype == torch.float64 else torch.float32
        out = torch.empty(logits.shape[:2], dtype=wide, device=logits.device)  # [N, C]
        lse = torch.empty_like(out)  # [N, C]
        for r in range(logits.shape[0]):
            z = _scaled(logits[r], wide, temperature)  # [C, V]
            lse[r] = torch.logsumexp(z, dim=-1)
            out[r] = z.gather(-1, index[r]).squeeze(-1) - lse[r]
        ctx.save_for_backward(logits, index, lse)
        ctx.temperature = temperature
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # [N, C]
        logits, index, lse = ctx.saved_tensors
        t = ctx.temperature
        grad_logits = torch.empty_like(logits)  # [N, C, V], the logits' dtype
        for r in range(logits.shape[0]):
            g = grad[r].to(lse.dtype).unsqueeze(-1)  # [C, 1]
            # d/dz_j (z_i / T - lse) = (1[j = i] - p_j) / T
            row = torch.exp(_scaled(logits[r], lse.dtype, t) - lse[r].unsqueeze(-1)).mul_(-g)  # [C, V]
            row.scatter_add_(-1, index[r], g)
            grad_logits[r] = row.div_(t) if t != 1.0 else row
        return grad_logits, None, None


def _scaled(row: Tensor, dtype: torch.dtype, temperature: float) -> Tensor:
    """``row / T`` in ``dtype`` (a new tensor only when a cast or a division is needed)."""
    row = row.to(dtype)
    return row / temperature if temperature != 1.0 else row


def token_logprobs(logits: Tensor, ids: Tensor, temperature: float = 1.0) -> Tensor:
    """``log softmax(logits / T)`` at ``ids``: ``[B, L, V], [B, L] -> [B, L]`` (float32; float64 for float64).

    Dividing by the sampling temperature makes these log-probs those of the distribution that
    actually sampled the tokens (TRL does the same). Half-precision logits are upcast to float32 one
    row at a time (a bf16 log-softmax is off by ~0.03 nats), and backward keeps no ``[B, L, V]``
    tensor but the logits themselves (:class:`_TokenLogprobs`; TRL's selective log-softmax idea).

    >>> token_logprobs(torch.zeros(1, 2, 4), torch.tensor([[0, 3]]))
    tensor([[-1.3863, -1.3863]])
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be [B, L, V], got shape {tuple(logits.shape)}")
    if ids.shape != logits.shape[:2]:
        raise ValueError(f"ids shape {tuple(ids.shape)} != logits [B, L] {tuple(logits.shape[:2])}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return _TokenLogprobs.apply(logits, ids.long().unsqueeze(-1), float(temperature))


def token_entropy(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Entropy of ``softmax(logits / T)`` per position: ``[B, L, V] -> [B, L]`` (float32), row by row.

    >>> token_entropy(torch.zeros(1, 1, 4))  # uniform over 4: ln 4
    tensor([[1.3863]])
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be [B, L, V], got shape {tuple(logits.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    rows = []
    for row in logits:  # [L, V]
        logp = torch.log_softmax(row.float() / temperature, dim=-1)  # [L, V]
        # Suppressed tokens sit at finfo.min; divided by T < 1 they overflow to -inf and p * logp would
        # be 0 * -inf = NaN. A zero-probability token adds nothing to the entropy.
        plogp = torch.where(logp > -torch.inf, logp.exp() * logp, torch.zeros_like(logp))  # [L, V]
        rows.append(-plogp.sum(-1))  # [L]
    return torch.stack(rows)  # [B, L]


class LossStats(NamedTuple):
    """Detached 0-dim tensors for logging; every mean runs over the masked tokens of the batch."""

    kl: Tensor  # mean k3 KL (0 when ref_logp is None)
    clip_ratio_low: Tensor  # TRL clip_ratio/low_mean: rho < 1 - eps_low and A < 0
    clip_ratio_high: Tensor  # TRL clip_ratio/high_mean: rho > 1 + eps_high and A > 0
    clip_ratio_region: Tensor  # TRL clip_ratio/region_mean: either of the above
    policy_loss: Tensor  # the loss without the KL term, same aggregation


def _aggregate(
    per_token: Tensor, m: Tensor, loss_type: str, max_len: int | None, num_items: float | None
) -> Tensor:
    """Reduce ``[B, L]`` per-token losses to a scalar the way ``loss_type`` says."""
    if loss_type == "grpo":
        return ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "dapo":
        denom = m.sum().clamp(min=1.0) if num_items is None else num_items
        return (per_token * m).sum() / denom
    return (per_token * m).sum() / (per_token.shape[0] * max_len)  # dr_grpo


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    ref_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    *,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    beta: float = 0.1,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    num_items: float | None = None,
    importance_sampling_level: str = "token",
) -> tuple[Tensor, LossStats]:
    """Clipped-surrogate GRPO loss and its statistics (see the module docstring for the formulas).

    Shapes: ``logp``, ``old_logp``, ``ref_logp``, ``mask`` are ``[B, L]``; ``advantages`` is ``[B]``.
    ``mask`` is bool or 0/1 float; nonzero entries count. Masked positions get exactly zero gradient,
    even if their log-probs are huge or -inf (they are replaced before ``exp``).
    ``ref_logp`` may be None only when ``beta == 0``; given with ``beta == 0`` it is only logged.
    ``epsilon_high=None`` means ``epsilon_low`` (symmetric clipping; DAPO uses 0.28).
    ``max_completion_length`` is required by "dr_grpo". ``num_items`` (only "dapo") overrides the
    token-count denominator: under DDP, whose gradient averaging divides by the world size, pass
    (active tokens summed over all ranks and accumulation steps) / world_size, as TRL does, so the
    result is a global token mean; the default is this batch's own token count.
    ``importance_sampling_level``: "token" (GRPO) or "sequence" (GSPO), see the module docstring.

    >>> lp = torch.zeros(1, 2)
    >>> loss, stats = grpo_loss(lp, lp, None, torch.tensor([1.0]), torch.ones(1, 2), beta=0.0)
    >>> loss.item(), stats.clip_ratio_region.item()
    (-1.0, 0.0)
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if importance_sampling_level not in IMPORTANCE_SAMPLING_LEVELS:
        raise ValueError(f"importance_sampling_level must be one of {IMPORTANCE_SAMPLING_LEVELS}, "
                         f"got {importance_sampling_level!r}")
    if logp.dim() != 2:
        raise ValueError(f"logp must be [B, L], got shape {tuple(logp.shape)}")
    for name, t in (("old_logp", old_logp), ("ref_logp", ref_logp), ("mask", mask)):
        if t is not None and t.shape != logp.shape:
            raise ValueError(f"{name} shape {tuple(t.shape)} != logp shape {tuple(logp.shape)}")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"advantages must be [B]={logp.shape[0]}, got {tuple(advantages.shape)}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if beta > 0 and ref_logp is None:
        raise ValueError(f"beta={beta} needs ref_logp (pass beta=0 to train without a reference)")
    if loss_type == "dr_grpo" and (max_completion_length is None or max_completion_length < 1):
        raise ValueError(f"loss_type='dr_grpo' needs max_completion_length >= 1, got {max_completion_length}")
    if num_items is not None and (loss_type != "dapo" or num_items <= 0):
        raise ValueError(f"num_items applies to loss_type='dapo' only and must be > 0, got {num_items}")
    eps_low = epsilon_low
    eps_high = epsilon_low if epsilon_high is None else epsilon_high

    keep = mask.bool()  # [B, L]
    m = keep.to(logp.dtype)  # [B, L]
    zero = torch.zeros_like(logp)
    # where() before exp(): masked garbage (e.g. -inf) would make the masked grad 0 * inf = NaN.
    log_ratio = torch.where(keep, logp - old_logp, zero)  # [B, L]
    if importance_sampling_level == "sequence":  # GSPO: the mean log-ratio of each sequence's loss tokens
        log_ratio = (log_ratio * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0)  # [B, 1]
    ratio = torch.exp(log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))  # [B, L] or [B, 1]
    adv = advantages.to(logp.dtype).unsqueeze(1)  # [B, 1]
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)  # [B, L] or [B, 1]
    pg = (-torch.min(ratio * adv, clipped * adv)).expand_as(logp)  # [B, L]
    per_token = pg
    kl = zero
    if ref_logp is not None:
        delta = torch.where(keep, ref_logp - logp, zero)  # [B, L]
        kl = torch.exp(delta) - delta - 1.0  # [B, L]
        if beta > 0:
            per_token = pg + beta * kl
    loss = _aggregate(per_token, m, loss_type, max_completion_length, num_items)

    with torch.no_grad():
        n_tok = m.sum().clamp(min=1.0)

        def masked_mean(x: Tensor) -> Tensor:
            return (x.to(m.dtype) * m).sum() / n_tok

        low = ((ratio < 1.0 - eps_low) & (adv < 0)).expand_as(logp)  # [B, L]
        high = ((ratio > 1.0 + eps_high) & (adv > 0)).expand_as(logp)  # [B, L]
        stats = LossStats(
            kl=masked_mean(kl),
            clip_ratio_low=masked_mean(low),
            clip_ratio_high=masked_mean(high),
            clip_ratio_region=masked_mean(low | high),
            policy_loss=_aggregate(pg, m, loss_type, max_completion_length, num_items),
        )
    return loss, stats
