"""Rollouts from scripted answer texts: what the stand-in samplers of the GRPO tests return."""

from __future__ import annotations

import torch

from msa.rl.rollout import completion_mask
from msa.rl.types import Rollout


def rollout_from_texts(tokenizer, texts: list[str], prefill_lengths: list[int], rows: torch.Tensor,
                       group_size: int) -> Rollout:
    """Each text tokenized and ended with EOS, right-padded; its first ``prefill_lengths[i]`` tokens flagged
    as prefill; ``rows`` the prompts, each repeated for its ``group_size`` answers."""
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] + [eos] for t in texts]
    width = max(len(i) for i in ids)
    comp = torch.full((len(ids), width), tokenizer.pad_token_id)
    pmask = torch.zeros_like(comp)
    for i, row in enumerate(ids):
        comp[i, : len(row)] = torch.tensor(row)
        pmask[i, : prefill_lengths[i]] = 1
    cmask, clipped = completion_mask(comp, eos)
    return Rollout(group_size, rows.repeat_interleave(group_size), comp, cmask, pmask, clipped, texts)
