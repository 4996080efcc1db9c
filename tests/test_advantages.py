"""G²RPO and baseline advantages against a slow loop reference, properties and golden values."""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vlthinker.algorithms import (
    ESTIMATORS,
    compute_advantages,
    dr_grpo_advantages,
    estimator_options,
    g2rpo_advantages,
    grpo_advantages,
    multi_component_g2rpo_advantages,
    rank_to_normal,
    rloo_advantages,
)

TOL = 1e-6
_PHI_INV = NormalDist().inv_cdf


# ------------------------------------------------- slow reference (one group at a time)
def reference_map(values: list[float], tol: float = TOL) -> list[float]:
    """docs/method.md §2 ``map_to_normal``, written as plainly as possible."""
    n = len(values)
    order = sorted(range(n), key=lambda i: values[i])
    if n < 2:
        return [0.0] * n
    quantiles = [_PHI_INV((k + 0.5) / n) for k in range(n)]
    blocks: list[list[int]] = [[0]]
    for position in range(1, n):
        if values[order[position]] - values[order[position - 1]] > tol:
            blocks.append([])
        blocks[-1].append(position)
    if len(blocks) == 1:
        return [0.0] * n
    out = [0.0] * n
    for block in blocks:
        mean = sum(quantiles[p] for p in block) / len(block)
        for position in block:
            out[order[position]] = mean
    return out


def reference_degenerate(values: list[float], tol: float = TOL) -> bool:
    """Size 1, or every sorted gap within the tie tolerance (one chained tie block)."""
    ordered = sorted(values)
    return all(b - a <= tol for a, b in itertools.pairwise(ordered))


def reference_g2rpo(rewards, groups, tasks, tol=TOL, per_task=True, keep_tied=False, stage2="rms"):
    rewards, groups, tasks = list(rewards), list(groups), list(tasks)
    stage1 = [0.0] * len(rewards)
    tied = set()
    for group in set(groups):
        members = [i for i, g in enumerate(groups) if g == group]
        values = [rewards[i] for i in members]
        mapped = reference_map(values, tol)
        if reference_degenerate(values, tol):
            tied.add(group)
        for i, value in zip(members, mapped, strict=True):
            stage1[i] = value
    if not per_task:
        return stage1
    out = [0.0] * len(rewards)
    for task in set(tasks):
        members = [
            i for i, t in enumerate(tasks) if t == task and (keep_tied or groups[i] not in tied)
        ]
        values = [stage1[i] for i in members]
        mapped = reference_map(values, tol) if stage2 == "reference" else reference_rms(values)
        for i, value in zip(members, mapped, strict=True):
            out[i] = value
    return out


def reference_rms(values: list[float]) -> list[float]:
    """The sound stage 2 (docs/method.md §2): divide by the root mean square of ``values``."""
    if not values:
        return []
    root_mean_square = math.sqrt(sum(v * v for v in values) / len(values))
    return [v / root_mean_square if root_mean_square > 0 else 0.0 for v in values]


# ---------------------------------------------------------------- batch generator
@st.composite
def batches(draw, max_groups: int = 10, max_size: int = 9):
    """Multi-task batches with ties: any group sizes, shuffled and non-contiguous ids."""
    num_groups = draw(st.integers(1, max_groups))
    blocked = draw(st.booleans())  # the trainer's layout (equal contiguous blocks) or anything
    size = draw(st.integers(1, max_size))
    sizes = (
        [size] * num_groups
        if blocked
        else draw(st.lists(st.integers(1, max_size), min_size=num_groups, max_size=num_groups))
    )
    discrete = draw(st.booleans())
    value = (
        st.sampled_from([0.0, 0.5, 1.0])
        if discrete
        # On a 1e-3 grid: two values are equal or 1e-3 apart, never within float32 rounding of
        # the 1e-6 tie tolerance, where float32 and the float64 loop may legitimately disagree.
        else st.integers(-5000, 5000).map(lambda k: k / 1000)
    )
    ids = draw(
        st.lists(
            st.integers(-(2**40), 2**40), min_size=num_groups, max_size=num_groups, unique=True
        )
    )
    if blocked:
        ids = sorted(ids)
    num_tasks = draw(st.integers(1, 4))
    rewards, groups, tasks = [], [], []
    for group_id, group_size in zip(ids, sizes, strict=True):
        task = draw(st.integers(0, num_tasks - 1)) * 7 + 3  # non-contiguous task ids
        rewards += draw(st.lists(value, min_size=group_size, max_size=group_size))
        groups += [group_id] * group_size
        tasks += [task] * group_size
    if not blocked:
        permutation = draw(st.permutations(range(len(rewards))))
        rewards = [rewards[i] for i in permutation]
        groups = [groups[i] for i in permutation]
        tasks = [tasks[i] for i in permutation]
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    return (
        torch.tensor(rewards, dtype=dtype),
        torch.tensor(groups, dtype=torch.int64),
        torch.tensor(tasks, dtype=torch.int64),
    )


def assert_close(actual: torch.Tensor, expected, atol: float = 1e-5) -> None:
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert torch.allclose(actual.double(), expected, atol=atol), (actual, expected)


# ---------------------------------------------------------------- matches the loop reference
@settings(max_examples=300, deadline=None)
@given(batches(), st.booleans(), st.booleans(), st.sampled_from(["rms", "reference"]))
def test_vectorized_matches_loop_reference(batch, per_task, keep_tied, stage2):
    rewards, groups, tasks = batch
    got = g2rpo_advantages(
        rewards, groups, tasks, per_task=per_task, keep_tied_groups=keep_tied, stage2=stage2
    )
    want = reference_g2rpo(
        rewards.tolist(),
        groups.tolist(),
        tasks.tolist(),
        per_task=per_task,
        keep_tied=keep_tied,
        stage2=stage2,
    )
    assert got.dtype == rewards.dtype
    assert_close(got, want, atol=1e-4 if rewards.dtype == torch.float32 else 1e-9)


def test_float64_composite_sort_falls_back_exactly_when_rounding_merges_values():
    # Values 1e-12 apart on a span of 1e6: the float64 composite key cannot separate them.
    rewards = torch.tensor([1e6, 0.0, 1e-12, 2e-12, 3e-12, 5.0], dtype=torch.float64)
    groups = torch.tensor([9, 4, 4, 4, 4, 9])
    got = g2rpo_advantages(rewards, groups, per_task=False, tie_atol=0.0)
    want = reference_g2rpo(rewards.tolist(), groups.tolist(), [0] * 6, tol=0.0, per_task=False)
    assert_close(got, want, atol=1e-12)


# ---------------------------------------------------------------- properties
@settings(max_examples=150, deadline=None)
@given(batches())
def test_invariant_to_strictly_increasing_transform(batch):
    rewards, groups, tasks = batch
    rewards = rewards.double()
    base = g2rpo_advantages(rewards, groups, tasks, tie_atol=0.0)
    # Strictly increasing and non-linear, built from correctly rounded + and x only: library
    # transcendentals (exp, sinh) may round equal inputs differently in SIMD and scalar code.
    cubic = 4 * rewards + rewards * rewards * rewards
    transformed = g2rpo_advantages(cubic, groups, tasks, tie_atol=0.0)
    assert_close(transformed, base, atol=1e-9)


@settings(max_examples=150, deadline=None)
@given(batches())
def test_negating_rewards_negates_advantages(batch):
    rewards, groups, tasks = batch
    assert_close(
        g2rpo_advantages(-rewards, groups, tasks), -g2rpo_advantages(rewards, groups, tasks), 1e-5
    )


@settings(max_examples=150, deadline=None)
@given(batches(), st.randoms(use_true_random=False))
def test_permutation_equivariance(batch, rng):
    rewards, groups, tasks = batch
    permutation = torch.tensor(rng.sample(range(rewards.numel()), rewards.numel()))
    base = g2rpo_advantages(rewards, groups, tasks)
    permuted = g2rpo_advantages(rewards[permutation], groups[permutation], tasks[permutation])
    assert_close(permuted, base[permutation], atol=1e-6)


@settings(max_examples=150, deadline=None)
@given(batches())
def test_stage_one_has_zero_mean_in_every_group(batch):
    rewards, groups, tasks = batch
    stage1 = g2rpo_advantages(rewards, groups, tasks, per_task=False).double()
    for group in groups.unique():
        assert abs(float(stage1[groups == group].sum())) < 1e-4


@settings(max_examples=100, deadline=None)
@given(batches())
def test_stage_two_has_zero_mean_in_every_task(batch):
    rewards, groups, tasks = batch
    advantages = g2rpo_advantages(rewards, groups, tasks).double()
    for task in tasks.unique():
        assert abs(float(advantages[tasks == task].sum())) < 1e-4


def test_all_tied_groups_and_singletons_give_exactly_zero_and_skip_stage_two():
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.3, 0.0, 1.0, 0.0, 0.0])
    groups = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2])
    tasks = torch.zeros(8, dtype=torch.int64)
    advantages = g2rpo_advantages(rewards, groups, tasks, stage2="reference")
    assert torch.equal(advantages[:4], torch.zeros(4))  # exact zeros, not just close
    # Stage 2 sees only group 2, whose values [1.282, -0.427 x3] re-rank to the same pattern.
    assert_close(advantages[4:], reference_map([0.0, 1.0, 0.0, 0.0]))
    # The reference behaviour ranks the four zeros too, which moves them and the others.
    reference = g2rpo_advantages(rewards, groups, tasks, keep_tied_groups=True, stage2="reference")
    assert float(reference[:4].abs().max()) > 0.1
    # The sound rule keeps the zeros at exactly 0 either way; by hand, group 2's stage-1 values
    # (−0.4270 ×3, 1.2810) have RMS 0.7396, so they become (−0.5774 ×3, 1.7321).
    for keep_tied in (False, True):
        sound = g2rpo_advantages(rewards, groups, tasks, keep_tied_groups=keep_tied)
        assert torch.equal(sound[:4], torch.zeros(4))
    assert_close(
        g2rpo_advantages(rewards, groups, tasks)[4:], [-0.5774, 1.7321, -0.5774, -0.5774], 1e-4
    )


def test_same_group_structure_gives_the_same_advantage_multiset_whatever_the_scale():
    generator = torch.Generator().manual_seed(0)
    base = torch.rand(64, generator=generator, dtype=torch.float64)
    base[::3] = 0.0  # ties inside groups
    groups = torch.arange(8).repeat_interleave(8)
    # Task 1: the same rank structure per group, but every group on its own scale and shape —
    # a few heavy-tailed, a few squeezed into 1e-3 — as happens between IoU and 0/1 rewards.
    scale = torch.logspace(-3, 4, 8, dtype=torch.float64).repeat_interleave(8)
    other = torch.where(groups % 2 == 0, scale * base**3, torch.exp(base * 5) * scale)
    rewards = torch.cat([base, other])
    tasks = torch.tensor([0] * 64 + [1] * 64)
    advantages = g2rpo_advantages(rewards, torch.cat([groups, groups + 8]), tasks, tie_atol=0.0)
    assert_close(advantages[:64].sort().values, advantages[64:].sort().values.tolist(), 1e-9)
    linear = grpo_advantages(rewards, torch.cat([groups, groups + 8]))
    assert not torch.allclose(linear[:64].sort().values, linear[64:].sort().values, atol=1e-3)


def test_heavy_tail_outlier_moves_only_its_own_rank():
    rewards = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64)
    outlier = rewards.clone()
    outlier[-1] = 1e9
    groups = torch.zeros(5, dtype=torch.int64)
    assert_close(g2rpo_advantages(outlier, groups), g2rpo_advantages(rewards, groups).tolist())
    assert float(grpo_advantages(outlier, groups)[0]) != pytest.approx(
        float(grpo_advantages(rewards, groups)[0])
    )


# ---------------------------------------------------------------- golden values (docs/method.md §2)
@pytest.mark.parametrize(
    ("rewards", "expected"),
    [
        ([0, 0, 0, 0, 1], [-0.320] * 4 + [1.282]),
        ([0.1, 0.1, 0.1, 0.2, 1.0], [-0.602] * 3 + [0.524, 1.282]),
        ([0, 0, 1, 1, 1], [-0.903] * 2 + [0.602] * 3),
        ([0.81, 0.81, 0.82, 0.82, 0.83], [-0.903] * 2 + [0.262] * 2 + [1.282]),
        ([1, 0, 0, 0], [1.150, -0.383, -0.383, -0.383]),
    ],
)
def test_golden_single_group(rewards, expected):
    groups = torch.zeros(len(rewards), dtype=torch.int64)
    got = g2rpo_advantages(torch.tensor(rewards, dtype=torch.float64), groups, per_task=False)
    assert_close(got, expected, atol=5e-4)


def test_golden_group_of_four_one_success_by_hand():
    # u = 1/8, 3/8, 5/8, 7/8 → z = −1.1503, −0.3186, 0.3186, 1.1503; the three fails share
    # the mean of the lowest three: (−1.1503 − 0.3186 + 0.3186)/3 = −0.3834.
    got = rank_to_normal(torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.zeros(4, dtype=torch.int64))[0]
    z = [_PHI_INV(u) for u in (1 / 8, 3 / 8, 5 / 8, 7 / 8)]
    assert_close(got, [z[3]] + [sum(z[:3]) / 3] * 3, atol=1e-6)


@pytest.mark.parametrize(
    ("successes", "fail", "success"),
    [(1, -0.219, 1.534), (2, -0.404, 1.211), (3, -0.582, 0.970), (4, -0.767, 0.767)],
)
def test_golden_binary_groups_of_eight(successes, fail, success):
    rewards = torch.tensor([1.0] * successes + [0.0] * (8 - successes))
    got = g2rpo_advantages(rewards, torch.zeros(8, dtype=torch.int64), per_task=False)
    assert_close(got, [success] * successes + [fail] * (8 - successes), atol=5e-4)


def test_map_is_idempotent_and_matches_quantiles_not_unit_variance():
    values = torch.tensor([3.0, -1.0, 0.5, 8.0, 2.0, 2.5, -4.0, 7.0], dtype=torch.float64)
    groups = torch.zeros(8, dtype=torch.int64)
    once = g2rpo_advantages(values, groups, per_task=False)
    assert_close(g2rpo_advantages(once, groups, per_task=False), once.tolist(), atol=1e-12)
    assert float((once**2).mean()) == pytest.approx(0.851, abs=1e-3)


def test_stage_two_reweights_by_difficulty_as_released():
    # Binary groups of 8 in one task: hard prompts (1 success) end with a net positive push,
    # easy prompts (7 successes) a net negative one (docs/method.md §2).
    # One group for every success count k = 1..7: net push per group 1.263, 0.837, 0.408, 0,
    # −0.408, −0.837, −1.263 (stage 1 alone gives exactly 0 for each).
    rewards = torch.cat([torch.tensor([1.0] * k + [0.0] * (8 - k)) for k in range(1, 8)])
    groups = torch.arange(7).repeat_interleave(8)
    tasks = torch.zeros(56, dtype=torch.int64)
    advantages = g2rpo_advantages(rewards, groups, tasks, stage2="reference")
    net = advantages.view(7, 8).sum(dim=1)
    assert_close(net, [1.263, 0.837, 0.408, 0.0, -0.408, -0.837, -1.263], atol=1e-3)
    stage1 = g2rpo_advantages(rewards, groups, per_task=False).view(7, 8).sum(dim=1)
    assert_close(stage1, [0.0] * 7, atol=1e-5)
    sound = g2rpo_advantages(rewards, groups, tasks).view(7, 8).sum(dim=1)
    assert_close(sound, [0.0] * 7, atol=1e-5)  # float32 rewards


# ---------------------------------------------------------------- errors, dtypes, empty
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_rewards_raise_with_count_and_place(bad):
    rewards = torch.tensor([0.0, bad, 1.0, bad])
    with pytest.raises(ValueError, match=r"2 non-finite .* index 1, 3"):
        g2rpo_advantages(rewards, torch.tensor([0, 0, 1, 1]))


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="group_ids"):
        g2rpo_advantages(torch.zeros(4), torch.zeros(3, dtype=torch.int64))


def test_empty_batch_and_half_precision():
    assert g2rpo_advantages(torch.zeros(0), torch.zeros(0, dtype=torch.int64)).numel() == 0
    rewards = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.bfloat16)
    got = g2rpo_advantages(rewards, torch.tensor([5, 5, 2, 2]))
    assert got.dtype == torch.bfloat16
    assert_close(got, reference_g2rpo([0, 1, 0, 0], [5, 5, 2, 2], [0] * 4), atol=1e-2)


# ---------------------------------------------------------------- multi-component form
def reference_multi(rewards, groups, tasks, weights, gate, stage2="rms"):
    rows = rewards.tolist()
    components = len(rows[0])
    stage1 = [0.0] * len(rows)
    tied_groups = set()
    for group in set(groups):
        members = [i for i, g in enumerate(groups) if g == group]
        per_component = [reference_map([rows[i][k] for i in members]) for k in range(components)]
        if reference_degenerate([rows[i][gate] for i in members]):
            tied_groups.add(group)
            continue
        for position, i in enumerate(members):
            stage1[i] = sum(weights[k] * per_component[k][position] for k in range(components))
    out = [0.0] * len(rows)
    for task in set(tasks):
        members = [i for i, t in enumerate(tasks) if t == task and groups[i] not in tied_groups]
        values = [stage1[i] for i in members]
        mapped = reference_map(values) if stage2 == "reference" else reference_rms(values)
        for i, value in zip(members, mapped, strict=True):
            out[i] = value
    return out


@settings(max_examples=100, deadline=None)
@given(
    batches(),
    st.integers(2, 3),
    st.randoms(use_true_random=False),
    st.sampled_from(["rms", "reference"]),
)
def test_multi_component_matches_loop_reference(batch, components, rng, stage2):
    rewards, groups, tasks = batch
    extra = torch.tensor(
        [
            [rng.choice([0.0, 0.25, 1.0]) for _ in range(components - 1)]
            for _ in range(rewards.numel())
        ],
        dtype=rewards.dtype,
    )
    matrix = torch.cat([rewards[:, None], extra], dim=1)
    weights = [0.8, 0.1, 0.1][:components]
    got = multi_component_g2rpo_advantages(matrix, groups, tasks, weights=weights, stage2=stage2)
    want = reference_multi(
        matrix.double(), groups.tolist(), tasks.tolist(), weights, gate=0, stage2=stage2
    )
    assert_close(got, want, atol=1e-4)


def test_length_alone_never_turns_an_all_wrong_group_into_a_signal():
    accuracy = torch.zeros(4)
    length_score = torch.tensor([1.0, 0.2, 0.5, 0.0])
    rewards = torch.stack([accuracy, length_score], dim=1)
    groups = torch.zeros(4, dtype=torch.int64)
    assert torch.equal(multi_component_g2rpo_advantages(rewards, groups), torch.zeros(4))
    ungated = multi_component_g2rpo_advantages(rewards, groups, gate_component=None)
    assert float(ungated.abs().max()) > 0.5


# ---------------------------------------------------------------- baselines and the registry
def test_baselines_golden_group_one_success_in_four():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0])
    groups = torch.zeros(4, dtype=torch.int64)
    # mean 0.25; unbiased std = sqrt(0.75/3) = 0.5.
    assert_close(grpo_advantages(rewards, groups), [1.5, -0.5, -0.5, -0.5], atol=1e-5)
    assert_close(dr_grpo_advantages(rewards, groups), [0.75, -0.25, -0.25, -0.25])
    assert_close(rloo_advantages(rewards, groups), [1.0, -1 / 3, -1 / 3, -1 / 3])


def test_baselines_give_zero_for_singleton_groups():
    rewards = torch.tensor([3.0, 1.0, 2.0])
    groups = torch.tensor([0, 1, 1])
    for name in ("grpo", "rloo", "dr_grpo"):
        assert float(compute_advantages(name, rewards, groups)[0]) == 0.0


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_registry_shares_one_signature(name):
    rewards = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    groups = torch.tensor([0, 0, 1, 1])
    tasks = torch.tensor([0, 0, 1, 1])
    advantages = compute_advantages(name, rewards, groups, tasks, weights=[0.9, 0.1])
    assert advantages.shape == (4,)
    assert bool(torch.isfinite(advantages).all())
    assert float(advantages[0]) > float(advantages[1])


def test_estimator_options_are_its_own_typed_keywords():
    assert estimator_options("grpo") == {"eps": (float, 1e-6)}
    g2rpo = estimator_options("g2rpo")
    assert g2rpo["stage2_min_groups"] == (int, 0)
    assert g2rpo["multi_component"] == (bool, True)
    assert "weights" not in g2rpo
    # An option another estimator takes is an error here, naming this one's options.
    with pytest.raises(ValueError, match="has no option 'tie_atol'; its options: eps"):
        compute_advantages("grpo", torch.zeros(2), torch.zeros(2, dtype=torch.int64), tie_atol=0.1)


def test_single_component_g2rpo_ranks_the_weighted_sum():
    rewards = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.0, 0.0]], dtype=torch.float64)
    groups = torch.zeros(4, dtype=torch.int64)
    weights = [0.8, 0.2]
    scalar = (rewards * torch.tensor(weights, dtype=torch.float64)).sum(dim=1)
    assert_close(
        g2rpo_advantages(rewards, groups, weights=weights, multi_component=False, per_task=False),
        g2rpo_advantages(scalar, groups, per_task=False),
    )


def test_unknown_estimator_lists_the_known_ones():
    with pytest.raises(
        ValueError, match="unknown advantage estimator 'ppo'; known: dr_grpo, g2rpo"
    ):
        compute_advantages("ppo", torch.zeros(2), torch.zeros(2, dtype=torch.int64))


def test_runs_on_the_input_device_and_large_groups():
    rewards = torch.rand(4096, dtype=torch.float64)
    groups = torch.zeros(4096, dtype=torch.int64)
    advantages = g2rpo_advantages(rewards, groups, stage2="reference")
    assert advantages.device == rewards.device
    # One group in one task: the sound stage 2 only rescales it to unit RMS.
    sound = g2rpo_advantages(rewards, groups)
    assert float(sound.square().mean()) == pytest.approx(1.0, abs=1e-9)
    assert torch.equal(sound.argsort(), advantages.argsort())
    top = float(advantages.max())
    assert top == pytest.approx(
        math.sqrt(2)
        * float(torch.special.erfinv(torch.tensor(2 * (4095.5 / 4096) - 1, dtype=torch.float64))),
        abs=1e-9,
    )


# ---------------------------------------------------------------- the sound stage 2 (rms)
def _stage1_and_live(rewards, groups, tasks):
    stage1 = g2rpo_advantages(rewards, groups, tasks, per_task=False).double()
    degenerate = torch.zeros_like(groups, dtype=torch.bool)
    for group in groups.unique():
        members = groups == group
        degenerate[members] = reference_degenerate(rewards[members].tolist())
    return stage1, ~degenerate


@settings(max_examples=200, deadline=None)
@given(batches())
def test_sound_stage_two_keeps_signs_group_sums_and_gives_each_task_unit_rms(batch):
    rewards, groups, tasks = batch
    advantages = g2rpo_advantages(rewards, groups, tasks).double()
    stage1, live = _stage1_and_live(rewards, groups, tasks)
    tol = 1e-4 if rewards.dtype == torch.float32 else 1e-9
    # every rollout keeps its stage-1 sign; zero stays exactly zero
    assert torch.equal(torch.sign(advantages), torch.sign(stage1))
    assert bool((advantages[stage1 == 0] == 0).all())
    for group in groups.unique():
        assert abs(float(advantages[groups == group].sum())) < 10 * tol
    for task in tasks.unique():
        members = (tasks == task) & live
        values = advantages[members]
        if values.numel() and bool((values != 0).any()):
            assert float(values.square().mean()) == pytest.approx(1.0, abs=10 * tol)
        # a positive factor per task: the task's advantages are its stage-1 values, rescaled
        ratio = advantages[members][stage1[members] != 0] / stage1[members][stage1[members] != 0]
        if ratio.numel():
            assert float(ratio.max() - ratio.min()) < 10 * tol


@settings(max_examples=100, deadline=None)
@given(batches(max_groups=1))
def test_sound_stage_two_with_one_group_per_task_is_stage_one_rescaled(batch):
    rewards, groups, tasks = batch
    advantages = g2rpo_advantages(rewards, groups, tasks).double()
    stage1 = g2rpo_advantages(rewards, groups, tasks, per_task=False).double()
    if bool((stage1 == 0).all()):
        assert bool((advantages == 0).all())
        return
    scale = math.sqrt(float(stage1.square().mean()))
    assert_close(advantages, (stage1 / scale).tolist(), atol=1e-4)


def _binary_pool(successes: list[int], size: int = 8):
    rewards = torch.cat([torch.tensor([1.0] * k + [0.0] * (size - k)) for k in successes])
    groups = torch.arange(len(successes)).repeat_interleave(size)
    return rewards.double(), groups, torch.zeros_like(groups)


def _sign_errors(rewards, advantages):
    wrong, right = rewards == 0, rewards == 1
    return float((advantages[wrong] > 0).double().mean()), float(
        (advantages[right] < 0).double().mean()
    )


def test_reference_stage_two_reverses_signs_on_imbalanced_pools_and_the_sound_rule_does_not():
    # docs/method.md §2: 32 groups with 1 success and 32 with 2 (a hard task). A wrong answer's
    # stage-1 value is −0.219 in a k = 1 group and −0.404 in a k = 2 group; the rank map centres
    # the 448 wrong answers' pool on its median, so the 224 from k = 1 groups end positive.
    rewards, groups, tasks = _binary_pool([1] * 32 + [2] * 32)
    reference = g2rpo_advantages(rewards, groups, tasks, stage2="reference")
    wrong_up, right_down = _sign_errors(rewards, reference)
    assert wrong_up == pytest.approx(224 / 416, abs=1e-9)  # 0.538 of the wrong answers
    assert right_down == 0.0
    assert float(reference.view(64, 8).sum(dim=1).abs().max()) > 1.0  # group sums broken
    sound = g2rpo_advantages(rewards, groups, tasks)
    assert _sign_errors(rewards, sound) == (0.0, 0.0)
    assert float(sound.view(64, 8).sum(dim=1).abs().max()) < 1e-9
    # An easy task: 40 groups with 7 successes, 24 with 6 → right answers pushed down.
    rewards, groups, tasks = _binary_pool([7] * 40 + [6] * 24)
    reference = g2rpo_advantages(rewards, groups, tasks, stage2="reference")
    assert _sign_errors(rewards, reference)[1] == pytest.approx(280 / 424, abs=1e-9)  # 0.660
    assert _sign_errors(rewards, g2rpo_advantages(rewards, groups, tasks)) == (0.0, 0.0)


def test_stage2_rule_is_checked():
    with pytest.raises(ValueError, match="stage2 must be one of rms, reference"):
        g2rpo_advantages(torch.tensor([0.0, 1.0]), torch.zeros(2, dtype=torch.int64), stage2="x")
