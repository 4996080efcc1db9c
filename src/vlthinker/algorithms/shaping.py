"""Task-level shaping terms: response length and the entropy band (docs/method.md §4, §5).

Both read per-task settings as tensors indexed by a dense task id (``0..T-1``), so one call covers
every task of the batch without a loop over tasks.
"""

from __future__ import annotations

import torch

from vlthinker.algorithms.segments import segment_count, segment_sum


def trapezoid_length_score(
    lengths: torch.Tensor, task_ids: torch.Tensor, envelopes: torch.Tensor
) -> torch.Tensor:
    """Trapezoid length score s(L) of docs/method.md §4 (the paper's Eq. 9), per task.

    ``envelopes[t] = (a, b, c, d)`` with ``a ≤ b ≤ c ≤ d`` (response tokens):
    0 below ``a`` and above ``d``; ``(L − a)/(b − a)`` on ``[a, b)``; 1 on ``[b, c]``;
    ``(d − L)/(d − c)`` on ``(c, d]``. A degenerate ramp (``a = b`` or ``c = d``) is a step: the
    division never happens because the ramp's interval is empty. Result in ``[0, 1]``, dtype of
    ``envelopes``; used as its own reward component (0 = as bad as length gets, 1 = ideal range).
    """
    envelope = envelopes[task_ids]
    a, b, c, d = envelope.unbind(dim=-1)
    length = lengths.to(envelope.dtype)
    one = torch.ones_like(length)
    # clamp(min=tiny) only guards the unused branch of torch.where from producing inf/NaN.
    tiny = torch.finfo(envelope.dtype).tiny
    rising = (length - a) / (b - a).clamp(min=tiny)
    falling = (d - length) / (d - c).clamp(min=tiny)
    score = torch.where(length < b, rising, one)
    score = torch.where(length > c, falling, score)
    score = torch.where((length < a) | (length > d), torch.zeros_like(length), score)
    return score.clamp(0.0, 1.0)


def length_envelope(
    low: float, high: float, slack: float = 0.5
) -> tuple[float, float, float, float]:
    """Trapezoid points for a task's ``[L_min, L_max]`` range (docs/method.md §4).

    The plateau is the range itself; the ramps reach 0 at ``L_min·(1 − slack)`` and
    ``L_max·(1 + slack)`` so a response slightly outside its range is penalised slightly.
    """
    if not 0 <= low <= high:
        raise ValueError(f"length range needs 0 ≤ L_min ≤ L_max, got [{low}, {high}]")
    if slack < 0:
        raise ValueError(f"length slack must be ≥ 0, got {slack}")
    return (low * (1.0 - min(slack, 1.0)), float(low), float(high), high * (1.0 + slack))


def per_task_entropy(
    token_entropies: torch.Tensor, mask: torch.Tensor, task_ids: torch.Tensor, num_tasks: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task mean entropy ``H_t`` over the task's response tokens (docs/method.md §5).

    ``token_entropies`` and ``mask`` are ``[B, T]``; the reference uses the sampled tokens'
    negative log-probabilities as the per-token estimate, which may be passed instead.
    Returns ``(H [num_tasks], present [num_tasks] bool)``; an absent task has H = 0.
    """
    weight = mask.to(token_entropies.dtype)
    per_sequence_sum = (token_entropies * weight).sum(dim=1)
    per_sequence_tokens = weight.sum(dim=1)
    total = segment_sum(per_sequence_sum, task_ids, num_tasks)
    tokens = segment_sum(per_sequence_tokens, task_ids, num_tasks)
    present = (segment_count(task_ids, num_tasks) > 0) & (tokens > 0)
    return total / tokens.clamp(min=1), present


def band_violation(entropy: torch.Tensor, bands: torch.Tensor) -> torch.Tensor:
    """The hinge of docs/method.md §5 per task: ``relu(H_t − H_high) + relu(H_low − H_t)``."""
    low, high = bands.to(entropy.dtype).unbind(dim=-1)
    return torch.relu(entropy - high) + torch.relu(low - entropy)


def entropy_band_penalty(
    token_entropies: torch.Tensor,
    mask: torch.Tensor,
    task_ids: torch.Tensor,
    bands: torch.Tensor,
    coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Entropy band hinge (docs/method.md §5):
    ``β_H · Σ_t (relu(H_t − H_high) + relu(H_low − H_t))``.

    ``bands[t] = (H_low, H_high)``. Zero (and zero gradient) for a task inside its band; outside,
    the gradient pulls that task's entropy back toward the band. Only tasks present in the batch
    count. Returns the penalty (a scalar to add to the loss) and per-task ``entropy`` /
    ``violation`` tensors for logging.
    """
    num_tasks = bands.shape[0]
    entropy, present = per_task_entropy(token_entropies, mask, task_ids, num_tasks)
    violation = band_violation(entropy, bands) * present.to(entropy.dtype)
    penalty = coef * violation.sum()
    return penalty, {
        "entropy": entropy.detach(),
        "violation": violation.detach(),
        "present": present,
    }


def entropy_band_sides(
    entropy_sums: torch.Tensor, token_counts: torch.Tensor, bands: torch.Tensor
) -> torch.Tensor:
    """Which side of its band each task's entropy over an optimiser step lies on (docs/method.md
    §5): +1 above ``H_high``, −1 below ``H_low``, 0 inside or absent.

    ``entropy_sums[t]`` and ``token_counts[t]`` are the task's summed per-token estimate and its
    response-token count over the whole mini-batch (every micro-batch, every process), so
    ``H_t = entropy_sums[t] / token_counts[t]`` is the task's entropy, not one micro-batch's.
    """
    entropy = entropy_sums / token_counts.clamp(min=1)
    low, high = bands.to(entropy.dtype).unbind(dim=-1)
    side = (entropy > high).to(torch.int64) - (entropy < low).to(torch.int64)
    return torch.where(token_counts > 0, side, torch.zeros_like(side))


def entropy_band_step_penalty(
    token_entropies: torch.Tensor,
    mask: torch.Tensor,
    task_ids: torch.Tensor,
    sides: torch.Tensor,
    step_tokens: torch.Tensor,
    bands: torch.Tensor,
    coef: float,
) -> torch.Tensor:
    """One micro-batch's share of the entropy band hinge of its optimiser step (docs/method.md §5):
    ``β · Σ_t s_t · Σ_{i ∈ micro, t} (h_i − bound_t) / N_t``.

    ``s_t`` is :func:`entropy_band_sides` of the step, ``bound_t`` the band edge on that side and
    ``N_t`` (``step_tokens``) the task's response tokens in the whole step. Summed over the step's
    micro-batches this is ``β · Σ_t (relu(H_t − H_high) + relu(H_low − H_t))`` of the step's own
    task entropies ``H_t``, value and gradient, however the step is split: the hinge acts on each
    task's entropy, not on one micro-batch's handful of its rollouts (a mean of hinges would
    overstate it). ``token_entropies`` and ``mask`` are ``[B, T]``, ``task_ids`` ``[B]``.
    """
    weight = mask.to(token_entropies.dtype)
    low, high = bands.to(token_entropies.dtype).unbind(dim=-1)
    side = sides.to(token_entropies.dtype)
    bound = torch.where(side > 0, high, low)
    per_task = segment_sum(
        ((token_entropies - bound[task_ids][:, None]) * weight).sum(dim=1), task_ids, len(sides)
    )
    return coef * (side * per_task / step_tokens.to(per_task.dtype).clamp(min=1)).sum()
