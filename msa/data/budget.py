"""What a clip will cost under the configured media budget, from its headers alone (no decoding).

Each count follows the code that later builds the prompt, so the plan's figures are the run's:

* frames: Qwen's rule (:func:`msa.data.media.num_frames`: ``data.fps``, at least 4, at most
  ``data.max_frames`` or the clip's own cap from ``data.max_prompt_tokens``), each resized as
  :func:`msa.data.media.frame_size` does within ``data.video_min_pixels .. data.video_max_pixels``
  (null: Qwen's 128*28*28 .. 768*28*28); a pair of frames is one time step of ``H/28 * W/28`` tokens;
* audio: the track up to ``data.max_audio_seconds`` (and the feature extractor's 300 s window) at
  16 kHz, one mel frame per 160 samples, 25 tokens a second after the encoder's two stride-2 stages;
* text: an estimate (no tokenizer loads): the system prompt, the request and the transcript at four
  ASCII characters a token and one token for any other character (CJK), plus the chat template's turns.

Interleaved audio (``use_audio_in_video``) adds its two delimiters inside the video's two.

    n = prompt_tokens(read_headers(path), cfg.data)        # the prompt length of one clip
    cap = fitted_max_frames(h, cfg.data)                   # fewer frames when data.max_prompt_tokens binds
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from msa.data import media
from msa.data.headers import ClipHeaders

QWEN_VIDEO_MIN_PIXELS = 128 * 28 * 28  # qwen-omni-utils' VIDEO_MIN_PIXELS, the processor's video default
QWEN_VIDEO_MAX_PIXELS = 768 * 28 * 28
FACTOR = 28  # patch_size 14 x merge_size 2: one token per 28x28 pixels of a pair of frames
SAMPLE_RATE = 16000
HOP = 160  # samples per mel frame
N_MELS = 128
AUDIO_WINDOW_S = 300.0  # the feature extractor's window: the most audio the reference keeps
TEMPLATE_TOKENS = 13  # <|im_start|>system\n ... <|im_end|>\n<|im_start|>user\n ... <|im_start|>assistant\n
TRANSCRIPT_TOKENS = 20  # a transcript's estimate when none is given (a MOSI/SIMS utterance)


def _get(cfg, key: str, default=None):
    value = cfg.get(key, default) if cfg is not None else default
    return default if value is None else value


def modalities(data_cfg) -> tuple[str, ...]:
    """The modalities switched on in ``data.modalities`` (all three when unset)."""
    mods = _get(data_cfg, "modalities", None)
    if mods is None:
        return ("text", "audio", "video")
    return tuple(m for m in ("text", "audio", "video") if (mods.get(m, True) if isinstance(mods, Mapping) else m in mods))


def pixel_bounds(data_cfg) -> tuple[int, int]:
    """(min, max) pixels a frame is resized into: ``data.video_min_pixels/video_max_pixels``, else Qwen's."""
    return (int(_get(data_cfg, "video_min_pixels", QWEN_VIDEO_MIN_PIXELS)),
            int(_get(data_cfg, "video_max_pixels", QWEN_VIDEO_MAX_PIXELS)))


def sampled_frames(h: ClipHeaders, data_cfg, max_frames: int | None = None) -> int:
    """Frames Qwen's rule samples from the clip (``max_frames``: this clip's own cap, if any)."""
    if not h.has_video:
        return 0
    cap = int(_get(data_cfg, "max_frames", 768))
    if max_frames is not None:
        cap = min(cap, int(max_frames))
    if h.n_frames is None or h.n_frames < 2:
        raise media.MediaError(f"video stream has {h.n_frames} frame; Qwen's frame rule needs at least 2",
                               path=h.path, kind="empty")
    return media.num_frames(h.n_frames, h.fps, float(_get(data_cfg, "fps", 2.0)),
                            int(_get(data_cfg, "min_frames", 4)), cap)


def frame_hw(h: ClipHeaders, data_cfg, n_frames: int) -> tuple[int, int]:
    """(height, width) every sampled frame is resized to."""
    lo, hi = pixel_bounds(data_cfg)
    return media.frame_size(h.height, h.width, n_frames, factor=FACTOR, min_pixels=lo, max_pixels=hi)


def video_tokens(h: ClipHeaders, data_cfg, max_frames: int | None = None) -> int:
    """``<|VIDEO|>`` tokens of the clip: ``frames / 2 * (H / 28) * (W / 28)``.

    >>> from msa.data.headers import ClipHeaders
    >>> h = ClipHeaders("c.mp4", 10.0, 1280, 720, 25.0, 250, 0, True, True, 48000, 2)
    >>> video_tokens(h, {})  # 10 s 720p: 20 frames at 560 x 1008 (Qwen's 768*28*28 cap), 10 steps of 20 x 36
    7200
    """
    n = sampled_frames(h, data_cfg, max_frames)
    if n == 0:
        return 0
    height, width = frame_hw(h, data_cfg, n)
    return n // 2 * (height // FACTOR) * (width // FACTOR)


def audio_samples(h: ClipHeaders, data_cfg) -> int:
    """16 kHz samples of the track the features are computed from: every decoded sample resampled
    (``ceil(n * 16000 / rate)``, as :func:`msa.data.media.resample`), cut at the configured maximum."""
    if not h.has_audio:
        return 0
    if h.audio_samples and h.audio_rate:
        n = -(-h.audio_samples * SAMPLE_RATE // h.audio_rate)
    else:
        n = int(round(h.duration * SAMPLE_RATE))
    cap = min(float(_get(data_cfg, "max_audio_seconds", AUDIO_WINDOW_S)), AUDIO_WINDOW_S)
    return min(n, int(round(cap * SAMPLE_RATE)))


def audio_tokens(h: ClipHeaders, data_cfg) -> int:
    """``<|AUDIO|>`` tokens of the clip's track: mel frames through two stride-2 stages (25 a second).

    >>> from msa.data.headers import ClipHeaders
    >>> audio_tokens(ClipHeaders("c.mp4", 2.0, 64, 64, 10.0, 20, 0, True, True, 16000, 1), {})
    50
    """
    frames = -(-audio_samples(h, data_cfg) // HOP)
    if frames == 0:
        return 0
    return ((frames - 1) // 2 + 1 - 2) // 2 + 1


def text_tokens(data_cfg, transcript: str | None = None, *, answer: str = "dc",
                range_dataset: str | None = None) -> int:
    """An estimate of the prompt's text tokens: system prompt, request, transcript, template turns."""
    from msa.dc.prompt import SCORE_SYSTEM_PROMPT, SYSTEM_PROMPT, build_instruction

    mods = modalities(data_cfg)
    name = str(_get(data_cfg, "name", "sims"))
    text = (SYSTEM_PROMPT if answer == "dc" else SCORE_SYSTEM_PROMPT) + build_instruction(
        name, modalities=mods, answer=answer, range_dataset=range_dataset)
    n = _estimate(text) + TEMPLATE_TOKENS
    if "text" in mods:
        n += _estimate("\nTranscript: ") + (TRANSCRIPT_TOKENS if transcript is None else _estimate(transcript))
    return n


def _estimate(text: str) -> int:
    ascii_chars = sum(1 for c in text if ord(c) < 128)
    return math.ceil(ascii_chars / 4) + (len(text) - ascii_chars)


def media_tokens(h: ClipHeaders, data_cfg, max_frames: int | None = None) -> int:
    """The prompt's media tokens, delimiters included (exact: what the collator expands)."""
    mods = modalities(data_cfg)
    video = "video" in mods and h.has_video
    audio = "audio" in mods and h.has_audio
    n = 0
    if video:
        n += video_tokens(h, data_cfg, max_frames) + 2  # <|vision_bos|> ... <|vision_eos|>
    if audio:
        n += audio_tokens(h, data_cfg) + 2  # <|audio_bos|> ... <|audio_eos|>
    return n


def prompt_tokens(h: ClipHeaders, data_cfg, *, transcript: str | None = None, max_frames: int | None = None) -> int:
    """The prompt length the clip will have under the configured media budget (text estimated)."""
    return media_tokens(h, data_cfg, max_frames) + text_tokens(data_cfg, transcript)


def fitted_max_frames(h: ClipHeaders, data_cfg, *, transcript: str | None = None) -> int | None:
    """The frame cap that brings the clip within ``data.max_prompt_tokens``: None when it fits as it is
    (or no limit is set), else the largest even frame count that fits; 0 when not even the fewest
    frames (``min_frames``) fit (the audio or the text alone is over the limit)."""
    limit = _get(data_cfg, "max_prompt_tokens", None)
    if limit is None or not h.has_video or "video" not in modalities(data_cfg):
        return None
    n = sampled_frames(h, data_cfg)
    if prompt_tokens(h, data_cfg, transcript=transcript, max_frames=n) <= limit:
        return None
    low = min(n, -(-int(_get(data_cfg, "min_frames", 4)) // 2) * 2)
    # Fewer frames never cost more tokens (the per-frame size only grows as the whole-video budget eases,
    # and never past video_max_pixels), so the first count that fits, going down, is the largest.
    for cap in range(n - 2, low - 1, -2):
        if cap >= 2 and prompt_tokens(h, data_cfg, transcript=transcript, max_frames=cap) <= limit:
            return cap
    return 0


def store_bytes(h: ClipHeaders, data_cfg, max_frames: int | None = None) -> int:
    """Bytes the media store keeps for the clip: its resized frames as uint8 (``frames * H * W * 3``) and
    its audio features (float32, 128 mels per 10 ms). The one place this figure is computed."""
    mods = modalities(data_cfg)
    total = 0
    if "video" in mods and h.has_video:
        n = sampled_frames(h, data_cfg, max_frames)
        height, width = frame_hw(h, data_cfg, n)
        total += n * height * width * 3
    if "audio" in mods and h.has_audio:
        total += -(-audio_samples(h, data_cfg) // HOP) * N_MELS * 4
    return total


__all__ = ["QWEN_VIDEO_MAX_PIXELS", "QWEN_VIDEO_MIN_PIXELS", "audio_tokens", "fitted_max_frames", "frame_hw",
           "media_tokens", "pixel_bounds", "prompt_tokens", "sampled_frames", "store_bytes", "text_tokens",
           "video_tokens"]
