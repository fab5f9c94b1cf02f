"""Teachers behind one small interface, and the model ones: transformers (HF) and vLLM.

    teacher = build_teacher(cfg.teacher, dataset="demo", modalities=("text", "audio", "video"), ...)
    texts = teacher.generate(batch)   # list[list[str]]: num_samples raw answers per clip, in batch order
    answers = teacher.judge(batch)    # list[str]: one raw yes/no answer per clip (model teachers only)

``batch`` is a dict of per-clip lists: ``ids, datasets, transcripts, label, label_T, label_A, label_V``
(and ``paths`` for teachers that decode the media themselves). A teacher with ``needs_processor``
gets the collated model batch of :class:`msa.data.collate.MultimodalCollator` instead (same metadata
plus the model inputs); it exposes ``processor`` and ``use_audio_in_video`` for the data module
(:mod:`msa.cot.batches` makes either kind). A judge batch is the same kind of batch plus ``chains``,
the (polarity, reasoning) to check per clip (:class:`msa.cot.judge.Judge` builds it).

* :class:`~msa.cot.rule_teacher.RuleTeacher` (``teacher=rule``): chains from the unimodal labels, no model.
* :class:`HFTeacher` (``teacher=hf|tiny``): any local Omni checkpoint through transformers, batched
  sampling; Qwen2.5-Omni through :func:`msa.models.loader.load_policy`, Qwen3-Omni through its own
  class. It also serves as the judge model.
* :class:`VLLMTeacher` (``teacher=vllm``): the same prompts through vLLM, for GPU machines that have it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from msa.cot.judge_prompt import judge_conversation
from msa.cot.rule_teacher import RuleTeacher
from msa.dc import build_conversation
from msa.dc.prompt import MODALITIES
from msa.seeding import stable_seed

JUDGE_MAX_NEW_TOKENS = 4  # room for "yes"/"no" and a period; anything longer is unparsed anyway


class Teacher(Protocol):
    name: str
    needs_processor: bool  # True: generate() takes a collated model batch; False: a batch of metadata lists

    def generate(self, batch: Mapping[str, Any]) -> list[list[str]]:
        """``num_samples`` raw answers per clip of ``batch``."""
        ...


class JudgeModel(Teacher, Protocol):
    def judge(self, batch: Mapping[str, Any]) -> list[str]:
        """One greedy raw answer per clip of a judge batch (``batch["chains"]``: what to check)."""
        ...


def model_type(path: str | Path) -> str:
    """``model_type`` of a local checkpoint's config.json ("" when there is none to read)."""
    cfg = Path(path) / "config.json"
    return json.loads(cfg.read_text()).get("model_type", "") if cfg.exists() else ""


def _policy_node(node: Mapping[str, Any]) -> dict:
    """A ``conf/model``-style node for :func:`load_policy`: LoRA off, everything frozen."""
    return {"path": node.get("path"), "tiny_size": node.get("tiny_size"), "cache_dir": node.get("cache_dir"),
            "dtype": node.get("dtype", "auto"), "attn_implementation": node.get("attn_implementation", "sdpa"),
            "init": "pretrained", "use_audio_in_video": bool(node.get("use_audio_in_video", True)),
            "lora": {"enabled": False}, "freeze": {"vision": True, "audio": True}}


def load_teacher_model(node: Mapping[str, Any]):
    """(model, processor, use_audio_in_video) for an ``hf`` teacher node, in eval mode, frozen, on the GPU
    when there is one. Qwen3-Omni checkpoints load through ``Qwen3OmniMoeForConditionalGeneration`` with the
    talker off and give its thinker; everything else through :func:`msa.models.loader.load_policy`."""
    import torch
    from omegaconf import OmegaConf

    path = node.get("path")
    if path and not Path(path).expanduser().exists():
        raise FileNotFoundError(f"teacher.path={path} does not exist (a local checkpoint directory; nothing is "
                                "downloaded)")
    if path and model_type(Path(path).expanduser()).startswith("qwen3_omni"):
        from transformers import AutoConfig, AutoProcessor, Qwen3OmniMoeForConditionalGeneration

        from msa.models.loader import _attn_impl, _dtype

        config = AutoConfig.from_pretrained(path)
        config.enable_audio_output = False  # the talker (speech output) is not built
        full = Qwen3OmniMoeForConditionalGeneration.from_pretrained(
            path, config=config, dtype=_dtype(node.get("dtype", "auto")),
            attn_implementation=_attn_impl(node.get("attn_implementation", "sdpa")))
        model, processor = full.thinker, AutoProcessor.from_pretrained(path)
    else:
        from msa.models.loader import load_policy

        policy = load_policy(OmegaConf.create(_policy_node(node)))
        model, processor = policy.model, policy.processor
    model.requires_grad_(False)
    model.eval()
    if torch.cuda.is_available():
        model.to("cuda")
    return model, processor, bool(node.get("use_audio_in_video", True))


class HFTeacher:
    """A local Omni checkpoint through transformers: ``num_samples`` sampled answers per clip, batched.

    The sampling seed is derived from ``seed`` and the batch's ids, so a batch gives the same answers
    whether or not the run was interrupted before it."""

    needs_processor = True

    def __init__(self, node: Mapping[str, Any], *, num_samples: int = 1, temperature: float = 0.7,
                 top_p: float = 0.9, max_new_tokens: int = 256, seed: int = 0, loaded=None):
        if num_samples > 1 and temperature <= 0:
            raise ValueError(f"cot.num_samples={num_samples} needs cot.temperature > 0 (greedy decoding gives "
                             "the same answer every time)")
        self.model, self.processor, self.use_audio_in_video = loaded or load_teacher_model(node)
        self.num_samples, self.temperature, self.top_p = int(num_samples), float(temperature), float(top_p)
        self.max_new_tokens, self.seed = int(max_new_tokens), int(seed)
        self.name = f"hf:{node.get('path') or 'tiny-' + str(node.get('tiny_size'))}"

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    def _seed(self, batch) -> None:
        import torch

        torch.manual_seed(stable_seed(self.seed, *batch["ids"]))

    def _to_device(self, batch: Mapping[str, Any]) -> dict:
        import torch

        device = next(self.model.parameters()).device
        return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}

    def generate(self, batch: Mapping[str, Any]) -> list[list[str]]:
        from msa.generation import generate_texts

        if not batch["ids"]:
            return []
        self._seed(batch)
        n = self.num_samples
        texts = generate_texts(self.model, self.tokenizer, self._to_device(batch), max_new_tokens=self.max_new_tokens,
                               use_audio_in_video=bool(batch.get("use_audio_in_video", self.use_audio_in_video)),
                               do_sample=self.temperature > 0, temperature=self.temperature or 1.0, top_p=self.top_p,
                               num_return_sequences=n)
        return [texts[i * n:(i + 1) * n] for i in range(len(batch["ids"]))]  # grouped by prompt

    def judge(self, batch: Mapping[str, Any]) -> list[str]:
        """Greedy answers to a judge batch, whose prompts the judge collator wrote from ``batch["chains"]``
        (:func:`msa.cot.judge.judge_collator`)."""
        from msa.generation import generate_texts

        if not batch["ids"]:
            return []
        return generate_texts(self.model, self.tokenizer, self._to_device(batch), max_new_tokens=JUDGE_MAX_NEW_TOKENS,
                              use_audio_in_video=bool(batch.get("use_audio_in_video", self.use_audio_in_video)))


class VLLMTeacher:
    """The DC prompts through vLLM (GPU machines): the chat template of the checkpoint's processor, the
    clip's frames and audio decoded with :mod:`msa.data.media`, ``n`` samples per prompt. Untested
    offline: it needs vllm and a GPU."""

    needs_processor = False

    def __init__(self, node: Mapping[str, Any], *, dataset: str, modalities: Sequence[str], num_samples: int = 1,
                 temperature: float = 0.7, top_p: float = 0.9, max_new_tokens: int = 256, seed: int = 0,
                 fps: float = 2.0, max_frames: int = 64, max_audio_seconds: float | None = 30.0):
        try:
            import vllm
        except ImportError as e:
            raise ImportError("teacher=vllm needs vllm installed (GPU machines): pip install -e '.[vllm]'; "
                              "or use teacher=hf with the same checkpoint") from e
        from transformers import AutoProcessor

        path = node.get("path")
        if not path or not Path(path).expanduser().exists():
            raise FileNotFoundError(f"teacher.path={path}: a local checkpoint directory is needed for teacher=vllm")
        self.dataset, self.modalities = dataset, tuple(m for m in MODALITIES if m in modalities)
        self.use_audio_in_video = bool(node.get("use_audio_in_video", True))
        self.fps, self.max_frames, self.max_audio_seconds = fps, max_frames, max_audio_seconds
        self.processor = AutoProcessor.from_pretrained(path)
        self.llm = vllm.LLM(model=str(path), dtype=str(node.get("dtype", "auto")),
                            gpu_memory_utilization=float(node.get("gpu_memory_utilization", 0.8)),
                            tensor_parallel_size=int(node.get("tensor_parallel_size", 1)), seed=int(seed),
                            limit_mm_per_prompt={"video": 1, "audio": 1})
        self.sampling = vllm.SamplingParams(n=int(num_samples), temperature=float(temperature), top_p=float(top_p),
                                            max_tokens=int(max_new_tokens), seed=int(seed))
        self.greedy = vllm.SamplingParams(n=1, temperature=0.0, max_tokens=JUDGE_MAX_NEW_TOKENS)
        self.name = f"vllm:{path}"

    def _inputs(self, conv: list[dict], path: str) -> dict:
        from msa.data.media import decode_audio, decode_video

        prompt = self.processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
        data: dict = {}
        if "video" in self.modalities:
            data["video"] = decode_video(path, fps=self.fps, max_frames=self.max_frames)  # [T, H, W, 3]
        if "audio" in self.modalities:
            sr = self.processor.feature_extractor.sampling_rate
            data["audio"] = (decode_audio(path, sr, self.max_audio_seconds), sr)
        interleave = "video" in data and "audio" in data and self.use_audio_in_video
        return {"prompt": prompt, "multi_modal_data": data, "mm_processor_kwargs": {"use_audio_in_video": interleave}}

    def generate(self, batch: Mapping[str, Any]) -> list[list[str]]:
        inputs = [self._inputs(build_conversation(t, self.dataset, modalities=self.modalities), p)
                  for t, p in zip(batch["transcripts"], batch["paths"])]
        outs = self.llm.generate(inputs, self.sampling, use_tqdm=False)
        return [[o.text for o in out.outputs] for out in outs]

    def judge(self, batch: Mapping[str, Any]) -> list[str]:
        """Greedy answers to the judge's question about ``batch["chains"]``, with each clip's media."""
        inputs = [self._inputs(judge_conversation(t, self.dataset, *chain, self.modalities), p)
                  for t, p, chain in zip(batch["transcripts"], batch["paths"], batch["chains"])]
        outs = self.llm.generate(inputs, self.greedy, use_tqdm=False)
        return [out.outputs[0].text for out in outs]


def build_teacher(node: Mapping[str, Any], *, dataset: str, modalities: Sequence[str], num_samples: int = 1,
                  temperature: float = 0.7, top_p: float = 0.9, max_new_tokens: int = 256, seed: int = 0,
                  media: Mapping[str, Any] | None = None, loaded=None):
    """The teacher for a ``conf/teacher`` node (``kind``: rule | hf | vllm). ``media``: fps, max_frames,
    max_audio_seconds for vLLM, which decodes the clips itself. ``loaded``: an already loaded
    (model, processor, use_audio_in_video) to reuse (a judge on the teacher's checkpoint)."""
    kind = node.get("kind")
    if kind == "rule":
        return RuleTeacher(dataset, modalities, seed=int(node.get("seed", seed) or 0), num_samples=num_samples,
                           quote_transcript=bool(node.get("quote_transcript", True)),
                           text_led=bool(node.get("text_led", False)))
    sampling = dict(num_samples=num_samples, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                    seed=seed)
    if kind == "hf":
        if not node.get("path") and not node.get("tiny_size"):
            raise ValueError("teacher.path: set it to a local Omni checkpoint directory (teacher=hf "
                             "teacher.path=/ckpt), or use teacher=tiny or teacher=rule")
        return HFTeacher(node, loaded=loaded, **sampling)
    if kind == "vllm":
        media = dict(media or {})
        return VLLMTeacher(node, dataset=dataset, modalities=modalities, **sampling,
                           **{k: media[k] for k in ("fps", "max_frames", "max_audio_seconds") if k in media})
    raise ValueError(f"teacher.kind={kind!r}: use rule, hf or vllm")
