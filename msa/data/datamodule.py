"""One LightningDataModule per dataset on a shared base: splits, cached media, collate, skip counts.

    dm = build_datamodule(cfg.data, processor=processor)   # a conf/data node; or name="demo", batch_size=2
    dm.prepare_data(); dm.setup()
    batch = next(iter(dm.train_dataloader()))          # model inputs + metadata, see MultimodalCollator

The processor is attached after construction because the policy (and so its processor) is loaded
by the stage; ``setup()`` without one is an error. ``targets`` (id -> answer text) turn on teacher
forcing for the train loader only, and restrict the train split to the clips that have a target
(the CoT set after filtering); the other loaders serve prompts for generation. ``predict`` serves
``predict_split`` (the train split by default: the CoT stage writes chains for it).

Skipped clips (``on_error="skip"``) travel in ``batch["skipped"]``; :class:`msa.callbacks.SkipCounter`
sums them into the data module's :class:`SkipReport` and logs ``data/skipped`` per epoch.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import lightning as L
import pandas as pd
from torch.utils.data import DataLoader

from msa.data.cache import MODES, MediaCache
from msa.data.collate import MultimodalCollator
from msa.data.dataset import ON_ERROR, MSADataset, normalise_modalities
from msa.data.labels import read_labels, split as split_rows
from msa.data.sampling import resumable_loader, train_position
from msa.data.specs import get_spec

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


def _default_cache_root() -> Path:
    from msa.models.tiny import default_cache_dir  # $MSA_CACHE or ~/.cache/msa, shared with the models

    return default_cache_dir()


class SkipReport:
    """Counts of clips left out, per split and per reason kind, for stages and callbacks to read."""

    def __init__(self):
        self.counts: collections.Counter = collections.Counter()  # (split, kind) -> n
        self.examples: list[tuple[str, str, str]] = []  # (split, id, reason), the first few

    def add(self, split: str, skipped: Iterable[tuple[str, str]], keep: int = 20) -> int:
        n = 0
        for clip_id, reason in skipped:
            kind = reason.split(":", 1)[0] if ":" in reason else "error"
            self.counts[(split, kind)] += 1
            if len(self.examples) < keep:
                self.examples.append((split, clip_id, reason))
            n += 1
        return n

    def total(self, split: str | None = None) -> int:
        return sum(n for (s, _), n in self.counts.items() if split is None or s == split)

    def __repr__(self) -> str:
        return f"SkipReport(total={self.total()}, counts={dict(self.counts)})"


class MSADataModule(L.LightningDataModule):
    """The data of one dataset (``name`` in :mod:`msa.data.specs`) in the MMSA layout at ``root``.

    ``modalities``: dict of switches (``text, audio, video``) or a list of names. ``limit`` caps each
    split (first rows) for smoke runs. ``cache_dir``: the media store (None: ``$MSA_CACHE/media``;
    False: no disk cache); ``cache``: what it keeps (``all``, ``audio``: video decoded on every access,
    ``none``); ``cache_max_gb``: its size bound (least recently used entries go first).
    ``fps/min_frames/max_frames`` drive frame sampling, ``max_audio_seconds`` cuts the audio.
    ``answer``, ``range_dataset``, ``targets`` and ``use_audio_in_video`` go to the collator.
    ``bucket_by_length`` batches training clips of similar prompt length together (msa.data.sampling).
    """

    def __init__(self, name: str, root: str | Path | None = None, *, batch_size: int = 1,
                 eval_batch_size: int | None = None, num_workers: int = 0, fps: float = 2.0, min_frames: int = 4,
                 max_frames: int = 768, max_audio_seconds: float | None = None,
                 modalities: Mapping[str, bool] | Iterable[str] | None = None, on_error: str = "raise",
                 allow_missing_audio: bool = False, cache_dir: str | Path | None | bool = None,
                 cache: str = "all", cache_max_gb: float | None = None, limit: int | None = None,
                 shuffle: bool = True, seed: int = 0, answer: str = "dc",
                 range_dataset: str | None = None, targets: Mapping[str, str] | None = None,
                 use_audio_in_video: bool = True, predict_split: str = "train",
                 video_min_pixels: int | None = None, video_max_pixels: int | None = None,
                 max_prompt_tokens: int | None = None, bucket_by_length: bool = False):
        super().__init__()
        self.spec = get_spec(name)  # unknown names fail here, listing the known ones
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ValueError(f"batch sizes must be >= 1, got {batch_size}, {eval_batch_size}")
        if cache not in MODES:
            raise ValueError(f"cache must be one of {MODES}, got {cache!r}")
        if cache_max_gb is not None and cache_max_gb <= 0:
            raise ValueError(f"cache_max_gb must be > 0 or None, got {cache_max_gb}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 or None, got {limit}")
        if predict_split not in SPLITS:
            raise ValueError(f"predict_split must be one of {SPLITS}, got {predict_split!r}")
        if range_dataset is not None:
            get_spec(range_dataset)
        self.name = name
        self.root = Path(root) if root is not None else self.default_root()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.fps, self.min_frames, self.max_frames = fps, min_frames, max_frames
        self.max_audio_seconds = max_audio_seconds
        self.modalities = normalise_modalities(modalities)
        self.on_error = on_error
        self.allow_missing_audio = allow_missing_audio
        self.cache_dir = cache_dir
        self.cache_mode, self.cache_max_gb = cache, cache_max_gb
        self.limit = limit
        self.shuffle = shuffle
        self.seed = seed
        self.answer = answer
        self.range_dataset = range_dataset
        self.targets = dict(targets) if targets is not None else None
        self.use_audio_in_video = use_audio_in_video
        self.predict_split = predict_split
        self.video_min_pixels, self.video_max_pixels = video_min_pixels, video_max_pixels
        self.max_prompt_tokens = max_prompt_tokens
        self.bucket_by_length = bucket_by_length
        self.processor = None
        self.cache: MediaCache | None = None
        self.frames: dict[str, pd.DataFrame] = {}
        self.datasets: dict[str, MSADataset] = {}
        self.skip_report = SkipReport()
        self._train_position: dict | None = None  # from a checkpoint, for the next train loader built
        self._lengths: dict[str, list[int]] = {}  # split -> prompt tokens per clip (prompt_lengths)

    # -- configuration ------------------------------------------------------------------------------
    def default_root(self) -> Path:
        raise ValueError(f"{self.name}: give the dataset directory (root=...), the one holding "
                         "label.csv or meta.csv and Raw/")

    def attach_processor(self, processor) -> "MSADataModule":
        """Use ``processor`` (the policy's) for media features and tokens; resets built datasets."""
        self.processor = processor
        self.cache = None
        self.datasets = {}
        return self

    def set_targets(self, targets: Mapping[str, str] | None) -> "MSADataModule":
        """Teacher-forcing answers for the train loader (id -> answer text); resets built datasets."""
        self.targets = dict(targets) if targets is not None else None
        self.datasets = {}
        return self

    def cache_path(self) -> Path | None:
        if self.cache_dir is False:
            return None
        if self.cache_dir is None or self.cache_dir is True:
            return _default_cache_root() / "media"
        return Path(self.cache_dir)

    # -- Lightning hooks ----------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.processor is None:
            raise RuntimeError(f"{self.name}: no processor attached; call dm.attach_processor(processor) "
                               "with the policy's processor before setup()")
        if self.datasets:
            return
        self._lengths = {}
        table = read_labels(self.root, self.name)
        media = [m for m in self.modalities if m != "text"]
        if media and self.cache is None:
            self.cache = MediaCache(self.processor, self.cache_path(), fps=self.fps, min_frames=self.min_frames,
                                    max_frames=self.max_frames, max_audio_seconds=self.max_audio_seconds,
                                    video_min_pixels=self.video_min_pixels, video_max_pixels=self.video_max_pixels,
                                    mode=self.cache_mode, max_gb=self.cache_max_gb)
        for name in SPLITS:
            frame = split_rows(table, name)
            if name == "train" and self.targets is not None:
                has = frame["id"].isin(self.targets.keys())
                log.info("%s: %d of %d train clips have a target answer", self.name, int(has.sum()), len(frame))
                frame = frame[has].reset_index(drop=True)
            if self.limit is not None:
                frame = frame.head(self.limit).reset_index(drop=True)
            self.frames[name] = frame
            self.datasets[name] = MSADataset(frame, self.name, self.cache, modalities=self.modalities,
                                             on_error=self.on_error, allow_missing_audio=self.allow_missing_audio,
                                             max_frames=self.frame_caps(frame))

    def frame_caps(self, frame: pd.DataFrame) -> dict[str, int]:
        """Clip id -> frame cap for the clips whose prompt would exceed ``max_prompt_tokens``, from their
        headers (msa.data.budget; the run plan printed the same count)."""
        if self.max_prompt_tokens is None or "video" not in self.modalities:
            return {}
        from msa.data import budget
        from msa.data.media import MediaError

        dcfg = self.budget_settings()
        headers = self.clip_headers(frame)
        caps = {}
        for clip_id, path, text in zip(frame["id"], frame["path"], frame["text"]):
            h = headers[str(path)]
            if isinstance(h, MediaError):
                continue  # the dataset raises or skips it when it is read
            try:
                cap = budget.fitted_max_frames(h, dcfg, transcript=str(text))
            except MediaError:
                continue
            if cap is not None:
                caps[clip_id] = max(cap, self.min_frames)  # 0: not even the fewest fit (the plan refuses those)
        if caps:
            log.info("%s: %d of %d clips get fewer frames to stay within %d prompt tokens", self.name, len(caps),
                     len(frame), self.max_prompt_tokens)
        return caps

    def budget_settings(self) -> dict:
        """The data settings a clip's prompt length depends on (msa.data.budget's ``data_cfg``)."""
        return dict(name=self.name, fps=self.fps, min_frames=self.min_frames, max_frames=self.max_frames,
                    max_audio_seconds=self.max_audio_seconds, video_min_pixels=self.video_min_pixels,
                    video_max_pixels=self.video_max_pixels, max_prompt_tokens=self.max_prompt_tokens,
                    modalities={m: m in self.modalities for m in ("text", "audio", "video")})

    def clip_headers(self, frame: pd.DataFrame) -> dict:
        """path -> ClipHeaders (or the MediaError it raised) of the frame's clips; kept in the media cache."""
        from msa.data.headers import read_many, store_file

        where = self.cache_path()
        return read_many(frame["path"], store=store_file(where, self.root) if where else None)

    def collator(self, *, targets: Mapping[str, str] | None = None) -> MultimodalCollator:
        return MultimodalCollator(self.processor, answer=self.answer, range_dataset=self.range_dataset,
                                  modalities=self.modalities, targets=targets,
                                  use_audio_in_video=self.use_audio_in_video)

    def dataloader(self, split: str, *, shuffle: bool = False, batch_size: int | None = None,
                   targets: Mapping[str, str] | None = None) -> DataLoader:
        """A loader over ``split`` (train/valid/test); the named loaders below are shortcuts.

        Order is seeded per epoch (msa.data.sampling); workers (``num_workers``) are persistent, one
        torch thread each, and change nothing in the batches.
        """
        if not self.datasets:
            self.setup()
        if split not in self.datasets:
            raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        return resumable_loader(self.datasets[split], batch_size=batch_size or self.eval_batch_size, shuffle=shuffle,
                                seed=self.seed, num_workers=self.num_workers, collate_fn=self.collator(targets=targets))

    def train_dataloader(self) -> DataLoader:
        """The training loader: clips of similar prompt length batched together (``bucket_by_length``), the
        epoch's position reported at checkpoints and resumed batch for batch after ``ckpt_path=``."""
        if not self.datasets:
            self.setup()
        # Resuming: this loader starts where the checkpointed epoch stopped. The position goes into the
        # batch sampler's arguments, which survive Lightning rebuilding it for DDP.
        resume, self._train_position = self._train_position, None
        return resumable_loader(self.datasets["train"], batch_size=self.batch_size, shuffle=self.shuffle,
                                seed=self.seed, progress=self._fit_progress, resume=resume,
                                lengths=self.prompt_lengths("train") if self.bucket_by_length else None,
                                num_workers=self.num_workers, collate_fn=self.collator(targets=self.targets))

    def prompt_lengths(self, split: str) -> list[int]:
        """Prompt tokens of each clip of ``split`` under the media budget (frame caps included), from
        container headers only (msa.data.budget; no decoding). An unreadable clip counts 0 under
        ``on_error=skip`` (it is skipped, and counted, when loaded) and raises otherwise."""
        if split in self._lengths:
            return self._lengths[split]
        from msa.data.budget import prompt_tokens, text_tokens
        from msa.data.media import MediaError

        frame, dcfg = self.frames[split], self.budget_settings()
        if all(m == "text" for m in self.modalities):
            self._lengths[split] = [text_tokens(dcfg, str(text)) for text in frame["text"]]
            return self._lengths[split]
        caps, headers = self.datasets[split].max_frames, self.clip_headers(frame)
        lengths = []
        for clip_id, path, text in zip(frame["id"], frame["path"], frame["text"]):
            try:
                h = headers[str(path)]
                if isinstance(h, MediaError):
                    raise h
                lengths.append(prompt_tokens(h, dcfg, transcript=str(text), max_frames=caps.get(clip_id)))
            except MediaError:
                if self.on_error != "skip":
                    raise
                lengths.append(0)
        self._lengths[split] = lengths
        return lengths

    # The train position also travels in the data module's own checkpoint entry: Lightning restores that
    # before configure_optimizers, whereas a loader built there to count the steps (SFT's schedule asks
    # trainer.estimated_stepping_batches) never gets its own state back (Lightning #20550).
    def state_dict(self) -> dict:
        position = train_position(self._fit_progress)
        return {"train_position": position} if position else {}

    def load_state_dict(self, state: dict) -> None:
        self._train_position = state.get("train_position")

    def _fit_progress(self) -> tuple[int, int, int] | None:
        """(epoch, training batches finished in it, batches per epoch) while a Trainer fits this module."""
        trainer = self.trainer
        if trainer is None:
            return None
        per_epoch = trainer.num_training_batches
        per_epoch = int(per_epoch) if per_epoch != float("inf") else 2**62
        return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed, per_epoch

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("valid")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.dataloader(self.predict_split)


class NamedDataModule(MSADataModule):
    """A data module bound to one dataset name (``dataset_name``): what the registry holds."""

    dataset_name: str

    def __init__(self, root: str | Path | None = None, **kwargs):
        super().__init__(self.dataset_name, root, **kwargs)


class SIMSDataModule(NamedDataModule):
    """CH-SIMS: ``label.csv``, scores in [-1, 1], zero-padded clip ids."""

    dataset_name = "sims"


class SIMSv2DataModule(NamedDataModule):
    """CH-SIMS v2 (s): ``meta.csv``; unlabelled v2(u) rows are left out."""

    dataset_name = "simsv2"


class MOSIDataModule(NamedDataModule):
    """CMU-MOSI: scores in [-3, 3], no unimodal labels."""

    dataset_name = "mosi"


class MOSEIDataModule(NamedDataModule):
    """CMU-MOSEI: scores in [-3, 3], its own column order."""

    dataset_name = "mosei"


class DemoDataModule(NamedDataModule):
    """The synthetic SIMS-like demo set, generated on first use (``prepare_data``)."""

    dataset_name = "demo"
    flavour = "sims"
    # The set is drawn by msa.data.synthetic: it has a default root and takes these generation keys.
    generation_keys: tuple[str, ...] = ("n_clips", "splits")

    def __init__(self, root: str | Path | None = None, *, n_clips: int = 300, data_seed: int = 0,
                 splits: Sequence[float] | None = None, **kwargs):
        self.n_clips, self.data_seed = n_clips, data_seed
        self.splits = None if splits is None else tuple(float(f) for f in splits)
        super().__init__(root, **kwargs)

    def default_root(self) -> Path:
        return _default_cache_root() / "data" / self.dataset_name

    def prepare_data(self) -> None:
        from msa.data import synthetic

        splits = {} if self.splits is None else {"splits": self.splits}
        synthetic.ensure(self.root, flavour=self.flavour, n_clips=self.n_clips, seed=self.data_seed, **splits)


class DemoMOSIDataModule(DemoDataModule):
    """The synthetic MOSI-like demo set (scores in [-3, 3]) for cross-dataset runs."""

    dataset_name = "demo_mosi"
    flavour = "mosi"


class StudyDataModule(DemoDataModule):
    """The study set: the demo family (SIMS-like) with ``text_conflict`` of its clips text-conflict clips
    (the transcript's label against the clip's, both nonzero; 25 % by default), stratified into every
    split; 700 clips, 60 % of them test, unless told otherwise (README, Synthetic sets)."""

    dataset_name = "study"
    flavour = "sims"
    generation_keys = ("n_clips", "splits", "text_conflict")

    def __init__(self, root: str | Path | None = None, *, n_clips: int = 700, text_conflict: float = 0.25,
                 splits: Sequence[float] | None = (0.3, 0.1, 0.6), **kwargs):
        self.text_conflict = text_conflict
        super().__init__(root, n_clips=n_clips, splits=splits, **kwargs)

    def prepare_data(self) -> None:
        from msa.data import synthetic

        splits = {} if self.splits is None else {"splits": self.splits}
        synthetic.ensure(self.root, flavour=self.flavour, n_clips=self.n_clips, seed=self.data_seed,
                         text_conflict=self.text_conflict, **splits)


class HardDataModule(DemoDataModule):
    """The hard synthetic set (msa.data.synthetic.hard, SIMS-like): cues only in face, voice and words,
    voted labels, ``conflict`` clips; 2000 clips, 60 % of them test, unless told otherwise."""

    dataset_name = "hard"
    flavour = "sims"
    generation_keys = ("n_clips", "splits", "conflict")

    def __init__(self, root: str | Path | None = None, *, n_clips: int = 2000, conflict: float = 0.25, **kwargs):
        self.conflict = conflict
        super().__init__(root, n_clips=n_clips, **kwargs)

    def prepare_data(self) -> None:
        from msa.data import synthetic

        splits = {} if self.splits is None else {"splits": self.splits}
        synthetic.ensure_hard(self.root, flavour=self.flavour, n_clips=self.n_clips, seed=self.data_seed,
                              conflict=self.conflict, **splits)


class HardMOSIDataModule(HardDataModule):
    """The hard synthetic set, MOSI-like flavour (votes in [-3, 3])."""

    dataset_name = "hard_mosi"
    flavour = "mosi"


DATAMODULES: dict[str, type[NamedDataModule]] = {
    cls.dataset_name: cls
    for cls in (SIMSDataModule, SIMSv2DataModule, MOSIDataModule, MOSEIDataModule, DemoDataModule, DemoMOSIDataModule,
                StudyDataModule, HardDataModule, HardMOSIDataModule)
}


GENERATION_KEYS = ("n_clips", "splits", "conflict", "text_conflict")  # conf/data keys that only synthetic sets take


def generation_keys(name: str) -> tuple[str, ...]:
    """The generation keys dataset ``name`` takes (none: a real dataset, read from its root)."""
    return getattr(DATAMODULES.get(name), "generation_keys", ())


def is_generated(name: str) -> bool:
    """Whether dataset ``name`` is drawn by msa.data.synthetic (and so has a default root)."""
    return bool(generation_keys(name))


def datamodule_kwargs(data_cfg: Mapping | None = None, *, name: str | None = None, root: str | Path | None = None,
                      **overrides) -> dict:
    """Constructor arguments (``name`` and ``root`` included) of the data module for a ``conf/data`` node.

    ``overrides`` replace the node's keys. ``name`` other than the node's (a cross-dataset eval) comes
    with its own ``root``; ``root`` alone moves the node's dataset. ``eval_datasets`` is read through
    ``eval.datasets`` (:func:`msa.plan.eval_targets`), and the generation keys of a synthetic set mean
    nothing to a dataset that does not take them (a real one, or another family): both are dropped.

    >>> node = {"name": "demo", "root": "/d", "n_clips": 300, "batch_size": 4, "eval_datasets": ["demo"]}
    >>> datamodule_kwargs(node, answer="dc")
    {'name': 'demo', 'root': '/d', 'n_clips': 300, 'batch_size': 4, 'answer': 'dc'}
    >>> datamodule_kwargs(node, name="sims", root="/s")
    {'name': 'sims', 'root': '/s', 'batch_size': 4}
    """
    from omegaconf import DictConfig, OmegaConf

    kw = OmegaConf.to_container(data_cfg, resolve=True) if isinstance(data_cfg, DictConfig) else dict(data_cfg or {})
    kw.update(overrides)
    kw.pop("eval_datasets", None)
    kw.pop("allow_split_overlap", None)  # the run plan's check (msa.data.audit), not the loader's
    if name is not None and name != kw.get("name"):  # another dataset: its own root
        kw["name"], kw["root"] = name, root
    elif root is not None:
        kw["root"] = root
    for key in GENERATION_KEYS:
        if key not in generation_keys(kw.get("name")):
            kw.pop(key, None)
    return kw


def build_datamodule(data_cfg: Mapping | None = None, *, processor=None, use_audio_in_video: bool = True,
                     name: str | None = None, root: str | Path | None = None, **overrides) -> MSADataModule:
    """The data module of a ``conf/data`` node, from the class registered for its dataset (:data:`DATAMODULES`),
    with ``processor`` (the policy's or the teacher's) attached.

    Arguments as in :func:`datamodule_kwargs`; without a node, ``name=`` and ``root=`` give the dataset:
    ``build_datamodule(name="sims", root="/data/SIMS", batch_size=2)``.
    """
    kw = datamodule_kwargs(data_cfg, name=name, root=root, **overrides)
    data_name, data_root = kw.pop("name", None), kw.pop("root", None)
    if data_name not in DATAMODULES:
        raise ValueError(f"no data module for {data_name!r}; known: {', '.join(sorted(DATAMODULES))}")
    dm = DATAMODULES[data_name](data_root, use_audio_in_video=use_audio_in_video, **kw)
    if processor is not None:
        dm.attach_processor(processor)
    return dm


__all__ = ["DATAMODULES", "MSADataModule", "SkipReport", "build_datamodule", "datamodule_kwargs",
           "generation_keys", "is_generated"]
