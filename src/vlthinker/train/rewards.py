"""Reward components for the trainer: accuracy, format and the task's length score.

TRL calls each reward function with the batch's completions and dataset columns; the three
components are kept apart so that multi-component G²RPO ranks them separately (method.md §2).
Scoring is done once per batch and shared by the accuracy and format functions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch

from vlthinker.algorithms import trapezoid_length_score
from vlthinker.rewards import score_batch
from vlthinker.train.trainer import COMPONENTS


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
    """The three reward functions, sharing one verifier pass per batch.

    ``envelopes`` holds one trapezoid ``(a, b, c, d)`` per task index (tokens); a task without a
    length range gets ``(0, 0, inf, inf)``: a score of 1 for every length.
    """

    def __init__(self, envelopes: torch.Tensor, length_enabled: bool = True) -> None:
        self.envelopes = envelopes
        self.length_enabled = length_enabled
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
        if not self.length_enabled or completion_ids is None:
            return [1.0] * len(completions)
        lengths = torch.tensor([len(ids) for ids in completion_ids])
        tasks = torch.tensor(list(kwargs["task_index"]), dtype=torch.int64)
        return trapezoid_length_score(lengths, tasks, self.envelopes).tolist()

    def functions(self) -> list:
        # TRL names each reward by the function's __name__; the order is COMPONENTS'.
        return [getattr(self, name) for name in COMPONENTS]
