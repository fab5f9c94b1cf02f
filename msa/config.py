"""Typed top-level keys and the invariants checked before anything loads.

The schema is registered in Hydra's ConfigStore as ``schema`` and sits first in ``conf/train.yaml``'s
defaults, so ``python train.py hint=maybe`` fails while composing: Hydra converts the value to the
declared type. Groups stay free-form YAML (``Any``); their invariants are checked by :func:`validate`,
which every entry point calls before a model or dataset is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

STAGES = ("cot", "sft", "grpo", "eval")


@dataclass
class StageNode:
    run: List[str] = field(default_factory=lambda: ["cot", "sft", "grpo", "eval"])


@dataclass
class TrainSchema:
    task_name: str = "pipeline"
    experiment_name: str = "none"
    hint: bool = True
    hard: bool = True
    seed: int = 0
    tags: List[str] = field(default_factory=list)
    init_from: Optional[str] = None
    ckpt_path: Optional[str] = None
    stage: StageNode = field(default_factory=StageNode)
    # Groups: free-form, validated by validate().
    model: Any = None
    data: Any = None
    teacher: Any = None
    cot: Any = None
    sft: Any = None
    grpo: Any = None
    eval: Any = None
    trainer: Any = None
    callbacks: Any = None
    logger: Any = None
    paths: Any = None
    experiment: Any = None
    debug: Any = None
    local: Any = None


ConfigStore.instance().store(name="schema", node=TrainSchema)
if not OmegaConf.has_resolver("msa.unique_dir"):  # conf/hydra: run directories two launches never share
    from msa.runtime import claim_dir

    OmegaConf.register_new_resolver("msa.unique_dir", claim_dir, use_cache=True)


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key."""


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}")


def _number(cfg: DictConfig, key: str, *, at_least: float | None = None, above: float | None = None,
            integer: bool = False) -> None:
    """``key`` holds a number (an integer when ``integer``) within the bound, or ConfigError naming it:
    ``data.batch_size=two`` fails here with the key, not as a comparison between str and int."""
    value = OmegaConf.select(cfg, key)
    kinds = (int,) if integer else (int, float)
    what = "an integer" if integer else "a number"
    _check(isinstance(value, kinds) and not isinstance(value, bool), key, f"must be {what}, got {value!r}")
    if at_least is not None:
        _check(value >= at_least, key, f"must be >= {at_least}, got {value!r}")
    if above is not None:
        _check(value > above, key, f"must be > {above}, got {value!r}")


# Groups whose keys are fixed by their conf/ options: a key added with +key=... that none of the options
# has is a typo (+sft.max_epoch=5 would be ignored). The data node also takes the data module's
# arguments; trainer takes the Lightning Trainer's. _target_ groups (logger, callbacks) take any node.
CHECKED_GROUPS = ("cot", "sft", "grpo", "eval", "data", "model", "teacher", "paths", "trainer")


def known_keys(group: str, config_dir: Path) -> set[str]:
    """Every dotted key (nodes and leaves) that some option of ``conf/<group>`` defines, plus, for
    ``data``, the data modules' arguments, and for ``trainer``, the Lightning Trainer's."""
    import inspect

    def walk(node, prefix: str):
        if isinstance(node, DictConfig):
            for k in node.keys():
                keys.add(f"{prefix}{k}")
                walk(node._get_node(k), f"{prefix}{k}.")

    keys: set[str] = set()
    for yaml in sorted((config_dir / group).glob("*.yaml")):
        walk(OmegaConf.load(yaml), f"{group}.")
    if group == "data":
        from msa.data.datamodule import DATAMODULES, GENERATION_KEYS, MSADataModule

        for cls in (MSADataModule, *DATAMODULES.values()):  # the subclasses pass **kwargs on to the base
            keys |= {f"data.{p}" for p in inspect.signature(cls.__init__).parameters if p != "self"}
        keys |= {f"data.{k}" for k in GENERATION_KEYS}
    if group == "trainer":
        import lightning as L

        keys |= {f"trainer.{p}" for p in inspect.signature(L.Trainer.__init__).parameters if p != "self"}
    return keys


def check_added_keys(overrides: list[str], config_dir: Path) -> None:
    """ConfigError for a ``+key=value`` (or ``++``) override that adds a key no option of its group has,
    naming the key and the closest one there is."""
    import difflib

    for arg in overrides:
        if not arg.startswith("+") or "=" not in arg:
            continue
        key = arg.lstrip("+").split("=", 1)[0].strip()
        group = key.split(".", 1)[0]
        if "." not in key or "@" in key or "/" in key or group not in CHECKED_GROUPS:
            continue  # +experiment=..., +callbacks.<new>..., +hydra....: not a group's fixed key
        known = known_keys(group, config_dir)
        if key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"{key}: not a key of {group}{hint}; +{key}=... would add a key that nothing reads")


def _one_of(cfg: DictConfig, key: str, allowed: tuple) -> None:
    value = OmegaConf.select(cfg, key)
    _check(value in allowed, key, f"{value!r} is not one of {', '.join(map(str, allowed))}")


def _distributed(trainer: DictConfig) -> bool:
    """Whether the Trainer config launches several processes (DDP-like strategy or several devices)."""
    strategy = str(trainer.get("strategy", "auto")).lower()
    devices = trainer.get("devices", 1)
    if any(s in strategy for s in ("ddp", "fsdp", "deepspeed")):
        return True
    if isinstance(devices, int):
        return devices > 1 or devices == -1
    if isinstance(devices, str):
        return devices.strip() not in ("1", "auto")  # "2", "-1", "0,1"
    return len(devices) > 1  # a list of device ids


def validate(cfg: DictConfig) -> None:
    """Fail fast, with the key's name, on values that would break a stage later (TRL-style __post_init__)."""
    run = list(cfg.stage.run)
    _check(len(run) > 0, "stage.run", "no stage to run")
    for s in run:
        _check(s in STAGES, "stage.run", f"unknown stage {s!r}; known: {', '.join(STAGES)}")

    from msa.data.datamodule import is_generated  # the synthetic sets need no root: drawn on first use
    from msa.data.specs import DATASETS

    _check(cfg.data.name in DATASETS, "data.name", f"unknown dataset {cfg.data.name!r}; known: {', '.join(DATASETS)}")
    _one_of(cfg, "data.on_error", ("raise", "skip"))
    _one_of(cfg, "data.cache", ("all", "audio", "none"))
    _number(cfg, "data.batch_size", at_least=1, integer=True)
    overlap = cfg.data.get("allow_split_overlap", False)
    _check(isinstance(overlap, bool), "data.allow_split_overlap", f"must be true or false, got {overlap!r}")
    if cfg.data.get("text_conflict") is not None:  # data=study: a share of all clips (msa.data.synthetic.demo.plan)
        _number(cfg, "data.text_conflict", at_least=0)
        _check(cfg.data.text_conflict <= 0.6, "data.text_conflict", f"must be at most 0.6, got {cfg.data.text_conflict}")
    if cfg.data.get("eval_batch_size") is not None:  # null: batch_size
        _number(cfg, "data.eval_batch_size", at_least=1, integer=True)
    _check(any(cfg.data.modalities.values()), "data.modalities", "at least one modality must be on")
    cap = cfg.data.get("max_prompt_tokens")
    _check(cap is None or (isinstance(cap, int) and cap >= 1), "data.max_prompt_tokens",
           f"must be a positive number of tokens or null, got {cap!r}")
    lo, hi = cfg.data.get("video_min_pixels"), cfg.data.get("video_max_pixels")
    _check(lo is None or hi is None or 0 < lo <= hi, "data.video_min_pixels",
           f"{lo} must be > 0 and at most data.video_max_pixels ({hi}); media=qwen|compact|small set both")
    # data.cache_max_gb follows paths.cache_max_gb unless set itself: name the key the user set
    for key in ("paths.cache_max_gb", "data.cache_max_gb"):
        bound = OmegaConf.select(cfg, key)
        _check(bound is None or (isinstance(bound, (int, float)) and bound > 0), key,
               f"must be a positive number of GB or null, got {bound!r}")
    _one_of(cfg, "model.dtype", ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16", "auto"))
    _one_of(cfg, "model.init", ("pretrained", "random"))
    if cfg.model.get("path"):
        _check(Path(cfg.model.path).expanduser().exists(), "model.path", f"{cfg.model.path} does not exist")
    if cfg.init_from:
        _check(Path(cfg.init_from).exists(), "init_from", f"{cfg.init_from} does not exist")
    if cfg.ckpt_path:
        _check(Path(cfg.ckpt_path).exists(), "ckpt_path", f"{cfg.ckpt_path} does not exist")
        resumed = [s for s in run if s in ("sft", "grpo")]
        _check(len(resumed) > 0, "ckpt_path",
               f"resumes a training stage (sft or grpo), and stage.run={run} trains nothing; to score a trained "
               "policy, give its export: init_from=<run>/checkpoints/best (sft) or .../final (grpo)")
        _check(len(resumed) == 1, "ckpt_path",
               f"resumes one training stage, and stage.run={run} has {resumed}: resume the interrupted stage on "
               "its own (stage=sft ckpt_path=..., then stage=grpo init_from=<sft run>/checkpoints/best)")

    # Loggers and callbacks are built from their _target_ (msa.runtime.instantiate); null or empty: left out.
    for key in ("logger", *(f"callbacks.{name}" for name in cfg.get("callbacks") or {})):
        node = OmegaConf.select(cfg, key)
        _check(not node or "_target_" in node, key, "needs a _target_ (the class to build), or null to leave it out")
    every = OmegaConf.select(cfg, "callbacks.step_checkpoint.every_n_train_steps")
    _check(every is None or (isinstance(every, int) and every >= 1), "callbacks.step_checkpoint.every_n_train_steps",
           f"must be a positive number of steps or null, got {every!r}")
    trained = [s for s in run if s in ("sft", "grpo")]
    _check(not (_distributed(cfg.trainer) and len(trained) > 1), "stage.run",
           f"{trained} under a multi-process strategy: Lightning's DDP launcher re-runs the script on the "
           "other ranks at the first fit, so run one training stage per launch "
           "(stage=sft, then stage=grpo init_from=<run>/checkpoints/best)")
    if "cot" in run:
        _one_of(cfg, "teacher.kind", ("rule", "hf", "vllm"))
        if cfg.teacher.kind == "rule":
            _one_of(cfg, "teacher.text_led", (True, False))
        _number(cfg, "cot.num_samples", at_least=1, integer=True)
    if "sft" in run:
        _one_of(cfg, "sft.answer", ("dc", "score"))
        _number(cfg, "sft.lr", above=0)
        _number(cfg, "sft.max_epochs", at_least=1, integer=True)
        if cfg.sft.answer == "dc" and "cot" not in run:
            _check(Path(str(cfg.sft.cot)).exists(), "sft.cot", f"{cfg.sft.cot} does not exist (run stage=cot first)")
    if "grpo" in run:
        g = cfg.grpo
        _number(cfg, "grpo.num_generations", integer=True)
        _check(g.num_generations >= 2, "grpo.num_generations", "GRPO needs at least 2 generations per prompt")
        _number(cfg, "grpo.beta", at_least=0)
        _number(cfg, "grpo.epsilon", above=0)
        _number(cfg, "grpo.num_iterations", at_least=1, integer=True)
        _number(cfg, "grpo.temperature", above=0)
        _one_of(cfg, "grpo.loss_type", ("grpo", "dapo", "dr_grpo"))
        _one_of(cfg, "grpo.importance_sampling_level", ("token", "sequence"))
        _one_of(cfg, "grpo.scale_rewards", ("group", "batch", "none"))
        _one_of(cfg, "grpo.hard_rule", ("all_wrong", "reward_below"))
        _one_of(cfg, "grpo.hint_mode", ("replace", "anchored"))
        _one_of(cfg, "grpo.score_form", ("linear", "gaussian"))
        if g.hard_rule == "reward_below":
            _check(g.hard_threshold is not None, "grpo.hard_threshold", "required with grpo.hard_rule=reward_below")
        for name, w in g.reward_weights.items():
            _check(name in ("format", "polarity", "score"), f"grpo.reward_weights.{name}", "unknown reward")
            _check(w >= 0, f"grpo.reward_weights.{name}", f"must be >= 0, got {w}")
        # Manual optimisation: Lightning refuses Trainer-side clipping/accumulation; the module clips.
        _check(cfg.trainer.get("gradient_clip_val") is None, "trainer.gradient_clip_val",
               "must be null for grpo (manual optimisation clips with grpo.max_grad_norm)")
        _check(cfg.trainer.get("accumulate_grad_batches", 1) in (None, 1), "trainer.accumulate_grad_batches",
               "must be 1 for grpo (manual optimisation)")
    if "eval" in run:
        if cfg.eval.get("answer") is not None:  # null: the export's (msa.exports)
            _one_of(cfg, "eval.answer", ("dc", "score"))
        if cfg.eval.get("modalities") is not None:
            for name in cfg.eval.modalities:
                _check(name in ("text", "audio", "video"), f"eval.modalities.{name}", "unknown modality")
            _check(any(cfg.eval.modalities.values()), "eval.modalities", "at least one modality must be on")
    if any(s in run for s in ("sft", "grpo", "eval")):  # each ends with a pass over the eval targets
        from msa.data.labels import MODE_ALIASES

        _check(str(cfg.eval.split).strip().lower() in MODE_ALIASES, "eval.split",
               f"{cfg.eval.split!r} is not one of train, valid, test (or the aliases val, dev, validation)")
        _number(cfg, "eval.batch_size", at_least=1, integer=True)
        for d in cfg.eval.datasets or []:
            _check(d in DATASETS, "eval.datasets", f"unknown dataset {d!r}; known: {', '.join(DATASETS)}")
        from msa.plan import eval_targets

        for t in eval_targets(cfg):  # a missing root fails here, before any model loads
            own = t.name == cfg.data.name and (cfg.eval.get("roots") or {}).get(t.name) is None
            key = "data.root" if own else f"eval.roots.{t.name}"
            _check(is_generated(t.name) or Path(t.root).expanduser().exists(), key,
                   f"{t.root} does not exist ({t.name} in the MMSA layout: label.csv and Raw/)")
    if any(s in run for s in ("cot", "sft", "grpo")) and not is_generated(cfg.data.name):
        _check(Path(str(cfg.data.root)).expanduser().exists(), "data.root", f"{cfg.data.root} does not exist")
