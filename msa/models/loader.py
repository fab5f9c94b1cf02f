"""Load the policy (a Qwen2.5-Omni thinker) and its processor: the tiny offline model, a local
checkpoint, or the 7B architecture with random weights; then dtype, attention, freezing,
gradient checkpointing and LoRA, all from one config node (``conf/model/*.yaml``).

    policy = load_policy(cfg.model)                        # tiny, built on first use
    policy = load_policy(cfg.model, init_from="run/checkpoints/best")   # train on top of an SFT export
    policy = load_policy(cfg.model, init_from="run/checkpoints/final", trainable=False)   # evaluate an export

An export reloads to exactly the policy that was trained. A LoRA stage trains a fresh adapter on top of
the earlier stage's export merged into the base, so its export holds that adapter *and* a copy of the
export it was merged onto (``init/``, recursively); loading merges the chain in the same order and
keeps the last adapter unmerged, as it was during training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from msa.exports import EXPORT_META  # written next to every exported adapter / full model

log = logging.getLogger(__name__)

# LoRA targets: the language model's attention and MLP projections only. A plain name list such as
# ["q_proj", "v_proj"] also matches the audio encoder's attention (model.audio_tower.layers.N.self_attn),
# so the match is a regex anchored on ``language_model``.
LLM_LORA_REGEX = r".*language_model\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))"
CONFIG_7B = Path(__file__).parent / "configs" / "qwen2_5_omni_7b_thinker.json"
INIT_DIR = "init"  # inside a LoRA export: the earlier export its base was merged from


@dataclass
class Policy:
    """The trainable model, its processor and the flags every forward/generate call needs."""

    model: Any  # Qwen2_5OmniThinkerForConditionalGeneration, or a peft.PeftModel around it
    processor: Any  # Qwen2_5OmniProcessor
    use_audio_in_video: bool
    source: str  # where the base weights came from (a directory, "random-7b", ...)
    lora: bool
    init: Path | None = None  # the export merged into the base weights before the adapter was added

    @property
    def tokenizer(self):
        return self.processor.tokenizer


def unwrap_peft(model):
    """The thinker under a peft wrapper (its LoRA layers are injected in place and stay active), or
    ``model`` itself when it is not wrapped."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _dtype(name: str) -> torch.dtype:
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if name not in table:
        raise ValueError(f"model.dtype={name!r} is not one of {sorted(table) + ['auto']}")
    return table[name]


def _attn_impl(name: str) -> str:
    if name == "flash_attention_2":
        try:
            import flash_attn  # noqa: F401
        except ImportError as e:
            raise ValueError("model.attn_implementation=flash_attention_2 needs the flash-attn package "
                             "(pip install -e '.[gpu]' on a GPU machine); use sdpa otherwise") from e
    if name not in ("sdpa", "eager", "flash_attention_2"):
        raise ValueError(f"model.attn_implementation={name!r}: use sdpa, eager or flash_attention_2")
    return name


def resolve_model_dir(cfg) -> Path | None:
    """The directory holding the base checkpoint, building the tiny model when asked for one."""
    if cfg.get("path"):
        path = Path(cfg.path).expanduser()
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"model.path={path}: no config.json there (expected a local Qwen2.5-Omni "
                                    "checkpoint directory; nothing is downloaded)")
        return path
    if cfg.get("tiny_size"):
        from msa.models.tiny import ensure_tiny

        return ensure_tiny(cfg.get("cache_dir"), size=cfg.tiny_size, vocab=cfg.get("vocab") or "trained")
    return None


class ModelFilesError(OSError):
    """Weights that exist but cannot be read (truncated, damaged); names the setting and the directory."""


@contextmanager
def _reading_weights(key: str, path: Path):
    """Turn a loader's error about damaged weight files (safetensors raises one naming no file) into an
    error naming ``key=path``. A missing file is not this: the callers check for those first."""
    from safetensors import SafetensorError

    try:
        yield
    except (SafetensorError, EOFError) as exc:
        files = ", ".join(sorted(p.name for p in path.glob("*.safetensors"))) or "no *.safetensors"
        raise ModelFilesError(f"{key}={path}: cannot load the weights in {path} ({files}): {exc}. The files are "
                              "damaged or incomplete (an interrupted copy or a full disk?); copy them again "
                              "(a built tiny model: delete the directory and it is rebuilt)") from exc


def load_processor(cfg):
    from transformers import AutoProcessor

    model_dir = resolve_model_dir(cfg)
    if model_dir is None:  # random 7B without a checkpoint: the tiny processor has the 7B preprocessor settings
        from msa.models.tiny import ensure_tiny

        model_dir = ensure_tiny(cfg.get("cache_dir"), size="test", vocab=cfg.get("vocab") or "trained")
    return AutoProcessor.from_pretrained(model_dir)


def _random_7b(processor, dtype: torch.dtype, attn: str):
    """The real 7B thinker architecture with random weights, token ids taken from our tokenizer."""
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    from msa.models.tiny import special_token_ids

    values = json.loads(CONFIG_7B.read_text())
    values.pop("_comment", None)
    values.update(special_token_ids(processor.tokenizer))  # ids inside the 152064 vocabulary either way
    config = Qwen2_5OmniThinkerConfig(**values)
    config._attn_implementation = attn
    torch_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build directly in the target dtype: 8.9B fp32 would need 33 GiB
    try:
        model = Qwen2_5OmniThinkerForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(torch_dtype)
    return model


def load_base(cfg, processor):
    """The thinker with base weights (before adapters), in the configured dtype and attention."""
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    dtype, attn = _dtype(cfg.get("dtype", "float32")), _attn_impl(cfg.get("attn_implementation", "sdpa"))
    if cfg.get("init", "pretrained") == "random":
        if cfg.get("tiny_size"):
            raise ValueError("model.init=random is for the 7B architecture; the tiny model is random already")
        return _random_7b(processor, dtype, attn), "random-7b"
    model_dir = resolve_model_dir(cfg)
    if model_dir is None:
        raise ValueError("set model.path=/local/checkpoint (or model.init=random for the 7B architecture)")
    # A full Qwen2.5-Omni checkpoint (nested thinker_config, "thinker."-prefixed weights) loads through
    # this same call: transformers picks the thinker config and strips the prefix.
    with _reading_weights("model.path" if cfg.get("path") else "model.tiny_size", model_dir):
        model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(model_dir, dtype=dtype,
                                                                           attn_implementation=attn)
    return model, str(model_dir)


def freeze_encoders(model, vision: bool, audio: bool) -> None:
    inner = model.model
    for flag, module in ((vision, inner.visual), (audio, inner.audio_tower)):
        for p in module.parameters():
            p.requires_grad_(not flag)


def lora_config(lora_cfg):
    from peft import LoraConfig

    return LoraConfig(r=int(lora_cfg.r), lora_alpha=int(lora_cfg.alpha), lora_dropout=float(lora_cfg.dropout),
                      target_modules=lora_cfg.get("target_regex") or LLM_LORA_REGEX, bias="none", task_type="CAUSAL_LM")


def export_kind(path: str | Path) -> str | None:
    """What the export at ``path`` holds: ``"lora"`` (adapter_config.json), ``"full"`` (model.safetensors,
    or its index), or None when it is no export (the run plan refuses such an ``init_from``)."""
    path = Path(path)
    if (path / "adapter_config.json").exists():
        return "lora"
    if (path / "model.safetensors").exists() or (path / "model.safetensors.index.json").exists():
        return "full"
    return None


def apply_init(model, init_from: str | Path, *, merge: bool = True):
    """Fold the weights of an earlier stage's export into ``model``.

    ``merge=True``: the export becomes the base weights (a training stage adds its own adapter on top).
    ``merge=False``: a LoRA export stays an active, unmerged adapter (a ``peft.PeftModel``), exactly as it
    was trained; merging it would change the logits by rounding, in bf16 enough to erase small updates.
    An export's own ``init/`` (the export its base was merged from) is merged first, recursively.
    """
    from peft import PeftModel

    path = Path(init_from)
    kind = export_kind(path)
    if kind == "lora":
        if (path / INIT_DIR).exists():
            model = apply_init(model, path / INIT_DIR, merge=True)
        with _reading_weights("init_from", path):
            adapted = PeftModel.from_pretrained(model, path)
        log.info("init_from %s: LoRA adapter %s", path, "merged into the base weights" if merge else "loaded")
        return adapted.merge_and_unload() if merge else adapted
    if kind == "full":
        from transformers import Qwen2_5OmniThinkerForConditionalGeneration

        with _reading_weights("init_from", path):
            loaded = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(path, dtype=model.dtype)
        model.load_state_dict(loaded.state_dict())
        log.info("init_from %s: full weights loaded", path)
        return model
    raise FileNotFoundError(f"init_from={path}: neither a LoRA adapter (adapter_config.json) nor full weights "
                            "(model.safetensors) there; pass a stage's checkpoints/<name> export directory")


def load_policy(cfg, init_from: str | Path | None = None, *, trainable: bool = True) -> Policy:
    """Build the policy from a ``conf/model`` node; ``init_from`` loads an earlier stage's export first.

    ``trainable=True`` (sft, grpo): the export is merged into the base and, with LoRA on, a fresh adapter
    is added on top, so ``disable_adapter()`` gives the initial policy: that is the GRPO reference model
    without a second copy of the weights. ``trainable=False`` (eval, the test passes): the export exactly
    as it was trained (its last adapter unmerged), every weight frozen, in eval mode.
    """
    processor = load_processor(cfg)
    model, source = load_base(cfg, processor)
    use_audio_in_video = bool(cfg.get("use_audio_in_video", True))
    if not trainable:
        if init_from:
            model = apply_init(model, init_from, merge=False)
        model.requires_grad_(False)
        model.eval()
        return Policy(model=model, processor=processor, use_audio_in_video=use_audio_in_video, source=source,
                      lora=hasattr(model, "get_base_model"), init=Path(init_from) if init_from else None)
    if init_from:
        model = apply_init(model, init_from)
    freeze = cfg.get("freeze", {}) or {}
    freeze_encoders(model, vision=bool(freeze.get("vision", True)), audio=bool(freeze.get("audio", True)))
    if cfg.get("gradient_checkpointing", False):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    use_lora = bool(cfg.get("lora", {}) and cfg.lora.get("enabled", False))
    if use_lora:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(cfg.lora))
        if cfg.get("gradient_checkpointing", False):
            model.enable_input_require_grads()
    return Policy(model=model, processor=processor, use_audio_in_video=use_audio_in_video, source=source,
                  lora=use_lora, init=Path(init_from) if init_from else None)


def set_train_mode(policy: Policy) -> None:
    """Train mode for what trains, eval mode for the frozen towers.

    ``from_pretrained`` returns the model in eval mode, and HF gradient checkpointing and dropout (LoRA's,
    the language model's attention) act only in train mode: left as loaded, a run with
    ``gradient_checkpointing=true`` keeps every activation and LoRA dropout never applies. The frozen
    towers stay in eval mode (no dropout, fixed statistics: they are feature extractors here). Generation
    in train mode keeps its KV cache: transformers checkpoints only while gradients are recorded.
    """
    policy.model.train()
    inner = unwrap_peft(policy.model).model
    for tower in (inner.visual, inner.audio_tower):
        if not any(p.requires_grad for p in tower.parameters()):
            tower.eval()


def trainable_parameters(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def export_policy(policy: Policy, out_dir: str | Path, extra: dict | None = None) -> Path:
    """Write what reloads to exactly this policy: full weights, or the LoRA adapter plus, when the base was
    merged from an earlier export, a copy of that export under ``init/``; and a small manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(out)
    policy.processor.save_pretrained(out)
    init = out / INIT_DIR
    if policy.lora and policy.init is not None:
        # By the weights, not the manifest: two SFT exports can share one msa_policy.json (same epoch and score)
        if not init.exists() or export_digest(init) != export_digest(policy.init):
            shutil.rmtree(init, ignore_errors=True)  # re-exports of the same run (SFT's best epoch) keep it
            shutil.copytree(policy.init, init)  # a copy, not links: a later save into the source truncates in place
    elif init.exists():  # full weights hold everything; a stale chain would be merged under them
        shutil.rmtree(init)
    meta = {"source": policy.source, "lora": policy.lora, "use_audio_in_video": policy.use_audio_in_video,
            "init_from": str(policy.init) if policy.lora and policy.init is not None else None, **(extra or {})}
    (out / EXPORT_META).write_text(json.dumps(meta, indent=2))
    return out


def export_digest(export: str | Path) -> str:
    """SHA-256 over what an export's policy is made of: every ``*.safetensors`` and ``adapter_config.json``
    under it (its ``init/`` chain included), by relative path and bytes. Two exports with one digest reload
    to the same policy, whatever their manifests say or wherever they were copied to."""
    root = Path(export)
    files = sorted(f for f in root.rglob("*") if f.is_file() and (f.suffix == ".safetensors"
                                                                  or f.name == "adapter_config.json"))
    if not files:
        raise FileNotFoundError(f"{root}: no *.safetensors under it, so no export to identify")
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()

