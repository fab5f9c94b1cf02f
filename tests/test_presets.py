"""Every experiment preset composes and passes validation with every stage, so that a preset that no longer
composes fails here, on CPU, not on the first GPU a user rents; and no trainer option trains in half-precision
weights."""

from __future__ import annotations

import pytest

from conftest import CONF

PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
STAGES = sorted(p.stem for p in (CONF / "stage").glob("*.yaml"))
TRAINERS = sorted(p.stem for p in (CONF / "trainer").glob("*.yaml"))


def stage_args(stage, tmp_path):
    if stage == "sft":  # alone, sft reads an existing CoT file
        cot = tmp_path / "cot.jsonl"
        cot.write_text("")
        return [f"sft.cot={cot}"]
    return []


def test_the_lists_are_not_empty():
    assert {"demo", "paper", "none"} <= set(PRESETS) and {"pipeline", "sft", "grpo", "eval", "cot"} <= set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_and_validates_with_every_stage(preset, stage, make_cfg, tmp_path):
    from msa.config import validate

    cfg = make_cfg(f"experiment={preset}", f"stage={stage}", *stage_args(stage, tmp_path))
    validate(cfg)
    assert cfg.experiment_name == preset and list(cfg.stage.run)


@pytest.mark.parametrize("stage", ["sft", "grpo"])
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_validates_under_ddp_one_training_stage_per_launch(preset, stage, make_cfg, tmp_path):
    from msa.config import validate

    validate(make_cfg(f"experiment={preset}", f"stage={stage}", "trainer=ddp", *stage_args(stage, tmp_path)))


@pytest.mark.parametrize("trainer", TRAINERS)
def test_no_trainer_option_trains_half_precision_weights(trainer, make_cfg):
    """bf16-true / 16-true cast the trainable weights (and AdamW's state): lr ~1e-6 updates round away."""
    precision = str(make_cfg(f"trainer={trainer}").trainer.precision)
    assert precision in ("32-true", "32", "bf16-mixed", "16-mixed", "64-true"), (trainer, precision)


@pytest.mark.parametrize("overrides", [[f"trainer={t}"] for t in TRAINERS] + [[f"experiment={p}"] for p in PRESETS]
                         + [["debug=fdr"], ["debug=limit"]])
def test_trainer_options_hold_only_trainer_arguments(overrides, make_cfg):
    """``conf/trainer`` (and what presets add to it) is unpacked into ``lightning.Trainer`` by
    msa.stages.common.build_trainer, which gives the logger, the callbacks and the run directory itself:
    checkpoints and loggers live in conf/callbacks and conf/logger."""
    import inspect

    import lightning as L

    params = set(inspect.signature(L.Trainer.__init__).parameters) - {"self", "logger", "callbacks", "default_root_dir"}
    keys = set(make_cfg(*overrides).trainer)
    assert keys and keys <= params, sorted(keys - params)
