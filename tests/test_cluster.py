"""Sweeps through Hydra's submitit launcher: the SLURM launcher's config composes from conf/ and the
per-machine placeholders in conf/local/, and renders the sbatch script a cluster would get (no cluster
needed: the submission is captured); a 2-point sweep runs through ``hydra/launcher=submitit_local``
(slow); the rank a SLURM task runs as."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# The multi-node command the README documents (two machines, 8 GPUs each, one task per GPU).
MULTI_NODE = ["stage=grpo", "trainer=ddp", "trainer.num_nodes=2", "trainer.devices=8", "hydra/launcher=slurm",
              "hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=8", "hydra.launcher.gpus_per_node=8"]

LOCAL = """\
slurm:
  partition: gpu-long
  account: msa-project
  cpus_per_task: 12
  mem_gb: 200
  timeout_min: 600
  setup: ["module load cuda/12.4"]
"""


def compose_with_hydra(overrides: list[str], tmp_path: Path, local: str | None = None):
    """The config ``python train.py -m <overrides>`` composes, hydra node included; ``local``: the text of
    a conf/local/default.yaml, put in a search-path folder of its own (the repo's conf/local/ untouched)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import msa.config  # noqa: F401

    extra = [f"hydra.sweep.dir={tmp_path / 'sweep'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    if local is not None:
        (tmp_path / "extra" / "local").mkdir(parents=True)
        (tmp_path / "extra" / "local" / "default.yaml").write_text(local)
        extra.append(f"hydra.searchpath=[file://{tmp_path / 'extra'}]")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, *extra], return_hydra_config=True)
    GlobalHydra.instance().clear()
    return cfg


def sbatch_script(cfg, tmp_path: Path, monkeypatch) -> str:
    """The sbatch file the SLURM launcher built from ``cfg`` for a 2-job sweep, captured instead of submitted
    (a stand-in ``srun`` on PATH: submitit checks for it)."""
    import submitit
    from hydra.utils import instantiate

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    seen = {}

    class Done:
        def results(self):
            return [None]

    def capture(executor, fn, *args):
        seen["executor"], seen["jobs"] = executor, len(args[0])
        return [Done() for _ in args[0]]

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    launcher.launch([["hint=true"], ["hint=false"]], initial_job_idx=0)
    assert seen["jobs"] == 2
    return seen["executor"]._executor._make_submission_file_text("python -u -m submitit.core._submit x", "u")


def sbatch_lines(script: str) -> dict[str, str]:
    out = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --"):].partition("=")
            out[key] = value
    return out


def test_slurm_launcher_reads_the_cluster_settings_from_conf_local(tmp_path, monkeypatch):
    cfg = compose_with_hydra(["stage=grpo", "hydra/launcher=slurm"], tmp_path, local=LOCAL)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.account, launcher.cpus_per_task, launcher.mem_gb) == \
        ("gpu-long", "msa-project", 12, 200)
    assert launcher.gpus_per_node == 1 and launcher.nodes == 1  # the launcher file's defaults
    script = sbatch_script(cfg, tmp_path, monkeypatch)
    lines = sbatch_lines(script)
    assert lines["partition"] == "gpu-long" and lines["account"] == "msa-project"
    assert lines["cpus-per-task"] == "12" and lines["mem"] == "200GB" and lines["time"] == "600"
    assert "module load cuda/12.4" in script
    # job logs land in the sweep folder, next to the jobs' run directories
    assert lines["output"].startswith(str(tmp_path / "sweep" / ".submitit"))


def test_slurm_launcher_without_conf_local_uses_its_defaults(tmp_path, monkeypatch):
    cfg = compose_with_hydra(["hydra/launcher=slurm"], tmp_path)
    assert cfg.hydra.launcher.partition is None and cfg.hydra.launcher.timeout_min == 240
    lines = sbatch_lines(sbatch_script(cfg, tmp_path, monkeypatch))
    assert "partition" not in lines and lines["time"] == "240" and lines["mem"] == "64GB"


def test_multi_node_ddp_command_composes_to_one_task_per_gpu(tmp_path, monkeypatch):
    from msa.config import validate

    cfg = compose_with_hydra(MULTI_NODE, tmp_path, local=LOCAL)
    assert (cfg.trainer.num_nodes, cfg.trainer.devices, cfg.trainer.strategy) == (2, 8, "ddp")
    lines = sbatch_lines(sbatch_script(cfg, tmp_path, monkeypatch))
    # Lightning's SLURM environment wants --ntasks-per-node == trainer.devices and --nodes == num_nodes
    assert (lines["nodes"], lines["ntasks-per-node"], lines["gpus-per-node"]) == ("2", "8", "8")
    from omegaconf import OmegaConf

    OmegaConf.set_struct(cfg, False)
    del cfg["hydra"]
    with pytest.raises(Exception, match="stage.run"):  # one training stage per launch, as with trainer=ddp
        validate(OmegaConf.merge(cfg, {"stage": {"run": ["sft", "grpo"]}}))


@pytest.mark.parametrize("env,rank", [({}, 0), ({"RANK": "3"}, 3), ({"LOCAL_RANK": "1"}, 1),
                                      ({"SLURM_PROCID": "5", "SLURM_NTASKS": "16"}, 5),
                                      # Lightning's own workers in a one-task job inherit SLURM_PROCID=0
                                      ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "LOCAL_RANK": "2"}, 2),
                                      ({"SLURM_PROCID": "0", "SLURM_NTASKS": "16"}, 0)])
def test_rank_under_slurm_and_lightning(env, rank, monkeypatch):
    from msa.runtime import global_rank, is_rank_zero

    for k in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert global_rank() == rank and is_rank_zero() == (rank == 0)


@pytest.mark.slow
def test_two_point_sweep_through_submitit_local(cache_dir, tmp_path):
    """The cluster path on this machine: each sweep point a submitit job (its own process), one sweep folder
    named as every sweep is (outputs/multiruns/<time>, claimed), each job's run directory in it."""
    from test_train import SMALL

    env = dict(os.environ, MSA_CACHE=str(cache_dir), HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", "hydra/launcher=submitit_local",
                        "stage=grpo", "hint=true,false", *SMALL], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    sweeps = list((tmp_path / "outputs" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    sweep = sweeps[0]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == ["0_grpo", "1_grpo"], jobs
    for job, hint in zip(jobs, (True, False)):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["grpo_train"]["steps"] == 2
        assert f"hint={str(hint).lower()}" in (sweep / job / "plan.txt").read_text()
    assert (sweep / "multirun.yaml").exists()
    logs = list((sweep / ".submitit").rglob("*_log.out"))
    assert len(logs) == 2, logs  # one submitit job per sweep point
