"""The method's rules as pure, vectorized torch functions (method.md §2–§5).

Any trainer can call these: ours on TRL, verl, or a user's own loop.
"""

from vlthinker.algorithms.advantages import (
    ESTIMATORS,
    compute_advantages,
    dr_grpo_advantages,
    estimator_options,
    g2rpo_advantages,
    get_estimator,
    grpo_advantages,
    multi_component_g2rpo_advantages,
    rank_to_normal,
    rloo_advantages,
)
from vlthinker.algorithms.loss import clipped_policy_loss, k3_kl, masked_mean
from vlthinker.algorithms.shaping import (
    entropy_band_penalty,
    length_envelope,
    length_penalty,
    per_task_entropy,
    token_entropy,
    trapezoid_length_score,
    update_length_targets,
)

__all__ = [
    "ESTIMATORS",
    "clipped_policy_loss",
    "compute_advantages",
    "dr_grpo_advantages",
    "entropy_band_penalty",
    "estimator_options",
    "g2rpo_advantages",
    "get_estimator",
    "grpo_advantages",
    "k3_kl",
    "length_envelope",
    "length_penalty",
    "masked_mean",
    "multi_component_g2rpo_advantages",
    "per_task_entropy",
    "rank_to_normal",
    "rloo_advantages",
    "token_entropy",
    "trapezoid_length_score",
    "update_length_targets",
]
