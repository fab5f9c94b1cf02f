"""The data layer: MMSA label files, PyAV decoding, the processed-media cache, Dataset, collate and
one LightningDataModule per dataset.

    specs.py       the facts about each dataset (score range, metric family, polarity band): get_spec
    labels.py      read_labels(root, dataset) -> DataFrame (ids, text, float64 labels, split, path)
    media.py       decode_video / decode_audio with PyAV; MediaError, NoAudioError
    cache.py       MediaCache: the media store (resized uint8 frames, audio features) keyed by content +
                   settings, normalised on load; store_bytes; python -m msa.data.cache stats|prune|verify
    store.py       the store's entry files (layout, CRC, atomic writes), its size bound and upkeep
    dataset.py     MSADataset: one split as sample dicts (or SkippedSample markers)
    collate.py     MultimodalCollator: samples -> thinker inputs, token expansion by the processor
    datamodule.py  MSADataModule and its per-dataset subclasses; SkipReport (filled by msa.callbacks.SkipCounter)

Names are imported lazily so that ``import msa.data.labels`` does not pull in torch or lightning.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LabelFileError": "labels", "read_labels": "labels",
    "MediaError": "media", "NoAudioError": "media", "decode_audio": "media", "decode_video": "media",
    "MediaCache": "cache",
    "MSADataset": "dataset", "SkippedSample": "dataset",
    "MultimodalCollator": "collate",
    "DATAMODULES": "datamodule", "MSADataModule": "datamodule", "SkipReport": "datamodule",
    "build_datamodule": "datamodule",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"msa.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'msa.data' has no attribute {name!r}")
