"""MultimodalCollator: batches identical to a plain processor call, modality switches, labels, skips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from data_fixtures import clips, processor  # noqa: F401  (pytest fixtures)

from msa.data.cache import MediaCache
from msa.data.collate import IGNORE_INDEX, MultimodalCollator, mask_prompt
from msa.data.dataset import SkippedSample
from msa.data.media import decode_audio, decode_video, resize_frames
from msa.dc import build_conversation

MEDIA_KEYS = ("pixel_values_videos", "video_grid_thw", "video_second_per_grid", "input_features",
              "feature_attention_mask")


@pytest.fixture(scope="module")
def cache(processor):
    return MediaCache(processor, None)


def frames(cache, path):
    """The clip's frames as Qwen's pipeline hands them to the processor: sampled, then resized on uint8."""
    video = decode_video(path)
    return resize_frames(video, *cache.frame_size(video.shape[1], video.shape[2], video.shape[0]))


# The demo-format clips decode to 32768 samples (2.0 s = 32000 samples in 1024-sample AAC frames, all
# kept); the cache pads them to a whole hop of 160: 32800 samples, 205 mel frames.
AUDIO_SAMPLES = 32800


def make_sample(cache, path, clip_id, transcript="what a lovely day", *, video=True, audio=True):
    return {"id": clip_id, "dataset": "demo", "transcript": transcript, "label": 0.4, "label_T": 0.2,
            "label_A": math.nan, "label_V": -0.2, "video": cache.video(path) if video else None,
            "audio": cache.audio(path) if audio else None, "audio_missing": False}


def prompt(processor, transcript, modalities=("text", "audio", "video"), extra_audio=False):
    conv = build_conversation(transcript, "demo", modalities=modalities)
    if extra_audio:
        conv[1]["content"].insert(1, {"type": "audio", "audio": "<clip>"})
    return processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)


def assert_same(batch, ref):
    model_keys = {k for k in batch if k in ("input_ids", "attention_mask", *MEDIA_KEYS)}
    assert model_keys == set(ref.keys())
    for key in ref:
        assert batch[key].dtype == ref[key].dtype, key
        assert torch.equal(batch[key], ref[key]), key


def test_one_clip_equals_the_processor_call(processor, cache, clips):
    batch = MultimodalCollator(processor)([make_sample(cache, clips["a"], "a")])
    ref = processor(text=[prompt(processor, "what a lovely day")], videos=[frames(cache, clips["a"])],
                    audio=[decode_audio(clips["a"])], audio_from_video_indices=[0], load_audio_from_video=True,
                    fps=2.0, audio_kwargs={"max_length": AUDIO_SAMPLES}, return_tensors="pt", padding=True)
    assert_same(batch, ref)
    assert batch["use_audio_in_video"] is True
    ids = batch["input_ids"][0]
    # 2x24x24 grid / merge 2x2 = 288 video tokens; 205 mel frames -> 103 -> 51 audio tokens
    assert (ids == processor.video_token_id).sum() == 288 and (ids == processor.audio_token_id).sum() == 51


def test_two_clips_left_padded_equal_the_processor_call(processor, cache, clips):
    samples = [make_sample(cache, clips["a"], "a", "ok"), make_sample(cache, clips["b"], "b", "a much longer "
                                                                      "transcript than the first one")]
    batch = MultimodalCollator(processor)(samples)
    ref = processor(text=[prompt(processor, s["transcript"]) for s in samples],
                    videos=[frames(cache, clips["a"]), frames(cache, clips["b"])],
                    audio=[decode_audio(clips["a"]), decode_audio(clips["b"])], audio_from_video_indices=[0, 1],
                    load_audio_from_video=True, fps=2.0, audio_kwargs={"max_length": AUDIO_SAMPLES},
                    return_tensors="pt", padding=True)
    assert_same(batch, ref)
    assert batch["attention_mask"][0, 0] == 0 and batch["attention_mask"][0, -1] == 1  # left padding
    assert batch["ids"] == ["a", "b"] and batch["label"].dtype == torch.float64
    assert batch["label"].tolist() == [0.4, 0.4] and math.isnan(batch["label_A"][0])


def test_audio_off_is_plain_video(processor, cache, clips):
    mods = ("text", "video")
    batch = MultimodalCollator(processor, modalities=mods)([make_sample(cache, clips["a"], "a", audio=False)])
    ref = processor(text=[prompt(processor, "what a lovely day", mods)], videos=[frames(cache, clips["a"])],
                    fps=2.0, return_tensors="pt", padding=True)
    assert_same(batch, ref)
    assert batch["use_audio_in_video"] is False and "input_features" not in batch


def test_video_off_is_an_audio_item(processor, cache, clips):
    mods = {"text": True, "audio": True, "video": False}
    batch = MultimodalCollator(processor, modalities=mods)([make_sample(cache, clips["a"], "a", video=False)])
    ref = processor(text=[prompt(processor, "what a lovely day", ("text", "audio"))],
                    audio=[decode_audio(clips["a"])], audio_kwargs={"max_length": AUDIO_SAMPLES}, return_tensors="pt",
                    padding=True)
    assert_same(batch, ref)
    assert batch["use_audio_in_video"] is False and "pixel_values_videos" not in batch


def test_separate_streams_without_audio_in_video(processor, cache, clips):
    batch = MultimodalCollator(processor, use_audio_in_video=False)([make_sample(cache, clips["a"], "a")])
    ref = processor(text=[prompt(processor, "what a lovely day", extra_audio=True)],
                    videos=[frames(cache, clips["a"])], audio=[decode_audio(clips["a"])], fps=2.0,
                    audio_kwargs={"max_length": AUDIO_SAMPLES}, return_tensors="pt", padding=True)
    assert_same(batch, ref)
    assert batch["use_audio_in_video"] is False


def test_text_off_leaves_the_transcript_out(processor, cache, clips):
    mods = ("audio", "video")
    batch = MultimodalCollator(processor, modalities=mods)([make_sample(cache, clips["a"], "a", "secret words")])
    text = processor.tokenizer.decode(batch["input_ids"][0])
    assert "secret words" not in text and "No transcript is given" in text
    assert batch["transcripts"] == ["secret words"]  # metadata still carries it


def test_text_only_has_no_media(processor, cache):
    sample = {"id": "t", "dataset": "demo", "transcript": "fine", "label": 0.0, "label_T": 0.0, "label_A": 0.0,
              "label_V": 0.0, "video": None, "audio": None, "audio_missing": False}
    batch = MultimodalCollator(processor, modalities=("text",))([sample])
    assert not set(MEDIA_KEYS) & set(batch) and batch["input_ids"].shape[0] == 1
    with pytest.raises(ValueError, match="clip t has no video features"):
        MultimodalCollator(processor)([sample])


def test_clips_of_different_length_keep_their_own_features(processor, cache, clips):
    samples = [make_sample(cache, clips["a"], "a"), make_sample(cache, clips["long"], "long")]
    batch = MultimodalCollator(processor)(samples)
    # 2.0 s -> 32768 samples -> ceil(204.8) = 205 mel frames; 3.3 s = 52800 samples -> 52 AAC frames =
    # 53248 samples -> ceil(332.8) = 333 frames; the short one is zero-padded
    assert batch["input_features"].shape == (2, 128, 333)
    assert batch["feature_attention_mask"].sum(-1).tolist() == [205, 333]
    assert torch.equal(batch["input_features"][0, :, :205], samples[0]["audio"]["input_features"][0])
    assert batch["input_features"][0, :, 205:].abs().sum() == 0


# -- labels ------------------------------------------------------------------------------------------

def test_mask_prompt_by_hand():
    ids = torch.tensor([[9, 9, 9, 1, 2, 3, 4], [1, 2, 3, 4, 5, 6, 7]])  # row 0 has 3 pad columns
    labels = mask_prompt(ids, prompt_lengths=[3, 5], lengths=[4, 7])
    # row 0: 4 tokens at columns 3..6, prompt = 3 of them -> only column 6 keeps its id (4)
    # row 1: 7 tokens, prompt = 5 -> columns 5, 6 keep 6, 7
    assert labels.tolist() == [[-100] * 6 + [4], [-100] * 5 + [6, 7]]
    with pytest.raises(ValueError, match="row 0"):
        mask_prompt(ids, prompt_lengths=[5], lengths=[4])


def test_labels_keep_only_the_answer_and_im_end(processor, cache, clips):
    answer = "<polarity>positive</polarity><think>bright voice</think><score>0.4</score>"
    samples = [make_sample(cache, clips["a"], "a", "ok"), make_sample(cache, clips["b"], "b", "longer words here")]
    batch = MultimodalCollator(processor, targets={"a": answer, "b": answer})(samples)
    tok = processor.tokenizer
    n_answer = len(tok(answer, add_special_tokens=False)["input_ids"]) + 1  # + <|im_end|>
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    for row in range(2):
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        kept = (labels != IGNORE_INDEX).nonzero().flatten()
        assert len(kept) == n_answer and kept[-1] == ids.shape[0] - 1  # a contiguous tail
        assert kept.tolist() == list(range(ids.shape[0] - n_answer, ids.shape[0]))
        assert torch.equal(labels[kept], ids[kept]) and labels[-1] == im_end
        assert tok.decode(ids[kept]) == answer + "<|im_end|>"
        # the token before the answer is the "\n" that ends "<|im_start|>assistant\n": prompt, masked
        assert tok.decode(ids[kept[0] - 2: kept[0]]) == "assistant\n"
    # every media placeholder is masked
    media = (batch["input_ids"] == processor.video_token_id) | (batch["input_ids"] == processor.audio_token_id)
    assert (batch["labels"][media] == IGNORE_INDEX).all()


def test_missing_target_is_an_error(processor, cache, clips):
    with pytest.raises(KeyError, match="no target answer for clips \\['a'\\]"):
        MultimodalCollator(processor, targets={"z": "x"})([make_sample(cache, clips["a"], "a")])


# -- skips and missing audio ---------------------------------------------------------------------------

def test_skipped_samples_are_dropped_and_reported(processor, cache, clips):
    skip = SkippedSample(id="bad", dataset="demo", kind="unreadable", reason="unreadable: demo: clip bad (x): cut")
    batch = MultimodalCollator(processor)([skip, make_sample(cache, clips["a"], "a")])
    assert batch["ids"] == ["a"] and batch["input_ids"].shape[0] == 1
    assert batch["skipped"] == [("bad", "unreadable: demo: clip bad (x): cut")]
    empty = MultimodalCollator(processor)([skip])
    assert empty["ids"] == [] and empty["input_ids"] is None and len(empty["skipped"]) == 1


def test_missing_audio_alone_runs_video_only(processor, cache, clips):
    s = make_sample(cache, clips["silent"], "s", audio=False)
    s["audio_missing"] = True
    batch = MultimodalCollator(processor)([s])
    ref = processor(text=[prompt(processor, "what a lovely day", ("text", "video"))],
                    videos=[frames(cache, clips["silent"])], fps=2.0, return_tensors="pt", padding=True)
    assert_same(batch, ref)
    assert batch["use_audio_in_video"] is False and batch["silent_audio"] == []


def test_missing_audio_next_to_audio_gets_a_silent_track(processor, cache, clips):
    s = make_sample(cache, clips["silent"], "s", audio=False)
    s["audio_missing"] = True
    batch = MultimodalCollator(processor)([make_sample(cache, clips["a"], "a"), s])
    # one flag for the batch: the silent clip is interleaved with 2.0 s of zeros
    ref = processor(text=[prompt(processor, "what a lovely day"),
                          prompt(processor, "what a lovely day", ("text", "video"))],
                    videos=[frames(cache, clips["a"]), frames(cache, clips["silent"])],
                    audio=[decode_audio(clips["a"]), np.zeros(32000, np.float32)], audio_from_video_indices=[0, 1],
                    load_audio_from_video=True, fps=2.0, audio_kwargs={"max_length": AUDIO_SAMPLES},
                    return_tensors="pt", padding=True)
    # The silent track is the video's 2.0 s (200 mel frames) next to the real track's 205: the processor
    # pads both to one length, the collator computes each at its own and zero-pads, so the silent row
    # matches where its mask is set and is zero beyond.
    silent_frames = int(batch["feature_attention_mask"][1].sum())
    assert silent_frames == 200
    feats, ref_feats = batch.pop("input_features"), ref.pop("input_features")
    assert torch.equal(feats[0], ref_feats[0]) and torch.equal(feats[1, :, :200], ref_feats[1, :, :200])
    assert feats[1, :, 200:].abs().sum() == 0
    assert_same(batch, ref)
    assert batch["use_audio_in_video"] is True and batch["silent_audio"] == ["s"]


def test_modalities_mismatch_is_an_error(processor, cache, clips):
    with pytest.raises(ValueError, match="carries audio features but audio is off"):
        MultimodalCollator(processor, modalities=("text", "video"))([make_sample(cache, clips["a"], "a")])


def test_batch_runs_through_the_tiny_thinker(processor, cache, clips, tiny_dir):
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(tiny_dir).eval()
    samples = [make_sample(cache, clips["a"], "a"), make_sample(cache, clips["long"], "long")]
    batch = MultimodalCollator(processor, targets={"a": "<score>0.4</score>", "long": "<score>-1</score>"})(samples)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels", *MEDIA_KEYS)}
    with torch.no_grad():
        out = model(**inputs, use_audio_in_video=batch["use_audio_in_video"])
    assert torch.isfinite(out.loss)


def test_the_conflict_column_reaches_the_batch(processor):
    """The label file's conflict flag rides with the unimodal labels (msa.evaluation's subsets read it); a
    frame without the column, or a sample built by hand, says NaN (unknown)."""
    import pandas as pd

    from msa.data.dataset import MSADataset

    frame = pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "label": [0.6, -0.2], "label_T": [-0.4, 0.2],
                          "label_A": [0.6, 0.0], "label_V": [0.8, -0.2], "conflict": [1.0, 0.0], "path": ["-", "-"]})
    collate = MultimodalCollator(processor, modalities=("text",))
    batch = collate([MSADataset(frame, "demo", modalities=("text",))[i] for i in (0, 1)])
    assert batch["conflict"].tolist() == [1.0, 0.0] and batch["label_T"].tolist() == [-0.4, 0.2]
    no_column = MSADataset(frame.drop(columns="conflict"), "demo", modalities=("text",))
    assert math.isnan(collate([no_column[0]])["conflict"][0])
