"""What a run will do, resolved from its config before any model loads: the stages, the model and
where its weights come from, the datasets each stage reads (name, root, splits), the flags, and what
the data will cost (the budget table).

The stages find their datasets through the same functions (:func:`eval_targets`, :func:`data_root`),
so the printed plan is what runs, not a second reading of the config. Which split each stage reads is
declared once, in :data:`STAGE_SPLITS`.

Every dataset a run reads is checked here, before any model loads: its label file, the size of each
split read, and every clip's container headers (:mod:`msa.data.headers`, no decoding). From the
headers, :mod:`msa.data.budget` gives each clip's prompt length and store size under the media budget
(``media=``), printed per dataset and split; a store that cannot fit on the disk, or in
``paths.cache_max_gb``, is refused, naming the setting to change.

    plan = build_plan(cfg); print(plan.text); plan.refuse()
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from msa.config import ConfigError

# The splits of the training dataset (data.name) each stage reads; a string is a config key to read.
# The eval stage, and the test pass that ends sft and grpo, read eval.split of every eval target.
STAGE_SPLITS = {"cot": ("cot.split",), "sft": ("train", "valid"), "grpo": ("train",)}
TESTED_BY = ("sft", "grpo", "eval")  # stages that end with a pass over the eval targets


@dataclass(frozen=True)
class DataTarget:
    name: str
    root: str
    split: str


def data_root(cfg: DictConfig, name: str) -> str:
    """The directory of dataset ``name`` in this run: ``eval.roots.<name>``, else ``data.root`` for the
    training dataset, else the synthetic sets' own place; a real dataset without a root is an error."""
    root = (cfg.eval.get("roots") or {}).get(name)
    if root is not None:
        return str(root)
    if name == cfg.data.name:
        return str(cfg.data.root)
    from msa.data.datamodule import is_generated

    if is_generated(name):  # the synthetic sets are generated next to each other on first use
        return f"{cfg.paths.data_dir}/{name}"
    raise ConfigError(f"eval.roots.{name}: eval.datasets includes {name!r} but gives no root for it; "
                      f"set eval.roots.{name}=/path/to/{name} (MMSA layout)")


def eval_targets(cfg: DictConfig) -> list[DataTarget]:
    """The datasets the eval stage (and the test pass after sft/grpo) scores, with root and split.

    ``eval.datasets`` defaults to the data choice's ``data.eval_datasets`` (``[data.name]``; the demo
    adds its MOSI-like twin), so a preset can never pick them.
    """
    from msa.data.labels import MODE_ALIASES

    names = list(cfg.eval.datasets or [cfg.data.name])
    split = MODE_ALIASES.get(str(cfg.eval.split).strip().lower(), str(cfg.eval.split))  # val, dev -> valid
    return [DataTarget(name, data_root(cfg, name), split) for name in names]


def answer_range(cfg: DictConfig, policy_dir: str | Path | None) -> str:
    """The dataset whose range the policy answers in: ``eval.range_dataset``, else what the export at
    ``policy_dir`` was trained on (its ``range_dataset``, else its ``dataset``: an SFT export trained on
    SIMS answers in [-1, 1] whatever ``data=`` says now), else ``data.name``."""
    from msa.exports import export_facts

    return str(export_facts(cfg, policy_dir)["range_dataset"].value)


def stage_splits(cfg: DictConfig, stage: str) -> list[str]:
    """The splits of the training dataset that ``stage`` reads (:data:`STAGE_SPLITS`)."""
    return [str(OmegaConf.select(cfg, s)) if "." in s else s for s in STAGE_SPLITS.get(stage, ())]


def model_source(cfg: DictConfig) -> str:
    """Where the policy's weights come from, in words."""
    m = cfg.model
    if m.get("path"):
        base = f"{m.path}" + (" (architecture only, random init)" if m.get("init") == "random" else "")
    elif m.get("tiny_size"):
        base = f"tiny random-init model (size {m.tiny_size}), built offline in {m.get('cache_dir')}"
    else:
        base = "7B architecture, random weights (no model.path)"
    if cfg.get("init_from"):
        base = f"{cfg.init_from} (export), on {base}"
    if not any(s in STAGE_SPLITS for s in cfg.stage.run if s != "cot"):
        return base
    lora = m.get("lora") or {}
    return base + (f"; LoRA r={lora.get('r')}" if lora.get("enabled") else "; full fine-tuning")


def plan_rows(cfg: DictConfig) -> list[tuple[str, str]]:
    """(what, value) rows describing the run; see :func:`format_plan`."""
    run = list(cfg.stage.run)
    rows = [("stages", " -> ".join(run)), ("preset", str(cfg.experiment_name)),
            ("model", f"{cfg.model.name}: {model_source(cfg)}")]
    if "cot" in run:
        rows.append(("teacher", str(cfg.teacher.kind) + (f" {cfg.teacher.path}" if cfg.teacher.get("path") else "")))
    trained = [s for s in run if s in STAGE_SPLITS]
    if trained:
        uses = ", ".join(f"{s} {'+'.join(stage_splits(cfg, s))}" for s in trained)
        rows.append(("train data", f"{cfg.data.name}  {cfg.data.root}  ({uses})"))
    if any(s in TESTED_BY for s in run):
        # Inside a run with training, the policy scored is that run's own export (trained on data.name).
        policy = None if trained else cfg.get("init_from")
        for i, t in enumerate(eval_targets(cfg)):
            rows.append(("eval data" if i == 0 else "", f"{t.name}  {t.root}  (split {t.split})"))
        rows.append(("", f"scored after {', '.join(s for s in run if s in TESTED_BY)}; "
                         f"the model answers in {answer_range(cfg, policy)}'s range"))
        if "eval" in run:
            from msa.exports import export_facts, format_facts

            rows.append(("", f"eval reads: {format_facts(export_facts(cfg, policy))}"))
    if cfg.data.get("limit"):
        rows.append(("limit", f"first {cfg.data.limit} clips of each split"))
    mode = cfg.grpo.get("hint_mode", "replace")
    rows.append(("flags", f"hint={str(cfg.hint).lower()}" + (f" hint_mode={mode}" if mode != "replace" else "")
                 + f" hard={str(cfg.hard).lower()} seed={cfg.seed}"))
    rows.append(("output", str(cfg.paths.output_dir)))
    return rows


def format_plan(rows: list[tuple[str, str]]) -> str:
    """Two aligned columns under a title.

    >>> print(format_plan([("stages", "eval"), ("eval data", "mosi  /d/MOSI  (split test)"), ("", "more")]))
    plan
      stages     eval
      eval data  mosi  /d/MOSI  (split test)
                 more
    """
    width = max(len(k) for k, _ in rows)
    return "\n".join(["plan", *(f"  {k.ljust(width)}  {v}" for k, v in rows)])


def save_run_config(cfg: DictConfig, output_dir: str | Path, plan: str) -> Path:
    """Write the resolved config (``resolved_config.yaml``) and the plan (``plan.txt``) to the run dir."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.txt").write_text(plan + "\n", encoding="utf-8")
    path = out / "resolved_config.yaml"
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the data each stage reads, checked

@dataclass(frozen=True)
class DataRead:
    """One split of one dataset the run reads: which stages read it, the setting that names its root
    (``data.root`` or ``eval.roots.<name>``), and the batch size it is read in."""

    name: str
    root: str
    split: str
    key: str
    stages: tuple[str, ...]
    batch_size: int
    shuffled: bool
    split_key: str  # the setting that chose the split (eval.split, cot.split), else key


def data_reads(cfg: DictConfig) -> list[DataRead]:
    """Every (dataset, root, split) the stages in ``stage.run`` read, in the order they first read it."""
    run = list(cfg.stage.run)
    found: dict[tuple[str, str, str], dict] = {}

    def add(name, root, split, key, stage, batch_size, train, split_key):
        shuffled = train and bool(cfg.data.get("shuffle", True))
        entry = found.setdefault((name, root, split), dict(key=key, stages=[], batch_size=batch_size,
                                                            shuffled=shuffled, split_key=split_key))
        if stage not in entry["stages"]:
            entry["stages"].append(stage)
        if train:  # a training pass: its batches (and their padding) are the ones that cost memory
            entry.update(batch_size=batch_size, shuffled=shuffled)

    eval_bs = int(cfg.data.get("eval_batch_size") or cfg.data.batch_size)
    for stage in run:
        for split in stage_splits(cfg, stage):
            train = split == "train" and stage != "cot"
            add(cfg.data.name, str(cfg.data.root), split, "data.root", stage,
                int(cfg.data.batch_size) if train else eval_bs, train,
                "cot.split" if stage == "cot" else "data.root")
    tested = [s for s in run if s in TESTED_BY]
    if tested:
        for t in eval_targets(cfg):
            own = t.name == cfg.data.name and (cfg.eval.get("roots") or {}).get(t.name) is None
            for stage in tested:
                add(t.name, t.root, t.split, "data.root" if own else f"eval.roots.{t.name}", stage,
                    int(cfg.eval.batch_size), False, "eval.split")
    return [DataRead(name, root, split, e["key"], tuple(e["stages"]), e["batch_size"], e["shuffled"], e["split_key"])
            for (name, root, split), e in found.items()]


@dataclass
class SplitBudget:
    """What one :class:`DataRead` will cost: per usable clip its duration, stored frame size, prompt tokens
    and store bytes; the clips left out (``data.on_error=skip``) and those given fewer frames."""

    read: DataRead
    clips: int = 0
    seconds: list[float] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) as stored
    tokens: list[int] = field(default_factory=list)
    store: dict[str, int] = field(default_factory=dict)  # clip path -> bytes in the media store
    skipped: list[str] = field(default_factory=list)
    capped: int = 0
    clip_refs: list = field(default_factory=list, repr=False)  # (id, path) of every clip of the split, in order
    headers: dict = field(default_factory=dict, repr=False)  # path -> ClipHeaders, or the MediaError it raised

    def padded(self, seed: int = 0) -> tuple[float, float]:
        """(mean padded tokens per batch, share of them that is padding), batches as the loader makes them:
        in file order, or a seeded shuffle for a shuffled training split."""
        import numpy as np

        lengths = np.asarray(self.tokens)
        if not len(lengths):
            return 0.0, 0.0
        if self.read.shuffled:
            lengths = lengths[np.random.default_rng(seed).permutation(len(lengths))]
        b = self.read.batch_size
        sizes = [lengths[i:i + b] for i in range(0, len(lengths), b)]
        total = sum(len(x) * int(x.max()) for x in sizes)
        return total / len(sizes), 1.0 - float(lengths.sum()) / total


def _data_cfg(cfg: DictConfig, name: str) -> dict:
    node = OmegaConf.to_container(cfg.data, resolve=True)
    node["name"] = name
    return node


def _label_table(cfg: DictConfig, read: DataRead):
    from msa.data.datamodule import build_datamodule, is_generated
    from msa.data.labels import LabelFileError, read_labels

    if is_generated(read.name):  # drawn on first use: now, so its clips can be checked like any other
        build_datamodule(cfg.data, name=read.name, root=read.root).prepare_data()
    try:
        return read_labels(read.root, read.name)
    except LabelFileError as exc:
        raise ConfigError(f"{read.key}: {read.root} is not a {read.name} dataset in the MMSA layout "
                          f"(label.csv and Raw/): {exc}") from None


def _split_frame(cfg: DictConfig, read: DataRead, table):
    from msa.data.labels import SPLITS, split as split_rows

    frame = split_rows(table, read.split)
    if cfg.data.get("limit"):
        frame = frame.head(int(cfg.data.limit))
    if len(frame) == 0:
        sizes = ", ".join(f"{s} {int((table['mode'] == s).sum())}" for s in SPLITS)
        raise ConfigError(f"{read.split_key}: {read.name} has no {read.split} clips in {table.attrs.get('label_file')} "
                          f"({sizes}), and {', '.join(read.stages)} read{'s' if len(read.stages) == 1 else ''} "
                          f"that split")
    return frame


def _clip_problem(h, mods: tuple[str, ...], allow_missing_audio: bool) -> str | None:
    if "video" in mods and not h.has_video:
        return "no_video: no video stream"
    if "audio" in mods and not h.has_audio and (not allow_missing_audio or mods == ("audio",)):
        return "no_audio: no audio track (data.allow_missing_audio=true runs such clips video-only)"
    return None


def budget_split(cfg: DictConfig, read: DataRead, frame) -> SplitBudget:
    """Read the headers of every clip of ``frame`` (one split) and budget them; bad clips fail here
    (``data.on_error=raise``, naming them) or are counted as skipped."""
    from msa.data import budget
    from msa.data.headers import read_many, store_file
    from msa.data.media import MediaError

    dcfg = _data_cfg(cfg, read.name)
    mods = budget.modalities(dcfg)
    out = SplitBudget(read, clips=len(frame))
    limit = dcfg.get("max_prompt_tokens")
    media_on = any(m in mods for m in ("audio", "video"))
    where = store_dir(cfg)
    headers = read_many(frame["path"], store=store_file(where, read.root) if where else None) if media_on else {}
    out.clip_refs = [(str(i), str(p)) for i, p in zip(frame["id"], frame["path"])]
    out.headers = headers
    bad, unfit = [], []
    for clip_id, path, text in zip(frame["id"], frame["path"], frame["text"]):
        if not media_on:
            out.tokens.append(budget.text_tokens(dcfg, str(text)))
            continue
        h = headers[str(path)]
        try:
            if isinstance(h, MediaError):
                raise h
            problem = _clip_problem(h, mods, bool(dcfg.get("allow_missing_audio")))
            if problem:
                raise MediaError(problem.split(": ", 1)[1], path=path, kind=problem.split(":")[0])
            cap = budget.fitted_max_frames(h, dcfg, transcript=str(text))
            if cap == 0:
                unfit.append(f"clip {clip_id} ({path}): "
                             f"{budget.prompt_tokens(h, dcfg, transcript=str(text), max_frames=4)} tokens at 4 frames")
                continue
            tokens = budget.prompt_tokens(h, dcfg, transcript=str(text), max_frames=cap)
            size = budget.store_bytes(h, dcfg, cap)
        except MediaError as exc:
            bad.append(f"{exc.kind}: {exc.with_context(dataset=read.name, clip_id=clip_id)}")
            continue
        out.capped += cap is not None
        out.seconds.append(h.duration)
        if h.has_video:
            out.sizes.append((h.width, h.height))
        out.tokens.append(tokens)
        out.store[str(path)] = size
    if unfit:
        raise ConfigError(f"data.max_prompt_tokens: {read.name} {read.split}: {len(unfit)} clips exceed "
                          f"{limit} tokens even at the fewest frames: {'; '.join(unfit[:3])}"
                          f"{' ...' if len(unfit) > 3 else ''}; raise data.max_prompt_tokens, or cut the audio "
                          "with data.max_audio_seconds")
    if bad and dcfg.get("on_error", "raise") != "skip":
        raise ConfigError(f"{read.key}: {read.name} {read.split}: {len(bad)} of {len(frame)} clips cannot be used: "
                          f"{'; '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} (fix or remove them, or set "
                          "data.on_error=skip to leave them out, counted)")
    out.skipped = bad
    return out


def check_data(cfg: DictConfig) -> list[SplitBudget]:
    """Check and budget every split the run reads (:func:`data_reads`), before any model loads: the label
    file of each root, that each split read has clips, and every clip's headers. Raises
    :class:`~msa.config.ConfigError` naming the setting to change."""
    tables: dict[tuple[str, str], object] = {}
    out = []
    for read in data_reads(cfg):
        key = (read.name, read.root)
        if key not in tables:
            tables[key] = _label_table(cfg, read)
        out.append(budget_split(cfg, read, _split_frame(cfg, read, tables[key])))
    return out


def check_overlap(cfg: DictConfig, budgets: list[SplitBudget]) -> tuple[int, str | None]:
    """(pairs of clips the training dataset's splits read by this run share, the refusal naming them or
    None), for a run that trains (sft, grpo); :func:`msa.data.audit.check_split_overlap` finds them, and
    ``data.allow_split_overlap=true`` lets the run go on. Other runs: (0, None), nothing read."""
    from msa.data.audit import ClipRef, check_split_overlap

    if not any(s in ("sft", "grpo") for s in cfg.stage.run):
        return 0, None
    own = [b for b in budgets if b.read.name == cfg.data.name and b.read.root == str(cfg.data.root)]
    clips = [ClipRef(b.read.split, i, p) for b in own for i, p in b.clip_refs]
    headers = {k: v for b in own for k, v in b.headers.items()}
    try:
        found = check_split_overlap(clips, headers, dataset=str(cfg.data.name), root=str(cfg.data.root),
                                    allow=bool(cfg.data.get("allow_split_overlap", False)), cache_dir=store_dir(cfg))
    except ConfigError as exc:
        return -1, str(exc)
    return len(found), None


def check_init_from(cfg: DictConfig) -> None:
    """``init_from`` must be an export (LoRA adapter or full weights), not only an existing directory."""
    if not cfg.get("init_from"):
        return
    from msa.models.loader import export_kind

    if export_kind(cfg.init_from) is None:
        raise ConfigError(f"init_from: {cfg.init_from} holds neither a LoRA adapter (adapter_config.json) nor "
                          "full weights (model.safetensors); pass a stage's <run>/checkpoints/<name> export")


# ---------------------------------------------------------------- the store, against the disk

MEDIA_CHOICES = ("compact", "small")  # smaller budgets a refusal suggests (conf/media/<choice>.yaml)
GB = 1e9


def store_total(budgets: list[SplitBudget]) -> dict[str, int]:
    """Clip path -> store bytes over every split read (a clip read twice is stored once)."""
    total: dict[str, int] = {}
    for b in budgets:
        total.update(b.store)
    return total


def store_dir(cfg: DictConfig) -> Path | None:
    """Where the media store lives (``data.cache_dir``); None when nothing is kept on disk."""
    d = cfg.data.get("cache_dir")
    return None if d in (None, False) else Path(str(d)).expanduser()


def _free_bytes(path: Path) -> int:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def _used_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _alternatives(cfg: DictConfig, budgets: list[SplitBudget]) -> str:
    """What the store would need under the smaller media budgets, e.g. ``media=compact (3.1 GB)``."""
    from msa.data import budget
    from msa.data.headers import cached_headers

    conf = Path(__file__).resolve().parents[1] / "conf" / "media"
    parts = []
    for choice in MEDIA_CHOICES:
        if not (conf / f"{choice}.yaml").exists():
            continue
        node = OmegaConf.to_container(OmegaConf.load(conf / f"{choice}.yaml"))
        dcfg = {**_data_cfg(cfg, cfg.data.name), **node}
        total = sum(budget.store_bytes(cached_headers(path), dcfg) for path in store_total(budgets))
        parts.append(f"media={choice} ({_size(total)})")
    return ", ".join(parts)


def store_refusal(cfg: DictConfig, budgets: list[SplitBudget]) -> str | None:
    """Why the media store cannot be written (``key: reason``), or None when it fits."""
    where = store_dir(cfg)
    total = store_total(budgets)
    need = sum(total.values())
    if where is None or not need:
        return None
    max_gb = cfg.paths.get("cache_max_gb")
    if max_gb is not None and need > float(max_gb) * GB:
        return (f"paths.cache_max_gb: the media store of this run needs {_size(need)} for {len(total)} clips, "
                f"more than paths.cache_max_gb={max_gb}; raise it, or choose a smaller media budget: "
                f"{_alternatives(cfg, budgets)}")
    free = _free_bytes(where)
    if need > free and need > free + _used_bytes(where):  # what is there already may be this store
        return (f"data.cache_dir: the media store of this run needs {_size(need)} for {len(total)} clips, but "
                f"{where} has {_size(free)} free; point paths.cache_dir (or data.cache_dir) at a larger disk, "
                f"or choose a smaller media budget: {_alternatives(cfg, budgets)}")
    return None


# ---------------------------------------------------------------- the budget table

def _size(n: float) -> str:
    """
    >>> _size(0), _size(1234), _size(5.5e9)
    ('0 B', '1.2 kB', '5.5 GB')
    """
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _spread(values: list[float], fmt: str = "{:.1f}") -> str:
    import numpy as np

    if not values:
        return "-"
    return "/".join(fmt.format(v) for v in (min(values), float(np.median(values)), max(values)))


def _sizes(sizes: list[tuple[int, int]]) -> str:
    if not sizes:
        return "-"
    lo, hi = min(sizes, key=lambda s: s[0] * s[1]), max(sizes, key=lambda s: s[0] * s[1])
    return f"{lo[0]}x{lo[1]}" if lo == hi else f"{lo[0]}x{lo[1]}..{hi[0]}x{hi[1]}"


def budget_rows(cfg: DictConfig, budgets: list[SplitBudget]) -> list[list[str]]:
    """The budget table's rows, a header first: one row per dataset and split read."""
    import numpy as np

    rows = [["dataset", "split", "read by", "clips", "seconds min/med/max", "frames WxH", "prompt tokens mean/p95/max",
             "batch", "padded tokens/batch", "capped", "skipped", "store"]]
    for b in budgets:
        t = b.tokens
        tokens = f"{np.mean(t):.0f}/{np.percentile(t, 95):.0f}/{max(t)}" if t else "-"
        per_batch, pad = b.padded(int(cfg.seed))
        rows.append([b.read.name, b.read.split, "+".join(b.read.stages), str(b.clips), _spread(b.seconds),
                     _sizes(b.sizes), tokens, str(b.read.batch_size), f"{per_batch:.0f} ({pad:.0%} pad)",
                     str(b.capped), str(len(b.skipped)), _size(sum(b.store.values()))])
    return rows


def format_budget(cfg: DictConfig, budgets: list[SplitBudget]) -> str:
    """The budget block printed under the plan: the media settings, the table, the store against the disk."""
    from msa.data.budget import pixel_bounds

    d = cfg.data
    lo, hi = pixel_bounds(d)
    limit = d.get("max_prompt_tokens")
    head = (f"budget  frames {d.fps:g} fps, {lo}..{hi} pixels each, at most {d.max_frames}; audio up to "
            f"{d.get('max_audio_seconds') or 300:g} s; prompts "
            + (f"<= {limit} tokens (data.max_prompt_tokens)" if limit else "unbounded (data.max_prompt_tokens)"))
    rows = budget_rows(cfg, budgets)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    numeric = {3, 7, 9, 10}
    lines = [head] + ["  " + "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                                       for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    total = store_total(budgets)
    where = store_dir(cfg)
    if where is None:
        lines.append("  store    none (data.cache_dir=false: media decoded on every read)")
    else:
        max_gb = cfg.paths.get("cache_max_gb")
        lines.append(f"  store    {_size(sum(total.values()))} for {len(total)} clips in {where}; "
                     f"{_size(_free_bytes(where))} free there; paths.cache_max_gb "
                     + (f"{max_gb}" if max_gb is not None else "unset"))
    return "\n".join(lines)


def budget_summary(budgets: list[SplitBudget]) -> dict:
    """The figures a run records in metrics.json (``budget``): clips read, capped, skipped, store size."""
    return {"clips": sum(len(b.tokens) for b in budgets), "capped_clips": sum(b.capped for b in budgets),
            "skipped_clips": sum(len(b.skipped) for b in budgets),
            "prompt_tokens_max": max((max(b.tokens) for b in budgets if b.tokens), default=0),
            "store_gb": round(sum(store_total(budgets).values()) / GB, 3)}


@dataclass
class Plan:
    """The printed plan (``text``: the rows, then the budget table), the budgets behind it, and the
    refusal (``key: reason``) a run must stop on after printing it."""

    text: str
    budgets: list[SplitBudget]
    refusal: str | None = None

    def refuse(self) -> None:
        if self.refusal:
            raise ConfigError(self.refusal)


def build_plan(cfg: DictConfig) -> Plan:
    """Check everything a run needs that can be checked before a model loads, and describe the run."""
    check_init_from(cfg)
    rows = format_plan(plan_rows(cfg))
    budgets = check_data(cfg)
    shared, overlap = check_overlap(cfg, budgets)
    text = rows + "\n" + format_budget(cfg, budgets)
    if overlap or shared:
        text += ("\n  splits   clips shared between the splits read: see the error below" if overlap else
                 f"\n  splits   {shared} pairs of clips shared between the splits read (data.allow_split_overlap=true)")
    return Plan(text=text, budgets=budgets, refusal=store_refusal(cfg, budgets) or overlap)
