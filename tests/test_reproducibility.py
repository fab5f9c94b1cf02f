"""Same seed, same numbers: a stage's randomness depends on the seed, the stage and the data only, not
on whether the cache was cold (tiny model built, demo set generated, media decoded in this process) or
on the stages that ran before it in the process."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import compose_cfg

SHORT = ["model=tiny", "data.limit=4", "data.n_clips=24", "eval.max_new_tokens=8", "eval.datasets=[demo]",
         "grpo.max_steps=2", "grpo.max_new_tokens=8", "grpo.log_completions_every=0", "logger=none"]


TIMINGS = {"wall_time_s", "clips_per_s", "seconds", "load_seconds"}


def comparable(d, run_dir: Path):
    """Metrics minus the wall-clock figures, with the run's own directory written as <run>: the only things
    allowed to differ between two runs."""
    if isinstance(d, dict):
        return {k: comparable(v, run_dir) for k, v in d.items() if k not in TIMINGS}
    if isinstance(d, str):
        return d.replace(str(run_dir), "<run>")
    return d


def run(overrides, out: Path, cache: Path) -> tuple[dict, pd.DataFrame | None]:
    from train import train

    cfg = compose_cfg([*SHORT, *overrides], out, cache)
    train(cfg)
    metrics = comparable(json.loads((out / "metrics.json").read_text()), out)
    hist = out / "grpo" / "train_history.csv"
    return metrics, pd.read_csv(hist) if hist.exists() else None


def test_each_stage_draws_from_seed_and_stage_only(make_cfg, monkeypatch):
    """train() seeds every stage from (seed, stage): grpo alone draws what grpo draws inside the pipeline,
    whatever the stages before it consumed; another stage or another seed draws something else."""
    import torch

    import msa.stages
    from train import train

    draws = {}

    def fake_stage(stage, ctx):
        draws[stage] = torch.rand(4)
        torch.rand(1000 if stage == "cot" else 7)  # stages consume different amounts

    monkeypatch.setattr(msa.stages, "run_stage", fake_stage)
    train(make_cfg("logger=none"))
    pipeline = dict(draws)
    train(make_cfg("logger=none", "stage=grpo"))
    assert torch.equal(draws["grpo"], pipeline["grpo"])
    assert not torch.equal(pipeline["sft"], pipeline["grpo"])
    train(make_cfg("logger=none", "stage=grpo", "seed=1"))
    assert not torch.equal(draws["grpo"], pipeline["grpo"])


def test_each_ddp_rank_draws_from_its_own_stream(monkeypatch):
    """seed_stage seeded every DDP rank alike, so the ranks sampled correlated rollouts (identical texts for
    different prompts on the tiny model). Each rank now draws from (seed, stage, rank), read from the
    launcher's environment as the stage starts; rank 0 (and a one-process run) keeps (seed, stage)'s stream,
    and PL_GLOBAL_SEED, which seeds samplers that must shuffle alike on every rank, stays shared."""
    import os
    import random

    import numpy as np
    import torch

    from msa.stages.common import seed_stage

    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    seed_stage(0, "grpo")
    alone = (torch.rand(4), np.random.rand(), random.random())
    draws, shared = {}, {}
    for rank in ("0", "1", "2"):
        monkeypatch.setenv("LOCAL_RANK", rank)
        seed_stage(0, "grpo")
        draws[rank] = (torch.rand(4), np.random.rand(), random.random())
        shared[rank] = os.environ["PL_GLOBAL_SEED"]
    assert torch.equal(draws["0"][0], alone[0]) and draws["0"][1:] == alone[1:]
    for a, b in (("0", "1"), ("0", "2"), ("1", "2")):
        assert not torch.equal(draws[a][0], draws[b][0]), (a, b)
        assert draws[a][1] != draws[b][1] and draws[a][2] != draws[b][2], (a, b)
    assert shared["0"] == shared["1"] == shared["2"]
    monkeypatch.setenv("NODE_RANK", "1")  # Lightning's launcher on a second node: LOCAL_RANK repeats per node
    seed_stage(0, "grpo")
    assert not torch.equal(torch.rand(4), draws["2"][0])


def test_a_cold_model_cache_leaves_the_rng_alone(tmp_path):
    """Building the tiny model on first use seeds its own init; the LoRA init and every draw after the load
    are those of a warm cache (before: the build reset the global RNG, so the fresh adapter and the GRPO
    rollouts of a first run differed from the second's)."""
    import lightning as L
    import torch

    from conftest import LORA_R4, compose_node
    from msa.models import load_policy

    mcfg = compose_node("model", LORA_R4, cache_dir=tmp_path, output_dir=tmp_path / "run")

    def load():
        L.seed_everything(0, verbose=False)
        policy = load_policy(mcfg)
        return {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_A" in n}, torch.rand(4)

    cold_lora, cold_draw = load()  # builds the model into tmp_path
    warm_lora, warm_draw = load()
    assert torch.equal(cold_draw, warm_draw)
    assert all(torch.equal(cold_lora[n], warm_lora[n]) for n in cold_lora)


@pytest.mark.slow
def test_grpo_curve_is_the_same_with_a_cold_and_a_warm_cache(tmp_path):
    """Cold: the tiny model is built (it seeds its own init) and the demo set generated inside the run.
    Before per-stage seeding and an isolated build RNG, the fresh LoRA drew from another RNG state."""
    cache = tmp_path / "cache"
    cold, cold_hist = run(["stage=grpo"], tmp_path / "cold", cache)
    warm, warm_hist = run(["stage=grpo"], tmp_path / "warm", cache)
    assert len(cold_hist) == 2
    pd.testing.assert_frame_equal(cold_hist, warm_hist)
    assert cold == warm


@pytest.mark.slow
def test_pipeline_numbers_are_the_same_cold_warm_and_stage_alone(tmp_path):
    """cot -> sft -> grpo -> eval twice (cold, then warm cache): identical metrics and GRPO curves; and
    stage=grpo alone from the pipeline's SFT export draws the same rollouts as inside the pipeline."""
    cache = tmp_path / "cache"
    small = ["sft.max_epochs=1", "sft.val_max_new_tokens=8"]
    cold, cold_hist = run(small, tmp_path / "cold", cache)
    warm, warm_hist = run(small, tmp_path / "warm", cache)
    pd.testing.assert_frame_equal(cold_hist, warm_hist)
    assert cold == warm
    alone, alone_hist = run(["stage=grpo", f"init_from={tmp_path / 'warm' / 'checkpoints' / 'best'}"],
                            tmp_path / "alone", cache)
    pd.testing.assert_frame_equal(alone_hist, warm_hist)
    assert alone["grpo_train"] == warm["grpo_train"] and alone["grpo"] == warm["grpo"]
