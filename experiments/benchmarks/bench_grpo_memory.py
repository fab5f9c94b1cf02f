"""GRPO step peak memory at a long prompt: the shared prompt's keys and values read once by its G rows
(this tree) against G repeated copies (the code of an earlier commit, ``--before``).

    python experiments/benchmarks/bench_grpo_memory.py [--before 865ebb0] [--prompt-tokens 4096] [--G 8]
        [--prompts 2] [--new-tokens 16] [--layers 32] [--steps 1] [--repeats 2] [--no-checkpointing]

Each run is a fresh process doing ``--steps`` GRPO steps (``grpo.shared_prompt=true``, hint and hard
on, LoRA, beta 0.1, fp32, gradient checkpointing as in the paper's configuration) on the same seed and
batches; its peak memory is the OS's peak RSS of that process (glibc's mmap threshold fixed, so that
freed tensors leave the RSS). "before" runs this same script with
``msa`` taken from ``git archive <before>`` (the repeated-prompt path), "after" with this tree's ``msa``;
the two alternate (before, after, before, ...). Printed: each run's peak RSS and the peak above the
loaded baseline (model, data and imports, measured just before training), the medians, and the
after / before ratios.

The prompt: the demo set's prompts (video and audio, 56x56 frames), each with filler text put in front
to ``--prompt-tokens`` positions. The model: the test-size tiny thinker with ``--layers`` decoder layers
(more layers: with gradient checkpointing the prompt KV grows with the layers, the per-layer transients
do not). The loaded process holds ~1.1 GiB (mostly the mapped libraries, which a GPU's allocator figures do
not count): "peak above the loaded baseline" is the closer analogue of a GPU's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grpo import _reap  # noqa: E402  (the child's own peak RSS via wait4)

BEFORE = "865ebb0"  # the last commit whose shared-prompt path repeated the prompt's KV cache G times
FILLER = " the words are warm and the voice is calm ."


def bench_model(args) -> Path:
    """The test-size tiny thinker with ``args.layers`` decoder layers (random, seed 0), made once."""
    import shutil

    import torch
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    from msa.models.tiny import ensure_tiny

    src = ensure_tiny(args.cache, "test")
    out = Path(args.cache) / f"bench-grpo-memory-{src.name}-L{args.layers}"
    if (out / "config.json").exists():
        return out
    cfg = Qwen2_5OmniThinkerConfig.from_pretrained(src)
    text = cfg.text_config
    text.num_hidden_layers = args.layers
    if getattr(text, "layer_types", None):
        text.layer_types = [text.layer_types[0]] * args.layers
    torch.manual_seed(0)
    model = Qwen2_5OmniThinkerForConditionalGeneration(cfg)
    tmp = Path(tempfile.mkdtemp(dir=args.cache))
    shutil.copytree(src, tmp, dirs_exist_ok=True)  # tokenizer, processor, chat template
    model.save_pretrained(tmp)  # config and weights replaced
    tmp.rename(out)
    return out


def long_batches(args) -> list[dict]:
    """``args.steps`` demo batches of ``args.prompts`` prompts, filler text in front to ``args.prompt_tokens``."""
    import torch
    from transformers import AutoProcessor

    from msa.data.datamodule import DemoDataModule

    proc = AutoProcessor.from_pretrained(args.model)
    dm = DemoDataModule(f"{args.cache}/data/demo", batch_size=args.prompts, cache_dir=f"{args.cache}/media",
                        shuffle=False, video_min_pixels=3136, video_max_pixels=8192)
    dm.attach_processor(proc)
    dm.prepare_data()
    dm.setup("fit")
    words = proc.tokenizer(FILLER, add_special_tokens=False)["input_ids"]
    out = []
    for batch, _ in zip(dm.train_dataloader(), range(args.steps)):
        ids, mask = batch["input_ids"], batch["attention_mask"]  # [B, P0]
        extra = args.prompt_tokens - ids.shape[1]
        if extra > 0:
            filler = torch.tensor((words * (extra // len(words) + 1))[:extra]).expand(ids.shape[0], -1)
            batch["input_ids"] = torch.cat([filler, ids], 1)
            batch["attention_mask"] = torch.cat([torch.ones_like(filler, dtype=mask.dtype), mask], 1)
        out.append(batch)
    return out


def worker(args) -> None:
    """One run with whichever ``msa`` is on the path; prints a JSON line."""
    import lightning as L
    import torch
    from omegaconf import OmegaConf

    from msa.models import load_policy
    from msa.stages.grpo import GRPOModule

    torch.set_num_threads(args.threads)
    batches = torch.load(args.batches, weights_only=False)  # made by the parent: no media decoding in this process
    torch.manual_seed(0)
    mcfg = OmegaConf.create(dict(path=str(args.model), dtype="float32", use_audio_in_video=True,
                                 gradient_checkpointing=not args.no_checkpointing,
                                 lora=dict(enabled=True, r=8, alpha=16, dropout=0.0)))
    policy = load_policy(mcfg)
    g = OmegaConf.create(dict(num_generations=args.G, temperature=1.0, top_p=1.0, max_new_tokens=args.new_tokens,
                              beta=0.1, epsilon=0.2, epsilon_high=None, num_iterations=1, loss_type="grpo",
                              scale_rewards="group", reward_weights={"format": 1, "polarity": 1, "score": 1},
                              score_form="linear", hard_rule="all_wrong", hard_threshold=None, lr=1e-5,
                              weight_decay=0.0, warmup_steps=0, max_grad_norm=1.0, max_steps=args.steps,
                              log_completions_every=0, checkpoint_dir="unused", hint_mode="replace",
                              shared_prompt=True, reuse_encoder_outputs=True))
    module = GRPOModule(policy, g, dataset="demo", hint=True, hard=True, out_dir=args.cache)
    baseline = current_rss_mib()  # everything loaded: libraries, model, batches
    trainer = L.Trainer(max_steps=args.steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, accelerator="cpu", devices=1)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None,
                                                                      collate_fn=lambda b: b))
    print(json.dumps({"baseline_mib": baseline, "prompt_tokens": int(batches[0]["input_ids"].shape[1])}))


def repo_root() -> Path:
    return Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True,
                               cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip())


def current_rss_mib() -> float:
    """This process's resident memory now (Linux), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def code_of(rev: str, out: Path) -> Path:
    """``msa`` as it was at ``rev``, unpacked into ``out`` (put first on PYTHONPATH)."""
    root = repo_root()
    archive = subprocess.run(["git", "archive", rev, "msa"], capture_output=True, check=True, cwd=root).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def run(variant: str, args, path: Path) -> dict:
    """One worker process with ``msa`` imported from ``path`` (first on its PYTHONPATH)."""
    # glibc raises its mmap threshold as large blocks are freed, and then keeps freed tensors' memory in the
    # heap: RSS would count memory the step no longer holds. A fixed threshold returns it (RSS ~ live tensors).
    env = dict(os.environ, MSA_CACHE=args.cache, MALLOC_MMAP_THRESHOLD_="131072",
               PYTHONPATH=os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--worker", variant, "--model", str(args.model),
           "--cache", args.cache, "--batches", str(args.batches)]
    out, err, rc, peak = _reap(cmd, env)
    if rc != 0:
        raise SystemExit(f"{variant} run failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_mib"] = peak
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default=BEFORE, help="commit whose msa/ is the 'before' code")
    ap.add_argument("--prompt-tokens", type=int, default=4096)
    ap.add_argument("--G", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of each variant")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-checkpointing", action="store_true", help="keep every activation (no gradient checkpointing)")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--batches", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.model = Path(args.model)
        return worker(args)
    from msa.models.tiny import default_cache_dir

    args.cache = args.cache or str(default_cache_dir())
    args.model = bench_model(args)
    import torch

    # the batches, made once here: the media decoding's own peak stays out of the measured processes
    work = tempfile.TemporaryDirectory(prefix="bench-grpo-memory-")
    args.batches = Path(work.name) / "batches.pt"
    torch.save(long_batches(args), args.batches)
    old = code_of(args.before, Path(work.name))
    runs = {"before": [], "after": []}
    for _ in range(args.repeats):
        for variant, path in (("before", old), ("after", repo_root())):
            runs[variant].append(run(variant, args, path))
            r = runs[variant][-1]
            print(f"  {variant:>6}: peak RSS {r['peak_mib']:.0f} MiB ({r['peak_mib'] - r['baseline_mib']:.0f} MiB "
                  f"above the loaded {r['baseline_mib']:.0f} MiB)", flush=True)
    med = statistics.median
    print(f"GRPO step peak memory, tiny[test] with {args.layers} layers, LoRA, fp32, "
          f"{'no ' if args.no_checkpointing else ''}gradient checkpointing, B={args.prompts} prompts of "
          f"{runs['after'][0]['prompt_tokens']} positions, G={args.G}, up to {args.new_tokens} new tokens, "
          f"{args.steps} steps, median of {args.repeats} alternating runs; before = {args.before} "
          f"(prompt KV repeated G times), after = this tree (one copy per prompt):")
    for variant, rs in runs.items():
        print(f"  {variant:>6}: peak RSS {med(r['peak_mib'] for r in rs):.0f} MiB, above the loaded baseline "
              f"{med(r['peak_mib'] - r['baseline_mib'] for r in rs):.0f} MiB")
    for key, what in (("peak", "peak RSS"), ("step", "peak above baseline")):
        per = [(a["peak_mib"] - (a["baseline_mib"] if key == "step" else 0))
               / (b["peak_mib"] - (b["baseline_mib"] if key == "step" else 0))
               for a, b in zip(runs["after"], runs["before"])]
        print(f"  after / before {what}: {med(per):.2f}x (per repeat: {', '.join(f'{v:.2f}' for v in per)})")


if __name__ == "__main__":
    main()
