"""Loggers and callbacks built from their ``_target_`` nodes (conf/logger, conf/callbacks) by one helper,
with the per-stage values set by the stage, and the closing summary printed from the recorded results."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

# What Lightning stores a ModelCheckpoint's state under in a checkpoint file (resume finds it by this key).
BEST = "ModelCheckpoint{'monitor': %r, 'mode': 'max', 'every_n_train_steps': 0, 'every_n_epochs': 1, " \
       "'train_time_interval': None}"


def trainer_for(cfg, stage: str):
    from msa.runtime import RunContext
    from msa.stages.common import build_trainer

    ctx = RunContext(cfg=cfg, output_dir=Path(cfg.paths.output_dir))
    node = cfg.sft if stage == "sft" else cfg.grpo
    trainer = build_trainer(ctx, stage, monitor="val/score" if stage == "sft" else None,
                            ckpt_dir=node.checkpoint_dir, max_epochs=2)
    return ctx, trainer


def kinds(trainer) -> list[str]:
    return [type(c).__name__ for c in trainer.callbacks if type(c).__module__.startswith(("msa", "lightning"))
            and type(c).__name__ in ("SkipCounter", "ModelCheckpoint", "LastCheckpoint", "LearningRateMonitor")]


def test_sft_trainer_gets_the_callbacks_and_csv_logger_of_the_config(make_cfg):
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from msa.callbacks import LastCheckpoint

    cfg = make_cfg("logger=csv")
    ctx, trainer = trainer_for(cfg, "sft")
    out = Path(cfg.paths.output_dir)
    # Lightning moves the checkpoint callbacks last; the rest keep the config's order
    assert kinds(trainer) == ["SkipCounter", "LearningRateMonitor", "ModelCheckpoint", "LastCheckpoint"]
    (best,) = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert (best.dirpath, best.filename, best.monitor, best.save_top_k, best.save_last) == \
        (str(out / "checkpoints"), "sft-{step}", "val/score", 1, False)
    assert best.state_key == BEST % "val/score"
    (last,) = [c for c in trainer.callbacks if isinstance(c, LastCheckpoint)]  # the only last.ckpt writer
    assert (last.path, last.every_n_train_steps) == (out / "checkpoints" / "last.ckpt", 20)
    (lr,) = [c for c in trainer.callbacks if isinstance(c, LearningRateMonitor)]
    assert lr.logging_interval == "step"
    assert type(trainer.logger).__name__ == "CSVLogger" and ctx.loggers == [trainer.logger]
    assert Path(trainer.logger.log_dir) == out / "sft"  # <run>/sft/metrics.csv
    assert trainer.max_epochs == 2 and trainer.log_every_n_steps == 1  # the stage's value over conf/trainer


def test_grpo_monitors_nothing_and_keeps_last_only(make_cfg):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from msa.callbacks import LastCheckpoint

    cfg = make_cfg("logger=csv")
    _, trainer = trainer_for(cfg, "grpo")
    (best,) = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    (last,) = [c for c in trainer.callbacks if isinstance(c, LastCheckpoint)]
    assert (best.filename, best.monitor, best.save_top_k, best.save_last) == ("grpo-{step}", None, 0, False)
    assert best.dirpath == str(last.dirpath) == str(Path(cfg.grpo.checkpoint_dir))
    assert best.state_key == BEST % None
    assert Path(trainer.logger.log_dir) == Path(cfg.paths.output_dir) / "grpo"


def test_no_logger_no_lr_monitor_and_null_steps_mean_epoch_ends_only(make_cfg):
    _, trainer = trainer_for(make_cfg("logger=none", "callbacks.step_checkpoint.every_n_train_steps=null"), "sft")
    assert trainer.logger is None
    assert kinds(trainer) == ["SkipCounter", "ModelCheckpoint", "LastCheckpoint"]
    assert trainer.callbacks[-1].every_n_train_steps is None  # last.ckpt at epoch ends only
    _, trainer = trainer_for(make_cfg("callbacks.lr_monitor=null", "callbacks.step_checkpoint=null"), "sft")
    assert kinds(trainer) == ["SkipCounter", "ModelCheckpoint"] and trainer.logger is not None


def test_wandb_logger_carries_the_study_the_stage_and_the_flags(make_cfg):
    from msa.runtime import make_logger, run_setting

    cfg = make_cfg("stage=grpo", "hint=false", "seed=3", "logger=wandb", "tags=[a,b]")
    logger = make_logger(cfg, "grpo-eval")  # the test pass of grpo: grpo's run
    init = dict(logger._wandb_init)
    config = init.pop("config")
    assert init == {"name": "grpo-hint_false-hard_true-s3", "project": "msa-thinker", "dir": cfg.paths.output_dir,
                    "id": None, "resume": "allow", "anonymous": None, "entity": None, "group": "demo",
                    "job_type": "grpo", "tags": ["a", "b"], "mode": "offline"}
    assert config == {**OmegaConf.to_container(cfg, resolve=True), "setting": run_setting(cfg, "grpo")}
    assert make_logger(make_cfg("logger=wandb", "logger.group=study-x"), "eval-eval")._wandb_init["group"] == "study-x"
    assert make_logger(make_cfg("logger=none"), "sft") is None


def test_instantiate_hands_overrides_over_unread():
    from msa.runtime import instantiate

    assert instantiate(None) is None and instantiate(OmegaConf.create({})) is None
    node = OmegaConf.create({"_target_": "builtins.dict", "a": 1, "b": [1, 2]})
    # a value that looks like OmegaConf syntax stays a plain string; a dict stays a dict
    made = instantiate(node, a="${b}", c={"k": "{step}"})
    assert made == {"a": "${b}", "b": [1, 2], "c": {"k": "{step}"}} and type(made["b"]) is list


@pytest.mark.parametrize("arg,key", [("+callbacks.extra={x:1}", "callbacks.extra"),
                                     ("callbacks.step_checkpoint.every_n_train_steps=0",
                                      "callbacks.step_checkpoint.every_n_train_steps")])
def test_a_node_without_target_or_a_bad_step_count_fails_naming_the_key(arg, key, make_cfg):
    from msa.config import ConfigError, validate

    with pytest.raises(ConfigError, match=f"^{key}:"):
        validate(make_cfg(arg))


def test_summary_prints_every_recorded_figure():
    from msa.runtime import format_summary

    metrics = {"cot": {"message": "kept 3 of 4 clips", "kept": 3, "kept_rate": 0.75, "this_run": {"seconds": 1.0}},
               "wall_time_s": {"cot": 1.5},
               "sft": {"demo": {"acc3": 0.5, "n": 4}},
               "grpo_train": {"reward_first_fifth": 2.0104, "reward_last_fifth": 1.9916,
                              "own_reward_first_fifth": 1.966, "own_reward_last_fifth": 1.941,
                              "hint_rate": 0.04, "a_new_figure": 7.25},
               "grpo": {"demo": {"acc3": 0.75, "n": 4}, "demo_mosi": {"acc2_non0": 1.0, "n": 3}}}
    assert format_summary(metrics).splitlines() == [
        "dataset          acc3  n  acc2_non0",
        "sft/demo        50.00  4          -",
        "grpo/demo       75.00  4          -",
        "grpo/demo_mosi      -  3     100.00",
        "cot: kept 3  kept_rate 0.75",
        "wall_time_s: cot 1.5",
        "grpo_train: reward first->last fifth 2.01 -> 1.992  own_reward first->last fifth 1.966 -> 1.941  "
        "hint_rate 0.04  a_new_figure 7.25"]
