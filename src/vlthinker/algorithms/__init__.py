"""The method's rules as pure, vectorized torch functions (docs/method.md §2–§5).

Any trainer can call these: ours on TRL, verl, or a user's own loop. Everything exported here
is used by vlthinker's own training code; test oracles live in ``tests/oracles.py``.
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
from vlthinker.algorithms.loss import clipped_policy_loss
from vlthinker.algorithms.shaping import (
    entropy_band_penalty,
    entropy_band_sides,
    entropy_band_step_penalty,
    length_envelope,
    per_task_entropy,
    trapezoid_length_score,
)

__all__ = [
    "ESTIMATORS",
    "clipped_policy_loss",
    "compute_advantages",
    "dr_grpo_advantages",
    "entropy_band_penalty",
    "entropy_band_sides",
    "entropy_band_step_penalty",
    "estimator_options",
    "g2rpo_advantages",
    "get_estimator",
    "grpo_advantages",
    "length_envelope",
    "multi_component_g2rpo_advantages",
    "per_task_entropy",
    "rank_to_normal",
    "rloo_advantages",
    "trapezoid_length_score",
]
