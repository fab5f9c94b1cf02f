"""One GRPO step on the tiny model with a scripted sampler, so that every branch of the step
(hard detection, hint regeneration, drop, keep) is exercised with rewards we can work out by hand.

The scripted "policy" always answers prompt 0 with the wrong polarity (identical answers: zero
reward std, zero advantages) and prompt 1 with the right polarity and scores 0.2/0.4/0.6/0.8.
With the hint, prompt 0's group is regenerated with ``<polarity>positive</polarity>`` prefilled and
scores 0.2/0.4/0.6/0.8 follow, so its advantages become non-zero.
"""

from __future__ import annotations

import glob

import lightning as L
import pandas as pd
import pytest
import torch

from conftest import LORA_R4
from msa.data.datamodule import DemoDataModule
from msa.dc import polarity_of
from msa.models import load_policy, unwrap_peft
from msa.stages.grpo import GRPOModule
from scripted_rollouts import rollout_from_texts

G = 4
# Where these tests leave conf/grpo/default.yaml: short answers, a large lr (one step must move the
# adapter), one step, every step's completions written.
GRPO_TEST = (f"grpo.num_generations={G}", "grpo.max_new_tokens=48", "grpo.lr=1e-2", "grpo.max_steps=1",
             "grpo.log_completions_every=1")


@pytest.fixture(scope="module")
def gcfg(grpo_cfg):
    """The GRPO node these tests train with, plus a test's own overrides."""
    return lambda *overrides: grpo_cfg(*GRPO_TEST, *overrides)


def scripted_sampler(calls: list):
    """Stands in for msa.rl.rollout.sample (GRPOModule's ``sampler``): deterministic answers that depend
    on the prompt and hint."""

    def fake(model, thinker, tokenizer, batch, media, rows, *, group_size, prefills=None, **kw):
        calls.append({"rows": rows.tolist(), "prefills": prefills})
        texts, pre_lens = [], []
        for j, r in enumerate(rows.tolist()):
            true = polarity_of(float(batch["label"][r]), "demo")
            wrong = "negative" if true != "negative" else "positive"
            for g in range(group_size):
                if prefills is not None:
                    pre = prefills[j]
                    texts.append(pre + f"<think>hinted</think><score>{0.2 * (g + 1):.1f}</score>")
                    pre_lens.append(len(tokenizer(pre, add_special_tokens=False)["input_ids"]))
                elif r == 0:  # always wrong, always the same
                    texts.append(f"<polarity>{wrong}</polarity><think>same</think><score>-0.5</score>")
                    pre_lens.append(0)
                else:  # right polarity, scores spread
                    texts.append(f"<polarity>{true}</polarity><think>ok</think><score>{0.2 * (g + 1):.1f}</score>")
                    pre_lens.append(0)
        return rollout_from_texts(tokenizer, texts, pre_lens, rows, group_size)

    return fake


@pytest.fixture(scope="module")
def demo(cache_dir, tiny_dir):
    from transformers import AutoProcessor

    dm = DemoDataModule(cache_dir / "data" / "demo_grpo", n_clips=24, batch_size=2, cache_dir=cache_dir / "media",
                        shuffle=False, video_min_pixels=3136, video_max_pixels=8192)
    dm.attach_processor(AutoProcessor.from_pretrained(tiny_dir))
    dm.prepare_data()
    dm.setup("fit")
    # prompt 1 must have a non-neutral label (scores 0.2..0.8 must sit on its side); prompt 0 anything
    frame = dm.frames["train"]
    pos = frame[frame.label > 0.1].index[:1].tolist()
    neg = frame[frame.label < -0.1].index[:1].tolist()
    dm.frames["train"] = frame.loc[neg + pos].reset_index(drop=True)
    from msa.data.dataset import MSADataset

    dm.datasets["train"] = MSADataset(dm.frames["train"], "demo", dm.cache, modalities=dm.modalities)
    return dm


def run_step(tiny_cfg, gcfg, demo, tmp_path, *overrides, hint=True, hard=True):
    calls = []
    torch.manual_seed(0)
    policy = load_policy(tiny_cfg(*LORA_R4))
    module = GRPOModule(policy, gcfg(*overrides), dataset="demo", hint=hint, hard=hard, out_dir=tmp_path,
                        sampler=scripted_sampler(calls))
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, train_dataloaders=demo.train_dataloader())
    files = sorted(glob.glob(str(tmp_path / "completions" / "*.parquet")))
    table = pd.read_parquet(files[0]) if files else None
    return module, policy, before, calls, table


def test_hint_replaces_hard_group_and_creates_signal(tiny_cfg, gcfg, demo, tmp_path):
    module, policy, before, calls, table = run_step(tiny_cfg, gcfg, demo, tmp_path, hint=True)
    assert len(calls) == 2 and calls[1]["rows"] == [0]  # one batched regeneration, hard prompt only
    assert module.history[-1]["loss_rows"] == 2 * G  # the hinted group replaced, not added
    assert calls[1]["prefills"] == ["<polarity>negative</polarity>"]
    h = module.history[-1]
    assert h["hard/frac"] == 0.5 and h["hint/rate"] == 0.5
    g0 = table[table.prompt_id == table.prompt_id.iloc[0]]
    assert g0.hinted.all() and g0.completion.str.startswith("<polarity>negative</polarity>").all()
    # hinted group: format 1, polarity 1, score 1 - |s - y| / 2 with distinct s -> distinct rewards
    assert g0.advantage.abs().min() > 0.1
    # prompt 1: right polarity, scores 0.2..0.8 -> non-zero advantages, not hinted
    g1 = table[table.prompt_id != table.prompt_id.iloc[0]]
    assert not g1.hinted.any() and g1.advantage.abs().min() > 0.1
    # reward before the hint: group 0 earned 1 (format) each, group 1 2 + score; after: group 0 earns 2 + score
    assert h["hint/reward_after"] > h["own_reward"]


def test_without_hint_hard_group_keeps_zero_advantages(tiny_cfg, gcfg, demo, tmp_path):
    module, policy, before, calls, table = run_step(tiny_cfg, gcfg, demo, tmp_path, hint=False)
    assert len(calls) == 1  # no regeneration
    g0 = table[table.prompt_id == table.prompt_id.iloc[0]]
    assert not g0.hinted.any()
    assert (g0.advantage == 0).all()  # identical wrong answers: zero std, zero advantage
    assert module.history[-1]["hard/frac"] == 0.5 and module.history[-1]["hint/rate"] == 0.0
    assert module.history[-1]["hard_ids"] == demo.frames["train"]["id"][0]  # prompt 0 was hard, prompt 1 not


def test_hard_false_drops_hard_groups(tiny_cfg, gcfg, demo, tmp_path):
    module, policy, before, calls, table = run_step(tiny_cfg, gcfg, demo, tmp_path, hint=True, hard=False)
    assert len(calls) == 1  # dropped groups are not regenerated
    assert module.history[-1]["skipped_step"] == 0.0  # prompt 1 still trains
    assert module.history[-1]["loss_rows"] == G  # only prompt 1's group is in the loss


def test_only_trainable_parameters_change(tiny_cfg, gcfg, demo, tmp_path):
    module, policy, before, calls, table = run_step(tiny_cfg, gcfg, demo, tmp_path, hint=True)
    changed = {n for n, p in policy.model.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert changed <= trainable
    assert {n for n in trainable if "lora_B" in n} <= changed  # every adapter output matrix moved


def test_prefill_tokens_get_zero_gradient(demo):
    """The loss mask built in the step zeroes the prefill: d loss / d logp there is exactly 0."""
    from msa.rl.losses import grpo_loss

    fake = scripted_sampler([])
    tok = demo.processor.tokenizer
    batch = next(iter(demo.train_dataloader()))
    s = fake(None, None, tok, batch, None, torch.tensor([0]), group_size=G, prefills=["<polarity>negative</polarity>"])
    loss_mask = (s.completion_mask * (1 - s.prefill_mask)).float()
    logp = torch.randn(loss_mask.shape, requires_grad=True)
    ref = torch.randn(loss_mask.shape)
    loss, _ = grpo_loss(logp, logp.detach(), ref, torch.tensor([1.0, -1.0, 0.5, -0.5]), loss_mask, beta=0.1)
    loss.backward()
    assert s.prefill_mask.sum() > 0
    assert torch.all(logp.grad[s.prefill_mask.bool()] == 0)
    assert torch.all(logp.grad[loss_mask.bool()] != 0)


def test_anchored_hint_scores_the_hinted_group_against_the_group_it_replaces(tiny_cfg, gcfg, demo, tmp_path):
    """hint_mode=anchored: prompt 0's own group scored 1.0 each (format only); its hinted rollouts
    (format 1 + polarity 1 + score) are centred on that 1.0, scaled by the std of all 8 rewards, so every
    one of them is pushed up, and the prefill tokens are in the loss (the polarity itself is learned)."""
    module, policy, before, calls, table = run_step(tiny_cfg, gcfg, demo, tmp_path, "grpo.hint_mode=anchored",
                                                    hint=True)
    g0 = table[table.prompt_id == table.prompt_id.iloc[0]]
    assert g0.hinted.all()
    r = g0.reward.to_numpy()
    assert (r > 2.0).all()  # format 1 + polarity 1 + a score reward > 0
    both = torch.tensor([1.0] * G + r.tolist())
    expected = (torch.tensor(r) - 1.0) / (both.std() + 1e-4)
    assert torch.allclose(torch.tensor(g0.advantage.to_numpy()), expected.double(), atol=1e-5)
    assert (g0.advantage > 0).all()
    # prompt 1 (not hard) is scored within its own group as before: advantages sum to 0
    g1 = table[table.prompt_id != table.prompt_id.iloc[0]]
    assert abs(g1.advantage.sum()) < 1e-5
    # the paper's reading on the same step: the hinted group is its own baseline
    _, _, _, _, paper = run_step(tiny_cfg, gcfg, demo, tmp_path / "paper", hint=True)
    p0 = paper[paper.prompt_id == paper.prompt_id.iloc[0]]
    assert abs(p0.advantage.sum()) < 1e-5 and (p0.advantage < 0).any()


def test_prefill_tokens_join_the_loss_in_anchored_mode(demo):
    """Rollout.loss_mask: the sampled tokens (paper reading) or the prefill too (hint_mode=anchored)."""
    fake = scripted_sampler([])
    tok = demo.processor.tokenizer
    batch = next(iter(demo.train_dataloader()))
    s = fake(None, None, tok, batch, None, torch.tensor([0]), group_size=G, prefills=["<polarity>negative</polarity>"])
    assert s.prefill_mask.sum() > 0
    assert torch.all(s.loss_mask[s.prefill_mask.bool()] == 0)
    sampled = s.loss_mask.sum()
    s.prefill_in_loss = True
    assert torch.all(s.loss_mask[s.prefill_mask.bool()] == 1)
    assert s.loss_mask.sum() == sampled + s.prefill_mask.sum()
    assert torch.equal(s.lengths, (s.completion_mask * (1 - s.prefill_mask)).float().sum(1))  # sampled only
    assert s.select(torch.arange(G)).prefill_in_loss  # the flag survives selection


def test_unknown_hint_mode_is_refused(tiny_cfg, gcfg):
    with pytest.raises(ValueError, match="grpo.hint_mode"):
        GRPOModule(load_policy(tiny_cfg(*LORA_R4)), gcfg("grpo.hint_mode=always"), dataset="demo", hint=True,
                   hard=True, out_dir=".")


def test_num_generations_below_two_is_refused(tiny_cfg, gcfg):
    with pytest.raises(ValueError, match="num_generations"):
        GRPOModule(load_policy(tiny_cfg(*LORA_R4)), gcfg("grpo.num_generations=1"), dataset="demo", hint=True,
                   hard=True, out_dir=".")


def test_reused_encoder_outputs_match_recomputed(tiny_cfg, demo):
    """Scoring with cached tower outputs equals scoring with the towers re-run on each row's raw media,
    and a seeded sample gives the same tokens both ways (hint prefill included)."""
    from msa.models.encode import encode_media
    from msa.rl.rollout import completion_logits, sample

    policy = load_policy(tiny_cfg(*LORA_R4))
    tok = policy.tokenizer
    batch = next(iter(demo.train_dataloader()))
    thinker = unwrap_peft(policy.model)
    media = encode_media(thinker, batch)
    rows = torch.tensor([1, 0])
    kw = dict(group_size=2, max_new_tokens=6, temperature=1.0, top_p=1.0, use_audio_in_video=True,
              prefills=["<polarity>positive</polarity>", "<polarity>negative</polarity>"], prefill_follows="<think>")
    torch.manual_seed(3)
    a = sample(policy.model, thinker, tok, batch, media, rows, **kw)
    torch.manual_seed(3)
    b = sample(policy.model, thinker, tok, batch, None, rows, **kw)
    assert torch.equal(a.completion_ids, b.completion_ids) and a.texts == b.texts
    prompt_rows = rows.repeat_interleave(2)
    with torch.no_grad():
        la = completion_logits(policy.model, thinker, batch, media, prompt_rows, a.completion_ids,
                               a.completion_mask, True)
        lb = completion_logits(policy.model, thinker, batch, None, prompt_rows, a.completion_ids,
                               a.completion_mask, True)
    assert torch.allclose(la, lb, atol=1e-5)


def test_media_special_tokens_are_never_sampled_and_scored_as_impossible(tiny_cfg, demo):
    """A sampled <|audio_bos|> would break the next forward's TMRoPE indexing: the sampler suppresses
    it (even when the model strongly prefers it), and the scoring pass gives it log-prob ~ -inf."""
    from msa.generation import suppressed_ids
    from msa.models.encode import encode_media
    from msa.rl.losses import token_logprobs
    from msa.rl.rollout import completion_logits, sample

    policy = load_policy(tiny_cfg("model.lora.enabled=false"))
    tok = policy.tokenizer
    bad = suppressed_ids(tok)
    thinker = unwrap_peft(policy.model)
    with torch.no_grad():  # make the media tokens the model's favourites
        thinker.lm_head.weight[bad] *= 0
        thinker.lm_head.bias = None
        thinker.lm_head.weight[bad] += thinker.lm_head.weight.abs().max() * 5
    batch = next(iter(demo.train_dataloader()))
    media = encode_media(thinker, batch)
    torch.manual_seed(0)
    s = sample(policy.model, thinker, tok, batch, media, torch.tensor([0, 1]), group_size=2, max_new_tokens=8,
               temperature=1.0, top_p=1.0, use_audio_in_video=True)
    assert not any(t in bad for t in s.completion_ids[s.completion_mask.bool()].tolist())
    with torch.no_grad():
        logits = completion_logits(policy.model, thinker, batch, media, torch.tensor([0, 0, 1, 1]),
                                   s.completion_ids, s.completion_mask, True, suppress=bad)
    probe = torch.full_like(s.completion_ids, bad[0])
    assert (token_logprobs(logits, probe) < -1e6).all()


class _StopAt(L.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def test_resume_samples_the_same_rollouts(tiny_cfg, gcfg, demo, tmp_path):
    """Real sampling, 3 steps: stopped after step 2 and resumed from its checkpoint, the run draws the
    same rollouts, keeps the earlier steps' history and ends with the same weights."""
    from msa.models import trainable_parameters

    def fit(out, stop_at=None, ckpt_path=None):
        L.seed_everything(0)
        policy = load_policy(tiny_cfg(*LORA_R4))
        module = GRPOModule(policy, gcfg("grpo.max_new_tokens=12", "grpo.lr=1e-3", "grpo.max_steps=3"),
                            dataset="demo", hint=True, hard=True, out_dir=out)
        ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=out / "ckpt", save_last=True, every_n_train_steps=1)
        callbacks = [ckpt] + ([_StopAt(stop_at)] if stop_at else [])
        trainer = L.Trainer(max_steps=3, logger=False, enable_progress_bar=False, limit_val_batches=0,
                            accelerator="cpu", callbacks=callbacks)
        trainer.fit(module, train_dataloaders=demo.train_dataloader(), ckpt_path=ckpt_path)
        weights = {k: v.detach().clone() for k, v in trainable_parameters(policy.model).items()}
        return trainer, [h["reward"] for h in module.history], weights

    _, rewards_full, w_full = fit(tmp_path / "full")
    t1, rewards_cut, _ = fit(tmp_path / "cut", stop_at=2)
    assert t1.global_step == 2 and rewards_cut == rewards_full[:2]
    t2, rewards_resumed, w_resumed = fit(tmp_path / "cut", ckpt_path=str(tmp_path / "cut" / "ckpt" / "last.ckpt"))
    assert t2.global_step == 3
    assert rewards_resumed == rewards_full  # the earlier steps' history came back with the checkpoint

    def table(out):
        files = sorted((out / "completions").glob("*.parquet"))
        assert len(files) == 3
        return [pd.read_parquet(f)["completion"].tolist() for f in files]

    full, cut = table(tmp_path / "full"), table(tmp_path / "cut")
    assert cut == full  # step 3 after the resume drew exactly the rollouts of the uninterrupted run
    assert len(set(full[2])) > 1  # real sampling, not one repeated answer
    assert all(torch.equal(w_resumed[k], w_full[k]) for k in w_full)


@pytest.mark.parametrize("polarity", ["negative", "neutral", "positive"])
def test_hint_prefill_is_a_token_prefix_of_the_sft_answers(tiny_dir, polarity):
    """The hint must end on a token boundary that SFT answers have: its ids are the first ids of a
    tokenized DC answer with that polarity (tokenized alone, "</polarity>" ends in a lone ">", whereas
    answers write "><"), and they still carry the whole polarity word."""
    from transformers import AutoTokenizer

    from msa.dc import HINT_FOLLOWS, format_answer, hint_prefill
    from msa.generation import prefix_ids

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    ids = prefix_ids(tok, hint_prefill(polarity), HINT_FOLLOWS)
    answer = tok(format_answer(polarity, "Text: the words are warm.", 0.4, "sims"), add_special_tokens=False)
    assert answer["input_ids"][: len(ids)] == ids
    assert tok.decode(ids).startswith(f"<polarity>{polarity}<")
    alone = tok(hint_prefill(polarity), add_special_tokens=False)["input_ids"]
    assert answer["input_ids"][: len(alone)] != alone  # the bug this guards against, on this tokenizer


def record_losses(monkeypatch) -> list[dict]:
    """Every grpo_loss call of the GRPO step: its inputs (detached) and statistics, in call order."""
    import msa.stages.grpo as stage

    calls, real = [], stage.grpo_loss

    def recorded(logp, old_logp, ref_logp, advantages, mask, **kw):
        loss, st = real(logp, old_logp, ref_logp, advantages, mask, **kw)
        calls.append({"logp": logp.detach().clone(), "old": old_logp.detach().clone(), "mask": mask.clone(),
                      "kw": kw, "stats": st, "loss": loss.item()})
        return loss, st

    monkeypatch.setattr(stage, "grpo_loss", recorded)
    return calls


def test_num_iterations_steps_the_lr_schedule_with_every_optimizer_step(tiny_cfg, gcfg, demo, tmp_path):
    """num_iterations=2, max_steps=2: two sampled batches (steps), four optimizer passes; global_step counts
    the batches and the cosine schedule (total 2 x 2 passes) advanced four times and reached 0."""
    torch.manual_seed(0)
    module = GRPOModule(load_policy(tiny_cfg(*LORA_R4)),
                        gcfg("grpo.num_iterations=2", "grpo.max_steps=2", "grpo.lr=1e-3", "grpo.log_completions_every=0"),
                        dataset="demo", hint=True, hard=True, out_dir=tmp_path, sampler=scripted_sampler([]))
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, train_dataloaders=demo.train_dataloader())
    sch = trainer.lr_scheduler_configs[0].scheduler
    assert trainer.global_step == 2 and len(module.history) == 2
    assert sch.last_epoch == 4
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_num_iterations_ends_at_max_steps_and_checkpoints_every_n_steps(tiny_cfg, gcfg, demo, tmp_path):
    """num_iterations=3, max_steps=4, a step checkpoint every 2 steps: global_step jumped by 3 per batch, so
    Lightning's ``global_step % 2`` check saved at 6 (not 2 and 4) and the run stopped after 2 batches, 2
    steps past max_steps. Now: 4 batches, checkpoints at steps 2 and 4, logged steps 0..3, 12 LR steps."""
    torch.manual_seed(0)
    module = GRPOModule(load_policy(tiny_cfg(*LORA_R4)),
                        gcfg("grpo.num_iterations=3", "grpo.max_steps=4", "grpo.log_completions_every=0"),
                        dataset="demo", hint=True, hard=True, out_dir=tmp_path, sampler=scripted_sampler([]))
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{step}", every_n_train_steps=2,
                                               save_top_k=-1, monitor=None)
    trainer = L.Trainer(max_steps=4, max_epochs=-1, logger=False, enable_progress_bar=False, limit_val_batches=0,
                        accelerator="cpu", callbacks=[ckpt])
    trainer.fit(module, train_dataloaders=demo.train_dataloader())
    assert trainer.global_step == 4 and [h["step"] for h in module.history] == [0, 1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("*.ckpt")) == ["step=2.ckpt", "step=4.ckpt"]
    assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 12


def test_pass_metrics_are_means_over_the_passes_and_the_first_pass_is_on_policy(tiny_cfg, gcfg, demo, tmp_path,
                                                                                 monkeypatch):
    """The 7B's LoRA dropout (0.05) on a trained (non-zero) adapter, num_iterations=2. grpo.disable_dropout
    (the default): the first pass scores the very policy that sampled, so its log-probs equal the old ones
    bit for bit (ratio exactly 1; with dropout on they differed by up to 0.2 and clipped). The logged loss,
    KL, entropy and clip ratios are the means of the two passes (they were the last pass's)."""
    calls = record_losses(monkeypatch)
    torch.manual_seed(0)
    policy = load_policy(tiny_cfg(*LORA_R4, "model.lora.dropout=0.05"))
    with torch.no_grad():
        for n, p in policy.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    module = GRPOModule(policy, gcfg("grpo.num_iterations=2", "grpo.log_completions_every=0"), dataset="demo",
                        hint=True, hard=True, out_dir=tmp_path, sampler=scripted_sampler([]))
    assert not any(m.p for m in policy.model.modules() if isinstance(m, torch.nn.Dropout))
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, train_dataloaders=demo.train_dataloader())
    assert len(calls) == 2
    first = calls[0]
    keep = first["mask"].bool()
    assert torch.equal(first["logp"][keep], first["old"][keep])
    assert first["stats"].clip_ratio_region.item() == 0.0
    h = module.history[-1]
    assert calls[1]["stats"].kl.item() != calls[0]["stats"].kl.item()  # the passes differ: a mean is not either
    assert h["kl"] == pytest.approx(sum(c["stats"].kl.item() for c in calls) / 2, rel=1e-6)
    assert h["loss"] == pytest.approx(sum(c["loss"] for c in calls) / 2, rel=1e-6)
    for key, field in (("clip_ratio/low_mean", "clip_ratio_low"), ("clip_ratio/high_mean", "clip_ratio_high"),
                       ("clip_ratio/region_mean", "clip_ratio_region")):
        assert h[key] == pytest.approx(sum(getattr(c["stats"], field).item() for c in calls) / 2, abs=1e-9)


def test_disable_dropout_false_keeps_the_models_dropout_and_the_fp32_head_is_applied(tiny_cfg, gcfg, tmp_path):
    from msa.models.numerics import Float32Head

    policy = load_policy(tiny_cfg(*LORA_R4, "model.lora.dropout=0.05"))
    GRPOModule(policy, gcfg("grpo.disable_dropout=false", "grpo.cast_lm_head_to_fp32=true"), dataset="demo",
               hint=True, hard=True, out_dir=tmp_path)
    assert {m.p for m in policy.model.modules() if isinstance(m, torch.nn.Dropout)} == {0.05}
    assert isinstance(unwrap_peft(policy.model).lm_head, Float32Head)


def test_truncated_completions_leave_the_loss_and_gspo_reaches_the_loss(tiny_cfg, gcfg, demo, tmp_path, monkeypatch):
    """grpo.mask_truncated_completions (TRL: completion_mask * ~truncated): a rollout cut at max_new_tokens
    (no EOS) has a zero loss mask, every other row keeps its own; its reward still counts in its group's
    advantages. grpo.importance_sampling_level reaches grpo_loss."""
    scripted = scripted_sampler([])

    def one_truncated(model, thinker, tokenizer, batch, media, rows, **kw):
        s = scripted(model, thinker, tokenizer, batch, media, rows, **kw)
        s.clipped[1] = True  # as if row 1 had hit max_new_tokens
        return s

    def step(*overrides):
        calls = record_losses(monkeypatch)
        torch.manual_seed(0)
        module = GRPOModule(load_policy(tiny_cfg(*LORA_R4)), gcfg("grpo.log_completions_every=0", *overrides),
                            dataset="demo", hint=False, hard=True, out_dir=tmp_path, sampler=one_truncated)
        trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            limit_val_batches=0, accelerator="cpu")
        trainer.fit(module, train_dataloaders=demo.train_dataloader())
        return calls[-1]

    plain = step()
    masked = step("grpo.mask_truncated_completions=true", "grpo.importance_sampling_level=sequence")
    assert plain["mask"][1].sum() > 0 and masked["mask"][1].sum() == 0
    others = [r for r in range(plain["mask"].shape[0]) if r != 1]
    assert torch.equal(masked["mask"][others], plain["mask"][others])
    assert plain["kw"]["importance_sampling_level"] == "token"
    assert masked["kw"]["importance_sampling_level"] == "sequence"


@pytest.mark.parametrize("case", ["skipped", "dropped"])
def test_batch_with_nothing_to_learn_takes_no_step(case, tiny_cfg, gcfg, demo, tmp_path):
    """One process, a first batch with nothing to learn: every clip skipped, or (hard=false) every group
    hard and dropped. No optimizer step, no LR step (the schedule moved on dropped batches before, out
    of step with global_step), no history row for a skipped batch; the idle batch still counts as step 0
    (so a run whose every prompt stays hard ends), the next batch is step 1, and max_steps=2 ends the run
    after the two batches with one optimizer step."""
    scripted = scripted_sampler([])
    calls = {"sample": 0, "step": 0}

    def sampler(model, thinker, tokenizer, batch, media, rows, **kw):
        calls["sample"] += 1
        if case == "dropped" and calls["step"] == 1:  # first batch: answer every prompt as the always-wrong prompt 0
            out = scripted(model, thinker, tokenizer, batch, media, torch.zeros_like(rows), **kw)
            out.prompt_rows = rows.repeat_interleave(kw["group_size"])
            return out
        return scripted(model, thinker, tokenizer, batch, media, rows, **kw)

    torch.manual_seed(0)
    empty = demo.collator()([])

    class Module(GRPOModule):
        def training_step(self, batch, batch_idx):
            calls["step"] += 1
            first = calls["step"] == 1
            if first and case == "skipped":
                batch = empty
            elif first:  # both prompts get prompt 0's label, so the scripted answers are wrong for both
                batch = dict(batch, label=torch.stack([batch["label"][0]] * len(batch["label"])))
            return super().training_step(batch, batch_idx)

    module = Module(load_policy(tiny_cfg(*LORA_R4)), gcfg("grpo.max_steps=2", "grpo.log_completions_every=0"),
                    dataset="demo", hint=True, hard=case != "dropped", out_dir=tmp_path, sampler=sampler)
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, train_dataloaders=demo.train_dataloader())
    assert calls["step"] == 2 and trainer.global_step == 1 and module.idle_steps == 1
    assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 1
    if case == "skipped":
        assert [h["step"] for h in module.history] == [1]
    else:
        assert [h["skipped_step"] for h in module.history] == [1.0, 0.0]
        assert [h["step"] for h in module.history] == [0, 1]


def test_a_run_whose_every_prompt_stays_hard_ends_at_max_steps(tiny_cfg, gcfg, demo, tmp_path):
    """hard=false and every rollout's polarity always wrong: no batch has anything to learn, so no optimizer
    step is ever taken; the run still ends after max_steps batches (it looped forever on global_step)."""
    scripted = scripted_sampler([])

    def always_wrong(model, thinker, tokenizer, batch, media, rows, **kw):
        out = scripted(model, thinker, tokenizer, batch, media, torch.zeros_like(rows), **kw)
        out.prompt_rows = rows.repeat_interleave(kw["group_size"])
        return out

    torch.manual_seed(0)
    calls = {"step": 0}

    class Module(GRPOModule):
        def training_step(self, batch, batch_idx):
            calls["step"] += 1  # both prompts get prompt 0's label: the scripted answers are wrong for both
            batch = dict(batch, label=torch.stack([batch["label"][0]] * len(batch["label"])))
            return super().training_step(batch, batch_idx)

    module = Module(load_policy(tiny_cfg(*LORA_R4)), gcfg("grpo.max_steps=3", "grpo.log_completions_every=0"),
                    dataset="demo", hint=True, hard=False, out_dir=tmp_path, sampler=always_wrong)
    trainer = L.Trainer(max_steps=3, max_epochs=-1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, limit_val_batches=0, accelerator="cpu")
    trainer.fit(module, train_dataloaders=demo.train_dataloader())
    assert calls["step"] == 3 and trainer.global_step == 0 and module.idle_steps == 3
    assert [h["step"] for h in module.history] == [0, 1, 2]
    assert [h["skipped_step"] for h in module.history] == [1.0, 1.0, 1.0]


def test_resume_refuses_a_checkpoint_trained_on_another_export(tiny_cfg, gcfg, tmp_path):
    """A GRPO checkpoint did not record the export it was trained on: ``ckpt_path=`` with another or no
    ``init_from`` loaded its adapter onto another base (and another KL reference) silently. Now it records
    the export's weights digest and a mismatch is refused naming both; a moved copy of the same export passes."""
    import shutil

    from msa.models import export_policy

    def trained_export(name, seed):
        policy = load_policy(tiny_cfg(*LORA_R4))
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for n, p in policy.model.named_parameters():
                if "lora_B" in n:
                    p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        return export_policy(policy, tmp_path / name, extra={"stage": "sft", "epoch": 1, "val_score": 1.0})

    a, b = trained_export("sft_a", 1), trained_export("sft_b", 2)

    def module(init_from):
        return GRPOModule(load_policy(tiny_cfg(*LORA_R4), init_from=init_from), gcfg(), dataset="demo", hint=True,
                          hard=True, out_dir=tmp_path / "out")

    checkpoint = {}
    module(a).on_save_checkpoint(checkpoint)
    with pytest.raises(ValueError, match=r"was trained on init_from=.*sft_a \(weights sha256 \w{12}\), but this "
                                         r"run has init_from=.*sft_b \(weights sha256"):
        module(b).on_load_checkpoint(checkpoint)
    with pytest.raises(ValueError, match=r"was trained on init_from=.*sft_a .*but this run has no init_from"):
        module(None).on_load_checkpoint(checkpoint)
    shutil.copytree(a, tmp_path / "sft_a_moved")
    module(tmp_path / "sft_a_moved").on_load_checkpoint(checkpoint)


def test_a_checkpoint_of_another_world_size_keeps_the_seeded_stream_and_says_so(tiny_cfg, gcfg, tmp_path, caplog):
    """The checkpoint holds one RNG state per DDP rank; each rank restores its own. A one-process run given a
    2-rank checkpoint cannot resume exactly: it keeps its stream and warns (an old single-state checkpoint,
    a dict, is rank 0's and restores in a one-process run)."""
    import logging

    from msa.stages.base import rng_state

    module = GRPOModule(load_policy(tiny_cfg(*LORA_R4)), gcfg(), dataset="demo", hint=True, hard=True,
                        out_dir=tmp_path)
    torch.manual_seed(1)
    saved = rng_state()
    torch.manual_seed(2)
    other = rng_state()
    expected = torch.rand(3)
    torch.manual_seed(2)
    with caplog.at_level(logging.WARNING):
        module.on_load_checkpoint({"msa_rng": [saved, other]})
    assert torch.equal(torch.rand(3), expected)
    assert "RNG states of 2 process(es), this run has 1" in caplog.text
    module.on_load_checkpoint({"msa_rng": saved})  # written before: one state
    after_old = torch.rand(3)
    module.on_load_checkpoint({"msa_rng": [saved]})
    assert torch.equal(torch.rand(3), after_old)
    torch.manual_seed(1)
    assert torch.equal(torch.rand(3), after_old)
