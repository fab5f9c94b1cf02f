"""GRPO step time with the encoder outputs reused vs recomputed, and generated tokens/s.

    python experiments/benchmarks/bench_grpo.py [--steps 4] [--repeats 3] [--size test] [--prompts 2] [--G 4]

Runs the same GRPO steps (same seed, same prompts) twice in one process: once encoding each prompt's
video/audio once and reusing the outputs for the G rollouts and every scoring pass
(``grpo.reuse_encoder_outputs=true``), once re-running the towers on every row of every pass. Prints
the mean step time of each and their ratio, and the sampling throughput in generated tokens/s.
On the tiny model the towers are small, so the ratio understates what it is at 7B scale, where the
675M-parameter vision and 640M-parameter audio towers run on hundreds of patches per clip.
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
from omegaconf import OmegaConf


def run(reuse: bool, args, dm) -> tuple[float, float]:
    import msa.stages.grpo as grpo_mod
    from msa.models import load_policy

    torch.manual_seed(0)
    mcfg = OmegaConf.create(dict(tiny_size=args.size, cache_dir=args.cache, dtype="float32", use_audio_in_video=True,
                                 lora=dict(enabled=True, r=8, alpha=16, dropout=0.0)))
    policy = load_policy(mcfg)
    g = OmegaConf.create(dict(num_generations=args.G, temperature=1.0, top_p=1.0, max_new_tokens=args.new_tokens,
                              beta=0.1, epsilon=0.2, epsilon_high=None, num_iterations=1, loss_type="grpo",
                              scale_rewards="group", reward_weights={"format": 1, "polarity": 1, "score": 1},
                              score_form="linear", hard_rule="all_wrong", hard_threshold=None, lr=1e-5,
                              weight_decay=0.0, warmup_steps=0, max_grad_norm=1.0, max_steps=args.steps,
                              reuse_encoder_outputs=reuse, log_completions_every=0, checkpoint_dir="unused"))
    module = grpo_mod.GRPOModule(policy, g, dataset="demo", hint=True, hard=True, out_dir=args.cache)
    # time each step and count sampled tokens
    tokens = {"n": 0, "t": 0.0}
    real_sample = grpo_mod.sample

    def timed_sample(*a, **k):
        t0 = time.perf_counter()
        s = real_sample(*a, **k)
        tokens["t"] += time.perf_counter() - t0
        tokens["n"] += int((s.completion_mask * (1 - s.prefill_mask)).sum())
        return s

    grpo_mod.sample = timed_sample
    times = []

    class Timer(L.Callback):
        def on_train_batch_start(self, *a):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, *a):
            times.append(time.perf_counter() - self.t0)

    trainer = L.Trainer(max_steps=args.steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, accelerator="cpu", callbacks=[Timer()])
    try:
        trainer.fit(module, train_dataloaders=dm.train_dataloader())
    finally:
        grpo_mod.sample = real_sample
    return sum(times[1:]) / max(1, len(times) - 1), tokens["n"] / max(1e-9, tokens["t"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of each mode")
    ap.add_argument("--size", default="test")
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--G", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--full-video", action="store_true", help="Qwen's default frame size (~336x336) instead of 56x56")
    args = ap.parse_args()
    from transformers import AutoProcessor

    from msa.data.datamodule import DemoDataModule
    from msa.models.tiny import default_cache_dir, ensure_tiny

    args.cache = args.cache or str(default_cache_dir())
    proc = AutoProcessor.from_pretrained(ensure_tiny(args.cache, args.size))
    pix = {} if args.full_video else dict(video_min_pixels=3136, video_max_pixels=8192)
    dm = DemoDataModule(f"{args.cache}/data/demo", batch_size=args.prompts, cache_dir=f"{args.cache}/media",
                        shuffle=False, **pix)
    dm.attach_processor(proc)
    dm.prepare_data()
    dm.setup("fit")
    # Alternate the two modes (reuse, re-run, reuse, ...) so that the machine's drift hits both alike;
    # report medians over the repeats and the spread of the per-repeat ratios.
    reuse, plain = [], []
    for _ in range(args.repeats):
        reuse.append(run(True, args, dm))
        plain.append(run(False, args, dm))
    med = statistics.median
    t_reuse, tps_reuse = med(r[0] for r in reuse), med(r[1] for r in reuse)
    t_plain, tps_plain = med(p[0] for p in plain), med(p[1] for p in plain)
    ratios = [p[0] / r[0] for r, p in zip(reuse, plain)]
    print(f"GRPO step (B={args.prompts}, G={args.G}, {args.new_tokens} new tokens, tiny[{args.size}], "
          f"{'full-size' if args.full_video else '56x56'} frames), median over {args.repeats} alternating repeats "
          f"of the mean of {args.steps - 1} steps after the first:")
    print(f"  encoder outputs reused : {t_reuse:.3f} s/step, sampling {tps_reuse:.0f} generated tokens/s")
    print(f"  towers re-run per pass : {t_plain:.3f} s/step, sampling {tps_plain:.0f} generated tokens/s")
    print(f"  speed-up (re-run / reused): {t_plain / t_reuse:.2f}x "
          f"(per repeat: {', '.join(f'{x:.2f}' for x in ratios)})")

if __name__ == "__main__":
    main()
