"""Group-relative advantages for GRPO, following TRL's ``sum_then_normalize``.

The G rollouts of one prompt form a group. A rollout's advantage is its (already summed) reward minus
its group's mean, optionally divided by a std (TRL's ``scale_rewards``):

    A_i = (r_i - mean_group(r)) / (std + eps)
    std = unbiased std of the group ("group", the paper's GRPO), of the whole batch ("batch"),
          or no division at all ("none", the Dr. GRPO recommendation).

Layout: rollouts are stored group by group, ``rewards[g*G:(g+1)*G]`` belong to prompt g, which is
what ``repeat_interleave(G)`` on the prompts produces.
"""

from __future__ import annotations

import torch
from torch import Tensor

SCALES = ("group", "batch", "none")


def _grouped(rewards: Tensor, group_size: int) -> Tensor:
    """Check the layout and view ``rewards`` as ``[N//G, G]`` in floating point."""
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [N], got shape {tuple(rewards.shape)}")
    if group_size < 2:
        # One rollout per prompt has no baseline to compare with (and its unbiased std is NaN).
        raise ValueError(f"group_size must be >= 2, got {group_size}")
    if rewards.numel() % group_size != 0:
        raise ValueError(
            f"rewards has {rewards.numel()} entries, not divisible by group_size={group_size}"
        )
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards contain NaN or inf")
    if not rewards.is_floating_point():
        rewards = rewards.float()
    return rewards.view(-1, group_size)  # [N//G, G]


def group_advantages(
    rewards: Tensor, group_size: int, scale: str = "group", eps: float = 1e-4, batch_std: float | None = None
) -> Tensor:
    """Advantages ``[N]`` of group-major rewards ``[N]``.

    A group whose rewards are all identical gets advantages of exactly 0 in every mode (the float
    mean of equal values can be off by one ulp, and "batch" scaling would not shrink that residue).
    ``batch_std`` (only with ``scale="batch"``) replaces the std of ``rewards``: under DDP, TRL takes
    it over the rewards gathered from every rank (:func:`std_from_moments` of the summed
    :func:`reward_moments`).

    >>> group_advantages(torch.tensor([0.0, 2.0, 1.0, 1.0]), group_size=2, scale="none")
    tensor([-1.,  1.,  0.,  0.])
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    grouped = _grouped(rewards, group_size)  # [N//G, G]
    centered = grouped - grouped.mean(dim=1, keepdim=True)  # [N//G, G]
    constant = (grouped == grouped[:, :1]).all(dim=1, keepdim=True)  # [N//G, 1]
    centered = torch.where(constant, torch.zeros_like(centered), centered)
    if scale == "group":
        centered = centered / (grouped.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        # TRL "batch": the mean is still per group, only the std is taken over every reward.
        centered = centered / ((grouped.std() if batch_std is None else batch_std) + eps)
    return centered.reshape(-1)  # [N]


def anchored_advantages(
    hinted: Tensor, replaced: Tensor, group_size: int, scale: str = "group", eps: float = 1e-4,
    batch_std: float | None = None,
) -> Tensor:
    """Advantages ``[M]`` of hinted groups scored against the groups they replace (``grpo.hint_mode=anchored``).

    ``hinted[g*G:(g+1)*G]`` regenerated the prompt whose own rollouts scored ``replaced[g*G:(g+1)*G]``.
    The baseline is the replaced group's mean, so a hinted answer that earns the polarity reward its
    group could not is pushed up (in the paper's reading the hinted group is its own baseline and the
    polarity reward, constant within it, cancels). The scale is the std of the 2G rewards together
    ("group": the replaced group alone is often constant, e.g. every answer malformed), the batch's
    (``batch_std``) or none. Both groups constant and equal: exactly 0, as in :func:`group_advantages`.

    >>> anchored_advantages(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0]), group_size=2, scale="none")
    tensor([1.5000, 2.5000])
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if hinted.shape != replaced.shape:
        raise ValueError(f"hinted {tuple(hinted.shape)} and replaced {tuple(replaced.shape)} rewards differ in shape")
    h, r = _grouped(hinted, group_size), _grouped(replaced, group_size)  # [M//G, G] each
    both = torch.cat([r, h], dim=1)  # [M//G, 2G]
    centered = h - r.mean(dim=1, keepdim=True)
    constant = (both == both[:, :1]).all(dim=1, keepdim=True)
    centered = torch.where(constant, torch.zeros_like(centered), centered)
    if scale == "group":
        centered = centered / (both.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        centered = centered / ((both.std() if batch_std is None else batch_std) + eps)
    return centered.reshape(-1)


def group_std(rewards: Tensor, group_size: int) -> Tensor:
    """Unbiased std of each group's rewards, ``[N//G]``.

    >>> group_std(torch.tensor([0.0, 2.0, 1.0, 1.0]), group_size=2)
    tensor([1.4142, 0.0000])
    """
    return _grouped(rewards, group_size).std(dim=1)


def frac_zero_std(rewards: Tensor, group_size: int) -> float:
    """Fraction of *groups* whose reward std is ~0 (no learning signal from advantages).

    TRL's ``frac_reward_zero_std`` counts completions instead; every group here has exactly G
    members, so the two fractions are equal. ``torch.isclose`` to 0, as TRL does.

    >>> frac_zero_std(torch.tensor([0.0, 2.0, 1.0, 1.0]), group_size=2)
    0.5
    """
    std = group_std(rewards, group_size)
    return torch.isclose(std, torch.zeros_like(std)).float().mean().item()


def reward_moments(rewards: Tensor) -> Tensor:
    """``[count, sum, sum of squares]`` (float64) of a rank's rewards; summed over ranks they give the
    std of every rank's rewards together (:func:`std_from_moments`) without gathering ragged tensors.

    >>> reward_moments(torch.tensor([1.0, 3.0]))
    tensor([ 2.,  4., 10.], dtype=torch.float64)
    """
    r = rewards.detach().double().reshape(-1)
    return torch.stack([r.new_tensor(float(r.numel())), r.sum(), (r * r).sum()])


def std_from_moments(moments: Tensor) -> float:
    """Unbiased std from summed :func:`reward_moments` (torch.std's convention; NaN below 2 rewards).

    >>> std_from_moments(torch.tensor([2.0, 4.0, 10.0], dtype=torch.float64))  # std of [1, 3]
    1.4142135623730951
    """
    n, total, sq = (float(x) for x in moments)
    if n < 2:
        return float("nan")
    return max(0.0, (sq - total * total / n) / (n - 1)) ** 0.5
