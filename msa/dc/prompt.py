"""The DC prompt: a system instruction and a Qwen2.5-Omni chat conversation for one clip.

The conversation holds placeholders (:data:`MEDIA_PLACEHOLDER`) for the media; the data code puts the
decoded arrays into the processor call, and the processor's chat template renders the tokens. When
both audio and video are on, only a video item is added: its own audio track is interleaved by the
processor with ``use_audio_in_video=True`` (pass it to the processor, forward and generate alike), so
a separate audio item would feed the speech twice. Video without audio is a video item alone (the data
code then must not interleave the audio track); audio without video is an audio item.

The user turn states the score range of ``range_dataset or dataset``: cross-dataset evaluation asks in
the range the model was trained on and rescales afterwards (:func:`msa.data.specs.rescale`). It also
states the closed polarity set with the neutral band, so the tag and the score can agree, and asks for
cues only from the modalities that are on. The prompt is English whatever the transcript language.
"""

from __future__ import annotations

from collections.abc import Sequence

from msa.data.specs import get_spec
from msa.dc.parser import format_score
from msa.dc.polarity import POLARITIES

MEDIA_PLACEHOLDER = "<clip>"
MODALITIES = ("text", "audio", "video")

SYSTEM_PROMPT = (
    "You are an expert in multimodal sentiment analysis. You are given a short video clip of a speaker "
    "(its frames, its speech audio and/or its transcript) and you judge the sentiment the speaker expresses.\n"
    "Answer in the Discrimination-Calibration format: exactly three tags, in this order, and nothing else:\n"
    "<polarity>...</polarity><think>...</think><score>...</score>\n"
    "1. Discrimination: in <polarity>, write the overall polarity, one word out of: "
    + ", ".join(POLARITIES) + ".\n"
    "2. Reasoning: in <think>, analyse the cues of each available modality in turn: first the text cues, "
    "then the audio cues, then the visual cues; then weigh them against each other.\n"
    "3. Calibration: in <score>, write one number, a fine-grained sentiment score in the range given in the "
    "request, consistent with the polarity."
)

SCORE_SYSTEM_PROMPT = (
    "You are an expert in multimodal sentiment analysis. You are given a short video clip of a speaker "
    "(its frames, its speech audio and/or its transcript) and you judge the sentiment the speaker expresses.\n"
    "Answer with one number in a score tag and nothing else: <score>...</score>"
)

_CUES = {
    "text": "the text cues (the wording of the transcript)",
    "audio": "the audio cues (tone of voice, pitch, pace, emphasis)",
    "video": "the visual cues (facial expression, gaze, gestures, posture)",
}


def _check_modalities(modalities: Sequence[str]) -> tuple[str, ...]:
    if isinstance(modalities, str):
        raise TypeError(f"modalities must be a sequence of names, got the string {modalities!r}")
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; known: {MODALITIES}")
    if not modalities:
        raise ValueError("modalities is empty; enable at least one of text, audio, video")
    return tuple(m for m in MODALITIES if m in modalities)  # canonical order for the cue list


def _range_sentence(dataset: str) -> str:
    spec = get_spec(dataset)
    lo, hi = format_score(spec.score_min, dataset), format_score(spec.score_max, dataset)
    nlo, nhi = format_score(spec.neutral_low, dataset), format_score(spec.neutral_high, dataset)
    band = f"({nlo}, {nhi}]" if spec.neutral_closed == "right" else f"[{nlo}, {nhi}]"
    return (f"The score is in the range [{lo}, {hi}]: {lo} is strongly negative, {hi} strongly positive. "
            f"A score in {band} is neutral, a lower one negative, a higher one positive.")


def build_instruction(dataset: str, *, modalities: Sequence[str] = MODALITIES, answer: str = "dc",
                      range_dataset: str | None = None) -> str:
    """The user's request without the transcript.

    >>> print(build_instruction("sims", modalities=("text", "audio")))  # doctest: +NORMALIZE_WHITESPACE
    Judge the sentiment of the speaker in this clip. First give the polarity (negative, neutral or positive),
    then reason step by step about the text cues (the wording of the transcript), then the audio cues
    (tone of voice, pitch, pace, emphasis), then give the score. The score is in the range [-1.0, 1.0]:
    -1.0 is strongly negative, 1.0 strongly positive. A score in (-0.1, 0.1] is neutral, a lower one
    negative, a higher one positive. Answer exactly as
    <polarity>...</polarity><think>...</think><score>...</score>.
    """
    mods = _check_modalities(modalities)
    rng = _range_sentence(range_dataset or dataset)
    if answer == "score":
        return (f"Judge the sentiment of the speaker in this clip. {rng} "
                "Answer only with the score, exactly as <score>...</score>.")
    if answer != "dc":
        raise ValueError(f"answer must be 'dc' or 'score', got {answer!r}")
    cues = ", then ".join(_CUES[m] for m in mods)
    closed = ", ".join(POLARITIES[:-1]) + f" or {POLARITIES[-1]}"
    return (f"Judge the sentiment of the speaker in this clip. First give the polarity ({closed}), "
            f"then reason step by step about {cues}, then give the score. {rng} "
            "Answer exactly as <polarity>...</polarity><think>...</think><score>...</score>.")


def build_conversation(transcript: str, dataset: str, *, modalities: Sequence[str] = MODALITIES,
                       answer: str = "dc", range_dataset: str | None = None) -> list[dict]:
    """Qwen2.5-Omni chat messages for one clip (media as :data:`MEDIA_PLACEHOLDER`).

    >>> msgs = build_conversation("so happy today", "sims")
    >>> [item["type"] for item in msgs[1]["content"]]
    ['video', 'text']
    >>> msgs[1]["content"][-1]["text"].endswith("Transcript: so happy today")
    True
    """
    if not isinstance(transcript, str):
        raise TypeError(f"transcript must be a str, got {type(transcript).__name__}")
    mods = _check_modalities(modalities)
    text = build_instruction(dataset, modalities=mods, answer=answer, range_dataset=range_dataset)
    if "text" in mods:
        text += f"\nTranscript: {transcript}"
    else:
        text += "\nNo transcript is given; judge from the clip alone."
    content: list[dict] = []
    if "video" in mods:
        content.append({"type": "video", "video": MEDIA_PLACEHOLDER})
    elif "audio" in mods:
        content.append({"type": "audio", "audio": MEDIA_PLACEHOLDER})
    content.append({"type": "text", "text": text})
    system = SYSTEM_PROMPT if answer == "dc" else SCORE_SYSTEM_PROMPT
    return [{"role": "system", "content": [{"type": "text", "text": system}]},
            {"role": "user", "content": content}]
