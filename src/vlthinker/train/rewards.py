"""Reward components for the trainer: declared once in :data:`COMPONENTS`.

TRL calls each reward function with the batch's completions and dataset columns and stacks their
outputs as the columns of ``rewards_per_func``, in :data:`COMPONENTS` order. The components are
kept apart so that multi-component G²RPO ranks them separately (docs/method.md §2). Everything that
depends on which column is which — the gate column the online filter and the tie metrics read,
the number of weights, a component switched off by a ``shaping`` flag — is derived from
:data:`COMPONENTS`. Scoring is done once per batch and shared by the accuracy and format
functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from vlthinker.algorithms import trapezoid_length_score
from vlthinker.rewards import score_batch

#: "gate": the task's own accuracy — the online filter, G²RPO's ``gate_component`` and the
#: tied-group and sign-error metrics read it; "shaping": a term that steers the form of an
#: answer (format, length) and never decides on its own whether a group carries signal.
Role = Literal["gate", "shaping"]


def completion_text(completion: Any) -> str:
    """TRL passes conversational completions as message lists; plain ones as strings."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "")
        if isinstance(content, list):
            return "".join(part.get("text", "") or "" for part in content if isinstance(part, dict))
        return str(content)
    return ""


class RewardComponents:
    """The reward functions of :data:`COMPONENTS`, sharing one verifier pass per batch.

    ``envelopes`` holds one trapezoid ``(a, b, c, d)`` per task index (tokens; ``G2RPOConfig.
    length_envelopes``); a task without a length range gets ``(0, 0, inf, inf)``: a score of 1
    for every length. ``None`` turns length shaping off: every completion scores 1.
    """

    def __init__(self, envelopes: Sequence[Sequence[float]] | torch.Tensor | None) -> None:
        self.envelopes = None
        if envelopes is not None:
            self.envelopes = torch.as_tensor(envelopes, dtype=torch.float64)
        self._cache_key: tuple[tuple[str, ...], ...] | None = None
        self._cache: list[dict[str, float]] = []

    def _scores(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> list[dict[str, float]]:
        # Keyed on the content, never on id(completions): CPython reuses the id of a freed list,
        # so an id key hands one step's scores to the next step's completions.
        texts = tuple(completion_text(c) for c in completions)
        key = (texts, tuple(kwargs["answer_json"]), tuple(kwargs["score_meta"]))
        if key != self._cache_key:
            metas = [json.loads(meta) for meta in kwargs["score_meta"]]
            answers = [json.loads(answer) for answer in kwargs["answer_json"]]
            self._cache = score_batch(list(texts), answers, list(kwargs["answer_type"]), metas)
            self._cache_key = key
        return self._cache

    def accuracy(self, prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        return [s["accuracy"] for s in self._scores(completions, kwargs)]

    def format(self, prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        return [s["format"] for s in self._scores(completions, kwargs)]

    def length(self, prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        if self.envelopes is None or completion_ids is None:
            return [1.0] * len(completions)
        lengths = torch.tensor([len(ids) for ids in completion_ids])
        tasks = torch.tensor(list(kwargs["task_index"]), dtype=torch.int64)
        return trapezoid_length_score(lengths, tasks, self.envelopes).tolist()

    def functions(self) -> list[Callable[..., list[float]]]:
        """The bound reward functions TRL receives, in :data:`COMPONENTS` order."""
        return [component.function.__get__(self) for component in COMPONENTS]


@dataclass(frozen=True)
class RewardComponent:
    """One column of the reward: its name, scoring function, default weight and role.

    ``switch`` names the ``shaping`` flag that turns the component off (its weight becomes 0);
    ``None``: always on.
    """

    name: str
    function: Callable[..., list[float]]
    weight: float
    role: Role
    switch: str | None = None

    def __post_init__(self) -> None:
        # TRL names a reward function (its rewards/<name>/mean metric) by __name__.
        if self.function.__name__ != self.name:
            raise ValueError(
                f"reward component {self.name!r} must be scored by a function of that name, "
                f"not {self.function.__name__!r}"
            )


#: The reward components, in the column order of TRL's ``rewards_per_func``. Default weights
#: 0.8 / 0.1 / 0.1 (docs/method.md §4).
COMPONENTS: tuple[RewardComponent, ...] = (
    RewardComponent("accuracy", RewardComponents.accuracy, 0.8, "gate"),
    RewardComponent("format", RewardComponents.format, 0.1, "shaping"),
    RewardComponent("length", RewardComponents.length, 0.1, "shaping", switch="length"),
)


def component_names() -> tuple[str, ...]:
    return tuple(component.name for component in COMPONENTS)


def default_weights() -> list[float]:
    return [component.weight for component in COMPONENTS]


def gate_index() -> int:
    """Column of the one component whose role is "gate" (the task accuracy)."""
    gates = [i for i, component in enumerate(COMPONENTS) if component.role == "gate"]
    if len(gates) != 1:
        raise RuntimeError(f"exactly one reward component must be the gate, found {len(gates)}")
    return gates[0]


def effective_weights(weights: Sequence[float], switches: dict[str, bool]) -> list[float]:
    """The configured weights with every component whose ``shaping`` switch is off set to 0."""
    if len(weights) != len(COMPONENTS):
        raise ValueError(
            f"{len(weights)} reward weights for {len(COMPONENTS)} components "
            f"({', '.join(component_names())})"
        )
    return [
        0.0 if component.switch is not None and not switches[component.switch] else float(weight)
        for component, weight in zip(COMPONENTS, weights, strict=True)
    ]


#: The gate column of the reward matrix (task accuracy).
GATE = gate_index()
