"""The judge's question (paper §III-A3): pure prompt text, shared by the judge pass (:mod:`msa.cot.judge`)
and the model teachers that ask it (:mod:`msa.cot.model_teachers`). It lives apart from both so that
neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence

from msa.dc import build_conversation

JUDGE_SYSTEM_PROMPT = ("You review sentiment analyses of short video clips. You are given the clip and an "
                       "analysis of it, and you answer with one word: yes or no.")
JUDGE_QUESTION = ("Is this reasoning coherent, and consistent with what the clip shows and says, and does it "
                  "support its polarity? Answer yes or no.")


def judge_prompt(transcript: str | None, polarity: str, reasoning: str) -> str:
    """The judge's request (the clip's media go with it, as in the DC prompt).

    >>> print(judge_prompt("so good", "positive", "Warm words."))
    A sentiment analysis of this clip reasoned as follows.
    Transcript: so good
    Polarity: positive
    Reasoning: Warm words.
    Is this reasoning coherent, and consistent with what the clip shows and says, and does it support its polarity? Answer yes or no.
    """
    lines = ["A sentiment analysis of this clip reasoned as follows."]
    if transcript is not None:
        lines.append(f"Transcript: {transcript}")
    lines += [f"Polarity: {polarity}", f"Reasoning: {reasoning}", JUDGE_QUESTION]
    return "\n".join(lines)


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
