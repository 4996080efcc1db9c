"""Advantage estimators: G²RPO (docs/method.md §2) and the baselines it is compared with.

Every estimator is registered in :data:`ESTIMATORS` under the name a config uses and takes one call
signature, ``(rewards, group_ids, task_ids=None, *, weights=None, <its options>)``. Its options are
its own typed keyword parameters (:func:`estimator_options`), so a config is checked against them.
Rewards are ``[B]`` (one scalar per rollout) or ``[B, K]`` (K reward components weighted by
``weights``; see :func:`multi_component_g2rpo_advantages`).
All of them are vectorized: sorting plus segment sums, no Python loop over samples, groups or tasks.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable

import torch

from vlthinker.algorithms.segments import (
    dense_ids,
    segment_count,
    segment_starts,
    segment_sum,
    sort_within_segments,
)
from vlthinker.registry import Registry

_SQRT2 = math.sqrt(2.0)

ESTIMATORS: Registry[Callable[..., torch.Tensor]] = Registry("advantage estimator")


def check_finite(rewards: torch.Tensor, name: str = "rewards") -> None:
    """Raise a ``ValueError`` naming how many entries are NaN/inf and where."""
    bad = ~torch.isfinite(rewards)
    if bool(bad.any()):
        where = torch.nonzero(bad, as_tuple=False)
        shown = ", ".join(str(tuple(i.tolist()) if i.numel() > 1 else int(i)) for i in where[:10])
        more = "" if where.shape[0] <= 10 else f" and {where.shape[0] - 10} more"
        raise ValueError(
            f"{name} contain {where.shape[0]} non-finite value(s) (NaN or inf) of "
            f"{rewards.numel()}, at index {shown}{more}"
        )


def normal_quantiles(rank: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Midpoint normal quantile (docs/method.md §2): ``Φ⁻¹((k − 0.5)/n) = √2·erfinv(2u − 1)``.

    ``rank`` is 0-based. Computed in float64: near u → 1 the inverse error function amplifies
    float32 rounding.
    """
    level = (rank.to(torch.float64) + 0.5) / size.to(torch.float64)
    return _SQRT2 * torch.special.erfinv(2.0 * level - 1.0)


def _map_sorted(
    sorted_values: torch.Tensor, sorted_keys: torch.Tensor, row_size: int | None, tie_atol: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``map_to_normal`` on entries already ordered by (segment, value); see :func:`rank_to_normal`.

    ``row_size`` says every segment has that many entries (the trainer's layout), which replaces
    the per-entry rank arithmetic by one row of quantiles repeated.
    """
    n = sorted_values.numel()
    starts = segment_starts(sorted_keys)
    if row_size is not None:
        rows = n // row_size
        segment = torch.arange(rows, device=sorted_values.device).repeat_interleave(row_size)
        quantile = normal_quantiles(
            torch.arange(row_size, device=sorted_values.device), torch.tensor(row_size)
        ).repeat(rows)
        first_position = torch.arange(0, n, row_size, device=sorted_values.device)
    else:
        segment = torch.cumsum(starts, 0) - 1
        first_position = torch.nonzero(starts, as_tuple=True)[0]
        sizes = torch.diff(first_position, append=first_position.new_tensor([n]))
        first_and_size = torch.stack((first_position, sizes), dim=1)[segment]
        rank = torch.arange(n, device=sorted_values.device) - first_and_size[:, 0]
        quantile = normal_quantiles(rank, first_and_size[:, 1])

    # Chained tolerance: a new tie block starts where the sorted gap exceeds tie_atol.
    new_block = starts.clone()
    new_block[1:] |= (sorted_values[1:] - sorted_values[:-1]) > tie_atol
    block = torch.cumsum(new_block, 0) - 1
    num_blocks = int(block[-1]) + 1
    block_mean = segment_sum(quantile, block, num_blocks) / segment_count(block, num_blocks)

    # A segment is degenerate (size 1 or all tied) when its first and last entries share a block.
    last_position = torch.cat((first_position[1:], first_position.new_tensor([n]))) - 1
    degenerate = (block[first_position] == block[last_position])[segment]
    mapped = block_mean[block].masked_fill(degenerate, 0.0).to(sorted_values.dtype)
    return mapped, degenerate


def _sorted_map(
    values: torch.Tensor, segment_keys: torch.Tensor, tie_atol: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(order, mapped_sorted, degenerate_sorted)``: the map, left in (segment, value) order."""
    order, sorted_values, sorted_keys, row_size = sort_within_segments(values, segment_keys)
    mapped, degenerate = _map_sorted(sorted_values, sorted_keys, row_size, tie_atol)
    return order, mapped, degenerate


def rank_to_normal(
    values: torch.Tensor, segment_keys: torch.Tensor, *, tie_atol: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """``map_to_normal`` of docs/method.md §2, applied independently inside every segment.

    Within a segment of n values, the value of sorted rank k (1-based) is sent to the standard
    normal quantile ``Φ⁻¹((k − 0.5) / n)`` (:func:`normal_quantiles`). Sorted neighbours no
    further apart than ``tie_atol`` form a tie block (chained: a, a+tol, a+2·tol are one block) and
    every member receives the mean quantile of the ranks the block occupies. A segment of size 1,
    or whose values are all one tie block, maps to exactly 0.

    Returns ``(mapped, degenerate)``: the mapped values (dtype of ``values``) and a bool mask of the
    entries whose segment was degenerate (size 1 or all tied).
    """
    if values.numel() == 0:
        return values.clone(), torch.zeros_like(values, dtype=torch.bool)
    order, mapped_sorted, degenerate_sorted = _sorted_map(values, segment_keys, tie_atol)
    mapped = torch.empty_like(values)
    mapped[order] = mapped_sorted
    degenerate = torch.empty_like(degenerate_sorted)
    degenerate[order] = degenerate_sorted
    return mapped, degenerate


def _task_keys(task_ids: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if task_ids is None:
        return torch.zeros(like.shape[0], dtype=torch.int64, device=like.device)
    return task_ids.to(device=like.device)


def _check_shapes(rewards: torch.Tensor, group_ids: torch.Tensor, task_ids: torch.Tensor | None):
    if group_ids.shape != rewards.shape[:1]:
        raise ValueError(
            f"group_ids has shape {tuple(group_ids.shape)}; expected ({rewards.shape[0]},) "
            "to match the rewards"
        )
    if task_ids is not None and task_ids.shape != group_ids.shape:
        raise ValueError(
            f"task_ids has shape {tuple(task_ids.shape)}; expected {tuple(group_ids.shape)}"
        )
    if not rewards.is_floating_point():
        raise ValueError(f"rewards must be a floating tensor, got {rewards.dtype}")
    check_finite(rewards)


def live_groups_per_rollout(
    group_ids: torch.Tensor, task_ids: torch.Tensor, degenerate: torch.Tensor
) -> torch.Tensor:
    """For every rollout, how many live (non-degenerate) prompt groups its task has in the batch.

    The size of the pool stage 2 ranks over (docs/method.md §2, "Stage 2 needs a pool"); a
    degenerate rollout counts its task's live groups like any other.
    """
    task, num_tasks = dense_ids(task_ids)
    live = ~degenerate
    if not bool(live.any()):
        return torch.zeros_like(task)
    group, num_groups = dense_ids(group_ids)
    pairs = torch.unique(task[live] * num_groups + group[live])
    per_task = torch.bincount(pairs // num_groups, minlength=num_tasks)
    return per_task[task]


#: Stage-2 rules of G²RPO (docs/method.md §2): ``rms`` (ours, the default) rescales each task's
#: stage-1 values to unit RMS and keeps every sign; ``reference`` is the paper's rank map, which
#: re-centres each task on its median and can reverse signs.
STAGE2_RULES = ("rms", "reference")


def _check_stage2_rule(rule: str) -> None:
    if rule not in STAGE2_RULES:
        raise ValueError(f"stage2 must be one of {', '.join(STAGE2_RULES)}; got {rule!r}")


def task_rms_scale(
    stage1: torch.Tensor, degenerate: torch.Tensor, task_ids: torch.Tensor, *, count_tied: bool
) -> torch.Tensor:
    """G²RPO stage 2, sound form (docs/method.md §2, "Stage 2 can reverse signs"):
    ``A_i = a_i / sqrt(mean_{j ∈ live(t)} a_j²)`` for every rollout i of task t.

    Each task's stage-1 values are divided by their root mean square over the task's live
    rollouts (those of non-degenerate groups; with ``count_tied`` the zeros of all-tied groups
    count in the mean too, as the reference ranks them). A positive factor per task: every sign is
    kept (zero stays zero), every prompt group still sums to zero, every task ends with unit RMS
    per live rollout whatever its reward shape or pass rate, and a task with one live group equals
    stage 1 up to that factor. A task with no non-zero value keeps its zeros.
    """
    keys, num_tasks = dense_ids(task_ids)
    counted = torch.ones_like(degenerate) if count_tied else ~degenerate
    weight = counted.to(stage1.dtype)
    squares = segment_sum(stage1.square() * weight, keys, num_tasks)
    counts = segment_sum(weight, keys, num_tasks)
    mean_square = squares / counts.clamp(min=1)
    scale = torch.where(mean_square > 0, mean_square.rsqrt(), torch.zeros_like(mean_square))
    return (stage1 * scale[keys]).masked_fill(degenerate, 0.0)


def stage2_ran(
    group_ids: torch.Tensor,
    task_ids: torch.Tensor,
    degenerate: torch.Tensor,
    *,
    stage2: str = "rms",
    min_groups: int = 0,
) -> torch.Tensor:
    """For every rollout, whether stage 2 acted on its task in this batch (logged per task as
    ``stage2_active``): the task has a live group and, for the ``reference`` rank map, at least
    ``min_groups`` of them (:func:`task_stage`'s small-pool guard; the ``rms`` rule is sound at
    any pool size and needs no guard)."""
    _check_stage2_rule(stage2)
    live = live_groups_per_rollout(group_ids, task_ids, degenerate)
    floor = max(min_groups, 1) if stage2 == "reference" else 1
    return live >= floor


def task_stage(
    stage1: torch.Tensor,
    degenerate: torch.Tensor,
    task_ids: torch.Tensor | None,
    *,
    tie_atol: float,
    keep_tied_groups: bool,
    group_ids: torch.Tensor | None = None,
    min_groups: int = 0,
    stage2: str = "rms",
) -> torch.Tensor:
    """G²RPO stage 2 (docs/method.md §2) across each task, by rule ``stage2``.

    ``rms`` (the default): :func:`task_rms_scale`, a per-task rescaling to unit RMS that keeps
    every stage-1 sign and every group's zero sum.

    ``reference`` (the paper's rule): ``map_to_normal`` of the stage-1 values across each task.
    A rank map centres the pool on its median, so on an imbalanced pool wrong answers can end
    positive (hard tasks) and right answers negative (easy tasks). Rollouts of degenerate groups
    (size 1 or all tied) keep exactly 0 and stay out of the task's ranking, unless
    ``keep_tied_groups`` reproduces the reference code (their zeros are ranked too).
    Small-pool guard (docs/method.md §2, "Stage 2 needs a pool"): a task with fewer than
    ``min_groups`` live groups in the batch keeps its stage-1 values. Ranked over one or two
    groups, the rank map would stretch whatever separates a group's wrong answers (a length or
    format score) into full-size advantages, positive ones included. At ``min_groups`` live groups
    or more (and always with ``min_groups=0``) a task is ranked exactly as the paper does. The
    ``rms`` rule ignores ``min_groups``: it cannot stretch a pool's differences.
    """
    _check_stage2_rule(stage2)
    keys = _task_keys(task_ids, stage1)
    if stage2 == "rms":
        return task_rms_scale(stage1, degenerate, keys, count_tied=keep_tied_groups)
    if keep_tied_groups:
        mapped = rank_to_normal(stage1, keys, tie_atol=tie_atol)[0]
    else:
        active = torch.nonzero(~degenerate, as_tuple=True)[0]
        mapped = torch.zeros_like(stage1)
        if active.numel():
            order, values, _ = _sorted_map(stage1[active], keys[active], tie_atol)
            mapped[active[order]] = values
    if min_groups <= 0:
        return mapped
    if group_ids is None:
        raise ValueError("task_stage needs group_ids to apply min_groups")
    small = live_groups_per_rollout(group_ids.to(keys.device), keys, degenerate) < min_groups
    return torch.where(small, stage1.masked_fill(degenerate, 0.0), mapped)


@ESTIMATORS.register("g2rpo")
def g2rpo_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    task_ids: torch.Tensor | None = None,
    *,
    weights: torch.Tensor | list[float] | None = None,
    tie_atol: float = 1e-6,
    per_task: bool = True,
    keep_tied_groups: bool = False,
    stage2_min_groups: int = 0,
    multi_component: bool = True,
    gate_component: int | None = 0,
    stage2: typing.Literal["rms", "reference"] = "rms",
) -> torch.Tensor:
    """G²RPO advantages (docs/method.md §2): rank → N(0, 1) within each prompt group, then per task.

    Stage 1 maps every group's rewards onto standard-normal quantiles (:func:`rank_to_normal`).
    Stage 2 equalises the tasks (:func:`task_stage`): with ``stage2="rms"`` (the default) each
    task's stage-1 values of its non-degenerate rollouts are rescaled to unit RMS, every sign and
    group sum kept; ``stage2="reference"`` is the paper's rule, a second rank map onto N(0, 1)
    per task, which can reverse signs on imbalanced pools (docs/method.md §2).
    ``per_task=False`` stops after stage 1 (the ablation); ``task_ids=None`` treats the batch as
    one task. ``keep_tied_groups=True`` reproduces the reference code's stage 2, where the zeros of
    all-tied groups take part as well; ``stage2_min_groups`` is the reference rule's small-pool
    guard (0, the default here, is the paper's stage 2 at any pool size). ``[B, K]`` rewards
    dispatch to :func:`multi_component_g2rpo_advantages` (``weights``, ``gate_component``
    apply there); with ``multi_component=False`` they are summed with ``weights`` first and ranked
    as one scalar per rollout.
    """
    if rewards.dim() == 2 and not multi_component:
        rewards = _scalar_rewards(rewards, weights)
    if rewards.dim() == 2:
        return multi_component_g2rpo_advantages(
            rewards,
            group_ids,
            task_ids,
            weights=weights,
            gate_component=gate_component,
            tie_atol=tie_atol,
            per_task=per_task,
            keep_tied_groups=keep_tied_groups,
            stage2_min_groups=stage2_min_groups,
            stage2=stage2,
        )
    _check_shapes(rewards, group_ids, task_ids)
    if rewards.numel() == 0:
        return rewards.clone()
    group_ids = group_ids.to(rewards.device)
    order, stage1, degenerate = _sorted_map(rewards, group_ids, tie_atol)
    if per_task:
        # Stage 2 runs on the stage-1 values as they come out of the sort: no scatter between.
        keys = _task_keys(task_ids, rewards)[order]
        stage1 = task_stage(
            stage1,
            degenerate,
            keys,
            tie_atol=tie_atol,
            keep_tied_groups=keep_tied_groups,
            group_ids=group_ids[order],
            min_groups=stage2_min_groups,
            stage2=stage2,
        )
    advantages = torch.empty_like(rewards)
    advantages[order] = stage1
    return advantages


def multi_component_g2rpo_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    task_ids: torch.Tensor | None = None,
    *,
    weights: torch.Tensor | list[float] | None = None,
    gate_component: int | None = 0,
    tie_atol: float = 1e-6,
    per_task: bool = True,
    keep_tied_groups: bool = False,
    stage2_min_groups: int = 0,
    stage2: typing.Literal["rms", "reference"] = "rms",
) -> torch.Tensor:
    """Multi-component G²RPO (docs/method.md §2, "Multi-component form"; GDPO-style).

    Each of the K reward components (accuracy, format, length score …) is mapped to N(0, 1)
    inside the group on its own, the mapped components are summed with ``weights`` (default all
    1), then stage 2 runs per task. A shaping term therefore never stretches to a full ±1 advantage
    by itself. With ``gate_component`` set (default 0, the task reward), a group whose gate
    component is all tied gets exactly 0 and stays out of stage 2 — the zero-variance decision is
    made on the raw task metric, so a length or format difference alone never turns an all-wrong
    (or all-right) group into a learning signal (docs/method.md §2 notes, §4).
    """
    if rewards.dim() != 2:
        raise ValueError(f"multi-component rewards must be [B, K], got {tuple(rewards.shape)}")
    _check_shapes(rewards, group_ids, task_ids)
    batch, components = rewards.shape
    weight = _component_weights(weights, components, rewards)
    group, _ = dense_ids(group_ids.to(rewards.device))
    component = torch.arange(components, device=rewards.device)
    keys = (group[:, None] * components + component[None, :]).reshape(-1)
    mapped, degenerate = rank_to_normal(rewards.reshape(-1), keys, tie_atol=tie_atol)
    mapped = mapped.view(batch, components)
    degenerate = degenerate.view(batch, components)
    stage1 = (mapped * weight).sum(dim=1)
    if gate_component is None:
        tied = degenerate.all(dim=1)
    else:
        tied = degenerate[:, gate_component]
        stage1 = stage1.masked_fill(tied, 0.0)
    if not per_task:
        return stage1
    return task_stage(
        stage1,
        tied,
        task_ids,
        tie_atol=tie_atol,
        keep_tied_groups=keep_tied_groups,
        group_ids=group_ids,
        min_groups=stage2_min_groups,
        stage2=stage2,
    )


def _component_weights(
    weights: torch.Tensor | list[float] | None, components: int, like: torch.Tensor
) -> torch.Tensor:
    if weights is None:
        return torch.ones(components, dtype=like.dtype, device=like.device)
    weight = torch.as_tensor(weights, dtype=like.dtype, device=like.device)
    if weight.shape != (components,):
        raise ValueError(f"weights has shape {tuple(weight.shape)}; expected ({components},)")
    return weight


def _scalar_rewards(
    rewards: torch.Tensor, weights: torch.Tensor | list[float] | None
) -> torch.Tensor:
    """Linear baselines see one scalar per rollout: the weighted sum of the components."""
    if rewards.dim() == 1:
        return rewards
    return (rewards * _component_weights(weights, rewards.shape[1], rewards)).sum(dim=1)


def _group_stats(
    rewards: torch.Tensor, group_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-rollout group size, group sum and group mean (broadcast back to ``[B]``)."""
    group, num_groups = dense_ids(group_ids.to(rewards.device))
    size = segment_count(group, num_groups).to(rewards.dtype)
    total = segment_sum(rewards, group, num_groups)
    return size[group], total[group], (total / size)[group]


@ESTIMATORS.register("grpo")
def grpo_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    task_ids: torch.Tensor | None = None,
    *,
    weights: torch.Tensor | list[float] | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """GRPO (docs/method.md §2, first line): ``A_i = (r_i − mean_g) / (std_g + ε)``, unbiased std.

    A group of one rollout has no spread and gets 0.
    """
    rewards = _scalar_rewards(rewards, weights)
    _check_shapes(rewards, group_ids, task_ids)
    size, _, mean = _group_stats(rewards, group_ids)
    group, num_groups = dense_ids(group_ids.to(rewards.device))
    squared = segment_sum((rewards - mean) ** 2, group, num_groups)[group]
    std = torch.sqrt(squared / (size - 1).clamp(min=1))
    return torch.where(size > 1, (rewards - mean) / (std + eps), torch.zeros_like(rewards))


@ESTIMATORS.register("dr_grpo")
def dr_grpo_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    task_ids: torch.Tensor | None = None,
    *,
    weights: torch.Tensor | list[float] | None = None,
) -> torch.Tensor:
    """Dr. GRPO: the group mean is subtracted, no std division: ``A_i = r_i − mean_g``."""
    rewards = _scalar_rewards(rewards, weights)
    _check_shapes(rewards, group_ids, task_ids)
    return rewards - _group_stats(rewards, group_ids)[2]


@ESTIMATORS.register("rloo")
def rloo_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    task_ids: torch.Tensor | None = None,
    *,
    weights: torch.Tensor | list[float] | None = None,
) -> torch.Tensor:
    """RLOO: leave-one-out baseline, ``A_i = r_i − mean_{j≠i} r_j = (n·r_i − Σ_g r) / (n − 1)``."""
    rewards = _scalar_rewards(rewards, weights)
    _check_shapes(rewards, group_ids, task_ids)
    size, total, _ = _group_stats(rewards, group_ids)
    loo = (size * rewards - total) / (size - 1).clamp(min=1)
    return torch.where(size > 1, loo, torch.zeros_like(rewards))


def get_estimator(name: str) -> Callable[..., torch.Tensor]:
    """The estimator registered as ``name`` (:class:`~vlthinker.registry.UnknownNameError` lists
    the known ones)."""
    return ESTIMATORS.get(name)


def estimator_options(name: str) -> dict[str, tuple[typing.Any, typing.Any]]:
    """The options of estimator ``name``: ``{option: (type, default)}``, read from its keyword-only
    parameters (``weights`` excepted: the trainer passes the reward weights to every estimator)."""
    function = get_estimator(name)
    hints = typing.get_type_hints(function)
    return {
        parameter.name: (hints.get(parameter.name, typing.Any), parameter.default)
        for parameter in inspect.signature(function).parameters.values()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.name != "weights"
    }


def compute_advantages(
    name: str,
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    task_ids: torch.Tensor | None = None,
    *,
    weights: torch.Tensor | list[float] | None = None,
    **options: object,
) -> torch.Tensor:
    """Advantages from the estimator named ``name`` with its own ``options``; an option the
    estimator does not take is an error naming the ones it does."""
    known = estimator_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"advantage estimator {name!r} has no option {unknown[0]!r}; "
            f"its options: {', '.join(sorted(known)) or 'none'}"
        )
    return get_estimator(name)(rewards, group_ids, task_ids, weights=weights, **options)
