"""A null control for the lever benchmark: G²RPO's advantages shuffled within each prompt group.

Every update keeps the size and spread of a real one, but which answer gets which advantage no
longer depends on whether it was right: training on it measures what the updates' noise alone
does to the model. Registered as the estimator ``shuffled_g2rpo`` (a config's ``plugins:``).
"""

from __future__ import annotations

import torch

from vlthinker.algorithms import ESTIMATORS, g2rpo_advantages

_calls = [0]  # a fresh, reproducible permutation per rollout batch


@ESTIMATORS.register("shuffled_g2rpo")
def shuffled_g2rpo_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    task_ids: torch.Tensor | None = None,
    *,
    weights: torch.Tensor | list[float] | None = None,
    stage2_min_groups: int = 8,
) -> torch.Tensor:
    """G²RPO's advantages, permuted at random inside each prompt group (contiguous, equal-size
    groups, as the trainer lays them out)."""
    real = g2rpo_advantages(
        rewards, group_ids, task_ids, weights=weights, stage2_min_groups=stage2_min_groups
    )
    _calls[0] += 1
    generator = torch.Generator().manual_seed(12_345 + _calls[0])
    size = int((group_ids == group_ids[0]).sum())
    blocks = real.view(-1, size)
    order = torch.argsort(torch.rand(blocks.shape, generator=generator), dim=1)
    return torch.gather(blocks, 1, order).reshape(-1)
