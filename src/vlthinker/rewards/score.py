"""Per-response reward components (docs/method.md §6): accuracy by answer type, format."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vlthinker.rewards.answer_types import (
    ANSWER_TYPES,
    canonical_answer_type,
    known_metrics,
    number_reading,
    resolve,
)
from vlthinker.rewards.extract import extract_answer, format_reward
from vlthinker.rewards.grounding import BOX_FORMATS
from vlthinker.rewards.safety import clamp01
from vlthinker.rewards.verifiers import NUMBER_READINGS

__all__ = ["ANSWER_TYPES", "STRUCTURE_BONUS", "canonical_answer_type", "score", "score_batch"]

log = logging.getLogger(__name__)

#: The reference's structure bonus (added to the overall reward by the trainer, if at all).
STRUCTURE_BONUS = 0.5


def _accept_any(answer: Any, extra: Any) -> Any:
    """Merge ``meta["answers"]`` (extra accepted answers) into the answer."""
    if not extra:
        return answer
    base = list(answer) if isinstance(answer, (list, tuple)) and not _is_box(answer) else [answer]
    return base + [a for a in list(extra)[:64]]


def _is_box(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )


def _check_meta(kind: str, meta: Mapping[str, Any]) -> None:
    """Configuration errors (not model output) raise early and loudly: box formats, the answer
    type's own ``check`` and the metric (one some registered answer type reads)."""
    for key in ("box_format", "answer_box_format"):
        fmt = meta.get(key)
        if fmt is not None and fmt not in BOX_FORMATS:
            raise ValueError(f"unknown {key} {fmt!r}; expected one of {BOX_FORMATS}")
    check = ANSWER_TYPES.meta(kind).get("check")
    if check is not None:
        check(meta)
    if number_reading(meta) not in NUMBER_READINGS:
        raise ValueError(
            f"unknown number reading numbers={meta.get('numbers')!r}; "
            f"expected one of {NUMBER_READINGS}"
        )
    metric = meta.get("metric")
    if metric is not None and metric not in known_metrics():
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(known_metrics())}")


def score(response: str, answer: Any, answer_type: str, **meta: Any) -> dict[str, float]:
    """Reward components for one response: ``accuracy``, ``format`` and ``structure``.

    Rule (docs/method.md §6): accuracy is the answer type's verifier applied to
    :func:`extract_answer` (0 when there is none); format is :func:`format_reward` with
    ``meta["reasoning"]`` (default True) and ``meta["think_tag"]``; structure is the reference's
    0.5 bonus — for grounding only when the answer is JSON with a 4-number ``boxes`` — and 0
    whenever format is 0.  The reference's overall reward is ``0.9·accuracy + 0.1·format +
    structure``; the trainer combines the components itself.  Every value is finite; accuracy and
    format lie in [0, 1], structure in [0, 0.5].  Model output never raises; an unknown answer
    type or bad meta does (``ValueError``).
    """
    kind, implied = resolve(answer_type)
    _check_meta(kind, meta)
    verify = ANSWER_TYPES.get(kind)
    reasoning = bool(meta.get("reasoning", True))
    think_tag = meta.get("think_tag", "think")
    fmt = format_reward(response, reasoning, think_tag)  # raises only for a bad think_tag
    accuracy = 0.0
    pred: str | None = None
    try:
        pred = extract_answer(response)
        if pred is not None:
            answer = _accept_any(answer, meta.get("answers"))
            accuracy = verify(pred, answer, {**implied, **meta} if implied else meta)
    except Exception as exc:
        log.debug("verifier %s failed on %r: %s", kind, response[:200], exc)
        accuracy = 0.0
    structure = 0.0
    needs = ANSWER_TYPES.meta(kind).get("structure")
    if fmt == 1.0 and (needs is None or (pred is not None and needs(pred))):
        structure = STRUCTURE_BONUS
    return {
        "accuracy": clamp01(accuracy),
        "format": clamp01(fmt),
        "structure": min(STRUCTURE_BONUS, clamp01(structure)),
    }


def score_batch(
    responses: Sequence[str],
    answers: Sequence[Any],
    answer_types: Sequence[str],
    metas: Sequence[Mapping[str, Any] | None] | None = None,
) -> list[dict[str, float]]:
    """:func:`score` for each (response, answer, answer_type, meta); lengths must match."""
    n = len(responses)
    metas_ = list(metas) if metas is not None else [None] * n
    if not (len(answers) == len(answer_types) == len(metas_) == n):
        raise ValueError(
            f"score_batch lengths differ: responses={n}, answers={len(answers)}, "
            f"answer_types={len(answer_types)}, metas={len(metas_)}"
        )
    fn: Callable[..., dict[str, float]] = score
    return [
        fn(r, a, t, **dict(m or {}))
        for r, a, t, m in zip(responses, answers, answer_types, metas_, strict=True)
    ]
