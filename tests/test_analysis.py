"""msa.analysis on a hand-made run directory."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from msa.analysis import load_completions, load_metrics, metrics_table, plot_reward_curves, reward_curve


def make_run(root, rewards):
    (root / "grpo" / "completions").mkdir(parents=True)
    (root / "metrics.json").write_text(json.dumps({"grpo": {"demo": {"acc2": 0.5, "mae": 0.3}}}))
    pd.DataFrame({"step": range(len(rewards)), "reward": rewards}).to_csv(root / "grpo" / "train_history.csv",
                                                                          index=False)
    pd.DataFrame({"step": [0, 0], "prompt_id": ["a", "a"], "completion": ["x", "y"], "hinted": [True, False],
                  "advantage": [0.7, -0.7]}).to_parquet(root / "grpo" / "completions" / "completions_00000.parquet")
    return root


def test_analysis_reads_runs_and_plots(tmp_path):
    a = make_run(tmp_path / "a", [0.0, 1.0, 2.0])
    b = make_run(tmp_path / "b", [0.0, 0.5, 0.5])
    assert load_metrics(a)["grpo"]["demo"]["acc2"] == 0.5
    t = metrics_table({"hint": a, "nohint": b}, "grpo", "demo")
    assert list(t.index) == ["hint", "nohint"] and t.loc["hint", "mae"] == 0.3
    c = load_completions(a)
    assert c.hinted.sum() == 1 and abs(c.advantage.sum()) < 1e-12
    assert reward_curve(b)["reward"].tolist() == [0.0, 0.5, 0.5]
    png = plot_reward_curves({"hint=true": a, "hint=false": b}, tmp_path / "curves.png")
    assert png.exists() and png.stat().st_size > 1000


def test_hint_ablation_script_compares_own_rewards_over_seeds(tmp_path, capsys):
    """Two seeds per setting; 5 steps, so each fifth is one step. Numbers by hand:
    hint=true own rewards [1,2,3,4,5] and [1,1,1,1,3] -> first 1, last (5+3)/2 = 4;
    hint=false [2,2,2,2,2] and [0,0,0,0,0] -> first 1, last 1."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "hint_plot", Path(__file__).resolve().parent.parent / "experiments" / "hint_ablation" / "plot.py")
    plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot)

    own = {"hint=true,seed=0": [1, 2, 3, 4, 5], "hint=true,seed=1": [1, 1, 1, 1, 3],
           "hint=false,seed=0": [2] * 5, "hint=false,seed=1": [0] * 5}
    for i, (name, rewards) in enumerate(own.items()):
        job = tmp_path / f"{i}_grpo"
        (job / ".hydra").mkdir(parents=True)
        (job / "grpo").mkdir()
        (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in ["stage=grpo", *name.split(",")]))
        (job / "metrics.json").write_text(json.dumps({"grpo": {"demo": {"acc2": 0.5 + i / 10, "mae": 0.2,
                                                                   "parse_fail_rate": 0.1}}}))
        pd.DataFrame({"step": range(5), "reward": rewards, "own_reward": rewards,
                      "hard/frac": [0.5] * 5}).to_csv(job / "grpo" / "train_history.csv", index=False)
    plot.main(str(tmp_path))
    out = capsys.readouterr().out
    means, stds = out.split("mean over seeds:")[1].split("std over seeds:")
    rows = {line.split()[0]: line.split()[1:] for line in means.strip().splitlines()[1:] if line.startswith("hint=")}
    assert [float(x) for x in rows["hint=true"][:2]] == [1.0, 4.0]
    assert [float(x) for x in rows["hint=false"][:2]] == [1.0, 1.0]
    spread = {line.split()[0]: line.split()[1:] for line in stds.splitlines()[1:] if line.startswith("hint=")}
    assert [float(x) for x in spread["hint=true"][:2]] == [0.0, 1.414]  # last fifths 5 and 3: std sqrt(2)
    assert (tmp_path / "reward_curves.png").exists()


def test_runs_written_before_the_own_reward_rename_are_read_under_the_new_name(tmp_path):
    """Older runs logged the policy's own reward as ``hint/reward_before``: it is read as ``own_reward`` (the
    column the report's Fig. 3, the hint-ablation script and notebook 02 plot); a current run is read as is."""
    old = tmp_path / "old"
    (old / "grpo").mkdir(parents=True)
    pd.DataFrame({"step": [0, 1], "reward": [2.0, 3.0], "hint/reward_before": [1.0, 1.5]}).to_csv(
        old / "grpo" / "train_history.csv", index=False)
    curve = reward_curve(old)
    assert list(curve.columns) == ["step", "reward", "own_reward"]
    assert curve["own_reward"].tolist() == [1.0, 1.5] and curve["reward"].tolist() == [2.0, 3.0]
    new = make_run(tmp_path / "new", [0.0, 1.0])
    assert list(reward_curve(new).columns) == ["step", "reward"]
    png = plot_reward_curves({"old": old}, tmp_path / "own.png", column="own_reward")
    assert png.stat().st_size > 1000


def chains_fixture():
    from msa.analysis import chain_table

    pred = pd.DataFrame([
        # well formed, tag agrees with the score; the voice is said to be tense while label_A is positive
        {"id": "a", "dataset": "demo", "label": 0.6, "parse_fail": False, "parsed_polarity": "positive",
         "prediction": 0.6, "completion": "...",
         "parsed_reasoning": "The words are warm. The voice is tense. The face shows a broad smile. Overall positive."},
        # tag negative but score +0.4 (positive on SIMS bins); the voice is cheerful while label_A is negative;
        # a neutral face against a weak negative label_V is a disagreement, not a contradiction
        {"id": "b", "dataset": "demo", "label": -0.4, "parse_fail": False, "parsed_polarity": "negative",
         "prediction": 0.4, "completion": "...",
         "parsed_reasoning": "The transcript is bitter. The voice sounds cheerful. The face is neutral. So negative."},
        # not well formed: prediction 0, no tag, no cues; never counted as a disagreement
        {"id": "c", "dataset": "demo", "label": 0.2, "parse_fail": True, "parsed_polarity": None,
         "prediction": 0.0, "completion": "garbage", "parsed_reasoning": None},
        # MOSI-like: no unimodal labels, nothing to contradict; tag neutral, score 0.5 is neutral on MOSI ([-0.5, 0.5])
        {"id": "d", "dataset": "demo_mosi", "label": 0.0, "parse_fail": False, "parsed_polarity": "neutral",
         "prediction": 0.5, "completion": "...",
         "parsed_reasoning": "The voice is bright and energetic. The words are plain."},
    ])
    labels = pd.DataFrame({"id": ["a", "b", "c", "d"], "text": ["t"] * 4, "path": ["p"] * 4,
                           "label_T": [0.8, -0.6, 0.2, float("nan")], "label_A": [0.6, -0.4, 0.2, float("nan")],
                           "label_V": [0.4, -0.2, 0.2, float("nan")]})
    return chain_table(pred, labels)


def test_chain_table_cues_and_polarities():
    t = chains_fixture().set_index("id")
    assert t.loc["a", "cue_audio"] == "The voice is tense." and t.loc["a", "cue_audio_polarity"] == "negative"
    assert t.loc["a", "cue_video"] == "The face shows a broad smile." and t.loc["a", "cue_video_polarity"] == "positive"
    assert t.loc["b", "cue_text_polarity"] == "negative" and t.loc["b", "cue_video_polarity"] == "neutral"
    assert t.loc["d", "cue_audio_polarity"] == "positive"  # voice words the stance lexicon lacks
    assert t["tag_vs_score"].tolist() == [False, True, False, False]
    assert t.loc["b", "score_polarity"] == "positive" and t.loc["d", "score_polarity"] == "neutral"
    assert pd.isna(t.loc["c", "cue_text"]) and pd.isna(t.loc["d", "label_T_polarity"])


def test_disagreements_and_contradictions_by_hand():
    from msa.analysis import cue_contradictions, tag_score_disagreements

    t = chains_fixture()
    assert tag_score_disagreements(t)["id"].tolist() == ["b"]
    c = cue_contradictions(t)
    assert list(zip(c["id"], c["modality"], c["cue_polarity"], c["label_polarity"])) == [
        ("a", "audio", "negative", "positive"), ("b", "audio", "positive", "negative")]


def test_teacher_chains_read_like_predictions(tmp_path):
    from msa.analysis import load_chains

    (tmp_path / "cot").mkdir()
    recs = [{"id": "v$_$1", "dataset": "demo", "label": 0.6, "polarity": "positive", "reasoning": "Warm words.",
             "score": 0.6, "answer": "<polarity>positive</polarity>...", "kept": True},
            {"id": "v$_$2", "dataset": "demo", "label": -0.2, "polarity": "positive", "reasoning": "x",
             "score": 0.4, "answer": "...", "kept": False}]
    (tmp_path / "cot" / "cot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    c = load_chains(tmp_path, "cot")
    assert c["id"].tolist() == ["v$_$1"] and c.loc[0, "prediction"] == 0.6 and not c.loc[0, "parse_fail"]
    assert c.loc[0, "parsed_polarity"] == "positive" and c.loc[0, "parsed_reasoning"] == "Warm words."


def test_hint_ablation_script_scores_the_conflict_clips_and_the_prompts_hard_at_start(tmp_path):
    """A job named from its saved config (no Hydra overrides). Numbers by hand (SIMS-like bins):
    conflict clips a (label -0.6, predicted 0.4: wrong side) and b (0.8, 0.6: right) -> acc2 = acc3 = 0.5,
    MAE (1.0 + 0.2) / 2 = 0.6; clip c is not a conflict clip and stays out. The polarity tags are right on
    c only: 1/3 over the test, 0 on the conflict clips. Hard at start: three prompts,
    greedy predictions off by 0.4, 0.2, 0 -> MAE 0.2, polarity right 2 of 3, still hard (0 of G right) 1 of 3."""
    import importlib.util
    from pathlib import Path

    from omegaconf import OmegaConf

    spec = importlib.util.spec_from_file_location(
        "hint_plot2", Path(__file__).resolve().parent.parent / "experiments" / "hint_ablation" / "plot.py")
    plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot)

    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"video_id": ["v", "v", "v"], "clip_id": ["a", "b", "c"], "text": ["x", "y", "z"],
                  "label": [-0.6, 0.8, 0.2], "annotation": ["Negative", "Positive", "Positive"],
                  "mode": ["test"] * 3, "conflict": [1, 1, 0]}).to_csv(data / "label.csv", index=False)
    job = tmp_path / "job"
    (job / "grpo").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"stage": {"run": ["grpo"]}, "init_from": "sft", "hint": True, "hard": True,
                                     "seed": 3, "grpo": {"hint_mode": "anchored"},
                                     "data": {"name": "hard", "root": str(data)}}), job / "resolved_config.yaml")
    (job / "metrics.json").write_text(json.dumps({"grpo": {"hard": {"acc2": 0.7, "mae": 0.5, "parse_fail_rate": 0.0}}}))
    preds = [("v$_$a", -0.6, 0.4, "positive"), ("v$_$b", 0.8, 0.6, "negative"), ("v$_$c", 0.2, -1.0, "positive")]
    (job / "grpo" / "predictions.jsonl").write_text("".join(
        json.dumps({"id": i, "dataset": "hard", "label": y, "prediction": p, "parsed_polarity": t}) + "\n"
        for i, y, p, t in preds))
    pd.DataFrame({"step": range(5), "reward": [1.0] * 5, "own_reward": [1.0] * 5,
                  "hard/frac": [0.2] * 5}).to_csv(job / "grpo" / "train_history.csv", index=False)
    pd.DataFrame({"id": ["t1", "t2", "t3"], "label": [-0.6, 0.2, 0.8], "n_right": [0, 1, 2],
                  "greedy_polarity_right": [True, False, True], "greedy_prediction": [-0.2, 0.0, 0.8],
                  "greedy_parse_fail": [False] * 3}).to_parquet(job / plot.PROBE)

    assert plot.job_name(job) == "hint=true,grpo.hint_mode=anchored,hard=true,seed=3"
    row = plot.summary(job)
    assert row["hard conflict n"] == 2
    assert row["hard conflict acc2"] == 0.5 and row["hard conflict acc3"] == 0.5
    assert row["hard conflict mae"] == pytest.approx(0.6)
    # the polarity tags: a says positive (label negative), b negative (positive), c positive (0.2: positive)
    assert row["hard tag acc"] == pytest.approx(1 / 3) and row["hard conflict tag acc"] == 0.0
    assert row["hard@start n"] == 3 and row["hard@start mae"] == pytest.approx(0.2)
    assert row["hard@start polarity right"] == pytest.approx(2 / 3)
    assert row["hard@start still hard"] == pytest.approx(1 / 3)


def test_hint_ablation_script_scores_mosi_family_subsets_and_the_probe_on_the_training_set_only(tmp_path):
    """A MOSI-family training set (no ``acc2`` key: ``acc2_has0``/``acc2_non0``) raised KeyError 'acc2', and
    the training-set probe was scored against every eval target (here also the cross target ``demo``).
    Numbers by hand (MOSI scale): conflict clips a (-1.8, predicted 1.2) and b (2.4, 1.8): acc2_has0 =
    acc2_non0 = 0.5, MAE (3.0 + 0.6) / 2 = 1.8. Probe: labels -1.8, 0.6, 2.4, greedy -0.6, 0.0, 2.4 ->
    MAE 0.6, acc2_has0 3/3 (0.0 counts as non-negative), acc2_non0 2/3 (0.0 is not positive)."""
    import importlib.util
    from pathlib import Path

    from omegaconf import OmegaConf

    spec = importlib.util.spec_from_file_location(
        "hint_plot3", Path(__file__).resolve().parent.parent / "experiments" / "hint_ablation" / "plot.py")
    plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot)

    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"video_id": ["v", "v", "v"], "clip_id": ["a", "b", "c"], "text": ["x", "y", "z"],
                  "label": [-1.8, 2.4, 0.6], "mode": ["test"] * 3, "conflict": [1, 1, 0]}
                 ).to_csv(data / "label.csv", index=False)
    job = tmp_path / "job"
    (job / "grpo").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"stage": {"run": ["grpo"]}, "init_from": "sft", "hint": True, "hard": True,
                                     "seed": 0, "grpo": {"hint_mode": "replace"},
                                     "data": {"name": "hard_mosi", "root": str(data)}}), job / "resolved_config.yaml")
    (job / "metrics.json").write_text(json.dumps({"grpo": {
        "hard_mosi": {"acc2_has0": 0.7, "acc2_non0": 0.7, "mae": 0.5, "parse_fail_rate": 0.0},
        "demo": {"acc2": 0.6, "mae": 0.4, "parse_fail_rate": 0.0}}}))
    preds = [("v$_$a", -1.8, 1.2, "positive"), ("v$_$b", 2.4, 1.8, "positive"), ("v$_$c", 0.6, 0.6, "positive")]
    (job / "grpo" / "predictions.jsonl").write_text("".join(
        json.dumps({"id": i, "dataset": "hard_mosi", "label": y, "prediction": p, "parsed_polarity": t}) + "\n"
        for i, y, p, t in preds))
    pd.DataFrame({"step": range(5), "reward": [1.0] * 5, "own_reward": [1.0] * 5,
                  "hard/frac": [0.2] * 5}).to_csv(job / "grpo" / "train_history.csv", index=False)
    pd.DataFrame({"id": ["t1", "t2", "t3"], "label": [-1.8, 0.6, 2.4], "n_right": [0, 1, 2],
                  "greedy_polarity_right": [True, False, True], "greedy_prediction": [-0.6, 0.0, 2.4],
                  "greedy_parse_fail": [False] * 3}).to_parquet(job / plot.PROBE)

    row = plot.summary(job)
    assert row["hard_mosi conflict n"] == 2
    assert row["hard_mosi conflict acc2_has0"] == 0.5 and row["hard_mosi conflict acc2_non0"] == 0.5
    assert row["hard_mosi conflict mae"] == pytest.approx(1.8)
    assert row["hard@start n"] == 3 and row["hard@start mae"] == pytest.approx(0.6)
    assert row["hard@start acc2_has0"] == 1.0 and row["hard@start acc2_non0"] == pytest.approx(2 / 3)
    assert "hard@start acc2" not in row  # the probe is not scored with the cross target's (SIMS) metrics


def test_subset_table_is_tidy_per_stage_dataset_and_subset(tmp_path):
    from msa.analysis import subset_table

    a, old = tmp_path / "a", tmp_path / "old"
    a.mkdir(), old.mkdir()
    demo = {"acc2": 0.7, "mae": 0.22, "f1": 0.6, "n": 10,
            "subsets": {"text_conflict": {"acc2": 0.5, "mae": 0.45, "n": 4}, "conflict": {"n": 0}}}
    (a / "metrics.json").write_text(json.dumps({"grpo": {"demo": demo, "demo_mosi": {"acc7": 0.2, "mae": 1.0,
                                                                                     "n": 3, "subsets": {}}},
                                                "grpo_train": {"steps": 2}, "wall_time_s": {"grpo": 1.0}}))
    (old / "metrics.json").write_text(json.dumps({"eval": {"demo": {"acc2": 0.6, "mae": 0.3, "n": 10}}}))
    t = subset_table({"a": a, "old": old})
    assert list(t.columns[:5]) == ["run", "stage", "dataset", "subset", "n"]
    assert t[["run", "stage", "dataset", "subset", "n"]].values.tolist() == [
        ["a", "grpo", "demo", "all", 10], ["a", "grpo", "demo", "text_conflict", 4],
        ["a", "grpo", "demo", "conflict", 0],
        ["a", "grpo", "demo_mosi", "all", 3], ["old", "eval", "demo", "all", 10]]
    assert t.loc[1, "acc2"] == 0.5 and pd.isna(t.loc[2, "acc2"]) and "f1_weighted" in t  # old F1 names upgraded
    assert subset_table(a, stages=["eval"]).empty
    assert metrics_table({"a": a}, "grpo", "demo").columns.tolist() == ["acc2", "mae", "f1_weighted", "n"]
