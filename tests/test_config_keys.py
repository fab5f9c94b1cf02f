"""No config key that nothing reads: a key set in conf/ must change what a run does.

Two checks:

* ``test_every_key_of_a_pipeline_run_is_read`` (slow, exact): runs the whole pipeline (cot -> sft ->
  grpo -> eval, plus the branches that run only under another setting: LoRA, a reward-threshold hard
  rule, the W&B logger) with every config read recorded -- attribute, item and ``get`` access on the
  DictConfig, ``OmegaConf.select``, and the keys of the plain dicts ``OmegaConf.to_container`` hands
  to code (their lookups, iteration and ``**`` unpacking into a constructor's parameters). A key read
  through an interpolation (``eval.answer: ${sft.answer}``) reads its target. Every leaf of the
  composed config must have been read.
* ``test_every_key_of_every_option_is_named_in_the_code`` (fast, by name): each leaf key of every
  group option (teacher=hf, logger=wandb, trainer=ddp, ...) is read somewhere in msa/ or train.py by
  its name (``.key``, ``["key"]``, ``.get("key")``, a ``"key"`` constant) or is a parameter of what
  its node is unpacked into (the Lightning Trainer); a key of a ``_target_`` node (logger, callbacks)
  must be a parameter of the class it names. It cannot see which node a name belongs to, so it
  only catches names nothing uses; the exact check is the slow one.

Keys that are read by no code on purpose are listed in ``NOT_READ`` with the reason.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import os
import re
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Leaves no code reads, on purpose.
NOT_READ = {
    "task_name": "names the run directory (hydra.run.dir) and the W&B group; read by Hydra",
    "experiment_name": "names the W&B group (logger.group interpolates it)",
    "tags": "the W&B run's tags (logger.tags interpolates it; the CSV logger has none)",
    "experiment": "the group of presets: its keys land at the top level (@package _global_)",
    "debug": "the group of debug presets (@package _global_)",
    "local": "untracked per-machine overrides (optional local group)",
}
# Leaves read by dataset name (eval.roots.<target>): a run reads only its own targets' entries.
READ_BY_NAME = ("eval.roots.",)

SMALL = ["model=tiny", "data.limit=2", "data.n_clips=24", "eval.max_new_tokens=4", "sft.max_epochs=1",
         "sft.val_max_new_tokens=4", "sft.val_every_n_epochs=1", "grpo.max_steps=1", "grpo.max_new_tokens=4",
         "grpo.log_completions_every=1", "logger=csv"]


# ---------------------------------------------------------------- the composed config's leaves

def leaves(node, prefix: str = "") -> dict[str, object]:
    """path -> raw value (interpolations unresolved) of every leaf; lists and empty/None nodes are leaves."""
    out = {}
    if isinstance(node, DictConfig) and not node._is_none() and len(node):
        for key in node.keys():
            out.update(leaves(node._get_node(key), f"{prefix}{key}."))
        return out
    value = node._value() if not isinstance(node, (DictConfig, ListConfig)) else \
        (None if node._is_none() else OmegaConf.to_container(node, resolve=False))
    return {prefix[:-1]: value}


def interpolation_targets(value) -> list[str]:
    """Config paths a raw value interpolates (``${a.b}``), not resolvers (``${oc.env:...}``, ``${now:...}``)."""
    text = str(value)
    return [m for m in re.findall(r"\$\{([^}:]+)\}", text) if not m.startswith(".")]


# ---------------------------------------------------------------- recording reads at run time

# Hydra's instantiate reads a ``_target_`` node's keys for msa.runtime.instantiate (loggers, callbacks): the
# project's code building the object the node describes, so a read like any other.
INSTANTIATE = str(Path(__import__("hydra._internal.instantiate._instantiate2", fromlist=["_"]).__file__))
PROJECT = (str(ROOT / "msa") + "/", str(ROOT / "train.py"), INSTANTIATE)
_OWN_CODE: set = set()  # the recorder's own functions: skipped when looking for the reader


def _reader(readers: tuple[str, ...]) -> bool:
    """Whether the code that made this access (the first frame outside OmegaConf and the recorder)
    is in ``readers``: Hydra, Lightning, W&B or a YAML dump walking a config is not a use of it."""
    f = sys._getframe(2)
    while f is not None and (f.f_code in _OWN_CODE or f"{os.sep}omegaconf{os.sep}" in f.f_code.co_filename):
        f = f.f_back
    return f is not None and f.f_code.co_filename.startswith(readers)


class RecordingDict(dict):
    """A dict made by OmegaConf.to_container from a config node: records the keys code looks up."""

    def __init__(self, data: dict, prefix: str, log: set, readers: tuple[str, ...]):
        super().__init__({k: (RecordingDict(v, f"{prefix}{k}.", log, readers) if isinstance(v, dict) else v)
                          for k, v in data.items()})
        self._prefix, self._log, self._readers = prefix, log, readers

    def _read(self, key):
        if _reader(self._readers):
            self._log.add(f"{self._prefix}{key}")

    def __getitem__(self, key):
        self._read(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._read(key)
        return super().get(key, default)

    def pop(self, key, *default):
        self._read(key)
        return super().pop(key, *default)

    def __contains__(self, key):
        self._read(key)
        return super().__contains__(key)

    def __iter__(self):  # also makes f(**d), dict(d) and {**d} go through keys() + __getitem__
        for key in super().__iter__():
            self._read(key)
            yield key

    def keys(self):
        return list(iter(self))

    def items(self):
        return [(k, super(RecordingDict, self).__getitem__(k)) for k in self]

    def values(self):
        return [v for _, v in self.items()]


_OWN_CODE.update(f.__code__ for f in vars(RecordingDict).values() if inspect.isfunction(f))


@contextlib.contextmanager
def recording_reads(readers: tuple[str, ...] = PROJECT):
    """Record the full path of every config key that code in ``readers`` reads while the block runs."""
    log: set[str] = set()
    get_impl, select, to_container = DictConfig._get_impl, OmegaConf.select, OmegaConf.to_container

    def _get_impl(self, key, default_value, validate_key=True):
        if isinstance(key, str) and _reader(readers):
            log.add(self._get_full_key(getattr(key, "value", key)))  # Hydra's keys are str enums (_Keys.TARGET)
        return get_impl(self, key, default_value, validate_key)

    def _select(cfg, key, *args, **kwargs):
        if _reader(readers):
            log.add(f"{cfg._get_full_key(None)}.{key}".lstrip("."))
        return select(cfg, key, *args, **kwargs)

    def _to_container(cfg, *args, **kwargs):
        out = to_container(cfg, *args, **kwargs)
        prefix = cfg._get_full_key(None) if isinstance(cfg, DictConfig) else ""
        # A whole config turned into a dict is a dump (W&B's run config), not a use of each key.
        if prefix and isinstance(out, dict) and _reader(readers):
            return RecordingDict(out, f"{prefix}.", log, readers)
        return out

    _OWN_CODE.update(f.__code__ for f in (_get_impl, _select, _to_container))

    DictConfig._get_impl = _get_impl
    OmegaConf.select = staticmethod(_select)
    OmegaConf.to_container = staticmethod(_to_container)
    try:
        yield log
    finally:
        DictConfig._get_impl = get_impl
        OmegaConf.select = staticmethod(select)
        OmegaConf.to_container = staticmethod(to_container)


def unread(cfg: DictConfig, log: set[str]) -> list[str]:
    """The leaves of ``cfg`` that ``log`` (plus interpolations of read leaves) never read."""
    raw = leaves(cfg)
    read = set(log)
    changed = True
    while changed:  # a read leaf reads what it interpolates, transitively
        changed = False
        for path, value in raw.items():
            if path in read:
                for target in interpolation_targets(value):
                    if target not in read:
                        read.add(target)
                        changed = True

    def is_read(path: str) -> bool:
        return path in read or any(r.startswith(path + ".") for r in read)

    return sorted(p for p in raw if not is_read(p) and p.split(".")[0] not in NOT_READ and p not in NOT_READ
                  and not p.startswith(READ_BY_NAME))


def test_the_recorder_sees_reads_and_flags_an_unread_key(make_cfg):
    cfg = make_cfg("stage=eval")
    OmegaConf.set_struct(cfg, False)
    cfg.eval.unused_knob = 3
    with recording_reads(readers=(__file__,)) as log:
        assert cfg.eval.max_new_tokens == 256 and cfg.grpo.get("beta") == 0.1 and cfg.sft["lr"] == 1e-3
        kw = OmegaConf.to_container(cfg.trainer, resolve=True)
        dict(**kw)  # unpacking reads every key
        assert OmegaConf.to_container(cfg.teacher)["kind"] == "rule"
        assert OmegaConf.select(cfg, "data.name") == "demo"
        OmegaConf.to_yaml(cfg, resolve=True)  # a dump reads nothing
        OmegaConf.to_container(cfg, resolve=True)
    assert {"eval.max_new_tokens", "grpo.beta", "sft.lr", "trainer.precision", "teacher.kind", "data.name"} <= log
    missing = unread(cfg, log)
    assert "eval.unused_knob" in missing and "eval.max_new_tokens" not in missing
    assert "teacher.quote_transcript" in missing and "cot.split" in missing
    # keys no code read here are reported, whatever their value (eval.answer is null: the export decides)
    assert "eval.answer" in missing and "sft.answer" in missing
    # code elsewhere (here: a project module's reads do not count for this test's readers) is not ours
    from msa.plan import eval_targets

    with recording_reads(readers=(__file__,)) as log:
        eval_targets(cfg)
    assert not log


def test_the_recorder_sees_the_keys_of_a_node_built_from_its_target(make_cfg):
    from msa.runtime import instantiate, make_logger

    cfg = make_cfg("logger=wandb", "logger.mode=disabled")
    with recording_reads() as log:
        make_logger(cfg, "sft")
        for node in cfg.callbacks.values():
            instantiate(node)
    assert not [k for k in unread(cfg, log) if k.startswith(("logger.", "callbacks."))]
    assert {"logger.group", "logger.mode", "callbacks.step_checkpoint.every_n_train_steps"} <= log


@pytest.mark.slow
def test_every_key_of_a_pipeline_run_is_read(make_cfg):
    from msa.models import load_policy
    from msa.runtime import make_logger
    from train import train

    cfg = make_cfg(*SMALL)
    with recording_reads() as log:
        train(cfg)
        # Branches the demo pipeline does not take: LoRA on the tiny model, the threshold hard rule
        # (validate reads it), the W&B logger, a stage=sft run's CoT file (missing here: an error).
        from msa.config import ConfigError, validate

        with pytest.raises(ConfigError, match="sft.cot"):
            validate(make_cfg("stage=sft", "sft.cot=nowhere.jsonl"))
        lora = make_cfg("model=tiny", "model.lora.enabled=true")
        load_policy(lora.model)
        log_lora = {k for k in log if k.startswith("model.lora.")}
        validate(make_cfg("stage=grpo", "grpo.hard_rule=reward_below", "grpo.hard_threshold=0.5"))
        make_logger(make_cfg("logger=wandb", "logger.mode=disabled"), "eval")
    assert log_lora, "LoRA settings were not read with model.lora.enabled=true"
    missing = unread(cfg, log)
    assert not missing, f"config keys that nothing read in a whole pipeline run: {missing}"


# ---------------------------------------------------------------- every option, by name

def source_names() -> set[str]:
    """Attribute names and string constants in msa/ and train.py (what code can read a key by)."""
    names: set[str] = set()
    for path in [ROOT / "train.py", *sorted((ROOT / "msa").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", node.value))
            elif isinstance(node, ast.keyword) and node.arg:
                names.add(node.arg)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return names


def yaml_keys(node, prefix: str = ""):
    """Every key path set in a YAML config file (``defaults`` lists excluded)."""
    for key, value in (node or {}).items():
        if key == "defaults" and not prefix:
            continue
        yield f"{prefix}{key}"
        if isinstance(value, dict):
            yield from yaml_keys(value, f"{prefix}{key}.")


def target_parameters(node, prefix: str = "") -> dict[str, set[str]]:
    """path -> the keys a ``_target_`` node may hold: the parameters of the class it names, which
    msa.runtime.instantiate passes them to (WandbLogger hands the ones it does not take to wandb.init)."""
    from hydra.utils import get_class

    out = {}
    if isinstance(node, dict):
        if "_target_" in node:
            cls = get_class(node["_target_"])
            params = set(inspect.signature(cls).parameters) | {"_target_"}
            if cls.__name__ == "WandbLogger":
                import wandb

                params |= set(inspect.signature(wandb.init).parameters)
            out[prefix.rstrip(".")] = params
        for key, value in node.items():
            out.update(target_parameters(value, f"{prefix}{key}."))
    return out


def test_every_key_of_every_option_is_named_in_the_code():
    import lightning as L
    import yaml

    names = source_names() | set(inspect.signature(L.Trainer.__init__).parameters)
    missing = {}
    # conf/hydra/ (and hydra/launcher/) are Hydra's own nodes: their keys are checked by Hydra's schemas
    # (the launcher plugin's dataclass fails a misspelled key while composing), and read by Hydra
    for path in sorted(p for p in CONF.rglob("*.yaml") if p.relative_to(CONF).parts[0] != "hydra"):
        text = path.read_text()
        package = "" if "@package _global_" in text or path.parent == CONF else f"{path.parent.name}."
        node = yaml.safe_load(text)
        targets = target_parameters(node, package)
        for key_path in yaml_keys(node, package):
            key = key_path.split(".")[-1]
            if key_path.split(".")[0] in NOT_READ or key_path in NOT_READ or key_path.startswith(READ_BY_NAME):
                continue
            if key_path in targets:  # a node built from its _target_: any name (build_trainer builds them all)
                continue
            parent = key_path.rpartition(".")[0]
            if key not in (targets[parent] if parent in targets else names):
                missing[f"{path.relative_to(CONF)}: {key_path}"] = key
    assert not missing, f"config keys whose name no code uses: {sorted(missing)}"
