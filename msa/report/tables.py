"""What each table shows (its rows, columns and datasets), the paper's own numbers, and the cells:
one metric of one setting on one dataset, mean +- std over seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from msa.data.specs import get_spec
from msa.report.runs import SETTINGS, ReportError, Run

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


MISSING = "—"  # a cell no run fills; why is in the notes under its table


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float | None  # None with one seed
    n: int
    missing: str | None = None  # why no value (no run of the row, a run not tested there, an empty subset)
    subset_n: tuple[int, ...] = ()  # with a subset: its size in each run

    def text(self, column: str) -> str:
        if self.missing is not None:
            return MISSING
        return _fmt(self.mean, column) + ("" if self.std is None else f" ± {_fmt(self.std, column)}")


def missing_cell(why: str) -> Cell:
    return Cell(math.nan, None, 0, missing=why)


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
    notes: list[str] = field(default_factory=list)  # what is missing and why, listed once under the table
    subset: str | None = None  # the metrics are of this subset of each test split (msa.evaluation.SUBSETS)
    row_stages: list[str] = field(default_factory=list)  # per row: the metrics.json stage its cells read ("" if none)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(METRIC_KEYS[self.spec.family])


def _ordered(datasets: Iterable[str]) -> list[str]:
    return sorted(set(datasets), key=lambda d: (DATASET_ORDER.index(d) if d in DATASET_ORDER else 99, d))


def table_datasets(spec: TableSpec, groups: dict[str, list[Run]]) -> list[str]:
    """The datasets (column groups) of a table, from the runs of the rows it has."""
    runs = [r for s, _ in spec.rows if s in groups for r in groups[s]]
    trained = sorted({r.dataset for r in runs})
    if len(trained) > 1:
        names = "; ".join(f"{r.path}: data={r.dataset}" for r in runs)
        raise ReportError(f"Table {spec.key}: its runs were trained/prompted on different datasets ({names})")
    if spec.in_domain:
        if get_spec(trained[0]).family != spec.family:
            raise ReportError(f"Table {spec.key} reads the in-domain {spec.family.upper()}-family set, but the runs "
                              f"were trained on {trained[0]!r}")
        return trained
    tested = [d for s, _ in spec.rows if s in groups for r in groups[s] for d in r.tested_on(s)]
    return _ordered(d for d in tested if get_spec(d).family == spec.family)


def render_table(spec: TableSpec, groups: dict[str, list[Run]], paper: bool = False, strict: bool = True,
                 subset: str | None = None) -> Rendered:
    """The table from the runs of its rows. ``strict``: a missing row, or a run without the stage or dataset
    a cell needs, is an error naming it; else such cells are shown missing and the notes say why (a table
    without any row of its own is still an error). ``subset``: every cell reads that subset of the test
    split (``metrics["subsets"][subset]``); a run without it, or with it empty, leaves the cell missing,
    never filled from the whole split."""
    missing = [s for s, _ in spec.rows if s not in groups]
    if missing and (strict or len(missing) == len(spec.rows)):
        raise ReportError(f"Table {spec.key} needs runs of {', '.join(missing)} ("
                          + "; ".join(f"{s}: {SETTINGS[s]}" for s in missing) + ")")
    datasets = table_datasets(spec, groups)
    train = next(groups[s][0].dataset for s, _ in spec.rows if s in groups)
    if not datasets:
        raise ReportError(f"Table {spec.key}: no run was tested on a {spec.family.upper()}-family dataset")
    title = spec.title.format(train=DATASET_TITLES.get(train, train))
    if subset:
        title += f" [subset: {subset}]"
    out = Rendered(spec, title, datasets, [], subset=subset)
    notes: dict[str, None] = {}
    for setting, label in spec.rows:
        if setting not in groups:
            out.rows.append((label, {(ds, col): missing_cell(f"no run of {setting}") for ds in datasets
                                     for col in METRIC_KEYS[spec.family]}, []))
            notes[f"{label}: missing, no run of {setting} ({SETTINGS[setting]})"] = None
            out.row_stages.append("")
            continue
        runs = groups[setting]
        label = label if len(runs) == 1 else f"{label} (n={len(runs)})"
        cells = {}
        for ds in datasets:
            per_run, why = [], None
            for r in runs:
                try:
                    m = r.test_metrics(setting, ds)
                except ReportError as e:
                    if strict:
                        raise
                    why = str(e)
                    break
                if subset:
                    sub = (m.get("subsets") or {}).get(subset)
                    if sub is None or not sub.get("n"):
                        why = (f"{r.path}: no {subset} subset on {ds} (its labels lack the column, or the run "
                               f"predates subset metrics)" if sub is None else f"{r.path}: the {subset} subset "
                               f"of {ds} is empty (n=0)")
                        break
                    m = sub
                per_run.append(m)
            if why is not None:
                notes[f"{label} on {DATASET_TITLES.get(ds, ds)}: missing, {why}"] = None
            for col in METRIC_KEYS[spec.family]:
                if why is not None:
                    cells[(ds, col)] = missing_cell(why)
                    continue
                where = [f"{r.path} ({r.settings[setting]} on {ds}{f', {subset}' if subset else ''})" for r in runs]
                try:
                    values = [metric_value(m, spec.family, col, w) for m, w in zip(per_run, where)]
                except ReportError as e:
                    if strict:
                        raise
                    notes[f"{label} on {DATASET_TITLES.get(ds, ds)} {col}: missing, {e}"] = None
                    cells[(ds, col)] = missing_cell(str(e))
                    continue
                cell = aggregate(values)
                if subset:
                    cell = Cell(cell.mean, cell.std, cell.n, subset_n=tuple(int(m["n"]) for m in per_run))
                cells[(ds, col)] = cell
        out.rows.append((label, cells, [r.path for r in runs]))
        out.row_stages.append(runs[0].settings[setting])
    out.notes = list(notes)
    if paper and subset:
        out.notes.append("The paper's rows are of whole test splits; not shown beside a subset.")
    elif paper:
        keys = [(row, ds) for (t, row, ds) in PAPER if t == spec.key]
        out.paper_datasets = _ordered(ds for _, ds in keys)
        for row in dict.fromkeys(r for r, _ in keys):
            out.paper_rows.append((f"paper: {row}", {(ds, c): v for ds in out.paper_datasets
                                                     for c, v in PAPER[(spec.key, row, ds)].items()}))
    return out


def paper_text(v: float, column: str) -> str:
    return f"{v:.1f}" if column in PERCENT else f"{v:.3f}"
