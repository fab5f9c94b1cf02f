"""Sampling G answers per prompt, optionally with an answer prefill, and scoring token log-probs.

Both run on encoder outputs computed once per prompt (:mod:`msa.models.encode`): the G rollouts,
the hinted regeneration, the policy pass and the reference pass all rebuild their input embeddings
from the same cached video/audio features instead of re-running the towers.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from msa.generation import append_prefill, mask_suppressed, suppressed_ids
from msa.models.encode import MediaEmbeds, encode_media, inputs_embeds, position_kwargs, select_media_rows


class Samples(NamedTuple):
    completion_ids: Tensor  # [N, C] right-padded; prefill tokens first for hinted rows
    completion_mask: Tensor  # [N, C] 1 up to and including the first EOS
    prefill_mask: Tensor  # [N, C] 1 on prefill tokens (masked out of loss and KL)
    clipped: Tensor  # [N] bool, hit max_new_tokens without EOS
    texts: list[str]  # prefill + completion text, what the rewards score


def completion_mask(ids: Tensor, eos_id: int) -> tuple[Tensor, Tensor]:
    """1 up to and including the first EOS; rows without EOS are all ones and flagged as clipped."""
    is_eos = ids == eos_id  # [N, C]
    has = is_eos.any(1)
    first = torch.where(has, is_eos.float().argmax(1), torch.full_like(has, ids.shape[1], dtype=torch.long))
    pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
    return (pos <= first.unsqueeze(1)).long(), ~has


@torch.no_grad()
def sample(model, thinker, tokenizer, batch: dict, media: MediaEmbeds | None, rows: Tensor, *, group_size: int,
           max_new_tokens: int, temperature: float, top_p: float, use_audio_in_video: bool,
           prefills: list[str] | None = None, prefill_follows: str = "") -> Samples:
    """``group_size`` sampled answers for each prompt in ``rows`` (indices into the batch).

    ``prefills`` (one per selected prompt) are written at the start of the answer before sampling:
    the in-answer hint injection. The returned completion includes them, flagged by ``prefill_mask``.
    ``prefill_follows`` is the text that follows a prefill in training answers (for a hint,
    ``<think>``): the prefill is cut at a token boundary the model knows (see
    :func:`msa.generation.prefix_ids`), and the model writes the rest of it.
    """
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids, mask = batch["input_ids"][rows], batch["attention_mask"][rows]  # [b, P]
    pre_ids = None
    if prefills:  # left-padded prompts + each row's prefill, re-left-padded to a common length
        extended = append_prefill({"input_ids": ids, "attention_mask": mask}, tokenizer, prefills, prefill_follows)
        ids, mask = extended["input_ids"], extended["attention_mask"]
        pre_ids = extended["prefill_ids"]
    ids_g, mask_g = ids.repeat_interleave(group_size, 0), mask.repeat_interleave(group_size, 0)  # [b*G, P']
    kwargs = dict(attention_mask=mask_g, use_audio_in_video=use_audio_in_video, do_sample=True,
                  temperature=temperature, top_p=top_p, top_k=0, max_new_tokens=max_new_tokens,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=eos, suppress_tokens=suppressed_ids(tokenizer),
                  **position_kwargs(batch, rows=rows.repeat_interleave(group_size), repeat=1))
    if media is not None:
        m = media.select(rows)
        if pre_ids:  # each prompt moved right by its extra left padding: move its media with it
            m = shift_for_prefill(m, ids.shape[1], [len(p) for p in pre_ids])
        emb = inputs_embeds(thinker, ids_g, m.repeat_interleave(group_size))
        out = model.generate(input_ids=ids_g, inputs_embeds=emb, **kwargs)
    else:  # no reuse: the towers run again on every rollout row (the baseline the benchmark compares to)
        sub = select_media_rows(batch, rows.repeat_interleave(group_size))
        m = encode_media(thinker, sub)
        if pre_ids:
            m = shift_for_prefill(m, ids.shape[1], [len(p) for p in pre_ids for _ in range(group_size)])
        out = model.generate(input_ids=ids_g, inputs_embeds=inputs_embeds(thinker, ids_g, m), **kwargs)
    gen = out[:, ids_g.shape[1]:]  # [b*G, T]
    if pre_ids:
        pre = [p for p in pre_ids for _ in range(group_size)]
        width = max(len(p) for p in pre) + gen.shape[1]
        comp = gen.new_full((gen.shape[0], width), tokenizer.pad_token_id)
        pmask = torch.zeros_like(comp)
        for r, p in enumerate(pre):
            comp[r, : len(p)] = gen.new_tensor(p)
            comp[r, len(p): len(p) + gen.shape[1]] = gen[r]
            pmask[r, : len(p)] = 1
    else:
        comp, pmask = gen, torch.zeros_like(gen)
    cmask, clipped = completion_mask(comp, eos)
    cmask = torch.maximum(cmask, pmask)
    texts = []
    for r in range(comp.shape[0]):
        row = comp[r][cmask[r].bool()].tolist()
        texts.append(tokenizer.decode([t for t in row if t != eos], skip_special_tokens=True))
    return Samples(comp, cmask, pmask, clipped, texts)


def shift_for_prefill(m: MediaEmbeds, new_len: int, prefill_lens: list[int]) -> MediaEmbeds:
    """Re-place media rows after each prompt got (longest - len_i) left pad and len_i prefill tokens."""
    b, p, h = m.embeds.shape
    longest = max(prefill_lens)
    embeds = m.embeds.new_zeros(b, new_len, h)
    mask = m.mask.new_zeros(b, new_len)
    for r, n in enumerate(prefill_lens):
        start = longest - n  # the original prompt now starts here
        embeds[r, start: start + p] = m.embeds[r]
        mask[r, start: start + p] = m.mask[r]
    return MediaEmbeds(embeds, mask)


def completion_logits(model, thinker, batch: dict, media: MediaEmbeds | None, rows: Tensor, completion_ids: Tensor,
                      completion_mask: Tensor, use_audio_in_video: bool, suppress: list[int] | None = None) -> Tensor:
    """Logits predicting each completion token: ``[N, C, V]`` for prompt rows ``rows`` (one per completion).

    Only the completion positions go through ``lm_head`` (the prompt's logits would cost
    N x P x V memory for nothing).
    """
    ids = torch.cat([batch["input_ids"][rows], completion_ids], 1)  # [N, P+C]
    mask = torch.cat([batch["attention_mask"][rows], completion_mask.to(batch["attention_mask"].dtype)], 1)
    if media is None:  # no reuse: run the towers on these rows' raw media (with grad if they train)
        sub = select_media_rows(batch, rows)
        media = encode_media_grad(thinker, sub)
        emb = inputs_embeds(thinker, ids, media)
    else:
        emb = inputs_embeds(thinker, ids, media.select(rows))
    hidden = model_body(model)(input_ids=ids, inputs_embeds=emb, attention_mask=mask,
                               use_audio_in_video=use_audio_in_video,
                               **position_kwargs(batch, rows=rows)).last_hidden_state  # [N, P+C, H]
    p, c = batch["input_ids"].shape[1], completion_ids.shape[1]
    logits = thinker.lm_head(hidden[:, p - 1: p - 1 + c])  # position t predicts token t+1
    # the sampler never draws suppressed tokens: score under the same distribution
    return mask_suppressed(logits, suppress) if suppress else logits


def encode_media_grad(thinker, batch: dict) -> MediaEmbeds:
    """:func:`encode_media` without its no_grad, so trained towers get gradients."""
    return encode_media.__wrapped__(thinker, batch)


def model_body(model):
    """The thinker's decoder stack (LoRA layers, if any, are injected in place and stay active)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model
