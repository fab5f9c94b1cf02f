"""GRPO loss, k3 KL, clipping and log-probs against hand-computed values."""

import math

import pytest
import torch

from msa.rl.losses import grpo_loss, token_entropy, token_logprobs

E = math.e
# B = 2 rollouts, L = 3 positions; row 0 has a masked (prefill/padding) last position.
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
LOGP = [[-1.0, -2.0, -9.0], [-0.5, -1.5, -3.0]]
REF = torch.tensor([[-1.0, -1.0, 0.0], [-1.5, -1.5, -3.0]])
ADV = torch.tensor([1.0, -2.0])
# delta = ref - logp = [[0, 1, .], [-1, 0, 0]]; k3(d) = e^d - d - 1:
#   k3(0) = 0, k3(1) = e - 2 = 0.7182818, k3(-1) = 1/e = 0.3678794
# KL masked mean = (0.7182818 + 0.3678794) / 5 tokens = 0.2172323
# On-policy (ratio 1), pg = -A: row 0 -> -1 per token, row 1 -> +2 per token.
# beta = 0.1: l = [[-1, -1 + 0.0718282, .], [2 + 0.0367879, 2, 2]]
#   row sums: -1.9281718 and 6.0367879, total 4.1086161


def _on_policy_loss(**kw):
    logp = torch.tensor(LOGP, requires_grad=True)
    loss, stats = grpo_loss(logp, logp.detach(), REF, ADV, MASK, **kw)
    return logp, loss, stats


@pytest.mark.parametrize(
    "loss_type, extra, expected_loss, expected_policy",
    [
        # grpo: mean(-1.9281718 / 2, 6.0367879 / 3) = mean(-0.9640859, 2.0122626); policy: mean(-1, 2)
        ("grpo", {}, 0.5240884, 0.5),
        # dapo: 4.1086161 / 5 tokens; policy: (-2 + 6) / 5
        ("dapo", {}, 0.8217232, 0.8),
        # dapo with a global token count of 10 (e.g. another rank holds 5 more tokens)
        ("dapo", {"num_items": 10.0}, 0.4108616, 0.4),
        # dr_grpo: 4.1086161 / (B * 4) = 4.1086161 / 8; policy: 4 / 8
        ("dr_grpo", {"max_completion_length": 4}, 0.5135770, 0.5),
    ],
)
def test_aggregations_with_kl(loss_type, extra, expected_loss, expected_policy):
    _, loss, stats = _on_policy_loss(beta=0.1, loss_type=loss_type, **extra)
    assert loss.item() == pytest.approx(expected_loss, abs=1e-6)
    assert stats.policy_loss.item() == pytest.approx(expected_policy, abs=1e-6)
    assert stats.kl.item() == pytest.approx(0.2172323, abs=1e-6)
    # on-policy the ratio is exactly 1: nothing clips
    assert stats.clip_ratio_region.item() == 0.0
    assert not stats.kl.requires_grad and not stats.policy_loss.requires_grad


def test_gradient_values_and_masked_positions_are_zero():
    logp, loss, _ = _on_policy_loss(beta=0.1, loss_type="grpo")
    loss.backward()
    # d l / d logp = -A * ratio + beta * (1 - e^delta), then grpo weights 1 / (tokens_i * B):
    #   [0,0]: (-1 + 0) / 4                       = -0.25
    #   [0,1]: (-1 + 0.1 * (1 - e)) / 4           = -0.2929570
    #   [1,0]: (2 + 0.1 * (1 - 1/e)) / 6          =  0.3438687
    #   [1,1], [1,2]: 2 / 6                       =  0.3333333
    expected = torch.tensor([[-0.25, -0.2929570, 0.0], [0.3438687, 1 / 3, 1 / 3]])
    torch.testing.assert_close(logp.grad, expected, atol=1e-6, rtol=0)
    assert logp.grad[0, 2].item() == 0.0  # exactly zero, not just small


def test_masked_garbage_gives_no_nan_and_zero_grad():
    # -inf log-probs at a masked position would give exp(inf) and 0 * inf = NaN without the where()
    logp = torch.tensor([[-1.0, -2.0, float("-inf")], [-0.5, -1.5, -3.0]], requires_grad=True)
    old = torch.tensor([[-1.0, -2.0, 5.0], [-0.5, -1.5, -3.0]])
    ref = torch.tensor([[-1.0, -1.0, float("-inf")], [-1.5, -1.5, -3.0]])
    loss, stats = grpo_loss(logp, old, ref, ADV, MASK.bool(), beta=0.1, loss_type="dapo")
    loss.backward()
    assert loss.item() == pytest.approx(0.8217232, abs=1e-6)  # same as the clean dapo case
    assert torch.isfinite(logp.grad).all() and logp.grad[0, 2].item() == 0.0
    assert stats.clip_ratio_region.item() == 0.0


def test_beta_zero_needs_no_reference():
    _, loss_ref, stats_ref = _on_policy_loss(beta=0.0)
    logp = torch.tensor(LOGP, requires_grad=True)
    loss, stats = grpo_loss(logp, logp.detach(), None, ADV, MASK, beta=0.0)
    assert loss.item() == pytest.approx(0.5, abs=1e-7)  # mean(-1, 2): policy term only
    assert stats.kl.item() == 0.0
    # a reference given with beta = 0 is measured (kl stat) but not added to the loss
    assert loss_ref.item() == pytest.approx(0.5, abs=1e-7)
    assert stats_ref.kl.item() == pytest.approx(0.2172323, abs=1e-6)


def test_clipping_off_policy_second_iteration():
    # num_iterations = 2: logp moved away from the sampling policy. Ratios r = exp(logp - old):
    # old = -ln r with logp = 0 gives r = [[1.5, 0.5], [1.5, 0.5]]; A = [+1, -1]; eps = 0.2.
    logp = torch.zeros(2, 2, requires_grad=True)
    old = -torch.log(torch.tensor([[1.5, 0.5], [1.5, 0.5]]))
    adv = torch.tensor([1.0, -1.0])
    loss, stats = grpo_loss(logp, old, None, adv, torch.ones(2, 2), beta=0.0)
    # A=+1, r=1.5: min(1.5, 1.2) = 1.2  -> clipped (high), l = -1.2, no gradient
    # A=+1, r=0.5: min(0.5, 0.8) = 0.5  -> unclipped,       l = -0.5, grad -A*r = -0.5
    # A=-1, r=1.5: min(-1.5, -1.2) = -1.5 -> unclipped,     l =  1.5, grad -A*r = 1.5
    # A=-1, r=0.5: min(-0.5, -0.8) = -0.8 -> clipped (low),  l =  0.8, no gradient
    # grpo: mean((-1.2 - 0.5) / 2, (1.5 + 0.8) / 2) = mean(-0.85, 1.15) = 0.15
    assert loss.item() == pytest.approx(0.15, abs=1e-6)
    assert stats.clip_ratio_low.item() == 0.25  # 1 of 4 tokens
    assert stats.clip_ratio_high.item() == 0.25
    assert stats.clip_ratio_region.item() == 0.5
    loss.backward()
    # gradients divided by tokens_i * B = 4
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -0.125], [0.375, 0.0]]), atol=1e-6, rtol=0)


def test_asymmetric_epsilon_high():
    # eps_high = 0.6: r = 1.5 < 1.6 no longer clips; l = [-1.5, -0.5] for A = +1
    logp = torch.zeros(1, 2)
    old = -torch.log(torch.tensor([[1.5, 0.5]]))
    loss, stats = grpo_loss(logp, old, None, torch.tensor([1.0]), torch.ones(1, 2), beta=0.0,
                            epsilon_high=0.6)
    assert loss.item() == pytest.approx(-1.0, abs=1e-6)  # (-1.5 - 0.5) / 2
    assert stats.clip_ratio_high.item() == 0.0


def test_bad_input_raises():
    lp, m, a = torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2)
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(lp, lp, None, a, m, beta=0.1)
    with pytest.raises(ValueError, match="max_completion_length"):
        grpo_loss(lp, lp, lp, a, m, loss_type="dr_grpo")
    with pytest.raises(ValueError, match="loss_type"):
        grpo_loss(lp, lp, lp, a, m, loss_type="ppo")
    with pytest.raises(ValueError, match="num_items"):
        grpo_loss(lp, lp, lp, a, m, num_items=4.0)
    with pytest.raises(ValueError, match="mask shape"):
        grpo_loss(lp, lp, lp, a, m[:, :2])
    with pytest.raises(ValueError, match="advantages"):
        grpo_loss(lp, lp, lp, torch.zeros(3), m)


def test_token_logprobs_hand_values():
    # logits [0, ln 3] -> p = [1/4, 3/4]; log p(1) = ln 0.75 = -0.2876821
    # T = 2: logits / 2 = [0, ln 3 / 2] -> p(1) = sqrt3 / (1 + sqrt3) -> ln = -0.4557464
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    ids = torch.tensor([[1]])
    assert token_logprobs(logits, ids).item() == pytest.approx(-0.2876821, abs=1e-6)
    assert token_logprobs(logits, ids, temperature=2.0).item() == pytest.approx(-0.4557464, abs=1e-6)
    assert token_logprobs(logits.bfloat16(), ids).item() == pytest.approx(-0.2876821, abs=1e-2)


def test_token_logprobs_matches_naive_with_grad():
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(3, 5, 17, generator=g)).requires_grad_()
    ids = torch.randint(0, 17, (3, 5), generator=g)
    ours = token_logprobs(logits, ids, temperature=0.7)
    naive = torch.log_softmax(logits / 0.7, -1).gather(-1, ids[..., None]).squeeze(-1)
    torch.testing.assert_close(ours, naive, atol=1e-5, rtol=0)
    (grad_ours,) = torch.autograd.grad(ours.sum(), logits)
    (grad_naive,) = torch.autograd.grad(naive.sum(), logits)
    torch.testing.assert_close(grad_ours, grad_naive, atol=1e-6, rtol=0)
    # bf16: float32 output, equal to a float32 log-softmax of the same bf16 values,
    # and within bf16 resolution of a naive bf16 log-softmax
    lb = logits.detach().bfloat16()
    ours_bf = token_logprobs(lb, ids, temperature=0.7)
    assert ours_bf.dtype == torch.float32
    exact = torch.log_softmax(lb.float() / 0.7, -1).gather(-1, ids[..., None]).squeeze(-1)
    torch.testing.assert_close(ours_bf, exact, atol=1e-5, rtol=0)
    naive_bf = torch.log_softmax(lb / 0.7, -1).gather(-1, ids[..., None]).squeeze(-1).float()
    torch.testing.assert_close(ours_bf, naive_bf, atol=0.1, rtol=0.02)


def test_token_entropy():
    # uniform over 4: ln 4 = 1.3862944; p = [1/4, 3/4]: 0.25 ln 4 + 0.75 ln(4/3) = 0.5623351
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3.0), -1e9, -1e9]]])
    torch.testing.assert_close(token_entropy(logits), torch.tensor([[1.3862944, 0.5623351]]),
                               atol=1e-6, rtol=0)


def test_token_entropy_finite_with_suppressed_tokens_below_temperature_one():
    """Suppressed tokens carry finfo.min logits (mask_suppressed); at T=0.7 they overflow to -inf, and the
    entropy must count them as probability 0, not 0 * -inf = NaN. Two live equal logits: ln 2."""
    from msa.generation import mask_suppressed

    logits = mask_suppressed(torch.zeros(1, 1, 4), [2, 3])
    ent = token_entropy(logits, temperature=0.7)
    assert torch.isfinite(ent).all()
    assert ent.item() == pytest.approx(math.log(2), abs=1e-6)
    logp = token_logprobs(logits, torch.tensor([[0]]), temperature=0.7)
    assert logp.item() == pytest.approx(-math.log(2), abs=1e-6)


def _saved_bytes(fn, keep_out=()):
    """Bytes autograd keeps for backward while ``fn`` runs, leaving out tensors that share storage with
    ``keep_out`` (inputs that are alive anyway)."""
    skip = {t.untyped_storage().data_ptr() for t in keep_out}
    seen = {}  # storage -> bytes: a tensor saved by two ops (log_softmax, then gather) counts once

    def pack(t):
        if t.untyped_storage().data_ptr() not in skip:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_logprobs_keeps_no_float32_copy_of_bf16_logits_for_backward(temperature):
    """bf16 logits [N, C, V]: autograd through a per-row float32 log-softmax kept N x C x V float32 values
    (twice the logits' bytes) for backward; now only the logits themselves, the [N, C] log-sum-exp and
    the ids. Values and gradients are those of the float32 log-softmax of the same bf16 values."""
    g = torch.Generator().manual_seed(1)
    n, c, v = 3, 7, 257
    logits = (20 * torch.randn(n, c, v, generator=g)).bfloat16().requires_grad_()
    ids = torch.randint(0, v, (n, c), generator=g)
    ours, saved = _saved_bytes(lambda: token_logprobs(logits, ids, temperature), keep_out=[logits])
    assert saved <= n * c * (4 + 8)  # lse float32 + ids int64; was 2 x the logits' bytes more
    before, saved_before = _saved_bytes(
        lambda: torch.stack([torch.log_softmax(row.float() / temperature, -1).gather(-1, i[:, None]).squeeze(-1)
                             for row, i in zip(logits, ids)]), keep_out=[logits])
    assert saved_before >= 2 * logits.numel() * logits.element_size()  # today's formula, for the record
    torch.testing.assert_close(ours, before, atol=2e-5, rtol=0)
    w = torch.randn(n, c, generator=g)
    (grad_ours,) = torch.autograd.grad((ours * w).sum(), logits)
    (grad_before,) = torch.autograd.grad((before * w).sum(), logits)
    assert grad_ours.dtype == torch.bfloat16
    torch.testing.assert_close(grad_ours.float(), grad_before.float(), atol=1e-3, rtol=1e-2)


def test_huge_log_ratio_is_clamped_before_exp():
    """num_iterations > 1: a token whose log-prob rose by 100 nats since sampling gave exp(100) = inf in
    float32, an inf loss (A < 0) and NaN gradients. Clamped at 20: finite, rho = e^20, no gradient there
    (clamped), and the other token's gradient intact."""
    logp = torch.tensor([[100.0, 0.0]], requires_grad=True)
    old = torch.zeros(1, 2)
    loss, stats = grpo_loss(logp, old, None, torch.tensor([-1.0]), torch.ones(1, 2), beta=0.0)
    # A = -1: token 0 l = -min(-e^20, -0.8) = e^20; token 1 (rho 1) l = 1; grpo: (e^20 + 1) / 2
    assert torch.isfinite(loss) and loss.item() == pytest.approx((math.exp(20) + 1) / 2, rel=1e-6)
    loss.backward()
    assert torch.isfinite(logp.grad).all()
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, 0.5]]))
    assert stats.clip_ratio_region.item() == 0.0  # rho > 1 + eps with A < 0 is not TRL's clip region


def test_gspo_sequence_level_ratio_matches_trls_formula():
    """importance_sampling_level="sequence" (GSPO, TRL's formula): log w_i = sum_t (logp - old) m / sum_t m,
    one ratio per sequence, clipped, applied to each of its tokens. eps = 0.2, beta = 0, "grpo" aggregation.
      row 0: masked log-ratios [0.1, 0.3] -> mean 0.2, w = e^0.2 = 1.2214 > 1.2, A = +1: clipped, l = -1.2
      row 1: [-0.1, -0.1, -0.4] -> mean -0.2, w = e^-0.2 = 0.8187 > 0.8, A = -1: l = +0.8187, unclipped
      loss = mean(-1.2, 0.8187) = -0.19063; grad row 0: 0 (clipped); row 1: its mean is (3 tokens x w) / 3 = w,
      halved by the mean over B = 2, and dw/dlogp_t = w / 3: each token gets w / 6 = 0.13646
    A third masked position in row 0 holds garbage that must not count."""
    logp = torch.tensor([[0.1, 0.3, 50.0], [-0.1, -0.1, -0.4]], requires_grad=True)
    old = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    loss, stats = grpo_loss(logp, old, None, torch.tensor([1.0, -1.0]), mask, beta=0.0,
                            importance_sampling_level="sequence")
    w1 = math.exp(-0.2)
    assert loss.item() == pytest.approx((-1.2 + w1) / 2, abs=1e-6)
    assert stats.clip_ratio_high.item() == pytest.approx(2 / 5)  # row 0's two tokens of five
    assert stats.clip_ratio_low.item() == 0.0
    loss.backward()
    expected = torch.tensor([[0.0, 0.0, 0.0], [w1 / 6] * 3])
    torch.testing.assert_close(logp.grad, expected, atol=1e-6, rtol=0)
    # token level on the same inputs: row 0's 0.3 clips alone, row 1's -0.4 (e^-0.4 = 0.67 < 0.8) clips low
    _, tok = grpo_loss(logp.detach(), old, None, torch.tensor([1.0, -1.0]), mask, beta=0.0)
    assert tok.clip_ratio_region.item() == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="importance_sampling_level"):
        grpo_loss(logp.detach(), old, None, torch.tensor([1.0, -1.0]), mask, importance_sampling_level="seq")
