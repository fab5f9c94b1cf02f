"""Sampling G answers per prompt, optionally with an answer prefill, and scoring token log-probs.

Two ways to run the language model over a group (``grpo.shared_prompt``):

* **shared** (default): each prompt goes through the model once and its key/value cache is shared by
  the G rollouts, for sampling, the hinted regeneration and scoring (:mod:`msa.rl.shared_prompt`).
* **naive**: the prompt is repeated G times and run with every answer (``model.generate`` and one
  full forward per pass), as before; kept for comparison (tests, benchmark).

Both run on encoder outputs computed once per prompt (:mod:`msa.models.encode`) and give the same
draws, log-probs and gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor

from msa.generation import append_prefill, mask_suppressed, prefix_ids, suppressed_ids
from msa.models import unwrap_peft
from msa.models.encode import (MediaEmbeds, encode_media, encode_media_grad, inputs_embeds, position_kwargs,
                               select_media_rows)
from msa.rl.shared_prompt import (PromptState, check_generation_config, decode, extend_prompts, logits_processors,
                                  shared_completion_logits)
from msa.rl.types import Rollout


def completion_mask(ids: Tensor, eos_id: int) -> tuple[Tensor, Tensor]:
    """1 up to and including the first EOS; rows without EOS are all ones and flagged as clipped."""
    is_eos = ids == eos_id  # [N, C]
    has = is_eos.any(1)
    first = torch.where(has, is_eos.float().argmax(1), torch.full_like(has, ids.shape[1], dtype=torch.long))
    pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
    return (pos <= first.unsqueeze(1)).long(), ~has


def join_prefill(gen: Tensor, prefills: list[list[int]] | None, pad_id: int, eos_id: int
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Completion rows = each row's prefill tokens then its generated tokens, right-padded to one width.

    ``gen`` [N, T] as generated (pad after EOS); ``prefills`` one token list per row (or None).
    Returns ``(ids, completion_mask, prefill_mask, clipped)``, each ``[N, W]`` (clipped ``[N]``). A
    clipped row (no EOS) is in the mask up to its own last token, not over the padding that a
    shorter prefill leaves at its end.
    """
    if not prefills:
        cmask, clipped = completion_mask(gen, eos_id)
        return gen, cmask, torch.zeros_like(gen), clipped
    n, t = gen.shape
    lens = torch.tensor([len(p) for p in prefills], device=gen.device)  # [N]
    width = max(len(p) for p in prefills) + t
    ids = gen.new_full((n, width), pad_id)
    for r, p in enumerate(prefills):
        ids[r, : len(p)] = gen.new_tensor(p)
        ids[r, len(p): len(p) + t] = gen[r]
    pos = torch.arange(width, device=gen.device).unsqueeze(0)  # [1, W]
    pmask = (pos < lens.unsqueeze(1)).long()  # [N, W]
    inside = pos < (lens + t).unsqueeze(1)  # [N, W] prefill + generated, not the trailing padding
    cmask, clipped = completion_mask(ids, eos_id)
    cmask = torch.maximum(cmask * inside.long(), pmask)
    return ids, cmask, pmask, clipped


def decode_texts(tokenizer, ids: Tensor, mask: Tensor, eos_id: int) -> list[str]:
    """The answer text of each row: its masked tokens, EOS and special tokens dropped."""
    texts = []
    for row, m in zip(ids.tolist(), mask.bool().tolist()):
        texts.append(tokenizer.decode([t for t, keep in zip(row, m) if keep and t != eos_id],
                                      skip_special_tokens=True))
    return texts



# ---------------------------------------------------------------------------------------- sampling
@torch.no_grad()
def sample(model, thinker, tokenizer, batch: dict, media: MediaEmbeds | None, rows: Tensor, *, group_size: int,
           max_new_tokens: int, temperature: float, top_p: float, use_audio_in_video: bool,
           prefills: list[str] | None = None, prefill_follows: str = "",
           prompts: PromptState | None = None) -> Rollout:
    """``group_size`` sampled answers for each prompt in ``rows`` (indices into the batch).

    ``prompts``: the :func:`~msa.rl.shared_prompt.prompt_pass` of the whole batch (shared path; the hinted regeneration
    reuses the one the first sampling made); None runs the naive path (``model.generate`` on the
    prompt repeated G times).
    ``prefills`` (one per selected prompt) are written at the start of the answer before sampling:
    the in-answer hint injection. The returned completion includes them, flagged by ``prefill_mask``.
    ``prefill_follows`` is the text that follows a prefill in training answers (for a hint,
    ``<think>``): the prefill is cut at a token boundary the model knows (see
    :func:`msa.generation.prefix_ids`), and the model writes the rest of it.
    """
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id
    suppress = suppressed_ids(tokenizer)
    pre_ids = [prefix_ids(tokenizer, p, prefill_follows) for p in prefills] if prefills else None
    if prompts is not None:
        check_generation_config(thinker)
        state = prompts.select(rows)
        if pre_ids:
            state = extend_prompts(model, thinker, state, pre_ids)
        gen = decode(model, thinker, state, group_size=group_size, max_new_tokens=max_new_tokens, eos_id=eos, pad_id=pad,
                     processors=logits_processors(temperature, top_p, suppress, rows.device))
    else:
        gen = _generate_naive(model, thinker, tokenizer, batch, media, rows, group_size=group_size,
                              max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                              use_audio_in_video=use_audio_in_video, prefills=prefills,
                              prefill_follows=prefill_follows, eos=eos, suppress=suppress)
    pre = [p for p in pre_ids for _ in range(group_size)] if pre_ids else None
    comp, cmask, pmask, clipped = join_prefill(gen, pre, pad, eos)
    return Rollout(group_size, rows.repeat_interleave(group_size), comp, cmask, pmask, clipped,
                   decode_texts(tokenizer, comp, cmask, eos))


def _generate_naive(model, thinker, tokenizer, batch, media, rows, *, group_size, max_new_tokens, temperature, top_p,
                    use_audio_in_video, prefills, prefill_follows, eos, suppress) -> Tensor:
    """``model.generate`` on every prompt repeated G times (the prompt runs G times): ``[b*G, T]``."""
    ids, mask = batch["input_ids"][rows], batch["attention_mask"][rows]  # [b, P]
    pre_ids = None
    if prefills:  # left-padded prompts + each row's prefill, re-left-padded to a common length
        extended = append_prefill({"input_ids": ids, "attention_mask": mask}, tokenizer, prefills, prefill_follows)
        ids, mask = extended["input_ids"], extended["attention_mask"]
        pre_ids = extended["prefill_ids"]
    ids_g, mask_g = ids.repeat_interleave(group_size, 0), mask.repeat_interleave(group_size, 0)  # [b*G, P']
    kwargs = dict(attention_mask=mask_g, use_audio_in_video=use_audio_in_video, do_sample=True,
                  temperature=temperature, top_p=top_p, top_k=0, max_new_tokens=max_new_tokens,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=eos, suppress_tokens=suppress,
                  **position_kwargs(batch, rows=rows.repeat_interleave(group_size), repeat=1))
    if media is not None:
        m = media.select(rows)
        if pre_ids:  # each prompt moved right by its extra left padding: move its media with it
            m = shift_for_prefill(m, ids.shape[1], [len(p) for p in pre_ids])
        emb = inputs_embeds(thinker, ids_g, m.repeat_interleave(group_size))
    else:  # no reuse: the towers run again on every rollout row (the baseline the benchmark compares to)
        m = encode_media(thinker, select_media_rows(batch, rows.repeat_interleave(group_size)))
        if pre_ids:
            m = shift_for_prefill(m, ids.shape[1], [len(p) for p in pre_ids for _ in range(group_size)])
        emb = inputs_embeds(thinker, ids_g, m)
    out = model.generate(input_ids=ids_g, inputs_embeds=emb, **kwargs)
    return out[:, ids_g.shape[1]:]  # [b*G, T]


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


# ---------------------------------------------------------------------------------------- scoring
def completion_logits(model, thinker, batch: dict, media: MediaEmbeds | None, rows: Tensor, completion_ids: Tensor,
                      completion_mask: Tensor, use_audio_in_video: bool, suppress: list[int] | None = None,
                      group_size: int | None = None) -> Tensor:
    """Logits predicting each completion token: ``[N, C, V]`` for prompt rows ``rows`` (one per completion).

    ``group_size`` set: the shared path (``rows`` must come in runs of ``group_size`` equal prompts);
    None: the naive path (prompt + completion, one full sequence per row). Only the completion
    positions go through ``lm_head`` (the prompt's logits would cost N x P x V memory for nothing).
    """
    if group_size:
        logits = shared_completion_logits(model, thinker, batch, media, rows, completion_ids, completion_mask,
                                          use_audio_in_video, group_size)
    else:
        logits = _naive_completion_logits(model, thinker, batch, media, rows, completion_ids, completion_mask,
                                          use_audio_in_video)
    # the sampler never draws suppressed tokens: score under the same distribution
    return mask_suppressed(logits, suppress) if suppress else logits


def _naive_completion_logits(model, thinker, batch, media, rows, completion_ids, completion_mask, use_audio_in_video):
    ids = torch.cat([batch["input_ids"][rows], completion_ids], 1)  # [N, P+C]
    mask = torch.cat([batch["attention_mask"][rows], completion_mask.to(batch["attention_mask"].dtype)], 1)
    if media is None:  # no reuse: run the towers on these rows' raw media (with grad if they train)
        media = encode_media_grad(thinker, select_media_rows(batch, rows))
    else:
        media = media.select(rows)
    body = unwrap_peft(model).model
    hidden = body(input_ids=ids, inputs_embeds=inputs_embeds(thinker, ids, media), attention_mask=mask,
                  use_audio_in_video=use_audio_in_video,
                  **position_kwargs(batch, rows=rows)).last_hidden_state  # [N, P+C, H]
    p, c = batch["input_ids"].shape[1], completion_ids.shape[1]
    return thinker.lm_head(hidden[:, p - 1: p - 1 + c])  # position t predicts token t+1
