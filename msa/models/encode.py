"""Encode a prompt's video and audio once, then reuse the encoder outputs.

GRPO runs the same multimodal prompt through the model many times: G sampled rollouts, the hinted
regeneration, the policy log-prob pass and the reference pass. The vision and audio towers are frozen
by default, so their outputs are the same every time; we compute them once per prompt and rebuild the
input embeddings from them. Text-token embeddings are always recomputed from ``input_ids`` so that a
trained embedding table (full fine-tuning) still gets its gradient.

With trained encoders the cached outputs would be stale: callers must then pass the raw media
(``media_kwargs``) every time instead (``GRPOModule`` does this when an encoder has trainable weights).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

# Keys of a collated batch that hold raw media for the encoders; everything position-related stays.
MEDIA_KEYS = ("pixel_values_videos", "pixel_values", "input_features")
# Keys the model needs to compute 3D (TMRoPE) positions even when media come pre-encoded.
POSITION_KEYS = ("video_grid_thw", "image_grid_thw", "video_second_per_grid", "feature_attention_mask")


class MediaEmbeds(NamedTuple):
    embeds: torch.Tensor  # [B, P, H] encoder outputs at media-token positions, zeros elsewhere
    mask: torch.Tensor  # [B, P] bool, True at <|VIDEO|>/<|IMAGE|>/<|AUDIO|> positions

    def repeat_interleave(self, g: int) -> "MediaEmbeds":
        """Rows repeated for G rollouts per prompt: [B, ...] -> [B*G, ...]."""
        return MediaEmbeds(self.embeds.repeat_interleave(g, 0), self.mask.repeat_interleave(g, 0))

    def pad_to(self, length: int) -> "MediaEmbeds":
        """Extend on the right (completion tokens carry no media)."""
        extra = length - self.mask.shape[1]
        if extra <= 0:
            return self
        return MediaEmbeds(torch.nn.functional.pad(self.embeds, (0, 0, 0, extra)),
                           torch.nn.functional.pad(self.mask, (0, extra)))

    def select(self, rows: torch.Tensor) -> "MediaEmbeds":
        return MediaEmbeds(self.embeds[rows], self.mask[rows])


@torch.no_grad()
def encode_media(thinker, batch: dict) -> MediaEmbeds:
    """Run the audio and vision towers once for a collated batch (prompt tokens only)."""
    inner = thinker.model  # Qwen2_5OmniThinkerModel
    input_ids = batch["input_ids"]  # [B, P]
    embeds = torch.zeros(*input_ids.shape, thinker.config.text_config.hidden_size,
                         dtype=thinker.dtype, device=input_ids.device)
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    cfg = thinker.config
    if batch.get("input_features") is not None:
        audio = inner.get_audio_features(batch["input_features"], batch["feature_attention_mask"],
                                         return_dict=True).last_hidden_state
        where = input_ids == cfg.audio_token_index
        embeds[where] = audio.to(embeds.dtype)
        mask |= where
    if batch.get("pixel_values_videos") is not None:
        video = inner.get_video_features(batch["pixel_values_videos"], batch["video_grid_thw"], return_dict=True)
        where = input_ids == cfg.video_token_index
        embeds[where] = torch.cat(list(video.pooler_output), 0).to(embeds.dtype)
        mask |= where
    if batch.get("pixel_values") is not None:
        image = inner.get_image_features(batch["pixel_values"], batch["image_grid_thw"], return_dict=True)
        where = input_ids == cfg.image_token_index
        embeds[where] = torch.cat(list(image.pooler_output), 0).to(embeds.dtype)
        mask |= where
    return MediaEmbeds(embeds, mask)


def encode_media_grad(thinker, batch: dict) -> MediaEmbeds:
    """:func:`encode_media` without its no_grad, so trained towers get gradients."""
    return encode_media.__wrapped__(thinker, batch)


def inputs_embeds(thinker, input_ids: torch.Tensor, media: MediaEmbeds | None) -> torch.Tensor:
    """Token embeddings with the cached media outputs written at the media positions. [B, L, H]"""
    text = thinker.get_input_embeddings()(input_ids)
    if media is None:
        return text
    media = media.pad_to(input_ids.shape[1])
    return torch.where(media.mask.unsqueeze(-1), media.embeds.to(text.dtype), text)


def position_kwargs(batch: dict, rows: torch.Tensor | None = None, repeat: int = 1) -> dict:
    """The batch entries the model needs for TMRoPE positions, expanded to the rollout rows.

    Media tensors are concatenated over samples (not indexed by row), so repeating rows means
    rebuilding them per sample; only ``*_grid_thw``, ``video_second_per_grid`` and
    ``feature_attention_mask`` are needed once the encoders have run.
    """
    out = {}
    n = batch["input_ids"].shape[0]
    # Made where ``rows`` live (the model's device in GRPO), then moved to each tensor it indexes.
    order = torch.arange(n, device=None if rows is None else rows.device).repeat_interleave(repeat)
    if rows is not None:
        order = order[rows]
    for key in ("feature_attention_mask",):
        if batch.get(key) is not None:
            out[key] = batch[key][order.to(batch[key].device)]
    for key in ("video_grid_thw", "video_second_per_grid", "image_grid_thw"):
        if batch.get(key) is not None:
            # One entry per video; our prompts carry exactly one clip each when video is on.
            if batch[key].shape[0] != n:
                raise ValueError(f"{key}: expected one entry per prompt ({n}), got {batch[key].shape[0]}")
            out[key] = batch[key][order.to(batch[key].device)]
    return out


def select_media_rows(batch: dict, rows: torch.Tensor) -> dict:
    """A batch restricted (and possibly repeated) to ``rows``, media tensors included.

    ``pixel_values_videos`` concatenates every clip's patches (``prod(video_grid_thw[i])`` rows each),
    so selecting prompts means slicing those runs; per-row tensors are indexed directly. Used when the
    encoder outputs are *not* reused and each pass must see the raw media of its rows.
    """
    rows = rows.cpu()
    out = {k: v for k, v in batch.items()}
    for key in ("input_ids", "attention_mask", "input_features", "feature_attention_mask",
                "video_grid_thw", "video_second_per_grid"):
        if batch.get(key) is not None:
            out[key] = batch[key][rows.to(batch[key].device)]
    if batch.get("pixel_values_videos") is not None:
        sizes = batch["video_grid_thw"].prod(-1).tolist()
        starts = [0]
        for n in sizes[:-1]:
            starts.append(starts[-1] + n)
        out["pixel_values_videos"] = torch.cat([batch["pixel_values_videos"][starts[r]: starts[r] + sizes[r]]
                                                for r in rows.tolist()])
    return out
