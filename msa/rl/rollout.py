"""Sampling G answers per prompt, optionally with an answer prefill, and scoring token log-probs.

Two ways to run the language model over a group (``grpo.shared_prompt``):

* **shared** (default): each prompt goes through the model once (:func:`prompt_pass`); its key/value
  cache is repeated to the G rows, which then only process their own answer tokens. Sampling decodes
  from the repeated cache (:func:`sample`); the hinted regeneration appends the polarity prefill to
  the same prompt cache; scoring runs the G completions against the repeated prompt cache in one
  forward, and the first completion token is predicted from the prompt's last position. With a prompt
  of P tokens, answers of C and G rollouts the language model sees P + G*C positions per pass
  instead of G*(P + C), and gradients flow into the prompt through the repeated keys and values.
* **naive**: the prompt is repeated G times and run with every answer (``model.generate`` and one
  full forward per pass), as before; kept for comparison (tests, benchmark).

Both run on encoder outputs computed once per prompt (:mod:`msa.models.encode`). TMRoPE positions:
the prompt's 3D positions come from the model's own ``get_rope_index`` (``use_audio_in_video`` as
given); every later token is text, at the next position after the prompt's largest one, as in
``generate``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers.cache_utils import DynamicCache
from transformers.generation.logits_process import (LogitsProcessorList, SuppressTokensLogitsProcessor,
                                                    TemperatureLogitsWarper, TopPLogitsWarper)
from transformers.modeling_layers import GradientCheckpointingLayer

from msa.generation import append_prefill, mask_suppressed, prefix_ids, suppressed_ids
from msa.models.encode import MediaEmbeds, encode_media, inputs_embeds, position_kwargs, select_media_rows
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


# ---------------------------------------------------------------------------------------- shared prompt
@dataclass
class PromptState:
    """What the rest of a sequence needs from its prompt pass: b prompts, P prompt positions, L layers."""

    keys: list[Tensor]  # L x [b, kv_heads, P, head_dim]
    values: list[Tensor]  # L x [b, kv_heads, P, head_dim]
    mask: Tensor  # [b, P] attention mask (left padding 0; pads between prompt and prefill 0)
    next_pos: Tensor  # [b] long, TMRoPE position of the first token after the prompt (all 3 axes)
    last_hidden: Tensor  # [b, H] final hidden state at the prompt's last position (predicts the first token)

    def select(self, idx: Tensor) -> "PromptState":
        idx = idx.to(self.mask.device)
        return PromptState([k[idx] for k in self.keys], [v[idx] for v in self.values], self.mask[idx],
                           self.next_pos[idx], self.last_hidden[idx])

    def repeat(self, g: int) -> "PromptState":
        """[b, ...] -> [b*g, ...]: every prompt's state for its g rollouts (differentiable)."""
        rep = lambda t: t.repeat_interleave(g, 0)  # noqa: E731
        return PromptState([rep(k) for k in self.keys], [rep(v) for v in self.values], rep(self.mask),
                           rep(self.next_pos), rep(self.last_hidden))

    def cache(self, frozen: bool = False) -> DynamicCache:
        """A cache holding the prompt; ``frozen``: attention reads prompt + new tokens but keeps only the prompt."""
        return (_FrozenPrefixCache if frozen else DynamicCache)(ddp_cache_data=list(zip(self.keys, self.values)))


class _FrozenPrefixCache(DynamicCache):
    """Attends over the stored prompt plus the new tokens without storing them: a scoring pass writes
    nothing, so a gradient-checkpointed layer can replay its forward and see the same keys."""

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        layer = self.layers[layer_idx]
        return torch.cat([layer.keys, key_states], -2), torch.cat([layer.values, value_states], -2)


class _CaptureCache(DynamicCache):
    """Records each layer's keys and values of one pass over an empty cache (overwriting, so that a
    checkpointed layer's backward replay records the same tensors again instead of appending)."""

    def __init__(self, num_layers: int):
        super().__init__()
        self.captured: list[tuple[Tensor, Tensor] | None] = [None] * num_layers

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        self.captured[layer_idx] = (key_states, value_states)
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


@contextmanager
def _cache_through_checkpointing(body):
    """Let checkpointed decoder layers keep our caches: both are replay-safe (see their docstrings);
    transformers drops any cache under gradient checkpointing unless a layer says it may keep it."""
    layers = [m for m in body.modules() if isinstance(m, GradientCheckpointingLayer)]
    for m in layers:
        m._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for m in layers:
            del m._can_checkpoint_with_cache  # back to the class default


def rope_positions(thinker, batch: dict, rows: Tensor, ids: Tensor, mask: Tensor, use_audio_in_video: bool) -> Tensor:
    """The prompts' 3D TMRoPE positions ``[3, b, P]``, as the model computes them in its own forward."""
    kw = position_kwargs(batch, rows=rows)
    fam = kw.get("feature_attention_mask")
    pos, _ = thinker.get_rope_index(ids, image_grid_thw=kw.get("image_grid_thw"),
                                    video_grid_thw=kw.get("video_grid_thw"), attention_mask=mask,
                                    use_audio_in_video=use_audio_in_video,
                                    audio_seqlens=None if fam is None else fam.sum(-1),
                                    second_per_grids=kw.get("video_second_per_grid"))
    return pos.to(ids.device)


def text_positions(start: Tensor, length: int) -> Tensor:
    """``[3, b, length]`` positions of text tokens that follow at ``start`` [b] (same on all 3 axes)."""
    pos = start.unsqueeze(1) + torch.arange(length, device=start.device).unsqueeze(0)  # [b, length]
    return pos.unsqueeze(0).expand(3, -1, -1)


def prompt_pass(model, thinker, batch: dict, media: MediaEmbeds | None, rows: Tensor,
                use_audio_in_video: bool) -> PromptState:
    """One forward over the prompts ``rows`` (with gradient if enabled), keeping their keys and values."""
    ids, mask = batch["input_ids"][rows], batch["attention_mask"][rows]  # [b, P]
    if media is None:  # no reuse: the towers run on these prompts' raw media (with grad if they train)
        media = encode_media_grad(thinker, select_media_rows(batch, rows))
    else:
        media = media.select(rows)
    body = model_body(model)
    pos = rope_positions(thinker, batch, rows, ids, mask, use_audio_in_video)
    cache = _CaptureCache(thinker.config.text_config.num_hidden_layers)
    with _cache_through_checkpointing(body):
        hidden = body(inputs_embeds=inputs_embeds(thinker, ids, media), attention_mask=mask, position_ids=pos,
                      cache=cache, use_cache=True).last_hidden_state  # [b, P, H]
    next_pos = pos.masked_fill(mask.unsqueeze(0) == 0, -1).amax(dim=(0, 2)) + 1  # [b]
    return PromptState([k for k, _ in cache.captured], [v for _, v in cache.captured], mask, next_pos,
                       hidden[:, -1])


def extend_prompts(model, thinker, state: PromptState, tokens: list[list[int]]) -> PromptState:
    """``state`` with each prompt's ``tokens`` appended (the hint prefill), through the cached prompt.

    Rows get token lists of different lengths: each is left-padded to the longest (pads masked), so
    that every row's last position is a real token.
    """
    b, longest = len(tokens), max(len(t) for t in tokens)
    device = state.mask.device
    ids = torch.zeros(b, longest, dtype=torch.long, device=device)
    mask = torch.zeros(b, longest, dtype=state.mask.dtype, device=device)
    for r, t in enumerate(tokens):
        if t:
            ids[r, longest - len(t):] = torch.tensor(t, device=device)
            mask[r, longest - len(t):] = 1
    lens = mask.sum(1).long()  # [b]
    offset = (torch.cumsum(mask, 1) - 1).clamp(min=0).long()  # [b, longest] position within the row's tokens
    pos = (state.next_pos.unsqueeze(1) + offset).unsqueeze(0).expand(3, -1, -1)
    cache = state.cache()
    full_mask = torch.cat([state.mask, mask], 1)
    hidden = model_body(model)(inputs_embeds=thinker.get_input_embeddings()(ids), attention_mask=full_mask,
                               position_ids=pos, cache=cache, use_cache=True).last_hidden_state
    return PromptState([layer.keys for layer in cache.layers], [layer.values for layer in cache.layers], full_mask,
                       state.next_pos + lens, hidden[:, -1])


# generate() settings a model's generation_config may carry that change the sampling distribution and
# that the shared decoder does not apply: it refuses them rather than sample from another distribution.
_UNSUPPORTED_GENERATION = {"repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
                           "min_p": None, "top_h": None, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0,
                           "min_length": 0, "min_new_tokens": None, "bad_words_ids": None, "sequence_bias": None,
                           "begin_suppress_tokens": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
                           "exponential_decay_length_penalty": None}


def check_generation_config(model) -> None:
    """Fail, naming the field, if the model's generation_config asks generate() for more than we apply."""
    cfg = getattr(model, "generation_config", None)
    for name, neutral in _UNSUPPORTED_GENERATION.items():
        value = getattr(cfg, name, neutral)
        if value not in (neutral, None) and not (isinstance(value, (list, tuple)) and not value):
            raise ValueError(f"generation_config.{name}={value!r}: the shared-prompt sampler (grpo.shared_prompt=true) "
                             f"does not apply it; set grpo.shared_prompt=false to sample with generate()")


def logits_processors(temperature: float, top_p: float, suppress: list[int], device) -> LogitsProcessorList:
    """``generate``'s processors for do_sample=True, top_k=0, in its order: suppression, then warpers."""
    procs = LogitsProcessorList([SuppressTokensLogitsProcessor(suppress, device=device)])
    if temperature != 1.0:
        procs.append(TemperatureLogitsWarper(temperature))
    if top_p < 1.0:
        procs.append(TopPLogitsWarper(top_p))
    return procs


@torch.no_grad()
def decode(model, thinker, state: PromptState, *, max_new_tokens: int, processors: LogitsProcessorList,
           eos_id: int, pad_id: int) -> Tensor:
    """Sample up to ``max_new_tokens`` per row from ``state`` (one row per rollout): ``[N, T]``, pad after EOS.

    The same draws as ``generate(do_sample=True)``: float32 scores of the last position, the
    processors, softmax, one ``torch.multinomial`` over all rows per step, finished rows get pad,
    stop when every row is finished.
    """
    body, embed = model_body(model), thinker.get_input_embeddings()
    cache, mask = state.cache(), state.mask
    n = mask.shape[0]
    logits = thinker.lm_head(state.last_hidden).float()  # [N, V]
    out = torch.empty(n, 0, dtype=torch.long, device=mask.device)
    unfinished = torch.ones(n, dtype=torch.bool, device=mask.device)
    for t in range(max_new_tokens):
        scores = processors(out, logits)
        nxt = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)  # [N]
        nxt = torch.where(unfinished, nxt, torch.full_like(nxt, pad_id))
        out = torch.cat([out, nxt.unsqueeze(1)], 1)
        unfinished &= nxt != eos_id
        if t == max_new_tokens - 1 or not unfinished.any():
            break
        mask = torch.cat([mask, mask.new_ones(n, 1)], 1)
        hidden = body(inputs_embeds=embed(nxt.unsqueeze(1)), attention_mask=mask,
                      position_ids=text_positions(state.next_pos + t, 1), cache=cache,
                      use_cache=True).last_hidden_state  # [N, 1, H]
        logits = thinker.lm_head(hidden[:, -1]).float()
    return out


# ---------------------------------------------------------------------------------------- sampling
@torch.no_grad()
def sample(model, thinker, tokenizer, batch: dict, media: MediaEmbeds | None, rows: Tensor, *, group_size: int,
           max_new_tokens: int, temperature: float, top_p: float, use_audio_in_video: bool,
           prefills: list[str] | None = None, prefill_follows: str = "",
           prompts: PromptState | None = None) -> Rollout:
    """``group_size`` sampled answers for each prompt in ``rows`` (indices into the batch).

    ``prompts``: the :func:`prompt_pass` of the whole batch (shared path; the hinted regeneration
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
        gen = decode(model, thinker, state.repeat(group_size), max_new_tokens=max_new_tokens, eos_id=eos, pad_id=pad,
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
        logits = _shared_completion_logits(model, thinker, batch, media, rows, completion_ids, completion_mask,
                                           use_audio_in_video, group_size)
    else:
        logits = _naive_completion_logits(model, thinker, batch, media, rows, completion_ids, completion_mask,
                                          use_audio_in_video)
    # the sampler never draws suppressed tokens: score under the same distribution
    return mask_suppressed(logits, suppress) if suppress else logits


def _shared_completion_logits(model, thinker, batch, media, rows, completion_ids, completion_mask, use_audio_in_video,
                              group_size):
    groups = rows.view(-1, group_size)  # [b, G]
    if not bool((groups == groups[:, :1]).all()):
        raise ValueError(f"shared-prompt scoring needs rows in runs of {group_size} equal prompts, got {rows.tolist()}")
    state = prompt_pass(model, thinker, batch, media, groups[:, 0], use_audio_in_video).repeat(group_size)
    c = completion_ids.shape[1]
    body = model_body(model)
    with _cache_through_checkpointing(body):
        hidden = body(inputs_embeds=thinker.get_input_embeddings()(completion_ids),
                      attention_mask=torch.cat([state.mask, completion_mask.to(state.mask.dtype)], 1),
                      position_ids=text_positions(state.next_pos, c), cache=state.cache(frozen=True),
                      use_cache=True).last_hidden_state  # [N, C, H]
    # position t predicts token t+1; the first token is predicted by the prompt's last position
    hidden = torch.cat([state.last_hidden.unsqueeze(1), hidden[:, :-1]], 1)  # [N, C, H]
    return thinker.lm_head(hidden)


def _naive_completion_logits(model, thinker, batch, media, rows, completion_ids, completion_mask, use_audio_in_video):
    ids = torch.cat([batch["input_ids"][rows], completion_ids], 1)  # [N, P+C]
    mask = torch.cat([batch["attention_mask"][rows], completion_mask.to(batch["attention_mask"].dtype)], 1)
    if media is None:  # no reuse: run the towers on these rows' raw media (with grad if they train)
        media = encode_media_grad(thinker, select_media_rows(batch, rows))
    else:
        media = media.select(rows)
    hidden = model_body(model)(input_ids=ids, inputs_embeds=inputs_embeds(thinker, ids, media), attention_mask=mask,
                               use_audio_in_video=use_audio_in_video,
                               **position_kwargs(batch, rows=rows)).last_hidden_state  # [N, P+C, H]
    p, c = batch["input_ids"].shape[1], completion_ids.shape[1]
    return thinker.lm_head(hidden[:, p - 1: p - 1 + c])  # position t predicts token t+1


def encode_media_grad(thinker, batch: dict) -> MediaEmbeds:
    """:func:`encode_media` without its no_grad, so trained towers get gradients."""
    return encode_media.__wrapped__(thinker, batch)


def model_body(model):
    """The thinker's decoder stack (LoRA layers, if any, are injected in place and stay active)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model
