"""Length shaping, entropy band and the policy loss against hand-worked examples.

The whole objective (aggregation, dual clip, k3 KL) is the oracle of ``oracles.py``, pinned here to
hand-worked values; the package's per-token loss must agree with it.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oracles import k3_kl, masked_mean, method_policy_loss, token_entropy
from vlthinker.algorithms import (
    clipped_policy_loss,
    entropy_band_penalty,
    entropy_band_sides,
    entropy_band_step_penalty,
    length_envelope,
    trapezoid_length_score,
)


# ---------------------------------------------------------------- length shaping (§4)
def test_trapezoid_golden_values():
    envelopes = torch.tensor([[10.0, 20.0, 40.0, 60.0]])
    lengths = torch.tensor([0, 10, 15, 20, 30, 40, 50, 60, 61])
    tasks = torch.zeros(9, dtype=torch.int64)
    expected = [0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    assert trapezoid_length_score(lengths, tasks, envelopes).tolist() == pytest.approx(expected)


def test_trapezoid_degenerate_ramps_are_steps_without_nan():
    envelopes = torch.tensor([[5.0, 5.0, 8.0, 8.0], [0.0, 0.0, 0.0, 0.0]])
    lengths = torch.tensor([4, 5, 8, 9, 0, 1])
    tasks = torch.tensor([0, 0, 0, 0, 1, 1])
    score = trapezoid_length_score(lengths, tasks, envelopes)
    assert score.tolist() == [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]


def test_each_task_uses_its_own_envelope_and_scores_one_only_inside():
    envelopes = torch.tensor(
        [length_envelope(2, 6, slack=0.5), length_envelope(40, 80, slack=0.5)], dtype=torch.float32
    )
    lengths = torch.tensor([4, 60, 60, 4])
    tasks = torch.tensor([0, 1, 0, 1])
    score = trapezoid_length_score(lengths, tasks, envelopes)
    assert score[:2].tolist() == [1.0, 1.0]
    assert score[2] == 0.0  # 60 tokens on a perception task: far past d = 9
    assert score[3] == 0.0  # 4 tokens on a reasoning task: below a = 20


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 500, allow_nan=False), min_size=4, max_size=4),
    st.lists(st.integers(0, 1000), min_size=1, max_size=30),
)
def test_trapezoid_is_bounded_and_unimodal(points, lengths):
    envelope = torch.tensor([sorted(points)], dtype=torch.float64)
    lengths_t = torch.tensor(sorted(lengths))
    score = trapezoid_length_score(lengths_t, torch.zeros_like(lengths_t), envelope)
    assert bool(((score >= 0) & (score <= 1)).all())
    peak = int(score.argmax())
    assert bool((score[1 : peak + 1] >= score[:peak] - 1e-12).all())
    assert bool((score[peak + 1 :] <= score[peak:-1] + 1e-12).all())


def test_length_envelope_validates_its_range():
    assert length_envelope(10, 20, slack=0.5) == (5.0, 10.0, 20.0, 30.0)
    with pytest.raises(ValueError, match="L_min"):
        length_envelope(30, 20)


# ---------------------------------------------------------------- entropy band (§5)
def test_token_entropy_oracle_of_uniform_and_peaked_distributions():
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]]])
    entropy = token_entropy(logits)
    assert entropy[0, 0] == pytest.approx(math.log(4))
    assert entropy[0, 1] == pytest.approx(0.0, abs=1e-6)


def _band_case():
    # Task 0 mean entropy 0.9 (above its band 0.2–0.6), task 1 mean 0.4 (inside), task 2 0.05
    # (below 0.1–0.5). Padding tokens (mask 0) carry a huge entropy that must be ignored.
    entropies = torch.tensor(
        [[0.8, 1.0, 9.0], [0.9, 0.9, 9.0], [0.4, 0.4, 0.4], [0.05, 9.0, 9.0]], requires_grad=True
    )
    mask = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 0, 0]])
    tasks = torch.tensor([0, 0, 1, 2])
    bands = torch.tensor([[0.2, 0.6], [0.2, 0.6], [0.1, 0.5]])
    return entropies, mask, tasks, bands


def test_entropy_band_hand_worked_value():
    entropies, mask, tasks, bands = _band_case()
    penalty, info = entropy_band_penalty(entropies, mask, tasks, bands, coef=0.02)
    assert info["entropy"].tolist() == pytest.approx([0.9, 0.4, 0.05])
    # 0.02 · ((0.9 − 0.6) + 0 + (0.1 − 0.05)) = 0.007
    assert float(penalty) == pytest.approx(0.007)
    assert info["violation"].tolist() == pytest.approx([0.3, 0.0, 0.05])


def test_entropy_band_gradient_only_for_tasks_outside_and_toward_the_band():
    entropies, mask, tasks, bands = _band_case()
    penalty, _ = entropy_band_penalty(entropies, mask, tasks, bands, coef=0.02)
    penalty.backward()
    grad = entropies.grad
    assert bool((grad[:2][mask[:2].bool()] > 0).all())  # too high: descent lowers it
    assert bool((grad[2] == 0).all())  # inside its band: untouched
    assert float(grad[3, 0]) < 0  # too low: descent raises it
    assert bool((grad[mask == 0] == 0).all())  # padding never gets a gradient


def test_entropy_band_ignores_tasks_absent_from_the_batch():
    entropies = torch.full((2, 2), 0.4)
    mask = torch.ones(2, 2)
    # Task 1 has a band that 0 entropy would violate, but it has no sample in the batch.
    penalty, info = entropy_band_penalty(
        entropies, mask, torch.tensor([0, 0]), torch.tensor([[0.2, 0.6], [0.3, 0.5]]), coef=1.0
    )
    assert float(penalty) == 0.0
    assert info["present"].tolist() == [True, False]


def _step_penalty_over_splits(entropies, mask, tasks, bands, splits, coef=0.02):
    """The band term of one optimiser step whose rollouts are split into ``splits`` micro-batches:
    the sides and token counts come from the whole step, each micro-batch adds its share."""
    weight = mask.to(entropies.dtype)
    num_tasks = bands.shape[0]
    sums = torch.zeros(num_tasks, dtype=entropies.dtype).index_add(
        0, tasks, (entropies.detach() * weight).sum(dim=1)
    )
    tokens = torch.zeros(num_tasks, dtype=entropies.dtype).index_add(0, tasks, weight.sum(dim=1))
    sides = entropy_band_sides(sums, tokens, bands)
    total = torch.zeros((), dtype=entropies.dtype)
    for rows in torch.arange(entropies.shape[0]).tensor_split(splits):
        total = total + entropy_band_step_penalty(
            entropies[rows], mask[rows], tasks[rows], sides, tokens, bands, coef
        )
    return total


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_entropy_band_over_a_step_is_the_same_however_the_step_is_split(seed):
    generator = torch.Generator().manual_seed(seed)
    rows, width, num_tasks = 8, 5, 3
    base = torch.rand(rows, width, generator=generator, dtype=torch.float64) * 1.2
    mask = (torch.rand(rows, width, generator=generator) < 0.8).to(torch.float64)
    mask[:, 0] = 1.0
    tasks = torch.randint(0, num_tasks, (rows,), generator=generator)
    bands = torch.tensor([[0.2, 0.5], [0.7, 1.0], [0.0, 2.0]], dtype=torch.float64)
    values, grads = [], []
    for splits in (1, 2, 4):
        entropies = base.clone().requires_grad_()
        penalty = _step_penalty_over_splits(entropies, mask, tasks, bands, splits)
        (grad,) = torch.autograd.grad(penalty, entropies)
        values.append(float(penalty))
        grads.append(grad)
    # ... and equal to the hinge of the step's own task entropies (entropy_band_penalty on all).
    entropies = base.clone().requires_grad_()
    whole, _ = entropy_band_penalty(entropies, mask, tasks, bands, coef=0.02)
    (whole_grad,) = torch.autograd.grad(whole, entropies)
    for value, grad in zip(values, grads, strict=True):
        assert value == pytest.approx(float(whole), abs=1e-12)
        torch.testing.assert_close(grad, whole_grad, rtol=0, atol=1e-12)


def test_a_mean_of_micro_batch_hinges_overstates_the_band_and_the_step_form_does_not():
    # One task, band [0.2, 0.6]; two micro-batches of one rollout each, entropies 0.9 and 0.1:
    # the task's entropy is 0.5, inside the band. Per micro-batch the hinges are 0.3 and 0.1.
    entropies = torch.tensor([[0.9], [0.1]], dtype=torch.float64)
    mask = torch.ones(2, 1, dtype=torch.float64)
    tasks = torch.zeros(2, dtype=torch.int64)
    bands = torch.tensor([[0.2, 0.6]], dtype=torch.float64)
    per_micro = [
        float(entropy_band_penalty(entropies[i : i + 1], mask[:1], tasks[:1], bands, 1.0)[0])
        for i in range(2)
    ]
    assert sum(per_micro) / 2 == pytest.approx(0.2)
    assert float(_step_penalty_over_splits(entropies, mask, tasks, bands, 2, coef=1.0)) == 0.0
    # golden sides: above, below, inside, absent
    sides = entropy_band_sides(
        torch.tensor([1.8, 0.1, 1.0, 0.0]),
        torch.tensor([2.0, 1.0, 2.0, 0.0]),
        torch.tensor([[0.2, 0.6], [0.2, 0.6], [0.2, 0.6], [0.2, 0.6]]),
    )
    assert sides.tolist() == [1, -1, 0, 0]


# ---------------------------------------------------------------- policy loss (§3)
def test_on_policy_loss_is_minus_mean_advantage_and_gradient_follows_its_sign():
    logps = torch.log(torch.tensor([[0.5, 0.25], [0.5, 0.5]])).requires_grad_()
    advantages = torch.tensor([2.0, -1.0])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, metrics = method_policy_loss(logps, logps.detach(), advantages, mask)
    # token mean: −(2 + 2 − 1)/3 = −1
    assert float(loss) == pytest.approx(-1.0)
    loss.backward()
    assert bool((logps.grad[0] < 0).all())  # positive advantage: raise log-prob
    assert float(logps.grad[1, 0]) > 0  # negative advantage: lower it
    assert float(logps.grad[1, 1]) == 0  # masked token
    assert metrics["clip_frac"] == 0.0
    assert metrics["approx_kl"] == pytest.approx(0.0)


def test_clipping_hand_worked():
    old = torch.zeros(1, 4)
    ratios = torch.tensor([[1.5, 0.5, 1.5, 0.5]])
    logps = torch.log(ratios).requires_grad_()
    advantages = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    mask = torch.ones(1, 4)
    loss, metrics = method_policy_loss(
        logps, old, advantages, mask, clip_low=0.2, clip_high=0.3, dual_clip=None
    )
    # per token: −min(1.5, 1.3) = −1.3; −min(0.5, 0.8) = −0.5; −min(−1.5, −1.3) = 1.5;
    # −min(−0.5, −0.8) = 0.8 → mean 0.125
    assert float(loss) == pytest.approx(0.125)
    loss.backward()
    grad = logps.grad[0]
    assert float(grad[0]) == 0.0  # clipped above with A > 0: no push further
    assert float(grad[3]) == 0.0  # clipped below with A < 0: no push further
    assert float(grad[1]) < 0 and float(grad[2]) > 0
    assert metrics["clip_frac_high"] == pytest.approx(0.25)
    assert metrics["clip_frac_low"] == pytest.approx(0.25)


def test_dual_clip_caps_negative_advantage_loss():
    logps = torch.log(torch.tensor([[5.0, 5.0]])).requires_grad_()
    advantages = torch.tensor([[-1.0, 1.0]])
    loss, metrics = method_policy_loss(
        logps, torch.zeros(1, 2), advantages, torch.ones(1, 2), dual_clip=3.0
    )
    # A < 0, ratio 5: max(5, 0.8·... ) = 5 capped at 3; A > 0: −min(5, 1.3) = −1.3 → (3 − 1.3)/2
    assert float(loss) == pytest.approx(0.85)
    loss.backward()
    assert float(logps.grad[0, 0]) == 0.0
    assert metrics["dual_clip_frac"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="dual_clip"):
        method_policy_loss(logps, logps, advantages, torch.ones(1, 2), dual_clip=0.5)


def test_token_and_sequence_aggregation_differ_as_defined():
    values = torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]])
    assert float(masked_mean(values, mask, "token")) == pytest.approx(8 / 5)
    assert float(masked_mean(values, mask, "seq")) == pytest.approx((1 + 4) / 2)
    with pytest.raises(ValueError, match="aggregation"):
        masked_mean(values, mask, "sum")


def test_k3_kl_is_zero_at_equality_positive_otherwise_and_enters_the_loss():
    logps = torch.log(torch.tensor([[0.5, 0.2]]))
    ref = torch.log(torch.tensor([[0.25, 0.2]]))
    kl = k3_kl(logps, ref)
    # r = log(0.25/0.5) = −log 2: exp(r) − r − 1 = 0.5 + log 2 − 1
    assert float(kl[0, 0]) == pytest.approx(0.5 + math.log(2) - 1)
    assert float(kl[0, 1]) == 0.0
    zero = torch.zeros(1)
    base, _ = method_policy_loss(logps, logps, zero, torch.ones(1, 2))
    with_kl, metrics = method_policy_loss(
        logps, logps, zero, torch.ones(1, 2), ref_logps=ref, kl_coef=0.1
    )
    assert float(with_kl - base) == pytest.approx(0.1 * float(kl.mean()))
    assert metrics["kl_ref"] == pytest.approx(float(kl.mean()))


# ---------------------------------------------------------------- package per-token loss (§3)
def test_per_token_loss_hand_worked_with_the_ratio_cap():
    # ratios 1.5, 5 (past the dual clip 3), 1 and 0.5
    logps = torch.log(torch.tensor([[1.5, 5.0, 1.0, 0.5]])).requires_grad_()
    old = torch.zeros(1, 4)
    up = clipped_policy_loss(logps, old, torch.tensor([1.0]), 0.2, 0.3, 3.0)
    # A = 1: −min(ρ, clip ρ) → −1.3 (clipped high), −1.3, −1, −0.5 (below the clip: unclipped)
    torch.testing.assert_close(up.detach(), torch.tensor([[-1.3, -1.3, -1.0, -0.5]]))
    down = clipped_policy_loss(logps, old, torch.tensor([-1.0]), 0.2, 0.3, 3.0)
    # A = −1: max(ρ, clip ρ) capped at 3 → 1.5, 3, 1, 0.8 (clipped low)
    torch.testing.assert_close(down.detach(), torch.tensor([[1.5, 3.0, 1.0, 0.8]]))
    (grad,) = torch.autograd.grad(down.sum(), logps)
    assert float(grad[0, 1]) == 0.0  # capped by the dual clip: no push further
    assert float(grad[0, 3]) == 0.0  # clipped low with A < 0: no push further
    assert float(grad[0, 0]) > 0 and float(grad[0, 2]) > 0  # descent lowers a bad token's ρ
    uncapped = clipped_policy_loss(logps, old, torch.tensor([-1.0]), 0.2, 0.3, None)
    assert float(uncapped[0, 1]) == pytest.approx(5.0)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-3, 3), min_size=12, max_size=12),
    st.lists(st.floats(-2, 2), min_size=3, max_size=3),
    st.sampled_from([None, 1.5, 3.0, 10.0]),
    st.sampled_from(["token", "seq"]),
)
def test_per_token_loss_is_the_method_loss_token_by_token(log_ratios, advantages, cap, aggregation):
    """The ratio-cap form used in the package (TRL's ``delta``) is the method's dual clip: same
    loss and same gradient, under either aggregation, whenever the cap is at least 1 + ε_high."""
    old = torch.full((3, 4), -1.0, dtype=torch.float64)
    logps = (old + torch.tensor(log_ratios, dtype=torch.float64).view(3, 4)).requires_grad_()
    adv = torch.tensor(advantages, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    per_token = clipped_policy_loss(logps, old, adv, 0.2, 0.3, cap)
    ours = masked_mean(per_token, mask, aggregation)
    expected, _ = method_policy_loss(
        logps, old, adv, mask, clip_low=0.2, clip_high=0.3, dual_clip=cap, aggregation=aggregation
    )
    assert float(ours) == pytest.approx(float(expected), rel=1e-12, abs=1e-12)
    (got,) = torch.autograd.grad(ours, logps, retain_graph=True)
    (want,) = torch.autograd.grad(expected, logps)
    torch.testing.assert_close(got, want)
