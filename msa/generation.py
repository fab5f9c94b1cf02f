"""Batched generation from a collated multimodal batch: the one place that calls ``model.generate``
for evaluation, teacher CoT and validation (GRPO's sampler in :mod:`msa.rl.rollout` reuses
:func:`append_prefill` and :func:`decode_completions`)."""

from __future__ import annotations

import torch

# Collated-batch keys that are model inputs (everything else is metadata: ids, labels, transcripts...).
MODEL_KEYS = ("input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw", "video_second_per_grid",
              "input_features", "feature_attention_mask", "pixel_values", "image_grid_thw")


# Tokens an answer must never contain: media placeholders and chat-structure markers. A sampled
# <|audio_bos|> or <|VIDEO|> in a completion makes the next forward's TMRoPE indexing look for media
# that is not there (transformers raises deep in get_rope_index), so generation suppresses them and
# the scoring passes mask them the same way (the log-probs stay those of the sampling distribution).
SUPPRESSED_TOKENS = ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>", "<|vision_bos|>", "<|vision_eos|>",
                     "<|vision_pad|>", "<|IMAGE|>", "<|VIDEO|>", "<|im_start|>", "<|endoftext|>",
                     "<|box_end|>", "<|quad_start|>", "<|quad_end|>")


def suppressed_ids(tokenizer) -> list[int]:
    ids = [tokenizer.convert_tokens_to_ids(t) for t in SUPPRESSED_TOKENS]
    return [i for i in ids if i is not None and i != tokenizer.unk_token_id]


def mask_suppressed(logits: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """Set the suppressed tokens' logits to the dtype's minimum (probability 0, finite arithmetic).

    In place: a second [N, C, V] copy costs gigabytes at Qwen's vocabulary size, and the linear layer
    that produced ``logits`` does not keep them for its backward.
    """
    index = torch.tensor(ids, device=logits.device)
    return logits.index_fill_(-1, index, torch.finfo(logits.dtype).min)


def model_inputs(batch: dict, device=None) -> dict:
    out = {k: batch[k] for k in MODEL_KEYS if batch.get(k) is not None}
    if device is not None:
        out = {k: v.to(device) for k, v in out.items()}
    return out


def prefix_ids(tokenizer, prefix: str, follows: str = "") -> list[int]:
    """Token ids of an answer prefix, cut where the model can continue it as it did in training.

    BPE merges across the end of a prefix: our offline tokenizer writes ``</polarity><think>`` with a
    ``><`` token, so ``<polarity>x</polarity>`` tokenized on its own ends in a lone ``>`` that never
    preceded ``think`` in any training answer, and the continuation leaves the format (measured: 0 of
    216 logged hinted rollouts well formed on the demo). Any BPE with such a merge does the same; where
    there is none the cut changes nothing. So we tokenize ``prefix + follows`` (the text that follows
    the prefix in training answers) and keep the longest run of leading tokens that lies inside
    ``prefix``; the model writes the rest of the prefix itself (here the final ``>``).

    >>> class Greedy:  # longest-match tokenizer over a five-piece vocabulary
    ...     vocab = ["><", "a", ">", "<", "b"]
    ...     def __call__(self, s, add_special_tokens=False):
    ...         ids = []
    ...         while s:
    ...             i = next(i for i, v in enumerate(self.vocab) if s.startswith(v))
    ...             ids.append(i)
    ...             s = s[len(self.vocab[i]):]
    ...         return {"input_ids": ids}
    ...     def decode(self, ids):
    ...         return "".join(self.vocab[i] for i in ids)
    >>> tok = Greedy()
    >>> tok("a>")["input_ids"], tok("a><b")["input_ids"]  # alone the prefix ends in ">", in context in "><"
    ([1, 2], [1, 0, 4])
    >>> prefix_ids(tok, "a>", follows="<b")  # "a" only: the model writes "><" itself, as in training
    [1]
    """
    if not follows:
        return tokenizer(prefix, add_special_tokens=False)["input_ids"]
    ids = tokenizer(prefix + follows, add_special_tokens=False)["input_ids"]
    for k in range(len(ids), 0, -1):
        text = tokenizer.decode(ids[:k])
        if len(text) <= len(prefix) and prefix.startswith(text):
            return ids[:k]
    return tokenizer(prefix, add_special_tokens=False)["input_ids"]  # nothing fits: the prefix as it is


def append_prefill(batch: dict, tokenizer, prefills: list[str], follows: str = "") -> dict:
    """Append per-row answer prefixes (Hint-GRPO's ``<polarity>x</polarity>``) after the prompt.

    Prompts are left-padded, so appending on the right keeps every row aligned at its end; rows get
    prefixes of different token lengths, so shorter ones are left-padded again to the longest.
    ``follows``: see :func:`prefix_ids`. ``prefill_ids`` holds each row's prefix tokens.
    """
    ids, mask = batch["input_ids"], batch["attention_mask"]  # [B, P]
    pre = [prefix_ids(tokenizer, p, follows) for p in prefills]
    longest = max(len(p) for p in pre)
    pad_id = tokenizer.pad_token_id
    rows, masks = [], []
    for r, p in enumerate(pre):
        extra = longest - len(p)
        # pad and prefill are made on the prompt's device (CUDA in training): cat refuses mixed devices
        rows.append(torch.cat([ids.new_full((extra,), pad_id), ids[r], ids.new_tensor(p)]))
        masks.append(torch.cat([mask.new_zeros(extra), mask[r], mask.new_ones(len(p))]))
    out = dict(batch)
    out["input_ids"], out["attention_mask"] = torch.stack(rows), torch.stack(masks)
    out["prefill_lengths"] = torch.tensor([len(p) for p in pre])
    out["prefill_ids"] = pre
    return out


def decode_completions(tokenizer, completion_ids: torch.Tensor) -> list[str]:
    """Text of each generated row up to its first EOS (special tokens dropped)."""
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    texts = []
    for row in completion_ids.tolist():
        if eos in row:
            row = row[: row.index(eos)]
        texts.append(tokenizer.decode(row, skip_special_tokens=True))
    return texts


@torch.no_grad()
def generate_texts(model, tokenizer, batch: dict, *, max_new_tokens: int, use_audio_in_video: bool,
                   do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                   num_return_sequences: int = 1, prefills: list[str] | None = None,
                   prefill_follows: str = "") -> list[str]:
    """Generate answers for a collated batch; returns ``B * num_return_sequences`` texts, grouped by prompt.

    With ``prefills``, each row's answer starts with its prefix (cut per :func:`prefix_ids` when
    ``prefill_follows`` is given), and the returned text includes it.
    """
    if prefills is not None:
        batch = append_prefill(batch, tokenizer, prefills, prefill_follows)
    device = next(model.parameters()).device
    inputs = model_inputs(batch, device)
    was_training = model.training
    model.eval()
    try:
        kwargs = dict(do_sample=do_sample, max_new_tokens=max_new_tokens, num_return_sequences=num_return_sequences,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                      suppress_tokens=suppressed_ids(tokenizer))
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        out = model.generate(**inputs, use_audio_in_video=use_audio_in_video, **kwargs)
    finally:
        model.train(was_training)
    texts = decode_completions(tokenizer, out[:, inputs["input_ids"].shape[1]:])
    if prefills is not None:
        heads = [tokenizer.decode(p) for p in batch["prefill_ids"]]
        texts = [heads[i // num_return_sequences] + t for i, t in enumerate(texts)]
    return texts
