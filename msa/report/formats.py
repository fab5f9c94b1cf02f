"""A rendered table as Markdown, LaTeX (booktabs) and long-format CSV records. Under each table: the runs
that fill each row's cells, a subset's size per cell (``--subset``), and once each, what is missing and why;
the CSV names the runs of every cell (column ``runs``)."""

from __future__ import annotations

import os
from pathlib import Path

from msa.report.tables import DATASET_TITLES, LOWER_IS_BETTER, PERCENT, Cell, Rendered, paper_text


def shown_path(path: Path) -> str:
    """A run's path as the reader typed it: relative to the working directory when under it."""
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd().resolve()) else str(path)
    except ValueError:
        return str(path)


def footnotes(t: Rendered) -> list[str]:
    """The lines under a table: which runs fill each row, subset sizes, then what is missing and why."""
    lines = ["Runs: " + "; ".join(f"{label} <- " + ", ".join(shown_path(p) for p in paths) + f" ({stage} test pass)"
                                 for (label, _, paths), stage in zip(t.rows, t.row_stages) if paths)]
    if t.subset:
        sizes = []
        for label, cells, _ in t.rows:
            per_ds = {ds: c.subset_n for (ds, _), c in cells.items() if c.subset_n}
            if per_ds:
                sizes.append(f"{label}: " + ", ".join(f"{DATASET_TITLES.get(d, d)} {'/'.join(map(str, n))}"
                                                     for d, n in per_ds.items()))
        lines.append(f"Subset {t.subset}, clips per run (n): " + ("; ".join(sizes) if sizes else "none"))
    return lines + t.notes


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
        return v.text(k) if isinstance(v, Cell) else paper_text(v, k)

    rows = [(label, cells) for label, cells, _ in t.rows]
    parts = [f"### {t.title}", ""]
    if t.paper_rows and t.paper_datasets == t.datasets:
        parts.append(block(t.datasets, rows + t.paper_rows))
    else:
        parts.append(block(t.datasets, rows))
        if t.paper_rows:
            parts += ["", f"As published (Table {t.spec.key}; the runs above were tested on other datasets):", "",
                      block(t.paper_datasets, t.paper_rows)]
    parts += [""] + [f"- {line}" for line in footnotes(t)]
    return "\n".join(parts)


def _tex_escape(s: str) -> str:
    return (s.replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%").replace("_", r"\_")
            .replace("#", r"\#").replace("$", r"\$").replace("~", r"\textasciitilde{}").replace("—", "--")
            .replace("±", r"$\pm$").replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$"))


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
            vals = [(cells[(d, k)].text(k) if isinstance(cells[(d, k)], Cell) else paper_text(cells[(d, k)], k))
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
    lines += [r"\par\smallskip", r"{\footnotesize\raggedright"]
    lines += [_tex_escape(n) + r"\par" for n in footnotes(t)] + ["}"]
    lines.append(r"\end{table*}")
    return "\n".join(lines)


def to_records(t: Rendered) -> list[dict]:
    """Long format: one record per cell (runs, then the paper's rows with source=paper)."""
    recs = []
    for label, cells, paths in t.rows:
        for (ds, col), c in cells.items():
            recs.append({"table": t.spec.key, "row": label, "source": "runs", "dataset": ds, "metric": col,
                         "mean": None if c.missing else c.mean, "std": c.std, "n": c.n, "text": c.text(col),
                         "runs": "" if c.missing else ";".join(map(str, paths)), "subset": t.subset or "",
                         "subset_n": ";".join(map(str, c.subset_n)), "missing": c.missing or ""})
    for label, cells in t.paper_rows:
        for (ds, col), v in cells.items():
            recs.append({"table": t.spec.key, "row": label, "source": "paper", "dataset": ds, "metric": col,
                         "mean": v / 100 if col in PERCENT else v, "std": None, "n": None,
                         "text": paper_text(v, col), "runs": "", "subset": "", "subset_n": "", "missing": ""})
    return recs


LATEX_PREAMBLE = "\n".join([r"\documentclass{article}", r"\usepackage[margin=1cm,landscape]{geometry}",
                            r"\usepackage{booktabs}", r"\usepackage{graphicx}", r"\begin{document}"])
