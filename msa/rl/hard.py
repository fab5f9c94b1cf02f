"""Hard-prompt detection and what to do with hard groups (Hint-GRPO).

A prompt is *hard* when its first G rollouts give GRPO nothing to learn from on the axis the hint
can fix. Our hint only carries the polarity, so the default rule asks that every rollout's polarity
be wrong; the paper's wording ("the rewards of all outputs are below a threshold") is the
alternative rule, kept so the two can be compared.

What happens to a hard group depends on two switches of the run config:

    hint  keep_hard | regenerate  drop
    true  true      | hard        -       Hint-GRPO: the hinted group replaces the sampled one
    false true      | -           -       plain GRPO: hard groups train as sampled
    *     false     | -           hard    paper's "w/o Hard" ablation: train on easy prompts only

With ``hint=true`` and ``keep_hard=false`` dropping wins: a dropped group has nothing to hint.
"""

from __future__ import annotations

import torch
from torch import Tensor

RULES = ("all_wrong", "reward_below")


def find_hard(
    polarity_correct: Tensor,
    rewards: Tensor,
    rule: str = "all_wrong",
    threshold: float | None = None,
) -> Tensor:
    """Hard prompts ``[B]`` bool from per-rollout results ``[B, G]``.

    ``polarity_correct`` must be False for an unparseable answer (a format failure counts as a wrong
    polarity). ``rewards`` are the summed rewards. Rules:

    - "all_wrong": no rollout got the polarity right.
    - "reward_below": every rollout's reward is < ``threshold`` (required).

    >>> ok = torch.tensor([[False, False], [True, False]])
    >>> find_hard(ok, torch.tensor([[0.5, 1.0], [3.0, 0.0]]))
    tensor([ True, False])
    >>> find_hard(ok, torch.tensor([[0.5, 1.0], [3.0, 0.0]]), rule="reward_below", threshold=2.0)
    tensor([ True, False])
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if polarity_correct.dim() != 2 or polarity_correct.dtype != torch.bool:
        raise ValueError(
            f"polarity_correct must be a bool [B, G] tensor, got {polarity_correct.dtype} "
            f"of shape {tuple(polarity_correct.shape)}"
        )
    if rewards.shape != polarity_correct.shape:
        raise ValueError(
            f"rewards shape {tuple(rewards.shape)} != polarity_correct shape "
            f"{tuple(polarity_correct.shape)}"
        )
    if rule == "all_wrong":
        return ~polarity_correct.any(dim=1)
    if threshold is None:
        raise ValueError("rule='reward_below' needs a threshold")
    return (rewards < threshold).all(dim=1)


def select_groups(hard: Tensor, hint: bool, keep_hard: bool) -> tuple[Tensor, Tensor]:
    """``(regenerate_with_hint, drop_from_loss)``, each ``[B]`` bool; see the module table.

    >>> hard = torch.tensor([True, False])
    >>> select_groups(hard, hint=True, keep_hard=True)
    (tensor([ True, False]), tensor([False, False]))
    >>> select_groups(hard, hint=True, keep_hard=False)
    (tensor([False, False]), tensor([ True, False]))
    """
    if hard.dim() != 1 or hard.dtype != torch.bool:
        raise ValueError(f"hard must be a bool [B] tensor, got {hard.dtype} of shape {tuple(hard.shape)}")
    none = torch.zeros_like(hard)
    if not keep_hard:
        return none, hard.clone()
    if hint:
        return hard.clone(), none
    return none, none.clone()
