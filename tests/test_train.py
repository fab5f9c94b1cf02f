"""The entry point: config validation on the command line, the eval stage's files, the whole
pipeline on the tiny model, multirun sweeps and DDP (the last three are slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SMALL = ["model=tiny", "data.limit=4", "data.n_clips=24", "eval.max_new_tokens=8", "sft.max_epochs=1",
         "sft.val_max_new_tokens=8", "grpo.max_steps=2", "grpo.max_new_tokens=8", "grpo.log_completions_every=1",
         "logger=none"]


def run_cli(args, cache_dir, timeout=600):
    env = dict(os.environ, MSA_CACHE=str(cache_dir), HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("arg,key", [("hint=maybe", "hint"), ("hnt=false", "hnt"), ("seed=abc", "seed"),
                                     ("grpo.num_generations=1", "grpo.num_generations"),
                                     ("data.on_error=ignore", "data.on_error"),
                                     ("trainer=ddp_cpu", "stage.run"),
                                     ("callbacks.step_checkpoint.every_n_train_steps=0",
                                      "callbacks.step_checkpoint.every_n_train_steps")])
def test_bad_values_fail_with_one_line_naming_the_key(arg, key, cache_dir):
    r = run_cli([arg], cache_dir, timeout=120)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}:"), r.stderr


def test_hint_false_composes_to_a_real_bool(make_cfg):
    cfg = make_cfg("stage=grpo", "hint=false")
    assert cfg.hint is False and list(cfg.stage.run) == ["grpo"] and cfg.trainer.get("gradient_clip_val") is None


def test_wandb_names_come_from_experiment_stage_and_flags(make_cfg):
    from msa.runtime import run_name

    cfg = make_cfg("stage=grpo", "hint=false", "seed=3", "logger=wandb")
    # one group per study (the preset), whatever the stage: the stage is the W&B job_type
    assert cfg.logger.group == "demo" and run_name(cfg, "grpo") == "grpo-hint_false-hard_true-s3"
    assert make_cfg("experiment=none", "logger=wandb").logger.group == "none"


def test_eval_stage_writes_predictions_and_metrics(make_cfg, tmp_path):
    from train import train

    cfg = make_cfg("stage=eval", *SMALL)  # the demo's targets: demo and demo_mosi
    metrics = train(cfg)
    out = Path(cfg.paths.output_dir)
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["eval"]) == {"demo", "demo_mosi"}
    for ds, m in saved["eval"].items():
        assert m["n"] in (3, 4) and 0.0 <= m["parse_fail_rate"] <= 1.0 and "mae" in m
    assert "acc7" in saved["eval"]["demo_mosi"] and "acc2_weak" in saved["eval"]["demo"]
    recs = [json.loads(x) for x in (out / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(recs) == sum(m["n"] for m in saved["eval"].values())
    r = recs[0]
    for k in ("id", "dataset", "label", "completion", "prediction", "parse_fail", "parsed_polarity",
              "reward_format", "reward_polarity", "reward_score"):
        assert k in r
    # a random model fails to parse: prediction 0 (kept in N)
    assert all(x["prediction"] == 0.0 for x in recs if x["parse_fail"])
    # the demo sets have unimodal labels: each test split's subsets, sized by the records' own labels
    from msa.evaluation import in_subset

    assert all(k in r for k in ("label_T", "label_A", "label_V", "conflict")) and "polarity_acc" in saved["eval"]["demo"]
    for ds, m in saved["eval"].items():
        assert {"text_conflict", "audio_conflict", "visual_conflict"} <= set(m["subsets"])
        for name, sub in m["subsets"].items():
            assert sub["n"] == sum(in_subset(name, x) for x in recs if x["dataset"] == ds)
    assert metrics["eval"]["demo"]["n"] == saved["eval"]["demo"]["n"]


@pytest.mark.slow
def test_pipeline_end_to_end(make_cfg, monkeypatch):
    from train import train

    cfg = make_cfg(*SMALL)
    metrics = train(cfg)
    out = Path(cfg.paths.output_dir)
    assert {"cot", "sft", "grpo", "grpo_train", "eval"} <= set(metrics)
    assert (out / "cot" / "cot.jsonl").exists() and (out / "checkpoints" / "best" / "msa_policy.json").exists()
    assert list((out / "grpo" / "completions").glob("*.parquet"))
    assert set(metrics["grpo_train"]) >= {"reward_first_fifth", "reward_last_fifth", "hint_rate", "hard_frac"}
    # the notebooks run on this output as a researcher would open them (outputs/<task>/<time>/), with the
    # config saved where Hydra saves it (train(cfg) called directly does not)
    from omegaconf import OmegaConf

    (out / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, out / ".hydra" / "config.yaml")
    work = out.parent / "nb"
    (work / "outputs" / "pipeline").mkdir(parents=True)
    (work / "outputs" / "pipeline" / "run").symlink_to(out, target_is_directory=True)
    (work / "outputs" / "hint_ablation").mkdir()
    (work / "outputs" / "hint_ablation" / "0_grpo").symlink_to(out, target_is_directory=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        run_notebook(nb)


def run_notebook(path):
    """Execute a notebook's code cells in order in one namespace (display -> print)."""
    cells = json.loads(path.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    exec(compile(code, str(path), "exec"), {"display": print, "__name__": "__notebook__"})


@pytest.mark.slow
def test_multirun_hint_sweep(cache_dir, tmp_path):
    r = run_cli(["-m", "stage=grpo", "hint=true,false", *SMALL, f"hydra.sweep.dir={tmp_path}"], cache_dir,
                timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert jobs == ["0_grpo", "1_grpo"], jobs
    for j in jobs:
        assert "grpo_train" in json.loads((tmp_path / j / "metrics.json").read_text())


@pytest.mark.slow
def test_grpo_ddp_two_cpu_processes(cache_dir, tmp_path):
    r = run_cli(["stage=grpo", *SMALL, "trainer=ddp_cpu", "data.batch_size=1", f"hydra.run.dir={tmp_path}"],
                cache_dir, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["grpo_train"]["steps"] == 2
    # each rank sampled its own prompt: both ranks' rollouts are on disk, rank-tagged
    tables = sorted(p.name for p in (tmp_path / "grpo" / "completions").glob("*.parquet"))
    assert tables == [f"completions_{s:05d}_rank{r}.parquet" for s in range(2) for r in range(2)], tables
    import pandas as pd

    step0 = {r: pd.read_parquet(tmp_path / "grpo" / "completions" / f"completions_00000_rank{r}.parquet")
             for r in range(2)}
    assert set(step0[0]["prompt_id"]).isdisjoint(step0[1]["prompt_id"])
    # the curves in metrics.json / train_history.csv are means over both ranks' rollouts
    hist = pd.read_csv(tmp_path / "grpo" / "train_history.csv")
    for col, key in (("reward", "reward"), ("length", "completions/mean_length")):
        both = (step0[0][col].mean() + step0[1][col].mean()) / 2
        assert abs(hist[key][0] - both) < 1e-6, (key, hist[key][0], both)


@pytest.mark.slow
def test_sft_ddp_validates_the_whole_split(cache_dir, tmp_path):
    # 3 validation clips on 2 ranks: the sampler pads to 4; the gathered metrics count each clip once.
    r = run_cli(["stage=sft", "sft.answer=score", *SMALL, "sft.val_every_n_epochs=1", "data.limit=3",
                 "trainer=ddp_cpu", "data.batch_size=1",
                 f"hydra.run.dir={tmp_path}"], cache_dir, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["sft_train"]["best_val"]["n"] == 3


def test_gather_records_outside_ddp_drops_sampler_padding():
    from msa.runtime import gather_records

    recs = [{"id": "a", "x": 1}, {"id": "b", "x": 2}, {"id": "a", "x": 1}]
    assert gather_records(recs) == [{"id": "a", "x": 1}, {"id": "b", "x": 2}]


def test_wandb_offline_run_gets_the_predictions_table_and_is_finished(cache_dir, tmp_path):
    r = run_cli(["stage=eval", "logger=wandb", "model=tiny", "data.limit=4", "eval.max_new_tokens=8",
                 "eval.datasets=[demo]", f"hydra.run.dir={tmp_path}"], cache_dir, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    tables = list(runs[0].glob("files/media/table/eval/predictions_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert {"id", "completion", "prediction", "label"} <= set(table["columns"]) and len(table["data"]) == 4
    assert "finishing run" in (runs[0] / "logs" / "debug.log").read_text()  # finished, not leaked


def test_grpo_writes_a_resumable_checkpoint_every_n_steps(make_cfg):
    import torch

    from train import train

    cfg = make_cfg("stage=grpo", *SMALL, "grpo.max_steps=3",
                   "callbacks.step_checkpoint.every_n_train_steps=2")
    train(cfg)
    saved = torch.load(Path(cfg.grpo.checkpoint_dir) / "last.ckpt", weights_only=True)
    assert saved["global_step"] in (2, 3)  # step 2 by the periodic callback, step 3 if the run end wrote one
    assert len(saved["msa_grpo_history"]) == saved["global_step"] and "msa_rng" in saved


@pytest.mark.parametrize("args,key", [(("data=study", "data.text_conflict=0.9"), "data.text_conflict"),
                                      (("data=study", "data.text_conflict=many"), "data.text_conflict"),
                                      (("stage=cot", "teacher.text_led=maybe"), "teacher.text_led")])
def test_study_keys_are_checked(make_cfg, args, key):
    from msa.config import ConfigError, validate

    with pytest.raises(ConfigError, match=f"^{key}:"):
        validate(make_cfg(*args))


def test_data_study_composes_to_the_study_set(make_cfg):
    from msa.data.datamodule import datamodule_kwargs, generation_keys

    cfg = make_cfg("data=study")
    kw = datamodule_kwargs(cfg.data)
    assert (kw["name"], kw["n_clips"], kw["splits"], kw["text_conflict"]) == ("study", 700, [0.3, 0.1, 0.6], 0.25)
    assert generation_keys("study") == ("n_clips", "splits", "text_conflict") and list(cfg.eval.datasets) == ["study"]
    validate_ok = make_cfg("data=study", "stage=cot", "teacher.text_led=true")
    from msa.config import validate

    validate(validate_ok)
