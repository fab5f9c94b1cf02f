"""The hard synthetic family: words with negation, voted labels, conflict clips, media variety, no shortcut."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from data_fixtures import processor  # noqa: F401  (pytest fixture)

from msa.data import synthetic as syn
from msa.data.labels import read_labels
from msa.data.media import decode_audio, decode_video, num_frames
from msa.data.synthetic import hard
from msa.dc.polarity import polarity_of

GRID = {round(k * 0.2, 1) + 0.0 for k in range(-5, 6)}


@pytest.fixture(scope="module")
def big_plan() -> list[hard.HardClip]:
    return hard.plan(3000, seed=1)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return syn.generate_hard(tmp_path_factory.mktemp("hard") / "hard", n_clips=4, seed=4)


def _acc2(pred: np.ndarray, label: np.ndarray) -> float:
    """SIMS acc2: positive (> 0) against the rest."""
    return float(((pred > 0) == (label > 0)).mean())


def _chance_bound(y: np.ndarray, n_test: int) -> float:
    """The majority rate plus 3 binomial standard errors at p = 0.5 on ``n_test`` held-out clips."""
    majority = max(y.mean(), 1 - y.mean())
    return majority + 3 * math.sqrt(0.25 / n_test)


def _cv_accuracy(features: np.ndarray, y: np.ndarray, folds: int = 5) -> float:
    """Held-out accuracy of a logistic regression on standardised ``features`` [N, D] (k-fold)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return float(cross_val_score(model, features, y, cv=folds).mean())


# ---------------------------------------------------------------------------------------------
# Words, votes, cues
# ---------------------------------------------------------------------------------------------

def test_phrase_values_by_hand():
    assert hard.phrase_value("good") == 0.6
    assert hard.phrase_value("good", "really ") == 0.75  # 0.6 * 1.25
    assert hard.phrase_value("terrible", "extremely ") == -1.0  # -0.8 * 1.5 = -1.2, capped
    assert hard.phrase_value("good", negated=True) == -0.3  # "not good": flipped and halved
    assert hard.phrase_value("bad", negated=True) == 0.3  # "not bad" is mildly positive, not "good"
    assert hard.phrase_value("great", "very ", negated=True) == -0.5  # "not very great": -0.5 * 1.0
    assert hard.phrase_value("annoying", "kind of ") == -0.36  # -0.6 * 0.6
    with pytest.raises(ValueError, match="adjective"):
        hard.phrase_value("meh")
    # No downtoned negations ("not a bit good"), every other combination once.
    assert len(hard.PHRASES) == len(hard.ADJECTIVES) * (len(hard.MODIFIERS) + 5)


def test_negation_turns_adjectives_around():
    """A bag of adjectives is not enough: many sentences say the opposite of their adjective."""
    rng = np.random.default_rng(0)
    flipped = 0
    for _ in range(400):
        text, value = hard.transcript_for((0.3, 1.0), rng, "sims")
        assert 0.3 <= value <= 1.0 and text[0].isupper() and text.isascii()
        adjective = next(a for a in hard.ADJECTIVES if f" {a}" in f" {text.lower().rstrip('.!')}".replace(",", " "))
        flipped += hard.ADJECTIVES[adjective] < 0  # a negative word in a positive sentence
    # Positive phrases in [0.3, 1] are plain positive ones ("really good") or negated negative ones
    # ("not bad", "not extremely horrible"); the draw is uniform over them.
    n_negated = sum(1 for _, _, neg, v in hard.PHRASES if neg and 0.3 <= v <= 1.0)
    n_all = sum(1 for *_, v in hard.PHRASES if 0.3 <= v <= 1.0)
    assert flipped / 400 == pytest.approx(n_negated / n_all, abs=0.08) and n_negated / n_all > 0.3
    text, value = hard.transcript_for((0.0, 0.0), rng, "mosi")
    assert value == 0.0


def test_votes_are_noisy_and_on_the_grid():
    rng = np.random.default_rng(0)
    sims = np.array([hard.votes_label(0.5, rng, "sims") for _ in range(4000)])
    assert set(np.round(sims, 1)) <= GRID
    # Each vote: perceived = 0.5 + N(0, sqrt(0.08^2 + 0.25^2) = 0.2625); +1 above 0.25, -1 below -0.25:
    # P(+1) = Phi(0.25 / 0.2625) = Phi(0.952) = 0.8295, P(-1) = Phi(-0.75 / 0.2625) = Phi(-2.857) = 0.0021,
    # so the mean label is 0.8274 and its sd sqrt((0.8316 - 0.8274^2) / 5) = 0.171 (SE of the mean 0.0027).
    assert sims.mean() == pytest.approx(0.8274, abs=0.015)
    assert sims.std() == pytest.approx(0.171, abs=0.02)
    mosi = np.array([hard.votes_label(0.5, rng, "mosi") for _ in range(2000)])
    assert mosi.min() >= -3 and mosi.max() <= 3
    # means of 3, 4 or 5 integer votes: every label is a multiple of 1/3, 1/4 or 1/5
    assert all(any(abs(x * k - round(x * k)) < 1e-3 for k in (3, 4, 5)) for x in mosi)
    assert len(set(mosi)) > 10


def test_voice_and_face_follow_the_cue_not_the_background():
    rng = np.random.default_rng(0)
    up, rate_up = hard.voice_for(0.8, 200.0, 1.0, rng)
    down, rate_down = hard.voice_for(-0.8, 200.0, 1.0, rng)
    assert up.glide > 0.2 > -0.2 > down.glide  # 0.55 * 0.8 = 0.44 octaves, jitter sd 0.08
    assert rate_up > rate_down and up.loudness > down.loudness and up.tilt < down.tilt
    face = hard.face_for(0.6, (0.1, 0.2, 0.3))
    assert face.background == (0.1, 0.2, 0.3) and face.mouth_curve == 0.6
    assert hard.face_for(-0.6, (0.1, 0.2, 0.3)).background == face.background


@pytest.mark.parametrize("size", hard.SIZES)
def test_mouth_is_readable_at_every_frame_size(size):
    room = hard.scene(0, 100, 0)
    take = syn.Take(dx=0, dy=0, brightness=1.0, phase=0.0, syllable_rate=3.0, syllable_phase=0.0)
    rise = {}
    for x in (0.6, -0.6):
        frame = syn.render_frames(hard.face_for(x, (0.5, 0.7, 0.5)), room.speaker, take, "sims", 1, size, 25)[0]
        assert frame.shape == (*size, 3)
        lips = (frame[..., 0] > 80) & (frame[..., 1] < 40) & (frame[..., 2] < 60)  # the dark red mouth
        ys, xs = np.nonzero(lips)
        centre = size[1] / 2
        reach = xs.max() - centre
        rise[x] = ys[np.abs(xs - centre) <= 2].mean() - ys[np.abs(xs - centre) >= 0.6 * reach].mean()
    assert rise[0.6] > 1.5 and rise[-0.6] < -1.5  # smile: the middle sits below the corners (image y down)


# ---------------------------------------------------------------------------------------------
# The plan: conflict share, classes, single modalities, media properties
# ---------------------------------------------------------------------------------------------

def test_conflict_share_and_what_it_means(big_plan):
    conflict = np.array([c.conflict for c in big_plan])
    assert conflict.sum() == 750  # round(0.25 * 3000)
    modes = np.array([c.mode for c in big_plan])
    for mode, n in (("train", 900), ("valid", 300), ("test", 1800)):  # 0.3 / 0.1 / 0.6
        assert (modes == mode).sum() == n
        assert conflict[modes == mode].mean() == pytest.approx(0.25, abs=0.005)  # stratified
    for c in big_plan:
        if c.conflict:  # words against voice and face; the planned class follows voice and face
            assert np.sign(c.cue_T) == -c.polarity == -np.sign(c.cue_A) == -np.sign(c.cue_V)
    label = np.array([c.label for c in big_plan])
    text = np.array([c.label_T for c in big_plan])
    # On conflict clips a text-only reading is wrong: the words' votes and the label disagree in sign.
    assert _acc2(text[conflict], label[conflict]) < 0.05
    with pytest.raises(ValueError, match="conflict"):
        hard.plan(10, conflict=0.9)


def test_no_single_modality_suffices(big_plan):
    label = np.array([c.label for c in big_plan])
    uni = {m: np.array([getattr(c, f"label_{m}") for c in big_plan]) for m in "TAV"}
    single = {m: _acc2(x, label) for m, x in uni.items()}
    majority = _acc2(np.sign(uni["T"]) + np.sign(uni["A"]) + np.sign(uni["V"]), label)
    # Measured on this plan: T 0.67, A 0.80, V 0.81, majority of the three 0.90.
    assert max(single.values()) < 0.83 and single["T"] < 0.72
    assert majority > max(single.values()) + 0.06
    assert _acc2(uni["A"] + uni["V"], label) < majority  # voice and face without the words are not enough either


def test_labels_are_votes_not_a_function_of_the_cues(big_plan):
    label = np.array([c.label for c in big_plan])
    assert set(np.round(label, 1)) <= GRID and set(np.round(label, 1)) == GRID  # all 11 grid values occur
    felt = np.array([hard.sentiment(c.cue_T, c.cue_A, c.cue_V, c.conflict) for c in big_plan])
    assert np.mean([syn.snap(x) for x in felt] != label) > 0.4  # the votes move most labels off the snapped mean
    assert 0.2 < np.std(label - felt) < 0.4
    planned = np.array([c.polarity for c in big_plan])
    derived = np.array([{"negative": -1, "neutral": 0, "positive": 1}[polarity_of(x, "hard")] for x in label])
    assert 0.75 < (planned == derived).mean() < 0.95  # votes move some clips across the class edges
    mosi = hard.plan(300, flavour="mosi", seed=1)
    assert max(abs(c.label) for c in mosi) <= 3 and len({c.label for c in mosi}) > 25


def test_media_properties_vary_and_never_see_the_label(big_plan):
    seconds = np.array([c.seconds for c in big_plan])
    assert seconds.min() >= 1.0 and seconds.max() <= 10.0 and seconds.max() > 8.0
    assert 3.5 < seconds.mean() < 4.5  # 1 + 9 * Beta(1.5, 3): mean 1 + 9 / 3 = 4 s
    assert {c.fps for c in big_plan} == {25, 30}
    assert {c.size for c in big_plan} == set(hard.SIZES)
    assert {c.sample_rate for c in big_plan} == {16000, 44100, 48000}
    assert {c.channels for c in big_plan} == {1, 2}
    # A classifier on every file property is at chance on the polarity (5-fold, 600 held out per fold).
    features = np.array([[c.seconds, c.fps, c.size[0] * c.size[1], c.size[1] / c.size[0], c.sample_rate,
                          c.channels, len(c.text)] for c in big_plan], dtype=float)
    y = np.array([c.label > 0 for c in big_plan])
    assert _cv_accuracy(features, y) < _chance_bound(y, 600)  # 0.53 + 3 * 0.020 = 0.59


def test_same_seed_same_plan_other_seed_other_plan():
    assert hard.plan(50, seed=3) == hard.plan(50, seed=3)
    assert hard.plan(50, seed=3) != hard.plan(50, seed=4)
    assert [c.text for c in hard.plan(50, seed=3)] != [c.text for c in hard.plan(50, flavour="mosi", seed=3)]


# ---------------------------------------------------------------------------------------------
# The files on disk
# ---------------------------------------------------------------------------------------------

def test_small_set_layout_and_label_file(small_set):
    df = pd.read_csv(small_set / "label.csv", dtype=str)
    assert tuple(df.columns) == hard.COLUMNS and set(df.conflict) <= {"0", "1"}
    table = read_labels(small_set, "hard")
    plan = hard.plan(4, seed=4)
    assert table["conflict"].tolist() == [float(c.conflict) for c in plan]
    assert table["label"].tolist() == [c.label for c in plan]
    assert list(df.annotation) == [polarity_of(c.label, "hard").capitalize() for c in plan]


def test_small_set_files_have_the_planned_media(small_set):
    for c in hard.plan(4, seed=4):
        path = small_set / "Raw" / c.video_id / f"{c.clip_id}.mp4"
        with av.open(str(path)) as container:
            v, a = container.streams.video[0], container.streams.audio[0]
            assert (v.codec_context.height, v.codec_context.width) == c.size
            assert float(v.average_rate) == c.fps and v.frames == round(c.seconds * c.fps)
            assert (a.codec_context.sample_rate, a.codec_context.channels) == (c.sample_rate, c.channels)
        # What the data pipeline reads: 2 fps frames (an even count, at least 4) and 16 kHz mono.
        frames = decode_video(path)
        assert frames.shape[1:] == (*c.size, 3) and len(frames) == num_frames(round(c.seconds * c.fps), c.fps)
        audio = decode_audio(path)
        assert abs(len(audio) / 16000 - c.seconds) < 0.05 and 0.02 < np.sqrt(np.mean(audio ** 2)) < 0.6


def test_same_seed_same_files(small_set, tmp_path):
    again = syn.generate_hard(tmp_path / "hard", n_clips=4, seed=4)
    for p in sorted(small_set.rglob("*")):
        if p.is_file():
            assert p.read_bytes() == (again / p.relative_to(small_set)).read_bytes(), p.name


def test_ensure_hard_reuses_and_refuses_a_demo_manifest(small_set, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in small_set.rglob("*.mp4")}
    syn.ensure_hard(small_set, n_clips=4, seed=4)
    assert {p: p.stat().st_mtime_ns for p in small_set.rglob("*.mp4")} == before
    with pytest.raises(ValueError, match="flavour"):
        syn.ensure_hard(tmp_path / "x", flavour="mosei")


def _frame_and_file_features(root: Path, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Per clip: mean frame colour and brightness spread (at 2 fps, as the model sees it), duration,
    frame rate, frame size, sample rate, channels, file size and bytes per second; and label > 0."""
    table = read_labels(root, dataset)
    features = []
    for row in table.itertuples():
        frames = decode_video(row.path).astype(float)  # [T, H, W, 3]
        with av.open(row.path) as container:
            v, a = container.streams.video[0], container.streams.audio[0]
            seconds = v.frames / float(v.average_rate)
            facts = [seconds, float(v.average_rate), v.codec_context.width * v.codec_context.height,
                     a.codec_context.sample_rate, a.codec_context.channels]
        size = Path(row.path).stat().st_size
        features.append([*frames.mean(axis=(0, 1, 2)), frames.std(), *facts, size, size / seconds])
    return np.array(features), (table["label"] > 0).to_numpy()


@pytest.mark.slow
def test_no_frame_statistics_or_file_metadata_shortcut(tmp_path):
    """A classifier on frame statistics and file metadata of 300 generated clips is at chance on the
    polarity; on the demo family, whose background follows label_V, the same classifier is not."""
    features, y = _frame_and_file_features(syn.generate_hard(tmp_path / "hard", n_clips=300, seed=7), "hard")
    # 5 folds over 300 clips: 300 held-out predictions, bound = majority rate + 3 * sqrt(0.25 / 300)
    # = majority + 0.087 (measured: 0.52, majority 0.56, bound 0.64).
    assert _cv_accuracy(features, y) < _chance_bound(y, 300)
    features, y = _frame_and_file_features(syn.generate(tmp_path / "demo", n_clips=120, seed=7), "demo")
    assert _cv_accuracy(features, y) > _chance_bound(y, 120)  # measured 0.93 against 0.80


def test_hard_data_module_batches_every_media_format(small_set, processor, tmp_path):
    """data=hard through the real collator: mixed frame sizes and rates, 16-48 kHz, mono and stereo."""
    from msa.data.datamodule import build_datamodule, generation_keys, is_generated

    assert generation_keys("hard") == ("n_clips", "splits", "conflict") and is_generated("hard_mosi")
    assert not is_generated("sims") and generation_keys("demo") == ("n_clips", "splits")
    dm = build_datamodule(name="hard", root=small_set, n_clips=4, data_seed=4, cache_dir=tmp_path, eval_batch_size=4,
                          video_min_pixels=3136, video_max_pixels=8192)
    dm.attach_processor(processor)
    dm.prepare_data()  # the manifest matches: reused, not regenerated
    dm.setup()
    plan = [c for c in hard.plan(4, seed=4) if c.mode == "test"]
    assert len({(c.size, c.fps, c.sample_rate, c.channels) for c in plan}) == len(plan) == 2
    batch = next(iter(dm.test_dataloader()))
    assert len(batch["ids"]) == 2 and batch["skipped"] == []
    assert batch["video_grid_thw"].shape == (2, 3) and batch["input_features"].shape[0] == 2
    assert batch["label"].tolist() == [c.label for c in plan]
