"""The CoT filters on hand-written chains: contradicting stance, missing modality, wrong polarity,
malformed output, length, the strict judge answer, switches and the order of the drop reasons."""

from __future__ import annotations

import pytest

from msa.cot.filters import (
    SKIPPED, check_format, check_plausibility, check_polarity, conclusion_stance, evaluate, first_failure,
    missing_modalities, sentence_stance, stance_contradicts,
)
from msa.cot.judge import judge_verdict, parse_judge
from msa.dc import parse_completion

ALL = ["text", "audio", "video"]
CUES = ("The transcript praises the service in warm words. The voice is bright and the pitch rises. "
        "The face shows a broad smile.")


def dc(polarity: str, think: str, score: str) -> str:
    return f"<polarity>{polarity}</polarity><think>{think}</think><score>{score}</score>"


def verdicts(text: str, true_polarity: str, dataset: str = "sims", modalities=ALL, **kw):
    return evaluate(parse_completion(text, dataset), true_polarity=true_polarity, dataset=dataset,
                    modalities=modalities, **kw)


def reason(text: str, true_polarity: str, **kw):
    fail = first_failure(verdicts(text, true_polarity, **kw))
    return None if fail is None else fail.reason


# ---- a good chain passes everything ----------------------------------------------------------

def test_consistent_chain_passes():
    text = dc("positive", CUES + " Overall the sentiment is clearly positive.", "0.8")
    v = verdicts(text, "positive")
    assert all(x.ok and not x.skipped for x in v.values())
    assert first_failure(v) is None


# ---- contradicting stance ---------------------------------------------------------------------

@pytest.mark.parametrize("conclusion, tag, expected", [
    ("Overall the speaker is clearly upset.", "positive", "plausibility:stance"),
    ("Overall, the speaker is not happy.", "positive", "plausibility:stance"),   # negation flips "happy"
    ("Overall, the speaker is not unhappy at all.", "positive", None),           # "not unhappy": positive
    ("Overall the sentiment is neutral.", "negative", "plausibility:stance"),    # a polar tag, a neutral conclusion
    ("So overall the sentiment is positive.", "neutral", "plausibility:stance"),  # unhedged polar vs neutral
    ("So overall it leans slightly positive.", "neutral", None),                 # a hedge is allowed
    ("Overall it is slightly negative.", "positive", "plausibility:stance"),     # hedged but the wrong side
    ("Despite the sad words, overall the sentiment is positive.", "positive", None),  # a tie: mixed, no verdict
    ("The score is therefore 0.6.", "positive", None),                           # no stance word: passes
])
def test_stance_of_the_conclusion_against_the_tag(conclusion, tag, expected):
    score = {"positive": "0.6", "negative": "-0.6", "neutral": "0.0"}[tag]
    assert reason(dc(tag, CUES + " " + conclusion, score), tag) == expected


def test_conclusion_is_the_marked_sentence_not_the_last_cue():
    # Ends on a negative visual cue, then the score: the marked conclusion two sentences back is positive.
    text = "The words are kind. Overall the speaker is happy. The face frowns a little."
    assert conclusion_stance(text) == ("positive", "Overall the speaker is happy.")
    # Without a marker the last sentence counts; a lone cue with no stance word gives no stance.
    assert conclusion_stance("The words are kind. The score is 0.4.") == (None, "The score is 0.4.")


def test_sentence_stance_by_hand():
    # positive 1 (pleased), negative 0 -> positive; "slightly" is a hedge.
    assert sentence_stance("The speaker is slightly pleased.") == ("positive", True)
    # "unhappy" is negative, not "happy" with a prefix; "isn't" negates "angry" -> positive 1, negative 1: mixed.
    assert sentence_stance("He is unhappy but isn't angry.") == ("mixed", True)
    assert sentence_stance("Not neutral at all.") == (None, False)  # a negated neutral word counts for nothing
    assert stance_contradicts("mixed", "positive") is False


# ---- missing modality -------------------------------------------------------------------------

def test_missing_modality_is_dropped_and_named():
    think = ("The transcript praises the service in warm words. The voice is bright. "
             "Overall the sentiment is positive.")
    p = parse_completion(dc("positive", think, "0.6"), "sims")
    v = check_plausibility(p, ALL)
    assert (v.ok, v.reason, v.detail) == (False, "plausibility:modality", "no visual cues discussed")
    assert check_plausibility(p, ["text", "audio"]).ok  # with video off there is nothing missing


def test_modality_keywords():
    assert missing_modalities("Her facial expression is tense.", ALL) == ["text", "audio"]
    assert missing_modalities("The wording is curt and the tone of voice is cold.", ALL) == ["video"]
    with pytest.raises(ValueError, match="unknown modalities"):
        missing_modalities("x", ["smell"])


# ---- wrong polarity -----------------------------------------------------------------------------

def test_wrong_tag():
    text = dc("negative", CUES + " Overall the sentiment is negative.", "-0.4")
    assert reason(text, "positive") == "polarity:tag"


@pytest.mark.parametrize("tag, score, dataset, true_pol, expected", [
    ("positive", "-0.3", "sims", "positive", "polarity:score"),  # the score disagrees with its own tag
    ("positive", "0.1", "sims", "positive", "polarity:score"),   # 0.1 is neutral on SIMS: (-0.1, 0.1]
    ("negative", "-0.1", "sims", "negative", None),              # -0.1 is negative on SIMS
    ("neutral", "-0.5", "mosi", "neutral", None),                # -0.5 is neutral on MOSI: [-0.5, 0.5]
    ("negative", "-0.5", "mosi", "negative", "polarity:score"),
    ("positive", "1.7", "sims", "positive", None),               # clamped to 1.0, still positive
])
def test_score_polarity_must_match(tag, score, dataset, true_pol, expected):
    conclusion = {"positive": "Overall positive.", "negative": "Overall negative.", "neutral": "Overall neutral."}[tag]
    text = dc(tag, CUES.replace("warm", "plain").replace("bright", "level").replace("broad smile", "calm look")
              + " " + conclusion, score)
    assert reason(text, true_pol, dataset=dataset) == expected


def test_check_polarity_detail_and_bad_input():
    p = parse_completion(dc("positive", "x", "0.05"), "sims")
    assert check_polarity(p, "positive", "sims").detail == "score 0.05 is neutral, true polarity positive"
    with pytest.raises(ValueError, match="true_polarity"):
        check_polarity(p, "happy", "sims")


# ---- malformed output ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, error", [
    ("<polarity>positive</polarity><think>good words and a smile", "unclosed <think>"),
    (dc("positive", CUES, "0.6") + "<score>0.6</score>", "two <score> tags"),
    (dc("positive", CUES, "0.6") + " I hope this helps!", "text after </score>"),
    (dc("happy", CUES, "0.6"), "polarity 'happy' not in closed set"),
    (dc("positive", CUES, "about 0.6"), "score 'about 0.6' is not one number"),
    ("The speaker seems happy. Score: 0.6", "missing <polarity>"),
])
def test_malformed_output_is_dropped_as_format(text, error):
    v = verdicts(text, "positive")
    assert first_failure(v).reason == "format"
    assert v["format"].detail == error
    # Later filters are not judged on a malformed answer; they carry the format failure.
    assert v["polarity"].reason == v["plausibility"].reason == "format"
    assert check_format(parse_completion(dc("positive", CUES, "0.6"), "sims")).ok


# ---- length ------------------------------------------------------------------------------------

def test_reasoning_length_bounds():
    short = dc("positive", "Text, voice, face: positive.", "0.6")  # 29 characters < 40
    assert reason(short, "positive") == "plausibility:length"
    assert reason(short, "positive", min_chars=10) is None
    long = dc("positive", CUES + " Overall positive.", "0.6")
    assert reason(long, "positive", max_chars=50) == "plausibility:length"


# ---- switches and order -------------------------------------------------------------------------

def test_switched_off_filters_are_skipped_and_the_first_failure_names_the_drop():
    # Wrong tag AND missing visual cues: polarity comes first in the order.
    text = dc("negative", "The transcript is harsh and the voice is cold. Overall negative.", "-0.6")
    v = verdicts(text, "positive")
    assert v["polarity"].reason == "polarity:tag" and v["plausibility"].reason == "plausibility:modality"
    assert first_failure(v).reason == "polarity:tag"
    v = verdicts(text, "positive", polarity=False)
    assert v["polarity"] == SKIPPED and first_failure(v).reason == "plausibility:modality"
    v = verdicts(text, "positive", polarity=False, plausibility=False)
    assert first_failure(v) is None


# ---- judge -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("yes", True), ("Yes.", True), ("  YES  ", True), ("no", False), ("No.", False),
    ("Yes, it is coherent.", None), ("yes!", None), ("y", None), ("", None), ("yes yes", None),
    ("no..", None), ("<polarity>yes</polarity>", None),
])
def test_parse_judge_is_strict(text, expected):
    assert parse_judge(text) is expected


def test_judge_verdicts():
    assert judge_verdict("Yes").ok
    assert judge_verdict("no").reason == "judge:no"
    v = judge_verdict("I think so")
    assert (v.ok, v.reason) == (False, "judge:unparsed") and "I think so" in v.detail
