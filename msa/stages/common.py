"""Glue the stages share: the policy for this stage, the Trainer, and the test pass.

Kept out of the stage files so that each of those reads as its method only.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from omegaconf import OmegaConf

log = logging.getLogger(__name__)


def load_stage_policy(ctx, init_from: str | None = None, *, trainable: bool = False):
    """The policy for a stage: the model config plus the previous stage's export, if any.

    ``trainable=False`` (eval, test passes) gives the export exactly as it was trained; the training stages
    ask for ``trainable=True`` (the export merged into the base, a fresh adapter on top).
    """
    from msa.models import load_policy

    src = init_from or ctx.artefacts.get("policy")
    return load_policy(ctx.cfg.model, init_from=src, trainable=trainable)


def seed_stage(seed: int, stage: str) -> int:
    """Seed every global RNG for ``stage`` from (seed, stage, DDP rank) alone, and return the value used.

    Called at each stage's start, so that what a stage samples (GRPO rollouts, dropout, LoRA init) does
    not depend on the stages that ran before it in the process: ``stage=grpo`` alone and inside a
    pipeline draw the same numbers. Each DDP rank draws from a stream of its own
    (:func:`msa.seeding.seed_rank`; rank 0's is the one-process run's): with one shared stream the ranks'
    rollouts were correlated. Their LoRA inits differ too, which is harmless: DDP starts every rank from
    rank 0's weights. Lightning's DDP setup reseeds every rank with ``PL_GLOBAL_SEED`` when a fit starts;
    :meth:`msa.stages.base.PolicyModule.setup` then seeds each rank apart again. ``PL_GLOBAL_SEED`` stays (seed, stage)'s on every rank (samplers that shuffle with
    it must agree across ranks). Code that runs only on a cold cache (building the tiny model,
    generating the demo set) uses RNGs of its own.
    """
    import lightning as L

    from msa.seeding import launch_rank, seed_globals, seed_rank, stable_seed

    shared = L.seed_everything(stable_seed(seed, stage) % 2**32, workers=True, verbose=False)
    own = seed_rank(shared, launch_rank())
    if own != shared:
        seed_globals(own)
    return own


def build_trainer(ctx, stage: str, *, monitor: str | None, ckpt_dir: str, **overrides):
    """A Lightning Trainer for a training stage: ``conf/trainer`` (Trainer arguments only) updated with the
    stage's ``overrides``, the callbacks of ``conf/callbacks`` and the logger of ``conf/logger``.

    One callbacks config serves every stage of a run, so the values that differ between stages are set
    here: the checkpoints' directory, the file name ``<stage>-{step}`` and the monitored metric (a stage
    that monitors nothing keeps ``last.ckpt`` only, which ``step_checkpoint`` writes).
    """
    import lightning as L

    from msa.runtime import instantiate, make_logger

    # The frozen audio/vision towers are in eval mode on purpose (no dropout, fixed statistics).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    cfg = ctx.cfg
    targs = OmegaConf.to_container(cfg.trainer, resolve=True)
    targs.update({k: v for k, v in overrides.items() if v is not None})
    logger = make_logger(cfg, stage)
    per_stage = {"checkpoint": {"dirpath": ckpt_dir, "filename": f"{stage}-{{step}}", "monitor": monitor,
                                **({} if monitor else {"save_top_k": 0})},
                 "step_checkpoint": {"dirpath": ckpt_dir}}
    callbacks = []
    for name, node in (cfg.callbacks or {}).items():
        if name == "lr_monitor" and logger is None:  # it logs through the logger
            continue
        callback = instantiate(node, **per_stage.get(name, {}))
        if callback is not None:
            callbacks.append(callback)
    trainer = L.Trainer(logger=logger if logger is not None else False, callbacks=callbacks,
                        default_root_dir=str(ctx.output_dir), **targs)
    ctx.loggers = [logger] if logger is not None else []
    return trainer


def test_policy(ctx, stage: str, export_dir: str | Path, *, answer: str) -> dict:
    """Evaluate an exported policy on the test split of every eval dataset; returns ``{dataset: metrics}``."""
    from msa.stages.evaluate import evaluate_policy

    policy = load_stage_policy(ctx, init_from=str(export_dir))
    return evaluate_policy(ctx, policy, stage=stage, answer=answer)
