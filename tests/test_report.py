"""msa.report on hand-made run directories: settings from configs, cells worked out by hand, errors that
name the run, Markdown / LaTeX / CSV / PNG output."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import pandas as pd
import pytest
import yaml

from msa.report.build import build, main
from msa.report.formats import LATEX_PREAMBLE, to_markdown
from msa.report.runs import ReportError, load_run
from msa.report.tables import metric_value

SIMS_M = {"acc5": 0.5, "acc3": 0.7, "acc2": 0.8, "f1": 0.81, "acc2_weak": 0.6, "r2": 0.3, "mae": 0.3, "corr": 0.7,
          "parse_fail_rate": 0.0, "n": 10}
MOSI_M = {"acc7": 0.3, "acc5": 0.35, "acc3": 0.6, "acc2_has0": 0.8, "f1_has0": 0.79, "acc2_non0": 0.85,
          "f1_non0": 0.84, "mae": 0.9, "corr": 0.75, "parse_fail_rate": 0.0, "n": 10}


def make_run(root, name, stages, *, hint=True, hard=True, seed=0, answer="dc", init_from=None, data="sims",
             metrics=None, rewards=None):
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    cfg = {"task_name": stages[0] if len(stages) == 1 else "pipeline", "hint": hint, "hard": hard, "seed": seed,
           "init_from": init_from, "stage": {"run": stages}, "data": {"name": data},
           "model": {"name": "tiny"}, "sft": {"answer": answer}, "eval": {"answer": "${sft.answer}"},
           "paths": {"output_dir": "${hydra:runtime.output_dir}"}}  # as Hydra saves it: unresolved
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / "metrics.json").write_text(json.dumps(metrics or {}))
    if rewards is not None:
        (d / "grpo").mkdir()
        pd.DataFrame({"step": range(len(rewards)), "reward": rewards, "own_reward": rewards}).to_csv(
            d / "grpo" / "train_history.csv", index=False)
    return d


def with_(base, **changes):
    return {**base, **changes}


def four(sims=SIMS_M, mosi=MOSI_M):
    return {"sims": sims, "simsv2": sims, "mosi": mosi, "mosei": mosi}


@pytest.fixture
def study(tmp_path):
    """The runs of the whole paper on real dataset names: zero-shot, both SFTs, GRPO (2 seeds) and the
    two ablations, as a researcher's outputs/ folder would hold them (one sweep folder)."""
    root = tmp_path / "paper"
    make_run(root, "cot", ["cot"], metrics={"cot": {"kept": 3}})
    make_run(root, "zero_shot", ["eval"], metrics={"eval": four(with_(SIMS_M, acc3=0.4, corr=None))})
    make_run(root, "sft", ["sft"], init_from=None, metrics={"sft": four(with_(SIMS_M, acc3=0.6))})
    make_run(root, "sft_score", ["sft"], answer="score", metrics={"sft": four(with_(SIMS_M, acc3=0.65))})
    sweep = root / "grpo_sweep"
    make_run(sweep, "0_grpo", ["grpo"], init_from="x", seed=0, rewards=[1, 2, 3],
             metrics={"grpo": four(with_(SIMS_M, acc5=0.5, mae=0.30), with_(MOSI_M, acc7=0.3))})
    make_run(sweep, "1_grpo", ["grpo"], init_from="x", seed=1, rewards=[1, 2, 4],
             metrics={"grpo": four(with_(SIMS_M, acc5=0.7, mae=0.34), with_(MOSI_M, acc7=0.4))})
    make_run(sweep, "2_grpo", ["grpo"], init_from="x", hint=False, rewards=[1, 1, 1],
             metrics={"grpo": four(with_(SIMS_M, acc3=0.55))})
    make_run(sweep, "3_grpo", ["grpo"], init_from="x", hard=False, rewards=[2, 2, 2],
             metrics={"grpo": four(with_(SIMS_M, acc3=0.66))})
    return root


def cells(rendered, label):
    return next(c for lab, c, _ in rendered.rows if lab.startswith(label))


def test_settings_and_cells_worked_by_hand(study):
    rendered, notes, groups = build([study])
    assert notes == [] and [t.spec.key for t in rendered] == ["I", "II", "III", "IV", "V"]
    assert {s: len(r) for s, r in groups.items()} == {"zero_shot": 1, "sft_dc": 1, "sft_score": 1, "grpo": 2,
                                                      "grpo_no_hint": 1, "grpo_no_hard": 1}
    t1, t2, t3, t4, t5 = rendered
    assert t1.datasets == ["sims", "simsv2"] and t2.datasets == ["mosi", "mosei"] and t3.datasets == ["sims"]
    assert t1.columns == ("Acc5", "Acc3", "Acc2", "F1", "MAE", "Corr") and t2.columns == ("Acc7", "Acc2", "F1",
                                                                                         "MAE", "Corr")
    # two seeds: acc5 0.5, 0.7 -> mean 60.0, sample std sqrt(0.02) = 0.1414 -> 14.1; MAE 0.30, 0.34 -> 0.320 +- 0.028
    thinker = cells(t1, "MSA-Thinker")
    assert thinker[("sims", "Acc5")].text("Acc5") == "60.0 ± 14.1"
    assert thinker[("sims", "MAE")].text("MAE") == "0.320 ± 0.028"
    assert cells(t2, "MSA-Thinker")[("mosei", "Acc7")].text("Acc7") == "35.0 ± 7.1"
    # MOSI-family Acc2 / F1 are MMSA's Non0 figures
    assert cells(t2, "Zero-shot")[("mosi", "Acc2")].text("Acc2") == "85.0"
    assert cells(t2, "Zero-shot")[("mosi", "F1")].text("F1") == "84.0"
    # one seed: no +-; an undefined Corr (null in metrics.json) prints nan
    assert cells(t1, "Zero-shot")[("sims", "Acc3")].text("Acc3") == "40.0"
    assert cells(t1, "Zero-shot")[("sims", "Corr")].text("Corr") == "nan"
    assert cells(t1, "SFT (direct score)")[("sims", "Acc3")].text("Acc3") == "65.0"
    assert cells(t3, "CoT (SFT)")[("sims", "Acc3")].text("Acc3") == "60.0"
    assert cells(t4, "w/o Hint")[("sims", "Acc3")].text("Acc3") == "55.0"
    assert cells(t5, "w/o Hard")[("sims", "Acc3")].text("Acc3") == "66.0"
    assert [lab for lab, _, _ in t4.rows] == ["w/o Hint", "w/ Hint (n=2)"]


def test_markdown_has_every_cell_and_paper_rows_share_the_columns(study):
    rendered, _, _ = build([study], paper=True)
    t1 = rendered[0]
    md = to_markdown(t1)
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| Setting | CH-SIMS Acc5↑ |") and "CH-SIMS v2 Corr↑" in lines[0]
    body = lines[1:]
    assert len(body) == 3 + 8  # our three rows + the paper's eight
    for ln in body:
        cols = [c.strip() for c in ln.strip("|").split("|")]
        assert len(cols) == 1 + 12 and all(cols)
    qwen = next(ln for ln in body if "paper: Qwen2.5Omni" in ln)
    assert "| 57.6 | 73.3 | 87.5 | 87.0 | 0.235 | 0.841 | 53.6 |" in qwen
    t3 = to_markdown(rendered[2])
    assert "| paper: CoT(Zero-shot) | 36.5 | 55.1 | 70.0 | 70.8 | 0.462 | 0.558 |" in t3


def test_paper_rows_on_other_datasets_are_a_separate_table(tmp_path):
    root = tmp_path / "demo"
    make_run(root, "a", ["grpo"], hint=False, data="demo", metrics={"grpo": {"demo": SIMS_M}})
    make_run(root, "b", ["grpo"], data="demo", metrics={"grpo": {"demo": SIMS_M}})
    rendered, notes, _ = build([root], paper=True)
    # every table with a row of its own; II has no MOSI-family test set
    assert [t.spec.key for t in rendered] == ["I", "III", "IV", "V"]
    assert notes == ["Table II skipped: no run was tested on a MOSI-family dataset"]
    md = to_markdown(rendered[2])
    assert "demo (SIMS-like) Acc5↑" in md and "As published (Table IV" in md
    assert "| paper: w/o Hint | 46.2 | 67.0 | 82.5 | 81.4 | 0.368 | 0.701 |" in md


def test_a_run_without_a_needed_dataset_is_a_missing_cell_or_in_strict_mode_an_error(study):
    bad = study / "grpo_sweep" / "1_grpo"
    m = json.loads((bad / "metrics.json").read_text())
    del m["grpo"]["mosei"]
    (bad / "metrics.json").write_text(json.dumps(m))
    rendered, notes, _ = build([study])
    t2 = next(t for t in rendered if t.spec.key == "II")
    thinker = cells(t2, "MSA-Thinker")
    # never an average over the seeds that have it: the cell is missing, the other dataset is not
    assert thinker[("mosei", "Acc7")].text("Acc7") == "—" and thinker[("mosi", "Acc7")].text("Acc7") == "35.0 ± 7.1"
    assert len([n for n in t2.notes if "1_grpo" in n and "not tested on 'mosei'" in n]) == 1  # once, not per column
    with pytest.raises(ReportError, match=r"1_grpo.*not tested on 'mosei'"):
        build([study], tables=["II"])


def test_a_run_without_its_stage_is_named(study):
    (study / "sft_score" / "metrics.json").write_text(json.dumps({"wall_time_s": {"sft": 3.0}}))
    rendered, _, _ = build([study])
    assert any("sft_score: no 'sft' test metrics" in n for n in rendered[0].notes)
    with pytest.raises(ReportError, match=r"sft_score: no 'sft' test metrics"):
        build([study], tables=["I"])


def test_missing_setting_is_an_error_when_the_table_is_asked_for(tmp_path, capsys):
    make_run(tmp_path, "a", ["grpo"], metrics={"grpo": {"sims": SIMS_M}})
    with pytest.raises(ReportError, match="Table IV needs runs of grpo_no_hint"):
        build([tmp_path], tables=["IV"])
    assert main([str(tmp_path), "--tables", "IV"]) == 1
    assert "error: Table IV needs runs of grpo_no_hint" in capsys.readouterr().err
    make_run(tmp_path, "b", ["cot"], metrics={"cot": {"kept": 3}})
    assert main([str(tmp_path / "b")]) == 1  # no table has a row: an error, not an empty report
    assert "no table can be built" in capsys.readouterr().err


def demo_run(root):
    """One plain demo pipeline (cot -> sft -> grpo -> eval on data=demo): SFT's and GRPO's test passes on demo
    and demo_mosi; GRPO's demo split has subset metrics, SFT's (an older run's) none."""
    text_conflict = with_(SIMS_M, acc2=0.25, acc3=0.5, mae=0.6, n=4)
    grpo_demo = with_(SIMS_M, acc2=0.9, subsets={"text_conflict": text_conflict, "conflict": {"n": 0}})
    return make_run(root, "demo_run", ["cot", "sft", "grpo", "eval"], data="demo",
                    metrics={"cot": {"kept": 3}, "sft": {"demo": with_(SIMS_M, acc2=0.6), "demo_mosi": MOSI_M},
                             "grpo": {"demo": grpo_demo, "demo_mosi": with_(MOSI_M, subsets={})},
                             "eval": {"demo": grpo_demo}, "grpo_train": {"steps": 2}})


def test_a_single_demo_run_fills_the_cells_it_can_in_every_table(tmp_path, capsys):
    run = demo_run(tmp_path)
    assert main([str(run)]) == 0
    printed = capsys.readouterr().out
    for key in ("I", "II", "III", "IV", "V"):
        assert f"### Table {key}:" in printed
    rendered, notes, _ = build([run])
    assert notes == [] and [t.spec.key for t in rendered] == ["I", "II", "III", "IV", "V"]
    t1, t2, t3, t4, t5 = rendered
    # the paper's rows in the paper's order, the ones no run gives shown missing and listed once below
    assert [lab for lab, _, _ in t1.rows] == ["Zero-shot", "SFT (direct score)", "MSA-Thinker"]
    assert t1.datasets == ["demo"] and t2.datasets == ["demo_mosi"] and t3.datasets == ["demo"]
    assert cells(t1, "MSA-Thinker")[("demo", "Acc2")].text("Acc2") == "90.0"
    assert cells(t2, "MSA-Thinker")[("demo_mosi", "Acc7")].text("Acc7") == "30.0"
    assert cells(t3, "CoT (SFT)")[("demo", "Acc2")].text("Acc2") == "60.0"
    assert all(c.text(k) == "—" for (_, k), c in cells(t1, "Zero-shot").items())
    assert t1.notes == ["Zero-shot: missing, no run of zero_shot (zero-shot (DC prompt), stage=eval without init_from)",
                        "SFT (direct score): missing, no run of sft_score (direct-score SFT baseline, "
                        "stage=sft sft.answer=score)"]
    md = to_markdown(t4)
    assert "| w/o Hint | — | — | — | — | — | — |" in md and "| w/ Hint | 50.0 | 70.0 | 90.0 |" in md
    assert md.count("w/o Hint: missing") == 1
    assert f"- Runs: w/ Hint <- {run.resolve()} (grpo test pass)" in md  # which run fills the row's cells
    assert f"CoT (SFT) <- {run.resolve()} (sft test pass); CoT (SFT+RL) <- {run.resolve()} (grpo test pass)" \
        in to_markdown(t3)
    out = tmp_path / "out"
    assert main([str(run), "--out", str(out)]) == 0
    check_latex(out / "tables.tex", n_tables=5)
    rows = list(csv.DictReader((out / "tables.csv").open()))
    zero = [r for r in rows if r["row"] == "Zero-shot"]
    assert len(zero) == 6 + 5 and all(r["text"] == "—" and r["runs"] == "" and r["missing"] for r in zero)


def test_a_subset_fills_the_columns_and_is_never_the_whole_split(tmp_path, capsys):
    run = demo_run(tmp_path)
    rendered, _, _ = build([run], subset="text_conflict")
    t1, t2, t3 = rendered[:3]
    assert t1.title.endswith("[subset: text_conflict]")
    # GRPO's demo split: its text_conflict subset (n=4), not the whole split's acc2 0.9
    c = cells(t1, "MSA-Thinker")[("demo", "Acc2")]
    assert c.text("Acc2") == "25.0" and c.subset_n == (4,)
    # demo_mosi has no unimodal labels, SFT's run predates subsets: missing, with why
    assert cells(t2, "MSA-Thinker")[("demo_mosi", "Acc7")].text("Acc7") == "—"
    assert cells(t3, "CoT (SFT)")[("demo", "Acc2")].text("Acc2") == "—"
    assert any("no text_conflict subset on demo_mosi" in n for n in t2.notes)
    assert any("no text_conflict subset on demo (" in n for n in t3.notes)
    empty, _, _ = build([run], subset="conflict")
    assert cells(empty[0], "MSA-Thinker")[("demo", "Acc2")].text("Acc2") == "—"
    assert any("conflict subset of demo is empty (n=0)" in n for n in empty[0].notes)
    assert main([str(run), "--subset", "text_conflict", "--paper"]) == 0
    out = capsys.readouterr().out
    assert "[subset: text_conflict]" in out
    assert "Subset text_conflict, clips per run (n): MSA-Thinker: demo (SIMS-like) 4" in out
    assert "paper:" not in out  # the paper's whole-split numbers are not set beside a subset
    with pytest.raises(ReportError, match="unknown subset 'words'"):
        build([run], subset="words")


def test_a_sweep_in_strict_mode_gives_every_table_complete(study, tmp_path):
    strict, _, _ = build([study], tables=["I", "II", "III", "IV", "V"])
    assert [t.spec.key for t in strict] == ["I", "II", "III", "IV", "V"]
    assert all(not t.notes and all(not c.missing for _, cs, _ in t.rows for c in cs.values()) for t in strict)
    out = tmp_path / "out"
    assert main([str(study), "--tables", "III", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "tables.csv").open()))
    assert {r["runs"].split("/")[-1] for r in rows if r["row"] == "CoT (SFT)"} == {"sft"}  # each cell names its run


def test_two_runs_of_one_setting_and_seed_are_an_error(study, tmp_path):
    shutil.copytree(study / "grpo_sweep" / "0_grpo", tmp_path / "again")
    with pytest.raises(ReportError, match="two runs of setting grpo with seed 0"):
        build([study, tmp_path / "again"])


def test_metric_names_old_and_new_are_both_read():
    new = {"f1_weighted": 0.5, "f1_macro": 0.4}
    old = {"f1": 0.6}
    assert metric_value(new, "sims", "F1", "x") == 0.5
    assert metric_value(old, "sims", "F1", "x") == 0.6
    assert metric_value({"f1_weighted_non0": 0.7, "f1_non0": 0.1}, "mosi", "F1", "x") == 0.7
    with pytest.raises(ReportError, match=r"x: no F1 .*f1_weighted, f1"):
        metric_value({"acc2": 1.0}, "sims", "F1", "x")


def test_cli_writes_markdown_latex_csv_and_the_figure(study, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(study), "--paper", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "### Table I:" in printed and "### Table V:" in printed
    for name in ("tables.md", "tables.tex", "tables.csv", "fig3_reward.png", "fig3_own_reward.png"):
        assert (out / name).exists(), name
    assert (out / "fig3_reward.png").stat().st_size > 5000
    rows = list(csv.DictReader((out / "tables.csv").open()))
    ours = [r for r in rows if r["source"] == "runs"]
    assert len(ours) == 3 * 12 + 3 * 10 + 3 * 6 + 2 * 6 + 2 * 6 and all(r["text"] for r in ours)
    acc5 = next(r for r in ours if r["table"] == "I" and r["row"].startswith("MSA") and r["dataset"] == "sims"
                and r["metric"] == "Acc5")
    assert float(acc5["mean"]) == pytest.approx(0.6) and acc5["n"] == "2" and "0_grpo" in acc5["runs"]
    assert len([r for r in rows if r["source"] == "paper"]) == 8 * 12 + 8 * 10 + 3 * 6 + 2 * 6 + 2 * 6
    check_latex(out / "tables.tex", n_tables=5)


def check_latex(tex_file, n_tables):
    """Structure always; compiled with pdflatex when one is installed."""
    tex = tex_file.read_text()
    assert tex.count(r"\begin{table*}") == tex.count(r"\end{table*}") == n_tables
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == tex.count(r"\toprule") \
        == tex.count(r"\bottomrule")
    for block in tex.split(r"\begin{tabular}{")[1:]:
        spec, body = block.split("}", 1)
        body = body.split(r"\end{tabular}")[0]
        for line in body.splitlines():
            if line.endswith(r"\\") and "multicolumn" not in line:
                assert line.count(" & ") == len(spec) - 1, line
    assert "±" not in tex and "_" not in tex.replace(r"\_", "")
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        return
    doc = tex_file.parent / "doc.tex"
    doc.write_text(LATEX_PREAMBLE + "\n" + tex + "\n\\end{document}\n")
    r = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=doc.parent,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:]
    assert (doc.parent / "doc.pdf").stat().st_size > 1000


# ----------------------------------------------------------------------------------------------
# experiments/paper/README.md: the commands the tests run are the ones the README shows
# ----------------------------------------------------------------------------------------------

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
STUDY_README = ROOT / "experiments" / "paper" / "README.md"


def readme_blocks(marker: str) -> list[str]:
    """The ```bash blocks right after each ``<!-- marker -->`` line, in order."""
    import re

    return re.findall(rf"<!-- {marker} -->\n```bash\n(.*?)```", STUDY_README.read_text(), re.S)


def _commands(block: str) -> list[str]:
    return [c for c in block.replace("\\\n", " ").splitlines() if c.startswith("python ")]


def _shape(cmd: str) -> set[str]:
    """What makes a command the run it is, without the sizes and paths that differ between the real and
    the CPU-sized variant: the stage and the flags a table's rows are told apart by, the run folder."""
    keep = ("stage=", "sft.answer=", "hint=", "hard=", "init_from=", "hydra.run.dir=", "hydra.sweep.dir=",
            "sft.cot=", "-m", "msa.report", "--paper", "--out", '"${EVAL[@]}"')
    return {t for t in cmd.split() if t.startswith(keep)}


def test_cpu_variant_mirrors_the_paper_commands():
    paper, cpu = readme_blocks("paper"), readme_blocks("cpu")
    assert len(paper) == len(cpu) == 5  # setup, Tables I/II, IV, V, the report
    for p, c in zip(paper[1:], cpu[1:]):
        pc, cc = _commands(p), _commands(c)
        assert len(pc) == len(cc) > 0
        for a, b in zip(pc, cc):
            assert _shape(a) == _shape(b), (a, b)
    for block in (paper, cpu):
        script = "\n".join(block)
        r = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "experiment=paper" in paper[0] and "logger.group=paper" in paper[0]


@pytest.mark.slow
def test_cpu_variant_of_every_study_runs_end_to_end_from_the_readme(tmp_path, monkeypatch):
    """Every CPU block of experiments/paper/README.md, as written, in one shell; then every table with
    every cell, the figure, the W&B group of every run, and notebook 01 on the zero-shot run's output."""
    import os

    out = tmp_path / "out"
    script = "set -euo pipefail\n" + "\n".join(readme_blocks("cpu"))
    env = dict(os.environ, OUT=str(out), MSA_CACHE=str(tmp_path / "cache"), WANDB_MODE="offline",
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    r = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=5400)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    rep = out / "report"
    md = (rep / "tables.md").read_text()
    for key in ("I", "II", "III", "IV", "V"):
        assert f"### Table {key}:" in md
    n_rows = 0
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| Setting"):
            cols = [c.strip() for c in line.strip("|").split("|")]
            assert all(cols), line
            n_rows += 1
    assert n_rows == 3 + 3 + 3 + 2 + 2 + 8 + 8 + 3 + 2 + 2  # our rows, then the paper's reference rows
    assert "MSA-Thinker (n=2)" in md and "w/o Hint (n=2)" in md and "w/o Hard (n=2)" in md
    rows = list(csv.DictReader((rep / "tables.csv").open()))
    assert all(r["text"] for r in rows)
    for png in ("fig3_reward.png", "fig3_own_reward.png"):
        assert (rep / png).stat().st_size > 5000
    check_latex(rep / "tables.tex", n_tables=5)
    # one W&B group for the whole study, job type = stage
    from test_wandb_groups import read_finished_run

    wb = [read_finished_run(d) for d in sorted(out.rglob("offline-run-*"))]
    assert len(wb) == 3 + 3 * 2  # zero-shot, two SFTs, three GRPO settings x 2 seeds (cot logs nothing)
    assert {w["group"] for w in wb} == {"paper-cpu"}
    assert sorted(w["job_type"] for w in wb) == ["eval"] + ["grpo"] * 6 + ["sft"] * 2
    assert {(w["config"]["setting"]["hint"], w["config"]["setting"]["hard"]) for w in wb
            if w["job_type"] == "grpo"} == {(True, True), (False, True), (True, False)}
    # notebook 01 on a run's output, opened as a researcher would (outputs/<task>/<time>/)
    from test_train import run_notebook

    work = tmp_path / "nb"
    (work / "outputs" / "eval").mkdir(parents=True)
    (work / "outputs" / "eval" / "run").symlink_to(out / "zero_shot", target_is_directory=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("MSA_CACHE", str(tmp_path / "cache"))
    run_notebook(ROOT / "notebooks" / "01_reasoning_chains.ipynb")
    assert (work / "figures" / "clip.png").stat().st_size > 10000


def test_the_resolved_config_is_read_when_present(tmp_path):
    d = make_run(tmp_path, "a", ["grpo"], hint=False, metrics={"grpo": {"sims": SIMS_M}})
    (d / ".hydra" / "config.yaml").rename(d / "resolved_config.yaml")
    assert load_run(d).settings == {"grpo_no_hint": "grpo"}
    (d / "resolved_config.yaml").unlink()
    with pytest.raises(ReportError, match="settings are unknown"):
        load_run(d)
