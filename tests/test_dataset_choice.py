"""What a command trains and evaluates on follows ``data=`` and the user's overrides, never a preset;
every run prints its plan before anything loads and saves its resolved config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from data_fixtures import SIMS_HEADER, make_clip, write_labels

ROOT = Path(__file__).resolve().parents[1]

# Each release's own header (msa/data/labels.py reads columns by name).
MOSI_HEADER = SIMS_HEADER  # the current MOSI release: SIMS's columns, unimodal labels empty
MOSEI_HEADER = ["video_id", "clip_id", "text", "label", "annotation", "mode", "label_T", "label_A", "label_V"]

# (video_id, clip_id, label, mode); ids as the real releases spell them: leading '-' and '_' (YouTube
# ids), zero-padded clip ids. Only the test and valid clips get media: nothing else may be read.
ROWS = {
    "sims": [("video_0001", "0001", "0.8", "train"), ("video_0001", "0002", "-0.2", "valid"),
             ("video_0002", "0001", "-0.6", "test"), ("video_0010", "0007", "0.0", "test"),
             ("video_0003", "0010", "1.0", "test")],
    "simsv2": [("aqgy3_0001", "00000", "0.4", "train"), ("aqgy3_0001", "00001", "-1.0", "dev"),
               ("aqgy3_0002", "00002", "0.6", "test"), ("_aqgy4_0003", "00010", "-0.4", "test"),
               ("aqgy3_0002", "00003", "", "test")],  # unlabelled (v2(u)): not scored
    "mosi": [("-3g5yACwYnA", "1", "1.4", "train"), ("_dI--eQ6qVU", "2", "-2.2", "valid"),
             ("-3g5yACwYnA", "10", "-0.5", "test"), ("_dI--eQ6qVU", "007", "2.25", "test"),
             ("03bSnISJMiM", "11", "0.0", "test")],
    "mosei": [("--qXJuDtHPw", "5", "0.6666666865348816", "train"), ("-HwX2H8Z4hY", "3", "1.0", "valid"),
              ("_0efYOjQYRc", "0", "-1.3333333730697632", "test"), ("--qXJuDtHPw", "01", "3.0", "test")],
}
TEST_IDS = {ds: [f"{v}$_${c}" for v, c, label, mode in rows if mode == "test" and label]
            for ds, rows in ROWS.items()}
PRESETS = {"default": [], "demo": ["experiment=demo"], "paper": ["experiment=paper"], "none": ["experiment=none"]}
FAST = ["model=tiny", "eval.max_new_tokens=2", "logger=none"]


def make_set(root: Path, dataset: str) -> Path:
    """An MMSA-layout dataset in ``dataset``'s release format; media for the test and valid clips only."""
    rows = []
    for k, (vid, cid, label, mode) in enumerate(ROWS[dataset]):
        text = f"clip {k} of {dataset}"
        if dataset == "mosei":
            ann = "Positive" if label and float(label) > 0 else "Negative"
            rows.append([vid, cid, text, label, ann, mode, "", "", ""])
        else:
            unimodal = ["", "", ""] if dataset == "mosi" else [label] * 3
            rows.append([vid, cid, text, label, *unimodal, "Neutral", mode])
        if mode in ("test", "valid", "dev"):
            make_clip(root / "Raw" / vid / f"{cid}.mp4", 1.0, tone=300.0 + 40 * k, shade=9 * k)
    header = MOSEI_HEADER if dataset == "mosei" else SIMS_HEADER
    write_labels(root, rows, header, name="meta.csv" if dataset == "simsv2" else "label.csv")
    return root


@pytest.fixture(scope="module")
def dataset_roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("mmsa")
    return {ds: make_set(base / ds.upper(), ds) for ds in ROWS}


# ---------------------------------------------------------------- composition (no model)

@pytest.mark.parametrize("preset", PRESETS)
def test_a_training_run_reads_and_scores_the_data_choice_under_every_preset(make_cfg, dataset_roots, preset):
    from msa.config import validate
    from msa.plan import DataTarget, eval_targets, stage_splits

    root = str(dataset_roots["mosei"])
    cfg = make_cfg("data=mosei", f"data.root={root}", "teacher=rule", *PRESETS[preset])
    validate(cfg)
    assert cfg.data.name == "mosei" and str(cfg.data.root) == root
    assert [stage_splits(cfg, s) for s in ("cot", "sft", "grpo")] == [["train"], ["train", "valid"], ["train"]]
    assert eval_targets(cfg) == [DataTarget("mosei", root, "test")]


def test_the_demo_keeps_its_cross_dataset_target(make_cfg):
    from msa.plan import eval_targets

    for preset in PRESETS.values():
        cfg = make_cfg(*preset)
        data_dir = cfg.paths.data_dir
        assert [(t.name, t.root) for t in eval_targets(cfg)] == [("demo", f"{data_dir}/demo"),
                                                                   ("demo_mosi", f"{data_dir}/demo_mosi")]


def test_command_line_targets_win_and_need_roots(make_cfg, dataset_roots):
    from msa.config import ConfigError, validate
    from msa.plan import DataTarget, eval_targets

    sims, mosi = str(dataset_roots["sims"]), str(dataset_roots["mosi"])
    cfg = make_cfg("stage=eval", "data=sims", f"data.root={sims}", "eval.datasets=[sims,mosi]",
                   f"eval.roots.mosi={mosi}", "eval.split=valid")
    validate(cfg)
    assert eval_targets(cfg) == [DataTarget("sims", sims, "valid"), DataTarget("mosi", mosi, "valid")]
    with pytest.raises(ConfigError, match=r"^eval.roots.mosi: .*eval.roots.mosi=/path/to/mosi"):
        validate(make_cfg("stage=eval", "data=sims", f"data.root={sims}", "eval.datasets=[sims,mosi]"))
    with pytest.raises(ConfigError, match=r"^data.root: .*does not exist"):
        validate(make_cfg("stage=eval", "data=mosei", f"data.root={sims}/nowhere"))
    with pytest.raises(ConfigError, match=r"^eval.split: 'holdout' is not one of train, valid, test"):
        validate(make_cfg("stage=eval", "eval.split=holdout"))  # val, dev, validation are valid's aliases


def test_an_export_answers_in_the_range_it_was_trained_on(make_cfg, dataset_roots, tmp_path):
    from msa.plan import answer_range

    sft = tmp_path / "sft_export"
    sft.mkdir()
    (sft / "msa_policy.json").write_text(json.dumps({"stage": "sft", "dataset": "sims", "answer": "dc"}))
    cfg = make_cfg("stage=eval", "data=mosi", f"data.root={dataset_roots['mosi']}")
    assert answer_range(cfg, sft) == "sims"  # prompted in [-1, 1], scores x3 onto MOSI
    assert answer_range(cfg, None) == "mosi"  # zero-shot: the target's own range
    cfg = make_cfg("stage=eval", "data=mosi", f"data.root={dataset_roots['mosi']}", "eval.range_dataset=mosei")
    assert answer_range(cfg, sft) == "mosei"


def test_no_preset_sets_data_keys():
    """Presets change hyperparameters; the data (and what is scored) is data='s and the user's."""
    data_keys = {"data", "eval.datasets", "eval.roots", "eval.split", "eval.range_dataset"}
    for path in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        node = yaml.safe_load(path.read_text()) or {}
        flat = {f"{k}.{sub}" for k, v in node.items() if isinstance(v, dict) for sub in v} | set(node)
        assert not flat & data_keys, f"{path.name} sets {sorted(flat & data_keys)}"
        for entry in node.get("defaults", []):
            assert not (isinstance(entry, dict) and any("data" in str(k) for k in entry)), f"{path.name}: {entry}"


# ---------------------------------------------------------------- runs on the fixtures

@pytest.mark.parametrize("preset", ["demo", pytest.param("paper", marks=pytest.mark.slow),
                                    pytest.param("none", marks=pytest.mark.slow)])
@pytest.mark.parametrize("dataset", ROWS)
def test_eval_scores_exactly_the_fixture_test_clips(make_cfg, dataset_roots, dataset, preset):
    from train import train

    cfg = make_cfg("stage=eval", f"data={dataset}", f"data.root={dataset_roots[dataset]}", *PRESETS[preset], *FAST)
    train(cfg)
    out = Path(cfg.paths.output_dir)
    saved = json.loads((out / "metrics.json").read_text())
    assert list(saved["eval"]) == [dataset]
    assert saved["eval"][dataset]["n"] == len(TEST_IDS[dataset])
    recs = [json.loads(x) for x in (out / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in recs] == TEST_IDS[dataset]  # ids exactly: '-', '_' and zeros kept, file order
    assert {(r["dataset"], r["split"]) for r in recs} == {(dataset, "test")}


def test_eval_split_chooses_the_split_scored(make_cfg, dataset_roots):
    from train import train

    cfg = make_cfg("stage=eval", "data=simsv2", f"data.root={dataset_roots['simsv2']}", "eval.split=valid", *FAST)
    train(cfg)
    recs = [json.loads(x) for x in (Path(cfg.paths.output_dir) / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert [(r["id"], r["split"]) for r in recs] == [("aqgy3_0001$_$00001", "valid")]  # mode 'dev' in meta.csv


def test_every_run_prints_its_plan_before_the_model_loads_and_saves_its_config(make_cfg, dataset_roots,
                                                                               monkeypatch, capsys):
    import msa.stages.common
    from train import train

    def no_model(*args, **kwargs):
        raise RuntimeError("model load reached")

    monkeypatch.setattr(msa.stages.common, "load_stage_policy", no_model)
    root = str(dataset_roots["mosi"])
    cfg = make_cfg("stage=eval", "data=mosi", f"data.root={root}", "eval.split=valid", "seed=7", *FAST)
    with pytest.raises(RuntimeError, match="model load reached"):
        train(cfg)
    lines = capsys.readouterr().out.splitlines()
    plan = lines[lines.index("plan"):]
    text = "\n".join(plan)
    assert plan[1].split() == ["stages", "eval"]
    assert "tiny random-init model (size test)" in text
    assert f"mosi  {root}  (split valid)" in text and "demo_mosi" not in text and "/demo" not in text
    assert "hint=true hard=true seed=7" in text
    out = Path(cfg.paths.output_dir)
    saved = yaml.safe_load((out / "resolved_config.yaml").read_text())
    assert saved["data"]["name"] == "mosi" and saved["eval"]["datasets"] == ["mosi"]
    assert saved["eval"]["split"] == "valid" and saved["data"]["root"] == root
    assert (out / "plan.txt").read_text().splitlines() == plan


@pytest.mark.slow
def test_the_issue_command_on_the_command_line(dataset_roots, cache_dir, tmp_path):
    """``python train.py stage=eval data=mosei data.root=...`` (the default preset is the demo's)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, MSA_CACHE=str(cache_dir), HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "train.py", "stage=eval", "data=mosei", f"data.root={dataset_roots['mosei']}",
                        *FAST, f"hydra.run.dir={tmp_path}"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert list(json.loads((tmp_path / "metrics.json").read_text())["eval"]) == ["mosei"]
    plan = (tmp_path / "plan.txt").read_text()
    assert r.stdout.index("plan\n") < r.stdout.index("outputs:") and plan.splitlines()[0] in r.stdout
    assert f"mosei  {dataset_roots['mosei']}  (split test)" in plan
    assert yaml.safe_load((tmp_path / "resolved_config.yaml").read_text())["eval"]["datasets"] == ["mosei"]


def test_eval_takes_the_answer_format_and_modalities_from_the_export(make_cfg, dataset_roots, tmp_path):
    """A score-baseline export scored with the DC parser fails every answer (parse_fail_rate 1.0)."""
    from msa.exports import export_facts
    from msa.plan import format_plan, plan_rows

    export = tmp_path / "score_export"
    export.mkdir()
    (export / "msa_policy.json").write_text(json.dumps({"stage": "sft", "dataset": "sims", "answer": "score",
                                                        "modalities": ["text", "audio"]}))
    cfg = make_cfg("stage=eval", "data=mosi", f"data.root={dataset_roots['mosi']}", f"init_from={export}")
    facts = export_facts(cfg, export)
    assert (facts["answer"].value, facts["answer"].source) == ("score", "export")
    assert (facts["modalities"].value, facts["range_dataset"].value) == (["text", "audio"], "sims")
    assert "eval reads: answer score (export), range_dataset sims (export), modalities text+audio (export)" \
        in format_plan(plan_rows(cfg))
    cfg = make_cfg("stage=eval", "data=mosi", f"data.root={dataset_roots['mosi']}", f"init_from={export}",
                   "eval.answer=dc", "eval.modalities={text: true, audio: false, video: false}")
    facts = export_facts(cfg, export)
    assert (facts["answer"].value, facts["answer"].source) == ("dc", "eval.answer")
    assert (facts["modalities"].value, facts["modalities"].source) == (["text"], "eval.modalities")
    zero_shot = export_facts(make_cfg("stage=eval", "data=mosi", f"data.root={dataset_roots['mosi']}"), None)
    assert (zero_shot["answer"].value, zero_shot["answer"].source) == ("dc", "sft.answer")
    assert zero_shot["modalities"].value == ["text", "audio", "video"]


def test_the_eval_stage_scores_with_the_exports_answer_format(make_cfg, dataset_roots, tmp_path, monkeypatch):
    import msa.stages.common
    import msa.stages.evaluate as evaluate

    export = tmp_path / "score_export"
    export.mkdir()
    (export / "msa_policy.json").write_text(json.dumps({"stage": "sft", "dataset": "mosi", "answer": "score"}))
    seen = {}
    monkeypatch.setattr(msa.stages.common, "load_stage_policy", lambda ctx: None)
    monkeypatch.setattr(evaluate, "evaluate_policy", lambda ctx, policy, stage, answer: seen.update(answer=answer) or {})
    cfg = make_cfg("stage=eval", "data=mosi", f"data.root={dataset_roots['mosi']}", f"init_from={export}")

    class Ctx:
        artefacts = {"policy": str(export)}

        def __init__(self):
            self.cfg = cfg

        def record(self, *a):
            pass

    evaluate.run(Ctx())
    assert seen["answer"] == "score"
