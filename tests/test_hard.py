"""Hard-prompt rules and the hint / keep_hard truth table."""

import pytest
import torch

from msa.rl.hard import find_hard, select_groups

T, F = True, False

# Four prompts, G = 3. Rewards are format + polarity + score summed (polarity counts 1).
POLARITY_OK = torch.tensor([
    [F, F, F],  # every polarity wrong, but format + score earn 1.5 each
    [F, F, F],  # every polarity wrong, low rewards
    [T, F, F],  # one right
    [T, T, T],  # all right
])
REWARDS = torch.tensor([
    [1.5, 1.5, 1.5],
    [0.0, 0.5, 0.9],
    [2.0, 0.2, 0.1],
    [2.5, 2.9, 3.0],
])


def test_all_wrong_rule():
    # only rows 0 and 1 have no correct polarity
    assert find_hard(POLARITY_OK, REWARDS).tolist() == [T, T, F, F]


def test_reward_below_rule_disagrees_where_expected():
    # threshold 1.0: row 0 (1.5 each) is not below; row 1 (max 0.9) is; row 2 has a 2.0; row 3 high
    assert find_hard(POLARITY_OK, REWARDS, rule="reward_below", threshold=1.0).tolist() == [F, T, F, F]
    # strict "<": a reward equal to the threshold is not below it
    assert find_hard(POLARITY_OK, REWARDS, rule="reward_below", threshold=0.9).tolist() == [F, F, F, F]


@pytest.mark.parametrize(
    "hint, keep_hard, regenerate, drop",
    [
        (T, T, [T, F], [F, F]),  # Hint-GRPO
        (F, T, [F, F], [F, F]),  # plain GRPO: hard groups train as sampled
        (F, F, [F, F], [T, F]),  # w/o Hard: dropped
        (T, F, [F, F], [T, F]),  # drop wins: nothing left to hint
    ],
)
def test_select_groups_truth_table(hint, keep_hard, regenerate, drop):
    hard = torch.tensor([T, F])
    regen_out, drop_out = select_groups(hard, hint=hint, keep_hard=keep_hard)
    assert regen_out.tolist() == regenerate
    assert drop_out.tolist() == drop
    assert not (regen_out & drop_out).any()  # a group is never both regenerated and dropped


def test_bad_input_raises():
    with pytest.raises(ValueError, match="threshold"):
        find_hard(POLARITY_OK, REWARDS, rule="reward_below")
    with pytest.raises(ValueError, match="rule"):
        find_hard(POLARITY_OK, REWARDS, rule="any_wrong")
    with pytest.raises(ValueError, match="bool"):
        find_hard(POLARITY_OK.float(), REWARDS)
    with pytest.raises(ValueError, match="rewards shape"):
        find_hard(POLARITY_OK, REWARDS[:, :2])
    with pytest.raises(ValueError, match="hard"):
        select_groups(torch.tensor([1, 0]), hint=True, keep_hard=True)
