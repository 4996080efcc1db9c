"""Policy objective of method.md §3: clipped surrogate, dual clip, token/sequence mean, k3 KL."""

from __future__ import annotations

from typing import Literal

import torch

Aggregation = Literal["token", "seq"]


def masked_mean(values: torch.Tensor, mask: torch.Tensor, aggregation: Aggregation) -> torch.Tensor:
    """Loss aggregation of method.md §3.

    ``token``: mean over every response token of the batch (the released code's choice);
    ``seq``: mean over each sequence's tokens, then over sequences (the paper's formula).
    """
    weight = mask.to(values.dtype)
    if aggregation == "token":
        return (values * weight).sum() / weight.sum().clamp(min=1)
    if aggregation == "seq":
        per_sequence = (values * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1)
        return per_sequence.mean()
    raise ValueError(f"loss aggregation must be 'token' or 'seq', got {aggregation!r}")


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """k3 estimator of KL(π‖π_ref) per token: ``exp(r) − r − 1`` with ``r = log π_ref − log π``."""
    log_ratio = ref_logps - logps
    return torch.exp(log_ratio) - log_ratio - 1.0


def clipped_policy_loss(
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
    """Clipped surrogate of method.md §3, defaults from the released recipe (§8).

    Per token, with ``ρ = exp(log π − log π_old)``:
    ``L = −min(ρ·A, clip(ρ, 1 − ε_low, 1 + ε_high)·A)``; with dual clip ``c`` and ``A < 0`` the
    loss is further capped at ``−A·c`` (a huge ratio on a bad token cannot blow the update up).
    Aggregated by ``aggregation`` (:func:`masked_mean`); plus ``kl_coef`` × k3 KL to the reference
    policy when ``ref_logps`` is given. ``advantages`` is ``[B]`` (broadcast to every token) or
    ``[B, T]``. Returns the loss and metrics: clip fractions (low/high/dual) and approximate KL to
    the old policy (k3), all over response tokens.
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    advantages = advantages.to(logps.dtype)
    log_ratio = logps - old_logps
    ratio = torch.exp(log_ratio)
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
