"""Reading runs for notebooks and tables: metrics, predictions, GRPO completions and reward curves, and
the reasoning chains beside their clips (cue sentences per modality, tag/score disagreements, cues that
contradict their modality's label, a picture of a clip with its chain).

Notebooks stay thin; the logic lives here, where tests reach it.

    from msa.analysis import load_metrics, load_predictions, load_completions, plot_reward_curves
    from msa.analysis import subset_table      # metrics on text_conflict, audio_conflict, ... per stage
    from msa.analysis import run_chains, tag_score_disagreements, cue_contradictions, plot_clip
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def load_metrics(run_dir: str | Path) -> dict:
    """``metrics.json`` of a run: stage -> dataset -> metric -> value (older runs' F1 names upgraded:
    ``f1``/``f1_has0``/``f1_non0`` read as ``f1_weighted``/``f1_weighted_has0``/``f1_weighted_non0``)."""
    from msa.metrics import upgrade_keys

    return upgrade_keys(json.loads((Path(run_dir) / "metrics.json").read_text()))


def metrics_table(runs: dict[str, str | Path], stage: str, dataset: str) -> pd.DataFrame:
    """One row per named run: the test metrics of ``stage`` on ``dataset`` (e.g. hint=true vs false); the
    subsets are in :func:`subset_table`."""
    rows = {name: {k: v for k, v in load_metrics(d).get(stage, {}).get(dataset, {}).items() if not isinstance(v, dict)}
            for name, d in runs.items()}
    return pd.DataFrame(rows).T


def subset_table(runs: dict[str, str | Path] | str | Path, stages: Sequence[str] | None = None) -> pd.DataFrame:
    """Tidy test metrics of the whole split and of its subsets (``text_conflict``, ``audio_conflict``,
    ``visual_conflict``, ``conflict``: :data:`msa.evaluation.SUBSETS`): one row per (run, stage, dataset,
    subset), ``subset="all"`` for the whole split, columns ``n`` and the metrics (NaN where a subset is
    empty). ``runs`` is a run directory or ``{name: run dir}``; ``stages`` defaults to every stage with
    per-dataset test metrics. Runs written before subsets existed give their "all" rows only."""
    runs = {Path(runs).name: runs} if isinstance(runs, (str, Path)) else runs
    rows = []
    for name, d in runs.items():
        for stage, per_ds in load_metrics(d).items():
            if stages is not None and stage not in stages:
                continue
            if not (isinstance(per_ds, dict) and per_ds
                    and all(isinstance(m, dict) and "mae" in m for m in per_ds.values())):
                continue  # not a test pass (grpo_train, wall_time_s, budget, ...)
            for ds, m in per_ds.items():
                parts = {"all": m, **(m.get("subsets") or {})}
                for subset, sm in parts.items():
                    rows.append({"run": name, "stage": stage, "dataset": ds, "subset": subset,
                                 **{k: v for k, v in sm.items() if not isinstance(v, dict)}})
    lead = ["run", "stage", "dataset", "subset", "n"]
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=lead)
    return table[lead + [c for c in table.columns if c not in lead]]


def load_predictions(run_dir: str | Path, stage: str = "eval") -> pd.DataFrame:
    """The per-clip predictions (``<run>/<stage>/predictions.jsonl``) as a DataFrame. Floats are parsed
    exactly (pandas' fast parser turns 0.6 into 0.6000000000000001, which moves scores off the SIMS bin
    edges)."""
    return pd.read_json(Path(run_dir) / stage / "predictions.jsonl", lines=True, precise_float=True)


def load_completions(run_dir: str | Path) -> pd.DataFrame:
    """Every GRPO completions table of a run, concatenated (columns: step, prompt_id, completion,
    reward, reward_<fn>, hinted, advantage, label, dataset)."""
    files = sorted((Path(run_dir) / "grpo" / "completions").glob("completions_*.parquet"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no grpo/completions/*.parquet (set grpo.log_completions_every)")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


# Columns of grpo/train_history.csv written under another name by older runs: old -> current.
RENAMED_HISTORY_COLUMNS = {"hint/reward_before": "own_reward"}


def reward_curve(run_dir: str | Path) -> pd.DataFrame:
    """Per-step GRPO scalars (reward, own_reward, hint/rate, hard/frac, kl, ...) from ``grpo/train_history.csv``
    (older runs' columns upgraded: ``hint/reward_before`` read as ``own_reward``)."""
    history = pd.read_csv(Path(run_dir) / "grpo" / "train_history.csv")
    return history.rename(columns={old: new for old, new in RENAMED_HISTORY_COLUMNS.items()
                                   if old in history and new not in history})


def smooth(values: pd.Series, window: int = 5) -> pd.Series:
    return values.rolling(window, min_periods=1).mean()


def plot_reward_curves(runs: dict[str, str | Path | Sequence[str | Path]], out_png: str | Path, window: int = 5,
                       column: str = "reward", title: str | None = None) -> Path:
    """A per-step GRPO scalar (default the mean reward) for each named run, e.g.
    ``{"hint=true": dir1, "hint=false": dir2}``; ``column="own_reward"`` plots the reward of the
    policy's own samples, before hinted groups replace hard ones. A name may map to several runs (seeds):
    their mean is drawn, with a +-1 std band over the seeds at each step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, d in runs.items():
        dirs = [d] if isinstance(d, (str, Path)) else list(d)
        curves = pd.concat({i: reward_curve(x).set_index("step")[column] for i, x in enumerate(dirs)}, axis=1)
        mean = smooth(curves.mean(axis=1), window)
        line, = ax.plot(mean.index, mean.values, label=name if len(dirs) == 1 else f"{name} (n={len(dirs)})")
        if len(dirs) > 1:
            std = smooth(curves.std(axis=1), window)
            ax.fill_between(mean.index, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel(f"{column} (rolling {window})")
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


# ----------------------------------------------------------------------------------------------
# Reasoning chains beside their clips
# ----------------------------------------------------------------------------------------------

MODALITIES = ("text", "audio", "video")
UNIMODAL_LABEL = {"text": "label_T", "audio": "label_A", "video": "label_V"}
# Voice-quality words the stance lexicon of msa.cot.filters (built to read conclusions) lacks; read only
# when that lexicon finds no stance in a cue sentence. They cover the rule teacher's audio cues too.
VOICE_WORDS = {"positive": ("bright", "energetic", "lively", "animated", "rises", "rising"),
               "negative": ("tense", "heavy", "strained", "downcast", "drags", "dragging", "falls", "falling",
                            "shaky", "trembl")}


def cue_sentences(reasoning: str | None, modalities: Sequence[str] = MODALITIES) -> dict[str, str | None]:
    """The sentence where the chain states each modality's cue: the first sentence that mentions that
    modality and no other, else the first that mentions it with others; None when never mentioned.

    >>> cue_sentences("The words are kind. The voice is tense. Text and face agree, so positive.")
    {'text': 'The words are kind.', 'audio': 'The voice is tense.', 'video': 'Text and face agree, so positive.'}
    """
    from msa.cot.filters import missing_modalities, split_sentences

    sentences = split_sentences(reasoning if isinstance(reasoning, str) else "")  # None/NaN: no chain
    mentions = [set(modalities) - set(missing_modalities(s, modalities)) for s in sentences]
    out = {}
    for m in modalities:
        alone = [s for s, ms in zip(sentences, mentions) if ms == {m}]
        shared = [s for s, ms in zip(sentences, mentions) if m in ms]
        out[m] = (alone or shared or [None])[0]
    return out


def cue_polarity(sentence: str | None) -> str | None:
    """positive / negative / neutral as the sentence states its cue (hedges dropped: "slightly warm" is
    positive); None when it states no stance, or a mixed one.

    >>> [cue_polarity(s) for s in ("The voice is slightly tense.", "The face is not happy.",
    ...                            "The wording is neutral.", "The score is 0.4.", None)]
    ['negative', 'negative', 'neutral', None, None]
    """
    from msa.cot.filters import sentence_stance

    if not sentence:
        return None
    stance, _ = sentence_stance(sentence)
    if stance in ("positive", "negative", "neutral"):
        return stance
    if stance is None:
        words = sentence.lower().replace(",", " ").replace(".", " ").split()
        hits = {p for p, stems in VOICE_WORDS.items() for w in words if w.startswith(stems)}
        if len(hits) == 1:
            return hits.pop()
    return None


def opposite(a: str | None, b: str | None) -> bool:
    """Whether two polarities are opposite (positive vs negative); neutral or unknown is never opposite."""
    return {a, b} == {"positive", "negative"}


def chain_table(predictions: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per clip: the chain's polarity tag, its score and the score's polarity, each modality's cue
    sentence and its polarity, and (with ``labels`` from :func:`msa.data.labels.read_labels`, joined on
    ``id``, and ``dataset`` when it has one) the transcript and unimodal labels beside them.

    Columns added: ``tag`` (the <polarity>), ``score_polarity`` (``polarity_of(prediction, dataset)``),
    ``tag_vs_score`` (True where the two differ, for well-formed answers), ``cue_<m>``,
    ``cue_<m>_polarity``, and with labels ``label_<m>_polarity`` and ``cue_<m>_contradicts`` (the cue's
    polarity is the opposite of its label's).
    """
    from msa.dc import polarity_of

    t = predictions.copy()
    if labels is not None:
        on = ["id", "dataset"] if "dataset" in labels else ["id"]  # the synthetic sets share clip ids
        keep = [*on, "text", "path", *[c for c in UNIMODAL_LABEL.values() if c in labels]]
        t = t.merge(labels[keep], on=on, how="left", validate="many_to_one")
    ok = ~t["parse_fail"].astype(bool)
    t["tag"] = t["parsed_polarity"]
    t["score_polarity"] = [polarity_of(p, d) if good else None for p, d, good in zip(t.prediction, t.dataset, ok)]
    t["tag_vs_score"] = ok & (t["tag"] != t["score_polarity"])
    cues = [cue_sentences(r) for r in t["parsed_reasoning"]]
    for m in MODALITIES:
        t[f"cue_{m}"] = [c[m] for c in cues]
        t[f"cue_{m}_polarity"] = [cue_polarity(c[m]) for c in cues]
        col = UNIMODAL_LABEL[m]
        if col in t:
            t[f"{col}_polarity"] = [None if pd.isna(v) else polarity_of(v, d) for v, d in zip(t[col], t.dataset)]
            t[f"cue_{m}_contradicts"] = [opposite(c, lab) for c, lab in zip(t[f"cue_{m}_polarity"],
                                                                            t[f"{col}_polarity"])]
    return t


def tag_score_disagreements(table: pd.DataFrame) -> pd.DataFrame:
    """The well-formed answers whose <polarity> tag and score disagree (from :func:`chain_table`)."""
    cols = ["id", "dataset", "label", "tag", "prediction", "score_polarity", "completion"]
    return table.loc[table["tag_vs_score"], cols].reset_index(drop=True)


def cue_contradictions(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (clip, modality) where the chain's cue contradicts that modality's label."""
    rows = []
    for m in MODALITIES:
        col = f"cue_{m}_contradicts"
        if col not in table:
            continue
        lab = UNIMODAL_LABEL[m]
        for r in table[table[col]].itertuples():
            rows.append({"id": r.id, "dataset": r.dataset, "modality": m, "label": getattr(r, lab),
                         "label_polarity": getattr(r, f"{lab}_polarity"),
                         "cue_polarity": getattr(r, f"cue_{m}_polarity"), "cue": getattr(r, f"cue_{m}")})
    return pd.DataFrame(rows, columns=["id", "dataset", "modality", "label", "label_polarity", "cue_polarity", "cue"])


def run_config(run_dir: str | Path):
    """A run's config: ``resolved_config.yaml`` (paths as the run saw them), else Hydra's
    ``.hydra/config.yaml`` resolved here (``${oc.env:MSA_CACHE}`` then reads this process's environment)."""
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    if (run_dir / "resolved_config.yaml").exists():
        return OmegaConf.load(run_dir / "resolved_config.yaml")
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    OmegaConf.set_struct(cfg, False)
    cfg.paths.output_dir = str(run_dir)  # ${hydra:...} does not resolve outside the run
    return cfg


def dataset_roots(run_dir: str | Path) -> dict[str, str]:
    """dataset -> root directory of every dataset the run trained or was tested on."""
    from msa.plan import data_root, eval_targets

    cfg = run_config(run_dir)
    return {cfg.data.name: data_root(cfg, cfg.data.name), **{t.name: t.root for t in eval_targets(cfg)}}


def load_chains(run_dir: str | Path, stage: str = "eval") -> pd.DataFrame:
    """A stage's answers in the columns of ``predictions.jsonl``: the test answers of ``sft``, ``grpo`` or
    ``eval``, or with ``stage="cot"`` the teacher's kept chains (well formed, their score the true label)."""
    if stage != "cot":
        return load_predictions(run_dir, stage)
    cot = pd.read_json(Path(run_dir) / "cot" / "cot.jsonl", lines=True, precise_float=True)
    cot = cot[cot["kept"].astype(bool)] if "kept" in cot else cot
    return pd.DataFrame({"id": cot["id"].astype(str), "dataset": cot["dataset"], "label": cot["label"],
                         "completion": cot["answer"], "prediction": cot["score"], "parse_fail": False,
                         "parsed_polarity": cot["polarity"], "parsed_reasoning": cot["reasoning"]})


def run_chains(run_dir: str | Path, stage: str = "eval", roots: dict[str, str] | None = None) -> pd.DataFrame:
    """:func:`chain_table` of a run's answers (:func:`load_chains`) with each dataset's label file."""
    from msa.data.labels import read_labels

    pred = load_chains(run_dir, stage)
    roots = {**dataset_roots(run_dir), **(roots or {})}
    missing = sorted(set(pred.dataset) - set(roots))
    if missing:
        raise ValueError(f"{run_dir}: no root known for {missing}; pass roots={{name: path}}")
    labels = pd.concat([read_labels(roots[d], d).assign(dataset=d) for d in sorted(set(pred.dataset))],
                       ignore_index=True)
    return chain_table(pred, labels)


def pitch_track(audio: np.ndarray, sample_rate: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """Times (s) and f0 (Hz, NaN where unvoiced) by librosa's pYIN over 65-1000 Hz."""
    import librosa

    f0, voiced, _ = librosa.pyin(audio.astype(np.float32), fmin=65.0, fmax=1000.0, sr=sample_rate,
                                 frame_length=1024, hop_length=256)
    f0 = np.where(voiced, f0, np.nan)
    return librosa.times_like(f0, sr=sample_rate, hop_length=256), f0


_MOD_COLOURS = {"text": "#1f77b4", "audio": "#d62728", "video": "#2ca02c"}


def plot_clip(row, out_png: str | Path | None = None, n_frames: int = 6, sample_rate: int = 16000):
    """A clip the way a person inspects it: a strip of frames, the waveform with its pitch track, the
    transcript and labels, and the chain with each modality's cue sentence in that modality's colour.
    ``row`` is a row of :func:`run_chains` (needs ``path``). Returns the figure (saved if ``out_png``)."""
    import textwrap

    import matplotlib

    if out_png is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from msa.data.media import decode_audio, decode_video

    frames = decode_video(row.path, fps=4.0, min_frames=n_frames, max_frames=n_frames)
    audio = decode_audio(row.path, sample_rate=sample_rate)
    times, f0 = pitch_track(audio, sample_rate)
    fig = plt.figure(figsize=(11, 8.5))
    grid = fig.add_gridspec(4, len(frames), height_ratios=[1.1, 1.0, 0.25, 2.1], hspace=0.45)
    for i, fr in enumerate(frames):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(fr)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    ax.plot(np.arange(len(audio)) / sample_rate, audio, color="0.6", linewidth=0.5)
    ax.set_xlabel("s")
    ax.set_ylabel("waveform")
    ax2 = ax.twinx()
    ax2.plot(times, f0, color=_MOD_COLOURS["audio"], linewidth=1.5)
    ax2.set_ylabel("f0 (Hz)", color=_MOD_COLOURS["audio"])
    unimodal = ", ".join(f"{c} {getattr(row, c):+.1f}" for c in UNIMODAL_LABEL.values()
                         if hasattr(row, c) and not pd.isna(getattr(row, c)))
    head = (f"{row.id} ({row.dataset})   label {row.label:+.2f}" + (f"   [{unimodal}]" if unimodal else "")
            + f"\ntranscript: {textwrap.shorten(str(getattr(row, 'text', '')), 150)}")
    ax.set_title(head, loc="left", fontsize=9, parse_math=False)  # MMSA ids hold "$_$"
    text_ax = fig.add_subplot(grid[3, :])
    text_ax.axis("off")
    lines = [(f"answer: <polarity>{row.tag}</polarity> ... <score>{row.prediction:+.2f}</score>"
              + ("   (tag and score disagree)" if row.tag_vs_score else ""), "black")]
    if row.parse_fail:
        lines = [(f"not well formed ({getattr(row, 'parsed_error', '')}): "
                  + textwrap.shorten(str(row.completion), 300), "black")]
    cue_of = {getattr(row, f"cue_{m}"): m for m in MODALITIES if getattr(row, f"cue_{m}")}
    from msa.cot.filters import split_sentences

    reasoning = row.parsed_reasoning if isinstance(row.parsed_reasoning, str) else ""
    for s in split_sentences(reasoning):
        m = cue_of.get(s)
        tag = ""
        if m:
            pol = getattr(row, f"cue_{m}_polarity")
            lab = getattr(row, f"{UNIMODAL_LABEL[m]}_polarity", None)
            tag = f"  [{m} cue: {pol}" + (f"; label {lab}" if lab else "") + \
                  (" - CONTRADICTS" if getattr(row, f"cue_{m}_contradicts", False) else "") + "]"
        for j, part in enumerate(textwrap.wrap(s + tag, 130)):
            lines.append((("    " if j else "") + part, _MOD_COLOURS.get(m, "black")))
    y = 1.0
    for text, colour in lines[:22]:
        text_ax.text(0.0, y, text, color=colour, fontsize=8.5, family="monospace", va="top",
                     transform=text_ax.transAxes, parse_math=False)
        y -= 0.075
    if out_png is not None:
        fig.savefig(out_png, dpi=110, bbox_inches="tight")
        plt.close(fig)
    return fig
