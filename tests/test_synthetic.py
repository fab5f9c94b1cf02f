"""The synthetic demo set: cue <-> label mappings, the label plan, the files on disk, ensure()."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from msa.data import synthetic as syn

GRID = [round(k * 0.2, 1) + 0.0 for k in range(-5, 6)]  # -1.0, -0.8, ..., 1.0
SMALL = dict(n_clips=3, seconds=0.5, size=32, fps=4)  # quickest valid set, for the ensure() tests


def _read(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "label.csv", dtype={"video_id": str, "clip_id": str, "text": str})


def _decode(path: Path) -> dict:
    """Frames [F, H, W, 3] (optionally resized), mono float audio [N] and the stream facts."""
    with av.open(str(path)) as container:
        v, a = container.streams.video[0], container.streams.audio[0]
        facts = dict(video_codec=v.codec_context.name, audio_codec=a.codec_context.name,
                     sample_rate=a.codec_context.sample_rate, channels=a.codec_context.channels,
                     video_seconds=float(v.duration * v.time_base))
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=facts["sample_rate"])
        audio = np.concatenate([g.to_ndarray().ravel() for f in container.decode(audio=0)
                                for g in resampler.resample(f)])
    return dict(facts, frames=frames, audio=audio)


def _frames_56(path: Path) -> np.ndarray:
    """Frames as the model sees them: resized to 56x56."""
    with av.open(str(path)) as container:
        return np.stack([f.reformat(width=56, height=56).to_ndarray(format="rgb24")
                         for f in container.decode(video=0)]).astype(float)  # [F, 56, 56, 3]


def _majority(signs: np.ndarray) -> np.ndarray:
    """The sign that at least two of the three cues share, per row of ``signs`` [N, 3]."""
    return np.where((signs == signs[:, [1, 2, 0]]).any(axis=1),
                    np.where(signs[:, 0] == signs[:, 1], signs[:, 0], signs[:, 2]), 99)


def _clip_path(root: Path, row) -> Path:
    return root / "Raw" / row.video_id / f"{row.clip_id}.mp4"


@pytest.fixture(scope="module")
def sims_set(tmp_path_factory) -> Path:
    return syn.generate(tmp_path_factory.mktemp("sims") / "demo", n_clips=12, seed=3)


@pytest.fixture(scope="module")
def mosi_set(tmp_path_factory) -> Path:
    return syn.generate(tmp_path_factory.mktemp("mosi") / "demo_mosi", flavour="mosi", n_clips=12, seed=3)


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------

def test_snap_by_hand():
    assert syn.snap(0.29) == 0.2  # 0.29 / 0.2 = 1.45 -> 1 step
    assert syn.snap(0.3) == 0.4  # 0.3 / 0.2 = 1.4999999999999998 in floats; a tie, away from zero -> 2 steps
    assert syn.snap(-0.3) == -0.4
    assert syn.snap(0.05) == 0.0  # 0.25 steps -> 0
    assert math.copysign(1, syn.snap(-0.05)) == 1  # 0.0, not -0.0 (which would print "-0.0" in label.csv)
    assert syn.snap(1.7, 0.6) == 1.8  # 1.7 / 0.6 = 2.83 -> 3 steps of 0.6
    with pytest.raises(ValueError, match="step"):
        syn.snap(0.3, 0.0)


def test_combine_by_hand():
    assert syn.WEIGHTS == (0.4, 0.3, 0.3) and math.isclose(sum(syn.WEIGHTS), 1.0)
    assert syn.combine(0.4, -0.2, 0.0) == 0.2  # 0.16 - 0.06 = 0.10 = half a step: tie, away from zero
    assert syn.combine(0.2, 0.0, 0.0) == 0.0  # 0.08 = 0.4 steps -> 0: a lone weak cue stays neutral
    assert syn.combine(-0.6, 0.8, 0.8) == 0.2  # -0.24 + 0.24 + 0.24 = 0.24 = 1.2 steps -> 0.2
    assert syn.combine(1.8, -3.0, -3.0, step=0.6) == -1.2  # 0.72 - 0.9 - 0.9 = -1.08 = -1.8 steps -> -2 * 0.6


def test_combine_on_the_mosi_scale_is_the_sims_label_times_three():
    for t in GRID:
        for a in GRID:
            for v in GRID:
                sims = syn.combine(t, a, v)
                assert sims in GRID
                assert math.isclose(syn.combine(3 * t, 3 * a, 3 * v, step=0.6), 3 * sims, abs_tol=1e-9)


def test_voice_mapping_by_hand_and_round_trip():
    v = syn.voice_params(-0.4)
    assert math.isclose(v.f0_hz, 200 * 2 ** -0.2)  # 174.1 Hz: lower than neutral 200 Hz
    assert math.isclose(v.glide, -0.32)  # 0.8 * -0.4 octaves: falling
    assert math.isclose(v.tilt, 1.78)  # 1.5 + 0.28: darker timbre
    assert math.isclose(v.loudness, 0.4)  # 0.2 + 0.5 * 0.4
    assert math.isclose(v.vibrato, 0.022)  # 0.01 + 0.03 * 0.4
    assert syn.voice_params(0.0).glide == 0.0
    for x in GRID:
        assert syn.voice_label(syn.voice_params(x)) == x
    assert [syn.voice_params(x).f0_hz for x in GRID] == sorted(syn.voice_params(x).f0_hz for x in GRID)
    with pytest.raises(ValueError, match="voice_params"):
        syn.voice_params(1.2)


def test_face_mapping_by_hand_and_round_trip():
    r, g, b = syn.face_params(0.2).background
    # saturation 0.2 ** 0.6 = 0.3807; R = 0.5 + 0.3807 * 0.45 = 0.6713, B = 0.5 - 0.3807 * 0.35 = 0.3668
    assert math.isclose(r, 0.6713, abs_tol=1e-4) and math.isclose(b, 0.3668, abs_tol=1e-4)
    assert syn.face_params(0.0).background == (0.5, 0.5, 0.5)
    for x in GRID:
        face = syn.face_params(x)
        assert syn.face_label(face) == x
        r, _, b = face.background
        assert (r > b) == (x > 0) and (b > r) == (x < 0)
    with pytest.raises(ValueError, match="face_params"):
        syn.face_params(-1.01)


@pytest.mark.parametrize("flavour", ["sims", "mosi"])
def test_transcripts_carry_their_label_and_vary(flavour):
    rng = np.random.default_rng(0)
    for x in GRID:
        texts = [syn.transcript(x, rng, flavour) for _ in range(40)]
        assert all(syn.text_label(t) == x for t in texts), texts
        assert len(set(texts)) >= 20
        assert all(t.isascii() and t[0].isupper() for t in texts)


def test_transcript_templates_differ_between_flavours():
    rng = np.random.default_rng(1)
    sims = {syn.transcript(0.6, rng, "sims") for _ in range(200)}
    mosi = {syn.transcript(0.6, rng, "mosi") for _ in range(200)}
    assert not sims & mosi
    with pytest.raises(ValueError, match="no sentiment phrase"):
        syn.text_label("The weather report is on at nine.")


def test_plan_is_balanced_and_no_single_modality_suffices():
    clips = syn.plan(900, seed=5)
    label = np.sign([c.units for c in clips])
    cues = np.sign([[c.units_T, c.units_A, c.units_V] for c in clips])  # [N, 3]
    assert [int((label == s).sum()) for s in (-1, 0, 1)] == [300, 300, 300]
    # round(0.25 * 900) = 225 clips have one dissenting cue, 75 each for T, A and V, so each modality
    # alone gets the sign right on 900 - 75 = 825 clips = 0.917 < 0.95.
    for m in range(3):
        assert (cues[:, m] == label).mean() == pytest.approx(825 / 900)
    assert (_majority(cues) == label).mean() == 1.0  # two of three cues agree in every clip
    for c in clips:
        assert round(syn.combine(c.units_T * 0.2, c.units_A * 0.2, c.units_V * 0.2) / 0.2) == c.units
    modes = np.array([c.mode for c in clips])
    assert [int((modes == m).sum()) for m in syn.MODES] == [630, 135, 135]  # 0.7 / 0.15 / 0.15 of 900
    for s in (-1, 0, 1):  # stratified: 45 of each class in valid and in test
        assert int(((modes == "test") & (label == s)).sum()) in (44, 45, 46)


def test_study_plan_has_its_text_conflict_share_in_every_split():
    from msa.data.labels import is_text_conflict

    demo, study = syn.plan(700, seed=0, splits=(0.3, 0.1, 0.6)), syn.plan(700, seed=0, splits=(0.3, 0.1, 0.6),
                                                                          text_conflict=0.25)
    conflict = [is_text_conflict(c.units, c.units_T) for c in study]
    # round(0.25 * 700) = 175 text-conflict clips, stratified: 0.6 * 175 = 105 in test, 70 in train + valid
    assert sum(conflict) == 175
    assert sum(k for k, c in zip(conflict, study) if c.mode == "test") == 105
    assert [sum(c.mode == m for c in study) for m in syn.MODES] == [210, 70, 420]
    for c, k in zip(study, conflict):
        if k:  # the words say the other thing: the transcript's phrase reads with the other sign
            assert np.sign(syn.text_label(c.text)) == -np.sign(c.units) != 0
        if c.units:  # two of three cues still agree with a polar label, as on the demo set
            assert np.sign(np.sign([c.units_T, c.units_A, c.units_V]).sum()) == np.sign(c.units)
    # the demo's own text-conflict clips stay; the others are drawn as without text_conflict
    was = [is_text_conflict(c.units, c.units_T) for c in demo]
    assert all(k for k, w in zip(conflict, was) if w)
    same = [(c.text, c.units, c.units_T, c.units_A, c.units_V) == (d.text, d.units, d.units_T, d.units_A, d.units_V)
            for c, d, k, w in zip(study, demo, conflict, was) if not (k and not w)]
    assert all(same) and len(same) == 700 - (175 - sum(was))
    assert syn.plan(120, seed=3, text_conflict=None) == syn.plan(120, seed=3)


def test_study_text_conflict_bounds_are_named():
    with pytest.raises(ValueError, match=r"text_conflict=0.01 asks for 7 text-conflict clips, but disagree already gives"):
        syn.plan(700, seed=0, text_conflict=0.01)  # disagree=0.25 alone gives more than 7
    # 30 clips: 10 per class, so 20 polar clips can take a dissenting text, and 0.7 * 30 = 21 cannot
    with pytest.raises(ValueError, match=r"text_conflict=0.7 asks for 21 text-conflict clips of 30; at most 20 polar"):
        syn.plan(30, seed=0, disagree=0.0, text_conflict=0.7)
    assert sum(c.units * c.units_T < 0 for c in syn.plan(30, seed=0, disagree=0.0, text_conflict=0.6)) == 18
    with pytest.raises(ValueError, match="text_conflict must be in"):
        syn.ensure("unused", text_conflict=0.7)


def test_bad_parameters_are_named(tmp_path):
    for kwargs, word in [(dict(flavour="mosei"), "flavour"), (dict(size=63), "size"),
                         (dict(splits=(0.5, 0.5, 0.5)), "splits"), (dict(n_clips=0), "n_clips"),
                         (dict(sample_rate=16001), "sample_rate"), (dict(seconds=-1.0), "seconds")]:
        with pytest.raises(ValueError, match=word):
            syn.generate(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------
# The files on disk
# ---------------------------------------------------------------------------------------------

def test_layout_columns_and_ids(sims_set):
    df = _read(sims_set)
    assert tuple(df.columns) == syn.COLUMNS
    assert list(df.video_id) == ["video_0001"] * 10 + ["video_0002"] * 2
    assert list(df.clip_id) == [f"{k:04d}" for k in range(1, 11)] + ["0001", "0002"]  # zeros kept
    on_disk = sorted(p.relative_to(sims_set / "Raw").as_posix() for p in (sims_set / "Raw").rglob("*.mp4"))
    assert on_disk == sorted(f"{r.video_id}/{r.clip_id}.mp4" for r in df.itertuples())
    assert sorted(p.name for p in sims_set.iterdir()) == ["Raw", "label.csv", "synthetic.json"]
    assert not any(p.name.startswith(".demo") for p in sims_set.parent.iterdir())  # no temp folders left


def test_split_counts(sims_set):
    # 12 clips: 8.4 / 1.8 / 1.8 -> floors 8 / 1 / 1, the two left over go to the largest remainders
    assert _read(sims_set)["mode"].value_counts().to_dict() == {"train": 8, "valid": 2, "test": 2}


@pytest.mark.parametrize("which, step", [("sims_set", 0.2), ("mosi_set", 0.6)])
def test_labels_on_grid_in_range_and_annotated(which, step, request):
    root = request.getfixturevalue(which)
    df = _read(root)
    for column in ("label", "label_T", "label_A", "label_V"):
        units = df[column] / step
        assert np.allclose(units, units.round(), atol=1e-9), column
        assert units.abs().max() <= 5 + 1e-9
    expected = np.where(df.label > 0, "Positive", np.where(df.label < 0, "Negative", "Neutral"))
    assert list(df.annotation) == list(expected)
    for r in df.itertuples():
        assert math.isclose(syn.combine(r.label_T, r.label_A, r.label_V, step=step), r.label, abs_tol=1e-9)
    manifest = json.loads((root / "synthetic.json").read_text())
    assert manifest["dataset"] == {0.2: "demo", 0.6: "demo_mosi"}[step] and manifest["version"] == syn.VERSION


@pytest.mark.parametrize("which", ["sims_set", "mosi_set"])
def test_every_clip_decodes_to_frames_and_audio(which, request):
    root = request.getfixturevalue(which)
    for r in _read(root).itertuples():
        clip = _decode(_clip_path(root, r))
        assert (clip["video_codec"], clip["audio_codec"]) == ("h264", "aac")
        assert clip["frames"].shape == (20, 64, 64, 3)  # 2 s at 10 fps
        assert abs(clip["video_seconds"] - 2.0) <= 0.2
        assert (clip["sample_rate"], clip["channels"]) == (16000, 1)
        assert abs(len(clip["audio"]) / 16000 - 2.0) <= 0.2  # AAC pads to whole 1024-sample frames
        assert 0.03 < np.sqrt(np.mean(clip["audio"] ** 2)) < 0.5  # a real signal, not silence


def test_visual_cue_is_visible_at_56px(sims_set):
    for r in _read(sims_set).itertuples():
        frames = _frames_56(_clip_path(sims_set, r))[::5]  # every 5th frame: 2 fps, as the model samples
        corners = np.concatenate([frames[:, :5, :5], frames[:, :5, -5:]], axis=1)  # background only
        red_minus_blue = corners[..., 0].mean() - corners[..., 2].mean()
        if r.label_V > 0:
            assert red_minus_blue > 40, r  # weakest cue, 0.2: (0.6713 - 0.3668) * 255 = 78 before jitter
        elif r.label_V < 0:
            assert red_minus_blue < -40, r
        else:
            assert abs(red_minus_blue) < 10, r


def test_mouth_curves_with_the_visual_label():
    speaker = syn.Speaker(skin=(0.9, 0.75, 0.6), pitch=1.0, scale=1.0)
    take = syn.Take(dx=0, dy=0, brightness=1.0, phase=0.0, syllable_rate=3.0, syllable_phase=0.0)
    rows = {}
    for x in (1.0, -1.0):
        frame = syn.render_frames(syn.face_params(x), speaker, take, "sims", 1, 56, 10)[0].astype(float)
        lips = (frame[..., 0] > 80) & (frame[..., 1] < 40)  # the dark red mouth
        ys, xs = np.nonzero(lips)
        middle = np.abs(xs - 28) <= 2
        corners = np.abs(xs - 28) >= 6
        rows[x] = ys[middle].mean() - ys[corners].mean()  # > 0: middle below the corners (image y points down)
    assert rows[1.0] > 2 and rows[-1.0] < -2  # smile vs frown, by a few pixels at 56x56


def test_audio_cue_pitch_glides_with_the_label(sims_set):
    def centroid(x):  # spectral centroid of the voiced band, which follows the pitch
        power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
        freq = np.fft.rfftfreq(len(x), 1 / 16000)
        band = (freq > 50) & (freq < 1200)
        return (power[band] * freq[band]).sum() / power[band].sum()

    for r in _read(sims_set).itertuples():
        audio = _decode(_clip_path(sims_set, r))["audio"][:32000]
        ratio = centroid(audio[-8000:]) / centroid(audio[:8000])  # last half second vs first
        # A glide of 0.8 * label octaves over 2 s moves the pitch by 2 ** (0.6 * label) between the
        # halves' centres (1.5 s apart): x1.09 for 0.2; the measured centroid moves a bit less.
        if r.label_A > 0:
            assert ratio > 1.03, r
        elif r.label_A < 0:
            assert ratio < 0.97, r
        else:
            assert abs(ratio - 1) < 0.03, r


def test_same_seed_same_set(tmp_path):
    kwargs = dict(n_clips=4, seconds=1.0, seed=7)
    a, b = syn.generate(tmp_path / "a", **kwargs), syn.generate(tmp_path / "b", **kwargs)
    assert (a / "label.csv").read_bytes() == (b / "label.csv").read_bytes()
    for r in _read(a).itertuples():
        da, db = _decode(_clip_path(a, r)), _decode(_clip_path(b, r))
        assert np.array_equal(da["frames"], db["frames"]) and np.array_equal(da["audio"], db["audio"])
    c = syn.generate(tmp_path / "c", **{**kwargs, "seed": 8})
    assert (a / "label.csv").read_bytes() != (c / "label.csv").read_bytes()


def test_generated_set_needs_more_than_one_modality(tmp_path):
    root = syn.generate(tmp_path / "big", n_clips=60, seconds=0.5, size=32, fps=4, seed=11)
    df = _read(root)
    label = np.sign(df.label)
    # round(0.25 * 60) = 15 dissenting cues, 5 per modality: each alone is right on 55 / 60 = 0.917
    for column in ("label_T", "label_A", "label_V"):
        assert (np.sign(df[column]) == label).mean() == pytest.approx(55 / 60)
    assert (_majority(np.sign(df[["label_T", "label_A", "label_V"]].to_numpy())) == label).mean() == 1.0
    assert label.value_counts().to_dict() == {-1.0: 20, 0.0: 20, 1.0: 20}


# ---------------------------------------------------------------------------------------------
# ensure(): reuse, regenerate, never leave a half set
# ---------------------------------------------------------------------------------------------

def _stamps(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_ensure_reuses_a_complete_set(tmp_path):
    root = syn.ensure(tmp_path / "demo", **SMALL)
    before = _stamps(root)
    assert len(before) == 3 + 2  # 3 clips, label.csv, synthetic.json
    assert syn.ensure(tmp_path / "demo", **SMALL) == tmp_path / "demo"
    assert _stamps(root) == before


def test_ensure_regenerates_on_changed_params(tmp_path):
    root = syn.ensure(tmp_path / "demo", **SMALL)
    old_csv = (root / "label.csv").read_bytes()
    syn.ensure(root, **{**SMALL, "seed": 1})
    assert json.loads((root / "synthetic.json").read_text())["params"]["seed"] == 1
    assert (root / "label.csv").read_bytes() != old_csv
    syn.ensure(root, **{**SMALL, "seed": 1, "n_clips": 4})
    assert len(_read(root)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # temp and old folders cleaned up


def test_ensure_regenerates_an_incomplete_set(tmp_path):
    root = syn.ensure(tmp_path / "demo", **SMALL)
    (root / "synthetic.json").unlink()  # as if the run had died before the manifest
    stray = root / "Raw" / "video_0001" / "0099.mp4"
    stray.write_bytes(b"half a file")
    (tmp_path / ".demo.tmp-999999").mkdir()  # a crashed run's temp folder
    syn.ensure(root, **SMALL)
    assert (root / "synthetic.json").is_file() and not stray.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_a_crash_mid_generation_leaves_no_set(tmp_path, monkeypatch):
    written = []

    def fail_on_third(path, *args, **kwargs):
        if len(written) == 2:
            raise RuntimeError("disk full")
        written.append(path)
        real_write(path, *args, **kwargs)

    real_write = syn.write_mp4
    monkeypatch.setattr(syn.render, "write_mp4", fail_on_third)
    with pytest.raises(RuntimeError, match="disk full"):
        syn.ensure(tmp_path / "demo", **SMALL)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(syn.render, "write_mp4", real_write)
    assert len(_read(syn.ensure(tmp_path / "demo", **SMALL))) == 3


def test_generate_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="thesis.tex"):
        syn.ensure(tmp_path / "mine", **SMALL)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_cli(tmp_path, capsys):
    assert syn.main([str(tmp_path / "m"), "--flavour", "mosi", "--n-clips", "3", "--seconds", "0.5",
                     "--size", "32", "--fps", "4", "--seed", "2"]) == 0
    assert "demo_mosi" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "m" / "synthetic.json").read_text())
    assert manifest["params"]["flavour"] == "mosi" and manifest["params"]["seed"] == 2
    assert _read(tmp_path / "m").label.abs().max() <= 3.0
    assert os.listdir(tmp_path) == ["m"]
