"""The paper's configuration itself on CPU: ``experiment=paper`` (LoRA, gradient checkpointing, frozen towers,
lr 1e-6 GRPO) with only the model swapped to the tiny weights and the trainer to the CPU variant of the GPU
trainer's precision (``trainer=cpu_mixed``: bf16-mixed). The stages run one launch each, as the README's
paper commands do (cot -> sft -> grpo init_from=<sft export> -> eval init_from=<grpo export>), with few steps.

Checked on the way, by wrapping the stages' own loader and export calls:
- every export, reloaded as ``stage=eval`` (and the stages' test passes) reload it, gives the logits of the
  policy at the moment it was exported (SFT: its best epoch; GRPO: the end of training);
- the LoRA matrices move (GRPO at lr 1e-6 included), and nothing but the trainable weights changes;
- each training forward's language-model activations are recomputed in backward (gradient checkpointing).

The tiny random model answers nothing well formed, so every rollout would get the same reward and GRPO no
gradient at all: the format reward is replaced by a pseudo-reward that differs between sampled texts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import msa.stages.common as common
import msa.stages.grpo as grpo_stage
import msa.stages.sft as sft_stage
from conftest import compose_cfg

PAPER = ["experiment=paper", "model.tiny_size=test", "trainer=cpu_mixed"]  # the only swaps: model and trainer
FEW = ["data.n_clips=24", "logger=none", "sft.max_epochs=1", "sft.val_max_new_tokens=8",
       "grpo.max_new_tokens=8", "grpo.log_completions_every=0", "eval.max_new_tokens=8", "eval.datasets=[demo]"]


def probe_inputs(processor):
    """One fixed clip-shaped input (random frames and audio): the logits every comparison is made on."""
    import numpy as np

    conv = [{"role": "user", "content": [{"type": "video", "video": "<clip>"}, {"type": "text", "text": "how?"}]}]
    text = processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    rng = np.random.RandomState(0)
    frames = (rng.rand(4, 56, 56, 3) * 255).astype(np.uint8)
    audio = (rng.randn(32000) * 0.1).astype(np.float32)
    return processor(text=[text], videos=[frames], audio=[audio], audio_from_video_indices=[0],
                     load_audio_from_video=True, fps=2.0, audio_kwargs={"max_length": 32000}, return_tensors="pt",
                     padding=True)


def logits_of(policy) -> torch.Tensor:
    """The policy's logits in eval mode, without autocast, on the device the policy is on; every module's mode
    restored afterwards."""
    modes = [(m, m.training) for m in policy.model.modules()]
    device = next(policy.model.parameters()).device
    inputs = probe_inputs(policy.processor).to(device)
    policy.model.eval()
    try:
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            return policy.model(**inputs, use_audio_in_video=True).logits.float().cpu()
    finally:
        for m, mode in modes:
            m.train(mode)


class Spy:
    """Wraps load_stage_policy and export_policy: what was trained, exported and reloaded."""

    def __init__(self, monkeypatch):
        self.trained = []  # one dict per trainable load: policy, weights before, grad-enabled attention calls
        self.exported = {}  # export dir -> (logits, changed weight names, trainable names, trained index)
        self.reloaded = {}  # export dir -> [logits of each non-trainable load]
        real_load, real_export = common.load_stage_policy, sft_stage.export_policy

        def load(ctx, init_from=None, *, trainable=False):
            policy = real_load(ctx, init_from, trainable=trainable)
            if trainable:
                self.trained.append(self._watch(policy))
            else:
                src = Path(init_from or ctx.artefacts["policy"]).resolve()
                self.reloaded.setdefault(src, []).append(logits_of(policy))
            return policy

        def export(policy, out_dir, extra=None):
            t = next(t for t in self.trained if t["policy"] is policy)
            now = dict(policy.model.named_parameters())
            changed = {n for n, p in now.items() if not torch.equal(p, t["before"][n])}
            trainable = {n for n, p in now.items() if p.requires_grad}
            self.exported[Path(out_dir).resolve()] = (logits_of(policy), changed, trainable, t)
            return real_export(policy, out_dir, extra)

        monkeypatch.setattr(common, "load_stage_policy", load)
        monkeypatch.setattr(sft_stage, "export_policy", export)
        monkeypatch.setattr(grpo_stage, "export_policy", export)

    @staticmethod
    def _watch(policy) -> dict:
        t = {"policy": policy, "before": {n: p.detach().clone() for n, p in policy.model.named_parameters()},
             "calls": {}}
        for name, m in policy.model.named_modules():
            if name.endswith("self_attn") and ".language_model." in name:
                t["calls"][name] = [0, 0]  # [training forwards, recomputations inside backward]

                def hook(_m, _in, _out, name=name):
                    if torch.is_grad_enabled():  # training forwards and their backward recompute; not sampling
                        in_backward = torch._C._current_graph_task_id() != -1
                        t["calls"][name][int(in_backward)] += 1

                m.register_forward_hook(hook)
        return t


def pseudo_format_reward(completions, **_):
    """Differs between sampled texts, so group advantages are not all zero (see the module docstring)."""
    return [(sum(map(ord, str(c))) % 11) / 10 for c in completions]


def run_paper_path(tmp_path, cache_dir, monkeypatch, *, limit: int, batch: int, sft_epochs: int, grpo_steps: int):
    from msa.rl.rewards import REWARD_FUNCS
    from train import train

    monkeypatch.setitem(REWARD_FUNCS, "format", pseudo_format_reward)
    spy = Spy(monkeypatch)
    few = [*FEW, f"data.limit={limit}", f"data.batch_size={batch}", f"sft.max_epochs={sft_epochs}",
           f"grpo.max_steps={grpo_steps}"]
    runs = {s: tmp_path / s for s in ("cot", "sft", "grpo", "eval")}
    # the README's paper commands, stage by stage (modulo model/trainer and the step counts)
    train(compose_cfg([*PAPER, "stage=cot", *few], runs["cot"], cache_dir))
    train(compose_cfg([*PAPER, "stage=sft", f"sft.cot={runs['cot'] / 'cot' / 'cot.jsonl'}", *few], runs["sft"],
                      cache_dir))
    sft_export = runs["sft"] / "checkpoints" / "best"
    train(compose_cfg([*PAPER, "stage=grpo", f"init_from={sft_export}", *few], runs["grpo"], cache_dir))
    grpo_export = runs["grpo"] / "checkpoints" / "final"
    train(compose_cfg([*PAPER, "stage=eval", f"init_from={grpo_export}", *few], runs["eval"], cache_dir))
    metrics = {s: json.loads((runs[s] / "metrics.json").read_text()) for s in ("sft", "grpo", "eval")}
    return spy, sft_export.resolve(), grpo_export.resolve(), metrics


def check_paper_path(spy, sft_export, grpo_export, metrics):
    assert len(spy.trained) == 2  # sft, grpo
    sft, grpo = spy.trained
    steps = {"sft": metrics["sft"]["sft_train"]["steps"], "grpo": metrics["grpo"]["grpo_train"]["steps"]}
    assert steps["sft"] >= 2 and steps["grpo"] >= 2
    # 1. exports reload to the trained policy: the SFT one in the GRPO run's base and its test pass, the GRPO
    #    one in its test pass and in stage=eval
    sft_logits, sft_changed, sft_trainable, t = spy.exported[sft_export]
    assert t is sft
    assert spy.reloaded[sft_export] and all(torch.equal(x, sft_logits) for x in spy.reloaded[sft_export])
    grpo_logits, grpo_changed, grpo_trainable, t = spy.exported[grpo_export]
    assert t is grpo
    assert len(spy.reloaded[grpo_export]) == 2  # grpo's test pass and stage=eval
    assert all(torch.equal(x, grpo_logits) for x in spy.reloaded[grpo_export])
    assert (grpo_logits - sft_logits).abs().max() > 0  # GRPO changed the policy, and its export kept that
    # 2. LoRA moves (GRPO at lr 1e-6: a bf16 adapter would not), and only trainable weights change
    for changed, trainable in ((sft_changed, sft_trainable), (grpo_changed, grpo_trainable)):
        assert trainable and all("lora_" in n for n in trainable)
        assert changed <= trainable
        assert {n for n in trainable if "lora_A" in n} <= changed and {n for n in trainable if "lora_B" in n} <= changed
    assert all(p.dtype == torch.float32 for n, p in grpo["policy"].model.named_parameters() if n in grpo_trainable)
    # 3. activations recomputed: each training forward runs each attention twice (forward + backward replay)
    for stage, t in (("sft", sft), ("grpo", grpo)):
        assert len(t["calls"]) == 2  # the tiny model's two layers
        # every training forward (GRPO's shared-prompt step makes two a pass: prompt, then completions) is
        # replayed once in backward; without checkpointing nothing runs inside backward
        assert all(fwd >= steps[stage] and replay == fwd for fwd, replay in t["calls"].values()), \
            (stage, t["calls"], steps[stage])
    # the stages ran the paper's settings, and evaluated
    assert "demo" in metrics["eval"]["eval"] and metrics["eval"]["eval"]["demo"]["n"] > 0


def test_paper_configuration_composes_with_only_model_and_trainer_swapped(make_cfg):
    cfg = make_cfg(*PAPER)
    paper = make_cfg("experiment=paper")
    assert cfg.model.lora.enabled and cfg.model.gradient_checkpointing and cfg.model.freeze.vision
    assert cfg.model.freeze.audio and cfg.grpo.lr == 1e-6 and cfg.trainer.precision == paper.trainer.precision
    assert cfg.model.lora == paper.model.lora and cfg.grpo == paper.grpo and cfg.sft == paper.sft


def test_paper_path_short(tmp_path, cache_dir, monkeypatch):
    """2 SFT steps (one epoch of 2 clips), 2 GRPO steps of 1 prompt x G=4 at lr 1e-6, eval of 2 test clips."""
    check_paper_path(*run_paper_path(tmp_path, cache_dir, monkeypatch, limit=2, batch=1, sft_epochs=1,
                                     grpo_steps=2))


@pytest.mark.slow
def test_paper_path_full(tmp_path, cache_dir, monkeypatch):
    """More of everything: 2 SFT epochs of 8 clips in batches of 2 (the best epoch exported), 6 GRPO steps of
    2 prompts x G=4, eval of 8 test clips."""
    check_paper_path(*run_paper_path(tmp_path, cache_dir, monkeypatch, limit=8, batch=2, sft_epochs=2,
                                     grpo_steps=6))
