"""The shared-prompt path (``grpo.shared_prompt=true``): each prompt goes through the language model once
(:func:`prompt_pass`), and its G rollouts read that one copy of its keys and values. Sampling decodes from
the prompt cache (:func:`decode`); the hinted regeneration appends the polarity prefill to the same prompt
cache (:func:`extend_prompts`); scoring runs the G completions against the prompt cache in one forward
(:func:`shared_completion_logits`), and the first completion token is predicted from the prompt's last
position. With a prompt of P tokens, answers of C and G rollouts the language model sees P + G*C
positions per pass instead of G*(P + C).

One copy of each prompt (grouped layout): the G rows of a prompt are laid side by side along the
sequence axis of one batch row, ``[b, G*C, H]``, behind the prompt's own cache ``[b, kv_heads, P, d]``,
and a 4D attention mask lets each rollout see the prompt (its padding masked) and its own tokens only
(:func:`grouped_mask`). Attention is then one ordinary call per layer (any implementation that takes a
4D mask: sdpa, eager), its softmax exact; a query also meets the other rollouts' keys, masked, so the
wasted work grows with G*C, small next to P. Gradients reach the prompt's keys and values from all G
rows (summed by autograd, as the repeated copies summed them before). Before this, the prompt KV was
repeated G times (``repeat_interleave``) during sampling and through backward: at MOSEI's p95 prompt
that was ~29 GiB of a ~69 GiB 7B step (B=4, G=4); the benchmark
``experiments/benchmarks/bench_grpo_memory.py`` measures the step's peak memory before and after.

TMRoPE positions: the prompt's 3D positions come from the model's own ``get_rope_index``
(``use_audio_in_video`` as given); every later token is text, at the next position after the prompt's
largest one, as in ``generate``; each rollout's tokens count from there, wherever they sit in the row.
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

from msa.models import unwrap_peft
from msa.models.encode import MediaEmbeds, encode_media_grad, inputs_embeds, position_kwargs, select_media_rows


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

    def cache(self, frozen: bool = False) -> DynamicCache:
        """A cache holding the prompt; ``frozen``: attention reads prompt + new tokens but keeps only the prompt."""
        return (_FrozenPrefixCache if frozen else DynamicCache)(ddp_cache_data=list(zip(self.keys, self.values)))


def grouped_mask(prompt_mask: Tensor, own: Tensor, attn_implementation: str, dtype: torch.dtype) -> Tensor:
    """The 4D attention mask of the grouped layout, ``[b, 1, Q, P + K]``: every query sees the real
    positions of its prompt (``prompt_mask`` [b, P], 0 at padding) and the new keys ``own`` [b, Q, K]
    allows it. Boolean (True = attend) for sdpa, additive (0 or the dtype's lowest value) for eager."""
    b, q, _ = own.shape
    allowed = torch.cat([prompt_mask.bool().unsqueeze(1).expand(b, q, -1), own], -1).unsqueeze(1)
    if attn_implementation == "sdpa":
        return allowed
    if attn_implementation == "eager":
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed,
                                                                                          torch.finfo(dtype).min)
    raise ValueError(f"model.attn_implementation={attn_implementation!r}: the shared-prompt path "
                     "(grpo.shared_prompt=true) needs a 4D attention mask (sdpa or eager); "
                     "set grpo.shared_prompt=false to repeat the prompt instead")


def completion_visibility(completion_mask: Tensor, group_size: int) -> Tensor:
    """Scoring, rows side by side (``[b, G*C]``, rollout g at g*C .. g*C+C-1): ``[b, G*C, G*C]``, query
    (g, t) sees key (g', s) iff g' == g, s <= t and s is a real token of that rollout (``completion_mask``
    [b*G, C]), as a causal mask with key padding does for each row alone."""
    n, c = completion_mask.shape
    g = group_size
    eye = torch.eye(g, dtype=torch.bool, device=completion_mask.device)
    causal = torch.ones(c, c, dtype=torch.bool, device=completion_mask.device).tril()
    block = (eye[:, None, :, None] & causal[None, :, None, :]).reshape(g * c, g * c)  # [G*C, G*C]
    return block.unsqueeze(0) & completion_mask.bool().reshape(n // g, 1, g * c)


def decode_visibility(b: int, group_size: int, steps: int, device) -> Tensor:
    """Sampling, one token per rollout a step (cache order step-major: token s of rollout g at s*G + g):
    ``[b, G, G*steps]``, each rollout sees its own tokens so far."""
    eye = torch.eye(group_size, dtype=torch.bool, device=device)
    return eye.repeat(1, steps).unsqueeze(0).expand(b, -1, -1)


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
    body = unwrap_peft(model).model
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
    body = unwrap_peft(model).model
    hidden = body(inputs_embeds=thinker.get_input_embeddings()(ids), attention_mask=full_mask, position_ids=pos,
                  cache=cache, use_cache=True).last_hidden_state
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
def decode(model, thinker, state: PromptState, *, group_size: int, max_new_tokens: int,
           processors: LogitsProcessorList, eos_id: int, pad_id: int) -> Tensor:
    """Sample up to ``max_new_tokens`` for each of ``group_size`` rollouts per prompt of ``state``:
    ``[b*G, T]`` (prompt-major rows), pad after EOS.

    The same draws as ``generate(do_sample=True)`` on the prompt repeated G times: float32 scores of the
    last position, the processors, softmax, one ``torch.multinomial`` over all rows per step, finished
    rows get pad, stop when every row is finished. The cache holds each prompt once; a step appends
    the G rollouts' tokens side by side (see :func:`decode_visibility`).
    """
    body, embed = unwrap_peft(model).model, thinker.get_input_embeddings()
    cache, g = state.cache(), group_size
    b = state.mask.shape[0]
    n = b * g
    impl, dtype = body.config._attn_implementation, embed.weight.dtype
    last_hidden = state.last_hidden.repeat_interleave(g, 0)  # [N, H]
    logits = thinker.lm_head(last_hidden).float()  # [N, V]
    out = torch.empty(n, 0, dtype=torch.long, device=state.mask.device)
    unfinished = torch.ones(n, dtype=torch.bool, device=state.mask.device)
    for t in range(max_new_tokens):
        scores = processors(out, logits)
        nxt = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)  # [N]
        nxt = torch.where(unfinished, nxt, torch.full_like(nxt, pad_id))
        out = torch.cat([out, nxt.unsqueeze(1)], 1)
        unfinished &= nxt != eos_id
        if t == max_new_tokens - 1 or not unfinished.any():
            break
        mask = grouped_mask(state.mask, decode_visibility(b, g, t + 1, state.mask.device), impl, dtype)
        hidden = body(inputs_embeds=embed(nxt.view(b, g)), attention_mask=mask,
                      position_ids=text_positions(state.next_pos + t, 1).expand(-1, -1, g), cache=cache,
                      use_cache=True).last_hidden_state.reshape(n, 1, -1)  # [N, 1, H]
        logits = thinker.lm_head(hidden[:, -1]).float()
    return out


def shared_completion_logits(model, thinker, batch, media, rows, completion_ids, completion_mask, use_audio_in_video,
                             group_size):
    """Logits predicting each completion token, the G completions of a prompt side by side against its one
    prompt cache in one forward (``rows`` in runs of ``group_size`` equal prompts): ``[N, C, V]``."""
    groups = rows.view(-1, group_size)  # [b, G]
    if not bool((groups == groups[:, :1]).all()):
        raise ValueError(f"shared-prompt scoring needs rows in runs of {group_size} equal prompts, got {rows.tolist()}")
    state = prompt_pass(model, thinker, batch, media, groups[:, 0], use_audio_in_video)
    (n, c), (b, g) = completion_ids.shape, groups.shape
    body = unwrap_peft(model).model
    embeds = thinker.get_input_embeddings()(completion_ids)  # [N, C, H]
    mask = grouped_mask(state.mask, completion_visibility(completion_mask, g), body.config._attn_implementation,
                        embeds.dtype)  # [b, 1, G*C, P + G*C]
    with _cache_through_checkpointing(body):
        hidden = body(inputs_embeds=embeds.reshape(b, g * c, -1), attention_mask=mask,
                      position_ids=text_positions(state.next_pos, c).repeat(1, 1, g), cache=state.cache(frozen=True),
                      use_cache=True).last_hidden_state.reshape(n, c, -1)  # [N, C, H]
    # position t predicts token t+1; the first token is predicted by the prompt's last position
    hidden = torch.cat([state.last_hidden.repeat_interleave(g, 0).unsqueeze(1), hidden[:, :-1]], 1)  # [N, C, H]
    return thinker.lm_head(hidden)
