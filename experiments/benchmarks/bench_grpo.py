"""GRPO step time and peak memory: shared-prompt vs naive step (or encoder outputs reused vs re-run).

    python experiments/benchmarks/bench_grpo.py [--compare prompt|encoder] [--G 4] [--full-video]
        [--steps 4] [--repeats 3] [--prompts 2] [--new-tokens 32] [--size test] [--threads 1]

``--compare prompt`` (default): ``grpo.shared_prompt=true`` (each prompt runs through the language
model once per pass, its KV cache repeated to the G rollouts) against ``false`` (the prompt runs G
times in generate and in every scoring pass). ``--compare encoder``: encoder outputs computed once
per prompt and reused, against the towers re-run on every row of every pass (both naive).

Each run is a fresh process (so that its peak memory is its own: peak RSS from the OS on CPU, peak
allocated GPU memory on CUDA) doing ``--steps`` GRPO steps on the same seed and prompts; the two
modes alternate (a, b, a, b, ...) so the machine's drift hits both alike. Printed: the median over the
repeats of each mode's mean step time (steps after the first), its per-repeat ratios, peak memory, and
the sampling throughput in generated (sampled, prefill excluded) tokens per second of sampling time.
``--full-video`` uses Qwen's default frame size, where the prompt (~500 tokens) is much longer than
the answer; the demo's 56x56 frames give a short prompt.

``--trl`` adds a peer to the same alternation: TRL's ``GRPOTrainer`` (benchmark-only dependency,
``pip install trl``) training the same tiny thinker weights with the same LoRA, on text-only prompts
of our prompt's token length (TRL has no audio/video path for the Omni thinker), with the same B, G,
completion length, sampling, beta and loss type; no token suppression, reward = our format reward.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MODES = {"prompt": (("shared", dict(shared_prompt=True, reuse_encoder_outputs=True)),
                    ("naive", dict(shared_prompt=False, reuse_encoder_outputs=True))),
         "encoder": (("reused", dict(shared_prompt=False, reuse_encoder_outputs=True)),
                     ("re-run", dict(shared_prompt=False, reuse_encoder_outputs=False)))}


def datamodule(args):
    from transformers import AutoProcessor

    from msa.data.datamodule import DemoDataModule
    from msa.models.tiny import ensure_tiny

    proc = AutoProcessor.from_pretrained(ensure_tiny(args.cache, args.size))
    pix = {} if args.full_video else dict(video_min_pixels=3136, video_max_pixels=8192)
    dm = DemoDataModule(f"{args.cache}/data/demo", batch_size=args.prompts, cache_dir=f"{args.cache}/media",
                        shuffle=False, **pix)
    dm.attach_processor(proc)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def worker(args) -> None:
    """One run of one mode; prints a JSON line with its figures."""
    import lightning as L
    import torch
    from omegaconf import OmegaConf

    from msa.models import load_policy
    from msa.rl.rollout import sample
    from msa.stages.grpo import GRPOModule

    torch.set_num_threads(args.threads)
    dm = datamodule(args)
    flags = dict(MODES[args.compare])[args.worker]
    torch.manual_seed(0)
    mcfg = OmegaConf.create(dict(tiny_size=args.size, cache_dir=args.cache, dtype="float32", use_audio_in_video=True,
                                 lora=dict(enabled=True, r=8, alpha=16, dropout=0.0)))
    policy = load_policy(mcfg)
    # The project's own GRPO node (conf/grpo/default.yaml), so new keys reach the benchmark; only the
    # sizes, the compared flags and the paths differ.
    g = OmegaConf.merge(OmegaConf.load(ROOT / "conf" / "grpo" / "default.yaml"),
                        dict(num_generations=args.G, max_new_tokens=args.new_tokens, max_steps=args.steps, lr=1e-5,
                             log_completions_every=0, checkpoint_dir="unused", **flags))
    tokens = {"n": 0, "rows": 0, "t": 0.0, "prompt": []}

    def timed_sample(*a, **k):
        t0 = time.perf_counter()
        s = sample(*a, **k)
        tokens["t"] += time.perf_counter() - t0
        tokens["n"] += int(s.lengths.sum())
        tokens["rows"] += len(s.texts)
        return s

    module = GRPOModule(policy, g, dataset="demo", hint=True, hard=True, out_dir=args.cache, sampler=timed_sample)
    times, cpu = [], []

    class Timer(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            tokens["prompt"].append(int(batch["attention_mask"].sum(1).float().mean()))
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, *a):
            times.append(time.perf_counter() - self.t0)
            cpu.append(time.process_time() - self.c0)

    trainer = L.Trainer(max_steps=args.steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, accelerator="auto", devices=1, callbacks=[Timer()])
    trainer.fit(module, train_dataloaders=dm.train_dataloader())
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    print(json.dumps({"step_s": sum(times[1:]) / max(1, len(times) - 1), "cpu_s": sum(cpu[1:]) / max(1, len(cpu) - 1),
                      "tok_s": tokens["n"] / max(1e-9, tokens["t"]),
                      "prompt_tokens": statistics.mean(tokens["prompt"]), "cuda_peak_mib": cuda_peak,
                      "answer_tokens": tokens["n"] / max(1, tokens["rows"])}))


def trl_worker(args) -> None:
    """TRL's GRPOTrainer on the same tiny thinker weights and LoRA, text-only prompts of our prompt's
    token length, same B, G, completion length, sampling, beta and loss; prints a JSON line."""
    import lightning as L
    import torch
    from datasets import Dataset
    from omegaconf import OmegaConf
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from msa.models import load_policy
    from msa.models.loader import LLM_LORA_REGEX
    from msa.rl.rewards import format_reward

    torch.set_num_threads(args.threads)
    dm = datamodule(args)
    lens = [float(b["attention_mask"].sum(1).float().mean()) for b, _ in zip(dm.train_dataloader(), range(args.steps))]
    prompt_len = round(statistics.mean(lens))  # our runs' mean prompt length over the same batches
    L.seed_everything(0)
    mcfg = OmegaConf.create(dict(tiny_size=args.size, cache_dir=args.cache, dtype="float32", use_audio_in_video=True,
                                 lora=dict(enabled=False)))
    policy = load_policy(mcfg)
    tok = policy.tokenizer
    words = tok("the words are warm and the voice is calm . ", add_special_tokens=False)["input_ids"]
    ids = words * (2 * prompt_len // len(words) + 2)
    n = prompt_len  # decoded text re-tokenizes shorter (merges across the joins): grow it to the length
    while len(tok(tok.decode(ids[:n]), add_special_tokens=False)["input_ids"]) < prompt_len:
        n += 1
    prompts = [tok.decode(ids[:n])] * (args.prompts * (args.steps + 1))
    n_tokens = len(tok(prompts[0], add_special_tokens=False)["input_ids"])
    cfg = GRPOConfig(output_dir=f"{args.cache}/trl-bench", per_device_train_batch_size=args.prompts * args.G,
                     num_generations=args.G, max_completion_length=args.new_tokens, temperature=1.0, top_p=1.0,
                     top_k=0, beta=0.1, loss_type="grpo", scale_rewards="group", learning_rate=1e-5,
                     max_steps=args.steps, gradient_checkpointing=False, use_cpu=True, bf16=False,
                     logging_steps=1, report_to="none", save_strategy="no", dataloader_num_workers=0, seed=0)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=LLM_LORA_REGEX, bias="none",
                      task_type="CAUSAL_LM")
    times = []

    cpu = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t0)
            cpu.append(time.process_time() - self.c0)

    trainer = GRPOTrainer(model=policy.model, reward_funcs=format_reward, args=cfg, processing_class=tok,
                          train_dataset=Dataset.from_dict({"prompt": prompts}), peft_config=lora,
                          callbacks=[Timer()])
    trainer.train()
    print(json.dumps({"step_s": sum(times[1:]) / max(1, len(times) - 1), "cpu_s": sum(cpu[1:]) / max(1, len(cpu) - 1),
                      "tok_s": float("nan"),
                      "prompt_tokens": n_tokens, "cuda_peak_mib": None, "answer_tokens": float("nan")}))


def _reap(cmd: list[str], env: dict) -> tuple[str, str, int, float]:
    """Run ``cmd``; (stdout, stderr, returncode, peak RSS in MiB of that child alone, via wait4)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0), err.seek(0)
        return out.read(), err.read(), os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024


def run_mode(mode: str, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", mode, *sys.argv[1:]]
    out, err, rc, peak = _reap(cmd, dict(os.environ, MSA_CACHE=args.cache))
    if rc != 0:
        raise SystemExit(f"{mode} run failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["rss_peak_mib"] = peak
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare", choices=sorted(MODES), default="prompt")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of each mode")
    ap.add_argument("--size", default="test")
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--G", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--full-video", action="store_true", help="Qwen's default frame size (~336x336) instead of 56x56")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads per run (1: steady figures on a shared machine)")
    ap.add_argument("--trl", action="store_true",
                    help="also time TRL's GRPOTrainer on text-only prompts of the same length (pip install trl)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    from msa.models.tiny import default_cache_dir

    args.cache = args.cache or str(default_cache_dir())
    if args.worker:
        return trl_worker(args) if args.worker == "trl" else worker(args)
    datamodule(args)  # build the demo set and media cache once, outside the timed runs
    (a, _), (b, _) = MODES[args.compare]
    modes = (a, b, "trl") if args.trl else (a, b)
    runs = {m: [] for m in modes}
    for _ in range(args.repeats):
        for mode in modes:
            runs[mode].append(run_mode(mode, args))
    med = statistics.median
    r0 = runs[a][0]
    print(f"GRPO step, tiny[{args.size}] LoRA, {args.threads} CPU thread(s), B={args.prompts} prompts, G={args.G}, "
          f"up to {args.new_tokens} new tokens, {'full-size' if args.full_video else '56x56'} frames (prompt "
          f"~{r0['prompt_tokens']:.0f} tokens, answers ~{r0['answer_tokens']:.0f} sampled tokens); median over "
          f"{args.repeats} alternating repeats of the mean of {args.steps - 1} steps after the first. CPU time is "
          f"the process's own (steady on a shared machine); wall time also counts waiting for a core:")
    for mode in modes:
        rs = runs[mode]
        mem = f"peak RSS {med(r['rss_peak_mib'] for r in rs):.0f} MiB"
        if rs[0]["cuda_peak_mib"] is not None:
            mem += f", peak GPU {med(r['cuda_peak_mib'] for r in rs):.0f} MiB"
        tps = "" if mode == "trl" else f", sampling {med(r['tok_s'] for r in rs):.0f} generated tokens/s (wall)"
        name = "TRL GRPOTrainer" if mode == "trl" else mode
        print(f"  {name:>15}: {med(r['cpu_s'] for r in rs):.3f} s/step CPU, {med(r['step_s'] for r in rs):.3f} s/step "
              f"wall{tps}, {mem}")
    if args.trl:
        print(f"  (TRL: text-only prompt of {runs['trl'][0]['prompt_tokens']} tokens, same weights, LoRA, B, G, "
              f"completion length, sampling, beta, loss)")

    def ratio(x: str, y: str) -> None:
        for key, what in (("cpu_s", "CPU"), ("step_s", "wall")):
            per = [rx[key] / ry[key] for rx, ry in zip(runs[x], runs[y])]
            print(f"  {x} / {y} step time ({what}): {med(per):.2f}x (per repeat: {', '.join(f'{v:.2f}' for v in per)})")

    ratio(a, b)
    if args.trl:
        ratio("trl", a)
        ratio("trl", b)


if __name__ == "__main__":
    main()
