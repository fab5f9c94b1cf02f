"""Containers passed between the GRPO step's stages (after torchtune's ``dev/grpo/types.py``).

B is the number of prompts in the step, G the rollouts per prompt, P the (left-padded) prompt
length and C the (right-padded) completion length. Rollouts are group-major: rows g*G .. g*G+G-1
belong to prompt g.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class Rollout(NamedTuple):
    """G sampled completions per prompt, with what the loss needs from the sampling pass.

    A hinted row carries the injected ``<polarity>...</polarity>`` prefill at the start of its
    completion tokens; ``loss_mask`` zeroes it, so neither the policy gradient nor the KL sees it.
    """

    prompt_ids: Tensor  # [B*G, P] long, left-padded
    prompt_mask: Tensor  # [B*G, P] 1 on real prompt tokens
    completion_ids: Tensor  # [B*G, C] long, right-padded (prefill included for hinted rows)
    completion_mask: Tensor  # [B*G, C] 1 up to and including the first EOS
    loss_mask: Tensor  # [B*G, C] completion_mask with the prefill positions zeroed
    old_logp: Tensor  # [B*G, C] float, the sampling policy's log-probs of completion_ids
    ref_logp: Tensor | None  # [B*G, C] float, the frozen reference's log-probs; None when beta == 0
    texts: list[str]  # B*G decoded answers, prefill + completion (what the rewards score)
    hinted: Tensor  # [B*G] bool, row was regenerated with the polarity hint
    group_index: Tensor  # [B*G] long, index of the row's prompt in the batch (0..B-1)


class GRPOStepStats(NamedTuple):
    """One training step's scalars; ``metrics()`` gives them TRL's logging names."""

    loss: float
    kl: float  # masked mean k3 KL to the reference
    entropy: float  # masked mean token entropy of the policy
    clip_ratio_low: float
    clip_ratio_high: float
    clip_ratio_region: float
    reward: float  # mean summed reward over all B*G rollouts (after hint regeneration)
    reward_std: float  # std of the rewards over the whole batch (TRL's current definition)
    frac_reward_zero_std: float  # fraction of groups with ~zero reward std
    hint_rate: float  # fraction of rollouts that were regenerated with a hint
    hard_frac: float  # fraction of prompts detected as hard
    completion_mean_length: float  # mean completion tokens, prefill excluded
    clipped_ratio: float  # fraction of completions that hit the length limit without EOS

    def metrics(self, prefix: str = "train/") -> dict[str, float]:
        """Flat ``{name: value}`` under TRL's GRPO metric names plus ours (``hint/rate``, ``hard/frac``).

        >>> stats = GRPOStepStats(*range(13))
        >>> stats.metrics()["train/clip_ratio/high_mean"], stats.metrics("")["hint/rate"]
        (4.0, 9.0)
        """
        names = {
            "loss": "loss",
            "kl": "kl",
            "entropy": "entropy",
            "clip_ratio_low": "clip_ratio/low_mean",
            "clip_ratio_high": "clip_ratio/high_mean",
            "clip_ratio_region": "clip_ratio/region_mean",
            "reward": "reward",
            "reward_std": "reward_std",
            "frac_reward_zero_std": "frac_reward_zero_std",
            "hint_rate": "hint/rate",
            "hard_frac": "hard/frac",
            "completion_mean_length": "completions/mean_length",
            "clipped_ratio": "completions/clipped_ratio",
        }
        return {prefix + names[field]: float(value) for field, value in self._asdict().items()}
