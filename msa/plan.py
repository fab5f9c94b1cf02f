"""What a run will do, resolved from its config before anything loads: the stages, the model and
where its weights come from, the datasets each stage reads (name, root, splits), and the flags.

The stages find their datasets through the same functions (:func:`eval_targets`, :func:`data_root`),
so the printed plan is what runs, not a second reading of the config. Which split each stage reads is
declared once, in :data:`STAGE_SPLITS`.

    rows = plan_rows(cfg); print(format_plan(rows))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from msa.config import ConfigError

# The splits of the training dataset (data.name) each stage reads; a string is a config key to read.
# The eval stage, and the test pass that ends sft and grpo, read eval.split of every eval target.
STAGE_SPLITS = {"cot": ("cot.split",), "sft": ("train", "valid"), "grpo": ("train",)}
TESTED_BY = ("sft", "grpo", "eval")  # stages that end with a pass over the eval targets


@dataclass(frozen=True)
class DataTarget:
    name: str
    root: str
    split: str


def data_root(cfg: DictConfig, name: str) -> str:
    """The directory of dataset ``name`` in this run: ``eval.roots.<name>``, else ``data.root`` for the
    training dataset, else the synthetic sets' own place; a real dataset without a root is an error."""
    root = (cfg.eval.get("roots") or {}).get(name)
    if root is not None:
        return str(root)
    if name == cfg.data.name:
        return str(cfg.data.root)
    from msa.data.datamodule import is_generated

    if is_generated(name):  # the synthetic sets are generated next to each other on first use
        return f"{cfg.paths.data_dir}/{name}"
    raise ConfigError(f"eval.roots.{name}: eval.datasets includes {name!r} but gives no root for it; "
                      f"set eval.roots.{name}=/path/to/{name} (MMSA layout)")


def eval_targets(cfg: DictConfig) -> list[DataTarget]:
    """The datasets the eval stage (and the test pass after sft/grpo) scores, with root and split.

    ``eval.datasets`` defaults to the data choice's ``data.eval_datasets`` (``[data.name]``; the demo
    adds its MOSI-like twin), so a preset can never pick them.
    """
    from msa.data.labels import MODE_ALIASES

    names = list(cfg.eval.datasets or [cfg.data.name])
    split = MODE_ALIASES.get(str(cfg.eval.split).strip().lower(), str(cfg.eval.split))  # val, dev -> valid
    return [DataTarget(name, data_root(cfg, name), split) for name in names]


def answer_range(cfg: DictConfig, policy_dir: str | Path | None) -> str:
    """The dataset whose range the policy answers in: ``eval.range_dataset``, else what the export at
    ``policy_dir`` was trained on (its ``range_dataset``, else its ``dataset``: an SFT export trained on
    SIMS answers in [-1, 1] whatever ``data=`` says now), else ``data.name``."""
    from msa.stages.common import read_export_meta

    meta = read_export_meta(policy_dir)
    return cfg.eval.range_dataset or meta.get("range_dataset") or meta.get("dataset") or cfg.data.name


def stage_splits(cfg: DictConfig, stage: str) -> list[str]:
    """The splits of the training dataset that ``stage`` reads (:data:`STAGE_SPLITS`)."""
    return [str(OmegaConf.select(cfg, s)) if "." in s else s for s in STAGE_SPLITS.get(stage, ())]


def model_source(cfg: DictConfig) -> str:
    """Where the policy's weights come from, in words."""
    m = cfg.model
    if m.get("path"):
        base = f"{m.path}" + (" (architecture only, random init)" if m.get("init") == "random" else "")
    elif m.get("tiny_size"):
        base = f"tiny random-init model (size {m.tiny_size}), built offline in {m.get('cache_dir')}"
    else:
        base = "7B architecture, random weights (no model.path)"
    if cfg.get("init_from"):
        base = f"{cfg.init_from} (export), on {base}"
    if not any(s in STAGE_SPLITS for s in cfg.stage.run if s != "cot"):
        return base
    lora = m.get("lora") or {}
    return base + (f"; LoRA r={lora.get('r')}" if lora.get("enabled") else "; full fine-tuning")


def plan_rows(cfg: DictConfig) -> list[tuple[str, str]]:
    """(what, value) rows describing the run; see :func:`format_plan`."""
    run = list(cfg.stage.run)
    rows = [("stages", " -> ".join(run)), ("preset", str(cfg.experiment_name)),
            ("model", f"{cfg.model.name}: {model_source(cfg)}")]
    if "cot" in run:
        rows.append(("teacher", str(cfg.teacher.kind) + (f" {cfg.teacher.path}" if cfg.teacher.get("path") else "")))
    trained = [s for s in run if s in STAGE_SPLITS]
    if trained:
        uses = ", ".join(f"{s} {'+'.join(stage_splits(cfg, s))}" for s in trained)
        rows.append(("train data", f"{cfg.data.name}  {cfg.data.root}  ({uses})"))
    if any(s in TESTED_BY for s in run):
        # Inside a run with training, the policy scored is that run's own export (trained on data.name).
        policy = None if trained else cfg.get("init_from")
        for i, t in enumerate(eval_targets(cfg)):
            rows.append(("eval data" if i == 0 else "", f"{t.name}  {t.root}  (split {t.split})"))
        rows.append(("", f"scored after {', '.join(s for s in run if s in TESTED_BY)}; "
                         f"the model answers in {answer_range(cfg, policy)}'s range"))
    if cfg.data.get("limit"):
        rows.append(("limit", f"first {cfg.data.limit} clips of each split"))
    mode = cfg.grpo.get("hint_mode", "replace")
    rows.append(("flags", f"hint={str(cfg.hint).lower()}" + (f" hint_mode={mode}" if mode != "replace" else "")
                 + f" hard={str(cfg.hard).lower()} seed={cfg.seed}"))
    rows.append(("output", str(cfg.paths.output_dir)))
    return rows


def format_plan(rows: list[tuple[str, str]]) -> str:
    """Two aligned columns under a title.

    >>> print(format_plan([("stages", "eval"), ("eval data", "mosi  /d/MOSI  (split test)"), ("", "more")]))
    plan
      stages     eval
      eval data  mosi  /d/MOSI  (split test)
                 more
    """
    width = max(len(k) for k, _ in rows)
    return "\n".join(["plan", *(f"  {k.ljust(width)}  {v}" for k, v in rows)])


def save_run_config(cfg: DictConfig, output_dir: str | Path, plan: str) -> Path:
    """Write the resolved config (``resolved_config.yaml``) and the plan (``plan.txt``) to the run dir."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.txt").write_text(plan + "\n", encoding="utf-8")
    path = out / "resolved_config.yaml"
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    return path
