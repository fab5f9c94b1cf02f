"""Run directories for the report: each found, its config read, and placed in the settings it gives
(``zero_shot``, ``sft_dc``, ... ; see :mod:`msa.report`), seeds of one setting grouped."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

SETTINGS = {
    "zero_shot": "zero-shot (DC prompt), stage=eval without init_from",
    "sft_dc": "CoT SFT, stage=sft sft.answer=dc",
    "sft_score": "direct-score SFT baseline, stage=sft sft.answer=score",
    "grpo": "Hint-GRPO, stage=grpo hint=true hard=true",
    "grpo_no_hint": "standard GRPO, stage=grpo hint=false",
    "grpo_no_hard": "GRPO without hard prompts, stage=grpo hard=false",
    "grpo_anchored": "Hint-GRPO with grpo.hint_mode=anchored (not the paper's: msa/stages/grpo.py, 4.)",
}

RESOLVED_CONFIG = "resolved_config.yaml"  # written by train.py (msa.plan.save_run_config); Hydra's own copy else


class ReportError(ValueError):
    """A run directory cannot give what a table needs; the message names the run."""


@dataclass
class Run:
    path: Path
    cfg: dict  # the few config values the report reads (resolved)
    metrics: dict
    settings: dict[str, str] = field(default_factory=dict)  # setting -> the metrics.json stage holding its test pass

    @property
    def seed(self) -> int:
        return int(self.cfg["seed"])

    @property
    def dataset(self) -> str:
        return self.cfg["data"]

    def test_metrics(self, setting: str, dataset: str) -> dict:
        stage = self.settings[setting]
        per_ds = self.metrics.get(stage)
        if not isinstance(per_ds, dict) or not per_ds:
            raise ReportError(f"{self.path}: no '{stage}' test metrics in metrics.json (needed as {setting}); "
                              f"the run did not finish its {stage} stage")
        if dataset not in per_ds:
            raise ReportError(f"{self.path}: the {stage} stage was not tested on {dataset!r} (tested on "
                              f"{sorted(per_ds)}); rerun with eval.datasets including {dataset}")
        return per_ds[dataset]

    def tested_on(self, setting: str) -> list[str]:
        per_ds = self.metrics.get(self.settings[setting])
        return sorted(per_ds) if isinstance(per_ds, dict) else []


def _select(cfg, key: str, default=None):
    try:
        value = OmegaConf.select(cfg, key, default=default, throw_on_missing=False)
    except Exception:  # an interpolation into ${hydra:...} cannot resolve outside the run
        return default
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def classify(cfg: dict) -> dict[str, str]:
    """The settings a run gives and the metrics.json stage holding each one's test pass.

    >>> classify({"stages": ["cot", "sft", "grpo", "eval"], "init_from": None, "sft_answer": "dc",
    ...           "hint": True, "hard": True})
    {'sft_dc': 'sft', 'grpo': 'grpo'}
    >>> classify({"stages": ["eval"], "init_from": None, "eval_answer": "dc", "hint": True, "hard": True})
    {'zero_shot': 'eval'}
    >>> classify({"stages": ["grpo"], "init_from": "x", "hint": False, "hard": True})
    {'grpo_no_hint': 'grpo'}
    >>> classify({"stages": ["grpo"], "init_from": "x", "hint": True, "hint_mode": "anchored", "hard": True})
    {'grpo_anchored': 'grpo'}
    """
    stages = list(cfg["stages"])
    out = {}
    if stages == ["eval"] and not cfg.get("init_from") and cfg.get("eval_answer", "dc") == "dc":
        out["zero_shot"] = "eval"
    if "sft" in stages:
        out[f"sft_{cfg['sft_answer']}"] = "sft"
    if "grpo" in stages:
        hint, hard = bool(cfg["hint"]), bool(cfg["hard"])
        if hint and hard and cfg.get("hint_mode", "replace") != "replace":
            out[f"grpo_{cfg['hint_mode']}"] = "grpo"  # another hint, never a row of the paper's tables
        elif hard:
            out["grpo" if hint else "grpo_no_hint"] = "grpo"
        elif hint:
            out["grpo_no_hard"] = "grpo"
        else:
            out["grpo_no_hint_no_hard"] = "grpo"
    return out


def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / "metrics.json").exists():
        raise ReportError(f"{path}: no metrics.json (not a run directory, or the run never finished a stage)")
    cfg_file = next((f for f in (path / RESOLVED_CONFIG, path / ".hydra" / "config.yaml") if f.exists()), None)
    if cfg_file is None:
        raise ReportError(f"{path}: no {RESOLVED_CONFIG} or .hydra/config.yaml, so the run's settings are unknown")
    raw = OmegaConf.load(cfg_file)
    cfg = {"stages": _select(raw, "stage.run", []), "init_from": _select(raw, "init_from"),
           "sft_answer": _select(raw, "sft.answer", "dc"), "eval_answer": _select(raw, "eval.answer") or _select(raw, "sft.answer", "dc"),
           "hint": _select(raw, "hint", True), "hint_mode": _select(raw, "grpo.hint_mode", "replace"),
           "hard": _select(raw, "hard", True), "seed": _select(raw, "seed", 0),
           "data": _select(raw, "data.name"), "model": _select(raw, "model.name")}
    run = Run(path=path, cfg=cfg, metrics=json.loads((path / "metrics.json").read_text()))
    run.settings = classify(cfg)
    return run


def find_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run directory under ``paths`` (a path that is itself a run counts once)."""
    found: dict[Path, None] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise ReportError(f"{p}: no such directory")
        files = [p / "metrics.json"] if (p / "metrics.json").exists() else sorted(p.rglob("metrics.json"))
        for f in files:
            if "wandb" not in f.relative_to(p).parts:
                found[f.parent.resolve()] = None
    if not found:
        raise ReportError(f"no run directories (metrics.json) under {', '.join(map(str, paths))}")
    return [load_run(d) for d in found]


def by_setting(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """setting -> its runs, one per seed (two runs of one setting and seed are an error naming both)."""
    out: dict[str, dict[int, Run]] = {}
    for run in runs:
        for setting in run.settings:
            seeds = out.setdefault(setting, {})
            if run.seed in seeds:
                raise ReportError(f"two runs of setting {setting} with seed {run.seed}: {seeds[run.seed].path} and "
                                  f"{run.path}; pass only one of them")
            seeds[run.seed] = run
    return {s: [seeds[k] for k in sorted(seeds)] for s, seeds in out.items()}
