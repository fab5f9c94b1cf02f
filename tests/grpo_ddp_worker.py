"""Two-process (gloo) GRPO runs; launched by test_grpo_ddp.py.

    python tests/grpo_ddp_worker.py dropped|skipped|resume OUT_DIR CACHE_DIR

``dropped``: rank 0's rollouts all have the wrong polarity and hard=false drops its groups; ``skipped``:
rank 0's whole batch is skipped (``data.on_error=skip`` leaves no clip). Rank 1 learns normally in both.
Each rank writes its trainable weights (before and after), LR and global step to OUT_DIR/rank{r}.pt.

``resume``: real sampling, each rank seeded as a stage starts (``seed_stage``): 3 steps uninterrupted into
OUT_DIR/full, then 2 steps into OUT_DIR/cut and 1 more resumed from its last.ckpt; every step's rollouts
of each rank are in <run>/completions/completions_<step>_rank<r>.parquet, the final weights in
<run>/rank{r}.pt. The three fits share one launch (the process group outlives a fit).

Lightning re-runs this script for rank 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch

from conftest import LORA_R4, compose_node
from msa.data.datamodule import DemoDataModule
from msa.dc import polarity_of
from msa.models import load_policy, trainable_parameters
from msa.stages.grpo import GRPOModule
from scripted_rollouts import rollout_from_texts


def demo_data(cache: str) -> DemoDataModule:
    """4 clips with a clear polarity: one batch of 2 per rank."""
    from transformers import AutoProcessor

    from msa.models.tiny import ensure_tiny

    dm = DemoDataModule(f"{cache}/data/demo_ddp", n_clips=24, batch_size=2, cache_dir=f"{cache}/media",
                        shuffle=False, video_min_pixels=3136, video_max_pixels=8192)
    dm.attach_processor(AutoProcessor.from_pretrained(ensure_tiny(cache, "test")))
    dm.prepare_data()
    dm.setup("fit")
    frame = dm.frames["train"]
    keep = frame[frame.label.abs() > 0.1].index[:4].tolist()  # 4 clips: one batch of 2 per rank
    dm.frames["train"] = frame.loc[keep].reset_index(drop=True)
    from msa.data.dataset import MSADataset

    dm.datasets["train"] = MSADataset(dm.frames["train"], "demo", dm.cache, modalities=dm.modalities)
    return dm


class _StopAt(L.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:  # the same step on both ranks
            trainer.should_stop = True


def resume(out: str, cache: str) -> None:
    from msa.stages.common import seed_stage

    dm = demo_data(cache)
    paths = dict(cache_dir=Path(cache), output_dir=Path(out))
    g = compose_node("grpo", ["grpo.num_generations=4", "grpo.max_new_tokens=12", "grpo.lr=1e-3",
                              "grpo.max_steps=3", "grpo.log_completions_every=1"], **paths)

    def fit(run: Path, stop_at=None, ckpt_path=None):
        seed_stage(0, "grpo")  # as train.py does when the stage starts: each rank its own stream
        policy = load_policy(compose_node("model", LORA_R4, **paths))
        module = GRPOModule(policy, g, dataset="demo", hint=True, hard=True, out_dir=run)
        ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=run / "ckpt", save_last=True, every_n_train_steps=1)
        trainer = L.Trainer(max_steps=3, logger=False, enable_progress_bar=False, limit_val_batches=0,
                            accelerator="cpu", strategy="ddp", devices=2,
                            callbacks=[ckpt] + ([_StopAt(stop_at)] if stop_at else []))
        trainer.fit(module, train_dataloaders=dm.train_dataloader(), ckpt_path=ckpt_path)
        torch.save({"step": trainer.global_step,
                    "after": {k: v.detach().clone() for k, v in trainable_parameters(policy.model).items()}},
                   run / f"rank{trainer.global_rank}.pt")

    fit(Path(out) / "full")
    fit(Path(out) / "cut", stop_at=2)
    fit(Path(out) / "cut", ckpt_path=str(Path(out) / "cut" / "ckpt" / "last.ckpt"))


def main(case: str, out: str, cache: str) -> None:
    if case == "resume":
        return resume(out, cache)
    dm = demo_data(cache)

    def fake_sample(model, thinker, tokenizer, batch, media, rows, *, group_size, prefills=None, **kw):
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        texts, pre_lens = [], []
        for j, r in enumerate(rows.tolist()):
            true = polarity_of(float(batch["label"][r]), "demo")
            wrong = "negative" if true != "negative" else "positive"
            for g in range(group_size):
                if prefills is not None:
                    texts.append(prefills[j] + f"<think>h</think><score>{0.2 * (g + 1):.1f}</score>")
                    pre_lens.append(len(tokenizer(prefills[j], add_special_tokens=False)["input_ids"]))
                    continue
                pol = wrong if rank == 0 else true
                texts.append(f"<polarity>{pol}</polarity><think>t{g}</think><score>{0.2 * (g + 1):.1f}</score>")
                pre_lens.append(0)
        return rollout_from_texts(tokenizer, texts, pre_lens, rows, group_size)

    class Module(GRPOModule):
        def training_step(self, batch, batch_idx):
            if case == "skipped" and self.global_rank == 0:
                batch = dm.collator()([])  # what the collator returns when every clip was skipped
            return super().training_step(batch, batch_idx)

    L.seed_everything(0)
    paths = dict(cache_dir=Path(cache), output_dir=Path(out))
    policy = load_policy(compose_node("model", LORA_R4, **paths))
    # dapo and batch-scaled rewards: the two settings whose denominators are gathered over ranks
    g = compose_node("grpo", ["grpo.num_generations=4", "grpo.max_new_tokens=48", "grpo.loss_type=dapo",
                              "grpo.scale_rewards=batch", "grpo.lr=1e-2", "grpo.max_steps=2",
                              "grpo.log_completions_every=0"], **paths)
    module = Module(policy, g, dataset="demo", hint=True, hard=case != "dropped", out_dir=out, sampler=fake_sample)
    before = {k: v.detach().clone() for k, v in trainable_parameters(policy.model).items()}
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, accelerator="cpu", strategy="ddp", devices=2)
    trainer.fit(module, train_dataloaders=dm.train_dataloader())
    after = {k: v.detach().clone() for k, v in trainable_parameters(policy.model).items()}
    torch.save({"before": before, "after": after, "step": trainer.global_step, "history": module.history,
                "lr": trainer.optimizers[0].param_groups[0]["lr"]}, f"{out}/rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:4])
