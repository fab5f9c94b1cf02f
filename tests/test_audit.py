"""The dataset audit and the split-overlap check: a SIMS-layout fixture with two planted cross-split
duplicates (a byte copy, and a re-encode: other codec and bitrates, the same frames and sound) and a
near miss (same header facts, another clip); the plan of a training run on it refuses, naming both
pairs, unless data.allow_split_overlap=true; the report and its command."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from data_fixtures import SIMS_HEADER, make_clip, reencode, write_labels

ROWS = [  # video, clip, text, label, T, A, V, annotation, mode
    ["video_0001", "0001", "very happy today", "0.8", "0.6", "1.0", "0.8", "Positive", "train"],
    ["video_0001", "0002", "it is fine", "0.0", "0.2", "0.0", "-0.2", "Neutral", "train"],
    ["video_0002", "0001", "this is awful", "-1.0", "-1.0", "-0.8", "-1.0", "Negative", "train"],
    ["video_0003", "0001", "rather good", "0.4", "0.4", "0.2", "0.6", "Positive", "valid"],  # = train 0001/0001, bytes
    ["video_0003", "0002", "not great", "-0.4", "-0.6", "-0.2", "-0.4", "Negative", "valid"],
    ["video_0004", "0001", "wonderful", "1.0", "1.0", "1.0", "1.0", "Positive", "test"],  # = train 0002/0001, re-encoded
    ["video_0004", "0002", "so so", "0.2", "0.0", "0.2", "0.2", "Positive", "test"],
]


@pytest.fixture(scope="module")
def shared_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shared")
    write_labels(root, ROWS, SIMS_HEADER)
    raw = root / "Raw"
    for k, (vid, cid, *_rest) in enumerate(ROWS[:3] + [ROWS[4], ROWS[6]]):
        make_clip(raw / vid / f"{cid}.mp4", 2.0, tone=300.0 + 50 * k, shade=40 * k)  # all 2 s, 64x64, 10 fps
    shutil.copyfile(raw / "video_0001" / "0001.mp4", raw / "video_0003" / "0001.mp4")
    reencode(raw / "video_0002" / "0001.mp4", raw / "video_0004" / "0001.mp4")
    return root


def refs_and_headers(root: Path):
    from msa.data.audit import ClipRef
    from msa.data.headers import read_many
    from msa.data.labels import read_labels

    table = read_labels(root, "sims")
    clips = [ClipRef(m, i, p) for m, i, p in zip(table["mode"], table["id"], table["path"])]
    return clips, read_many(table["path"])


def test_finds_the_byte_copy_and_the_reencode_and_nothing_else(shared_set, tmp_path):
    from msa.data.audit import find_overlaps

    clips, headers = refs_and_headers(shared_set)
    a, b = Path(clips[0].path), Path(clips[5].path)
    assert a.read_bytes() != Path(clips[2].path).read_bytes() and b.stat().st_size != Path(clips[2].path).stat().st_size
    found = find_overlaps(clips, headers, cache_dir=tmp_path / "cache", root=shared_set)
    assert [(o.a.split, o.a.id, o.b.split, o.b.id, o.how) for o in found] == [
        ("train", "video_0001$_$0001", "valid", "video_0003$_$0001", "same bytes"),
        ("train", "video_0002$_$0001", "test", "video_0004$_$0001", "same content"),
    ]


def test_the_same_file_in_two_splits_is_a_pair(shared_set):
    from msa.data.audit import ClipRef, find_overlaps

    clips, headers = refs_and_headers(shared_set)
    twice = [clips[1], ClipRef("test", "again", clips[1].path)]
    assert [o.how for o in find_overlaps(twice, headers)] == ["same file"]


def test_fingerprints_are_reused_from_the_cache(shared_set, tmp_path, monkeypatch):
    import msa.data.audit as audit

    clips, headers = refs_and_headers(shared_set)
    first = audit.find_overlaps(clips, headers, cache_dir=tmp_path, root=shared_set)
    assert list((tmp_path / "fingerprints").glob("*.json"))

    def no_decoding(path):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(audit, "fingerprint", no_decoding)
    assert audit.find_overlaps(clips, headers, cache_dir=tmp_path, root=shared_set) == first


def test_training_run_refuses_naming_the_pairs(shared_set, make_cfg):
    from msa.config import ConfigError
    from train import train

    cfg = make_cfg("stage=sft", "sft.answer=score", "data=sims", f"data.root={shared_set}", "data.num_workers=0",
                   "logger=none")
    with pytest.raises(ConfigError) as err:
        train(cfg)
    msg = str(err.value)
    assert msg.startswith("data.allow_split_overlap: sims") and "2 pairs" in msg
    for clip in ("train video_0001$_$0001", "valid video_0003$_$0001", "train video_0002$_$0001",
                 "test video_0004$_$0001", str(shared_set / "Raw" / "video_0004" / "0001.mp4")):
        assert clip in msg, clip
    assert "video_0004$_$0002" not in msg  # the near miss: same header facts, another clip


def test_allow_split_overlap_lets_the_plan_through_and_says_so(shared_set, make_cfg):
    from msa.plan import build_plan

    plan = build_plan(make_cfg("stage=sft", "sft.answer=score", "data=sims", f"data.root={shared_set}",
                               "data.allow_split_overlap=true"))
    assert plan.refusal is None and "2 pairs of clips shared" in plan.text


def test_runs_that_train_nothing_are_not_checked(shared_set, make_cfg):
    from msa.plan import build_plan

    assert build_plan(make_cfg("stage=eval", "data=sims", f"data.root={shared_set}")).refusal is None


def test_allow_split_overlap_must_be_a_bool(make_cfg):
    from msa.config import ConfigError, validate

    with pytest.raises(ConfigError, match="^data.allow_split_overlap: must be true or false"):
        validate(make_cfg("data.allow_split_overlap=maybe"))


def test_audit_command_prints_and_writes_the_report(shared_set, tmp_path, capsys, cache_dir):
    from msa.data.audit import main

    out = tmp_path / "audit"
    assert main(["data=sims", f"data.root={shared_set}", f"paths.cache_dir={cache_dir}", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    text = (out / "audit.md").read_text()
    assert text in printed and f"written: {out / 'audit.md'}" in printed
    # clips per split and class, worked out from ROWS (SIMS: neutral is (-0.1, 0.1])
    assert "| train | 3 | 1 | 1 | 1 |" in text and "| valid | 2 | 1 | 0 | 1 |" in text
    assert "| test | 2 | 0 | 0 | 2 |" in text and "| all | 7 | 2 | 1 | 4 |" in text
    assert "| train | video_0001$_$0001 |" in text and "| same bytes |" in text and "| same content |" in text
    # label_A in 0.2-wide bins: train has -0.8 (bin 2), 0.0 (bin 6) and 1.0 (the last bin, closed)
    assert "| train | 0 | 1 | 0 | 0 | 0 | 1 | 0 | 0 | 0 | 1 |" in text
    assert "| train | 2.0 / 2.0 / 2.0 / 2.0 | 64x64 | 10.00 / 10.00 / 10.00 / 10.00 | 16000 |" in text
    # "rather good" (11 characters), "not great" (9): median 10, p95 9 + 0.95 * 2 = 10.9
    assert "| valid | 2 / 2 / 2 / 2 | 9 / 10 / 11 / 11 |" in text


def test_audit_command_names_a_missing_root(tmp_path, capsys):
    from msa.data.audit import main

    assert main(["data=sims", f"data.root={tmp_path / 'nowhere'}"]) == 2
    assert capsys.readouterr().err.startswith("error: data.root:")
