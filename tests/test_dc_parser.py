"""The DC format core: polarity bins, the strict parser, score formatting and the answer round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msa.dc import POLARITIES, format_answer, format_score, hint_prefill, parse_completion, polarity_of
from msa.dc.parser import contains_tag

GOOD = "<polarity>positive</polarity><think>warm words, bright tone</think><score>0.6</score>"


# ---------------------------------------------------------------- polarity_of
@pytest.mark.parametrize("score, dataset, expected", [
    # SIMS: neutral is (-0.1, 0.1] (MMSA 3-class bins)
    (-0.1, "sims", "negative"), (-0.0999, "sims", "neutral"), (0.0, "sims", "neutral"),
    (0.1, "sims", "neutral"), (0.1001, "sims", "positive"), (-1.0, "sims", "negative"), (1, "sims", "positive"),
    (0.1, "simsv2", "neutral"), (-0.1, "demo", "negative"),
    # MOSI/MOSEI: neutral is [-0.5, 0.5] (MMSA acc3)
    (-0.5, "mosi", "neutral"), (0.5, "mosi", "neutral"), (-0.5001, "mosi", "negative"),
    (0.5001, "mosei", "positive"), (-3.0, "demo_mosi", "negative"),
    (np.float64(0.1), "sims", "neutral"),  # float64 numpy scalars are fine
])
def test_polarity_of_band_edges(score, dataset, expected):
    assert polarity_of(score, dataset) == expected


def test_polarity_of_refuses_float32_and_bad_input():
    # float32(0.1) = 0.10000000149 would land in positive: refused, not binned wrong
    with pytest.raises(TypeError, match="float32"):
        polarity_of(np.float32(0.1), "sims")
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        polarity_of(0.0, "nope")
    with pytest.raises(ValueError, match="finite"):
        polarity_of(float("nan"), "sims")
    with pytest.raises(TypeError, match="number"):
        polarity_of("0.3", "sims")


# ---------------------------------------------------------------- well formed
def test_well_formed_answer():
    p = parse_completion(GOOD, "sims")
    assert (p.polarity, p.reasoning, p.score, p.raw_score) == ("positive", "warm words, bright tone", 0.6, 0.6)
    assert p.well_formed and not p.clamped and p.error is None


def test_whitespace_case_and_trailing_special_tokens_are_allowed():
    text = "\n <polarity> Neutral </polarity>\n<think>\n flat \n</think> <score> +0.0 </score>\n<|im_end|><|endoftext|>"
    p = parse_completion(text, "sims")
    assert p.well_formed, p.error
    assert (p.polarity, p.reasoning, p.score) == ("neutral", "flat", 0.0)


@pytest.mark.parametrize("raw, expected", [
    ("\u22120.4", -0.4),  # unicode minus
    ("\u20130.4", -0.4), ("\u20140.4", -0.4), ("\u20110.4", -0.4),  # en dash, em dash, non-breaking hyphen
    ("\u4e000.4", -0.4),  # Chinese 一 used as a minus (MSE-Adapter)
    ("\uff0d\uff10\uff0e\uff14", -0.4),  # full-width －０．４
    ("\uff0b\uff10\uff0e\uff15", 0.5), ("+0.5", 0.5), (".5", 0.5), ("1.", 1.0), ("-0", 0.0),
])
def test_score_normalisation(raw, expected):
    p = parse_completion(f"<polarity>positive</polarity><think>t</think><score>{raw}</score>", "sims")
    assert p.well_formed, p.error
    assert p.raw_score == expected


@pytest.mark.parametrize("raw", ["abc", "0.5 0.6", "1e-1", "nan", "inf", "0.5.1", "--0.5", "0.5分", "- 0.5", "1,5"])
def test_score_that_is_not_one_number(raw):
    p = parse_completion(f"<polarity>positive</polarity><think>t</think><score>{raw}</score>", "sims")
    assert not p.well_formed and p.score is None
    assert p.error == f"score {raw!r} is not one number"
    assert p.polarity == "positive"  # the rest is still readable


@pytest.mark.parametrize("dataset, raw, score, clamped", [
    ("sims", "1.7", 1.0, True), ("sims", "-1.0", -1.0, False), ("sims", "-1.01", -1.0, True),
    ("mosi", "1.7", 1.7, False), ("mosi", "-3.5", -3.0, True), ("mosei", "3", 3.0, False),
])
def test_clamp_to_dataset_range(dataset, raw, score, clamped):
    p = parse_completion(f"<polarity>positive</polarity><think>t</think><score>{raw}</score>", dataset)
    assert (p.score, p.raw_score, p.clamped, p.well_formed) == (score, float(raw), clamped, True)


def test_score_is_float64_exact():
    # 0.1 must stay the Python float 0.1 (neutral on SIMS), not float32's 0.10000000149
    p = parse_completion("<polarity>neutral</polarity><think>t</think><score>0.1</score>", "sims")
    assert type(p.score) is float and p.score == 0.1 and polarity_of(p.score, "sims") == "neutral"


# ---------------------------------------------------------------- not well formed
T, S = "<think>t</think>", "<score>0.8</score>"


@pytest.mark.parametrize("text, error, polarity, score", [
    # two polarity tags: polarity unreadable, the single score is still recovered
    (f"<polarity>positive</polarity><polarity>negative</polarity>{T}{S}", "two <polarity> tags", None, 0.8),
    (f"<polarity>positive/negative</polarity>{T}{S}", "polarity 'positive/negative' not in closed set", None, 0.8),
    (f"<polarity></polarity>{T}{S}", "empty <polarity>", None, 0.8),
    (f"{T}<polarity>positive</polarity>{S}", "tags out of order", "positive", 0.8),
    (f"<polarity>positive</polarity>{T}{S} I mean 0.9", "text after </score>", "positive", 0.8),
    (f"Sure! <polarity>positive</polarity>{T}{S}", "text before <polarity>", "positive", 0.8),
    (f"<polarity>positive</polarity> so {T}{S}", "text between </polarity> and <think>", "positive", 0.8),
    (f"<polarity>positive</polarity><think>  \n</think>{S}", "empty <think>", "positive", 0.8),
    (f"<polarity>positive</polarity>{T}<score>0.8</score><score>0.7</score>", "two <score> tags", "positive", None),
    (f"<polarity>positive</polarity><think>t<score>0.1</score></think>{S}", "two <score> tags", "positive", None),
    (f"<polarity>positive</polarity>{T}<score>0.8", "unclosed <score>", "positive", None),  # truncated
    (f"<polarity>positive</polarity>{T}", "missing <score>", "positive", None),
    (f"<polarity>positive</polarity>{T}<Score>0.8</Score>", "malformed tag '<Score>'", "positive", 0.8),
    (f"<polarity>positive</polarity>{T}</score>0.8<score>", "</score> before <score>", "positive", None),
    (f"<polarity>positive</polarity>{T}<score></score>", "empty <score>", "positive", None),
    (f"<polarity>positive</polarity>{T}{S}<|im_end|> more", "text after </score>", "positive", 0.8),
])
def test_not_well_formed_recovers_only_what_is_unambiguous(text, error, polarity, score):
    p = parse_completion(text, "sims")
    assert not p.well_formed
    assert p.error == error
    assert (p.polarity, p.score) == (polarity, score)


# ---------------------------------------------------------------- answer="score"
def test_score_only_answer():
    p = parse_completion("  <score>-0.05</score>\n", "sims", answer="score")
    assert p.well_formed and (p.polarity, p.reasoning, p.score) == ("neutral", None, -0.05)
    p = parse_completion("<score>\u22122.4</score>", "mosi", answer="score")
    assert p.well_formed and (p.polarity, p.score) == ("negative", -2.4)
    p = parse_completion("<think>t</think><score>0.3</score>", "sims", answer="score")
    assert not p.well_formed and p.error == "unexpected <think> in a score-only answer"
    assert (p.score, p.polarity) == (0.3, "positive")  # recovered, polarity derived from the score
    p = parse_completion("The score is 0.3", "sims", answer="score")
    assert not p.well_formed and p.error == "missing <score>" and p.score is None and p.polarity is None


def test_parser_rejects_bad_arguments():
    with pytest.raises(ValueError, match="answer"):
        parse_completion(GOOD, "sims", answer="json")
    with pytest.raises(ValueError, match="unknown dataset"):
        parse_completion(GOOD, "imdb")
    with pytest.raises(TypeError, match="str"):
        parse_completion(None, "sims")


# ---------------------------------------------------------------- writing answers
@pytest.mark.parametrize("score, dataset, text", [
    (-0.6, "sims", "-0.6"), (0.0, "sims", "0.0"), (-0.0, "sims", "0.0"), (0.8, "sims", "0.8"), (1, "sims", "1.0"),
    (1.3333, "mosi", "1.33"), (-0.6667, "mosi", "-0.67"), (1.0, "mosi", "1.0"), (2.5, "mosi", "2.5"),
    (-0.004, "mosi", "0.0"),  # rounds to -0.00: written without the sign
])
def test_format_score(score, dataset, text):
    assert format_score(score, dataset) == text


def test_format_answer_and_hint():
    assert format_answer("neutral", "flat", 0.0, "sims") == \
        "<polarity>neutral</polarity><think>flat</think><score>0.0</score>"
    assert hint_prefill("negative") == "<polarity>negative</polarity>"
    with pytest.raises(ValueError, match="polarity"):
        hint_prefill("Positive")
    with pytest.raises(ValueError, match="reasoning"):
        format_answer("positive", "  ", 0.5, "sims")
    with pytest.raises(ValueError, match="DC tag"):
        format_answer("positive", "a <score>0.9</score> b", 0.5, "sims")
    with pytest.raises(ValueError, match="finite"):
        format_score(float("inf"), "sims")
    assert contains_tag("x < /Think > y") and not contains_tag("a < b and c > d")


@settings(max_examples=200, deadline=None, database=None)
@given(polarity=st.sampled_from(POLARITIES),
       reasoning=st.text(min_size=1, max_size=60).filter(lambda r: r.strip() and not contains_tag(r)),
       dataset=st.sampled_from(["sims", "simsv2", "mosi", "mosei", "demo", "demo_mosi"]),
       unit=st.floats(min_value=-1.0, max_value=1.0, allow_nan=False))
def test_format_answer_round_trip(polarity, reasoning, dataset, unit):
    from msa.data.specs import get_spec
    score = unit * get_spec(dataset).score_max
    p = parse_completion(format_answer(polarity, reasoning, score, dataset), dataset)
    assert p.well_formed, p.error
    assert (p.polarity, p.reasoning) == (polarity, reasoning.strip())
    assert p.score == float(format_score(score, dataset)) and not p.clamped


@settings(max_examples=200, deadline=None, database=None)
@given(text=st.text(alphabet=st.sampled_from(list("<>/ polarity think score 0.5-+\u2212x\n")), max_size=80))
def test_parser_never_raises_and_keeps_scores_in_range(text):
    p = parse_completion(text, "sims")
    assert p.well_formed == (p.error is None)
    assert p.score is None or -1.0 <= p.score <= 1.0
    assert p.polarity is None or p.polarity in POLARITIES
