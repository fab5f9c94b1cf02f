"""One SFT step and a few Hint-GRPO steps at real scale: step times, generated tokens/s, peak GPU memory.

    python experiments/benchmarks/bench_gpu.py                  # GPU: the 7B thinker, random weights, bf16 base,
                                                                 # fp32 LoRA, bf16-mixed, 4 prompts, G=4, 256 new tokens
    python experiments/benchmarks/bench_gpu.py --model tiny --new-tokens 16 --steps 2    # CPU smoke run

The configuration is the project's own (``conf/``, composed as ``python train.py`` would): the
``model`` group (``qwen2_5_omni_7b model.init=random`` needs no checkpoint), the ``trainer`` group
(``gpu``: bf16-mixed) and the demo clips at Qwen's default frame size (``media=qwen``), so the towers see
realistic inputs. Extra Hydra overrides go after ``--``:

    python experiments/benchmarks/bench_gpu.py -- model.attn_implementation=flash_attention_2

The SFT target is a DC answer of typical length (about 120 tokens of reasoning). GRPO runs with the
encoder outputs reused; the first GRPO step (warm-up, allocator growth) is reported apart.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[2]
REASONING = ("Text: the speaker says the film was better than expected and the ending moved them. "
             "Audio: the pitch rises at the end of each phrase and the pace is lively, with no hesitation. "
             "Visual: the mouth corners lift and the brows relax; a smile holds for most of the clip. "
             "Taken together the three cues agree, with the voice and the face a little stronger than the words.")


def compose(model: str, overrides: list[str], out: Path):
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    import msa.config  # noqa: F401  (registers the schema)

    gpu = model != "tiny"
    base = [f"model={'qwen2_5_omni_7b' if gpu else 'tiny'}", "experiment=none", "logger=none",
            "media=qwen"]
    if gpu:
        base += ["model.init=random", "model.dtype=bfloat16", "trainer=gpu"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=base + overrides)
    GlobalHydra.instance().clear()
    OmegaConf.set_struct(cfg, False)
    cfg.paths.output_dir = str(out)
    return cfg


class StepTimer(L.Callback):
    """Wall time of every training step (CUDA synchronised, so GPU work is inside the step)."""

    def __init__(self):
        self.times: list[float] = []

    @staticmethod
    def _sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_batch_start(self, *a):
        self._sync()
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, *a):
        self._sync()
        self.times.append(time.perf_counter() - self.t0)


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="7b", choices=["7b", "tiny"])
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--G", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3, help="GRPO steps (the first is reported apart)")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, after --")
    args = ap.parse_args()

    from msa.dc import format_answer, polarity_of
    from msa.data.datamodule import build_datamodule
    from msa.data.labels import read_labels
    from msa.models import load_policy
    from msa.rl.rollout import sample
    from msa.stages.grpo import GRPOModule
    from msa.stages.sft import SFTModule

    out = Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    cfg = compose(args.model, [f"data.batch_size={args.prompts}", f"grpo.num_generations={args.G}",
                               f"grpo.max_new_tokens={args.new_tokens}", *args.overrides], out)
    policy = load_policy(cfg.model)
    n_params = sum(p.numel() for p in policy.model.parameters())
    n_train = sum(p.numel() for p in policy.model.parameters() if p.requires_grad)
    print(f"model: {cfg.model.name} ({policy.source}), {n_params:,} parameters, {n_train:,} trainable, "
          f"dtype {next(policy.model.parameters()).dtype}, precision {cfg.trainer.precision}")

    dm = build_datamodule(cfg.data, processor=policy.processor, use_audio_in_video=policy.use_audio_in_video,
                          answer="dc")
    dm.prepare_data()
    frame = read_labels(dm.root, cfg.data.name)
    dm.set_targets({r.id: format_answer(polarity_of(float(r.label), cfg.data.name), REASONING, float(r.label),
                                        cfg.data.name) for r in frame.itertuples()})
    trainer_kw = dict(accelerator=cfg.trainer.accelerator, devices=1, precision=cfg.trainer.precision, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0,
                      enable_model_summary=False)

    # ---- one SFT step
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    sft = SFTModule(policy, dataset=cfg.data.name, range_dataset=cfg.data.name, answer="dc", lr=cfg.sft.lr,
                    weight_decay=cfg.sft.weight_decay, warmup_ratio=0.0, val_max_new_tokens=8)
    timer = StepTimer()
    L.Trainer(max_steps=1, callbacks=[timer], **trainer_kw).fit(sft, datamodule=dm)
    batch = next(iter(dm.train_dataloader()))
    print(f"SFT step ({args.prompts} clips, {batch['input_ids'].shape[1]} tokens each incl. media): "
          f"{timer.times[0]:.2f} s, peak GPU memory {peak_gib():.1f} GiB")

    # ---- GRPO steps (encoder outputs reused), counting sampled tokens
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    tokens = {"n": 0, "t": 0.0}

    def counted(*a, **k):
        StepTimer._sync()
        t0 = time.perf_counter()
        s = sample(*a, **k)
        StepTimer._sync()
        tokens["t"] += time.perf_counter() - t0
        tokens["n"] += int((s.completion_mask * (1 - s.prefill_mask)).sum())
        return s

    module = GRPOModule(policy, cfg.grpo, dataset=cfg.data.name, hint=True, hard=True, out_dir=out, sampler=counted)
    timer = StepTimer()
    L.Trainer(max_steps=args.steps, callbacks=[timer], **trainer_kw).fit(module, datamodule=dm)
    rest = timer.times[1:] or timer.times
    print(f"GRPO step ({args.prompts} prompts x G={args.G}, <= {args.new_tokens} new tokens, hint on): first "
          f"{timer.times[0]:.2f} s, then mean {sum(rest) / len(rest):.2f} s over {len(rest)}; "
          f"sampling {tokens['n'] / max(tokens['t'], 1e-9):.0f} generated tokens/s; "
          f"peak GPU memory {peak_gib():.1f} GiB")


if __name__ == "__main__":
    main()
