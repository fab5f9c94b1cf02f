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
* a label or unimodal label outside the dataset's range (or not finite) is an error naming the clips
  and their lines: a SIMS file on MOSI's +-3 scale would otherwise train and score on the wrong scale;
* header names are matched case-insensitively; a repeated column, a short row or an unknown mode is
  an error naming the column or the line;
* an optional ``conflict`` column (0/1: the words contradict voice and face, as in the synthetic
  ``hard`` sets) is kept as float64 1.0/0.0, NaN where a file has none, so any analysis can split by it.

Classes are never read from ``annotation``: the metrics derive them from ``label``.
"""

from __future__ import annotations

import csv
import logging
import math
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
# Every column name any release uses, by its lower-case form: a header in another case reads the same.
KNOWN_COLUMNS = {c.lower(): c for c in (*CANONICAL_COLUMNS, "conflict", "label_by", "emotion")}
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


def opposing(label: float, cue: float) -> bool:
    """Whether a unimodal label (``label_T/A/V``) and the clip's label are both nonzero and of opposite
    sign: that cue alone points the wrong way. False where the cue is missing (NaN: MOSI, MOSEI)."""
    return float(label) * float(cue) < 0  # NaN compares False


def is_text_conflict(label: float, label_T: float) -> bool:
    """A text-conflict clip (:func:`opposing` for the transcript's label), so a reader that follows the
    words gets the polarity wrong.

    >>> is_text_conflict(0.4, -0.2), is_text_conflict(0.4, 0.2), is_text_conflict(0.0, -0.6), is_text_conflict(-0.2, 0.0)
    (True, False, False, False)
    >>> is_text_conflict(0.4, float("nan"))
    False
    """
    return opposing(label, label_T)


def text_conflict_ids(frame: pd.DataFrame) -> set[str]:
    """The ids of the text-conflict clips (:func:`is_text_conflict`) of a :func:`read_labels` table."""
    mask = frame["label"].to_numpy(float) * frame["label_T"].to_numpy(float) < 0
    return set(frame["id"][mask].astype(str))


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


def normalise_mode(value: str, *, dataset: str, file: Path, line: int | None = None) -> str:
    """``train``/``valid``/``test`` from any alias; anything else is an error naming it, the file and line.

    >>> normalise_mode(" Validation", dataset="simsv2", file=Path("meta.csv"))
    'valid'
    """
    key = str(value).strip().lower()
    if key not in MODE_ALIASES:
        where = f"{file}" + (f", line {line}" if line is not None else "")
        raise LabelFileError(f"{dataset}: unknown mode {value!r} in {where}; expected one of "
                             f"{', '.join(SPLITS)} (or the aliases val, dev, validation)")
    return MODE_ALIASES[key]


def _record_lines(file: Path, dataset: str) -> list[tuple[int, int]]:
    """(line number, field count) of each non-blank record, as pandas reads them (a quoted field may span
    lines; the number is the record's last line). pandas pads a short row with empty cells, which would
    read as an unlabelled clip or an empty mode, so the counts are taken here."""
    try:
        with open(file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            return [(reader.line_num, len(row)) for row in reader if row]
    except (csv.Error, UnicodeDecodeError) as exc:
        raise LabelFileError(f"{dataset}: cannot parse {file}: {exc}") from exc


def _header_names(cells: list[str]) -> list[str]:
    """Header cells as the names the reader uses: case-insensitive for the known ones, aliases applied."""
    names = [KNOWN_COLUMNS.get(c.lower(), c) for c in cells]
    return [COLUMN_ALIASES.get(c, c) for c in names]


def _read_raw(file: Path, dataset: str) -> pd.DataFrame:
    """All cells as strings, plus ``_line`` (each row's line in the file); the header row is detected, a
    header-less file gets the canonical names."""
    try:
        raw = pd.read_csv(file, dtype=str, keep_default_na=False, header=None, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"{dataset}: cannot parse {file}: {exc}") from exc
    records = _record_lines(file, dataset)
    first = [str(c).strip() for c in raw.iloc[0].tolist()] if len(raw) else []
    names = _header_names(first)
    has_header = "video_id" in names and "clip_id" in names
    width = len(first) if has_header else raw.shape[1]
    short = [(line, n) for line, n in records[1 if has_header else 0:] if n < width]
    if short:
        lines = "; ".join(f"line {line} has {n} fields" for line, n in short[:3])
        raise LabelFileError(f"{dataset}: short rows in {file}: {lines}, the header {width}"
                             + (f" ({len(short)} rows in all)" if len(short) > 3 else ""))
    if has_header:
        repeated = sorted({c for c in names if names.count(c) > 1})
        if repeated:
            raise LabelFileError(f"{dataset}: {file} repeats the column {repeated[0]!r} in its header "
                                 f"({first}); each column must appear once")
        frame = raw.iloc[1:].reset_index(drop=True)
        frame.columns = names
        frame["_line"] = [line for line, _ in records[1:]]
        return frame
    # No header: only the SIMS family ships a 9-column file whose order we can trust.
    if get_spec(dataset).family == "sims" and raw.shape[1] == len(CANONICAL_COLUMNS):
        raw.columns = list(CANONICAL_COLUMNS)
        raw["_line"] = [line for line, _ in records]
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


def _check_range(out: pd.DataFrame, lines: pd.Series, *, dataset: str, file: Path) -> None:
    """Every label and unimodal label finite and inside the dataset's score range, else an error naming
    the clips (a few), their lines, and the range the values look like they come from."""
    spec = get_spec(dataset)
    lo, hi = spec.score_min, spec.score_max
    for col in ("label", *UNIMODAL):
        values = out[col]
        bad = values.notna() & ~values.between(lo, hi)  # inf and -inf fall outside too
        if not bad.any():
            continue
        shown = ", ".join(f"{i} ({v:g}, line {n})" for i, v, n in
                          zip(out["id"][bad].head(3), values[bad].head(3), lines[bad].head(3)))
        finite = values[bad][values[bad].map(math.isfinite)]
        hint = ""
        if spec.family == "sims" and len(finite) and finite.abs().max() <= 3:
            hint = " (on a [-3, 3] scale, as MOSI and MOSEI label: is this data=mosi or data=mosei?)"
        raise LabelFileError(f"{dataset}: {col} outside [{lo:g}, {hi:g}] for {int(bad.sum())} clips in "
                             f"{file}{hint}: {shown}")


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
    out.insert(0, "id", [sample_id(v, c) for v, c in zip(out["video_id"], out["clip_id"])])
    _check_range(out, frame["_line"], dataset=dataset, file=file)
    labelled = out["label"].notna()
    n_unlabelled = int((~labelled).sum())
    if n_unlabelled:
        log.info("%s: %d unlabelled rows in %s are left out", dataset, n_unlabelled, file)
    out = out[labelled].copy()
    out["mode"] = [normalise_mode(m, dataset=dataset, file=file, line=n)
                   for m, n in zip(frame.loc[labelled, "mode"], frame.loc[labelled, "_line"])]
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
