"""PyAV decoding (frame rule, resampling, bad files) and the processed-media cache."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from data_fixtures import clips, make_clip, processor  # noqa: F401  (pytest fixtures)

from msa.data import media
from msa.data.cache import MediaCache, decode_entry, encode_entry
from msa.data.media import MediaError, NoAudioError, decode_audio, decode_video, probe_video


# -- decode_video ------------------------------------------------------------------------------------

def test_two_seconds_at_2fps_gives_4_frames_spread_over_the_clip(clips):
    frames = decode_video(clips["a"])
    assert frames.shape == (4, 64, 64, 3) and frames.dtype == np.uint8
    # 20 frames, linspace(0, 19, 4).round() = [0, 6, 13, 19]; red = 20 * i % 256 = [0, 120, 4, 124]
    # (H.264 moves each value by a step or two)
    assert np.abs(frames[:, 32, 32, 0].astype(int) - [0, 120, 4, 124]).max() <= 3


def test_3_3_seconds_gives_6_frames(clips):
    # 33 frames at 10 fps = 3.3 s; 3.3 * 2 = 6.6 -> even floor 6
    assert probe_video(clips["long"]).total_frames == 33
    assert decode_video(clips["long"]).shape[0] == 6


def test_fps_and_frame_bounds(clips):
    assert decode_video(clips["a"], fps=5.0).shape[0] == 10  # 2 s * 5 fps
    assert decode_video(clips["a"], fps=0.5).shape[0] == 4  # 1 -> min_frames 4
    assert decode_video(clips["a"], fps=5.0, max_frames=6).shape[0] == 6


# -- decode_audio ------------------------------------------------------------------------------------

def test_audio_is_16k_mono_float32_of_the_clip_with_aac_padding(clips):
    audio = decode_audio(clips["a"])
    # 2.0 s * 16000 = 32000 samples, in 1024-sample AAC frames: ceil(32000 / 1024) = 32 frames = 32768
    # samples, all of which ffmpeg's reader (and so the reference, librosa.load) returns
    assert audio.shape == (32768,) and audio.dtype == np.float32
    t = np.arange(32000) / 16000
    assert np.corrcoef(audio[:32000], np.sin(2 * np.pi * 440 * t))[0, 1] > 0.999
    assert np.abs(audio[32200:]).max() < 0.05  # the padding decodes to (near) silence


def test_audio_from_44k_stereo_is_resampled_and_averaged(clips):
    audio = decode_audio(clips["stereo44"])
    # 88200 samples -> 87 AAC frames = 89088 samples at 44.1 kHz -> ceil(89088 * 16000 / 44100 = 32322.1)
    assert audio.shape == (32323,)
    # both channels carry 0.3 * sin: their mean keeps the 0.3 amplitude (ffmpeg's downmix would give 0.42)
    assert 0.28 < np.abs(audio[1000:-1000]).max() < 0.32


def test_max_seconds_cuts_the_audio(clips):
    assert decode_audio(clips["a"], max_seconds=1.0).shape == (16000,)


# -- bad inputs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, kind, cls", [
    ("truncated", "unreadable", MediaError), ("empty", "empty", MediaError),
    ("audio_only", "no_video", MediaError),
])
def test_bad_video_files(clips, name, kind, cls):
    with pytest.raises(cls) as err:
        decode_video(clips[name])
    assert err.value.kind == kind and str(clips[name]) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="file not found") as err:
        decode_video(tmp_path / "nope.mp4")
    assert err.value.kind == "missing"


def test_no_audio_track_is_its_own_error(clips):
    with pytest.raises(NoAudioError) as err:
        decode_audio(clips["silent"])
    assert err.value.kind == "no_audio" and isinstance(err.value, MediaError)
    assert decode_video(clips["silent"]).shape[0] == 4  # the video is fine


def test_error_context_names_dataset_clip_and_file_and_pickles(clips):
    try:
        decode_audio(clips["silent"])
    except NoAudioError as exc:
        err = exc.with_context(dataset="sims", clip_id="video_0001$_$0001")
    assert str(err).startswith("sims: clip video_0001$_$0001 (") and str(clips["silent"]) in str(err)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is NoAudioError and str(back) == str(err) and back.kind == "no_audio"


# -- cache ---------------------------------------------------------------------------------------------

def _forbid(monkeypatch, processor):
    """Make decoding and the processor fail: a warm read needs neither (the video store's uint8 patches
    are only converted and normalised)."""
    def boom(*a, **k):
        raise AssertionError("the warm path decoded or processed again")

    for name in ("decode_video", "decode_audio", "probe_video", "sample_video", "resize_frames"):
        monkeypatch.setattr(media, name, boom)
    monkeypatch.setattr(processor, "_process_videos", boom)
    monkeypatch.setattr(processor, "_process_audio", boom)


def test_cold_then_warm_reads_without_decoding(tmp_path, clips, processor, monkeypatch):
    cold = MediaCache(processor, tmp_path)
    v, a = cold.video(clips["a"]), cold.audio(clips["a"])
    # 4 frames of 64x64 -> resized to 336x336 (the processor's min 128*28*28 pixels): grid 2 x 24 x 24
    assert v["video_grid_thw"].tolist() == [[2, 24, 24]] and v["pixel_values_videos"].shape == (2 * 24 * 24, 1176)
    assert v["video_second_per_grid"] == 1.0 and v["seconds"] == 2.0  # temporal patch 2 / fps 2
    # audio padded to the clip (to a whole hop), not to 300 s: ceil(32768 samples / hop 160) = 205 frames
    assert a["input_features"].shape == (1, 128, 205) and a["feature_attention_mask"].sum() == 205
    warm = MediaCache(processor, tmp_path)  # a new process: nothing in memory
    _forbid(monkeypatch, processor)
    v2, a2 = warm.video(clips["a"]), warm.audio(clips["a"])
    assert torch.equal(v2["pixel_values_videos"], v["pixel_values_videos"])
    assert torch.equal(a2["input_features"], a["input_features"])
    assert warm.stats == {"video/hit": 1, "audio/hit": 1}


def test_changed_settings_do_not_reuse_entries(tmp_path, clips, processor):
    base = MediaCache(processor, tmp_path)
    base.video(clips["a"])
    assert base.key("video", clips["a"]) != MediaCache(processor, tmp_path, fps=1.0).key("video", clips["a"])
    assert base.key("audio", clips["a"]) != MediaCache(processor, tmp_path, max_audio_seconds=1.0).key(
        "audio", clips["a"])
    assert base.key("audio", clips["a"]) == MediaCache(processor, tmp_path, fps=1.0).key("audio", clips["a"])
    other = MediaCache(processor, tmp_path, fps=5.0)
    # 10 of the 20 frames: sampled at 5 fps, 2 frames / 5 fps = 0.4 s a grid: computed, not the 2 fps entry
    assert other.video(clips["a"])["video_second_per_grid"] == 0.4
    assert other.stats["video/miss"] == 1
    # a processor whose video settings differ gets its own entries too
    import copy
    changed = copy.deepcopy(processor)
    changed.video_processor.max_pixels = 200_000
    assert MediaCache(changed, tmp_path).key("video", clips["a"]) != base.key("video", clips["a"])
    # and the audio key does not depend on the video settings
    assert MediaCache(changed, tmp_path).key("audio", clips["a"]) == base.key("audio", clips["a"])


def test_content_change_gets_a_new_key(tmp_path, clips, processor):
    clip = make_clip(tmp_path / "c.mp4", 2.0, tone=500.0)
    cache = MediaCache(processor, tmp_path / "cache")
    before = cache.key("audio", clip)
    make_clip(clip, 2.0, tone=600.0)  # same path, new bytes (size or mtime changes)
    assert cache.key("audio", clip) != before


def test_corrupt_entry_is_detected_and_recomputed(tmp_path, clips, processor):
    cache = MediaCache(processor, tmp_path)
    good = cache.audio(clips["b"])
    entry = next((tmp_path / "audio").rglob("*.pt"))
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the payload
    entry.write_bytes(bytes(data))
    fresh = MediaCache(processor, tmp_path)
    again = fresh.audio(clips["b"])
    assert fresh.stats["audio/corrupt"] == 1 and fresh.stats["audio/miss"] == 1
    assert torch.equal(again["input_features"], good["input_features"])
    assert decode_entry(entry.read_bytes())["input_features"].shape == good["input_features"].shape  # rewritten


def test_entry_roundtrip_rejects_truncation():
    blob = encode_entry({"x": torch.arange(3)})
    assert decode_entry(blob)["x"].tolist() == [0, 1, 2]
    from msa.data.cache import CorruptEntry
    with pytest.raises(CorruptEntry):
        decode_entry(blob[:-5])


def test_broken_clip_is_cached_as_an_error(tmp_path, clips, processor, monkeypatch):
    with pytest.raises(MediaError):
        MediaCache(processor, tmp_path).video(clips["truncated"])
    with pytest.raises(NoAudioError):
        MediaCache(processor, tmp_path).audio(clips["silent"])
    warm = MediaCache(processor, tmp_path)
    _forbid(monkeypatch, processor)
    with pytest.raises(MediaError, match="cannot open the container") as err:
        warm.video(clips["truncated"])
    assert err.value.kind == "unreadable"
    with pytest.raises(NoAudioError):
        warm.audio(clips["silent"])
    assert warm.stats == {"video/error_hit": 1, "audio/error_hit": 1}


def test_no_disk_cache_computes_every_time(clips, processor):
    cache = MediaCache(processor, None)
    cache.audio(clips["a"])
    cache.audio(clips["a"])
    assert cache.stats == {"audio/decode": 2}


def test_video_uses_the_reference_total_pixel_cap(clips, processor):
    """qwen-omni-utils shares a total pixel budget over a video's frames; transformers does it only when
    asked. A short clip is far below the budget, so its frames keep the per-frame size."""
    cache = MediaCache(processor, None)
    assert cache._merged["videos_kwargs"]["cap_pixels_per_frame"] is True
    assert cache.video(clips["a"])["video_grid_thw"].shape == (1, 3)
