"""The two kinds of batch a teacher (or judge) takes, made from label-table rows.

A teacher with ``needs_processor`` takes the collated model batch of a collator
(:class:`msa.data.collate.MultimodalCollator` or the judge's): media decoded through the data module's
cache, skipped clips in ``batch["skipped"]``. The others (the rule teacher, vLLM, which decodes the clips
itself) take a metadata batch: the collator's metadata keys plus ``paths``, no media read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def rows_batch(frame) -> dict:
    """A metadata batch (the collator's keys, plus paths) from label-table rows; no media."""
    return {"ids": list(frame["id"]), "datasets": [frame.attrs.get("dataset")] * len(frame),
            "transcripts": [str(t) for t in frame["text"]], "paths": list(frame["path"]),
            **{k: [float(x) for x in frame[k]] for k in ("label", "label_T", "label_A", "label_V")},
            "skipped": []}


def chunks(frame, size: int) -> Iterator:
    """``frame`` in consecutive parts of ``size`` rows, each keeping ``frame.attrs``."""
    for start in range(0, len(frame), size):
        part = frame.iloc[start:start + size]
        part.attrs.update(frame.attrs)
        yield part


def media_loader(dm, frame, batch_size: int, collate):
    """A DataLoader over ``frame``'s clips with ``dm``'s media cache and settings, in order."""
    from torch.utils.data import DataLoader

    from msa.data.dataset import MSADataset
    from msa.data.sampling import one_thread_worker

    ds = MSADataset(frame, dm.name, dm.cache, modalities=dm.modalities, on_error=dm.on_error,
                    allow_missing_audio=dm.allow_missing_audio)
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=dm.num_workers, collate_fn=collate,
                      worker_init_fn=one_thread_worker)


def teacher_batches(teacher, dm, frame, batch_size: int, collate=None) -> Iterable[dict]:
    """The batches of ``frame`` that ``teacher`` takes: collated by ``collate`` (default: ``dm``'s
    collator) when it needs the processor, metadata batches otherwise."""
    if teacher.needs_processor:
        return media_loader(dm, frame, batch_size, collate if collate is not None else dm.collator())
    return map(rows_batch, chunks(frame, batch_size))
