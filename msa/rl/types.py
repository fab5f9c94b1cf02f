"""The GRPO step's state: one :class:`Rollout` holds every sampled answer of the step and what the
rewards said about it; the hinted regeneration replaces whole groups of it (:meth:`Rollout.replace_groups`).

N is the number of rollouts (B prompts x G), C the (right-padded) completion width. Rollouts are
group-major: rows g*G .. g*G+G-1 share one prompt. Tensors live on the model's device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Rollout:
    group_size: int  # G, rollouts per prompt
    prompt_rows: Tensor  # [N] long, the batch row of each rollout's prompt (constant within a group)
    completion_ids: Tensor  # [N, C] long, right-padded; a hinted row starts with its prefill tokens
    completion_mask: Tensor  # [N, C] 1 up to and including the first EOS (prefill included)
    prefill_mask: Tensor  # [N, C] 1 on prefill tokens: written by us, not sampled
    clipped: Tensor  # [N] bool, hit max_new_tokens without EOS
    texts: list[str]  # N answers, prefill + completion: what the rewards score
    rewards: Tensor | None = None  # [N] float32, weighted sum of the reward functions
    per_fn: dict[str, list[float]] = field(default_factory=dict)  # reward function -> N values
    right: Tensor | None = None  # [N] bool, polarity right (a format failure counts as wrong)
    hinted: Tensor | None = None  # [N] bool, regenerated with the polarity hint
    # grpo.hint_mode=anchored: the prefill tokens join the loss and the KL, so the hinted polarity is reinforced
    prefill_in_loss: bool = False

    def __post_init__(self):
        if self.hinted is None:
            self.hinted = torch.zeros(len(self.texts), dtype=torch.bool, device=self.completion_ids.device)

    @property
    def loss_mask(self) -> Tensor:
        """[N, C] float: the tokens the policy loss and the KL see: the sampled ones (prefill and padding 0),
        or every completion token, prefill included, with ``prefill_in_loss``."""
        if self.prefill_in_loss:
            return self.completion_mask.float()
        return (self.completion_mask * (1 - self.prefill_mask)).float()

    @property
    def lengths(self) -> Tensor:
        """[N] float: sampled tokens per rollout (prefill excluded)."""
        return (self.completion_mask * (1 - self.prefill_mask)).float().sum(1)

    def set_rewards(self, rewards: Tensor, per_fn: dict[str, list[float]], right: Tensor) -> None:
        """Attach the rewards of :attr:`texts` (summed ``rewards`` [N], per function, polarity right [N])."""
        device = self.completion_ids.device
        self.rewards, self.per_fn, self.right = rewards.to(device), per_fn, right.to(device)

    def select(self, rows: Tensor) -> "Rollout":
        """The rollouts ``rows`` (whole groups, so that group_size still holds)."""
        idx = rows.to(self.completion_ids.device)
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        keep = idx.tolist()
        return Rollout(self.group_size, pick(self.prompt_rows), pick(self.completion_ids), pick(self.completion_mask),
                       pick(self.prefill_mask), pick(self.clipped), [self.texts[i] for i in keep], pick(self.rewards),
                       {k: [v[i] for i in keep] for k, v in self.per_fn.items()}, pick(self.right), pick(self.hinted),
                       self.prefill_in_loss)

    def replace_groups(self, hinted: "Rollout", pad_id: int) -> "Rollout":
        """This rollout with the groups of ``hinted``'s prompts replaced by ``hinted``'s rows (flagged as
        hinted); completions are right-padded with ``pad_id`` to the wider of the two."""
        G = self.group_size
        if hinted.group_size != G or hinted.rewards is None or self.rewards is None:
            raise ValueError("replace_groups: both rollouts need the same group_size and their rewards")
        where = {int(p): i for i, p in enumerate(self.prompt_rows[::G].tolist())}
        idx = torch.tensor([where[int(p)] * G + j for p in hinted.prompt_rows[::G].tolist() for j in range(G)],
                           device=self.completion_ids.device)  # [M] rows of the replaced groups
        width = max(self.completion_ids.shape[1], hinted.completion_ids.shape[1])

        def widen(t: Tensor, value: int) -> Tensor:
            return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

        out = Rollout(G, self.prompt_rows.clone(), widen(self.completion_ids, pad_id),
                      widen(self.completion_mask, 0), widen(self.prefill_mask, 0), self.clipped.clone(),
                      list(self.texts), self.rewards.clone(), {k: list(v) for k, v in self.per_fn.items()},
                      self.right.clone(), self.hinted.clone(), self.prefill_in_loss)
        out.completion_ids[idx] = widen(hinted.completion_ids, pad_id).to(idx.device)
        out.completion_mask[idx] = widen(hinted.completion_mask, 0).to(idx.device)
        out.prefill_mask[idx] = widen(hinted.prefill_mask, 0).to(idx.device)
        out.clipped[idx] = hinted.clipped.to(idx.device)
        out.rewards[idx] = hinted.rewards.to(idx.device)
        out.right[idx] = hinted.right.to(idx.device)
        out.hinted[idx] = True
        for j, r in enumerate(idx.tolist()):
            out.texts[r] = hinted.texts[j]
            for k in out.per_fn:
                out.per_fn[k][r] = hinted.per_fn[k][j]
        return out

    def reward_moments(self, names: list[str]) -> Tensor:
        """``[1 + F, 3]`` float64: count, sum and sum of squares of the summed reward and of each reward
        function ``names``; summed over DDP ranks they give TRL's gathered means and stds."""
        from msa.rl.advantages import reward_moments

        cols = [self.rewards] + [torch.tensor(self.per_fn[k], dtype=torch.float64) for k in names]
        return torch.stack([reward_moments(c.cpu()) for c in cols])


def reward_metrics(moments: Tensor, names: list[str]) -> dict[str, float]:
    """TRL's reward scalars from (summed) :meth:`Rollout.reward_moments`: ``reward``, ``reward_std`` (the std
    over every rollout of the batch, not the mean of group stds), ``rewards/<fn>/mean`` and ``rewards/<fn>/std``.

    >>> m = torch.tensor([[2.0, 4.0, 10.0], [2.0, 1.0, 1.0]], dtype=torch.float64)  # rewards [1, 3], fn [0, 1]
    >>> reward_metrics(m, ["format"])
    {'reward': 2.0, 'reward_std': 1.4142135623730951, 'rewards/format/mean': 0.5, 'rewards/format/std': 0.7071067811865476}
    """
    from msa.rl.advantages import std_from_moments

    def mean(row: Tensor) -> float:
        return float(row[1] / row[0]) if row[0] > 0 else float("nan")

    out = {"reward": mean(moments[0]), "reward_std": std_from_moments(moments[0])}
    for name, row in zip(names, moments[1:]):
        out[f"rewards/{name}/mean"] = mean(row)
        out[f"rewards/{name}/std"] = std_from_moments(row)
    return out

