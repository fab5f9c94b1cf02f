"""The paper's tables and reward-curve figure from run directories.

    python -m msa.report outputs/paper                       # every table the runs allow, Markdown on stdout
    python -m msa.report outputs/paper --paper --out report  # + the paper's numbers; .md, .tex, .csv, PNGs

Arguments are run directories (``metrics.json`` + the run's config) or folders holding them at any
depth (a sweep, a study). Each run is placed in a *setting* by its config, never by its folder name:

=================  ==================================================================================
setting            the run
=================  ==================================================================================
``zero_shot``      ``stage=eval`` without ``init_from`` (the base model, DC prompt)
``sft_dc``         ``sft`` in ``stage.run`` with ``sft.answer=dc`` (cold-start SFT on the CoT)
``sft_score``      ``sft`` with ``sft.answer=score`` (the direct-score baseline)
``grpo``           ``grpo`` with ``hint=true hard=true`` (MSA-Thinker, "w/ Hint", "w/ Hard")
``grpo_no_hint``   ``grpo`` with ``hint=false`` (standard GRPO)
``grpo_no_hard``   ``grpo`` with ``hard=false`` (hard prompts dropped)
=================  ==================================================================================

The metrics of a setting are the test pass its stage wrote (``metrics.json[stage][dataset]``); runs of
one setting that differ in ``seed`` are shown as mean +- sample std (ddof 1). Tables I/II take every
dataset the runs were tested on (SIMS-family columns in I, MOSI-family in II); III-V the training
dataset. A run that lacks a stage or dataset its table needs is an error that names the run, never a
blank cell. A metric that MMSA itself leaves undefined (Corr of constant predictions, stored as null)
is printed ``nan``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from msa.data.specs import get_spec

# ----------------------------------------------------------------------------------------------
# What the tables show
# ----------------------------------------------------------------------------------------------

# Paper column -> metrics.json keys, first present wins. The F1 is MMSA's weighted F1 (the paper's
# text says "macro-averaged"; MMSA's code, which the baselines use, weights by support). Newer runs may
# name it unambiguously (f1_weighted...); older runs say f1 / f1_non0. Acc2 and F1 on MOSI-family sets
# are MMSA's Non0 (negative vs positive, zeros excluded), as the paper describes its Acc2.
METRIC_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "sims": {"Acc5": ("acc5",), "Acc3": ("acc3",), "Acc2": ("acc2",),
             "F1": ("f1_weighted", "f1"),
             "MAE": ("mae",), "Corr": ("corr",)},
    "mosi": {"Acc7": ("acc7",), "Acc2": ("acc2_non0",),
             "F1": ("f1_weighted_non0", "f1_non0_weighted", "f1_non0"),
             "MAE": ("mae",), "Corr": ("corr",)},
}
PERCENT = ("Acc7", "Acc5", "Acc3", "Acc2", "F1")  # shown x100 with one decimal; MAE and Corr with three
LOWER_IS_BETTER = ("MAE",)

DATASET_TITLES = {"sims": "CH-SIMS", "simsv2": "CH-SIMS v2", "mosi": "CMU-MOSI", "mosei": "CMU-MOSEI",
                  "demo": "demo (SIMS-like)", "demo_mosi": "demo_mosi (MOSI-like)"}
DATASET_ORDER = ("sims", "simsv2", "demo", "mosi", "mosei", "demo_mosi")

SETTINGS = {
    "zero_shot": "zero-shot (DC prompt), stage=eval without init_from",
    "sft_dc": "CoT SFT, stage=sft sft.answer=dc",
    "sft_score": "direct-score SFT baseline, stage=sft sft.answer=score",
    "grpo": "Hint-GRPO, stage=grpo hint=true hard=true",
    "grpo_no_hint": "standard GRPO, stage=grpo hint=false",
    "grpo_no_hard": "GRPO without hard prompts, stage=grpo hard=false",
}


@dataclass(frozen=True)
class TableSpec:
    key: str  # I, II, ...
    title: str  # {train}: the training dataset of the runs
    rows: tuple[tuple[str, str], ...]  # (setting, row label as in the paper)
    family: str  # which columns: "sims" or "mosi"
    in_domain: bool  # only the training dataset (III-V), or every tested dataset of the family (I, II)


TABLES = {
    "I": TableSpec("I", "Table I: trained on {train}, tested on the SIMS-family sets",
                   (("zero_shot", "Zero-shot"), ("sft_score", "SFT (direct score)"), ("grpo", "MSA-Thinker")),
                   "sims", False),
    "II": TableSpec("II", "Table II: trained on {train}, tested on the MOSI-family sets (cross-dataset)",
                    (("zero_shot", "Zero-shot"), ("sft_score", "SFT (direct score)"), ("grpo", "MSA-Thinker")),
                    "mosi", False),
    "III": TableSpec("III", "Table III: two-stage training, trained and tested on {train}",
                     (("zero_shot", "CoT (Zero-shot)"), ("sft_dc", "CoT (SFT)"), ("grpo", "CoT (SFT+RL)")),
                     "sims", True),
    "IV": TableSpec("IV", "Table IV: effectiveness of the hint, trained and tested on {train}",
                    (("grpo_no_hint", "w/o Hint"), ("grpo", "w/ Hint")), "sims", True),
    "V": TableSpec("V", "Table V: necessity of hard data, trained and tested on {train}",
                   (("grpo_no_hard", "w/o Hard"), ("grpo", "w/ Hard")), "sims", True),
}
FIGURE_RUNS = (("grpo", "w/ Hint"), ("grpo_no_hint", "w/o Hint"), ("grpo_no_hard", "w/o Hard"))  # Fig. 3

# The paper's own numbers (arXiv 2604.00013, Tables I-V), as printed: percent and three decimals.
# (table, row, dataset) -> {column: value}. Tables I/II's baselines are direct-score SFT of each 7B MLLM;
# "Qwen2.5Omni" is the same recipe as our sft_score on Qwen2.5-Omni-7B.
_SIMS_COLS = ("Acc5", "Acc3", "Acc2", "F1", "MAE", "Corr")
_MOSI_COLS = ("Acc7", "Acc2", "F1", "MAE", "Corr")
_T1 = {  # row: (CH-SIMS, CH-SIMS v2)
    "PandaGPT": ((38.3, 58.4, 77.2, 74.7, 0.431, 0.537), (40.0, 57.6, 70.4, 67.9, 0.403, 0.550)),
    "Emotion-LLaMA": ((41.1, 59.3, 77.2, 75.4, 0.403, 0.628), (39.4, 57.4, 72.3, 70.5, 0.402, 0.610)),
    "MiniCPM-o": ((48.8, 68.7, 82.5, 80.5, 0.350, 0.695), (39.1, 68.5, 76.6, 75.0, 0.420, 0.700)),
    "Ola": ((48.4, 67.8, 81.6, 80.2, 0.406, 0.646), (39.8, 70.7, 77.6, 76.6, 0.460, 0.645)),
    "VideoLLaMA2": ((52.1, 74.4, 81.6, 82.3, 0.388, 0.733), (43.3, 76.4, 80.9, 80.9, 0.494, 0.726)),
    "HumanOmni": ((52.1, 72.9, 85.1, 85.0, 0.327, 0.749), (43.3, 73.1, 81.5, 81.3, 0.381, 0.752)),
    "Qwen2.5Omni": ((57.6, 73.3, 87.5, 87.0, 0.235, 0.841), (53.6, 75.3, 85.4, 85.2, 0.263, 0.833)),
    "MSA-Thinker(SIMS)": ((54.3, 77.2, 87.5, 87.8, 0.331, 0.780), (42.6, 80.0, 84.9, 85.0, 0.407, 0.796)),
}
_T2 = {  # row: (CMU-MOSI, CMU-MOSEI)
    "PandaGPT": ((20.9, 85.3, 85.4, 1.130, 0.670), (44.6, 85.5, 85.3, 0.723, 0.610)),
    "Emotion-LLaMA": ((25.5, 79.2, 79.4, 1.078, 0.593), (38.5, 80.7, 80.5, 1.224, 0.025)),
    "MiniCPM-o": ((32.6, 87.0, 87.1, 0.874, 0.756), (47.1, 85.3, 84.9, 0.641, 0.688)),
    "Ola": ((35.2, 82.7, 82.8, 0.870, 0.728), (47.4, 83.2, 83.2, 0.666, 0.672)),
    "VideoLLaMA2": ((25.4, 69.9, 69.3, 1.142, 0.561), (37.7, 74.4, 72.0, 0.835, 0.448)),
    "HumanOmni": ((29.2, 82.6, 82.7, 0.974, 0.701), (44.0, 84.8, 84.6, 0.682, 0.630)),
    "Qwen2.5Omni": ((39.6, 85.8, 85.9, 0.857, 0.795), (49.3, 84.1, 83.4, 0.637, 0.688)),
    "MSA-Thinker(SIMS)": ((43.2, 85.0, 85.1, 0.723, 0.819), (46.3, 86.6, 86.3, 0.635, 0.731)),
}
_T345 = {  # table: row: CH-SIMS
    "III": {"CoT(Zero-shot)": (36.5, 55.1, 70.0, 70.8, 0.462, 0.558),
            "CoT(SFT)": (52.7, 76.4, 86.7, 86.9, 0.345, 0.752),
            "CoT(SFT+RL)": (54.3, 77.2, 87.5, 87.8, 0.331, 0.780)},
    "IV": {"w/o Hint": (46.2, 67.0, 82.5, 81.4, 0.368, 0.701),
           "w/ Hint": (54.3, 77.2, 87.5, 87.8, 0.331, 0.780)},
    "V": {"w/o Hard": (47.9, 77.0, 87.3, 87.6, 0.447, 0.715),
          "w/ Hard": (54.3, 77.2, 87.5, 87.8, 0.331, 0.780)},
}
PAPER: dict[tuple[str, str, str], dict[str, float]] = {
    **{("I", row, ds): dict(zip(_SIMS_COLS, v))
       for row, vals in _T1.items() for ds, v in zip(("sims", "simsv2"), vals)},
    **{("II", row, ds): dict(zip(_MOSI_COLS, v))
       for row, vals in _T2.items() for ds, v in zip(("mosi", "mosei"), vals)},
    **{(t, row, "sims"): dict(zip(_SIMS_COLS, v)) for t, rows in _T345.items() for row, v in rows.items()},
}


RESOLVED_CONFIG = "resolved_config.yaml"  # written by train.py (msa.plan.save_run_config); Hydra's own copy else


class ReportError(ValueError):
    """A run directory cannot give what a table needs; the message names the run."""


# ----------------------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------------------


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
    """
    stages = list(cfg["stages"])
    out = {}
    if stages == ["eval"] and not cfg.get("init_from") and cfg.get("eval_answer", "dc") == "dc":
        out["zero_shot"] = "eval"
    if "sft" in stages:
        out[f"sft_{cfg['sft_answer']}"] = "sft"
    if "grpo" in stages:
        hint, hard = bool(cfg["hint"]), bool(cfg["hard"])
        if hard:
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
           "sft_answer": _select(raw, "sft.answer", "dc"), "eval_answer": _select(raw, "eval.answer", "dc"),
           "hint": _select(raw, "hint", True), "hard": _select(raw, "hard", True), "seed": _select(raw, "seed", 0),
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


# ----------------------------------------------------------------------------------------------
# Cells
# ----------------------------------------------------------------------------------------------


def metric_value(m: dict, family: str, column: str, where: str) -> float:
    """One paper column's value from a metrics dict (None, MMSA's undefined, becomes NaN)."""
    for key in METRIC_KEYS[family][column]:
        if key in m:
            v = m[key]
            return math.nan if v is None else float(v)
    raise ReportError(f"{where}: no {column} in metrics.json (looked for {', '.join(METRIC_KEYS[family][column])}; "
                      f"has {', '.join(sorted(m))})")


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float | None  # None with one seed
    n: int

    def text(self, column: str) -> str:
        return _fmt(self.mean, column) + ("" if self.std is None else f" ± {_fmt(self.std, column)}")


def _fmt(x: float, column: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{100 * x:.1f}" if column in PERCENT else f"{x:.3f}"


def aggregate(values: Sequence[float]) -> Cell:
    """Mean and sample std (ddof 1) over seeds; NaN in, NaN out.

    >>> aggregate([0.5, 0.7]).text("Acc2"), aggregate([0.331]).text("MAE")
    ('60.0 ± 14.1', '0.331')
    """
    if len(values) == 1:
        return Cell(values[0], None, 1)
    if any(math.isnan(v) for v in values):
        return Cell(math.nan, math.nan, len(values))
    return Cell(statistics.fmean(values), statistics.stdev(values), len(values))


@dataclass
class Rendered:
    spec: TableSpec
    title: str
    datasets: list[str]
    rows: list[tuple[str, dict[tuple[str, str], Cell], list[Path]]]  # label, (dataset, column) -> cell, runs
    paper_rows: list[tuple[str, dict[tuple[str, str], float]]] = field(default_factory=list)
    paper_datasets: list[str] = field(default_factory=list)  # == datasets when the paper rows share columns

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(METRIC_KEYS[self.spec.family])


def _ordered(datasets: Iterable[str]) -> list[str]:
    return sorted(set(datasets), key=lambda d: (DATASET_ORDER.index(d) if d in DATASET_ORDER else 99, d))


def table_datasets(spec: TableSpec, groups: dict[str, list[Run]]) -> list[str]:
    runs = [r for s, _ in spec.rows for r in groups[s]]
    trained = sorted({r.dataset for r in runs})
    if len(trained) > 1:
        names = "; ".join(f"{r.path}: data={r.dataset}" for r in runs)
        raise ReportError(f"Table {spec.key}: its runs were trained/prompted on different datasets ({names})")
    if spec.in_domain:
        if get_spec(trained[0]).family != spec.family:
            raise ReportError(f"Table {spec.key} reads the in-domain {spec.family.upper()}-family set, but the runs "
                              f"were trained on {trained[0]!r}")
        return trained
    tested = [d for s, _ in spec.rows for r in groups[s] for d in r.tested_on(s)]
    return _ordered(d for d in tested if get_spec(d).family == spec.family)


def render_table(spec: TableSpec, groups: dict[str, list[Run]], paper: bool = False) -> Rendered:
    missing = [s for s, _ in spec.rows if s not in groups]
    if missing:
        raise ReportError(f"Table {spec.key} needs runs of {', '.join(missing)} ("
                          + "; ".join(f"{s}: {SETTINGS[s]}" for s in missing) + ")")
    datasets = table_datasets(spec, groups)
    train = groups[spec.rows[0][0]][0].dataset
    if not datasets:
        raise ReportError(f"Table {spec.key}: no run was tested on a {spec.family.upper()}-family dataset")
    out = Rendered(spec, spec.title.format(train=DATASET_TITLES.get(train, train)), datasets, [])
    for setting, label in spec.rows:
        runs = groups[setting]
        cells = {}
        for ds in datasets:
            for col in METRIC_KEYS[spec.family]:
                values = [metric_value(r.test_metrics(setting, ds), spec.family, col,
                                       f"{r.path} ({r.settings[setting]} on {ds})") for r in runs]
                cells[(ds, col)] = aggregate(values)
        label = label if len(runs) == 1 else f"{label} (n={len(runs)})"
        out.rows.append((label, cells, [r.path for r in runs]))
    if paper:
        keys = [(row, ds) for (t, row, ds) in PAPER if t == spec.key]
        out.paper_datasets = _ordered(ds for _, ds in keys)
        for row in dict.fromkeys(r for r, _ in keys):
            out.paper_rows.append((f"paper: {row}", {(ds, c): v for ds in out.paper_datasets
                                                     for c, v in PAPER[(spec.key, row, ds)].items()}))
    return out


def _paper_text(v: float, column: str) -> str:
    return f"{v:.1f}" if column in PERCENT else f"{v:.3f}"


# ----------------------------------------------------------------------------------------------
# Markdown, LaTeX, CSV
# ----------------------------------------------------------------------------------------------


def _header(datasets, columns):
    arrows = {c: ("↓" if c in LOWER_IS_BETTER else "↑") for c in columns}
    return [f"{DATASET_TITLES.get(d, d)} {c}{arrows[c]}" for d in datasets for c in columns]


def to_markdown(t: Rendered) -> str:
    def block(datasets, rows):
        lines = ["| Setting | " + " | ".join(_header(datasets, t.columns)) + " |",
                 "|---|" + "---:|" * (len(datasets) * len(t.columns))]
        lines += ["| " + label + " | " + " | ".join(cell(c, d, k) for d in datasets for k in t.columns) + " |"
                  for label, c in rows]
        return "\n".join(lines)

    def cell(cells, d, k):
        v = cells[(d, k)]
        return v.text(k) if isinstance(v, Cell) else _paper_text(v, k)

    rows = [(label, cells) for label, cells, _ in t.rows]
    parts = [f"### {t.title}", ""]
    if t.paper_rows and t.paper_datasets == t.datasets:
        parts.append(block(t.datasets, rows + t.paper_rows))
    else:
        parts.append(block(t.datasets, rows))
        if t.paper_rows:
            parts += ["", f"As published (Table {t.spec.key}; the runs above were tested on other datasets):", "",
                      block(t.paper_datasets, t.paper_rows)]
    return "\n".join(parts)


def _tex_escape(s: str) -> str:
    return (s.replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%").replace("_", r"\_")
            .replace("#", r"\#").replace("±", r"$\pm$").replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$"))


def to_latex(t: Rendered) -> str:
    """A booktabs table: a dataset header spanning its metric columns, then one row per setting."""
    def tabular(datasets, rows):
        n = len(t.columns)
        lines = [r"\begin{tabular}{l" + ("r" * n) * len(datasets) + "}", r"\toprule"]
        lines.append(" & " + " & ".join(rf"\multicolumn{{{n}}}{{c}}{{{_tex_escape(DATASET_TITLES.get(d, d))}}}"
                                       for d in datasets) + r" \\")
        lines.append(" ".join(rf"\cmidrule(lr){{{2 + i * n}-{1 + (i + 1) * n}}}" for i in range(len(datasets))))
        arrows = [c + ("↓" if c in LOWER_IS_BETTER else "↑") for c in t.columns]
        lines.append("Setting & " + " & ".join(_tex_escape(a) for _ in datasets for a in arrows) + r" \\")
        lines.append(r"\midrule")
        for i, (label, cells) in enumerate(rows):
            if i and label.startswith("paper:") and not rows[i - 1][0].startswith("paper:"):
                lines.append(r"\midrule")
            vals = [(cells[(d, k)].text(k) if isinstance(cells[(d, k)], Cell) else _paper_text(cells[(d, k)], k))
                    for d in datasets for k in t.columns]
            lines.append(_tex_escape(label) + " & " + " & ".join(_tex_escape(v) for v in vals) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        return lines

    rows = [(label, cells) for label, cells, _ in t.rows]
    lines = [r"\begin{table*}[t]", r"\centering", rf"\caption{{{_tex_escape(t.title)}}}",
             rf"\label{{tab:{t.spec.key.lower()}}}", r"\resizebox{\textwidth}{!}{%"]
    if t.paper_rows and t.paper_datasets == t.datasets:
        lines += tabular(t.datasets, rows + t.paper_rows) + ["}"]
    else:
        lines += tabular(t.datasets, rows) + ["}"]
        if t.paper_rows:
            lines += [r"\par\medskip", r"\resizebox{\textwidth}{!}{%"] + tabular(t.paper_datasets, t.paper_rows) + ["}"]
    lines.append(r"\end{table*}")
    return "\n".join(lines)


def to_records(t: Rendered) -> list[dict]:
    """Long format: one record per cell (runs, then the paper's rows with source=paper)."""
    recs = []
    for label, cells, paths in t.rows:
        for (ds, col), c in cells.items():
            recs.append({"table": t.spec.key, "row": label, "source": "runs", "dataset": ds, "metric": col,
                         "mean": c.mean, "std": c.std, "n": c.n, "text": c.text(col),
                         "runs": ";".join(map(str, paths))})
    for label, cells in t.paper_rows:
        for (ds, col), v in cells.items():
            recs.append({"table": t.spec.key, "row": label, "source": "paper", "dataset": ds, "metric": col,
                         "mean": v / 100 if col in PERCENT else v, "std": None, "n": None,
                         "text": _paper_text(v, col), "runs": ""})
    return recs


LATEX_PREAMBLE = "\n".join([r"\documentclass{article}", r"\usepackage[margin=1cm,landscape]{geometry}",
                            r"\usepackage{booktabs}", r"\usepackage{graphicx}", r"\begin{document}"])


def plot_figure(groups: dict[str, list[Run]], out_dir: Path, window: int = 5) -> list[Path]:
    """Fig. 3: the GRPO reward per step of w/ Hint, w/o Hint and w/o Hard (mean over seeds, +-std band);
    a second PNG with the reward of the policy's own samples, before hinted groups replace hard ones."""
    from msa.analysis import plot_reward_curves

    curves = {label: [r.path for r in groups[s]] for s, label in FIGURE_RUNS if s in groups}
    for label, paths in curves.items():
        for p in paths:
            if not (p / "grpo" / "train_history.csv").exists():
                raise ReportError(f"{p}: no grpo/train_history.csv for the {label} reward curve")
    missing = [s for s, _ in FIGURE_RUNS if s not in groups]
    if missing:
        raise ReportError(f"Fig. 3 needs runs of {', '.join(missing)}")
    return [plot_reward_curves(curves, out_dir / "fig3_reward.png", window=window, column="reward",
                               title="Fig. 3: GRPO reward"),
            plot_reward_curves(curves, out_dir / "fig3_own_reward.png", window=window, column="own_reward",
                               title="GRPO reward of the policy's own samples (before hints)")]


def build(paths: Sequence[str | Path], tables: Sequence[str] | None = None, paper: bool = False
          ) -> tuple[list[Rendered], list[str], dict[str, list[Run]]]:
    """The tables asked for (all that the runs allow when ``tables`` is None) and notes on those skipped."""
    groups = by_setting(find_runs(paths))
    rendered, notes = [], []
    for key in tables or TABLES:
        if key not in TABLES:
            raise ReportError(f"unknown table {key!r}; known: {', '.join(TABLES)}")
        spec = TABLES[key]
        missing = [s for s, _ in spec.rows if s not in groups]
        if missing and tables is None:
            notes.append(f"Table {key} skipped: no runs of {', '.join(missing)}")
            continue
        rendered.append(render_table(spec, groups, paper=paper))
    return rendered, notes, groups


def write(rendered: Sequence[Rendered], groups: dict[str, list[Run]], out_dir: Path, figure: bool = True) -> list[Path]:
    import csv

    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / "tables.md", out_dir / "tables.tex", out_dir / "tables.csv"]
    files[0].write_text("\n\n".join(to_markdown(t) for t in rendered) + "\n", encoding="utf-8")
    files[1].write_text("\n\n".join(to_latex(t) for t in rendered) + "\n", encoding="utf-8")
    recs = [r for t in rendered for r in to_records(t)]
    with files[2].open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(recs[0]) if recs else ["table"])
        w.writeheader()
        w.writerows(recs)
    if figure:
        files += plot_figure(groups, out_dir)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m msa.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", help="run directories, or folders (sweeps, studies) holding them")
    ap.add_argument("--paper", action="store_true", help="add the paper's own numbers as reference rows")
    ap.add_argument("--out", type=Path, help="write tables.md, tables.tex, tables.csv and the Fig. 3 PNGs here")
    ap.add_argument("--tables", help="comma-separated (I,II,III,IV,V); a table whose runs are missing is then an "
                                     "error instead of a skip")
    args = ap.parse_args(argv)
    tables = [t.strip() for t in args.tables.split(",")] if args.tables else None
    try:
        rendered, notes, groups = build(args.dirs, tables, paper=args.paper)
        if not rendered:
            raise ReportError("no table can be built from these runs: " + "; ".join(notes))
        print("\n\n".join(to_markdown(t) for t in rendered))
        for n in notes:
            print(f"\n{n}", file=sys.stderr)
        if args.out:
            want_figure = all(s in groups for s, _ in FIGURE_RUNS)
            files = write(rendered, groups, args.out, figure=want_figure)
            if not want_figure:
                print("Fig. 3 skipped: needs runs of " + ", ".join(s for s, _ in FIGURE_RUNS if s not in groups),
                      file=sys.stderr)
            print("\nwrote " + ", ".join(str(f) for f in files))
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
