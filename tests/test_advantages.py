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


def test_batch_scale_uses_the_std_of_every_rank_together():
    """scale_rewards=batch under DDP: two ranks' rewards [0, 2] and [1, 1, 3, 5] (G=2). Gathered: mean 2,
    squared deviations 4+0+1+1+1+9 = 16, unbiased var 16/5, std 1.7888544; rank 0's group [0, 2] is
    centred to [-1, 1] and divided by that std (+1e-4), not by its own batch's std sqrt(2)."""
    from msa.rl.advantages import reward_moments, std_from_moments

    r0, r1 = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0, 3.0, 5.0])
    summed = reward_moments(r0) + reward_moments(r1)  # what the all-reduce of the two ranks gives
    assert std_from_moments(summed) == pytest.approx(math.sqrt(16 / 5), abs=1e-12)
    adv0 = group_advantages(r0, 2, scale="batch", batch_std=std_from_moments(summed))
    torch.testing.assert_close(adv0, torch.tensor([-1.0, 1.0]) / (math.sqrt(16 / 5) + 1e-4))
    local = group_advantages(r0, 2, scale="batch")  # one process: the batch's own std
    torch.testing.assert_close(local, torch.tensor([-1.0, 1.0]) / (math.sqrt(2) + 1e-4))


def test_dapo_num_items_gives_a_global_token_mean_after_ddp_averaging():
    """loss_type=dapo under DDP: each rank divides by (tokens on all ranks) / world_size; DDP averages
    the ranks' gradients, so the mean of the two rank losses is the token mean of the whole batch."""
    from msa.rl.losses import grpo_loss

    torch.manual_seed(0)
    logp = torch.randn(3, 4)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.float32)
    adv = torch.tensor([1.0, -0.5, 2.0])
    whole, _ = grpo_loss(logp, logp.detach() - 0.1, None, adv, mask, beta=0.0, loss_type="dapo")
    tokens = mask.sum().item()  # 9, all-reduced over the ranks
    parts = [grpo_loss(logp[s], logp[s].detach() - 0.1, None, adv[s], mask[s], beta=0.0, loss_type="dapo",
                       num_items=tokens / 2)[0] for s in (slice(0, 1), slice(1, 3))]
    torch.testing.assert_close((parts[0] + parts[1]) / 2, whole)
    local = [grpo_loss(logp[s], logp[s].detach() - 0.1, None, adv[s], mask[s], beta=0.0, loss_type="dapo")[0]
             for s in (slice(0, 1), slice(1, 3))]
    assert not torch.allclose((local[0] + local[1]) / 2, whole)  # per-rank token means do not


def test_anchored_advantages_use_the_replaced_groups_mean_and_both_groups_std():
    from msa.rl.advantages import anchored_advantages

    hinted, replaced = torch.tensor([2.0, 3.0, 2.0, 3.0]), torch.tensor([0.0, 0.0, 1.0, 1.0])
    # baseline = mean(replaced) = 0.5: centered 1.5, 2.5, 1.5, 2.5
    assert anchored_advantages(hinted, replaced, 4, scale="none").tolist() == [1.5, 2.5, 1.5, 2.5]
    # std of [0, 0, 1, 1, 2, 3, 2, 3]: mean 1.5, squared deviations sum to 10, / 7 -> sqrt(10/7) = 1.195229
    got = anchored_advantages(hinted, replaced, 4, scale="group")
    assert torch.allclose(got, torch.tensor([1.5, 2.5, 1.5, 2.5]) / (1.1952286 + 1e-4), atol=1e-6)
    assert anchored_advantages(hinted, replaced, 4, scale="batch", batch_std=2.0).tolist() == \
        pytest.approx([1.5 / 2.0001, 2.5 / 2.0001, 1.5 / 2.0001, 2.5 / 2.0001])
    # the same scores in both groups: nothing better than the policy's own, exactly 0
    assert anchored_advantages(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0]), 2).tolist() == [0.0, 0.0]
    # two groups, each against its own replaced group: [1, 1] vs [0, 0] -> +1 each; [0, 2] vs [2, 2] -> -2, 0
    two = anchored_advantages(torch.tensor([1.0, 1.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, 2.0, 2.0]), 2, scale="none")
    assert two.tolist() == [1.0, 1.0, -2.0, 0.0]
    with pytest.raises(ValueError, match="shape"):
        anchored_advantages(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0, 3.0, 4.0]), 2)
