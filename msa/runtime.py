"""What every stage needs from the run: its directory, the hand-offs between stages, the objects built
from ``_target_`` nodes of the config (loggers, callbacks), and the metrics file and its closing summary.
Kept apart from the stages so that each stage file holds only its method."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("msa")


@dataclass
class RunContext:
    cfg: DictConfig
    output_dir: Path
    # Hand-offs: "cot" -> the CoT JSONL, "policy" -> the latest export dir (sft, then grpo).
    artefacts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    loggers: list = field(default_factory=list)

    def stage_dir(self, stage: str) -> Path:
        d = self.output_dir / stage
        d.mkdir(parents=True, exist_ok=True)
        return d

    def record(self, key: str, value: Any) -> None:
        """Add a stage's results to metrics.json (rewritten each time: a crash keeps finished stages)."""
        self.metrics[key] = value
        if not is_rank_zero():  # DDP: one writer
            return
        path = self.output_dir / "metrics.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(_finite(self.metrics), indent=2, default=_jsonable, allow_nan=False))
        tmp.replace(path)
        summarize_to_wandb(key, value)


def claim_dir(path: str) -> str:
    """``path``, created here, or the first free ``path_1``, ``path_2``, ... when it exists already.

    Hydra's run directories are named by the second (``outputs/<task>/<time>``): two runs launched in
    the same second would share one, each overwriting the other's config, exports and metrics. Creating
    the directory is the claim (``mkdir`` fails when it exists, atomically, also between processes).
    Registered as the resolver ``${msa.unique_dir:<path>}`` (conf/hydra), cached, so every later reading
    of ``hydra.run.dir`` in the run (Lightning's DDP launcher passes it to the other ranks) gets this one.
    """
    import itertools

    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    for k in itertools.count():
        candidate = base if k == 0 else base.with_name(f"{base.name}_{k}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return str(candidate)
    raise AssertionError("unreachable")


def global_rank() -> int:
    """This process's rank in the run: ``RANK`` (torchrun), else ``SLURM_PROCID`` when SLURM started several
    tasks (``srun``; the slurm launcher's ``nodes`` x ``tasks_per_node``, where Lightning's SLURM environment
    makes each task one rank and starts no process itself), else ``LOCAL_RANK`` (Lightning's launcher on one
    machine, whose workers inherit a one-task job's ``SLURM_PROCID=0``), else 0."""
    env = os.environ
    if "RANK" in env:
        return int(env["RANK"])
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return int(env["SLURM_PROCID"])
    return int(env.get("LOCAL_RANK", "0"))


def is_rank_zero() -> bool:
    """True outside DDP and on global rank 0 (:func:`global_rank`): the one process that plans, writes
    metrics.json and evaluates."""
    return global_rank() == 0


def gather_records(records: list[dict], key: str = "id") -> list[dict]:
    """Every rank's records, on every rank, once each (identity outside DDP).

    Under DDP each rank validates its shard of the split; the metrics must be those of the whole
    split, the same on every rank, so that checkpoint selection agrees. DistributedSampler pads the
    shards with repeats of the first samples to equal length: records are de-duplicated by ``key``.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, records)
        records = [r for part in parts for r in part]
    seen: set = set()
    unique = []
    for r in records:
        if r[key] not in seen:
            seen.add(r[key])
            unique.append(r)
    return unique


def _finite(x):
    """NaN/inf -> None: metrics.json stays valid JSON (an undefined Corr is null, not NaN)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    return x


def _jsonable(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def run_name(cfg: DictConfig, stage: str) -> str:
    """W&B/CSV run name from the flags that define an ablation: stage, hint, hard, seed."""
    return f"{stage}-hint_{str(cfg.hint).lower()}-hard_{str(cfg.hard).lower()}-s{cfg.seed}"


def run_setting(cfg: DictConfig, stage: str) -> dict:
    """What tells one run of a study from another, flat, under ``setting`` in the W&B config: the UI's
    group-by and parallel-coordinates views read ``setting.hint``, ``setting.dataset``, ... directly
    (the full config is there too, nested, but ``stage.run`` is a list and the model a whole node)."""
    model = cfg.model.get("name", "?") + (f":{Path(str(cfg.model.path)).name}" if cfg.model.get("path") else "")
    if stage == "eval":
        from msa.exports import export_facts

        answer = export_facts(cfg, cfg.get("init_from"))["answer"].value
    else:
        answer = "dc" if stage == "grpo" else cfg.sft.get("answer")
    return {"study": cfg.logger.get("group") or cfg.experiment_name, "experiment": cfg.experiment_name,
            "stage": stage, "dataset": cfg.data.name,
            "eval_datasets": ",".join(cfg.eval.get("datasets") or [cfg.data.name]), "model": model,
            "answer": answer, "hint": bool(cfg.hint), "hint_mode": str(cfg.grpo.get("hint_mode", "replace")),
            "hard": bool(cfg.hard), "seed": int(cfg.seed),
            "init_from": str(cfg.init_from or "")}


def instantiate(node: DictConfig | None, **overrides: Any):
    """The object a ``_target_`` node of the config describes (a logger, a callback): its ``_target_``
    called with the node's other keys, then ``overrides``, the values that differ between the stages of
    one run (a checkpoint directory, a W&B run's name). None for a null or empty node (``logger=none``,
    ``callbacks.lr_monitor=null``).

    The overrides go to the constructor as they are, never through the config: a file name such as
    ``sft-{step}`` or a whole config dict arrives unchanged, not read as OmegaConf syntax.
    """
    if node is None or len(node) == 0:
        return None
    from hydra.utils import instantiate as hydra_instantiate

    return hydra_instantiate(node, _partial_=True, _convert_="all")(**overrides)


def logs_to_wandb(cfg: DictConfig) -> bool:
    """Whether ``logger=`` builds a W&B logger (read from its ``_target_``, without building it)."""
    from hydra.utils import get_class
    from lightning.pytorch.loggers import WandbLogger

    node = cfg.get("logger")
    return bool(node) and issubclass(get_class(node._target_), WandbLogger)


def make_logger(cfg: DictConfig, stage: str):
    """The stage's Lightning logger, built from ``conf/logger`` (``logger=csv|wandb|none``); None when off.

    The config holds what every stage shares (the W&B project, mode and group, the save directory);
    the stage's own values are set here: its name (the CSV folder ``<run>/<stage>``; for W&B
    :func:`run_name`), and for W&B the ``job_type`` (the stage) and the run's config (the full config plus
    :func:`run_setting`). Every run of a study shares ``logger.group`` (default: the preset's
    ``experiment_name``). The eval pass of a training stage (``<stage>-eval``) reuses that stage's run.
    """
    if not cfg.get("logger"):
        return None
    if not logs_to_wandb(cfg):
        return instantiate(cfg.logger, name=stage)
    base = stage.removesuffix("-eval") or stage  # "eval-eval" (stage=eval's own pass) -> "eval"
    config = {**OmegaConf.to_container(cfg, resolve=True), "setting": run_setting(cfg, base)}
    return instantiate(cfg.logger, name=run_name(cfg, base), job_type=base, config=config)


def format_summary(metrics: dict[str, Any]) -> str:
    """The closing summary of a run, from what its stages recorded (:meth:`RunContext.record`, so a
    stage's new figure shows without an edit here): the per-dataset results (``{key: {dataset: {metric:
    value}}}``) as one table, a row per subset under its dataset's (``subsets``: text_conflict, ...), then
    a line per other record with its numbers (text and nested records are in metrics.json). A pair
    ``<x>_first_<y>`` / ``<x>_last_<y>`` reads as one change.

    >>> print(format_summary({"sft": {"demo": {"acc2": 0.8, "mae": 0.29, "n": 45,
    ...                                         "subsets": {"text_conflict": {"acc2": 0.5, "mae": 0.5, "n": 6}}}},
    ...                       "grpo_train": {"reward_first_fifth": 2.0104, "reward_last_fifth": 1.99, "steps": 40,
    ...                                      "teacher": "rule"},
    ...                       "wall_time_s": {"sft": 379.2, "grpo": 98.0}}))
    dataset                  acc2    mae   n
    sft/demo                80.00  0.290  45
    sft/demo text_conflict  50.00  0.500   6
    grpo_train: reward first->last fifth 2.01 -> 1.99  steps 40
    wall_time_s: sft 379.2  grpo 98
    """
    from msa.metrics import format_table

    def is_table(v) -> bool:
        return isinstance(v, dict) and bool(v) and all(isinstance(m, dict) for m in v.values())

    def number(x) -> str:
        return str(x) if isinstance(x, int) else f"{x:.3f}".rstrip("0").rstrip(".")

    tables = {}
    for key, rec in metrics.items():
        for ds, m in (rec.items() if is_table(rec) else ()):
            tables[f"{key}/{ds}"] = {k: v for k, v in m.items() if not isinstance(v, dict)}
            for name, sub in (m.get("subsets") or {}).items():  # msa.evaluation.SUBSETS, each a row
                tables[f"{key}/{ds} {name}"] = sub
    lines = [format_table(tables)] if tables else []
    for key, rec in metrics.items():
        if is_table(rec) or not isinstance(rec, dict):
            continue
        nums = {k: v for k, v in rec.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        parts = []
        for k, v in nums.items():
            if "_last_" in k and k.replace("_last_", "_first_", 1) in nums:
                continue  # printed with its first
            last = k.replace("_first_", "_last_", 1)
            if "_first_" in k and last in nums:
                x, y = k.split("_first_", 1)
                parts.append(f"{x} first->last {y} {number(v)} -> {number(nums[last])}")
            else:
                parts.append(f"{k} {number(v)}")
        if parts:
            lines.append(f"{key}: " + "  ".join(parts))
    return "\n".join(lines)


def summarize_to_wandb(key: str, value: Any) -> None:
    """Put a stage's results (test metrics per dataset, training summary) in the open W&B run's summary
    as ``<key>/<dataset>/<metric>``, so that runs compare on them in the UI; no-op without a W&B run."""
    import sys

    wandb = sys.modules.get("wandb")  # never import it for a csv/none run
    if wandb is None or getattr(wandb, "run", None) is None:
        return
    flat = {}

    def walk(prefix, x):
        if isinstance(x, dict):
            for k, v in x.items():
                walk(f"{prefix}/{k}", v)
        elif isinstance(x, (bool, int, float, str)):
            flat[prefix] = x

    walk(key, _finite(value))
    wandb.run.summary.update(flat)


def log_table(loggers, key: str, dataframe) -> None:
    """Log a pandas table to W&B when a W&B logger is active (the notebooks' data source)."""
    for lg in loggers or []:
        if type(lg).__name__ == "WandbLogger":
            import wandb

            lg.experiment.log({key: wandb.Table(dataframe=dataframe)})


def finish_wandb() -> None:
    """Close the W&B run if one is open, so that multirun sweeps do not leak runs into each other."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()
