"""Stage ``grpo``: Hint-GRPO on top of the SFT policy.

    python train.py stage=grpo init_from=<sft run>/checkpoints/best
    python train.py stage=grpo init_from=... hint=false        # standard GRPO (the "w/o Hint" ablation)
    python train.py stage=grpo init_from=... hard=false        # drop hard prompts (the "w/o Hard" ablation)

One training step, top to bottom in ``training_step``:
sample G answers per prompt -> reward (format + polarity + score) -> find hard prompts (every
rollout's polarity wrong) -> regenerate the hard groups with ``<polarity>{true}</polarity>`` prefilled
(hint=true) -> group-normalised advantages -> clipped surrogate + beta * k3 KL to the reference ->
manual backward -> clip grad norm -> optimizer step.

Where we depart from the paper or from TRL, and why:

1. Hard prompts are those whose G rollouts all have the wrong polarity (a format failure counts as
   wrong), not "all rewards below a threshold": the hint carries only the polarity, so it can only fix
   that failure. The paper's threshold rule is ``grpo.hard_rule=reward_below grpo.hard_threshold=x``.
2. The hinted group *replaces* the sampled group (Hint-GRPO) and its advantages are normalised within
   itself; hinted and unhinted rollouts never share a baseline, which would hand the hinted ones a free
   polarity reward.
3. Rewards score prefill + continuation (unlike Hint-GRPO, whose hint sat before the scored answer):
   our prefill *is* the polarity tag, so the format reward needs it. The polarity reward is therefore
   constant within a hinted group; the learning signal comes from format and score.
4. The prefill tokens are masked out of the policy loss and the KL (they were not sampled); under the
   per-sequence "grpo" aggregation they would otherwise get a length-correlated push. The prefill is
   cut at a token boundary that occurs in the SFT answers (``</polarity`` + the model's own ``><``
   token): tokenized alone, ``</polarity>`` ends in a lone ``>`` the model has never continued, and
   no hinted rollout came out well formed (0 of 216 logged on the demo) until this was fixed.

   What the hint can and cannot change (``grpo.hint_mode``). With 2-4 as above (``replace``, the
   default and our reading of the paper), no gradient reaches the polarity decision of a hard prompt:
   the polarity tokens are not in the loss, and the polarity reward is the same for the whole hinted
   group, so it cancels in the advantages. Only the continuation after a given polarity learns (reason
   towards it, score within its range); a hard prompt's own polarity can improve only indirectly,
   through what the other prompts teach. ``hint_mode=anchored`` is the alternative: the hinted
   rollouts are scored against the baseline of the group they replace (its mean; the std of both
   groups together, :func:`msa.rl.advantages.anchored_advantages`) and the prefill tokens are in the
   loss and the KL, so the true polarity itself is reinforced, in proportion to how much better the
   hinted answers did than the policy's own. It is off-policy for the prefill tokens (the policy did
   not sample them): the ratio starts at 1 and clipping bounds later passes, but the push is as large
   as a sampled token's.
5. Reference = the SFT policy: the SFT adapter is merged into the base weights at load time and a
   fresh LoRA is trained, so ``disable_adapter()`` is the reference with no second copy. With full
   fine-tuning the reference is a frozen deep copy (twice the weight memory: +16.6 GiB in bf16 for 7B).
6. Log-probs use logits / temperature (TRL), so the ratio is against the distribution that sampled.
7. Encoder outputs are computed once per prompt and reused by every sampling and scoring pass
   (frozen towers only; with trained towers ``grpo.reuse_encoder_outputs`` must be false and we fail
   fast rather than silently use stale features).
8. With hard=false the dropped groups leave the loss entirely (they are not zero-advantage rows that
   would still dilute the per-sequence mean).
9. Shared prompt (``grpo.shared_prompt=true``, the default): the language model runs each prompt once
   per pass and repeats its KV cache to the G rollouts, for sampling, the hinted regeneration (the
   prefill is appended to the same cache) and the policy/reference/old-policy scoring
   (:mod:`msa.rl.shared_prompt`). Same draws, log-probs and gradients as running the prompt G times
   (``false``, kept for comparison), at P + G*C instead of G*(P + C) positions per pass.
10. DDP: every rank joins every collective of a step, even one with nothing to learn (all groups
    dropped, or the batch skipped): it backpropagates a zero loss and steps with the others, so
    weights and LR stay equal. ``loss_type=dapo`` divides by the loss tokens of all ranks and
    ``scale_rewards=batch`` by the std of all ranks' rewards (TRL gathers both); the logged reward
    means and stds are over all ranks' rollouts.
11. A step is one sampled batch. With ``num_iterations`` = mu > 1 it takes mu optimizer passes over its
    rollouts, but Lightning's ``global_step`` advances once (the first mu - 1 passes step the optimizer
    through the strategy, not the counting wrapper): ``max_steps``, the step checkpoint's
    ``every_n_train_steps``, the logged step and the export's ``steps`` count sampled batches, so a run
    ends exactly at ``max_steps`` and checkpoints every N batches (TRL counts optimizer steps; our
    passes cannot stop inside a batch). The LR schedule advances every pass and spans max_steps x mu.
    Logged loss, KL, entropy and clip ratios are the means over the passes. The first pass is on-policy
    (ratio exactly 1: dropout is off, ``grpo.disable_dropout``).
12. Numerics (TRL's options, :mod:`msa.models.numerics`): ``grpo.disable_dropout`` (default true) turns
    every dropout off, LoRA's included, so samples, old and new log-probs come from one deterministic
    policy; ``grpo.cast_lm_head_to_fp32`` computes the head in float32 under bf16 autocast.
    ``grpo.mask_truncated_completions`` takes answers cut at ``max_new_tokens`` out of the loss (their
    rewards still count in their group's baseline, as in TRL); ``grpo.importance_sampling_level=sequence``
    is GSPO's sequence-level ratio (:func:`msa.rl.losses.grpo_loss`).

The file is a little over 400 lines because this docstring, the one place that records how the step
departs from the paper and TRL, is 75 of them; the code is the one LightningModule and the stage's run.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pandas as pd
import torch

from msa.dc import HINT_FOLLOWS, hint_prefill, polarity_of
from msa.exports import enabled_modalities
from msa.generation import suppressed_ids
from msa.models import export_policy, unwrap_peft
from msa.models.encode import encode_media
from msa.models.numerics import cast_lm_head_to_fp32, disable_dropout
from msa.rl.advantages import (anchored_advantages, frac_zero_std, group_advantages, reward_moments,
                                std_from_moments)
from msa.rl.hard import find_hard, select_groups
from msa.rl.losses import grpo_loss, token_entropy, token_logprobs
from msa.rl.rewards import REWARD_FUNCS, total_reward
from msa.rl.rollout import completion_logits, sample
from msa.rl.shared_prompt import prompt_pass
from msa.rl.types import reward_metrics
from msa.stages.base import PolicyModule

log = logging.getLogger(__name__)


HINT_MODES = ("replace", "anchored")  # see 4. in the module docstring


class GRPOModule(PolicyModule):
    """``sampler``: what draws the G answers per prompt (:func:`msa.rl.rollout.sample`'s signature and
    Rollout); tests pass scripted ones, benchmarks a timed wrapper."""

    def __init__(self, policy, gcfg, *, dataset: str, hint: bool, hard: bool, out_dir: str | Path,
                 sampler=sample):
        super().__init__(policy)
        self.sampler = sampler
        if gcfg.num_generations < 2:
            raise ValueError("grpo.num_generations: GRPO needs at least 2 generations per prompt")
        if gcfg.hint_mode not in HINT_MODES:
            raise ValueError(f"grpo.hint_mode must be one of {HINT_MODES}, got {gcfg.hint_mode!r}")
        self.automatic_optimization = False
        self.g = gcfg
        self.dataset, self.hint, self.hard = dataset, hint, hard
        self.hint_mode = gcfg.hint_mode
        self.out_dir = Path(out_dir)
        trained_towers = any(p.requires_grad for n, p in self.model.named_parameters()
                             if ".visual." in n or ".audio_tower." in n)
        if trained_towers and gcfg.reuse_encoder_outputs:
            raise ValueError("grpo.reuse_encoder_outputs=true needs frozen encoders (model.freeze.*=true)")
        if gcfg.disable_dropout:  # before the reference is copied: it scores without dropout too
            disable_dropout(self.model)
        if gcfg.cast_lm_head_to_fp32:
            cast_lm_head_to_fp32(unwrap_peft(self.model))
        # Reference: adapter-off view of the same weights (LoRA), a frozen copy (full FT), or none (beta=0).
        self.ref_model = None
        if gcfg.beta > 0 and not policy.lora:
            self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.history: list[dict] = []  # per-step scalars (reward curve, hint rate) for metrics.json
        # Steps in which no rank had anything to learn (every group dropped with hard=false, or every batch
        # skipped): they take no optimizer step, so global_step alone would never reach max_steps when every
        # prompt stays hard (the run looped forever); they count towards it here.
        self.idle_steps = 0

    # ---------------------------------------------------------------- one step
    def training_step(self, batch, batch_idx):
        if not batch["ids"]:  # every clip of the batch was skipped (data.on_error=skip)
            return self._empty_step()
        g, G = self.g, self.g.num_generations
        step = self.step_index  # the step this batch becomes (logged and in file names)
        B = batch["input_ids"].shape[0]
        labels = [float(x) for x in batch["label"]]
        rows = torch.arange(B, device=self.device)
        media = encode_media(unwrap_peft(self.model), batch) if g.reuse_encoder_outputs else None
        # shared path: every prompt goes through the model once; sampling and the hint reuse its cache
        prompts = self._prompt_pass(batch, media, rows) if g.shared_prompt else None

        # 1. sample G answers per prompt (group-major: rows b*G .. b*G+G-1 belong to prompt b), 2. reward
        s = self._sample(batch, media, rows, prompts)
        self._reward(s, labels)
        own_reward = s.rewards.mean().item()  # the policy's own samples, before hinted groups replace hard ones
        # 3. hard prompts: every rollout's polarity wrong (or every reward below the threshold)
        is_hard = find_hard(s.right.view(B, G).cpu(), s.rewards.view(B, G).cpu(), g.hard_rule, g.hard_threshold)
        regen, drop = select_groups(is_hard, hint=self.hint, keep_hard=self.hard)
        # 4. hint: regenerate all hard groups in one batched call with the true polarity prefilled
        if regen.any():
            hard_rows = rows[regen.to(rows.device)]
            prefills = [hint_prefill(polarity_of(labels[i], self.dataset)) for i in hard_rows.tolist()]
            h = self._sample(batch, media, hard_rows, prompts, prefills=prefills)
            self._reward(h, labels)
            own = s.rewards.cpu()
            s = s.replace_groups(h, pad_id=self.policy.tokenizer.pad_token_id)
            s.prefill_in_loss = self.hint_mode == "anchored"
        del prompts
        # 5. advantages, normalised within each (possibly hinted) group
        batch_std = self._batch_std(s.rewards.cpu())
        adv = group_advantages(s.rewards.cpu(), G, scale=g.scale_rewards, batch_std=batch_std)  # [B*G]
        if regen.any() and self.hint_mode == "anchored":  # hinted groups against the groups they replace
            hinted = s.hinted.cpu().nonzero().squeeze(1)
            adv[hinted] = anchored_advantages(s.rewards.cpu()[hinted], own[hinted], G, scale=g.scale_rewards,
                                              batch_std=batch_std)
        adv = adv.to(self.device)
        keep = (~drop).repeat_interleave(G)  # hard=false: dropped groups leave the loss entirely
        # 6-9. loss -> backward -> clip -> step (num_iterations passes over this batch)
        stats = self._optimise(batch, media, s, adv, keep)
        self._log_step(step, batch, s, adv, is_hard, own_reward, stats)
        return None

    def _empty_step(self):
        """A rank whose whole batch was skipped still joins every collective of the step (DDP would hang)."""
        self._batch_std(torch.zeros(0))
        stats = self._optimise(None, None, None, None, torch.zeros(0, dtype=torch.bool))
        self._log_over_ranks(self.step_index, {"skipped_step": stats["skipped"]}, n=0,
                             moments=torch.zeros(1 + len(REWARD_FUNCS), 3, dtype=torch.float64))
        return None

    # ---------------------------------------------------------------- pieces of the step
    def _prompt_pass(self, batch, media, rows):
        with torch.no_grad():
            return prompt_pass(self.model, unwrap_peft(self.model), batch, media, rows, batch["use_audio_in_video"])

    def _sample(self, batch, media, rows, prompts, prefills=None):
        g = self.g
        return self.sampler(self.model, unwrap_peft(self.model), self.policy.tokenizer, batch, media, rows,
                            group_size=g.num_generations, max_new_tokens=g.max_new_tokens,
                            temperature=g.temperature, top_p=g.top_p, use_audio_in_video=batch["use_audio_in_video"],
                            prefills=prefills, prefill_follows=HINT_FOLLOWS if prefills else "", prompts=prompts)

    def _reward(self, s, labels):
        """Attach the rewards of the rollouts' texts (prefill included) to ``s``."""
        per_row = [labels[i] for i in s.prompt_rows.tolist()]
        totals, per_fn = total_reward(s.texts, weights=dict(self.g.reward_weights), label=per_row,
                                      dataset=self.dataset, form=self.g.score_form)
        s.set_rewards(torch.tensor(totals, dtype=torch.float32), per_fn, torch.tensor([v > 0 for v in per_fn["polarity"]]))

    def _logits(self, batch, media, s, model=None):
        thinker = unwrap_peft(model or self.model)
        return completion_logits(model or self.model, thinker, batch, media, s.prompt_rows, s.completion_ids,
                                 s.completion_mask, batch["use_audio_in_video"],
                                 suppress=suppressed_ids(self.policy.tokenizer),
                                 group_size=s.group_size if self.g.shared_prompt else None)

    # ---------------------------------------------------------------- DDP
    def _all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over DDP ranks (one process: as is). Every rank must call it at the same point of the step."""
        if self.trainer.world_size <= 1:
            return t
        return self.trainer.strategy.reduce(t.to(self.device), reduce_op="sum").cpu()

    def _batch_std(self, totals: torch.Tensor) -> float | None:
        """scale_rewards=batch: the std of every rank's rewards together (TRL gathers them); else None."""
        if self.g.scale_rewards != "batch":
            return None
        return std_from_moments(self._all_sum(reward_moments(totals)))

    # ---------------------------------------------------------------- loss and optimizer steps
    def _optimise(self, batch, media, s, adv, keep):
        g, T = self.g, self.g.temperature
        opt = self.optimizers()
        keep_rows = keep.nonzero().squeeze(1).to(self.device)
        sub = s.select(keep_rows) if keep_rows.numel() else None
        loss_mask = sub.loss_mask if sub is not None else None  # [N, C]
        if sub is not None and g.mask_truncated_completions:  # cut at max_new_tokens: out of the loss (TRL)
            loss_mask = loss_mask * (~sub.clipped).to(loss_mask.dtype).unsqueeze(1)
        # Rows and loss tokens of every rank: whether any rank learns this step, and dapo's global denominator.
        local = torch.tensor([float(keep_rows.numel()), float(loss_mask.sum()) if sub is not None else 0.0],
                             dtype=torch.float64)
        rows_all, tokens_all = self._all_sum(local).tolist()
        if sub is None:  # every group dropped (hard=false) or the batch skipped
            return self._nothing_to_learn(opt, stepped=rows_all > 0)
        num_items = max(tokens_all, 1.0) / self.trainer.world_size if g.loss_type == "dapo" else None
        ids, a = sub.completion_ids, adv[keep_rows]
        ref_logp = old_logp = None
        with torch.no_grad():
            if g.beta > 0:
                if self.ref_model is not None:
                    ref_logits = self._logits(batch, media, sub, model=self.ref_model)
                else:
                    with self.model.disable_adapter():
                        ref_logits = self._logits(batch, media, sub)
                ref_logp = token_logprobs(ref_logits, ids, T)
                del ref_logits
            if g.num_iterations > 1:  # the sampling policy's log-probs, fixed across the passes
                old_logp = token_logprobs(self._logits(batch, media, sub), ids, T)
        sums = torch.zeros(6, dtype=torch.float64)  # loss, kl, entropy, clip low/high/region summed over passes
        for i in range(g.num_iterations):
            logits = self._logits(batch, media, sub)  # [N, C, V]
            logp = token_logprobs(logits, ids, T)
            with torch.no_grad():
                ent = (token_entropy(logits.detach(), T) * loss_mask).sum() / loss_mask.sum().clamp(min=1)
            loss, st = grpo_loss(logp, logp.detach() if old_logp is None else old_logp, ref_logp, a, loss_mask,
                                 epsilon_low=g.epsilon, epsilon_high=g.epsilon_high, beta=g.beta,
                                 loss_type=g.loss_type, max_completion_length=g.max_new_tokens, num_items=num_items,
                                 importance_sampling_level=g.importance_sampling_level)
            del logits
            opt.zero_grad()
            self.manual_backward(loss)
            self._step(opt, last=i == g.num_iterations - 1)
            sums += torch.tensor([loss.item(), st.kl.item(), ent.item(), st.clip_ratio_low.item(),
                                  st.clip_ratio_high.item(), st.clip_ratio_region.item()], dtype=torch.float64)
        mean = (sums / g.num_iterations).tolist()
        return dict(zip(("loss", "kl", "entropy", "clip_low", "clip_high", "clip_region"), mean), skipped=0.0,
                    rows=int(keep_rows.numel()))

    def _step(self, opt, last: bool = True):
        """Clip, optimizer step, LR step. Only a batch's ``last`` pass steps through Lightning's optimizer
        wrapper, which advances ``global_step``; the others step through the strategy (the same precision
        and DDP handling, uncounted): one step per sampled batch (11. in the module docstring). The
        schedule advances every pass and spans max_steps x num_iterations passes (:meth:`total_steps`)."""
        self.clip_gradients(opt, gradient_clip_val=self.g.max_grad_norm, gradient_clip_algorithm="norm")
        if last:
            opt.step()
        else:
            self.trainer.strategy.optimizer_step(opt.optimizer, lambda: None)
        sch = self.lr_schedulers()
        if sch is not None:
            sch.step()

    def total_steps(self) -> int:
        """LR-schedule steps of the whole fit: num_iterations passes per step."""
        return super().total_steps() * int(self.g.num_iterations)

    def _nothing_to_learn(self, opt, stepped: bool) -> dict:
        """This rank has no rollout in the loss. A zero loss touching every trainable parameter keeps it
        in DDP's gradient all-reduce; it steps (with the other ranks' averaged gradients) iff some rank had
        rows, so every rank takes the same optimizer and LR steps. One process: no step at all.

        A step that no rank learns from takes no optimizer or LR step but still counts as a step
        (``idle_steps``): the run ends after max_steps steps whatever they held. The LR schedule then
        stops short of its end by the idle steps; ``train/skipped_step`` says how many there were."""
        passes = self.g.num_iterations if stepped else 1
        for i in range(passes):
            opt.zero_grad()
            self.manual_backward(self.zero_loss())
            if stepped:
                self._step(opt, last=i == passes - 1)
        if not stepped:  # the same on every rank (rows_all is global)
            self.idle_steps += 1
        return dict(loss=0.0, kl=0.0, entropy=0.0, clip_low=0.0, clip_high=0.0, clip_region=0.0, skipped=1.0, rows=0)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        # Lightning stops on global_step alone, which idle steps never advance
        max_steps = self.trainer.max_steps
        if max_steps is not None and 0 <= max_steps <= self.step_index:
            self.trainer.should_stop = True

    @property
    def step_index(self) -> int:
        """The step this batch is: steps taken (one per sampled batch, 11.) plus steps no rank learned from."""
        return self.global_step + self.idle_steps

    # ---------------------------------------------------------------- logging
    def _log_step(self, step, batch, s, adv, is_hard, own_reward, stats):
        G = self.g.num_generations
        m = {
            "frac_reward_zero_std": frac_zero_std(s.rewards.cpu(), G),
            "kl": stats["kl"], "entropy": stats["entropy"], "loss": stats["loss"],
            "clip_ratio/low_mean": stats["clip_low"], "clip_ratio/high_mean": stats["clip_high"],
            "clip_ratio/region_mean": stats["clip_region"],
            "completions/mean_length": s.lengths.mean().item(),
            "completions/clipped_ratio": s.clipped.float().mean().item(),
            "hint/rate": s.hinted.float().mean().item(),
            "hard/frac": is_hard.float().mean().item(),
            "own_reward": own_reward,
            "hint/reward_after": s.rewards.mean().item(),
            "skipped_step": stats["skipped"],
            "loss_rows": stats["rows"],  # rollouts in the loss (hard=false removes dropped groups)
        }
        self._log_over_ranks(step, m, len(s.texts), s.reward_moments(list(REWARD_FUNCS)))
        if self.history and self.history[-1]["step"] == step:  # which prompts were hard (this rank's; DDP: rank 0's)
            self.history[-1]["hard_ids"] = " ".join(str(batch["ids"][b]) for b in is_hard.nonzero().flatten().tolist())
        every = self.g.log_completions_every
        if every and step % every == 0:  # every rank writes its own prompts' rollouts
            self._write_completions(step, batch, s, adv)

    def _log_over_ranks(self, step: int, m: dict, n: int, moments: torch.Tensor) -> None:
        """Log the step's scalars over DDP ranks and append them to the history: rollout-weighted means
        (``skipped_step``, ``loss_rows``: plain means) and the reward means/stds of every rank's rollouts
        together (TRL's ``reward_std``). A rank with no rollout (``n=0``) still joins the one all-reduce."""
        keys = self._metric_keys()
        plain = {"skipped_step", "loss_rows"}
        values = torch.tensor([float(m.get(k, 0.0)) for k in keys], dtype=torch.float64)
        weights = torch.tensor([1.0 if k in plain else float(n) for k in keys], dtype=torch.float64)
        k = len(keys)
        total = self._all_sum(torch.cat([values * weights, weights, torch.ones(k, dtype=torch.float64),
                                         moments.reshape(-1)]))
        mean = torch.where(total[k: 2 * k] > 0, total[:k] / total[k: 2 * k].clamp(min=1e-12), total[:k] / total[2 * k: 3 * k])
        moments = total[3 * k:].view(-1, 3)
        if moments[0, 0] == 0:  # no rank had a rollout (every batch skipped): nothing to log
            return
        out = {**reward_metrics(moments, list(REWARD_FUNCS)), **dict(zip(keys, mean.tolist()))}
        self.log_dict({f"train/{name}": float(v) for name, v in out.items()}, batch_size=1, prog_bar=False)
        self.log("reward", out["reward"], prog_bar=True, batch_size=1)
        self.history.append({"step": step, **out})

    @staticmethod
    def _metric_keys() -> list[str]:
        return ["frac_reward_zero_std", "kl", "entropy", "loss", "clip_ratio/low_mean",
                "clip_ratio/high_mean", "clip_ratio/region_mean", "completions/mean_length",
                "completions/clipped_ratio", "hint/rate", "hard/frac", "own_reward", "hint/reward_after",
                "skipped_step", "loss_rows"]

    def _write_completions(self, step, batch, s, adv):
        lengths = s.lengths
        rows = []
        for r, text in enumerate(s.texts):
            b = int(s.prompt_rows[r])
            rows.append({"step": step, "prompt_id": batch["ids"][b], "dataset": self.dataset,
                         "label": float(batch["label"][b]), "completion": text, "length": int(lengths[r]),
                         "reward": float(s.rewards[r]),
                         **{f"reward_{k}": float(v[r]) for k, v in s.per_fn.items()},
                         "hinted": bool(s.hinted[r]), "advantage": float(adv[r])})
        df = pd.DataFrame(rows)
        out = self.out_dir / "completions"
        out.mkdir(parents=True, exist_ok=True)
        rank = self.trainer.global_rank
        name = f"completions_{step:05d}.parquet" if self.trainer.world_size <= 1 else \
            f"completions_{step:05d}_rank{rank}.parquet"
        df.insert(1, "rank", rank)
        df.to_parquet(out / name, index=False)
        from msa.runtime import log_table

        log_table(self.loggers, "completions", df)

    # ---------------------------------------------------------------- optimiser, checkpoints
    def configure_optimizers(self):
        return self.adamw_warmup_cosine(lr=self.g.lr, weight_decay=self.g.weight_decay,
                                        warmup_steps=int(self.g.warmup_steps))  # paper: cosine

    def on_save_checkpoint(self, checkpoint):
        super().on_save_checkpoint(checkpoint)  # RNG states: a resumed run samples the same rollouts
        checkpoint["msa_grpo_history"] = list(self.history)  # the reward curve of the steps before
        checkpoint["msa_grpo_idle_steps"] = self.idle_steps

    def on_load_checkpoint(self, checkpoint):
        super().on_load_checkpoint(checkpoint)
        self.history = list(checkpoint.get("msa_grpo_history", []))
        self.idle_steps = int(checkpoint.get("msa_grpo_idle_steps", 0))


def fifths(values: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last fifth of a curve (at least one point each)."""
    if not values:
        return float("nan"), float("nan")
    k = max(1, len(values) // 5)
    return sum(values[:k]) / k, sum(values[-k:]) / k


def run(ctx) -> dict:
    """Hint-GRPO from ctx.artefacts["policy"] (or init_from); records ``grpo`` (test metrics) and ``grpo_train``."""
    from msa.data.datamodule import build_datamodule
    from msa.stages.common import build_trainer, load_stage_policy, test_policy

    cfg = ctx.cfg
    out = ctx.stage_dir("grpo")
    policy = load_stage_policy(ctx, trainable=True)
    dm = build_datamodule(cfg.data, processor=policy.processor, use_audio_in_video=policy.use_audio_in_video,
                          answer="dc")
    module = GRPOModule(policy, cfg.grpo, dataset=cfg.data.name, hint=cfg.hint, hard=cfg.hard, out_dir=out)
    trainer = build_trainer(ctx, "grpo", max_steps=cfg.grpo.max_steps, max_epochs=-1, monitor=None,
                            ckpt_dir=cfg.grpo.checkpoint_dir, limit_val_batches=0)
    trainer.fit(module, datamodule=dm, ckpt_path=cfg.ckpt_path)
    if not trainer.is_global_zero:  # DDP: rank 0 exports and evaluates
        return {}
    export = Path(cfg.grpo.checkpoint_dir) / "final"
    export_policy(policy, export, extra={"stage": "grpo", "hint": cfg.hint, "hard": cfg.hard, "steps": trainer.global_step,
                                         "dataset": cfg.data.name, "range_dataset": cfg.data.name, "answer": "dc",
                                         "modalities": enabled_modalities(cfg.data.modalities)})
    ctx.artefacts["policy"] = str(export)
    hist = pd.DataFrame(module.history)
    hist.to_csv(out / "train_history.csv", index=False)
    first, last = fifths(hist["reward"].tolist() if len(hist) else [])
    # own_reward (the policy's own samples, before hinted groups replace hard ones) is the curve that
    # compares across hint=true/false; "reward" after replacement credits the given polarity.
    own_first, own_last = fifths(hist["own_reward"].tolist() if len(hist) else [])
    train_summary = {"reward_first_fifth": first, "reward_last_fifth": last,
                     "own_reward_first_fifth": own_first, "own_reward_last_fifth": own_last,
                     "hint_rate": float(hist["hint/rate"].mean()) if len(hist) else float("nan"),
                     "hard_frac": float(hist["hard/frac"].mean()) if len(hist) else float("nan"),
                     "steps": int(trainer.global_step),
                     "idle_steps": int(module.idle_steps)}
    ctx.record("grpo_train", train_summary)
    results = test_policy(ctx, "grpo", export, answer="dc")
    ctx.record("grpo", results)
    return results
