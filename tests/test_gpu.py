"""The paper's configuration on CUDA with the tiny weights (bf16 base, fp32 LoRA, trainer=gpu: bf16-mixed):
one SFT step, one Hint-GRPO step in which the random model's groups are all hard and regenerated with the
polarity prefilled, one eval batch, and the GRPO export reloaded on the GPU to the trained policy's logits.
Every tensor the steps create must live on the device of the tensors it meets; a CPU run cannot see that.

    python -m pytest -m gpu tests/test_gpu.py
"""

from __future__ import annotations

import json

import pytest
import torch

import msa.stages.grpo as grpo_stage
from conftest import compose_cfg
from test_paper_path import logits_of

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

GPU = ["experiment=paper", "model.tiny_size=test", "model.dtype=bfloat16", "trainer=gpu", "data.n_clips=24",
       "data.limit=2", "data.batch_size=2", "logger=none", "sft.max_epochs=1", "sft.val_max_new_tokens=16",
       "grpo.max_steps=1", "grpo.max_new_tokens=16", "grpo.log_completions_every=1", "eval.max_new_tokens=16",
       "eval.datasets=[demo]"]


def test_sft_grpo_eval_and_export_round_trip_on_cuda(tmp_path, cache_dir, monkeypatch):
    from msa.models import load_policy
    from train import train

    trained = {}
    real_export = grpo_stage.export_policy

    def export(policy, out_dir, extra=None):
        params = list(policy.model.parameters())
        trained["device"] = {p.device.type for p in params}
        trained["trainable_dtypes"] = {p.dtype for p in params if p.requires_grad}
        trained["logits"] = logits_of(policy)
        return real_export(policy, out_dir, extra)

    monkeypatch.setattr(grpo_stage, "export_policy", export)
    runs = {s: tmp_path / s for s in ("cot", "sft", "grpo", "eval")}
    train(compose_cfg([*GPU, "stage=cot"], runs["cot"], cache_dir))
    train(compose_cfg([*GPU, "stage=sft", f"sft.cot={runs['cot'] / 'cot' / 'cot.jsonl'}"], runs["sft"], cache_dir))
    sft_export = runs["sft"] / "checkpoints" / "best"
    train(compose_cfg([*GPU, "stage=grpo", f"init_from={sft_export}"], runs["grpo"], cache_dir))
    grpo_export = runs["grpo"] / "checkpoints" / "final"
    cfg = compose_cfg([*GPU, "stage=eval", f"init_from={grpo_export}"], runs["eval"], cache_dir)
    train(cfg)

    sft = json.loads((runs["sft"] / "metrics.json").read_text())
    grpo = json.loads((runs["grpo"] / "metrics.json").read_text())
    ev = json.loads((runs["eval"] / "metrics.json").read_text())
    assert sft["sft_train"]["steps"] == 1
    assert grpo["grpo_train"]["steps"] == 1 and grpo["grpo_train"]["hint_rate"] > 0  # a hinted group was trained
    assert ev["eval"]["demo"]["n"] == 2  # one eval batch
    assert trained["device"] == {"cuda"} and trained["trainable_dtypes"] == {torch.float32}
    reloaded = load_policy(cfg.model, init_from=grpo_export, trainable=False)
    reloaded.model.to("cuda")
    torch.testing.assert_close(logits_of(reloaded), trained["logits"], atol=1e-3, rtol=1e-3)
