"""Gradient equity: how much of the policy gradient each task receives.

The policy loss is a sum over tokens, ``L = Σ_i w_i ℓ_i / Z`` (``ℓ_i`` the clipped per-token loss,
``w_i`` the token's mask weight, ``Z`` the loss's normaliser). Split by the task of each token's
rollout, ``L = Σ_t L_t`` with ``L_t = Σ_{i ∈ t} w_i ℓ_i / Z``, so the per-task gradients
``g_t = ∇L_t`` add up to the full gradient ``∇L``. Their norms say which tasks the update serves:
GRPO's per-group normalisation hands tasks with small reward spreads as large advantages as any
other, G²RPO's rank transport is meant to even them out (the paper's "inter-task gradient
equity").

Those norms mix three things: the task's token count, its gradient per token and its advantages.
``advantage_gradient_ratio`` isolates the last: the same micro-batch's per-task norm with every
advantage replaced by its sign divides the first two out.

Each task costs two extra backward passes through the retained graph, so the trainer measures the
last micro-batch of each optimiser step only; off by default (``logging.task_gradient_norms``),
since even that is costly for large models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from vlthinker.algorithms.loss import clipped_policy_loss


def per_task_losses(
    per_token_loss: torch.Tensor,
    mask: torch.Tensor,
    task_index: torch.Tensor,
    num_tasks: int,
    normalizer: float | torch.Tensor,
) -> torch.Tensor:
    """Each task's share of the loss, ``L_t = Σ_{rows of task t} Σ_tokens mask·ℓ / Z`` (``[T]``);
    the shares sum to the full loss ``Σ mask·ℓ / Z``."""
    rows = (per_token_loss * mask.to(per_token_loss.dtype)).sum(dim=1)
    totals = torch.zeros(num_tasks, dtype=rows.dtype, device=rows.device)
    return totals.index_add(0, task_index.to(rows.device), rows) / normalizer


def per_task_gradients(
    per_token_loss: torch.Tensor,
    mask: torch.Tensor,
    task_index: torch.Tensor,
    params: Sequence[torch.Tensor],
    normalizer: float | torch.Tensor,
    num_tasks: int | None = None,
) -> dict[int, list[torch.Tensor]]:
    """The gradient of each present task's loss share :func:`per_task_losses` with respect to
    ``params``, one ``torch.autograd.grad`` per task with the graph retained (the training
    backward still needs it). Keys are the task indices present in ``task_index``; a parameter
    the task's loss does not reach gets a zero gradient."""
    num_tasks = int(task_index.max()) + 1 if num_tasks is None else num_tasks
    losses = per_task_losses(per_token_loss, mask, task_index, num_tasks, normalizer)
    present = sorted(set(task_index.tolist()))
    params = list(params)
    gradients: dict[int, list[torch.Tensor]] = {}
    for task in present:
        grads = torch.autograd.grad(losses[task], params, retain_graph=True, allow_unused=True)
        gradients[task] = [
            torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)
        ]
    return gradients


def gradient_norm(gradient: Sequence[torch.Tensor]) -> float:
    """The Euclidean norm of a gradient given as one tensor per parameter, ``√Σ ‖g_p‖²``."""
    return math.sqrt(sum(float(g.detach().double().pow(2).sum()) for g in gradient))


def per_task_gradient_norms(
    per_token_loss: torch.Tensor,
    mask: torch.Tensor,
    task_index: torch.Tensor,
    params: Sequence[torch.Tensor],
    normalizer: float | torch.Tensor,
    num_tasks: int | None = None,
) -> dict[int, float]:
    """Per present task, the norm ``‖∇L_t‖`` of its share of the policy gradient
    (:func:`per_task_gradients`)."""
    gradients = per_task_gradients(per_token_loss, mask, task_index, params, normalizer, num_tasks)
    return {task: gradient_norm(gradient) for task, gradient in gradients.items()}


def gradient_shares(norms: dict[int, float]) -> dict[int, float]:
    """Each task's share of the total per-task gradient norm, ``‖g_t‖ / Σ_s ‖g_s‖`` (they sum to
    1; all zero when every norm is zero). Norms rather than the full gradient's norm: per-task
    gradients may cancel, and a share of the norms stays in [0, 1]."""
    total = sum(norms.values())
    return {task: (norm / total if total > 0 else 0.0) for task, norm in norms.items()}


def norm_ratio(norms: Sequence[float]) -> float:
    """The max/min ratio of per-task gradient norms: 1 is perfect equity; infinite when a task
    got no gradient at all while another did; NaN for no tasks or no gradient anywhere."""
    values = [n for n in norms if n == n]
    if not values or max(values) == 0:
        return math.nan
    smallest = min(values)
    return max(values) / smallest if smallest > 0 else math.inf


def trl_loss_terms(
    per_token_loss: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str,
    *,
    num_items_in_batch: torch.Tensor | float | None,
    num_processes: int,
    accumulation: int,
    steps_per_generation: int,
) -> tuple[torch.Tensor, torch.Tensor | float]:
    """Per-token terms and normaliser ``(ℓ', Z)`` with ``Σ mask·ℓ' / Z`` equal to TRL's training
    loss for the two aggregations vlthinker uses: ``"dapo"`` (token mean over the optimiser step:
    ``Z = num_items / processes × accumulation / steps_per_generation``) and ``"grpo"`` (mean over
    sequences of each sequence's token mean, divided by the accumulation steps: ``ℓ' = ℓ / |o|``,
    ``Z = B × accumulation``)."""
    if loss_type == "dapo":
        if num_items_in_batch is None:
            raise ValueError("the dapo loss needs num_items_in_batch")
        items = torch.as_tensor(num_items_in_batch, dtype=per_token_loss.dtype)
        normalizer = items.clamp(min=1.0) / num_processes * accumulation / steps_per_generation
        return per_token_loss, normalizer.to(per_token_loss.device)
    if loss_type == "grpo":
        lengths = mask.to(per_token_loss.dtype).sum(dim=1, keepdim=True).clamp(min=1.0)
        return per_token_loss / lengths, float(per_token_loss.size(0) * accumulation)
    raise ValueError(f"per-task gradient norms support loss types dapo and grpo, not {loss_type}")


def task_gradient_metrics(
    trainer: Any,
    model: torch.nn.Module,
    logps: torch.Tensor,
    mask: torch.Tensor,
    task_index: torch.Tensor,
    inputs: dict[str, Any],
) -> dict[str, float]:
    """``<task>/grad_norm`` and ``<task>/grad_share`` of one training micro-batch of a
    :class:`~vlthinker.train.trainer.G2RPOTrainer`: TRL's policy loss recomputed from the
    micro-batch's log-probabilities (:func:`~vlthinker.algorithms.loss.clipped_policy_loss` with
    the trainer's ``epsilon_low``, ``epsilon_high`` and ``delta``; :func:`trl_loss_terms`), split
    by task (:func:`per_task_gradient_norms`). Reads the trainer's clip settings and loss
    normalisation; the KL and entropy terms are not part of the policy gradient measured here."""
    args = trainer.args
    names = args.task_names
    params = [p for p in model.parameters() if p.requires_grad]

    def norms_with(advantages: torch.Tensor) -> dict[int, float]:
        old = inputs.get("old_per_token_logps")
        per_token = clipped_policy_loss(
            logps,
            logps.detach() if old is None else old,
            advantages,
            trainer.epsilon_low,
            trainer.epsilon_high,
            args.delta,
        )
        if getattr(trainer, "use_vllm", False) and getattr(
            trainer, "vllm_importance_sampling_correction", False
        ):
            per_token = per_token * inputs["importance_sampling_ratio"]
        per_token, normalizer = trl_loss_terms(
            per_token,
            mask,
            trainer.loss_type,
            num_items_in_batch=inputs.get("num_items_in_batch"),
            num_processes=trainer.accelerator.num_processes,
            accumulation=trainer.current_gradient_accumulation_steps,
            steps_per_generation=args.steps_per_generation,
        )
        return per_task_gradient_norms(per_token, mask, task_index, params, normalizer, len(names))

    norms = norms_with(inputs["advantages"])
    # The same micro-batch with every advantage replaced by its sign: what the tokens alone give.
    sign_norms = norms_with(torch.sign(inputs["advantages"]))
    metrics: dict[str, float] = {}
    for task, share in gradient_shares(norms).items():
        metrics[f"{names[task]}/grad_norm"] = norms[task]
        metrics[f"{names[task]}/grad_share"] = share
        ratio = advantage_gradient_ratio(norms[task], sign_norms[task])
        if ratio == ratio:
            metrics[f"{names[task]}/advantage_gradient_ratio"] = ratio
    return metrics


def advantage_gradient_ratio(norm: float, sign_norm: float) -> float:
    """``‖g_t(A)‖ / ‖g_t(sign A)‖`` on one micro-batch: the advantage's own contribution to a
    task's gradient, with its token counts and per-token gradients divided out (the per-task
    norm mixes all three; tasks differ in tokens by 10× and in gradient per token by more). NaN
    when the sign-only gradient is zero."""
    return norm / sign_norm if sign_norm > 0 else math.nan
