"""Media of clips in real-world formats, against Qwen2.5-Omni's own preprocessing (qwen-omni-utils).

The clips (``tests/real_clips.py``) are 29.97 fps 640x360 H.264 with 44.1 kHz stereo AAC, 25 fps with
48 kHz stereo, a clip without audio, a variable-frame-rate clip, and a long clip (40 s: slow; a 6 s
one with a binding frame cap by default). Tolerances, with what was measured against the real
qwen-omni-utils 0.0.9 (ffmpeg 5.1, torchcodec 0.17; experiments/media_reference/compare.py):

* frame indices, resized grid, ``video_second_per_grid``: exact; normalised pixels: exact (measured 0);
* waveform: same length, max |diff| < 1e-4 (the reference rounds through 16-bit PCM: 1 LSB = 3.1e-5;
  measured 1.4e-5 to 2.0e-5);
* log-mel: max |diff| < 1 dB over every bin and frame (measured 0.10 to 0.49 dB: 16-bit rounding in
  quiet bins), < 0.1 dB in the top bins, 6.6-7.8 kHz (measured 0.02 dB; PyAV's resampler, the old
  path, was 17 to 19 dB off there); audio token count: exact.
"""

from __future__ import annotations

import copy
from fractions import Fraction

import numpy as np
import pytest
import torch
from data_fixtures import processor  # noqa: F401  (pytest fixture)
from real_clips import (read_index, reference_audio, reference_frame_size, reference_indices, reference_nframes,
                        reference_resize, write_clip)

from msa.data import media
from msa.data.cache import MediaCache
from msa.data.media import NoAudioError, decode_audio, decode_video, probe_video

NTSC = Fraction(30000, 1001)
TOKENS_PER_SECOND = 25  # Qwen2.5-Omni's audio encoder, and TMRoPE's position_id_per_seconds
TOP_BINS_HZ = (6600.0, 7800.0)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    d = tmp_path_factory.mktemp("real")
    return {
        "ntsc": write_clip(d / "ntsc.mp4", 2.5),  # 75 frames, 640x360, 44.1 kHz stereo
        "pal48": write_clip(d / "pal48.mp4", 2.0, fps=25, width=480, height=270, audio_rate=48000),
        "no_audio": write_clip(d / "no_audio.mp4", 2.0, width=320, height=180, audio_rate=None),
        "vfr": write_clip(d / "vfr.mp4", 4.0, width=160, height=90, vfr=True),
        "six": write_clip(d / "six.mp4", 6.0, width=112, height=64, channels=1, audio_bitrate=32000, crf=35),
    }


@pytest.fixture(scope="module")
def cache(processor):
    return MediaCache(processor, None)


def _reference_video(path, n_written: int | None = None):
    """(total frames, average fps, sampled indices, sampled fps) as qwen-omni-utils reads the clip."""
    info = probe_video(path)  # the header's frame count and average rate: what torchcodec and decord read
    total = n_written if n_written is not None else info.total_frames
    n = reference_nframes(total, info.fps)
    return total, info.fps, reference_indices(total, n), n / total * info.fps


# -- video -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, written", [("ntsc", 75), ("pal48", 50), ("no_audio", 60), ("vfr", None)])
def test_sampled_frames_are_the_reference_frames(real, name, written):
    total, fps, indices, _ = _reference_video(real[name], written)
    if written is not None:
        assert probe_video(real[name]).total_frames == written
    frames = decode_video(real[name])
    # every frame shows its own index: the decoded frames are exactly the ones the rule picks
    assert [read_index(f) for f in frames] == indices


def test_ntsc_frame_rule_by_hand(real):
    # 75 frames at 29.97 fps = 2.5025 s; * 2 fps = 5.005 -> 4 frames; linspace(0, 74, 4) = 0, 24.67, 49.33, 74
    assert [read_index(f) for f in decode_video(real["ntsc"])] == [0, 25, 49, 74]


@pytest.mark.parametrize("name", ["ntsc", "pal48", "no_audio", "vfr"])
def test_grid_pixels_and_time_step_match_the_reference(real, cache, processor, name):
    total, fps, indices, sample_fps = _reference_video(real[name])
    out = cache.video(real[name])
    frames = decode_video(real[name])
    h, w = reference_frame_size(frames.shape[1], frames.shape[2], len(indices))
    assert out["video_grid_thw"].tolist() == [[len(indices) // 2, h // 14, w // 14]]
    assert out["video_second_per_grid"] == pytest.approx(2 / sample_fps, rel=1e-12)
    # the reference hands the processor frames it already resized (on uint8); the processor keeps that size
    ref = processor.video_processor(videos=[reference_resize(frames, h, w)], return_tensors="pt")
    assert torch.equal(out["pixel_values_videos"], ref["pixel_values_videos"])


def test_ntsc_grid_by_hand(real, cache):
    out = cache.video(real["ntsc"])
    # 360x640 -> round to multiples of 28: 364 x 644 (234416 pixels, inside 128..768 x 28^2): 13 x 23 tokens
    assert out["video_grid_thw"].tolist() == [[2, 26, 46]]
    # 4 of 75 frames at 29.97 fps: sampled at 4 / 75 * 29.97 = 1.5984 fps, a grid of 2 frames = 1.2513 s
    assert out["video_second_per_grid"] == pytest.approx(2 / (4 / 75 * 30000 / 1001))


def test_variable_frame_rate_clip_ends_where_it_ends(real, cache):
    """A VFR clip's frames are spread over its frame indices, not its time, so the sampled rate comes from
    the average rate; the video's last grid then ends at the clip's real end on the time axis."""
    info = probe_video(real["vfr"])
    out = cache.video(real["vfr"])
    grid_t = out["video_grid_thw"][0, 0].item()
    assert grid_t * out["video_second_per_grid"] == pytest.approx(info.duration, rel=1e-9)
    assert abs(info.duration - 4.0) < 0.2  # ~4 s written; 2 fps would have put its end at grid_t * 1.0
    assert abs(grid_t * 1.0 - info.duration) > 0.4


@pytest.mark.parametrize("size, frames", [((360, 640), 8), ((1080, 1920), 768), ((1080, 1920), 301),
                                          ((90, 160), 80), ((64, 64), 4), ((720, 1280), 400), ((480, 270), 12)])
def test_frame_size_is_the_reference_rule(size, frames):
    assert media.frame_size(*size, frames) == reference_frame_size(*size, frames)


def test_frame_count_rule_matches_the_reference_on_a_grid():
    for total in (2, 3, 5, 20, 75, 1199, 3000, 40000):
        for fps in (10.0, 25.0, float(NTSC), 60.0):
            assert media.num_frames(total, fps) == reference_nframes(total, fps), (total, fps)


def test_a_one_frame_clip_is_an_error(tmp_path):
    clip = write_clip(tmp_path / "one.mp4", 1 / 25, fps=25, width=64, height=64, audio_rate=None)
    with pytest.raises(media.MediaError, match="needs at least 2") as err:
        decode_video(clip)
    assert err.value.kind == "empty"


# -- audio -----------------------------------------------------------------------------------------------

def _mel_db(processor, ours, ref, frames):
    import librosa

    fe = processor.feature_extractor
    diff = (ours[0, :, :frames] - ref[0, :, :frames]).abs().numpy() * 40.0  # 1 feature unit = 4 decades = 40 dB
    freqs = librosa.mel_frequencies(fe.feature_size + 2, fmin=0.0, fmax=fe.sampling_rate / 2)[1:-1]
    top = (freqs >= TOP_BINS_HZ[0]) & (freqs <= TOP_BINS_HZ[1])
    return diff.max(), diff[top].max()


@pytest.mark.parametrize("name, rate, channels", [("ntsc", 44100, 2), ("pal48", 48000, 2), ("vfr", 44100, 2)])
def test_audio_and_features_match_librosa_load(real, cache, processor, tmp_path, name, rate, channels):
    ref = reference_audio(real[name], tmp_path)
    ours = decode_audio(real[name])
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-4
    feats = cache.audio(real[name])
    # The reference pads to Whisper's 300 s; zeros past the end change no frame inside the mask, so a
    # second of zeros stands in for them here (and keeps the test fast).
    ref_feats = processor.feature_extractor([ref], max_length=ref.size + 16000, padding="max_length",
                                            return_attention_mask=True, return_tensors="pt")
    n = int(feats["feature_attention_mask"].sum())
    assert n == int(ref_feats["attention_mask"].sum())
    every, top = _mel_db(processor, feats["input_features"], ref_feats["input_features"], n)
    assert every < 1.0 and top < 0.1


def test_audio_length_by_hand(real):
    # 2.5 s at 44.1 kHz = 110250 samples -> 108 AAC frames of 1024 = 110592 samples, all kept
    # -> 110592 * 16000 / 44100 = 40124.08 -> 40125 samples at 16 kHz
    assert decode_audio(real["ntsc"]).shape == (40125,)


def test_stereo_is_the_mean_of_its_channels(real, tmp_path):
    from real_clips import ffmpeg_pcm

    import librosa

    pcm, rate = ffmpeg_pcm(real["pal48"])  # [S, 2] int16
    left = librosa.resample(pcm[:, 0].astype(np.float32) / 32768, orig_sr=rate, target_sr=16000, res_type="soxr_hq")
    right = librosa.resample(pcm[:, 1].astype(np.float32) / 32768, orig_sr=rate, target_sr=16000, res_type="soxr_hq")
    # resampling is linear: the mean of the resampled channels is the resampled mean
    assert np.abs(decode_audio(real["pal48"]) - (left + right) / 2).max() < 1e-4


def test_clip_without_audio(real, cache):
    with pytest.raises(NoAudioError):
        cache.audio(real["no_audio"])
    assert cache.video(real["no_audio"])["video_grid_thw"].shape == (1, 3)


def test_audio_is_kept_whole_up_to_the_feature_extractors_window(real, processor):
    assert MediaCache(processor, None).max_audio_seconds == 300.0  # Whisper's chunk_length for Qwen2.5-Omni
    short = copy.deepcopy(processor)
    short.feature_extractor.chunk_length, short.feature_extractor.n_samples = 1, 16000
    cache = MediaCache(short, None)
    assert cache.max_audio_seconds == 1.0
    out = cache.audio(real["six"])  # 6 s clip, cut at the 1 s window like the reference's processor call
    assert out["input_features"].shape == (1, 128, 100) and out["seconds"] == 1.0
    assert MediaCache(processor, None, max_audio_seconds=2.0).max_audio_seconds == 2.0


def test_cut_audio_equals_the_start_of_the_whole_track(real):
    whole = decode_audio(real["six"])
    cut = decode_audio(real["six"], max_seconds=2.0)
    assert cut.shape == (32000,) and np.array_equal(cut, whole[:32000])


# -- video and audio on one time axis --------------------------------------------------------------------

def _ends(cache, path):
    video = cache.video(path)
    audio = cache.audio(path)
    from transformers.models.qwen2_5_omni.processing_qwen2_5_omni import _get_feat_extract_output_lengths

    tokens = int(_get_feat_extract_output_lengths(audio["feature_attention_mask"].sum(-1))[0])
    return video["video_grid_thw"][0, 0].item() * video["video_second_per_grid"], tokens / TOKENS_PER_SECOND


def test_capped_frames_keep_video_and_audio_aligned(real, processor):
    """With max_frames binding, the frames are further apart: the time step grows to match, so the video's
    end stays at the clip's end instead of drifting ahead of the audio."""
    cache = MediaCache(processor, None, max_frames=4, video_min_pixels=56 * 56, video_max_pixels=112 * 112)
    video_end, audio_end = _ends(cache, real["six"])
    # 4 of 180 frames: 4 / 180 * 29.97 = 0.666 fps, 2 grids of 3.003 s = 6.006 s; audio 6.0 s (+ AAC tail)
    assert video_end == pytest.approx(6.006, abs=1e-9)
    assert abs(video_end - audio_end) < 0.05


@pytest.mark.slow
def test_forty_second_clip_video_and_audio_end_together(tmp_path, processor):
    clip = write_clip(tmp_path / "long.mp4", 40.0, width=160, height=90, channels=1, audio_bitrate=32000, crf=35)
    cache = MediaCache(processor, None)
    frames = decode_video(clip)
    # 1199 frames at 29.97 fps = 40.007 s; * 2 = 80.02 -> 80 frames (the old 64-frame cap put the end at 32 s)
    assert frames.shape[0] == 80
    assert [read_index(f) for f in frames] == reference_indices(1199, 80)
    video_end, audio_end = _ends(cache, clip)
    assert video_end == pytest.approx(1199 / float(NTSC), abs=1e-9)
    # 40 s of 44.1 kHz audio, all of it (the old 30 s cut dropped the last 10 s): 1000 tokens
    assert audio_end == 40.0
    assert abs(video_end - audio_end) < 1 / TOKENS_PER_SECOND


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 8000])
def test_resample_is_librosas_default(rate):
    import librosa

    y = np.random.default_rng(rate).standard_normal(rate // 3 + 7).astype(np.float32)
    ours = media.resample(y, rate, 16000)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, librosa.resample(y, orig_sr=rate, target_sr=16000, res_type="soxr_hq"))
