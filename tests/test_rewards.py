"""The GRPO rewards against a hand-worked table, the hacks that must earn nothing, and the weights."""

from __future__ import annotations

import math

import pytest

from msa.rl.rewards import REWARD_FUNCS, check_weights, format_reward, polarity_reward, score_reward, total_reward


def dc(polarity: str, score: str, think: str = "cues") -> str:
    return f"<polarity>{polarity}</polarity><think>{think}</think><score>{score}</score>"


# (completion, label, dataset, format, polarity, score); total = format + polarity + score (weights 1, 1, 1).
# score = 1 - |s_pred - s_true| / span, span 2 on SIMS and 6 on MOSI, paid only with the right polarity.
TABLE = [
    # label 0.8 -> positive; |0.6 - 0.8| = 0.2 -> 1 - 0.2/2 = 0.9; total 2.9
    (dc("positive", "0.6"), 0.8, "sims", 1, 1, 0.9),
    # wrong polarity: well formed, nothing else; total 1
    (dc("negative", "-0.4"), 0.8, "sims", 1, 0, 0.0),
    # SIMS label 0.1 is neutral, (-0.1, 0.1]; |0.0 - 0.1| = 0.1 -> 1 - 0.1/2 = 0.95; total 2.95
    (dc("neutral", "0.0"), 0.1, "sims", 1, 1, 0.95),
    # SIMS label -0.1 is negative, so "neutral" is wrong; total 1
    (dc("neutral", "0.0"), -0.1, "sims", 1, 0, 0.0),
    # MOSI label -0.5 is neutral, [-0.5, 0.5]; |-0.2 - (-0.5)| = 0.3 -> 1 - 0.3/6 = 0.95; total 2.95
    (dc("neutral", "-0.2"), -0.5, "mosi", 1, 1, 0.95),
    # MOSI label 0.6 -> positive; |1.8 - 0.6| = 1.2 -> 1 - 1.2/6 = 0.8; total 2.8
    (dc("positive", "1.8"), 0.6, "mosi", 1, 1, 0.8),
    # 1.7 on SIMS is clamped to 1.0 (still well formed); |1.0 - 0.8| = 0.2 -> 0.9; total 2.9
    (dc("positive", "1.7"), 0.8, "sims", 1, 1, 0.9),
    # unicode minus; |-0.4 - (-0.6)| = 0.2 -> 0.9; total 2.9
    (dc("negative", "\u22120.4"), -0.6, "sims", 1, 1, 0.9),
    # a trailing <|im_end|> from decoding is not a hack; |0.8 - 0.8| = 0 -> 1.0; total 3
    (dc("positive", "0.8") + "<|im_end|>", 0.8, "sims", 1, 1, 1.0),
    # hacks: all zero even though a correct polarity/score is in there
    ("<polarity>positive</polarity><polarity>negative</polarity><think>c</think><score>0.8</score>",
     0.8, "sims", 0, 0, 0.0),
    (dc("positive/negative", "0.8"), 0.8, "sims", 0, 0, 0.0),
    ("<think>c</think><polarity>positive</polarity><score>0.8</score>", 0.8, "sims", 0, 0, 0.0),
    (dc("positive", "0.8") + " Actually 0.7.", 0.8, "sims", 0, 0, 0.0),
    (dc("positive", "0.8", think=" \n "), 0.8, "sims", 0, 0, 0.0),
    (dc("positive", "0.8") + "<score>0.8</score>", 0.8, "sims", 0, 0, 0.0),
    (dc("positive", "0.8 or 0.6"), 0.8, "sims", 0, 0, 0.0),
    ("<polarity>positive</polarity><think>c</think><score>0.8", 0.8, "sims", 0, 0, 0.0),  # truncated
]
COMPLETIONS = [row[0] for row in TABLE]
LABELS = [row[1] for row in TABLE]
DATASETS = [row[2] for row in TABLE]


def test_reward_table():
    fmt = format_reward(COMPLETIONS, dataset=DATASETS)
    pol = polarity_reward(COMPLETIONS, label=LABELS, dataset=DATASETS)
    sco = score_reward(COMPLETIONS, label=LABELS, dataset=DATASETS)
    totals, per = total_reward(COMPLETIONS, label=LABELS, dataset=DATASETS)
    for i, (_, _, _, f, p, s) in enumerate(TABLE):
        assert (fmt[i], pol[i]) == (f, p), f"row {i}"
        assert sco[i] == pytest.approx(s, abs=1e-12), f"row {i}"
        assert totals[i] == pytest.approx(f + p + s, abs=1e-12), f"row {i}"
    assert per == {"format": fmt, "polarity": pol, "score": sco}


def test_scalar_dataset_and_conversational_completions():
    chat = [[{"role": "assistant", "content": dc("positive", "0.6")}], [{"role": "assistant", "content": "no"}]]
    assert score_reward(chat, label=[0.8, 0.8], dataset="sims") == pytest.approx([0.9, 0.0])
    assert format_reward(chat) == [1.0, 0.0]


def test_gaussian_form():
    # d = 0.2 on SIMS: exp(-(0.2 / (0.25 * 2))^2) = exp(-0.16) = 0.8521437889662113
    # d = 1.2 on MOSI: exp(-(1.2 / 1.5)^2) = exp(-0.64) = 0.5272924240430485
    r = score_reward([dc("positive", "0.6"), dc("positive", "1.8")], label=[0.8, 0.6], dataset=["sims", "mosi"],
                     form="gaussian")
    assert r == pytest.approx([math.exp(-0.16), math.exp(-0.64)])
    assert r[0] == pytest.approx(0.852143789, abs=1e-9)
    with pytest.raises(ValueError, match="form"):
        score_reward([], label=[], dataset="sims", form="cubic")


def test_sign_check():
    # hinted prefill "positive" (right for label 0.2) but a negative score: the linear reward still pays
    # 1 - |-0.3 - 0.2| / 2 = 0.75; with sign_check the score must fall in the tagged bin, so 0.
    # "neutral" with 0.1 on SIMS is consistent ((-0.1, 0.1]): 1 - |0.1 - 0.0| / 2 = 0.95.
    comps = [dc("positive", "-0.3"), dc("neutral", "0.1")]
    assert score_reward(comps, label=[0.2, 0.0], dataset="sims") == pytest.approx([0.75, 0.95])
    assert score_reward(comps, label=[0.2, 0.0], dataset="sims", sign_check=True) == pytest.approx([0.0, 0.95])


def test_weights():
    # row 0 of the table: format 1, polarity 1, score 0.9 -> 0.5 * 1 + 1 * 1 + 2 * 0.9 = 3.3
    totals, _ = total_reward(COMPLETIONS[:2], weights={"format": 0.5, "score": 2}, label=LABELS[:2],
                             dataset=DATASETS[:2])
    assert totals == pytest.approx([3.3, 0.5])  # row 1: only the format reward, 0.5 * 1
    assert check_weights(None) == {"format": 1.0, "polarity": 1.0, "score": 1.0}
    assert set(REWARD_FUNCS) == {"format", "polarity", "score"}
    with pytest.raises(ValueError, match="'length'"):
        total_reward(COMPLETIONS, weights={"length": 1.0}, label=LABELS, dataset=DATASETS)
    with pytest.raises(ValueError, match="'score'"):
        total_reward(COMPLETIONS, weights={"score": -0.1}, label=LABELS, dataset=DATASETS)
    with pytest.raises(ValueError, match="'polarity'"):
        check_weights({"polarity": float("nan")})


def test_misaligned_fields_are_errors():
    with pytest.raises(ValueError, match="label has 1 entries for 2 completions"):
        polarity_reward(COMPLETIONS[:2], label=[0.8], dataset="sims")
    with pytest.raises(ValueError, match="dataset has 3 entries"):
        score_reward(COMPLETIONS[:2], label=[0.8, 0.8], dataset=["sims"] * 3)
    with pytest.raises(ValueError, match="label must be a list"):
        polarity_reward(COMPLETIONS[:1], label=0.8, dataset="sims")
