"""Stage ``cot``: teacher chains of thought in the DC format, filtered, with the true score (paper §III-A).

    python train.py stage=cot teacher=rule data=demo                     # offline, from the unimodal labels
    python train.py stage=cot teacher=hf teacher.path=/ckpt/Qwen2.5-Omni-7B data=sims data.root=/data/SIMS
    python train.py stage=cot teacher=tiny data=demo cot.limit=24        # the random tiny model: mostly dropped

For each clip of ``cot.split`` the teacher (:mod:`msa.cot`) writes ``cot.num_samples`` DC answers; each
is parsed strictly and filtered (:mod:`msa.cot.filters`: format, polarity consistency, plausibility, then
the optional judge of :mod:`msa.cot.judge` on the best survivor). The best sample of a clip is the one
that passes the most filters, then the one whose score is closest to the true label. A kept clip's answer
is rebuilt with the true polarity and the true score at the dataset's precision (§III-A: "replace the
generated score with the real score label"; :mod:`msa.cot.records`). This module holds the run loop:
settings and resume checks, batches in, records out, the summary.

Outputs, next to ``cot.output`` (the link to ``sft.cot``):

* ``cot.jsonl`` -- one record per kept clip: id, dataset, split, transcript, modalities (the prompt
  fields), label, polarity, score, reasoning, answer (the SFT target), the teacher's raw output, score
  and polarity, every filter verdict;
* ``rejected.jsonl`` -- the same for dropped clips, with ``reason`` (the first failing filter);
* ``summary.json`` -- kept / dropped per reason, filter failures, parse failures, throughput, and the
  text-conflict clips (the transcript's label against the clip's) kept and dropped per reason: with
  ``teacher.text_led=true`` the polarity filter drops exactly those;
* ``cot_settings.json`` -- what the records depend on; a restart with other settings is refused.

Resumable: records are appended and fsynced batch by batch (:mod:`msa.jsonl`); a restart with the same
output skips every id already in either file, and a line torn by a crash is truncated first, so a crash
loses at most the batch in flight and nothing is written twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from msa.cot.batches import teacher_batches
from msa.cot.filters import SKIPPED, Verdict
from msa.cot.judge import judge_verdict
from msa.cot.records import assess, build_record, skipped_record
from msa.jsonl import JsonlWriter, done_ids, iter_jsonl

log = logging.getLogger(__name__)

REJECTED = "rejected.jsonl"
SUMMARY = "summary.json"
SETTINGS = "cot_settings.json"
# Settings that change what a record says: resuming with other values would mix two CoT sets.
_DATA_KEYS = ("name", "root", "n_clips", "modalities", "fps", "max_frames", "max_audio_seconds")
_COT_KEYS = ("split", "num_samples", "temperature", "top_p", "max_new_tokens", "filters", "min_reasoning_chars",
             "max_reasoning_chars", "judge")


# ----------------------------------------------------------------------------------------------
# Settings and clips
# ----------------------------------------------------------------------------------------------

def settings(cfg) -> dict:
    """What the records depend on (teacher, data, filters, sampling); compared on restart."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    teacher = OmegaConf.to_container(cfg.teacher, resolve=True)
    teacher.pop("cache_dir", None)  # where the tiny model is cached does not change it
    cot = OmegaConf.to_container(cfg.cot, resolve=True)
    keys = _COT_KEYS
    if teacher.get("kind") == "rule":  # sampling settings do not reach the rule teacher
        keys = tuple(k for k in keys if k not in ("temperature", "top_p", "max_new_tokens"))
    return {"data": {k: data.get(k) for k in _DATA_KEYS}, "teacher": teacher, "cot": {k: cot.get(k) for k in keys}}


def check_settings(path: Path, current: dict, output: Path, *, has_records: bool, write: bool = True) -> None:
    """Refuse a restart whose settings differ from those the existing records were written with;
    otherwise (and with ``write``) record ``current``. Without records there is nothing to mix, so a
    first run that failed (a wrong teacher path, say) does not lock its settings in."""
    if has_records and path.exists():
        before = json.loads(path.read_text())
        diffs = [f"{group}.{k}: {before.get(group, {}).get(k)!r} -> {v!r}" for group, vals in current.items()
                 for k, v in vals.items() if before.get(group, {}).get(k) != v]
        if diffs:
            raise ValueError(f"cot.output={output}: this directory holds a CoT run with other settings "
                             f"({'; '.join(diffs[:5])}). Resuming would mix two CoT sets: point cot.output at a "
                             f"new directory, or delete {output.name}, {REJECTED} and {SETTINGS} there to start "
                             "over.")
        return
    if write:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(current, indent=2, sort_keys=True))
        tmp.replace(path)



def _clips(cfg, teacher, split: str):
    """The data module and the label rows of the clips to write chains for (``data.limit``, ``cot.limit``)."""
    from msa.data.datamodule import build_datamodule
    from msa.data.labels import read_labels, split as split_rows

    dataset = cfg.data.name
    dm = build_datamodule(cfg.data, processor=teacher.processor if teacher.needs_processor else None,
                          use_audio_in_video=bool(getattr(teacher, "use_audio_in_video", True)), predict_split=split)
    dm.prepare_data()  # generates the demo set on first use
    if teacher.needs_processor:
        dm.setup("predict")
        frame = dm.frames[split]
    else:  # the label table alone: no media decoded, no processor needed
        frame = split_rows(read_labels(dm.root, dataset), split)
        if cfg.data.get("limit"):
            frame = frame.head(int(cfg.data.limit))
    if cfg.cot.get("limit"):
        frame = frame.head(int(cfg.cot.limit))
    frame.attrs["dataset"] = dataset
    return dm, frame


# ----------------------------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------------------------

def summarize(kept_path: Path, rejected_path: Path, *, total: int) -> dict:
    """Counts over both files (so they are right after any number of restarts)."""
    kept = dropped = samples = sample_fail_format = 0
    by_reason: Counter = Counter()
    conflict = {"clips": 0, "kept": 0, "dropped": 0}
    conflict_reasons: Counter = Counter()
    failures: Counter = Counter()
    seen: Counter = Counter()
    for path in (kept_path, rejected_path):
        for rec in iter_jsonl(path):
            seen[rec["id"]] += 1
            if rec.get("kept"):
                kept += 1
            else:
                dropped += 1
                by_reason[rec.get("reason")] += 1
            if rec.get("text_conflict"):
                conflict["clips"] += 1
                conflict["kept" if rec.get("kept") else "dropped"] += 1
                if not rec.get("kept"):
                    conflict_reasons[rec.get("reason")] += 1
            # Distinct reasons per clip: a malformed answer fails every later filter with "format" too.
            failures.update({v.get("reason") for v in (rec.get("filters") or {}).values() if not v.get("ok", True)})
            reasons = rec.get("sample_reasons") or []
            samples += len(reasons)
            sample_fail_format += sum(r == "format" for r in reasons)
    done = kept + dropped
    top = ", ".join(f"{r} {n}" for r, n in by_reason.most_common())
    return {
        "message": f"kept {kept} of {done} clips ({100 * kept / done if done else 0:.0f}%)"
                   + (f"; dropped: {top}" if top else "")
                   + (f"; text-conflict clips dropped: {conflict['dropped']} of {conflict['clips']}"
                      if conflict["clips"] else ""),
        "clips": total, "done": done, "kept": kept, "dropped": dropped,
        "kept_rate": kept / done if done else 0.0,
        "dropped_by_reason": dict(sorted(by_reason.items())),
        "filter_failures": dict(sorted(failures.items())),
        "parse_failures": by_reason.get("format", 0),
        "samples": samples, "sample_parse_failures": sample_fail_format,
        "judge_unparsed": failures.get("judge:unparsed", 0),
        "duplicates": sum(n - 1 for n in seen.values() if n > 1),
        # clips whose transcript's label has the other sign than theirs; dropped ones by first failing filter
        "text_conflict": {**conflict, "dropped_by_reason": dict(sorted(conflict_reasons.items()))},
    }


# ----------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------

def run(ctx) -> dict:
    from tqdm.auto import tqdm

    from msa.cot.judge import build_judge
    from msa.cot.model_teachers import build_teacher
    from msa.data.dataset import normalise_modalities

    cfg, c = ctx.cfg, ctx.cfg.cot
    dataset, split = cfg.data.name, c.split
    modalities = normalise_modalities(OmegaConf.to_container(cfg.data.modalities, resolve=True))
    out = Path(c.output)
    out_dir = out.parent
    rejected_path = out_dir / REJECTED
    out_dir.mkdir(parents=True, exist_ok=True)
    filters = OmegaConf.to_container(c.filters, resolve=True)
    if filters.get("judge") and not c.get("judge"):
        raise ValueError("cot.filters.judge=true needs a judge model: cot.judge={kind: hf, path: /ckpt} "
                         "(a teacher-style node)")
    current = settings(cfg)
    # Fail before loading a model when the records on disk were written with other settings.
    check_settings(out_dir / SETTINGS, current, out, has_records=bool(done_ids(out, rejected_path)), write=False)

    t_load = time.perf_counter()
    teacher_node = OmegaConf.to_container(cfg.teacher, resolve=True)
    data_node = OmegaConf.to_container(cfg.data, resolve=True)
    teacher = build_teacher(teacher_node, dataset=dataset, modalities=modalities, num_samples=int(c.num_samples),
                            temperature=float(c.temperature), top_p=float(c.top_p),
                            max_new_tokens=int(c.max_new_tokens), seed=int(cfg.seed), media=data_node)
    dm, frame = _clips(cfg, teacher, split)
    judge = None
    if filters.get("judge"):
        judge = build_judge(OmegaConf.to_container(c.judge, resolve=True), teacher=teacher, teacher_node=teacher_node,
                            data_cfg=data_node, dm=dm, frame=frame, modalities=modalities, seed=int(cfg.seed))
    load_s = time.perf_counter() - t_load

    with JsonlWriter(out) as kept_w, JsonlWriter(rejected_path) as rej_w:
        done = done_ids(out, rejected_path)  # read after the writers hold the lock and repaired any torn tail
        check_settings(out_dir / SETTINGS, current, out, has_records=bool(done))
        pending = frame[~frame["id"].isin(done)].reset_index(drop=True)
        pending.attrs.update(frame.attrs)
        n_before = len(frame) - len(pending)
        if n_before:
            log.info("cot: resuming, %d of %d clips already done (%s)", n_before, len(frame), out)
        if kept_w.repaired or rej_w.repaired:
            log.warning("cot: truncated a torn last line (%d + %d bytes) left by an interrupted run",
                        kept_w.repaired, rej_w.repaired)
        bs = int(c.batch_size)
        batches = teacher_batches(teacher, dm, pending, bs)
        t0, n_run, n_kept = time.perf_counter(), 0, 0
        with tqdm(total=len(frame), initial=n_before, unit="clip", desc=f"cot {dataset}", dynamic_ncols=True) as bar:
            for batch in batches:
                records = process_batch(batch, teacher, judge, dataset=dataset, split=split, modalities=modalities,
                                        filters=filters, min_chars=int(c.min_reasoning_chars),
                                        max_chars=int(c.max_reasoning_chars))
                kept_w.write_many(r for r in records if r["kept"])
                rej_w.write_many(r for r in records if not r["kept"])
                n_run += len(records)
                n_kept += sum(r["kept"] for r in records)
                bar.update(len(records))
                bar.set_postfix(kept=n_kept, dropped=n_run - n_kept)
        seconds = time.perf_counter() - t0

    summary = summarize(out, rejected_path, total=len(frame))
    summary.update(teacher=teacher.name, dataset=dataset, split=split, output=str(out), rejected=str(rejected_path),
                   filters=filters, this_run={"clips": n_run, "resumed_after": n_before, "seconds": round(seconds, 3),
                                              "clips_per_s": round(n_run / seconds, 3) if seconds > 0 else None,
                                              "load_seconds": round(load_s, 3)})
    tmp = out_dir / (SUMMARY + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out_dir / SUMMARY)
    log.info("cot: %s -> %s", summary["message"], out)
    if summary["kept"] == 0:
        log.warning("cot: no clip survived the filters; the sft stage will have nothing to train on")
    ctx.artefacts["cot"] = str(out)
    ctx.record("cot", summary)
    return summary


def process_batch(batch: Mapping[str, Any], teacher, judge, *, dataset: str, split: str, modalities: Sequence[str],
                  filters: Mapping[str, Any], min_chars: int, max_chars: int) -> list[dict]:
    """Teacher samples -> filters -> best sample -> judge -> one record per clip (skipped clips too)."""
    records = [skipped_record(i, r, dataset=dataset, split=split, teacher=teacher.name)
               for i, r in batch.get("skipped", [])]
    ids = list(batch["ids"])
    if not ids:
        return records
    samples = teacher.generate(batch)
    if len(samples) != len(ids):
        raise RuntimeError(f"teacher {teacher.name} returned {len(samples)} sample lists for {len(ids)} clips")
    labels = [float(x) for x in batch["label"]]
    ranked = [assess(s, label=y, dataset=dataset, modalities=modalities, filters=filters, min_chars=min_chars,
                     max_chars=max_chars) for s, y in zip(samples, labels)]
    judged: dict[str, str | None] = {}
    if judge is not None:
        survivors = {i: (cands[0].parsed.polarity, cands[0].parsed.reasoning) for i, cands in zip(ids, ranked)
                     if cands[0].failure is None}
        judged = judge(survivors)
    for i, (clip_id, cands, y) in enumerate(zip(ids, ranked, labels)):
        verdict, raw = None, None
        if judge is not None:
            if clip_id in judged:
                raw = judged[clip_id]
                verdict = (judge_verdict(raw) if raw is not None
                           else Verdict(ok=False, reason="judge:media", detail="the judge could not read the clip"))
            else:  # dropped by an earlier filter: not judged
                verdict = SKIPPED
        records.append(build_record(clip_id=clip_id, dataset=dataset, split=split,
                                    transcript=batch["transcripts"][i], modalities=modalities, label=y,
                                    teacher=teacher.name, cands=cands, judge=verdict, judge_raw=raw,
                                    label_T=_label_T(batch, i)))
    return records


def _label_T(batch: Mapping[str, Any], i: int) -> float | None:
    """The transcript's label of the batch's ``i``-th clip (None where the batch or the dataset has none)."""
    values = batch.get("label_T")
    return None if values is None else float(values[i])
