"""The shared-prompt GRPO path against the naive one (same sampled tokens, log-probs and gradients),
the rollout container, the completion assembly with hint prefills, and device placement."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from conftest import LORA_R4
from msa.data.datamodule import DemoDataModule
from msa.generation import append_prefill, prefix_ids, suppressed_ids
from msa.models import load_policy, unwrap_peft
from msa.models.encode import encode_media, position_kwargs
from msa.rl.losses import grpo_loss, token_logprobs
from msa.rl.rollout import completion_logits, join_prefill, sample
from msa.rl.shared_prompt import (PromptState, completion_visibility, decode_visibility, grouped_mask, prompt_pass,
                                  text_positions)
from msa.rl.types import Rollout, reward_metrics

G = 3


@pytest.fixture(scope="module")
def batch(cache_dir, tiny_dir):
    from transformers import AutoProcessor

    dm = DemoDataModule(cache_dir / "data" / "demo_grpo", n_clips=24, batch_size=2, cache_dir=cache_dir / "media",
                        shuffle=False, video_min_pixels=3136, video_max_pixels=8192)
    dm.attach_processor(AutoProcessor.from_pretrained(tiny_dir))
    dm.prepare_data()
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def _policy(tiny_cfg):
    torch.manual_seed(0)
    policy = load_policy(tiny_cfg(*LORA_R4))
    with torch.no_grad():  # a non-zero adapter, so that the adapter's own gradient paths are exercised
        for n, p in policy.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    return policy


@pytest.fixture(scope="module")
def policy(tiny_cfg):
    return _policy(tiny_cfg)


def _prefills(tok):
    """Two answer prefills of different token lengths (the case that needs padding between prompt and
    prefill; the tiny tokenizer gives the three polarity hints one length, so one is made longer)."""
    from msa.dc import HINT_FOLLOWS, hint_prefill

    pre = [hint_prefill("negative"), "<polarity>positive</polarity><think>a smile"]
    assert len(prefix_ids(tok, pre[0], HINT_FOLLOWS)) != len(prefix_ids(tok, pre[1], HINT_FOLLOWS))
    return pre


def _both(policy, batch, prefills, seed=7, temperature=0.7, max_new_tokens=8):
    from msa.dc import HINT_FOLLOWS

    thinker = unwrap_peft(policy.model)
    media = encode_media(thinker, batch)
    rows = torch.tensor([1, 0])
    kw = dict(group_size=G, max_new_tokens=max_new_tokens, temperature=temperature, top_p=1.0,
              use_audio_in_video=True, prefills=prefills, prefill_follows=HINT_FOLLOWS if prefills else "")
    torch.manual_seed(seed)
    naive = sample(policy.model, thinker, policy.tokenizer, batch, media, rows, **kw)
    with torch.no_grad():
        prompts = prompt_pass(policy.model, thinker, batch, media, torch.arange(2), True)
    torch.manual_seed(seed)
    shared = sample(policy.model, thinker, policy.tokenizer, batch, media, rows, prompts=prompts, **kw)
    return media, naive, shared


@pytest.fixture(scope="module")
def rollouts(policy, batch):
    """(media, naive, shared) rollouts of one seed, sampled and hinted."""
    return {False: _both(policy, batch, None), True: _both(policy, batch, _prefills(policy.tokenizer), seed=8)}


@pytest.mark.parametrize("hinted", [False, True])
def test_shared_prompt_samples_the_same_tokens(rollouts, hinted):
    """One seed, T=0.7, suppressed tokens: the cached-prompt decoder draws what generate() draws (with
    hint prefills of different lengths, appended to the same prompt cache)."""
    _, naive, shared = rollouts[hinted]
    assert torch.equal(shared.completion_ids, naive.completion_ids)
    assert torch.equal(shared.completion_mask, naive.completion_mask)
    assert torch.equal(shared.prefill_mask, naive.prefill_mask)
    assert shared.texts == naive.texts and len(set(shared.texts)) > 1
    assert torch.equal(shared.prompt_rows, torch.tensor([1] * G + [0] * G))


def _logp(policy, batch, media, s, shared, T=0.7):
    logits = completion_logits(policy.model, unwrap_peft(policy.model), batch, media, s.prompt_rows, s.completion_ids,
                               s.completion_mask, True, suppress=suppressed_ids(policy.tokenizer),
                               group_size=G if shared else None)
    return token_logprobs(logits, s.completion_ids, T)


def _grads(policy, batch, media, s, shared):
    policy.model.zero_grad()
    logp = _logp(policy, batch, media, s, shared)
    loss, _ = grpo_loss(logp, logp.detach(), None, torch.linspace(-1, 1, s.completion_ids.shape[0]), s.loss_mask,
                        beta=0.0)
    loss.backward()
    return logp.detach(), {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.requires_grad}


def test_shared_prompt_scores_the_same_logprobs_and_gradients(policy, batch, rollouts):
    """fp32: per-token log-probs of the shared and naive scoring passes agree to 1e-5 on every completion
    token (hinted rows: prefill included), and one GRPO loss gives the same LoRA gradients (rtol 1e-4)."""
    media, s, _ = rollouts[True]
    mask = s.completion_mask.bool()
    (lp_naive, g_naive), (lp_shared, g_shared) = (_grads(policy, batch, media, s, shared) for shared in (False, True))
    torch.testing.assert_close(lp_shared[mask], lp_naive[mask], atol=1e-5, rtol=0)
    for n in g_naive:
        torch.testing.assert_close(g_shared[n], g_naive[n], rtol=1e-4, atol=1e-8, msg=n)
    assert any(g.abs().sum() > 0 for n, g in g_shared.items() if "lora_A" in n)
    s2 = rollouts[False][1]  # a sampled (unhinted) rollout too
    with torch.no_grad():
        m2 = s2.completion_mask.bool()
        torch.testing.assert_close(_logp(policy, batch, media, s2, True)[m2], _logp(policy, batch, media, s2, False)[m2],
                                   atol=1e-5, rtol=0)


def test_shared_prompt_gradients_survive_gradient_checkpointing(tiny_cfg, batch, rollouts):
    """Checkpointed decoder layers keep the shared prompt's cache (replay-safe caches) and give the
    gradients of the unchecked pass (transformers would otherwise drop the cache and score without prompt)."""
    policy = _policy(tiny_cfg)
    media, s, _ = rollouts[True]
    policy.model.train()
    _, plain = _grads(policy, batch, media, s, True)
    thinker = unwrap_peft(policy.model)
    thinker.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert thinker.model.language_model.layers[0].gradient_checkpointing
    _, ckpt = _grads(policy, batch, media, s, True)
    for n in plain:
        torch.testing.assert_close(ckpt[n], plain[n], rtol=1e-4, atol=1e-8, msg=n)


def test_join_prefill_masks_the_padding_after_a_clipped_short_prefill():
    """Prefills of 2 and 1 tokens, 3 generated tokens each, no EOS (both clipped): the second row ends one
    position early, and that trailing pad must stay out of its completion mask (it was in: NaN loss)."""
    gen = torch.tensor([[1, 2, 3], [4, 5, 6]])
    ids, cmask, pmask, clipped = join_prefill(gen, [[7, 8], [9]], pad_id=0, eos_id=99)
    assert ids.tolist() == [[7, 8, 1, 2, 3], [9, 4, 5, 6, 0]]
    assert cmask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert pmask.tolist() == [[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]]
    assert clipped.tolist() == [True, True]
    loss_mask = (cmask * (1 - pmask)).tolist()
    assert loss_mask == [[0, 0, 1, 1, 1], [0, 1, 1, 1, 0]]
    # with an EOS the mask stops there, prefill or not
    ids, cmask, _, clipped = join_prefill(torch.tensor([[1, 99, 0]]), [[7]], pad_id=0, eos_id=99)
    assert cmask.tolist() == [[1, 1, 1, 0]] and clipped.tolist() == [False]


def _rollout(rows, texts, rewards, pol, width, pad=0):
    n = len(texts)
    ids = torch.arange(1, n * width + 1).view(n, width)
    r = Rollout(2, torch.tensor(rows), ids, torch.ones(n, width, dtype=torch.long),
                torch.zeros(n, width, dtype=torch.long), torch.zeros(n, dtype=torch.bool), list(texts))
    r.set_rewards(torch.tensor(rewards), {"format": list(pol), "polarity": list(pol), "score": list(pol)},
            torch.tensor([p > 0 for p in pol]))
    return r


def test_rollout_replace_groups_and_reward_metrics():
    s = _rollout([0, 0, 1, 1], ["a", "b", "c", "d"], [1.0, 1.0, 2.0, 3.0], [0.0, 0.0, 1.0, 1.0], width=2)
    h = _rollout([0, 0], ["x", "y"], [2.5, 2.0], [1.0, 1.0], width=3)
    out = s.replace_groups(h, pad_id=-1)
    assert out.texts == ["x", "y", "c", "d"] and out.hinted.tolist() == [True, True, False, False]
    assert out.completion_ids.shape == (4, 3)
    assert out.completion_ids[2].tolist() == [5, 6, -1] and out.completion_mask[2].tolist() == [1, 1, 0]
    assert out.completion_ids[0].tolist() == [1, 2, 3]
    assert out.rewards.tolist() == [2.5, 2.0, 2.0, 3.0] and out.right.tolist() == [True] * 4
    assert out.per_fn["polarity"] == [1.0, 1.0, 1.0, 1.0] and s.texts == ["a", "b", "c", "d"]  # s untouched
    # TRL's reward_std: the std over all 4 rewards [2.5, 2, 2, 3] (mean 2.375; squared deviations
    # 0.015625 + 0.140625 * 2 + 0.390625 = 0.6875; / 3), not the mean of the two group stds
    m = reward_metrics(out.reward_moments(["format", "polarity", "score"]), ["format", "polarity", "score"])
    assert m["reward"] == pytest.approx(2.375) and m["reward_std"] == pytest.approx((0.6875 / 3) ** 0.5)
    assert m["rewards/polarity/mean"] == 1.0 and m["rewards/polarity/std"] == 0.0
    assert out.lengths.tolist() == [3.0, 3.0, 2.0, 2.0]


class _OneDevice(TorchFunctionMode):
    """Fails any torch call whose tensor arguments live on more than one device (0-dim CPU scalars
    aside, which CUDA accepts too): on CPU this finds what would crash on CUDA, with inputs on "meta"."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        devices = {t.device for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)
                   and not (t.dim() == 0 and t.device.type == "cpu")}
        if len(devices) > 1:
            raise AssertionError(f"{getattr(func, '__name__', func)} mixes devices {devices}")
        return func(*args, **kwargs)


def test_rollout_pieces_make_their_tensors_on_the_inputs_device(tiny_dir):
    """Device placement on CPU: the pure pieces of sampling, hint regeneration and scoring run on
    "meta" inputs without mixing devices (each CPU-made index or pad tensor met a device tensor before)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    meta = torch.device("meta")
    batch = {"input_ids": torch.zeros(2, 5, dtype=torch.long, device=meta),
             "attention_mask": torch.ones(2, 5, dtype=torch.long, device=meta),
             "video_grid_thw": torch.ones(2, 3, dtype=torch.long, device=meta),
             "video_second_per_grid": torch.ones(2, device=meta),
             "feature_attention_mask": torch.ones(2, 7, dtype=torch.long, device=meta)}
    rows = torch.tensor([1, 1, 0], device=meta)
    with _OneDevice():
        kw = position_kwargs(batch, rows=rows)
        out = append_prefill(batch, tok, ["<polarity>neutral</polarity>", "<polarity>negative</polarity>"], "<think>")
        ids, cmask, pmask, clipped = join_prefill(torch.zeros(2, 3, dtype=torch.long, device=meta), [[1, 2], [3]], 0, 9)
        pos = text_positions(torch.zeros(3, dtype=torch.long, device=meta), 4)
        state = PromptState([torch.zeros(2, 1, 5, 4, device=meta)], [torch.zeros(2, 1, 5, 4, device=meta)],
                            batch["attention_mask"], torch.zeros(2, dtype=torch.long, device=meta),
                            torch.zeros(2, 8, device=meta)).select(torch.tensor([1], device=meta))
        scoring = grouped_mask(state.mask, completion_visibility(torch.ones(G, 4, device=meta), G), "sdpa", torch.float32)
        sampling = grouped_mask(state.mask, decode_visibility(1, G, 2, meta), "eager", torch.float32)
    assert all(v.device == meta for v in kw.values())
    assert out["input_ids"].device == meta and out["attention_mask"].device == meta
    assert {t.device for t in (ids, cmask, pmask, clipped, pos, state.mask, state.keys[0], scoring, sampling)} == {meta}
    assert state.keys[0].shape == (1, 1, 5, 4)
    assert scoring.shape == (1, 1, G * 4, 5 + G * 4) and sampling.shape == (1, 1, G, 5 + G * 2)


def test_shared_prompt_positions_are_the_models_own(policy, batch, rollouts):
    """TMRoPE: the positions the shared path gives completion tokens (prompt pass + text positions) are
    those the model's get_rope_index gives the whole prompt + completion sequence (video and audio
    interleaved, left padding), row by row. Random tiny weights barely depend on positions, so this is
    checked on the positions themselves, not only through the log-probs."""
    from msa.rl.shared_prompt import rope_positions

    _, s, _ = rollouts[True]
    rows = s.prompt_rows
    thinker = unwrap_peft(policy.model)
    with torch.no_grad():
        state = prompt_pass(policy.model, thinker, batch, encode_media(thinker, batch), rows, True)
    ids = torch.cat([batch["input_ids"][rows], s.completion_ids], 1)
    mask = torch.cat([batch["attention_mask"][rows], s.completion_mask], 1)
    full = rope_positions(thinker, batch, rows, ids, mask, True)  # [3, N, P+C]
    p = batch["input_ids"].shape[1]
    ours = text_positions(state.next_pos, s.completion_ids.shape[1])
    real = s.completion_mask.bool()
    assert torch.equal(ours[:, real], full[:, :, p:][:, real])
    assert not torch.equal(full[1, :, :p], full[2, :, :p])  # real 3D positions: height and width differ on video


def test_shared_sampler_refuses_generation_settings_it_does_not_apply():
    from types import SimpleNamespace

    from msa.rl.shared_prompt import check_generation_config

    check_generation_config(SimpleNamespace(generation_config=SimpleNamespace(repetition_penalty=1.0, top_k=50)))
    with pytest.raises(ValueError, match="generation_config.repetition_penalty=1.05"):
        check_generation_config(SimpleNamespace(generation_config=SimpleNamespace(repetition_penalty=1.05)))


@pytest.mark.parametrize("shared", [True, False])
def test_fp32_lm_head_scores_float32_logits_under_bf16_autocast(tiny_cfg, batch, rollouts, shared):
    """bf16-mixed (CPU autocast here, as trainer=cpu_mixed): the scoring pass's logits are bf16, rounded
    from the head's float32 accumulation. grpo.cast_lm_head_to_fp32: float32 logits, exactly the float32
    product of the same hidden states, on both scoring paths; parameter names unchanged (checkpoints)."""
    from msa.models.numerics import Float32Head, cast_lm_head_to_fp32

    policy = _policy(tiny_cfg)
    thinker = unwrap_peft(policy.model)
    media, s, _ = rollouts[True]
    names = [n for n, _ in policy.model.named_parameters()]

    def score():
        seen = []
        hook = thinker.lm_head.register_forward_hook(lambda m, args, out: seen.append(args[0]))
        try:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                logits = completion_logits(policy.model, thinker, batch, media, s.prompt_rows, s.completion_ids,
                                           s.completion_mask, True, group_size=G if shared else None)
        finally:
            hook.remove()
        return logits, seen[-1]

    assert score()[0].dtype == torch.bfloat16
    cast_lm_head_to_fp32(thinker)
    assert isinstance(thinker.lm_head, Float32Head) and thinker.lm_head.weight.dtype == torch.float32
    logits, hidden = score()
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, hidden.float() @ thinker.lm_head.weight.T, atol=1e-5, rtol=0)  # [N, C, V]
    assert [n for n, _ in policy.model.named_parameters()] == names


def test_fp32_lm_head_refuses_a_head_tied_to_the_embeddings(tiny_cfg):
    from msa.models.numerics import cast_lm_head_to_fp32

    thinker = unwrap_peft(load_policy(tiny_cfg("model.lora.enabled=false")).model)
    thinker.lm_head.weight = thinker.get_input_embeddings().weight
    with pytest.raises(ValueError, match="grpo.cast_lm_head_to_fp32"):
        cast_lm_head_to_fp32(thinker)
