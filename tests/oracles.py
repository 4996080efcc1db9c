"""Test oracles: the method's objective written out plainly, independent of TRL and of vlthinker.

Training runs TRL's loss. These functions state what that loss must equal (docs/method.md §3,
§5) in the method's own terms, so that ``test_trl_contract.py`` can check TRL against them and
``test_shaping_and_loss.py`` can pin them to hand-worked values. None of this is package code.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Literal

import torch

Aggregation = Literal["token", "seq"]


def masked_mean(values: torch.Tensor, mask: torch.Tensor, aggregation: Aggregation) -> torch.Tensor:
    """Loss aggregation of docs/method.md §3 over the tokens where ``mask`` is 1.

    ``token``: one mean over every response token of the batch (the released recipe's choice);
    ``seq``: each sequence's token mean, then the mean over sequences (the paper's formula).
    """
    weight = mask.to(values.dtype)
    if aggregation == "token":
        return (values * weight).sum() / weight.sum().clamp(min=1)
    if aggregation == "seq":
        per_sequence = (values * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1)
        return per_sequence.mean()
    raise ValueError(f"loss aggregation must be 'token' or 'seq', got {aggregation!r}")


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """k3 estimate of KL(π‖π_ref) per token: ``exp(r) − r − 1`` with ``r = log π_ref − log π``."""
    log_ratio = ref_logps - logps
    return torch.exp(log_ratio) - log_ratio - 1.0


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy ``−Σ p log p`` of the next-token distribution at every position of ``logits``."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def method_policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.3,
    dual_clip: float | None = 3.0,
    aggregation: Aggregation = "token",
    ref_logps: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The policy objective of docs/method.md §3, in the form the method states it.

    Per token, with ``ρ = exp(log π − log π_old)``:
    ``ℓ = max(−ρ·A, −clip(ρ, 1 − ε_low, 1 + ε_high)·A)``; with dual clip ``c`` a token with
    ``A < 0`` has its loss capped at ``−c·A``. Aggregated by
    :func:`masked_mean`, plus ``kl_coef`` × the k3 KL to ``ref_logps`` when given. ``advantages``
    is ``[B]`` or ``[B, T]``. Returns the loss and, over response tokens, the shares of tokens
    clipped low / high / by the dual clip and the k3 KL to the old policy.
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    advantages = advantages.to(logps.dtype)
    ratio = torch.exp(logps - old_logps)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    token_loss = torch.maximum(unclipped, clipped)
    dual_clipped = torch.zeros_like(token_loss, dtype=torch.bool)
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
        cap = -advantages * dual_clip
        dual_clipped = (advantages < 0) & (token_loss > cap)
        token_loss = torch.where(advantages < 0, torch.minimum(token_loss, cap), token_loss)
    loss = masked_mean(token_loss, mask, aggregation)

    metrics: dict[str, float] = {}
    if ref_logps is not None and kl_coef != 0.0:
        kl = masked_mean(k3_kl(logps, ref_logps), mask, aggregation)
        loss = loss + kl_coef * kl
        metrics["kl_ref"] = float(kl.detach())

    with torch.no_grad():
        token_mask = mask.bool()
        count = token_mask.sum().clamp(min=1)
        expanded = advantages.expand_as(ratio)
        low = (ratio < 1.0 - clip_low) & (expanded < 0) & token_mask
        high = (ratio > 1.0 + clip_high) & (expanded > 0) & token_mask
        metrics["clip_frac_low"] = float(low.sum() / count)
        metrics["clip_frac_high"] = float(high.sum() / count)
        metrics["clip_frac"] = metrics["clip_frac_low"] + metrics["clip_frac_high"]
        metrics["dual_clip_frac"] = float((dual_clipped & token_mask).sum() / count)
        metrics["approx_kl"] = float(masked_mean(k3_kl(logps, old_logps), mask, "token"))
    return loss, metrics


def fake_loss_trainer(logps: torch.Tensor, loss_type: str, delta: float | None) -> SimpleNamespace:
    """A stand-in ``self`` for TRL's ``GRPOTrainer._compute_loss``: the attributes it reads, one
    process, no accumulation, and a model forward that returns ``logps`` (zero entropies).

    ``test_trl_contract.py`` checks it against a real trainer, so tests may call
    ``GRPOTrainer._compute_loss(fake_loss_trainer(...), None, inputs)`` to get TRL's loss of
    chosen log-probabilities without building a model.
    """
    fake = SimpleNamespace(
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=0.0,
        loss_type=loss_type,
        epsilon_low=0.2,
        epsilon_high=0.3,
        args=SimpleNamespace(delta=delta, use_bias_correction_kl=False, steps_per_generation=1),
        use_vllm=False,
        vllm_importance_sampling_correction=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        _entropy_bonus_enabled=False,
        aux_loss_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        accelerator=SimpleNamespace(
            num_processes=1,
            reduce=lambda tensor, reduction="sum": tensor,
            gather=lambda tensor: tensor,
            gather_for_metrics=lambda tensor: tensor,
        ),
    )
    fake._get_per_token_logps_and_entropies = lambda *a, **k: (logps, torch.zeros_like(logps), None)
    return fake
