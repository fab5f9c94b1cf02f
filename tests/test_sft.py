"""SFT on the tiny model: the loss covers the answer only, one batch of each answer mode changes the
trainable weights and only those, and a mid-epoch checkpoint resumes exactly (same batches, same
step count, same weights)."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from conftest import LORA_R4
from msa.data.collate import MultimodalCollator
from msa.data.datamodule import DemoDataModule
from msa.models import load_policy, unwrap_peft
from msa.schedules import warmup_cosine
from msa.stages.sft import SFTModule, load_targets, score_targets


@pytest.fixture(scope="module")
def processor(tiny_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_dir)


def test_prompt_tokens_carry_no_loss(processor):
    """Hand-built text-only example: every label before the answer is -100; the answer and <|im_end|> keep ids."""
    answer = "<polarity>positive</polarity><think>warm words</think><score>0.6</score>"
    sample = {"id": "v$_$1", "dataset": "demo", "transcript": "I like it", "label": 0.6, "label_T": 0.6,
              "label_A": 0.6, "label_V": 0.6, "video": None, "audio": None}
    collate = MultimodalCollator(processor, modalities=("text",), targets={"v$_$1": answer})
    batch = collate([sample])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    answer_ids = processor.tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
    n = len(answer_ids)
    # the answer is the tail of the sequence (maybe followed by the template's newline)
    kept = labels[labels != -100].tolist()
    assert kept[:n] == answer_ids
    first = (labels != -100).nonzero()[0].item()
    assert ids[first:first + n].tolist() == answer_ids
    assert (labels[:first] == -100).all()
    user_id = processor.tokenizer.convert_tokens_to_ids("user")
    assert user_id not in kept


def test_warmup_cosine_schedule():
    # 10 steps, 2 warmup: 0.5, 1.0, then cosine from 1 to 0 over 8 steps
    assert warmup_cosine(0, 10, 2) == 0.5 and warmup_cosine(1, 10, 2) == 1.0
    assert warmup_cosine(2, 10, 2) == 1.0
    assert abs(warmup_cosine(6, 10, 2) - 0.5) < 1e-12  # halfway
    assert warmup_cosine(10, 10, 2) == 0.0


def _labels(**by_id):
    import pandas as pd

    return pd.DataFrame({"id": list(by_id), "label": list(by_id.values())})


def test_load_targets_reads_cot_records(tmp_path):
    path = tmp_path / "cot.jsonl"
    rec = {"id": "a", "dataset": "demo", "label": 0.0,
           "answer": "<polarity>neutral</polarity><think>x</think><score>0.0</score>"}
    other = {"id": "b", "dataset": "mosi", "answer": "..."}
    path.write_text(json.dumps(rec) + "\n" + json.dumps(other) + "\n" + '{"id": "c", "datas')  # torn tail
    assert load_targets(path, "demo", labels=_labels(a=0.0)) == {"a": rec["answer"]}
    with pytest.raises(FileNotFoundError, match="sft.cot"):
        load_targets(tmp_path / "none.jsonl", "demo", labels=_labels(a=0.0))


def _cot_file(tmp_path, **labels):
    path = tmp_path / "cot.jsonl"
    path.write_text("".join(json.dumps({"id": i, "dataset": "demo", "label": v, "answer": f"<score>{v}</score>"}) + "\n"
                            for i, v in labels.items()))
    return path


def test_a_cot_file_whose_labels_were_corrected_since_is_refused(tmp_path):
    """Two labels corrected after the CoT run: SFT would train <score>0.8</score> for a clip now at -0.8."""
    path = _cot_file(tmp_path, a=0.8, b=0.4, c=-0.2)
    with pytest.raises(ValueError, match=r"demo: 2 of 3 records .* disagree .*a \(CoT label 0.8, label file -0.8\), "
                                         r"b \(CoT label 0.4, label file -0.4\).*rerun stage=cot"):
        load_targets(path, "demo", labels=_labels(a=-0.8, b=-0.4, c=-0.2))


def test_a_cot_file_of_another_dataset_with_overlapping_ids_is_refused(tmp_path):
    path = _cot_file(tmp_path, a=0.8, x=0.4, y=-0.2)
    with pytest.raises(ValueError, match=r"2 of 3 records .* name clips the label file does not have \(x, y\)"):
        load_targets(path, "demo", labels=_labels(a=0.8, b=0.4))


def test_a_cot_set_written_for_another_dataset_is_refused_by_its_settings(tmp_path):
    path = _cot_file(tmp_path, a=0.8)
    (tmp_path / "cot_settings.json").write_text(json.dumps({"data": {"name": "demo_mosi", "root": "/d"}}))
    with pytest.raises(ValueError, match=r"written for data=demo_mosi .*this run trains data=demo"):
        load_targets(path, "demo", labels=_labels(a=0.8))


@pytest.fixture(scope="module")
def dm_factory(cache_dir, processor):
    def make(answer, targets=None, batch_size=2, shuffle=False):
        dm = DemoDataModule(cache_dir / "data" / "demo_sft", n_clips=24, batch_size=batch_size,
                            cache_dir=cache_dir / "media", shuffle=shuffle, limit=4, answer=answer,
                            targets=targets, video_min_pixels=3136, video_max_pixels=8192)
        dm.attach_processor(processor)
        dm.prepare_data()
        return dm
    return make


def policy_for(tiny_cfg):
    torch.manual_seed(0)
    return load_policy(tiny_cfg(*LORA_R4))


@pytest.mark.parametrize("answer", ["dc", "score"])
def test_one_batch_changes_only_trainable_weights(tiny_cfg, dm_factory, answer):
    from msa.data.labels import read_labels

    dm = dm_factory(answer)
    frame = read_labels(dm.root, "demo")
    if answer == "score":
        targets = score_targets(frame, "demo")
    else:
        targets = {r.id: f"<polarity>neutral</polarity><think>cue</think><score>{r.label:.1f}</score>"
                   for r in frame.itertuples()}
    dm.set_targets(targets)
    policy = policy_for(tiny_cfg)
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    module = SFTModule(policy, dataset="demo", range_dataset="demo", answer=answer, lr=1e-2, weight_decay=0.0,
                       warmup_ratio=0.0, val_max_new_tokens=8)
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, datamodule=dm)
    changed = {n for n, p in policy.model.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert changed and changed <= trainable
    assert {n for n in trainable if "lora_B" in n} <= changed


class _Record(L.Callback):
    """Ids of every training batch; optionally stops the run after ``stop_at`` steps (a crash stand-in)."""

    def __init__(self, stop_at=None):
        self.ids, self.stop_at = [], stop_at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.ids.append(tuple(batch["ids"]))
        if self.stop_at is not None and trainer.global_step >= self.stop_at:
            trainer.should_stop = True


@pytest.mark.parametrize("length", [{"max_steps": 6}, pytest.param({"max_epochs": 2}, marks=pytest.mark.slow)],
                         ids=["max_steps", "max_epochs"])
def test_resume_mid_epoch_continues_exactly(tiny_cfg, dm_factory, tmp_path, length):
    """4 shuffled batches per epoch; 6 steps, or 2 epochs (8 steps: the schedule then asks Lightning for the
    step count, which builds the train loader before the checkpoint is restored, Lightning #20550).
    Stopped after step 5 (mid-epoch 2) and resumed from that checkpoint, the run trains on the same
    batches in the same order, ends at the same step and with the same weights as the uninterrupted run."""
    import warnings

    from msa.data.labels import read_labels
    from msa.models import trainable_parameters

    def fit(ckpt_dir, stop_at=None, ckpt_path=None):
        dm = dm_factory("score", batch_size=1, shuffle=True)
        dm.set_targets(score_targets(read_labels(dm.root, "demo"), "demo"))
        policy = policy_for(tiny_cfg)
        module = SFTModule(policy, dataset="demo", range_dataset="demo", answer="score", lr=1e-3,
                           weight_decay=0.0, warmup_ratio=0.2, val_max_new_tokens=4)
        rec = _Record(stop_at)
        ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_train_steps=1)
        trainer = L.Trainer(**length, logger=False, enable_progress_bar=False, limit_val_batches=0,
                            accelerator="cpu", callbacks=[ckpt, rec])
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
        weights = {k: v.detach().clone() for k, v in trainable_parameters(policy.model).items()}
        return trainer, rec.ids, weights

    steps = length.get("max_steps", 4 * length.get("max_epochs", 0))
    _, ids_full, w_full = fit(tmp_path / "full")
    assert len(ids_full) == steps and len(set(ids_full[:4])) == 4 and ids_full[4:6] != ids_full[:2]

    t1, ids_a, _ = fit(tmp_path / "cut", stop_at=5)
    assert t1.global_step == 5
    saved = torch.load(tmp_path / "cut" / "last.ckpt", weights_only=False)
    assert all(k.startswith("model.") and "lora_" in k for k in saved["state_dict"])  # adapter only
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t2, ids_b, w_resumed = fit(tmp_path / "cut", ckpt_path=str(tmp_path / "cut" / "last.ckpt"))
    assert not [w for w in caught if "not resumable" in str(w.message)]
    assert t2.global_step == steps
    assert ids_a + ids_b == ids_full  # the rest of the interrupted epoch, nothing twice
    assert all(torch.equal(w_resumed[k], w_full[k]) for k in w_full)


def test_lora_moves_at_lr_1e6_under_the_paper_precision(tiny_cfg, dm_factory, make_cfg):
    """experiment=paper's trainer precision, on CPU, base weights in bf16 as on a GPU: three steps at lr 1e-6
    move every lora_A matrix (AdamW steps ~1e-6; in bf16, |lora_A| ~ 0.1 has an ulp of ~5e-4, so bf16-true
    rounds them away) and keep the trainable weights and the optimizer state in fp32."""
    from msa.data.labels import read_labels

    precision = make_cfg("experiment=paper").trainer.precision
    dm = dm_factory("score", batch_size=1)
    dm.set_targets(score_targets(read_labels(dm.root, "demo"), "demo"))
    torch.manual_seed(0)
    policy = load_policy(tiny_cfg(*LORA_R4, "model.dtype=bfloat16"))
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_A" in n}
    module = SFTModule(policy, dataset="demo", range_dataset="demo", answer="score", lr=1e-6, weight_decay=0.0,
                       warmup_ratio=0.0, val_max_new_tokens=4)
    trainer = L.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, accelerator="cpu", precision=precision)
    trainer.fit(module, datamodule=dm)
    params = dict(policy.model.named_parameters())
    assert all(not torch.equal(params[n], p) for n, p in before.items()), precision
    assert all(p.dtype == torch.float32 for p in params.values() if p.requires_grad)
    state = trainer.optimizers[0].state
    assert state and all(s["exp_avg"].dtype == torch.float32 for s in state.values())


def test_bf16_true_training_is_refused_naming_the_precision(tiny_cfg):
    torch.manual_seed(0)
    policy = load_policy(tiny_cfg(*LORA_R4))
    module = SFTModule(policy, dataset="demo", range_dataset="demo", answer="score", lr=1e-6, weight_decay=0.0,
                       warmup_ratio=0.0, val_max_new_tokens=4)
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        accelerator="cpu", precision="bf16-true")
    with pytest.raises(ValueError, match="trainer.precision='bf16-true'"):
        trainer.fit(module, train_dataloaders=[])


def test_gradient_checkpointing_recomputes_activations_in_training(cache_dir, dm_factory, make_cfg):
    """The paper's model settings (gradient_checkpointing=true, LoRA) on the tiny weights, one SFT step under
    Lightning: each language-model attention runs twice (forward, and again in backward), 2 x 2 layers = 4;
    as loaded (eval mode) checkpointing was off: 2. The frozen towers stay in eval mode."""
    from msa.data.labels import read_labels

    cfg = make_cfg("experiment=paper", "model.tiny_size=test", "trainer=cpu_mixed")
    assert cfg.model.gradient_checkpointing and cfg.model.lora.enabled
    dm = dm_factory("score", batch_size=1)
    dm.set_targets(score_targets(read_labels(dm.root, "demo"), "demo"))
    torch.manual_seed(0)
    policy = load_policy(cfg.model)
    attn = [m for n, m in policy.model.named_modules() if n.endswith("language_model.layers.0.self_attn")
            or n.endswith("language_model.layers.1.self_attn")]
    calls = []
    for m in attn:
        m.register_forward_hook(lambda *a: calls.append(1))
    module = SFTModule(policy, dataset="demo", range_dataset="demo", answer="score", lr=1e-6, weight_decay=0.0,
                       warmup_ratio=0.0, val_max_new_tokens=4)
    L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0,
              accelerator=cfg.trainer.accelerator, precision=cfg.trainer.precision).fit(module, datamodule=dm)
    assert len(attn) == 2 and len(calls) == 4
    inner = unwrap_peft(policy.model).model
    assert not inner.visual.training and not inner.audio_tower.training and inner.language_model.training


# ---- a real kill mid-epoch, then a resume ---------------------------------------------------------

def _saved_step(path):
    try:
        return torch.load(path, weights_only=False, map_location="cpu")["global_step"]
    except Exception:  # not written yet, or being written
        return -1


def _export(run_dir):
    from safetensors.torch import load_file

    best = run_dir / "checkpoints" / "best"
    files = sorted(best.glob("*.safetensors"))
    assert files, f"no export in {best}"
    return {f"{f.name}:{k}": v for f in files for k, v in load_file(str(f)).items()}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkill_mid_epoch_then_resume_ends_bit_identical(cache_dir, tmp_path):
    """6 batches an epoch, 2 epochs, last.ckpt every 2 steps, 2 loader workers, length buckets on. The run is
    SIGKILLed once a checkpoint at step >= 8 exists (mid-epoch 2) and resumed from last.ckpt: its final
    weights are bit-identical to those of an uninterrupted run (before the fix the resumed epoch restarted
    from its first batch: batches trained twice, others never, weights off by up to 1.4e-4)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, MSA_CACHE=str(cache_dir), HF_HUB_OFFLINE="1", PYTHONPATH=str(root))
    args = ["train.py", "stage=sft", "sft.answer=score", "model=tiny", "data.n_clips=24", "data.limit=6",
            "data.batch_size=1", "data.num_workers=2", "data.bucket_by_length=true", "data.eval_datasets=[demo]",
            "sft.max_epochs=2", "sft.val_every_n_epochs=2", "sft.val_max_new_tokens=8", "eval.max_new_tokens=8",
            "callbacks.step_checkpoint.every_n_train_steps=2", "logger=none"]

    def run(run_dir, *extra):
        done = subprocess.run([sys.executable, *args, f"hydra.run.dir={run_dir}", *extra], cwd=root, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]

    run(tmp_path / "full")
    cut = tmp_path / "cut"
    last = cut / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen([sys.executable, *args, f"hydra.run.dir={cut}"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and _saved_step(last) < 8:
        time.sleep(0.1)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = torch.load(last, weights_only=False)
    position = saved["DemoDataModule"]["train_position"]
    assert position["epoch"] == 1 and 0 < position["batches_done"] < 6  # killed mid-epoch 2
    run(tmp_path / "resumed", f"ckpt_path={last}")
    full, resumed = _export(tmp_path / "full"), _export(tmp_path / "resumed")
    assert full.keys() == resumed.keys()
    assert all(torch.equal(full[k], resumed[k]) for k in full)
