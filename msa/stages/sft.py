"""Stage ``sft``: cold-start supervised fine-tuning in the DC format, or the direct-score baseline.

    python train.py stage=sft sft.cot=<cot.jsonl>                 # DC chains from the cot stage
    python train.py stage=sft sft.answer=score                    # baseline: answer <score>x</score> only

Teacher-forced next-token loss on the assistant answer only (system, user, media and padding tokens
carry label -100; the collator builds the labels). LoRA by default, full fine-tuning with
``model.lora.enabled=false``. AdamW, linear warmup then cosine decay to zero. Validation each epoch
generates, parses and scores with the eval stage's code (``val/<dataset>/<metric>``); the best
epoch by ``val/score`` (acc3 + acc2 - MAE/range, see :func:`msa.evaluation.selection_score`) is
exported to ``checkpoints/best`` (peft adapter or full weights) for ``init_from=``; Lightning
checkpoints (``checkpoints/*.ckpt``) hold the trainable weights plus optimizer/scheduler/loop state
for an exact ``ckpt_path=`` resume, and the best epoch so far (score, epoch, where it was exported).

``checkpoints/best`` only ever holds a validated epoch, with its epoch and score in ``msa_policy.json``.
A run resumed into a new run directory whose best epoch is still the one of the checkpoint copies that
epoch's export from the checkpoint's run (and refuses to start when that export is gone or holds another
epoch). A run in which no validation ran exports its last weights as ``checkpoints/final``.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

from msa.cot.records import check_against_labels
from msa.dc import format_answer, format_score
from msa.evaluation import prediction_records, selection_score, summarize
from msa.exports import enabled_modalities
from msa.generation import generate_texts, model_inputs
from msa.jsonl import iter_jsonl
from msa.models import export_policy
from msa.runtime import gather_records
from msa.stages.base import PolicyModule

log = logging.getLogger(__name__)


def load_targets(cot_path: str | Path, dataset: str, *, labels) -> dict[str, str]:
    """id -> DC answer text from a CoT JSONL (the true score is already in each kept record).

    The records are checked against ``labels``, the dataset's label table as it is now
    (:func:`msa.cot.records.check_against_labels`), and against the settings the CoT run recorded
    beside them: a CoT file of another dataset, or one whose labels were corrected since, is refused.
    """
    path = Path(cot_path)
    if not path.exists():
        raise FileNotFoundError(f"sft.cot={path}: no CoT file (run stage=cot first, or point sft.cot at one)")
    _check_cot_settings(path, dataset)
    targets, records = {}, []
    for rec in iter_jsonl(path):  # skips a torn last line; names the line of a damaged one
        if rec.get("dataset", dataset) != dataset:
            continue
        answer = rec.get("answer") or format_answer(rec["polarity"], rec["reasoning"], rec["score"], dataset)
        targets[str(rec["id"])] = answer
        records.append(rec)
    if not targets:
        raise ValueError(f"sft.cot={path}: no records for dataset {dataset!r}")
    check_against_labels(records, labels, dataset=dataset, source=f"sft.cot={path}")
    return targets


def _check_cot_settings(path: Path, dataset: str) -> None:
    """The CoT run's recorded dataset must be this one. A different root is only reported: a copy moved
    to another directory is the same data, and the label check decides whether it still matches."""
    from msa.stages.cot import SETTINGS

    settings = path.parent / SETTINGS
    if not settings.exists():
        return
    data = json.loads(settings.read_text()).get("data", {})
    if data.get("name") not in (None, dataset):
        raise ValueError(f"sft.cot={path}: the CoT set was written for data={data['name']} ({settings}), "
                         f"this run trains data={dataset}")
    log.info("sft.cot=%s was written from %s", path, data.get("root"))


def score_targets(frame, dataset: str) -> dict[str, str]:
    """id -> ``<score>x</score>`` from the dataset labels (the direct-score baseline)."""
    return {row.id: f"<score>{format_score(float(row.label), dataset)}</score>" for row in frame.itertuples()}


class SFTModule(PolicyModule):
    def __init__(self, policy, *, dataset: str, range_dataset: str, answer: str, lr: float, weight_decay: float,
                 warmup_ratio: float, val_max_new_tokens: int, export_dir: str | Path | None = None,
                 modalities: list[str] | None = None):
        super().__init__(policy)
        self.modalities = modalities  # recorded in the export, so eval reads what it was trained on
        self.dataset, self.range_dataset, self.answer = dataset, range_dataset, answer
        self.lr, self.weight_decay, self.warmup_ratio = lr, weight_decay, warmup_ratio
        self.val_max_new_tokens = val_max_new_tokens
        self.export_dir = Path(export_dir) if export_dir else None
        self.best_score = -math.inf
        self.best_metrics: dict | None = None
        self.best_epoch: int | None = None  # None: no epoch validated yet (in this run or the one resumed)
        self.best_export: str | None = None  # where that epoch was exported (the checkpoint's run, after a resume)
        self._val_records: list[dict] = []

    def training_step(self, batch, batch_idx):
        if not batch["ids"]:  # every clip of the batch was skipped (data.on_error=skip)
            # One process: None skips the step. Under DDP Lightning refuses None and the other ranks would
            # wait in their gradient all-reduce: a zero loss joins it (the step averages their gradients with
            # this rank's zeros). Should every rank's batch be skipped at once, all take a zero-gradient step.
            return self.zero_loss() if self.trainer.world_size > 1 else None
        out = self.model(**model_inputs(batch), labels=batch["labels"], use_audio_in_video=batch["use_audio_in_video"])
        self.log("train/loss", out.loss, prog_bar=True, batch_size=len(batch["ids"]))
        return out.loss

    def validation_step(self, batch, batch_idx):
        if not batch["ids"]:
            return
        texts = generate_texts(self.model, self.policy.tokenizer, batch, max_new_tokens=self.val_max_new_tokens,
                               use_audio_in_video=batch["use_audio_in_video"])
        self._val_records += prediction_records(texts, batch, dataset=self.dataset, range_dataset=self.range_dataset,
                                                answer=self.answer)

    def on_validation_epoch_end(self):
        # DDP: every rank scores the whole split (its shard alone would select a different epoch).
        records, self._val_records = gather_records(self._val_records), []
        if not records:
            return
        metrics = summarize(records, self.dataset)
        score = selection_score(metrics, self.dataset)
        # Identical on every rank after the gather, so sync_dist's mean changes nothing but the warning.
        for k, v in metrics.items():
            self.log(f"val/{self.dataset}/{k}", float(v), sync_dist=True)
        self.log("val/parse_fail_rate", metrics["parse_fail_rate"], sync_dist=True)
        self.log("val/score", score, prog_bar=True, sync_dist=True)
        if score > self.best_score and not self.trainer.sanity_checking:
            self.best_score, self.best_metrics, self.best_epoch = score, metrics, self.current_epoch
            if self.export_dir is not None:
                self.best_export = str(self.export_dir / "best")
            if self.export_dir is not None and self.trainer.is_global_zero:
                export_policy(self.policy, self.export_dir / "best",
                              extra={"stage": "sft", "epoch": self.current_epoch, "val_score": score,
                                     "dataset": self.dataset, "range_dataset": self.range_dataset,
                                     "answer": self.answer, "modalities": self.modalities})

    def configure_optimizers(self):
        return self.adamw_warmup_cosine(lr=self.lr, weight_decay=self.weight_decay,
                                        warmup_steps=int(self.warmup_ratio * self.total_steps()))

    def on_save_checkpoint(self, checkpoint):
        super().on_save_checkpoint(checkpoint)  # RNG states (dropout)
        checkpoint["msa_best"] = {"score": self.best_score, "metrics": self.best_metrics, "epoch": self.best_epoch,
                                  "export": self.best_export}

    def on_load_checkpoint(self, checkpoint):
        super().on_load_checkpoint(checkpoint)
        best = checkpoint.get("msa_best")
        if best:  # so a resumed run does not overwrite a better export with a worse epoch
            self.best_score, self.best_metrics = best["score"], best["metrics"]
            self.best_epoch, self.best_export = best.get("epoch"), best.get("export")


def checkpoint_best(ckpt_path: str | Path) -> dict:
    """The best epoch a Lightning checkpoint of this stage had seen: ``{"score", "epoch", "export"}``, the
    export defaulting to ``best/`` beside the checkpoint (checkpoints written before the path was saved);
    ``{}`` when it had validated nothing."""
    import torch

    # As Lightning loads it (weights_only=False: the file is this project's own checkpoint); mmap: no tensor read.
    best = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True).get("msa_best") or {}
    if best.get("score") is None or not math.isfinite(best["score"]):
        return {}
    return {"score": best["score"], "epoch": best.get("epoch"),
            "export": best.get("export") or str(Path(ckpt_path).parent / "best")}


def check_resumed_best(ckpt_path: str | Path, best_dir: Path) -> None:
    """Before a resume trains: when the checkpoint's best epoch was exported elsewhere (another run
    directory), that export must still be there and hold that epoch, since this run's ``best`` is a copy
    of it unless a later epoch scores higher. Raises naming the checkpoint, the export and what to do."""
    best = checkpoint_best(ckpt_path)
    if not best or Path(best["export"]).resolve() == best_dir.resolve():
        return
    problem = _export_mismatch(Path(best["export"]), best)
    if problem:
        raise FileNotFoundError(
            f"ckpt_path={ckpt_path}: its best epoch so far (epoch {best['epoch']}, val/score {best['score']:.4f}) "
            f"was exported to {best['export']}, which {problem}. This run would have no export of that epoch to "
            f"call checkpoints/best. Resume in the checkpoint's run directory (hydra.run.dir=<that run>), or "
            f"restore that export")


def _export_mismatch(export: Path, best: dict) -> str | None:
    """Why ``export`` is not the export of ``best`` (None when it is)."""
    meta = export / "msa_policy.json"
    if not meta.is_file():
        return "does not exist" if not export.exists() else "has no msa_policy.json"
    saved = json.loads(meta.read_text())
    if saved.get("epoch") != best["epoch"] or saved.get("val_score") != best["score"]:
        return (f"holds epoch {saved.get('epoch')} (val/score {saved.get('val_score')}): it was overwritten after "
                "the checkpoint")
    return None


def settle_export(module: SFTModule, policy, ckpt_dir: Path, *, dataset: str, answer: str) -> Path:
    """The export this run hands on: ``best`` (this run's, or the resumed checkpoint's best epoch copied
    from its run), or ``final`` when no epoch was ever validated (never last weights under ``best``)."""
    best = ckpt_dir / "best"
    if module.best_epoch is None:
        final = ckpt_dir / "final"
        log.warning("sft: no validation ran (sft.val_every_n_epochs=%s, trainer limits), so there is no best "
                    "epoch: the last weights are exported as %s", module.trainer.check_val_every_n_epoch, final)
        export_policy(policy, final, extra={"stage": "sft", "step": module.global_step, "val_score": None,
                                            "weights": "final (no validation ran)", "dataset": dataset,
                                            "range_dataset": dataset, "answer": answer,
                                            "modalities": module.modalities})
        return final
    source = Path(module.best_export or best)
    if source.resolve() != best.resolve():  # resumed into a new run dir, no later epoch better than the checkpoint's
        problem = _export_mismatch(source, {"epoch": module.best_epoch, "score": module.best_score})
        if problem:
            raise FileNotFoundError(f"sft: the best epoch ({module.best_epoch}) was exported to {source}, which "
                                    f"{problem}; not exporting other weights as {best}")
        if best.exists():
            shutil.rmtree(best)
        shutil.copytree(source, best)
        log.info("sft: best epoch %s (val/score %.4f) is the resumed checkpoint's: copied %s to %s",
                 module.best_epoch, module.best_score, source, best)
    elif not (best / "msa_policy.json").is_file():
        raise FileNotFoundError(f"sft: the best epoch ({module.best_epoch}) was exported to {best}, which is gone")
    return best


def run(ctx) -> dict:
    """Train, export the best epoch, evaluate it on the test split; records ``{"sft": {dataset: metrics}}``."""
    from msa.data.datamodule import build_datamodule
    from msa.stages.common import build_trainer, load_stage_policy, test_policy

    cfg = ctx.cfg
    dataset = cfg.data.name
    out = ctx.stage_dir("sft")
    policy = load_stage_policy(ctx, trainable=True)
    from msa.data.labels import read_labels

    dm = build_datamodule(cfg.data, processor=policy.processor, use_audio_in_video=policy.use_audio_in_video,
                          answer=cfg.sft.answer)
    dm.prepare_data()  # the demo set is generated here on first use
    labels = read_labels(dm.root, dataset)
    if cfg.sft.answer == "dc":
        dm.set_targets(load_targets(ctx.artefacts.get("cot") or cfg.sft.cot, dataset, labels=labels))
    else:
        dm.set_targets(score_targets(labels, dataset))
    module = SFTModule(policy, dataset=dataset, range_dataset=dataset, answer=cfg.sft.answer, lr=cfg.sft.lr,
                       weight_decay=cfg.sft.weight_decay, warmup_ratio=cfg.sft.warmup_ratio,
                       val_max_new_tokens=cfg.sft.val_max_new_tokens, export_dir=Path(cfg.sft.checkpoint_dir),
                       modalities=enabled_modalities(cfg.data.modalities))
    trainer = build_trainer(ctx, "sft", max_epochs=cfg.sft.max_epochs, monitor="val/score",
                            ckpt_dir=cfg.sft.checkpoint_dir,
                            accumulate_grad_batches=cfg.sft.accumulate_grad_batches,
                            gradient_clip_val=cfg.sft.gradient_clip_val,
                            check_val_every_n_epoch=cfg.sft.val_every_n_epochs)
    if cfg.ckpt_path:
        check_resumed_best(cfg.ckpt_path, Path(cfg.sft.checkpoint_dir) / "best")
    trainer.fit(module, datamodule=dm, ckpt_path=cfg.ckpt_path)
    if not trainer.is_global_zero:  # DDP: rank 0 exports and evaluates
        return {}
    export = settle_export(module, policy, Path(cfg.sft.checkpoint_dir), dataset=dataset, answer=cfg.sft.answer)
    ctx.artefacts["policy"] = str(export)
    results = test_policy(ctx, "sft", export, answer=cfg.sft.answer)
    ctx.record("sft_train", {"best_val_score": module.best_score, "best_epoch": module.best_epoch,
                             "export": str(export), "steps": trainer.global_step, "best_val": module.best_metrics})
    ctx.record("sft", results)
    return results
