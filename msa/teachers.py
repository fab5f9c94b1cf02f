"""Teachers for the cot stage: who writes the DC chains of thought, behind one small interface.

    teacher = build_teacher(cfg.teacher, dataset="demo", modalities=("text", "audio", "video"), ...)
    texts = teacher.generate(batch)   # list[list[str]]: num_samples raw answers per clip, in batch order

``batch`` is a dict of per-clip lists: ``ids, datasets, transcripts, label, label_T, label_A, label_V``
(and ``paths`` for teachers that decode the media themselves). A teacher with ``needs_processor``
gets the collated model batch of :class:`msa.data.collate.MultimodalCollator` instead (same metadata
plus the model inputs); it exposes ``processor`` and ``use_audio_in_video`` for the data module.

* :class:`RuleTeacher` (``teacher=rule``): writes DC chains from the unimodal labels (label_T/A/V,
  which CH-SIMS, CH-SIMS v2 and the demo sets carry) with varied templates, seeded per clip; no model.
* :class:`HFTeacher` (``teacher=hf|tiny``): any local Omni checkpoint through transformers, batched
  sampling; Qwen2.5-Omni through :func:`msa.models.loader.load_policy`, Qwen3-Omni through its own
  class. It also serves as the judge model (:meth:`HFTeacher.judge`).
* :class:`VLLMTeacher` (``teacher=vllm``): the same prompts through vLLM, for GPU machines that have it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from msa.cot_filters import judge_prompt
from msa.data.specs import get_spec
from msa.dc import build_conversation, format_answer, polarity_of
from msa.dc.parser import contains_tag

log = logging.getLogger(__name__)

MODALITIES = ("text", "audio", "video")
JUDGE_SYSTEM_PROMPT = ("You review sentiment analyses of short video clips. You are given the clip and an "
                       "analysis of it, and you answer with one word: yes or no.")


class Teacher(Protocol):
    name: str
    needs_processor: bool  # True: generate() takes a collated model batch; False: a batch of metadata lists

    def generate(self, batch: Mapping[str, Any]) -> list[list[str]]:
        """``num_samples`` raw answers per clip of ``batch``."""
        ...


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from ``parts`` that is the same in every process (``hash()`` is salted per run).

    >>> stable_seed(0, "video_0001$_$0001") == stable_seed(0, "video_0001$_$0001")
    True
    """
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


# ----------------------------------------------------------------------------------------------
# Rule teacher
# ----------------------------------------------------------------------------------------------

# Cue descriptions by sign of the unimodal label; each sentence names its modality in words the
# plausibility filter recognises (msa.cot_filters.MODALITY_KEYWORDS).
_DESC = {
    "text": {1: ("positive", "approving", "upbeat", "warm"), -1: ("negative", "critical", "unhappy", "bitter"),
             0: ("neutral", "matter-of-fact", "plain")},
    "audio": {1: ("cheerful", "bright", "energetic", "warm"), -1: ("tense", "heavy", "strained", "downcast"),
              0: ("level", "flat", "even")},
    "video": {1: ("pleased", "happy", "relaxed and positive"), -1: ("displeased", "unhappy", "tense and negative"),
              0: ("neutral", "composed", "blank")},
}
_ADVERB = {1: ("slightly", "mildly", "a little"), 2: ("moderately", "clearly", "noticeably"),
           3: ("very", "markedly", "distinctly")}
_PITCH = {1: "the pitch rises and the pace is lively", -1: "the pitch falls and the pace drags",
          0: "the pitch stays level"}
_FACE = {1: {1: "a faint smile", 2: "a smile", 3: "a broad smile"},
         -1: {1: "a slight frown", 2: "a frown", 3: "a deep frown and lowered brows"}}
_TEMPLATES = {
    "text": (
        "Text: the transcript is {adv} {desc}{quote}.",
        "The wording of the transcript reads as {adv} {desc}{quote}.",
        "In the text, the speaker's words are {adv} {desc}{quote}.",
    ),
    "audio": (
        "Audio: the tone of voice sounds {adv} {desc}, and {pitch}.",
        "The voice is {adv} {desc}; {pitch}.",
        "Acoustically, the speech comes across as {adv} {desc}: {pitch}.",
    ),
    "video": (
        "Visual: the facial expression looks {adv} {desc}{face}.",
        "In the video, the speaker's face appears {adv} {desc}{face}.",
        "Visually, the expression is {adv} {desc}{face}.",
    ),
}
_NEUTRAL_TEMPLATES = {
    "text": ("Text: the transcript is {desc}, with no clear sentiment in the wording{quote}.",
             "The wording of the transcript is {desc} and carries little sentiment{quote}."),
    "audio": ("Audio: the tone of voice is {desc}, and {pitch}.",
              "The voice sounds {desc}; {pitch}, without emotional emphasis."),
    "video": ("Visual: the facial expression is {desc}, without a smile or a frown.",
              "In the video, the speaker's face stays {desc}."),
}
_MOD_WORD = {"text": "textual", "audio": "vocal", "video": "visual"}


def strength(x: float, dataset: str) -> int:
    """0 (none), 1 (slight), 2 (moderate), 3 (strong) for a unimodal label on ``dataset``'s scale.

    The label is first put on [-1, 1] (MOSI-scale labels are divided by 3); a magnitude within the
    neutral band's half-width counts as none.

    >>> [strength(v, "demo") for v in (0.0, 0.1, 0.2, 0.4, 0.8)], strength(-2.4, "demo_mosi")
    ([0, 0, 1, 2, 3], 3)
    """
    spec = get_spec(dataset)
    a = abs(float(x)) / spec.score_max
    if a <= spec.neutral_high / spec.score_max:
        return 0
    return 1 if a < 0.35 else 2 if a < 0.7 else 3


def _sign(x: float, dataset: str) -> int:
    return 0 if strength(x, dataset) == 0 else (1 if x > 0 else -1)


def _quote(transcript: str | None, rng: random.Random) -> str:
    """A short quotation of the transcript (or nothing: sometimes, and when it could break the answer)."""
    if not transcript or contains_tag(transcript) or "<" in transcript or rng.random() < 0.3:
        return ""
    words = transcript.split()
    if len(words) > 12:
        snippet = " ".join(words[:12]) + " ..."
    elif len(words) == 1 and len(transcript) > 40:  # unsegmented (Chinese) text
        snippet = transcript[:40] + "..."
    else:
        snippet = transcript.strip()
    return f' ("{snippet}")'


def cue_sentence(modality: str, x: float, dataset: str, rng: random.Random, transcript: str | None = None,
                 quote: bool = True) -> str:
    """One sentence about ``modality``'s cue, whose valence and strength follow its unimodal label.

    ``quote=False`` never quotes the transcript: shorter chains with nothing to copy (the CPU demo)."""
    s, k = _sign(x, dataset), strength(x, dataset)
    desc = rng.choice(_DESC[modality][s])
    quote = _quote(transcript, rng) if modality == "text" and quote else ""
    if s == 0:
        return rng.choice(_NEUTRAL_TEMPLATES[modality]).format(desc=desc, quote=quote, pitch=_PITCH[0])
    face = f", with {_FACE[s][k]}" if modality == "video" and rng.random() < 0.7 else ""
    return rng.choice(_TEMPLATES[modality]).format(adv=rng.choice(_ADVERB[k]), desc=desc, quote=quote,
                                                   pitch=_PITCH[s], face=face)


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def conclusion_sentence(polarity: str, label: float, signs: Mapping[str, int], dataset: str,
                        rng: random.Random) -> str:
    """The weighing sentence: consistent with ``polarity`` and honest about dissenting cues."""
    if polarity == "neutral":
        if all(v == 0 for v in signs.values()):
            return rng.choice(("None of the cues carries a clear sentiment, so overall the sentiment is neutral.",
                               "Taken together, the cues are weak, and the overall sentiment is neutral."))
        if len({v for v in signs.values() if v}) > 1:
            return rng.choice(("The cues pull in opposite directions and roughly cancel out, so overall the "
                               "sentiment is neutral.",
                               "Weighing the cues against each other, they balance out: overall the sentiment "
                               "is neutral."))
        return rng.choice(("The cues lean one way only weakly, so overall the sentiment stays neutral.",
                           "Overall the signal is too weak to call, and the sentiment is neutral."))
    s = 1 if polarity == "positive" else -1
    k = strength(label, dataset)
    adv = {1: "slightly ", 2: "", 3: "clearly "}[max(k, 1)]
    agree = [_MOD_WORD[m] for m, v in signs.items() if v == s]
    dissent = [_MOD_WORD[m] for m, v in signs.items() if v == -s]
    if dissent and agree:
        return (f"The {_join(dissent)} cue{'s' if len(dissent) > 1 else ''} point{'' if len(dissent) > 1 else 's'} "
                f"the other way, but the {_join(agree)} cues outweigh {'them' if len(dissent) > 1 else 'it'}, "
                f"so overall the sentiment is {adv}{polarity}.")
    if dissent:
        many = len(dissent) > 1
        return (f"Although the {_join(dissent)} cue{'s point' if many else ' points'} the other way, overall the "
                f"sentiment is {adv}{polarity}.")
    if len(agree) > 1:
        return rng.choice((f"All cues point the same way, so overall the sentiment is {adv}{polarity}.",
                           f"Taken together, the {_join(agree)} cues agree: the overall sentiment is "
                           f"{adv}{polarity}."))
    return f"Overall the sentiment is {adv}{polarity}."


def rule_chain(row: Mapping[str, Any], dataset: str, modalities: Sequence[str], rng: random.Random,
               quote: bool = True) -> str:
    """A DC answer for one clip from its labels: cue sentences (text, audio, visual), a conclusion,
    the true score. ``row`` needs ``label``, ``label_T/A/V`` and ``transcript``.

    >>> row = {"id": "v$_$1", "transcript": "great day", "label": 0.6, "label_T": 0.8, "label_A": 0.6,
    ...        "label_V": -0.2}
    >>> out = rule_chain(row, "demo", ["text", "audio", "video"], random.Random(0))
    >>> out.startswith("<polarity>positive</polarity><think>") and out.endswith("<score>0.6</score>")
    True
    """
    label = float(row["label"])
    polarity = polarity_of(label, dataset)
    unimodal = {"text": row.get("label_T"), "audio": row.get("label_A"), "video": row.get("label_V")}
    missing = [f"label_{m[0].upper()}" for m in modalities
               if unimodal[m] is None or (isinstance(unimodal[m], float) and math.isnan(unimodal[m]))]
    if missing:
        raise ValueError(f"{dataset}: clip {row.get('id')} has no {', '.join(missing)}; teacher=rule writes chains "
                         "from the unimodal labels, which only CH-SIMS, CH-SIMS v2 and the demo sets have "
                         "(use a model teacher, teacher=hf teacher.path=..., for MOSI/MOSEI)")
    ordered = [m for m in MODALITIES if m in modalities]
    sentences = [cue_sentence(m, float(unimodal[m]), dataset, rng, row.get("transcript"), quote) for m in ordered]
    signs = {m: _sign(float(unimodal[m]), dataset) for m in ordered}
    sentences.append(conclusion_sentence(polarity, label, signs, dataset, rng))
    return format_answer(polarity, " ".join(sentences), label, dataset)


class RuleTeacher:
    """DC chains from the unimodal labels (no model); ``num_samples`` variants per clip, seeded by id,
    so a resumed run writes what an uninterrupted one would."""

    needs_processor = False

    def __init__(self, dataset: str, modalities: Sequence[str], *, seed: int = 0, num_samples: int = 1,
                 quote_transcript: bool = True):
        get_spec(dataset)
        self.quote_transcript = bool(quote_transcript)
        self.dataset, self.modalities = dataset, tuple(modalities)
        self.seed, self.num_samples = int(seed), int(num_samples)
        self.name = "rule"

    def generate(self, batch: Mapping[str, Any]) -> list[list[str]]:
        out = []
        for i, clip_id in enumerate(batch["ids"]):
            row = {"id": clip_id, "transcript": batch["transcripts"][i], "label": _item(batch["label"][i]),
                   **{k: _item(batch[k][i]) for k in ("label_T", "label_A", "label_V")}}
            out.append([rule_chain(row, self.dataset, self.modalities, random.Random(stable_seed(self.seed, clip_id, k)),
                                   quote=self.quote_transcript)
                        for k in range(self.num_samples)])
        return out


def _item(x) -> float:
    return float(x.item()) if hasattr(x, "item") else float(x)


# ----------------------------------------------------------------------------------------------
# Model teachers
# ----------------------------------------------------------------------------------------------

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

    def judge(self, batch: Mapping[str, Any], max_new_tokens: int = 4) -> list[str]:
        """Greedy answers to the judge prompt of a batch built by :class:`JudgeCollator`."""
        from msa.generation import generate_texts

        if not batch["ids"]:
            return []
        return generate_texts(self.model, self.tokenizer, self._to_device(batch), max_new_tokens=max_new_tokens,
                              use_audio_in_video=bool(batch.get("use_audio_in_video", self.use_audio_in_video)))


def judge_conversation(transcript: str | None, dataset: str, polarity: str, reasoning: str,
                       modalities: Sequence[str]) -> list[dict]:
    """Chat messages for the judge: the clip's media as in the DC prompt, then the analysis to check.

    >>> msgs = judge_conversation("so good", "demo", "positive", "Warm words.", ["text", "video"])
    >>> [c["type"] for c in msgs[1]["content"]], msgs[1]["content"][-1]["text"].endswith("Answer yes or no.")
    (['video', 'text'], True)
    """
    conv = build_conversation(transcript or "", dataset, modalities=modalities)
    media = [item for item in conv[1]["content"] if item["type"] != "text"]
    text = judge_prompt(transcript if "text" in modalities else None, polarity, reasoning)
    return [{"role": "system", "content": [{"type": "text", "text": JUDGE_SYSTEM_PROMPT}]},
            {"role": "user", "content": [*media, {"type": "text", "text": text}]}]


def judge_collator(processor, *, modalities: Sequence[str], use_audio_in_video: bool = True):
    """A :class:`~msa.data.collate.MultimodalCollator` whose prompt is the judge's question about a chain.

    Set ``collator.chains`` (id -> (polarity, reasoning)) before each use; media, padding and token
    expansion are the base collator's.
    """
    from msa.data.collate import MultimodalCollator

    class JudgeCollator(MultimodalCollator):
        def _prompt(self, sample: dict, modalities: tuple[str, ...], separate_audio: bool) -> str:
            polarity, reasoning = self.chains[sample["id"]]
            conv = judge_conversation(sample["transcript"], sample["dataset"], polarity, reasoning, modalities)
            if separate_audio:  # as in MultimodalCollator._prompt: the audio item right after the video
                content = conv[-1]["content"]
                at = next(i for i, item in enumerate(content) if item["type"] == "video") + 1
                content.insert(at, {"type": "audio", "audio": content[at - 1]["video"]})
            return self.processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)

    collator = JudgeCollator(processor, modalities=modalities, use_audio_in_video=use_audio_in_video)
    collator.chains = {}
    return collator


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
        self.greedy = vllm.SamplingParams(n=1, temperature=0.0, max_tokens=4)
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

    def judge(self, batch: Mapping[str, Any], chains: Mapping[str, tuple[str, str]]) -> list[str]:
        inputs = [self._inputs(judge_conversation(t, self.dataset, *chains[i], self.modalities), p)
                  for i, t, p in zip(batch["ids"], batch["transcripts"], batch["paths"])]
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
                           quote_transcript=bool(node.get("quote_transcript", True)))
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
