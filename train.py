"""Entry point for every stage.

    python train.py                                   # demo pipeline: cot -> sft -> grpo -> eval
    python train.py stage=grpo init_from=<sft export> hint=false
    python train.py -m hint=true,false                # a sweep, one job per value
    python train.py stage=eval model=qwen2_5_omni_7b model.path=/ckpt data=mosi data.root=/data/MOSI

``train(cfg)`` is separate from the Hydra wrapper so that tests call it directly.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import msa.config  # noqa: F401  (registers the schema used by conf/train.yaml)

log = logging.getLogger("msa")
CONFIG_DIR = Path(__file__).parent / "conf"


def train(cfg: DictConfig) -> dict:
    """Run the stages in ``cfg.stage.run`` in order; returns the metrics written to metrics.json."""
    from msa.config import validate
    from msa.plan import budget_summary, build_plan, save_run_config
    from msa.runtime import RunContext, finish_wandb, format_summary, is_rank_zero
    from msa.stages import run_stage
    from msa.stages.common import seed_stage

    validate(cfg)
    plan = None
    if is_rank_zero():  # what this run will do and what its data costs, checked before any model loads
        plan = build_plan(cfg)
        print(plan.text, flush=True)
        save_run_config(cfg, cfg.paths.output_dir, plan.text)
        plan.refuse()  # a store that cannot fit: after the table that shows why
    ctx = RunContext(cfg=cfg, output_dir=Path(cfg.paths.output_dir))
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    if plan is not None:
        ctx.record("budget", budget_summary(plan.budgets))
    if cfg.init_from:
        ctx.artefacts["policy"] = cfg.init_from
    try:
        timing = {}
        for stage in cfg.stage.run:
            log.info("stage %s -> %s", stage, ctx.output_dir)
            t0 = time.perf_counter()
            seed_stage(cfg.seed, stage)  # each stage's randomness from (seed, stage) only
            run_stage(stage, ctx)
            timing[stage] = round(time.perf_counter() - t0, 1)
            ctx.record("wall_time_s", timing)
            finish_wandb()  # one W&B run per stage (job_type = stage)
            if not is_rank_zero():  # DDP workers stop after the training stage; rank 0 evaluates
                return {}
    finally:
        finish_wandb()
    print(format_summary(ctx.metrics))
    print(f"outputs: {ctx.output_dir}")
    return ctx.metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from msa.config import ConfigError

    try:
        train(cfg)
    except ConfigError as e:  # found by the run plan (data, store, init_from): one line naming the setting
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    from msa.cli import precheck

    precheck(sys.argv[1:], CONFIG_DIR)
    main()
