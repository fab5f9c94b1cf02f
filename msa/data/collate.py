"""Collate samples with cached media into Qwen2.5-Omni thinker inputs.

The token expansion is the processor's own: :class:`MultimodalCollator` renders each prompt with the
processor's chat template, then calls the processor's ``replace_video_token`` /
``replace_audio_token`` (the audio-in-video interleaving every ``seconds_per_chunk``) and
``get_text_with_replacements`` on the cached features, and tokenises with the processor's merged
text kwargs. A batch is therefore identical (ids, mask and every media tensor) to
``processor(text=..., videos=[frames...], audio=[audio...], audio_from_video_indices=[0, 1, ...],
load_audio_from_video=True, fps=fps, audio_kwargs={"max_length": n}, padding=True)`` on the same
clips, whenever that call pads every clip's audio to its own length (one clip, or clips of equal
length). With clips of different lengths each keeps the features of its own length and the shorter
ones are zero-padded to the longest, ``feature_attention_mask`` 0 there; the thinker drops masked
frames before its audio encoder. A single processor call would instead pad the waveforms, which moves
the last STFT frame of the shorter clips slightly (reflect vs zero padding at the edge).

Padding is on the LEFT, so the same batch serves generation (prompts only) and teacher forcing
(``targets``: prompt + answer + ``<|im_end|>``; ``labels`` keeps the answer and ``<|im_end|>`` and is
-100 everywhere else).

Missing audio (``allow_missing_audio``): a clip without an audio track is prompted as video-only.
If no clip in the batch interleaves audio, it is plain video (``use_audio_in_video=False``). If
another clip of the batch does, one ``use_audio_in_video`` flag must hold for every row (the thinker's
TMRoPE reads it per batch), so the clip gets a silent track of its video's duration instead; such
rows are listed in ``batch["silent_audio"]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from msa.data.dataset import SkippedSample, normalise_modalities
from msa.dc import build_conversation

IGNORE_INDEX = -100
IM_END = "<|im_end|>"
MEDIA_KEYS = ("pixel_values_videos", "video_grid_thw", "video_second_per_grid", "input_features",
              "feature_attention_mask")


def mask_prompt(input_ids: torch.Tensor, prompt_lengths: Sequence[int], lengths: Sequence[int]) -> torch.Tensor:
    """Labels for LEFT-padded rows: the last ``lengths[i] - prompt_lengths[i]`` tokens keep their ids.

    >>> ids = torch.tensor([[0, 0, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6]])  # row 0: 2 pads + 4 tokens
    >>> mask_prompt(ids, prompt_lengths=[2, 3], lengths=[4, 6]).tolist()
    [[-100, -100, -100, -100, 7, 8], [-100, -100, -100, 4, 5, 6]]
    """
    labels = torch.full_like(input_ids, IGNORE_INDEX)  # [B, L]
    width = input_ids.shape[1]
    for i, (n_prompt, n) in enumerate(zip(prompt_lengths, lengths)):
        if not 0 <= n_prompt <= n <= width:
            raise ValueError(f"row {i}: need 0 <= prompt length ({n_prompt}) <= length ({n}) <= width ({width})")
        start = width - n + n_prompt  # left padding: the row's tokens end at the last column
        labels[i, start:] = input_ids[i, start:]
    return labels


def _pad_last(t: torch.Tensor, width: int) -> torch.Tensor:
    return F.pad(t, (0, width - t.shape[-1]))


class MultimodalCollator:
    """Build a thinker batch from :class:`~msa.data.dataset.MSADataset` samples.

    ``modalities`` (switch dict or names) must match the dataset's. ``targets`` maps sample ids to the
    answer text for teacher forcing (every sample needs one). The returned dict holds the model inputs
    (``input_ids, attention_mask`` [B, L], the media tensors present, ``use_audio_in_video``: pass it to
    every forward and generate call, ``labels`` [B, L] with targets) and the metadata ``ids, datasets,
    transcripts, label, label_T, label_A, label_V, conflict`` (float64 [B]; NaN where unknown), ``skipped``
    ([(id, reason)]) and ``silent_audio`` (ids given a silent track). A batch whose samples were all skipped has empty
    metadata and no model inputs (``input_ids`` is None).
    """

    def __init__(self, processor, *, answer: str = "dc", range_dataset: str | None = None,
                 modalities: Mapping[str, bool] | Iterable[str] | None = None,
                 targets: Mapping[str, str] | None = None, use_audio_in_video: bool = True):
        self.processor = processor
        self.answer = answer
        self.range_dataset = range_dataset
        self.modalities = normalise_modalities(modalities)
        self.targets = dict(targets) if targets is not None else None
        self.use_audio_in_video = bool(use_audio_in_video)
        merged = processor._merge_kwargs(tokenizer_init_kwargs=processor.tokenizer.init_kwargs,
                                         padding=True, return_tensors="pt")
        # Generation appends to the right end of every row, so prompts must be left-padded.
        merged["text_kwargs"]["padding_side"] = "left"
        self._merged = merged
        self._silence_cache: dict[int, dict] = {}

    # -- prompt text ---------------------------------------------------------------------------
    def _prompt(self, sample: dict, modalities: tuple[str, ...], separate_audio: bool) -> str:
        conv = build_conversation(sample["transcript"], sample["dataset"], modalities=modalities,
                                  answer=self.answer, range_dataset=self.range_dataset)
        if separate_audio:  # video and audio as two streams: an audio item right after the video
            content = conv[-1]["content"]
            at = next(i for i, item in enumerate(content) if item["type"] == "video") + 1
            content.insert(at, {"type": "audio", "audio": content[at - 1]["video"]})
        return self.processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)

    def _silence(self, seconds: float) -> dict:
        """Features of a silent track of ``seconds``, padded to its own length like a real one."""
        fe = self.processor.feature_extractor
        n = max(int(round(seconds * fe.sampling_rate)), int(fe.n_fft) + 1, 4 * int(fe.hop_length))
        if n not in self._silence_cache:
            kwargs = dict(self._merged["audio_kwargs"], max_length=n)
            processed, _ = self.processor._process_audio([np.zeros(n, np.float32)], **kwargs)
            self._silence_cache[n] = {k: processed[k] for k in ("input_features", "feature_attention_mask")}
        return self._silence_cache[n]

    # -- the batch ----------------------------------------------------------------------------
    def __call__(self, samples: Sequence[dict | SkippedSample]) -> dict:
        skipped = [(s.id, s.reason) for s in samples if isinstance(s, SkippedSample)]
        kept = [s for s in samples if not isinstance(s, SkippedSample)]
        batch: dict = {
            "ids": [s["id"] for s in kept], "datasets": [s["dataset"] for s in kept],
            "transcripts": [s["transcript"] for s in kept],
            **{k: torch.tensor([s[k] for s in kept], dtype=torch.float64)
               for k in ("label", "label_T", "label_A", "label_V")},
            # samples built by hand (tests, probes) may lack the column; NaN is "unknown"
            "conflict": torch.tensor([s.get("conflict", math.nan) for s in kept], dtype=torch.float64),
            "skipped": skipped, "silent_audio": [],
        }
        if not kept:
            batch.update(input_ids=None, attention_mask=None, use_audio_in_video=False)
            return batch
        for s in kept:
            self._check(s)
        # One flag for the whole batch: interleave iff some clip has both its video and its audio.
        interleave = self.use_audio_in_video and any(s["video"] is not None and s["audio"] is not None
                                                     for s in kept)
        texts, videos, audios, video_to_audio, standalone = [], [], [], [], []
        for s in kept:
            mods = tuple(m for m in self.modalities if m != "audio" or s["audio"] is not None)
            audio = s["audio"]
            if interleave and s["video"] is not None and audio is None:
                audio = self._silence(s["video"]["seconds"])
                batch["silent_audio"].append(s["id"])
            separate = s["video"] is not None and audio is not None and not interleave
            texts.append(self._prompt(s, mods, separate))
            if s["video"] is not None:
                videos.append(s["video"])
                video_to_audio.append(len(audios) if interleave and audio is not None else None)
            if audio is not None:
                if not (interleave and s["video"] is not None):
                    standalone.append(len(audios))
                audios.append(audio)
        media = self._media(videos, audios)
        video_repl, audio_repl = self._replacements(media, video_to_audio, standalone, interleave)
        prompts, _ = self.processor.get_text_with_replacements(texts, [], video_repl, audio_repl)
        batch.update(self._tokenize(prompts, [s["id"] for s in kept]))
        batch.update({k: v for k, v in media.items() if k in MEDIA_KEYS})
        batch["use_audio_in_video"] = bool(interleave)
        return batch

    def _check(self, s: dict) -> None:
        for m in ("video", "audio"):
            if m in self.modalities and s[m] is None and not (m == "audio" and s.get("audio_missing")):
                raise ValueError(f"{s['dataset']}: clip {s['id']} has no {m} features but the collator's "
                                 f"modalities are {self.modalities}; build the dataset with the same modalities")
            if m not in self.modalities and s[m] is not None:
                raise ValueError(f"{s['dataset']}: clip {s['id']} carries {m} features but {m} is off "
                                 f"in the collator ({self.modalities})")

    def _media(self, videos: list[dict], audios: list[dict]) -> dict:
        out: dict = {}
        if videos:
            out["pixel_values_videos"] = torch.cat([v["pixel_values_videos"] for v in videos])  # [sum P, D]
            out["video_grid_thw"] = torch.cat([v["video_grid_thw"] for v in videos])  # [V, 3]
            # The processor returns a python list that BatchFeature turns into a float32 tensor.
            out["video_second_per_grid"] = torch.tensor([float(v["video_second_per_grid"]) for v in videos])
        if audios:
            width = max(a["input_features"].shape[-1] for a in audios)
            out["input_features"] = torch.cat([_pad_last(a["input_features"], width) for a in audios])  # [A, M, F]
            out["feature_attention_mask"] = torch.cat(
                [_pad_last(a["feature_attention_mask"], width) for a in audios])  # [A, F]
        return out

    def _replacements(self, media: dict, video_to_audio: list, standalone: list[int], interleave: bool):
        from transformers.models.qwen2_5_omni.processing_qwen2_5_omni import _get_feat_extract_output_lengths

        processed_audio = {}
        if "feature_attention_mask" in media:
            processed_audio["num_audio_tokens"] = _get_feat_extract_output_lengths(
                media["feature_attention_mask"].sum(-1))  # [A]
        video_inputs = {"video_grid_thw": media.get("video_grid_thw"),
                        "video_second_per_grid": media["video_second_per_grid"].tolist()
                        if "video_second_per_grid" in media else []}
        kwargs = dict(self._merged, load_audio_from_video=interleave)
        video_repl = [self.processor.replace_video_token(video_inputs, video_idx=i, processed_audio=processed_audio,
                                                         video_to_audio_indices=video_to_audio, **kwargs)
                      for i in range(len(video_to_audio))]
        audio_repl = [self.processor.replace_audio_token(processed_audio, audio_idx=j) for j in standalone]
        return video_repl, audio_repl

    def _tokenize(self, prompts: list[str], ids: list[str]) -> dict:
        tok = self.processor.tokenizer
        text_kwargs = self._merged["text_kwargs"]
        if self.targets is None:
            enc = tok(prompts, **text_kwargs)
            self.processor._check_special_mm_tokens(prompts, enc, modalities=["image", "video", "audio"])
            return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        missing = [i for i in ids if i not in self.targets]
        if missing:
            raise KeyError(f"no target answer for clips {missing[:5]} ({len(missing)} in this batch)")
        full = [p + self.targets[i] + IM_END for p, i in zip(prompts, ids)]
        enc = tok(full, **text_kwargs)
        self.processor._check_special_mm_tokens(full, enc, modalities=["image", "video", "audio"])
        prompt_ids = tok(prompts, padding=False, add_special_tokens=text_kwargs.get("add_special_tokens", True))
        lengths = enc["attention_mask"].sum(-1).tolist()
        width = enc["input_ids"].shape[1]
        prompt_lengths = []
        for row, (p_ids, n) in enumerate(zip(prompt_ids["input_ids"], lengths)):
            head = enc["input_ids"][row, width - n: width - n + len(p_ids)].tolist()
            if head != list(p_ids):
                raise ValueError(f"clip {ids[row]}: the target's first tokens merge with the end of the prompt; "
                                 "start the target with a tag such as <polarity>")
            prompt_lengths.append(len(p_ids))
        labels = mask_prompt(enc["input_ids"], prompt_lengths, lengths)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}


__all__ = ["IGNORE_INDEX", "MultimodalCollator", "mask_prompt"]
