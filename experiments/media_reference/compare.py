"""Compare the project's media preprocessing with qwen-omni-utils' own, on clips in real-world formats.

    python experiments/media_reference/compare.py [--tiny-dir DIR] [--clips DIR]

Needs what qwen-omni-utils needs to read local files: ``pip install qwen-omni-utils torchcodec`` and an
``ffmpeg`` binary on the PATH (its audio goes through audioread's ffmpeg reader). It writes the clips
of ``tests/real_clips.py`` (29.97 fps 640x360 with 44.1 kHz stereo; 25 fps with 48 kHz stereo; a 40 s
low-resolution clip; a variable-frame-rate clip; the demo's 2 s 10 fps 64x64 16 kHz mono format),
runs both pipelines through the tiny model's real Qwen2.5-Omni processor, and prints, per clip:

* frames: count and the sampled frame indices (read back from the index drawn in each frame), the
  resized grid, ``video_second_per_grid`` and the largest normalised pixel difference;
* audio: sample count, waveform difference, audio token count, the log-mel difference in dB over the
  whole spectrum and over the top bins (6.6-7.8 kHz);
* the clip's end on the TMRoPE time axis: the video's (grid_t x second_per_grid) and the audio's
  (tokens / 25) in seconds.

The reference calls ``process_mm_info`` and then the processor the way Qwen's README does
(``fps`` = the sample rate qwen-omni-utils reports, audio padded to the feature extractor's 300 s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from real_clips import read_index, write_clip  # noqa: E402

from msa.data.cache import MediaCache  # noqa: E402
from msa.data.media import decode_audio, decode_video  # noqa: E402

TOP_BINS_HZ = (6600.0, 7800.0)
TOKENS_PER_SECOND = 25


def clips(folder: Path) -> dict[str, Path]:
    from data_fixtures import make_clip

    out = {
        "ntsc_640x360_44k_stereo": write_clip(folder / "ntsc.mp4", 4.0),
        "pal_480x270_48k_stereo": write_clip(folder / "pal.mp4", 4.0, fps=25, width=480, height=270,
                                             audio_rate=48000),
        "long_40s_160x90_44k_mono": write_clip(folder / "long.mp4", 40.0, width=160, height=90, channels=1,
                                               audio_bitrate=32000, crf=35),
        "vfr_320x180_44k_stereo": write_clip(folder / "vfr.mp4", 6.0, width=320, height=180, vfr=True),
        "no_audio_640x360": write_clip(folder / "noaudio.mp4", 3.0, audio_rate=None),
        "demo_64x64_10fps_16k_mono": make_clip(folder / "demo.mp4", 2.0),
    }
    return out


def mel_db_diff(proc, a: np.ndarray, b: np.ndarray, frames: int) -> tuple[float, float]:
    """Largest |dB| difference of two Whisper log-mels over ``frames`` frames: all bins, top bins."""
    import librosa

    fe = proc.feature_extractor
    # Whisper's features are log10 power, clamped 8 decades below the max, then (x + 4) / 4: 1 unit = 40 dB.
    diff = np.abs(a[:, :frames] - b[:, :frames]) * 40.0
    freqs = librosa.mel_frequencies(fe.feature_size + 2, fmin=0.0, fmax=fe.sampling_rate / 2, htk=False)[1:-1]
    top = (freqs >= TOP_BINS_HZ[0]) & (freqs <= TOP_BINS_HZ[1])
    return float(diff.max()), float(diff[top].max())


def reference(path: Path, proc, has_audio: bool):
    from qwen_omni_utils import process_mm_info

    conv = [{"role": "user", "content": [{"type": "video", "video": str(path)}]}]
    audios, _, videos, kwargs = process_mm_info(conv, use_audio_in_video=has_audio, return_video_kwargs=True)
    fps = kwargs["fps"][0]
    v = proc.video_processor(videos=videos, return_tensors="pt")
    out = dict(frames=videos[0], grid=v["video_grid_thw"][0].tolist(), pixels=v["pixel_values_videos"],
               spg=proc.video_processor.temporal_patch_size / fps)
    if has_audio:
        wave = audios[0]
        a = proc.feature_extractor([wave], padding="max_length", return_attention_mask=True, return_tensors="pt")
        out.update(wave=wave, features=a["input_features"][0].numpy(), feat_len=int(a["attention_mask"].sum()))
    return out


def ours(path: Path, proc, cache: MediaCache, has_audio: bool):
    frames = decode_video(path, cache.fps, cache.min_frames, cache.max_frames)
    v = cache.video(path)
    out = dict(frames=frames, grid=v["video_grid_thw"][0].tolist(), pixels=v["pixel_values_videos"],
               spg=float(v["video_second_per_grid"]))
    if has_audio:
        limit = getattr(cache, "max_audio_seconds", None)
        wave = decode_audio(path, cache.sample_rate, limit)
        a = cache.audio(path)
        out.update(wave=wave, features=a["input_features"][0].numpy(), feat_len=int(a["feature_attention_mask"].sum()))
    return out


def audio_tokens(feat_len: int) -> int:
    from transformers.models.qwen2_5_omni.processing_qwen2_5_omni import _get_feat_extract_output_lengths

    return int(_get_feat_extract_output_lengths(torch.tensor([feat_len]))[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-dir", default=None, help="a built tiny model (default: build it in the cache)")
    parser.add_argument("--clips", default=None, help="where to write the clips (default: a temporary folder)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from transformers import AutoProcessor

    from msa.models.tiny import ensure_tiny

    proc = AutoProcessor.from_pretrained(args.tiny_dir or ensure_tiny(size="test"))
    cfg = _data_settings()
    cache = MediaCache(proc, None, **cfg)
    print(f"project settings: {cfg}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.clips or tmp)
        for name, path in clips(folder).items():
            has_audio = not name.startswith("no_audio")
            ref, our = reference(path, proc, has_audio), ours(path, proc, cache, has_audio)
            ref_idx = [read_index(f.permute(1, 2, 0).numpy().astype(np.uint8)) for f in ref["frames"]]
            our_idx = [read_index(f) for f in our["frames"]]
            print(f"\n== {name}")
            if name.startswith("demo"):  # the demo's frames carry no drawn index
                print(f"  frames: ours {len(our_idx)} ref {len(ref_idx)}")
            else:
                print(f"  frames: ours {len(our_idx)} ref {len(ref_idx)}; indices equal: {our_idx == ref_idx}"
                      f" (ours first/last {our_idx[:2]}..{our_idx[-2:]}, ref {ref_idx[:2]}..{ref_idx[-2:]})")
            print(f"  grid thw: ours {our['grid']} ref {ref['grid']}; second_per_grid ours {our['spg']:.5f}"
                  f" ref {ref['spg']:.5f}")
            if our["pixels"].shape == ref["pixels"].shape:
                d = (our["pixels"] - ref["pixels"]).abs()
                print(f"  pixels (normalised): max |diff| {d.max():.4f}, mean {d.mean():.5f}")
            else:
                print(f"  pixels: shapes differ {tuple(our['pixels'].shape)} vs {tuple(ref['pixels'].shape)}")
            video_end = our["grid"][0] * our["spg"]
            ref_video_end = ref["grid"][0] * ref["spg"]
            if not has_audio:
                print(f"  video end on the time axis: ours {video_end:.3f} s ref {ref_video_end:.3f} s")
                continue
            n = min(our["wave"].size, ref["wave"].size)
            w = np.abs(our["wave"][:n] - ref["wave"][:n])
            ot, rt = audio_tokens(our["feat_len"]), audio_tokens(ref["feat_len"])
            frames = min(our["feat_len"], ref["feat_len"])
            db_all, db_top = mel_db_diff(proc, our["features"], ref["features"], frames)
            db_all_in, db_top_in = mel_db_diff(proc, our["features"], ref["features"], max(frames - 3, 1))
            print(f"  audio samples: ours {our['wave'].size} ref {ref['wave'].size}; waveform max |diff| {w.max():.2e}"
                  f" rms {np.sqrt(np.mean(w ** 2)):.2e}")
            print(f"  audio tokens: ours {ot} ref {rt}; log-mel max |diff| {db_all:.2f} dB (top bins {db_top:.2f} dB);"
                  f" without the last 3 frames {db_all_in:.2f} dB (top {db_top_in:.2f} dB)")
            print(f"  end on the time axis: video ours {video_end:.3f} s ref {ref_video_end:.3f} s;"
                  f" audio ours {ot / TOKENS_PER_SECOND:.3f} s ref {rt / TOKENS_PER_SECOND:.3f} s")


def _data_settings() -> dict:
    """fps / max_frames / max_audio_seconds from conf/data/base.yaml (what a run uses)."""
    from omegaconf import OmegaConf

    base = OmegaConf.load(ROOT / "conf" / "data" / "base.yaml")
    return {k: base[k] for k in ("fps", "max_frames", "max_audio_seconds") if k in base}


if __name__ == "__main__":
    main()
