"""Stage ``eval``: greedy generation, strict parsing, MMSA metrics, in-domain and cross-dataset.

    python train.py stage=eval init_from=<export dir> data=demo
    python train.py stage=eval model=qwen2_5_omni_7b model.path=/ckpt data=mosi data.root=/data/MOSI   # zero-shot
    python train.py stage=eval init_from=<sims export> eval.datasets=[sims,simsv2,mosi,mosei] \
        eval.roots.mosi=/data/MOSI ...

What is scored: ``eval.datasets`` (by default the data choice's ``data.eval_datasets``: ``[data.name]``,
the demo adds ``demo_mosi``) at ``eval.split``, each at its root (:func:`msa.plan.eval_targets`).
The answer format, the range the model answers in and the modalities it reads come from the export
unless ``eval.answer``/``eval.range_dataset``/``eval.modalities`` set them (:mod:`msa.exports`; the plan
says which); scores are mapped to each target's range before its metrics.
Writes ``<run>/<stage>/predictions.jsonl`` (id, dataset, split, label, label_T/A/V and conflict where known,
completion, parsed fields, prediction, per-sample rewards) and ``metrics.json`` (dataset -> metric -> value,
polarity_acc, parse_fail_rate, clamp_rate, n, ``subsets`` (the same on text_conflict, ... where the labels
exist: :data:`msa.evaluation.SUBSETS`), and ``skipped``: the clips of the split left out under
``data.on_error=skip``, not in n), and logs the
predictions as a W&B table when ``logger=wandb``.
"""

from __future__ import annotations

import json
import logging
import time

import pandas as pd
from tqdm.auto import tqdm

from msa.evaluation import prediction_records, summarize
from msa.generation import generate_texts

log = logging.getLogger(__name__)


def evaluate_policy(ctx, policy, *, stage: str, answer: str) -> dict:
    """Run ``eval.split`` of each eval target through ``policy``; write predictions, return metrics."""
    from msa.plan import answer_range, eval_targets
    from msa.data.datamodule import build_datamodule
    from msa.runtime import log_table, logs_to_wandb, make_logger

    from msa.exports import export_facts

    cfg = ctx.cfg
    ecfg = cfg.eval
    range_ds = answer_range(cfg, ctx.artefacts.get("policy"))
    modalities = export_facts(cfg, ctx.artefacts.get("policy"))["modalities"].value
    out_dir = ctx.stage_dir(stage)
    device = "cuda" if _cuda() else "cpu"
    policy.model.to(device)
    results, all_records = {}, []
    for target in eval_targets(cfg):
        ds = target.name
        dm = build_datamodule(cfg.data, processor=policy.processor, use_audio_in_video=policy.use_audio_in_video,
                              name=ds, root=target.root, answer=answer, range_dataset=range_ds,
                              modalities=modalities, eval_batch_size=ecfg.batch_size)
        dm.prepare_data()
        dm.setup("test")
        records, t0 = [], time.perf_counter()
        for batch in tqdm(dm.dataloader(target.split), desc=f"eval {ds} {target.split}", leave=False):
            dm.skip_report.add(target.split, batch.get("skipped", []))
            if not batch["ids"]:
                continue
            texts = generate_texts(policy.model, policy.tokenizer, _to(batch, device), max_new_tokens=ecfg.max_new_tokens,
                                   use_audio_in_video=batch["use_audio_in_video"])
            batch_records = prediction_records(texts, batch, dataset=ds, range_dataset=range_ds, answer=answer)
            records += [{**r, "split": target.split} for r in batch_records]
        skipped = dm.skip_report.total(target.split)
        if skipped:  # the metrics are of the clips that remain: say so, with the first few and why
            log.warning("%s %s: %d of %d clips skipped (data.on_error=skip), not scored: %s", ds, target.split,
                        skipped, skipped + len(records),
                        "; ".join(f"{i} ({why})" for _, i, why in dm.skip_report.examples[:5]))
        if not records:
            raise ValueError(f"{ds} {target.split}: every clip was skipped ({skipped}), nothing to score")
        results[ds] = summarize(records, ds, subsets=True)
        results[ds]["skipped"] = skipped
        results[ds]["clips_per_s"] = len(records) / max(1e-9, time.perf_counter() - t0)
        all_records += records
    with (out_dir / "predictions.jsonl").open("w", encoding="utf-8") as f:
        for r in all_records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    if logs_to_wandb(cfg):  # this pass logs a table only, which only W&B takes
        log_table([make_logger(cfg, f"{stage}-eval")], f"{stage}/predictions", pd.DataFrame(all_records))
    return results


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _to(batch: dict, device: str) -> dict:
    import torch

    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def run(ctx) -> dict:
    from msa.stages.common import load_stage_policy

    from msa.exports import export_facts

    policy = load_stage_policy(ctx)
    # A score-baseline export writes <score>x</score>: parsed as DC, every answer would fail.
    answer = str(export_facts(ctx.cfg, ctx.artefacts.get("policy"))["answer"].value)
    results = evaluate_policy(ctx, policy, stage="eval", answer=answer)
    ctx.record("eval", results)
    return results
