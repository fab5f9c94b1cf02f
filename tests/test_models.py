"""The policy loader on the tiny model: round trips, LoRA placement, the adapter-off reference,
the full Qwen2.5-Omni checkpoint layout, encoder-output reuse and the 7B parameter count."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from conftest import LORA_R4
from msa.models import load_policy, unwrap_peft
from msa.models.encode import encode_media, inputs_embeds, position_kwargs

NO_LORA = "model.lora.enabled=false"  # the plain tiny thinker


def clip_inputs(processor, seed=0):
    conv = [{"role": "user", "content": [{"type": "video", "video": "<clip>"}, {"type": "text", "text": "how is it?"}]}]
    text = processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
    rng = np.random.RandomState(seed)
    frames = (rng.rand(4, 56, 56, 3) * 255).astype(np.uint8)
    audio = (rng.randn(32000) * 0.1).astype(np.float32)
    return processor(text=[text], videos=[frames], audio=[audio], audio_from_video_indices=[0],
                     load_audio_from_video=True, fps=2.0, audio_kwargs={"max_length": 32000},
                     return_tensors="pt", padding=True)


@pytest.fixture(scope="module")
def policy(tiny_cfg):
    torch.manual_seed(0)
    return load_policy(tiny_cfg(*LORA_R4))


def test_save_load_round_trip_identical_logits(tiny_cfg, tmp_path):
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    p = load_policy(tiny_cfg(NO_LORA))
    inputs = clip_inputs(p.processor)
    ref = p.model(**inputs, use_audio_in_video=True).logits
    p.model.save_pretrained(tmp_path)
    again = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(tmp_path)
    assert torch.equal(again(**inputs, use_audio_in_video=True).logits, ref)


def test_lora_wraps_only_language_model(policy):
    wrapped = [n for n, m in policy.model.named_modules() if hasattr(m, "lora_A")]
    assert wrapped, "no LoRA module"
    assert all(".language_model.layers." in n for n in wrapped)
    assert not any("audio_tower" in n or "visual" in n for n in wrapped)
    # 2 layers x (q, k, v, o, gate, up, down)
    assert len(wrapped) == 2 * 7
    trainable = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_disable_adapter_reproduces_base_logits(policy):
    inputs = clip_inputs(policy.processor)
    with torch.no_grad():
        base = policy.model(**inputs, use_audio_in_video=True).logits
        for n, p in policy.model.named_parameters():  # make the adapter matter
            if "lora_B" in n:
                p.add_(0.5)
        adapted = policy.model(**inputs, use_audio_in_video=True).logits
        with policy.model.disable_adapter():
            off = policy.model(**inputs, use_audio_in_video=True).logits
        for n, p in policy.model.named_parameters():
            if "lora_B" in n:
                p.sub_(0.5)
    assert (adapted - base).abs().max() > 1e-3
    assert torch.equal(off, base)


def test_full_omni_layout_loads_through_same_loader(tiny_cfg, tiny_dir, tmp_path):
    """A checkpoint written like Qwen/Qwen2.5-Omni-7B: nested thinker_config, `thinker.`-prefixed weights."""
    import shutil

    p = load_policy(tiny_cfg(NO_LORA))
    inputs = clip_inputs(p.processor)
    ref = p.model(**inputs, use_audio_in_video=True).logits
    full = tmp_path / "omni"
    full.mkdir()
    thinker_cfg = json.loads((tiny_dir / "config.json").read_text())
    (full / "config.json").write_text(json.dumps({
        "model_type": "qwen2_5_omni", "architectures": ["Qwen2_5OmniModel"], "enable_audio_output": False,
        "thinker_config": thinker_cfg}))
    # v4 checkpoint names: thinker.model.layers.* (language model), thinker.visual.*, thinker.audio_tower.*
    state = load_file(tiny_dir / "model.safetensors")
    renamed = {}
    for k, v in state.items():
        k4 = k.replace("model.language_model.", "model.").replace("model.visual.", "visual.").replace(
            "model.audio_tower.", "audio_tower.")
        renamed["thinker." + k4] = v
    save_file(renamed, full / "model.safetensors")
    for f in ("tokenizer.json", "tokenizer_config.json", "processor_config.json", "chat_template.jinja"):
        shutil.copy(tiny_dir / f, full / f)
    q = load_policy(tiny_cfg(NO_LORA, f"model.path='{full}'", "model.tiny_size=null"))
    assert torch.equal(q.model(**inputs, use_audio_in_video=True).logits, ref)


def test_cached_encoder_outputs_give_identical_logits(policy):
    inputs = clip_inputs(policy.processor)
    with torch.no_grad():
        raw = policy.model(**inputs, use_audio_in_video=True).logits
        thinker = unwrap_peft(policy.model)
        media = encode_media(thinker, inputs)
        emb = inputs_embeds(thinker, inputs["input_ids"], media)
        cached = policy.model(input_ids=inputs["input_ids"], inputs_embeds=emb, attention_mask=inputs["attention_mask"],
                              use_audio_in_video=True, **position_kwargs(inputs)).logits
    assert torch.equal(raw, cached)


def test_use_audio_in_video_changes_positions(policy):
    """Without the flag the TMRoPE positions are silently different (the model does not complain)."""
    inputs = clip_inputs(policy.processor)
    args = dict(input_ids=inputs["input_ids"], video_grid_thw=inputs["video_grid_thw"],
                attention_mask=inputs["attention_mask"], audio_seqlens=inputs["feature_attention_mask"].sum(-1),
                second_per_grids=inputs["video_second_per_grid"])
    body = unwrap_peft(policy.model).model
    with_flag, _ = body.get_rope_index(use_audio_in_video=True, **args)
    without, _ = body.get_rope_index(use_audio_in_video=False, **args)
    assert not torch.equal(with_flag, without)


def test_7b_architecture_parameter_count():
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    from msa.models.loader import CONFIG_7B

    values = json.loads(CONFIG_7B.read_text())
    values.pop("_comment")
    with torch.device("meta"):
        model = Qwen2_5OmniThinkerForConditionalGeneration(Qwen2_5OmniThinkerConfig(**values))
    assert sum(p.numel() for p in model.parameters()) == 8_931_813_888


def test_tiny_build_is_deterministic(tmp_path):
    from msa.models.tiny import build_tiny

    a, b = build_tiny(tmp_path / "a"), build_tiny(tmp_path / "b")
    for f in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_bad_model_config_values_are_named(tiny_cfg, tmp_path):
    with pytest.raises(ValueError, match="model.dtype"):
        load_policy(tiny_cfg(NO_LORA, "model.dtype=float8"))
    with pytest.raises(FileNotFoundError, match="model.path"):
        load_policy(tiny_cfg(NO_LORA, f"model.path='{tmp_path / 'nowhere'}'", "model.tiny_size=null"))


def _train_lora(policy, seed):
    """Stand-in for a training stage: every LoRA weight moved by a seeded random step."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in policy.model.named_parameters():
            if "lora_" in n:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def _eval_loader(mcfg, export):
    """The policy ``stage=eval init_from=<export>`` evaluates (the same call as the stages' test passes)."""
    from types import SimpleNamespace

    from msa.stages.common import load_stage_policy

    return load_stage_policy(SimpleNamespace(cfg=OmegaConf.create({"model": mcfg}), artefacts={"policy": str(export)}))


def test_lora_exports_reload_to_the_trained_policy_through_the_chain(tiny_cfg, tmp_path):
    """SFT LoRA -> export -> GRPO-like LoRA on top (SFT merged into its base) -> export: each export, reloaded
    as stage=eval does, gives the logits of the policy at the end of its stage; the GRPO one keeps the SFT
    weights (before the fix it was the GRPO adapter on the raw base)."""
    from msa.models import export_policy

    mcfg = tiny_cfg(*LORA_R4)
    sft = load_policy(mcfg)
    inputs = clip_inputs(sft.processor)
    logits = lambda p: p.model.eval()(**inputs, use_audio_in_video=True).logits  # noqa: E731
    with torch.no_grad():
        base = logits(sft)
        _train_lora(sft, 1)
        sft_end = logits(sft)
        export_policy(sft, tmp_path / "sft")
        grpo = load_policy(mcfg, init_from=tmp_path / "sft")
        # fresh adapter on the merged SFT weights: the SFT policy up to the merge's rounding
        assert (logits(grpo) - sft_end).abs().max() < 1e-5
        _train_lora(grpo, 2)
        grpo_end = logits(grpo)
        export_policy(grpo, tmp_path / "grpo")
        # stand-in for moving the run: the export carries its chain, not a path back to the SFT run
        (tmp_path / "sft").rename(tmp_path / "sft_moved")
        sft_again = logits(_eval_loader(mcfg, tmp_path / "sft_moved"))
        grpo_again = logits(_eval_loader(mcfg, tmp_path / "grpo"))
    assert (sft_end - base).abs().max() > 1e-2 and (grpo_end - sft_end).abs().max() > 1e-2
    assert torch.equal(sft_again, sft_end)
    assert torch.equal(grpo_again, grpo_end)
    # and a third stage on top of the GRPO export chains once more
    with torch.no_grad():
        third = load_policy(mcfg, init_from=tmp_path / "grpo")
        _train_lora(third, 3)
        third_end = logits(third)
        export_policy(third, tmp_path / "third")
        assert torch.equal(logits(_eval_loader(mcfg, tmp_path / "third")), third_end)


def test_export_refreshes_init_when_the_earlier_exports_weights_differ_under_the_same_manifest(tiny_cfg, tmp_path):
    """Two SFT exports with one msa_policy.json text (two seeds, same epoch and score) but other weights: a
    re-export into the same directory on top of the second kept the first one's ``init/`` copy (decided by
    the manifest's text). Now decided by the weights' digest."""
    from msa.models import export_policy
    from msa.models.loader import export_digest

    mcfg = tiny_cfg(*LORA_R4)
    extra = {"stage": "sft", "epoch": 3, "val_score": 1.5}
    sft = load_policy(mcfg)
    _train_lora(sft, 1)
    export_policy(sft, tmp_path / "sft_seed0", extra=extra)
    _train_lora(sft, 2)
    export_policy(sft, tmp_path / "sft_seed1", extra=extra)
    assert (tmp_path / "sft_seed0" / "msa_policy.json").read_text() == (tmp_path / "sft_seed1" / "msa_policy.json").read_text()
    assert export_digest(tmp_path / "sft_seed0") != export_digest(tmp_path / "sft_seed1")
    grpo = load_policy(mcfg, init_from=tmp_path / "sft_seed0")
    export_policy(grpo, tmp_path / "grpo")
    assert export_digest(tmp_path / "grpo" / "init") == export_digest(tmp_path / "sft_seed0")
    grpo.init = tmp_path / "sft_seed1"  # another run exporting into the same directory
    export_policy(grpo, tmp_path / "grpo")
    assert export_digest(tmp_path / "grpo" / "init") == export_digest(tmp_path / "sft_seed1")
    # a moved copy of an export has its digest
    import shutil
    shutil.copytree(tmp_path / "sft_seed1", tmp_path / "moved")
    assert export_digest(tmp_path / "moved") == export_digest(tmp_path / "sft_seed1")


def test_a_damaged_checkpoint_names_its_file(tiny_dir, tmp_path):
    """A truncated model.safetensors (an interrupted copy, a full disk) raised a SafetensorError naming nothing."""
    import shutil

    from msa.models.loader import ModelFilesError, apply_init, load_base

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_dir, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelFilesError, match=rf"model.path={damaged}: cannot load the weights in .*model.safetensors"):
        load_base(OmegaConf.create({"path": str(damaged)}), None)
    model, _ = load_base(OmegaConf.create({"path": str(tiny_dir)}), None)
    with pytest.raises(ModelFilesError, match=rf"init_from={damaged}: cannot load the weights in .*model.safetensors"):
        apply_init(model, damaged)
