"""Build a report (every table the runs allow, or those asked for), write its files, and the command line:

    python -m msa.report outputs/paper --paper --out outputs/paper/report
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from msa.report.figure import FIGURE_RUNS, plot_figure
from msa.report.formats import to_latex, to_markdown, to_records
from msa.report.runs import ReportError, Run, by_setting, find_runs
from msa.report.tables import TABLES, Rendered, render_table


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
    ap = argparse.ArgumentParser(prog="python -m msa.report", description="The paper's tables and Fig. 3 from run directories.")
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
