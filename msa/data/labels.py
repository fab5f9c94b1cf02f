"""Read an MMSA-layout label file (CH-SIMS, CH-SIMS v2, CMU-MOSI, CMU-MOSEI, our demo sets).

The layout is ``<root>/label.csv`` (``meta.csv`` or ``meta(s).csv`` for CH-SIMS v2) next to
``<root>/Raw/<video_id>/<clip_id>.mp4``. The releases differ in ways that break naive readers, so:

* ids and text are read as strings: SIMS clip ids are ``0001``, SIMS v2 ids ``00000``;
* columns are found by name, never by position (MOSEI orders them differently, old releases add
  ``label_by``, some copies say ``emotion`` for ``annotation``); a header-less SIMS-family file is
  read in the canonical 9-column order;
* MOSI/MOSEI leave ``label_T/A/V`` empty: they become NaN;
* the split aliases ``valid/val/dev/validation`` (any case) become ``valid``;
* rows with an empty ``label`` (CH-SIMS v2(u)) are unlabelled: dropped and counted in
  ``frame.attrs["n_unlabelled"]``;
* an optional ``conflict`` column (0/1: the words contradict voice and face, as in the synthetic
  ``hard`` sets) is kept as float64 1.0/0.0, NaN where a file has none, so any analysis can split by it.

Classes are never read from ``annotation``: the metrics derive them from ``label``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from msa.data.specs import get_spec

log = logging.getLogger(__name__)

LABEL_FILES = ("label.csv", "meta.csv", "meta(s).csv")
# The order of the columns as CH-SIMS distributes them: the reading of a header-less file.
CANONICAL_COLUMNS = ("video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode")
REQUIRED = ("video_id", "clip_id", "text", "label", "mode")
UNIMODAL = ("label_T", "label_A", "label_V")
COLUMN_ALIASES = {"emotion": "annotation"}
MODE_ALIASES = {"train": "train", "test": "test", "valid": "valid", "val": "valid", "dev": "valid",
                "validation": "valid"}
SPLITS = ("train", "valid", "test")
OUTPUT_COLUMNS = ("id", "video_id", "clip_id", "text", "label", *UNIMODAL, "conflict", "mode", "path")


class LabelFileError(ValueError):
    """A label file that cannot be read as an MMSA label file; names the dataset and the file."""


def sample_id(video_id: str, clip_id: str) -> str:
    """MMSA's sample id (feature pickles, MMLA file names).

    >>> sample_id("video_0001", "0001")
    'video_0001$_$0001'
    """
    return f"{video_id}$_${clip_id}"


def clip_path(root: str | Path, video_id: str, clip_id: str) -> Path:
    """``root/Raw/<video_id>/<clip_id>.mp4``, the path MMSA-FET builds."""
    return Path(root) / "Raw" / video_id / f"{clip_id}.mp4"


def find_label_file(root: str | Path, dataset: str) -> Path:
    """The dataset's label file in ``root``: ``meta.csv`` (then ``meta(s).csv``) for CH-SIMS v2, as its
    release names it, ``label.csv`` for the others; another of :data:`LABEL_FILES` beside it is not read,
    with a warning naming both (a converted copy or a stray file must not be read silently)."""
    root = Path(root)
    order = (*LABEL_FILES[1:], LABEL_FILES[0]) if dataset == "simsv2" else LABEL_FILES
    found = [root / name for name in order if (root / name).is_file()]
    if found:
        if len(found) > 1:
            log.warning("%s: reading %s; %s beside it is not read", dataset, found[0],
                        ", ".join(str(f) for f in found[1:]))
        return found[0]
    raise LabelFileError(f"{dataset}: no label file in {root} (looked for {', '.join(LABEL_FILES)})")


def normalise_mode(value: str, *, dataset: str, file: Path) -> str:
    """``train``/``valid``/``test`` from any alias; anything else is an error naming it and the file.

    >>> normalise_mode(" Validation", dataset="simsv2", file=Path("meta.csv"))
    'valid'
    """
    key = str(value).strip().lower()
    if key not in MODE_ALIASES:
        raise LabelFileError(f"{dataset}: unknown mode {value!r} in {file}; expected one of "
                             f"{', '.join(SPLITS)} (or the aliases val, dev, validation)")
    return MODE_ALIASES[key]


def _read_raw(file: Path, dataset: str) -> pd.DataFrame:
    """All cells as strings; the header row is detected, a header-less file gets the canonical names."""
    try:
        raw = pd.read_csv(file, dtype=str, keep_default_na=False, header=None, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"{dataset}: cannot parse {file}: {exc}") from exc
    first = [str(c).strip() for c in raw.iloc[0].tolist()] if len(raw) else []
    if "video_id" in first and "clip_id" in first:
        names = [COLUMN_ALIASES.get(c, c) for c in first]
        frame = raw.iloc[1:].reset_index(drop=True)
        frame.columns = names
        return frame
    # No header: only the SIMS family ships a 9-column file whose order we can trust.
    if get_spec(dataset).family == "sims" and raw.shape[1] == len(CANONICAL_COLUMNS):
        raw.columns = list(CANONICAL_COLUMNS)
        return raw
    raise LabelFileError(f"{dataset}: {file} has no header row with video_id and clip_id "
                         f"(first row: {first[:9]}), and is not a 9-column SIMS file")


def _to_float(column: pd.Series, *, name: str, dataset: str, file: Path) -> pd.Series:
    stripped = column.str.strip()
    values = pd.to_numeric(stripped.where(stripped != "", None), errors="coerce").astype(np.float64)
    bad = values.isna() & (stripped != "")
    if bad.any():
        rows = ", ".join(repr(v) for v in stripped[bad].head(3))
        raise LabelFileError(f"{dataset}: non-numeric {name} values in {file}: {rows}")
    return values


def _conflict(frame: pd.DataFrame, *, dataset: str, file: Path) -> pd.Series:
    if "conflict" not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=np.float64)
    values = _to_float(frame["conflict"], name="conflict", dataset=dataset, file=file)
    bad = values.notna() & ~values.isin([0.0, 1.0])
    if bad.any():
        raise LabelFileError(f"{dataset}: conflict must be 0 or 1 in {file}, got "
                             f"{', '.join(repr(v) for v in frame['conflict'][bad].head(3))}")
    return values


def read_labels(root: str | Path, dataset: str) -> pd.DataFrame:
    """The label table of the dataset at ``root``, one row per labelled clip.

    Columns: ``id, video_id, clip_id, text, label, label_T, label_A, label_V, conflict, mode, path``;
    labels are float64 (NaN when a release has no unimodal labels), ``conflict`` is 1.0/0.0 (NaN
    without the column or with an empty cell), ``path`` is a string. The number of dropped
    unlabelled rows is in ``.attrs["n_unlabelled"]``, the file read in ``.attrs["label_file"]``.
    """
    root = Path(root)
    file = find_label_file(root, dataset)
    frame = _read_raw(file, dataset)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise LabelFileError(f"{dataset}: {file} lacks the required columns {missing} "
                             f"(has {list(frame.columns)})")
    for col in ("video_id", "clip_id"):
        frame[col] = frame[col].str.strip()
    out = pd.DataFrame({"video_id": frame["video_id"], "clip_id": frame["clip_id"], "text": frame["text"]})
    out["label"] = _to_float(frame["label"], name="label", dataset=dataset, file=file)
    for col in UNIMODAL:
        if col in frame.columns:
            out[col] = _to_float(frame[col], name=col, dataset=dataset, file=file)
        else:
            out[col] = np.nan
    out["conflict"] = _conflict(frame, dataset=dataset, file=file)
    labelled = out["label"].notna()
    n_unlabelled = int((~labelled).sum())
    if n_unlabelled:
        log.info("%s: %d unlabelled rows in %s are left out", dataset, n_unlabelled, file)
    out = out[labelled].copy()
    out["mode"] = [normalise_mode(m, dataset=dataset, file=file) for m in frame.loc[labelled, "mode"]]
    out.insert(0, "id", [sample_id(v, c) for v, c in zip(out["video_id"], out["clip_id"])])
    dup = out["id"][out["id"].duplicated()]
    if len(dup):
        raise LabelFileError(f"{dataset}: duplicate clips in {file}: {', '.join(dup.head(3))}")
    out["path"] = [str(clip_path(root, v, c)) for v, c in zip(out["video_id"], out["clip_id"])]
    out = out.loc[:, list(OUTPUT_COLUMNS)].reset_index(drop=True)
    out.attrs.update(n_unlabelled=n_unlabelled, label_file=str(file), dataset=dataset)
    return out


def split(frame: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The rows of one split (``train``, ``valid``/``val``/..., ``test``), with the table's attrs."""
    key = MODE_ALIASES.get(mode.strip().lower())
    if key is None:
        raise ValueError(f"unknown split {mode!r}; expected one of {', '.join(SPLITS)}")
    part = frame[frame["mode"] == key].reset_index(drop=True)
    part.attrs.update(frame.attrs)
    return part


__all__ = ["LabelFileError", "clip_path", "find_label_file", "read_labels", "sample_id", "split"]
