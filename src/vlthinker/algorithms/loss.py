"""Per-token policy objective of docs/method.md §3: the clipped surrogate with the dual clip.

Training runs TRL's ``GRPOTrainer`` loss (configured with ``epsilon``, ``epsilon_high`` and
``delta``); this is the same per-token term, for code that needs it outside TRL's loss, such as
the per-task gradient norms of :mod:`vlthinker.train.gradient_equity`. ``tests/oracles.py``
holds the method's whole objective (aggregation, k3 KL) written independently, and
``tests/test_trl_contract.py`` checks that TRL's loss, this function and that oracle agree.
"""

from __future__ import annotations

import torch


def clipped_policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.3,
    dual_clip: float | None = 3.0,
) -> torch.Tensor:
    """Per-token clipped surrogate loss (docs/method.md §3), defaults from the recipe (§8).

    With ``ρ = exp(log π − log π_old)``: ``ℓ = −min(min(ρ, c)·A, clip(ρ, 1 − ε_low, 1 + ε_high)·A)``
    where ``c`` is ``dual_clip`` (no cap when None). Capping the ratio of the unclipped term is
    how TRL writes the dual clip (its ``delta``): for ``A < 0`` it caps the token's loss at
    ``−c·A`` with zero gradient beyond, the method's dual clip; for ``A > 0`` it changes nothing
    as long as ``c ≥ 1 + ε_high`` (the clipped term is then the smaller one). ``advantages`` is
    ``[B]`` (broadcast to every token) or ``[B, T]``; ``logps`` and ``old_logps`` are ``[B, T]``.
    Returns ``ℓ`` as ``[B, T]``, unmasked and unaggregated.
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    ratio = torch.exp(logps - old_logps)
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    if dual_clip is not None:
        ratio = torch.clamp(ratio, max=dual_clip)
    return -torch.min(ratio * advantages, clipped * advantages)
