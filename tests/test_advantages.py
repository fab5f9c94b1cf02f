"""Group-relative advantages against hand-computed values (TRL sum_then_normalize)."""

import math

import pytest
import torch

from msa.rl.advantages import frac_zero_std, group_advantages, group_std


def test_group_scale_one_group_of_four():
    # mean = 2.5, deviations = [-1.5, -0.5, 0.5, 1.5], squares sum to 5,
    # unbiased var = 5/3, std = sqrt(5/3) = 1.2909944, std + eps = 1.2910944
    # A = [-1.5, -0.5, 0.5, 1.5] / 1.2910944 = [-1.1618050, -0.3872683, 0.3872683, 1.1618050]
    # (without eps the outer values would be 1.1618950, which atol=1e-5 tells apart)
    adv = group_advantages(torch.tensor([1.0, 2.0, 3.0, 4.0]), group_size=4)
    expected = torch.tensor([-1.1618050, -0.3872683, 0.3872683, 1.1618050])
    torch.testing.assert_close(adv, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_zero_std_group_is_exactly_zero(scale):
    # In float32 the mean of [0.9, 0.9, 0.9] is 0.9 - 6e-8, so a naive r - mean leaves 6e-8 and
    # "group" scaling would turn it into 6e-8 / (7e-8 + 1e-4) = 6e-4. Identical rewards must give 0.
    rewards = torch.tensor([0.9, 0.9, 0.9, 1.0, 2.0, 3.0])
    adv = group_advantages(rewards, group_size=3, scale=scale)
    assert torch.equal(adv[:3], torch.zeros(3))
    assert adv[3] == -adv[5] != 0  # the other group keeps [-1, 0, 1] / scale


def test_scale_modes_on_two_groups():
    # groups [0, 2] and [1, 1]: both means 1 -> centered [-1, 1, 0, 0]
    rewards = torch.tensor([0.0, 2.0, 1.0, 1.0])
    # "none": no division
    assert torch.equal(group_advantages(rewards, 2, scale="none"), torch.tensor([-1.0, 1.0, 0.0, 0.0]))
    # "batch": std over all four = sqrt((1 + 1 + 0 + 0) / 3) = sqrt(2/3) = 0.8164966
    # 1 / (0.8164966 + 1e-4) = 1.2245949
    torch.testing.assert_close(
        group_advantages(rewards, 2, scale="batch"),
        torch.tensor([-1.2245949, 1.2245949, 0.0, 0.0]), atol=1e-5, rtol=0,
    )
    # "group": first group std = sqrt(2) = 1.4142136, 1 / 1.4143136 = 0.7070568; second is constant
    torch.testing.assert_close(
        group_advantages(rewards, 2, scale="group"),
        torch.tensor([-0.7070568, 0.7070568, 0.0, 0.0]), atol=1e-5, rtol=0,
    )


def test_advantages_sum_to_zero_per_group_and_int_rewards():
    adv = group_advantages(torch.tensor([0, 1, 1, 1, 0, 0]), group_size=3)  # int rewards are cast
    assert adv.dtype == torch.float32
    torch.testing.assert_close(adv.view(2, 3).sum(1), torch.zeros(2), atol=1e-6, rtol=0)
    # group [0, 1, 1]: mean 2/3, centered [-2/3, 1/3, 1/3], var = (4/9 + 1/9 + 1/9) / 2 = 1/3
    # std = 0.5773503 -> A[0] = -0.6666667 / 0.5774503 = -1.1545006
    assert adv[0].item() == pytest.approx(-(2 / 3) / (math.sqrt(1 / 3) + 1e-4), abs=1e-5)


def test_group_std_and_frac_zero_std():
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.1, 1.0, 2.0, 3.0, 4.0])
    # stds: [0, sqrt(5/3) = 1.2909944]
    torch.testing.assert_close(group_std(rewards, 4), torch.tensor([0.0, 1.2909944]), atol=1e-6, rtol=0)
    assert frac_zero_std(rewards, 4) == 0.5  # one of two groups
    assert frac_zero_std(torch.tensor([1.0, 0.0, 3.0, 3.0, 2.0, 2.0]), 2) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "rewards, group_size, scale, match",
    [
        (torch.zeros(5), 2, "group", "divisible"),
        (torch.zeros(4), 1, "group", "group_size"),
        (torch.zeros(2, 2), 2, "group", "1-D"),
        (torch.zeros(4), 2, "std", "scale"),
        (torch.tensor([0.0, float("nan")]), 2, "group", "NaN"),
    ],
)
def test_bad_input_raises(rewards, group_size, scale, match):
    with pytest.raises(ValueError, match=match):
        group_advantages(rewards, group_size, scale=scale)
