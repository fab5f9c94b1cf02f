"""The judge pass of the cot stage (paper §III-A3): a local model answers yes or no about each chain.

* :func:`judge_collator` -- renders the question (:mod:`msa.cot.judge_prompt`, with the clip's media as
  in the DC prompt) for a model teacher's processor;
* :func:`parse_judge` / :func:`judge_verdict` -- strict reading of the answer: anything but an exact
  yes/no is ``judge:unparsed``, a no is ``judge:no``;
* :class:`Judge` -- asks a model teacher (``judge(batch)``, :mod:`msa.cot.model_teachers`) about the
  clips whose best chain survived the other filters; :func:`build_judge` makes it from ``cot.judge``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from msa.cot.batches import teacher_batches
from msa.cot.filters import PASS, Verdict
from msa.cot.judge_prompt import judge_conversation
from msa.cot.model_teachers import build_teacher

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


def parse_judge(text: str) -> bool | None:
    """``True`` for yes, ``False`` for no, ``None`` for anything else (strict: case, surrounding
    whitespace and one final period are all that is forgiven).

    >>> parse_judge(" Yes. "), parse_judge("no"), parse_judge("Yes, it is."), parse_judge("yes!")
    (True, False, None, None)
    """
    word = text.strip().lower()
    if word.endswith("."):
        word = word[:-1]
    return {"yes": True, "no": False}.get(word)


def judge_verdict(text: str) -> Verdict:
    """The judge filter's verdict from its raw answer.

    >>> judge_verdict("No").reason, judge_verdict("maybe").reason, judge_verdict("YES.").ok
    ('judge:no', 'judge:unparsed', True)
    """
    answer = parse_judge(text)
    if answer is None:
        return Verdict(ok=False, reason="judge:unparsed", detail=f"judge said {text.strip()[:80]!r}, not yes or no")
    return PASS if answer else Verdict(ok=False, reason="judge:no", detail="judge said no")


class Judge:
    """The optional judge pass: a local model answers yes/no about each surviving chain, with the clip.

    ``backend`` is a model teacher (:class:`~msa.cot.model_teachers.JudgeModel`); ``frame`` the label rows
    of the clips that may be judged; ``dm`` the data module whose media cache a processor backend reads.
    """

    def __init__(self, backend, frame, *, dm=None, modalities: Sequence[str]):
        self.backend, self.modalities = backend, tuple(modalities)
        self.rows = frame.set_index("id", drop=False)
        self.rows.attrs.update(frame.attrs)
        self.dm = dm
        self.collator = None
        if backend.needs_processor:
            self.collator = judge_collator(backend.processor, modalities=dm.modalities,
                                           use_audio_in_video=backend.use_audio_in_video)

    def __call__(self, chains: Mapping[str, tuple[str, str]]) -> dict[str, str | None]:
        """id -> the judge's raw answer about (polarity, reasoning) (None: the clip's media could not be read)."""
        if not chains:
            return {}
        frame = self.rows.loc[list(chains)].reset_index(drop=True)
        frame.attrs.update(self.rows.attrs)
        if self.collator is not None:
            self.collator.chains = dict(chains)
        out: dict[str, str | None] = {i: None for i in chains}
        for batch in teacher_batches(self.backend, self.dm, frame, len(frame), self.collator):
            batch["chains"] = [chains[i] for i in batch["ids"]]
            out.update(zip(batch["ids"], self.backend.judge(batch)))
        return out


def _same_model(a: Mapping, b: Mapping) -> bool:
    return all(a.get(k) == b.get(k) for k in ("kind", "path", "tiny_size"))


def build_judge(node: Mapping[str, Any], *, teacher, teacher_node: Mapping[str, Any], data_cfg, dm, frame,
                modalities: Sequence[str], seed: int) -> Judge:
    """The judge of a ``cot.judge`` node; a judge on the teacher's own checkpoint reuses the loaded teacher,
    and its data module (processor and media cache). ``data_cfg``: the ``conf/data`` node, for the data
    module of a judge on another checkpoint."""
    from msa.data.datamodule import build_datamodule

    if _same_model(node, teacher_node) and hasattr(teacher, "judge"):
        backend = teacher  # one copy of the weights
    else:
        backend = build_teacher(node, dataset=data_cfg["name"], modalities=modalities, temperature=0.0, seed=seed,
                                media=data_cfg)
        if not hasattr(backend, "judge"):
            raise ValueError(f"cot.judge.kind={node.get('kind')!r} cannot judge; use hf or vllm")
    jdm = dm
    if backend.needs_processor and backend is not teacher:
        jdm = build_datamodule(data_cfg, processor=backend.processor, use_audio_in_video=backend.use_audio_in_video)
        jdm.setup("predict")
    return Judge(backend, frame, dm=jdm, modalities=modalities)
