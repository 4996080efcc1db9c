"""Per-response reward components (method.md §6): accuracy by answer type, format, structure."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vlthinker.rewards.extract import extract_answer, format_reward
from vlthinker.rewards.grounding import (
    BOX_FORMATS,
    grounding_accuracy,
    has_json_box,
    to_absolute,
)
from vlthinker.rewards.mathcheck import math_equal
from vlthinker.rewards.safety import clamp01
from vlthinker.rewards.verifiers import (
    anls,
    counting,
    mean_relative_accuracy,
    multiple_choice,
    numeric,
    relaxed_accuracy,
    wer_score,
)

__all__ = ["ANSWER_TYPES", "STRUCTURE_BONUS", "canonical_answer_type", "score", "score_batch"]

log = logging.getLogger(__name__)

#: The canonical answer types of the shared contract.
ANSWER_TYPES = ("multiple_choice", "numeric", "chart", "math", "ocr", "grounding", "counting")
#: The reference's structure bonus (added to the overall reward by the trainer, if at all).
STRUCTURE_BONUS = 0.5

_ALIASES = {
    "multiple choice": "multiple_choice",
    "multiple_choice": "multiple_choice",
    "multiplechoice": "multiple_choice",
    "multi choice": "multiple_choice",
    "mc": "multiple_choice",
    "mcq": "multiple_choice",
    "choice": "multiple_choice",
    "numerical": "numeric",
    "numeric": "numeric",
    "number": "numeric",
    "regression": "chart",
    "chart": "chart",
    "chart qa": "chart",
    "math": "math",
    "ocr": "ocr",
    "spatial grounding": "grounding",
    "grounding": "grounding",
    "counting": "counting",
    "count": "counting",
}
_SEP = re.compile(r"[\s_\-]+")


def canonical_answer_type(name: str) -> str:
    """Map a canonical or reference ``problem_type`` name onto the canonical answer types.

    "multiple choice" -> multiple_choice, "numerical" -> numeric, "regression" -> chart (scored
    with mean relative accuracy), "math" -> math, "OCR" -> ocr, "spatial grounding" ->
    grounding, "counting" -> counting.  Case, ``_``, ``-`` and spaces are ignored; an unknown
    name raises ``ValueError`` naming it.
    """
    if not isinstance(name, str):
        raise ValueError(f"unknown answer type {name!r}")
    key = _SEP.sub(" ", name.strip().lower())
    if key in _ALIASES:
        return _ALIASES[key]
    if key.replace(" ", "_") in ANSWER_TYPES:
        return key.replace(" ", "_")
    raise ValueError(
        f"unknown answer type {name!r}; expected one of {ANSWER_TYPES} or a "
        f"reference problem_type ({sorted(set(_ALIASES) - set(ANSWER_TYPES))})"
    )


def _is_regression(name: str) -> bool:
    return isinstance(name, str) and name.strip().lower() == "regression"


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


def _accuracy(
    kind: str, pred: str, answer: Any, meta: Mapping[str, Any], regression: bool
) -> float:
    if kind == "multiple_choice":
        return multiple_choice(pred, answer, meta.get("options"))
    if kind == "numeric":
        return numeric(pred, answer, units=_units(meta))
    if kind == "chart":
        metric = meta.get("metric", "mra" if regression else "relaxed")
        if metric == "mra":
            return mean_relative_accuracy(pred, answer)
        return relaxed_accuracy(pred, answer, float(meta.get("tolerance", 0.05)))
    if kind == "math":
        kwargs = {"timeout_s": float(meta["timeout_s"])} if "timeout_s" in meta else {}
        return math_equal(pred, answer, **kwargs)
    if kind == "ocr":
        if meta.get("metric") == "anls":
            return anls(pred, answer if isinstance(answer, (list, tuple)) else [answer])
        return wer_score(pred, answer)
    if kind == "grounding":
        return grounding_accuracy(
            pred,
            answer,
            box_format=meta.get("box_format", "absolute"),
            image_size=meta.get("image_size"),
            resized_size=meta.get("resized_size"),
            answer_box_format=meta.get("answer_box_format"),
        )
    if kind == "counting":
        return counting(pred, answer, partial=bool(meta.get("partial", False)))
    raise ValueError(f"unknown answer type {kind!r}")  # pragma: no cover - canonicalised above


def _units(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The units a task declares (``meta["units"]``: one string or a list), read after numbers."""
    units = meta.get("units") or ()
    if isinstance(units, str):
        return (units,)
    return tuple(str(u) for u in list(units)[:16])


def _check_meta(kind: str, meta: Mapping[str, Any]) -> None:
    """Configuration errors (not model output) raise early and loudly."""
    for key in ("box_format", "answer_box_format"):
        fmt = meta.get(key)
        if fmt is not None and fmt not in BOX_FORMATS:
            raise ValueError(f"unknown {key} {fmt!r}; expected one of {BOX_FORMATS}")
    if kind == "grounding":
        for key in ("image_size", "resized_size"):
            if meta.get(key) is not None:
                to_absolute([0, 0, 1, 1], "absolute", meta[key])  # raises on a bad size
    metric = meta.get("metric")
    if metric is not None and metric not in ("mra", "relaxed", "anls", "wer"):
        raise ValueError(f"unknown metric {metric!r}")


def score(response: str, answer: Any, answer_type: str, **meta: Any) -> dict[str, float]:
    """Reward components for one response: ``accuracy``, ``format`` and ``structure``.

    Rule (method.md §6): accuracy is the answer type's verifier applied to
    :func:`extract_answer` (0 when there is none); format is :func:`format_reward` with
    ``meta["reasoning"]`` (default True) and ``meta["think_tag"]``; structure is the reference's
    0.5 bonus — for grounding only when the answer is JSON with a 4-number ``boxes`` — and 0
    whenever format is 0.  The reference's overall reward is ``0.9·accuracy + 0.1·format +
    structure``; the trainer combines the components itself.  Every value is finite; accuracy and
    format lie in [0, 1], structure in [0, 0.5].  Model output never raises; an unknown answer
    type or bad meta does (``ValueError``).
    """
    kind = canonical_answer_type(answer_type)
    _check_meta(kind, meta)
    reasoning = bool(meta.get("reasoning", True))
    think_tag = meta.get("think_tag", "think")
    fmt = format_reward(response, reasoning, think_tag)  # raises only for a bad think_tag
    accuracy = 0.0
    pred: str | None = None
    try:
        pred = extract_answer(response)
        if pred is not None:
            accuracy = _accuracy(
                kind,
                pred,
                _accept_any(answer, meta.get("answers")),
                meta,
                _is_regression(answer_type),
            )
    except Exception as exc:
        log.debug("verifier %s failed on %r: %s", kind, response[:200], exc)
        accuracy = 0.0
    structure = 0.0
    if fmt == 1.0 and (kind != "grounding" or (pred is not None and has_json_box(pred))):
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
