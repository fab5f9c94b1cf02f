"""The grouped layout of the shared-prompt path: its masks worked out by hand, and the same log-probs,
gradients and draws as the repeated prompt under eager attention (the additive-mask form) on text prompts
with left padding. The sdpa equivalence with media is in tests/test_rollout.py."""

from __future__ import annotations

import pytest
import torch

from conftest import LORA_R4
from msa.models import load_policy, unwrap_peft
from msa.rl.rollout import completion_logits
from msa.rl.shared_prompt import (PromptState, completion_visibility, decode, decode_visibility, grouped_mask,
                                  logits_processors, prompt_pass)


def test_completion_visibility_by_hand():
    """G=2 rollouts of C=2 tokens, the second rollout's last token padding: each query sees its own
    rollout's real tokens up to itself, never the other rollout's."""
    vis = completion_visibility(torch.tensor([[1, 1], [1, 0]]), 2)
    assert vis.int().tolist() == [[[1, 0, 0, 0],    # rollout 0, token 0
                                   [1, 1, 0, 0],    # rollout 0, token 1
                                   [0, 0, 1, 0],    # rollout 1, token 0
                                   [0, 0, 1, 0]]]   # rollout 1, token 1 (its own key is padding)


def test_decode_visibility_by_hand():
    """Step-major cache (token s of rollout g at s*G + g), G=2, 2 steps: each rollout sees its own column."""
    assert decode_visibility(1, 2, 2, "cpu").int().tolist() == [[[1, 0, 1, 0], [0, 1, 0, 1]]]


def test_grouped_mask_forms():
    """The prompt part (left padding masked) before the new keys; bool for sdpa, 0/lowest for eager;
    an implementation without 4D masks is refused by name."""
    own = torch.tensor([[[True, False], [False, True]]])
    sdpa = grouped_mask(torch.tensor([[0, 1, 1]]), own, "sdpa", torch.float32)
    assert sdpa.shape == (1, 1, 2, 5)
    assert sdpa.int().tolist() == [[[[0, 1, 1, 1, 0], [0, 1, 1, 0, 1]]]]
    eager = grouped_mask(torch.tensor([[0, 1, 1]]), own, "eager", torch.bfloat16)
    low = torch.finfo(torch.bfloat16).min
    assert eager.dtype == torch.bfloat16
    assert eager.tolist() == [[[[low, 0, 0, 0, low], [low, 0, 0, low, 0]]]]
    with pytest.raises(ValueError, match="attn_implementation='flash_attention_2'"):
        grouped_mask(torch.tensor([[1]]), own[:, :, :1], "flash_attention_2", torch.float32)


G = 3


@pytest.fixture(scope="module")
def eager_policy(tiny_cfg):
    torch.manual_seed(0)
    policy = load_policy(tiny_cfg(*LORA_R4, "model.attn_implementation=eager"))
    with torch.no_grad():  # a non-zero adapter
        for n, p in policy.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    return policy


def _text_batch():
    """Two text prompts, the first left-padded by 3: no media (the towers and TMRoPE give text positions)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(10, 500, (2, 9), generator=g)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[0, :3] = 0
    ids[0, :3] = 0
    return {"input_ids": ids, "attention_mask": mask}


def test_eager_grouped_scoring_matches_the_repeated_prompt(eager_policy):
    """eager attention, fp32: log-probs of the grouped pass equal the naive pass (prompt + completion per
    row) to 1e-5 on every real completion token, and so do the LoRA gradients of one loss (rtol 1e-4, atol
    1e-5 of each tensor's largest entry)."""
    model, batch = eager_policy.model, _text_batch()
    thinker = unwrap_peft(model)
    rows = torch.tensor([1, 0]).repeat_interleave(G)
    ids = torch.randint(10, 500, (2 * G, 5), generator=torch.Generator().manual_seed(2))
    cmask = torch.ones_like(ids)
    cmask[1, 3:] = 0  # a rollout that ended early
    cmask[4, 1:] = 0
    weights = torch.linspace(-1, 1, 2 * G * 5).view(2 * G, 5)
    out = {}
    for shared in (False, True):
        model.zero_grad()
        logits = completion_logits(model, thinker, batch, None, rows, ids, cmask, False,
                                   group_size=G if shared else None)
        logp = torch.log_softmax(logits.float(), -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)  # [N, C]
        (logp * weights * cmask).sum().backward()
        out[shared] = logp.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    real = cmask.bool()
    torch.testing.assert_close(out[True][0][real], out[False][0][real], atol=1e-5, rtol=0)
    for n, g in out[False][1].items():  # entries near 0 compare against the tensor's scale (summation order)
        torch.testing.assert_close(out[True][1][n], g, rtol=1e-4, atol=1e-5 * g.abs().max().item(), msg=n)
    assert any(g.abs().sum() > 0 for n, g in out[True][1].items() if "lora_A" in n)


def test_eager_grouped_decode_draws_what_the_repeated_prompt_draws(eager_policy):
    """The grouped decoder against the same decoder on a prompt state repeated G times (one rollout per
    prompt, the layout before this path shared the prompt): the same tokens from one seed."""
    model, batch = eager_policy.model, _text_batch()
    thinker = unwrap_peft(model)
    with torch.no_grad():
        state = prompt_pass(model, thinker, batch, None, torch.arange(2), False)
    rep = lambda t: t.repeat_interleave(G, 0)  # noqa: E731
    repeated = PromptState([rep(k) for k in state.keys], [rep(v) for v in state.values], rep(state.mask),
                           rep(state.next_pos), rep(state.last_hidden))
    kw = dict(max_new_tokens=6, processors=logits_processors(1.0, 1.0, [], "cpu"), eos_id=-1, pad_id=0)
    torch.manual_seed(5)
    grouped = decode(model, thinker, state, group_size=G, **kw)
    torch.manual_seed(5)
    single = decode(model, thinker, repeated, group_size=1, **kw)
    assert grouped.shape == (2 * G, 6) and len({tuple(r) for r in grouped.tolist()}) > 1
    assert torch.equal(grouped, single)
