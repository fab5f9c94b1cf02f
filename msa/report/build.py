"""Build a report (every table the runs have a row for, or those asked for), write its files, and the
command line:

    python -m msa.report outputs/paper --paper --out outputs/paper/report
    python -m msa.report outputs/pipeline/<time>                    # one demo run: the cells it fills
    python -m msa.report outputs/paper --subset text_conflict       # the metrics on a subset of each split
    python -m msa.report outputs/paper --tables I,III               # strict: every row and cell, or an error

Without ``--tables`` every table with at least one row of its own is rendered, in the paper's layout; a
row no run gives, or a cell its runs cannot fill, is shown missing (``—``) and listed once under the table
with why. ``--tables`` is the strict mode: the tables asked for, each complete, else an error naming
the missing row or run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from msa.evaluation import SUBSETS
from msa.report.figure import FIGURE_RUNS, plot_figure
from msa.report.formats import to_latex, to_markdown, to_records
from msa.report.runs import ReportError, Run, by_setting, find_runs
from msa.report.tables import TABLES, Rendered, render_table


def build(paths: Sequence[str | Path], tables: Sequence[str] | None = None, paper: bool = False,
          subset: str | None = None) -> tuple[list[Rendered], list[str], dict[str, list[Run]]]:
    """The tables asked for (strict), or every table the runs have a row for (missing cells shown as such),
    and notes on the tables skipped."""
    if subset is not None and subset not in SUBSETS:
        raise ReportError(f"unknown subset {subset!r}; known: {', '.join(SUBSETS)}")
    groups = by_setting(find_runs(paths))
    strict = tables is not None
    rendered, notes = [], []
    for key in tables or TABLES:
        if key not in TABLES:
            raise ReportError(f"unknown table {key!r}; known: {', '.join(TABLES)}")
        spec = TABLES[key]
        if not strict and not any(s in groups for s, _ in spec.rows):
            notes.append(f"Table {key} skipped: no runs of {', '.join(s for s, _ in spec.rows)}")
            continue
        try:
            rendered.append(render_table(spec, groups, paper=paper, strict=strict, subset=subset))
        except ReportError as e:
            if strict:
                raise
            notes.append(f"Table {key} skipped: " + str(e).removeprefix(f"Table {key}: "))
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
    ap = argparse.ArgumentParser(prog="python -m msa.report", description="The paper's tables and Fig. 3 from run directories.")
    ap.add_argument("dirs", nargs="+", help="run directories, or folders (sweeps, studies) holding them")
    ap.add_argument("--paper", action="store_true", help="add the paper's own numbers as reference rows")
    ap.add_argument("--out", type=Path, help="write tables.md, tables.tex, tables.csv and the Fig. 3 PNGs here")
    ap.add_argument("--tables", help="comma-separated (I,II,III,IV,V): strict, each table complete or an error "
                                     "naming the missing row or run (default: every table with a row, gaps shown)")
    ap.add_argument("--subset", choices=list(SUBSETS), help="the metric columns on this subset of each test split "
                                                             "(metrics.json's subsets); missing where a run lacks it")
    args = ap.parse_args(argv)
    tables = [t.strip() for t in args.tables.split(",")] if args.tables else None
    try:
        rendered, notes, groups = build(args.dirs, tables, paper=args.paper, subset=args.subset)
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
