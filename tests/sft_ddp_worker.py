"""Two-process (gloo) SFT in which rank 0's first batch is skipped; launched by test_sft_ddp.py.

    python tests/sft_ddp_worker.py OUT_DIR CACHE_DIR

Rank 0's first batch is what the collator returns when every clip was skipped (``data.on_error=skip``);
rank 1 learns. Lightning re-runs this script for rank 1. Each rank writes its trainable weights (before
and after), LR and global step to OUT_DIR/rank{r}.pt. The process group times out after 120 s, so a rank
left waiting in a collective fails instead of hanging.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch

from conftest import LORA_R4, compose_node
from msa.data.datamodule import DemoDataModule
from msa.models import load_policy, trainable_parameters
from msa.stages.sft import SFTModule, score_targets


def main(out: str, cache: str) -> None:
    from transformers import AutoProcessor

    from msa.data.labels import read_labels
    from msa.models.tiny import ensure_tiny

    dm = DemoDataModule(f"{cache}/data/demo_ddp", n_clips=24, batch_size=2, cache_dir=f"{cache}/media",
                        shuffle=False, limit=4, answer="score", video_min_pixels=3136, video_max_pixels=8192)
    dm.attach_processor(AutoProcessor.from_pretrained(ensure_tiny(cache, "test")))
    dm.prepare_data()
    dm.set_targets(score_targets(read_labels(dm.root, "demo"), "demo"))
    dm.setup("fit")

    class Module(SFTModule):
        def training_step(self, batch, batch_idx):
            if self.global_rank == 0 and self.global_step == 0:
                batch = dm.collator()([])  # what the collator returns when every clip was skipped
            return super().training_step(batch, batch_idx)

    L.seed_everything(0)
    paths = dict(cache_dir=Path(cache), output_dir=Path(out))
    policy = load_policy(compose_node("model", LORA_R4, **paths))
    module = Module(policy, dataset="demo", range_dataset="demo", answer="score", lr=1e-2, weight_decay=0.0,
                    warmup_ratio=0.0, val_max_new_tokens=4)
    before = {k: v.detach().clone() for k, v in trainable_parameters(policy.model).items()}
    strategy = L.pytorch.strategies.DDPStrategy(timeout=timedelta(seconds=120))
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, accelerator="cpu", strategy=strategy, devices=2)
    trainer.fit(module, train_dataloaders=dm.train_dataloader())
    after = {k: v.detach().clone() for k, v in trainable_parameters(policy.model).items()}
    torch.save({"before": before, "after": after, "step": trainer.global_step,
                "lr": trainer.optimizers[0].param_groups[0]["lr"]}, f"{out}/rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:3])
