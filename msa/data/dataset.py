"""One split of an MSA dataset as a torch Dataset of sample dicts with cached media features.

A sample is a plain dict (picklable across DataLoader workers)::

    {"id": "video_0001$_$0001", "dataset": "sims", "transcript": str, "label": float,
     "label_T": float, "label_A": float, "label_V": float,           # NaN when the release has none
     "conflict": float,       # the label file's 0/1 conflict column, NaN without it (msa.evaluation.SUBSETS)
     "video": dict | None,   # MediaCache.video(...) when video is on
     "audio": dict | None,   # MediaCache.audio(...) when audio is on and the clip has a track
     "audio_missing": bool}  # audio is on but the clip has none (allow_missing_audio=True)

A clip that cannot be used raises a :class:`~msa.data.media.MediaError` naming the dataset, clip id
and file (``on_error="raise"``, the default), or, with ``on_error="skip"``, comes back as a
:class:`SkippedSample` that the collator drops and reports in ``batch["skipped"]``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd
from torch.utils.data import Dataset

from msa.data.cache import MediaCache
from msa.data.media import MediaError, NoAudioError

log = logging.getLogger(__name__)

MODALITIES = ("text", "audio", "video")
ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class SkippedSample:
    """A clip left out of its batch, with why (``kind`` is a :data:`msa.data.media.KINDS` value)."""

    id: str
    dataset: str
    kind: str
    reason: str  # "<kind>: <dataset>: clip <id> (<path>): <why>"


def normalise_modalities(modalities: Mapping[str, bool] | Iterable[str] | None) -> tuple[str, ...]:
    """The enabled modalities in canonical order, from a switch dict or a list of names.

    >>> normalise_modalities({"text": True, "audio": False, "video": True})
    ('text', 'video')
    >>> normalise_modalities(["video", "text"])
    ('text', 'video')
    """
    if modalities is None:
        return MODALITIES
    if isinstance(modalities, str):
        raise TypeError(f"modalities must be a dict of switches or a list of names, got {modalities!r}")
    if isinstance(modalities, Mapping):
        unknown = [k for k in modalities if k not in MODALITIES]
        names = [k for k, on in modalities.items() if on]
    else:
        names = list(modalities)
        unknown = [k for k in names if k not in MODALITIES]
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; known: {', '.join(MODALITIES)}")
    if not names:
        raise ValueError("all modalities are off; enable at least one of text, audio, video")
    return tuple(m for m in MODALITIES if m in names)


def _float(value) -> float:
    return float(value) if value is not None and not (isinstance(value, float) and math.isnan(value)) else math.nan


class MSADataset(Dataset):
    """Samples of one split: ``frame`` is :func:`msa.data.labels.read_labels` output (one split);
    ``max_frames`` maps the ids of clips sampled with fewer frames to their cap."""

    def __init__(self, frame: pd.DataFrame, dataset: str, cache: MediaCache | None = None, *,
                 modalities: Mapping[str, bool] | Iterable[str] | None = None, on_error: str = "raise",
                 allow_missing_audio: bool = False, max_frames: Mapping[str, int] | None = None):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.dataset = dataset
        self.modalities = normalise_modalities(modalities)
        self.media = tuple(m for m in self.modalities if m != "text")
        if self.media and cache is None:
            raise ValueError(f"{dataset}: modalities {self.media} need a MediaCache")
        missing = [c for c in ("id", "text", "label", "path") if c not in frame.columns]
        if missing:
            raise ValueError(f"{dataset}: the frame lacks columns {missing}; build it with read_labels")
        self.cache = cache
        self.on_error = on_error
        self.allow_missing_audio = allow_missing_audio
        self.max_frames = dict(max_frames or {})  # clip id -> its frame cap (data.max_prompt_tokens)
        cols = ["id", "text", "label", "label_T", "label_A", "label_V", "conflict", "path"]
        self.rows = [dict(zip(cols, r)) for r in frame.reindex(columns=cols).itertuples(index=False)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict | SkippedSample:
        row = self.rows[index]
        sample = {
            "id": row["id"], "dataset": self.dataset, "transcript": str(row["text"]),
            "label": _float(row["label"]), "label_T": _float(row["label_T"]),
            "label_A": _float(row["label_A"]), "label_V": _float(row["label_V"]),
            "conflict": _float(row["conflict"]),
            "video": None, "audio": None, "audio_missing": False,
        }
        try:
            if "video" in self.media:
                sample["video"] = self.cache.video(row["path"], max_frames=self.max_frames.get(row["id"]))
            if "audio" in self.media:
                try:
                    sample["audio"] = self.cache.audio(row["path"])
                except NoAudioError:
                    # Only worth running without audio if another modality is left to judge from.
                    if not self.allow_missing_audio or self.modalities == ("audio",):
                        raise
                    sample["audio_missing"] = True
        except MediaError as exc:
            err = exc.with_context(dataset=self.dataset, clip_id=row["id"])
            if self.on_error == "skip":
                log.warning("skipping %s", err)
                return SkippedSample(id=row["id"], dataset=self.dataset, kind=err.kind, reason=f"{err.kind}: {err}")
            raise err from exc
        return sample


__all__ = ["MODALITIES", "MSADataset", "SkippedSample", "normalise_modalities"]
