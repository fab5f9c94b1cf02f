"""The cot stage: the rule teacher end to end through ``train(cfg)``, restarts that redo nothing, settings
that may not change on resume, best-of-n and the judge on a fake teacher, the tiny teacher dropped by the
filters, the tiny judge's unparsable answers, and a real SIGKILL mid-run followed by a resume."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from msa.dc import format_score, parse_completion, polarity_of
from msa.jsonl import read_jsonl
from msa.stages.cot import process_batch

ROOT = Path(__file__).resolve().parents[1]


def load_train():
    spec = importlib.util.spec_from_file_location("train_entry", ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.train


def train_ids(cache_dir: Path, name: str = "demo") -> list[str]:
    from msa.data.labels import read_labels, split

    return list(split(read_labels(cache_dir / "data" / name, name), "train")["id"])


def cot_files(out_dir: Path) -> tuple[Path, Path, Path]:
    d = out_dir / "cot"
    return d / "cot.jsonl", d / "rejected.jsonl", d / "summary.json"


# ---- rule teacher, end to end ------------------------------------------------------------------

def test_rule_teacher_end_to_end_and_restart(make_cfg, cache_dir, tmp_path):
    train = load_train()
    cfg = make_cfg("stage=cot", "teacher=rule", "data=demo", "data.n_clips=24", "logger=none")
    metrics = train(cfg)
    kept_path, rej_path, summary_path = cot_files(tmp_path / "run")
    ids = train_ids(cache_dir)
    s = metrics["cot"]
    # The rule teacher writes from the labels: every clip passes every filter.
    assert (s["clips"], s["done"], s["kept"], s["dropped"], s["duplicates"]) == (len(ids), len(ids), len(ids), 0, 0)
    assert json.loads(summary_path.read_text())["kept"] == len(ids)
    assert s["this_run"]["clips"] == len(ids) and s["this_run"]["clips_per_s"] > 0
    records = read_jsonl(kept_path)
    assert sorted(r["id"] for r in records) == sorted(ids) and read_jsonl(rej_path) == []
    for r in records:
        p = parse_completion(r["answer"], "demo")
        assert p.well_formed and p.polarity == r["polarity"] == polarity_of(r["label"], "demo")
        assert r["answer"].endswith(f"<score>{format_score(r['label'], 'demo')}</score>")
        assert r["teacher"] == "rule" and r["modalities"] == ["text", "audio", "video"] and r["transcript"]
    # A restart with the same output finds everything done and leaves the files alone.
    before = kept_path.read_bytes()
    again = train(cfg)["cot"]
    assert again["this_run"]["clips"] == 0 and again["this_run"]["resumed_after"] == len(ids)
    assert kept_path.read_bytes() == before
    # Changing what the records depend on is refused instead of mixing two CoT sets.
    with pytest.raises(ValueError, match=r"other settings \(teacher.seed: 0 -> 5"):
        train(make_cfg("stage=cot", "teacher=rule", "data=demo", "data.n_clips=24", "logger=none", "seed=5"))


def test_judge_filter_needs_a_judge_node(make_cfg):
    train = load_train()
    with pytest.raises(ValueError, match="cot.filters.judge=true needs a judge model"):
        train(make_cfg("stage=cot", "teacher=rule", "data=demo", "data.n_clips=24", "logger=none",
                       "cot.filters.judge=true"))


# ---- best of n, reasons and the judge, on a fake teacher ---------------------------------------

CUES = "The transcript is warm, the voice is bright and the face smiles."


def dc(polarity: str, think: str, score: str) -> str:
    return f"<polarity>{polarity}</polarity><think>{think}</think><score>{score}</score>"


class FakeTeacher:
    needs_processor = False
    name = "fake"

    def __init__(self, samples):
        self.samples = samples

    def generate(self, batch):
        return [self.samples[i] for i in batch["ids"]]


def fake_batch(labels: dict[str, float]) -> dict:
    return {"ids": list(labels), "transcripts": ["t"] * len(labels), "label": list(labels.values()),
            "skipped": [("broken", "unreadable: demo: clip broken (x.mp4): corrupt")]}


def run_fake(samples, labels, judge=None, **filters):
    return process_batch(fake_batch(labels), FakeTeacher(samples), judge, dataset="sims", split="train",
                         modalities=("text", "audio", "video"), filters={"polarity": True, "plausibility": True, **filters},
                         min_chars=20, max_chars=4000)


def test_best_of_n_and_drop_reasons():
    samples = {
        # Three samples: malformed, right polarity but score 0.2 away, right and 0.1 away -> the last wins.
        "a": ["garbage", dc("positive", CUES + " Overall positive.", "0.4"), dc("positive", CUES + " Overall positive.", "0.7")],
        # Wrong tag in one sample, malformed in the other: the wrong tag got further, so it is the one shown.
        "b": [dc("negative", CUES + " Overall negative.", "-0.6"), "<polarity>positive</polarity>"],
        # Well formed, right polarity, but the conclusion contradicts the tag.
        "c": [dc("positive", CUES + " Overall the speaker is clearly upset.", "0.6")],
    }
    recs = {r["id"]: r for r in run_fake(samples, {"a": 0.6, "b": 0.8, "c": 0.6})}
    assert recs["broken"]["reason"] == "media:unreadable" and not recs["broken"]["kept"]
    a = recs["a"]
    assert a["kept"] and a["sample"] == 2 and a["teacher_score"] == 0.7 and a["score"] == 0.6
    assert a["sample_reasons"] == ["format", None, None]
    # The answer carries the true score (0.6), not the teacher's 0.7.
    assert a["answer"] == dc("positive", CUES + " Overall positive.", "0.6")
    b = recs["b"]
    assert (b["kept"], b["reason"], b["sample"], b["answer"]) == (False, "polarity:tag", 0, None)
    assert b["filters"]["polarity"]["ok"] is False and b["filters"]["judge"]["skipped"] is True
    assert recs["c"]["reason"] == "plausibility:stance"
    json.dumps(list(recs.values()), allow_nan=False)  # every record is valid JSON


def test_switched_off_polarity_filter_keeps_the_chain_with_the_true_label():
    samples = {"a": [dc("negative", CUES + " Overall negative.", "-0.6")]}
    (r,) = run_fake(samples, {"a": 0.6}, polarity=False)[1:]
    # Kept with the true polarity and score; the stance check still sees the teacher's own tag.
    assert r["kept"] and r["answer"].startswith("<polarity>positive</polarity>") and r["answer"].endswith("<score>0.6</score>")
    assert r["filters"]["polarity"]["skipped"] and r["teacher_polarity"] == "negative"


def test_judge_is_asked_about_survivors_only_and_parsed_strictly():
    samples = {k: [dc("positive", CUES + " Overall positive.", "0.6")] for k in ("yes", "no", "junk", "media")}
    samples["bad"] = ["garbage"]
    asked = {}

    def judge(chains):
        asked.update(chains)
        return {"yes": "Yes.", "no": "no", "junk": "Yes, mostly.", "media": None}

    recs = {r["id"]: r for r in run_fake(samples, dict.fromkeys(samples, 0.6), judge=judge)}
    assert set(asked) == {"yes", "no", "junk", "media"}  # "bad" failed before the judge
    assert asked["yes"] == ("positive", CUES + " Overall positive.")
    assert recs["yes"]["kept"] and recs["yes"]["judge_raw"] == "Yes."
    assert [recs[k]["reason"] for k in ("no", "junk", "media", "bad")] == ["judge:no", "judge:unparsed", "judge:media",
                                                                           "format"]



class FakeJudgeModel(FakeTeacher):
    """A judge model that takes metadata batches (as vLLM does): answers from the chains in the batch."""

    def __init__(self):
        super().__init__({})
        self.batches = []

    def judge(self, batch):
        self.batches.append(batch)
        return [f"{pol} {len(reasoning)}" for pol, reasoning in batch["chains"]]


def test_judge_passes_the_chains_in_the_batch_it_builds():
    import pandas as pd

    from msa.cot.judge import Judge

    frame = pd.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", "z"], "path": ["a.mp4", "b.mp4", "c.mp4"],
                          **{k: [0.6, -0.6, 0.0] for k in ("label", "label_T", "label_A", "label_V")}})
    frame.attrs["dataset"] = "sims"
    backend = FakeJudgeModel()
    judge = Judge(backend, frame, modalities=("text", "audio", "video"))
    answers = judge({"c": ("neutral", "flat"), "a": ("positive", "warm words")})
    assert answers == {"c": "neutral 4", "a": "positive 10"}
    (batch,) = backend.batches  # one batch, in the order asked, with the clip's metadata
    assert batch["ids"] == ["c", "a"] and batch["transcripts"] == ["z", "x"] and batch["paths"] == ["c.mp4", "a.mp4"]
    assert batch["chains"] == [("neutral", "flat"), ("positive", "warm words")] and batch["datasets"] == ["sims"] * 2
    assert judge({}) == {} and len(backend.batches) == 1

def test_label_rounded_across_the_neutral_edge_is_dropped():
    # MOSI: -0.504 is negative ([-0.5, 0.5] is neutral) but is written as -0.5, which is neutral.
    samples = {"a": [dc("negative", CUES + " Overall negative.", "-0.6")]}
    r = process_batch({"ids": ["a"], "transcripts": ["t"], "label": [-0.504]}, FakeTeacher(samples), None,
                      dataset="mosi", split="train", modalities=("text", "audio", "video"),
                      filters={"polarity": True, "plausibility": True}, min_chars=20, max_chars=4000)[0]
    assert (r["kept"], r["reason"]) == (False, "label:precision")


# ---- model teachers and judge on the tiny model ---------------------------------------------------

def test_tiny_teacher_is_mostly_dropped(make_cfg, tiny_dir, tmp_path):
    train = load_train()
    cfg = make_cfg("stage=cot", "teacher=tiny", "data=demo", "data.n_clips=24", "logger=none", "cot.limit=4",
                   "cot.max_new_tokens=24", "cot.batch_size=2", "cot.num_samples=2")
    s = train(cfg)["cot"]
    assert s["done"] == 4 and s["samples"] == 8 and s["kept"] <= 1  # random weights: (almost) never a DC answer
    assert sum(s["dropped_by_reason"].values()) == s["dropped"] >= 3
    assert s["message"].startswith(f"kept {s['kept']} of 4 clips")
    assert s["teacher"] == "hf:tiny-test"


def test_tiny_judge_answers_are_unparsable(make_cfg, tiny_dir, cache_dir, tmp_path):
    train = load_train()
    cfg = make_cfg("stage=cot", "teacher=rule", "data=demo", "data.n_clips=24", "logger=none", "cot.limit=3",
                   "cot.filters.judge=true",
                   f"cot.judge={{kind:hf,tiny_size:test,dtype:float32,cache_dir:'{cache_dir}'}}")
    s = train(cfg)["cot"]
    recs = read_jsonl(cot_files(tmp_path / "run")[0]) + read_jsonl(cot_files(tmp_path / "run")[1])
    assert len(recs) == 3
    for r in recs:  # every rule chain reached the judge; the random judge never says exactly yes or no
        assert not r["filters"]["judge"]["skipped"] and r["judge_raw"] is not None
    assert s["judge_unparsed"] + s["dropped_by_reason"].get("judge:no", 0) + s["kept"] == 3


# ---- a real kill mid-run, then a resume ---------------------------------------------------------

def _complete_prefix(path: Path) -> bytes:
    data = path.read_bytes() if path.exists() else b""
    return data[: data.rfind(b"\n") + 1]


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_writes_every_id_once(tiny_dir, cache_dir, tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "train.py", "stage=cot", "teacher=tiny", "data=demo", "data.n_clips=24",
           "cot.batch_size=1", "cot.max_new_tokens=16", "logger=none", f"hydra.run.dir={run_dir}",
           f"paths.cache_dir={cache_dir}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kept_path, rej_path, summary_path = cot_files(run_dir)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and _lines(kept_path) + _lines(rej_path) < 3 and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p: _complete_prefix(p) for p in (kept_path, rej_path)}
    n_before = sum(b.count(b"\n") for b in before.values())
    ids = train_ids(cache_dir)
    assert 3 <= n_before < len(ids) and not summary_path.exists()  # killed mid-run

    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for p, prefix in before.items():
        assert p.read_bytes().startswith(prefix)  # what was written before the kill is unchanged
    recs = read_jsonl(kept_path) + read_jsonl(rej_path)
    assert sorted(r["id"] for r in recs) == sorted(ids)  # every id of the split, exactly once
    s = json.loads(summary_path.read_text())
    assert (s["done"], s["duplicates"], s["this_run"]["resumed_after"]) == (len(ids), 0, n_before)
    assert s["this_run"]["clips"] == len(ids) - n_before


def test_a_failed_first_run_does_not_lock_its_settings(make_cfg, tmp_path):
    train = load_train()
    with pytest.raises(FileNotFoundError, match="teacher.path=/nonexistent/ckpt does not exist"):
        train(make_cfg("stage=cot", "teacher=hf", "teacher.path=/nonexistent/ckpt", "data=demo", "data.n_clips=24",
                       "logger=none"))
    s = train(make_cfg("stage=cot", "teacher=rule", "data=demo", "data.n_clips=24", "logger=none", "cot.limit=2"))
    assert s["cot"]["kept"] == 2


# ---- the text-led rule teacher: its chains on text-conflict clips are dropped and counted --------

# (label, label_T, label_A, label_V) on the SIMS grid; two text-conflict clips (b, c).
TEXT_LED_ROWS = {
    "a": (0.6, 0.4, 0.6, 0.8),     # all agree
    "b": (0.4, -0.2, 0.8, 0.8),    # positive, the words negative: text-conflict
    "c": (-0.6, 0.6, -1.0, -1.0),  # negative, the words positive: text-conflict
    "d": (0.0, -0.4, 0.4, 0.0),    # neutral with negative words: not a conflict (the label is 0)
    "e": (-0.2, 0.0, -0.4, -0.2),  # neutral words: not a conflict
}


def rule_batch(rows: dict) -> dict:
    return {"ids": list(rows), "transcripts": ["It was fine."] * len(rows), "skipped": [],
            **{k: [r[j] for r in rows.values()] for j, k in enumerate(("label", "label_T", "label_A", "label_V"))}}


@pytest.mark.parametrize("text_led", [False, True])
def test_text_led_teacher_chains_on_text_conflict_clips_are_dropped_and_counted(tmp_path, text_led):
    from msa.cot.rule_teacher import RuleTeacher
    from msa.jsonl import JsonlWriter
    from msa.stages.cot import summarize

    teacher = RuleTeacher("demo", ("text", "audio", "video"), text_led=text_led)
    records = process_batch(rule_batch(TEXT_LED_ROWS), teacher, None, dataset="demo", split="train",
                            modalities=("text", "audio", "video"), filters={"polarity": True, "plausibility": True},
                            min_chars=40, max_chars=4000)
    recs = {r["id"]: r for r in records}
    assert [recs[k]["text_conflict"] for k in "abcde"] == [False, True, True, False, False]
    kept, rejected = tmp_path / "cot.jsonl", tmp_path / "rejected.jsonl"
    with JsonlWriter(kept) as kw, JsonlWriter(rejected) as rw:
        kw.write_many(r for r in records if r["kept"])
        rw.write_many(r for r in records if not r["kept"])
    s = summarize(kept, rejected, total=5)
    if not text_led:  # the label-following teacher keeps every chain, conflicts included
        assert (s["kept"], s["dropped"]) == (5, 0)
        assert s["text_conflict"] == {"clips": 2, "kept": 2, "dropped": 0, "dropped_by_reason": {}}
        return
    # b's chain says what the words say (negative, -0.2), c's says positive (0.6); the polarity filter drops both
    assert (recs["b"]["teacher_polarity"], recs["b"]["teacher_score"]) == ("negative", -0.2)
    assert (recs["c"]["teacher_polarity"], recs["c"]["teacher_score"]) == ("positive", 0.6)
    assert [recs[k]["kept"] for k in "abcde"] == [True, False, False, True, True]
    assert (s["kept"], s["dropped"], s["dropped_by_reason"]) == (3, 2, {"polarity:tag": 2})
    assert s["text_conflict"] == {"clips": 2, "kept": 0, "dropped": 2, "dropped_by_reason": {"polarity:tag": 2}}
    assert s["message"].endswith("text-conflict clips dropped: 2 of 2")


@pytest.mark.slow  # generates a 40-clip study set (~25 s on 2 busy cores)
def test_text_led_cot_on_the_study_set_drops_exactly_its_text_conflict_clips(make_cfg, cache_dir):
    from msa.data.labels import read_labels, split, text_conflict_ids

    train = load_train()
    s = train(make_cfg("stage=cot", "data=study", "data.n_clips=40", "teacher.text_led=true", "logger=none"))["cot"]
    rows = split(read_labels(cache_dir / "data" / "study", "study"), "train")
    conflict = text_conflict_ids(rows)
    # 40 clips at 25 %: 10 text-conflict clips, stratified: 3 of the 12 training clips (0.3 * 10 rounded)
    assert (len(rows), len(conflict)) == (12, 3)
    assert (s["kept"], s["dropped"], s["dropped_by_reason"]) == (9, 3, {"polarity:tag": 3})
    assert s["text_conflict"] == {"clips": 3, "kept": 0, "dropped": 3, "dropped_by_reason": {"polarity:tag": 3}}
    rejected = read_jsonl(Path(s["rejected"]))
    assert {r["id"] for r in rejected} == conflict
