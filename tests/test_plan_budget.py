"""The run plan checks every dataset a run reads and prints what its data will cost, before any model
loads (msa.plan: label files, split sizes, clip headers, the budget table, the store against the disk);
media budgets are a config group (media=qwen|compact|small); data.max_prompt_tokens gives long clips
fewer frames instead of an out-of-memory crash mid-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_fixtures import SIMS_HEADER, make_clip, processor, write_labels  # noqa: F401  (fixture)
from real_clips import write_clip

MOSEI_HEADER = ["video_id", "clip_id", "text", "label", "annotation", "mode", "label_T", "label_A", "label_V"]
FAST = ["model=tiny", "eval.max_new_tokens=2", "logger=none"]


def mosei_set(root: Path, rows: list[tuple[str, str, str, str]], clips: dict[str, dict] | None = None) -> Path:
    """A MOSEI-layout set: ``rows`` of (video_id, clip_id, label, mode); ``clips`` maps ``vid/cid`` to
    real_clips.write_clip arguments (clips not named get no file)."""
    out = []
    for k, (vid, cid, label, mode) in enumerate(rows):
        out.append([vid, cid, f"clip {k} says something", label, "Positive", mode, "", "", ""])
        if clips and f"{vid}/{cid}" in clips:
            write_clip(root / "Raw" / vid / f"{cid}.mp4", **clips[f"{vid}/{cid}"])
    write_labels(root, out, MOSEI_HEADER)
    return root


@pytest.fixture(scope="module")
def mosei(tmp_path_factory) -> Path:
    """One test clip: 2 s of 640x360 at 29.97 fps with 44.1 kHz stereo (a MOSEI-like upload)."""
    root = tmp_path_factory.mktemp("mmsa") / "MOSEI"
    return mosei_set(root, [("-a1", "0", "1.0", "train"), ("_b2", "3", "-0.5", "test")],
                     {"_b2/3": dict(seconds=2.0)})


@pytest.fixture
def no_model(monkeypatch):
    """Make loading a model fail loudly: whatever a test expects must happen before it."""
    import msa.stages.common

    def load(*args, **kwargs):
        raise RuntimeError("model load reached")

    monkeypatch.setattr(msa.stages.common, "load_stage_policy", load)


# By hand, for the fixture's clip under media=qwen: 60 frames at 29.97 fps -> 4 frames (2 s x 2 fps), each
# 360x640 -> 364x644 (13 x 23 merged patches): 2 steps x 299 = 598 video tokens. Audio: 88200 samples at
# 44.1 kHz decode as 87 AAC frames (89088), 32322 at 16 kHz, 203 mel frames -> 102 -> 51 tokens. Plus
# <|vision_bos|>, <|audio_bos|>, <|audio_eos|>, <|vision_eos|>: 653 media tokens.
MEDIA_TOKENS = 598 + 51 + 4
# The store: 4 frames x 364 x 644 x 3 bytes + 203 mel frames x 128 x 4 bytes = 2,916,928 B.
# uint8 frames + 256 bytes of entry layout; float32 mels + a 812-byte mask padded to 832 + 256 of layout
STORE = 4 * 364 * 644 * 3 + 256 + 203 * 128 * 4 + 832 + 256


def _table(text: str) -> dict[str, list[str]]:
    lines = text.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("budget"))
    header = lines[at + 1]
    cols = [c for c in header.strip().split("  ") if c]
    out = {}
    for ln in lines[at + 2:]:
        if ln.strip().startswith("store"):
            break
        cells = [c.strip() for c in ln.strip().split("  ") if c.strip()]
        out[f"{cells[0]}/{cells[1]}"] = dict(zip(cols, cells))
    return out


def test_eval_prints_the_budget_table_before_the_model_loads(make_cfg, mosei, no_model, capsys):
    from msa.data.budget import text_tokens
    from train import train

    cfg = make_cfg("stage=eval", "data=mosei", f"data.root={mosei}", *FAST)
    with pytest.raises(RuntimeError, match="model load reached"):
        train(cfg)
    out = capsys.readouterr().out
    assert out.index("plan") < out.index("budget")
    row = _table(out)["mosei/test"]
    tokens = MEDIA_TOKENS + text_tokens({**cfg.data, "name": "mosei"}, "clip 1 says something")
    assert row["clips"] == "1" and row["frames WxH"] == "640x360" and row["seconds min/med/max"] == "2.0/2.0/2.0"
    assert row["prompt tokens mean/p95/max"] == f"{tokens}/{tokens}/{tokens}"
    assert row["batch"] == "8" and row["padded tokens/batch"] == f"{tokens} (0% pad)"
    assert row["store"] == "2.9 MB" and row["capped"] == "0" and row["skipped"] == "0"
    assert "frames 2 fps, 100352..602112 pixels each" in out
    assert "mosei/train" not in _table(out)  # eval reads the test split only (the train clip has no file)
    assert "budget" in (Path(cfg.paths.output_dir) / "plan.txt").read_text()


def test_the_store_size_by_hand(make_cfg, mosei):
    from msa.plan import check_data, store_total

    for media, store in (([], STORE),
                         # compact: 360x640 shrinks by sqrt(230400 / 200704) to 336 x 588
                         (["media=compact"], 4 * 336 * 588 * 3 + 256 + 203 * 128 * 4 + 832 + 256),
                         # small: by sqrt(230400 / 100352) to 224 x 420
                         (["media=small"], 4 * 224 * 420 * 3 + 256 + 203 * 128 * 4 + 832 + 256)):
        cfg = make_cfg("stage=eval", "data=mosei", f"data.root={mosei}", *media)
        assert sum(store_total(check_data(cfg)).values()) == store


def test_a_store_over_cache_max_gb_is_refused_after_the_table(make_cfg, mosei, no_model, capsys):
    from msa.config import ConfigError
    from train import train

    cfg = make_cfg("stage=eval", "data=mosei", f"data.root={mosei}", "paths.cache_max_gb=0.001", *FAST)
    with pytest.raises(ConfigError, match=r"^paths.cache_max_gb: the media store of this run needs 2.9 MB for 1 "
                                          r"clips, more than paths.cache_max_gb=0.001; .*media=compact \(2.5 MB\), "
                                          r"media=small \(1.2 MB\)"):
        train(cfg)
    assert "paths.cache_max_gb 0.001" in capsys.readouterr().out  # the table was printed first
    cfg = make_cfg("stage=eval", "data=mosei", f"data.root={mosei}", "paths.cache_max_gb=0.003", *FAST)
    with pytest.raises(RuntimeError, match="model load reached"):
        train(cfg)


def test_a_store_larger_than_the_free_disk_is_refused(make_cfg, mosei, monkeypatch):
    import msa.plan
    from msa.config import ConfigError

    monkeypatch.setattr(msa.plan, "_free_bytes", lambda path: 1_000_000)
    cfg = make_cfg("stage=eval", "data=mosei", f"data.root={mosei}", f"data.cache_dir={mosei.parent}/store")
    plan = msa.plan.build_plan(cfg)
    with pytest.raises(ConfigError, match=r"^data.cache_dir: the media store of this run needs 2.9 MB .* has "
                                          r"1.0 MB free; point paths.cache_dir"):
        plan.refuse()


# ---------------------------------------------------------------- checks that used to come too late

def test_a_root_that_is_not_a_dataset_fails_before_the_model_loads(make_cfg, tmp_path, no_model):
    from msa.config import ConfigError
    from train import train

    (tmp_path / "not_a_dataset").mkdir()
    cfg = make_cfg("stage=eval", "data=mosei", f"data.root={tmp_path / 'not_a_dataset'}", *FAST)
    with pytest.raises(ConfigError, match=r"^data.root: .*not_a_dataset is not a mosei dataset .*no label file"):
        train(cfg)


def test_a_wrong_second_eval_root_fails_before_the_first_is_scored(make_cfg, mosei, tmp_path, no_model):
    from msa.config import ConfigError
    from train import train

    (tmp_path / "MOSI").mkdir()  # exists, but holds nothing
    cfg = make_cfg("stage=eval", "data=mosei", f"data.root={mosei}", "eval.datasets=[mosei,mosi]",
                   f"eval.roots.mosi={tmp_path / 'MOSI'}", *FAST)
    with pytest.raises(ConfigError, match=r"^eval.roots.mosi: .*MOSI is not a mosi dataset"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "eval").exists()


def test_an_empty_test_split_fails_before_sft_trains(make_cfg, tmp_path, no_model):
    from msa.config import ConfigError
    from train import train

    root = mosei_set(tmp_path / "MOSEI", [("a", "1", "1.0", "train"), ("b", "2", "-1.0", "valid")],
                     {"a/1": dict(seconds=1.0, width=64, height=64), "b/2": dict(seconds=1.0, width=64, height=64)})
    cfg = make_cfg("stage=sft", "sft.answer=score", "data=mosei", f"data.root={root}", *FAST)
    with pytest.raises(ConfigError, match=r"^eval.split: mosei has no test clips in .*label.csv \(train 1, valid 1, "
                                          r"test 0\), and sft reads that split"):
        train(cfg)


def test_a_missing_test_clip_fails_before_sft_trains_or_is_counted_with_skip(make_cfg, tmp_path, no_model, capsys):
    from msa.config import ConfigError
    from train import train

    small = dict(width=64, height=64)  # three clips, not one clip in three splits (the plan refuses those)
    root = mosei_set(tmp_path / "MOSEI", [("a", "1", "1.0", "train"), ("b", "2", "-1.0", "valid"),
                                          ("c", "3", "0.5", "test"), ("d", "4", "0.5", "test")],
                     {"a/1": dict(small, seconds=1.0), "b/2": dict(small, seconds=1.2), "c/3": dict(small, seconds=1.4)})
    cfg = make_cfg("stage=sft", "sft.answer=score", "data=mosei", f"data.root={root}", *FAST)
    with pytest.raises(ConfigError, match=r"^data.root: mosei test: 1 of 2 clips cannot be used: missing: mosei: "
                                          r"clip d\$_\$4 \(.*4.mp4\): file not found .*data.on_error=skip"):
        train(cfg)
    cfg = make_cfg("stage=sft", "sft.answer=score", "data=mosei", f"data.root={root}", "data.on_error=skip", *FAST)
    with pytest.raises(RuntimeError, match="model load reached"):
        train(cfg)
    row = _table(capsys.readouterr().out)["mosei/test"]
    assert (row["clips"], row["skipped"], row["read by"]) == ("2", "1", "sft")


def test_an_existing_init_from_that_is_no_export_fails_before_the_model_loads(make_cfg, mosei, tmp_path, no_model):
    from msa.config import ConfigError
    from train import train

    (tmp_path / "not_an_export").mkdir()
    cfg = make_cfg("stage=eval", "data=mosei", f"data.root={mosei}", f"init_from={tmp_path / 'not_an_export'}", *FAST)
    with pytest.raises(ConfigError, match=r"^init_from: .*not_an_export holds neither a LoRA adapter"):
        train(cfg)


# ---------------------------------------------------------------- media budgets and the prompt cap

def test_media_presets_set_both_bounds_and_the_synthetic_sets_keep_theirs(make_cfg):
    def bounds(*overrides):
        d = make_cfg(*overrides).data
        return d.video_min_pixels, d.video_max_pixels

    assert bounds("data=mosi", "data.root=/d") == (128 * 28 * 28, 768 * 28 * 28)
    assert bounds("data=mosi", "data.root=/d", "media=compact") == (128 * 28 * 28, 256 * 28 * 28)
    assert bounds("data=sims", "data.root=/d", "media=small") == (64 * 28 * 28, 128 * 28 * 28)
    for data in ("demo", "demo_mosi", "hard", "hard_mosi"):  # the demo's figures, as before the group
        assert bounds(f"data={data}") == (3136, 8192)
        assert bounds(f"data={data}", "experiment=paper") == (3136, 8192)
    assert bounds("data=demo", "media=compact") == (128 * 28 * 28, 256 * 28 * 28)  # the command line wins


def test_budget_settings_are_checked_with_the_config(make_cfg):
    from msa.config import ConfigError, validate

    for override, key in (("data.max_prompt_tokens=0", "data.max_prompt_tokens"),
                          ("data.video_min_pixels=900000", "data.video_min_pixels"),
                          ("paths.cache_max_gb=0", "paths.cache_max_gb")):
        with pytest.raises(ConfigError, match=f"^{key}: "):
            validate(make_cfg("stage=eval", override))


def test_max_prompt_tokens_gives_long_clips_fewer_frames_at_their_real_rate(make_cfg, tmp_path, processor):
    """5 s at 29.97 fps, 640x360: 10 frames, 5 steps of 299 tokens. A limit that holds 6 frames but not 8
    caps the clip at 6 (the plan counts it), and its grid spans 2 / (6 / 150 * 29.97) s, not 1 s."""
    from msa.data import budget
    from msa.data.datamodule import build_datamodule
    from msa.data.headers import read_headers
    from msa.plan import check_data

    root = mosei_set(tmp_path / "MOSEI", [("a", "1", "1.0", "test"), ("b", "2", "0.5", "test")],
                     {"a/1": dict(seconds=5.0), "b/2": dict(seconds=1.0)})
    long = read_headers(root / "Raw" / "a" / "1.mp4")
    cfg = make_cfg("stage=eval", "data=mosei", f"data.root={root}")
    dcfg = {**cfg.data, "name": "mosei"}
    six = budget.prompt_tokens(long, dcfg, transcript="clip 0 says something", max_frames=6)
    eight = budget.prompt_tokens(long, dcfg, transcript="clip 0 says something", max_frames=8)
    assert eight - six == 299  # one more step of 13 x 23
    cfg = make_cfg("stage=eval", "data=mosei", f"data.root={root}", f"data.max_prompt_tokens={six}")
    (b,) = check_data(cfg)
    assert b.capped == 1 and max(b.tokens) == six
    dm = build_datamodule(cfg.data, processor=processor, cache_dir=False)
    dm.setup()
    assert dm.datasets["test"].max_frames == {"a$_$1": 6}
    video = dm.datasets["test"][0]["video"]
    assert video["video_grid_thw"][0, 0].item() == 3
    assert video["video_second_per_grid"] == pytest.approx(2 / (6 / 150 * 30000 / 1001))


def test_the_budget_is_recorded_in_the_metrics(make_cfg, mosei, no_model):
    from train import train

    cfg = make_cfg("stage=eval", "data=mosei", f"data.root={mosei}", *FAST)
    with pytest.raises(RuntimeError, match="model load reached"):
        train(cfg)
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert saved["budget"]["clips"] == 1 and saved["budget"]["capped_clips"] == 0
    assert saved["budget"]["store_gb"] == round(STORE / 1e9, 3)


@pytest.mark.slow
def test_the_refusal_on_the_command_line_is_one_line(mosei, cache_dir, tmp_path):
    """``python train.py stage=eval data=mosei data.root=... paths.cache_max_gb=0.001``: the plan and the budget
    table, then ``error: paths.cache_max_gb: ...``, and no model loaded."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, MSA_CACHE=str(cache_dir), HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "train.py", "stage=eval", "data=mosei", f"data.root={mosei}", *FAST,
                        "paths.cache_max_gb=0.001", f"hydra.run.dir={tmp_path}"], cwd=Path(__file__).parents[1],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error: paths.cache_max_gb: the media store of this run needs")
    assert "budget  frames" in r.stdout and "mosei    test" in r.stdout
    assert not (tmp_path / "eval").exists()
