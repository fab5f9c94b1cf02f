"""Build the tiny model from nothing and time one multimodal training/generation round trip.

    python experiments/benchmarks/bench_tiny.py [--size test|demo]

Prints: build time (fresh cache), load time, processor time for one real mp4 clip (frames + its
audio track), forward + backward time, and a 32-token greedy generate. Targets (issue: foundation):
build < 60 s; forward + backward + generate < 5 s on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="test")
    args = ap.parse_args()
    from msa.data.media import decode_audio, decode_video
    from msa.data.synthetic import generate
    from msa.dc import build_conversation
    from msa.models import load_policy
    from msa.models.tiny import ensure_tiny

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ensure_tiny(tmp, size=args.size)
        t_build = time.perf_counter() - t0
        cfg = OmegaConf.create(dict(tiny_size=args.size, cache_dir=tmp, dtype="float32", attn_implementation="sdpa",
                                    lora=dict(enabled=True, r=8, alpha=16, dropout=0.0), use_audio_in_video=True))
        t0 = time.perf_counter()
        policy = load_policy(cfg)
        t_load = time.perf_counter() - t0
        root = generate(Path(tmp) / "clips", n_clips=3, seed=0)
        clip = next((root / "Raw").rglob("*.mp4"))
        t0 = time.perf_counter()
        frames, audio = decode_video(clip), decode_audio(clip)
        conv = build_conversation("I really like this one.", "demo")
        text = policy.processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
        inputs = policy.processor(text=[text + "<polarity>positive</polarity>"], videos=[frames], audio=[audio],
                                  audio_from_video_indices=[0], load_audio_from_video=True, fps=2.0,
                                  audio_kwargs={"max_length": len(audio)}, return_tensors="pt", padding=True)
        t_proc = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = policy.model(**inputs, labels=inputs["input_ids"], use_audio_in_video=True)
        out.loss.backward()
        t_fb = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            policy.model.generate(**inputs, use_audio_in_video=True, max_new_tokens=32, min_new_tokens=32,
                                  do_sample=False, pad_token_id=policy.tokenizer.pad_token_id)
        t_gen = time.perf_counter() - t0
    n_params = sum(p.numel() for p in policy.model.parameters())
    print(f"tiny[{args.size}] params={n_params:,} seq_len={inputs['input_ids'].shape[1]}")
    print(f"build {t_build:.2f}s | load {t_load:.2f}s | processor {t_proc:.2f}s | forward+backward {t_fb:.3f}s | "
          f"generate32 {t_gen:.3f}s | fwd+bwd+gen {t_fb + t_gen:.3f}s")


if __name__ == "__main__":
    main()
