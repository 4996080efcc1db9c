"""Verifiable rewards for every task (docs/method.md §6), safe on hostile model output.

Public names follow ``notes/HELPERS.md``: :func:`extract_answer`, :func:`format_reward`, the
verifiers (:func:`multiple_choice`, :func:`numeric`, :func:`relaxed_accuracy`,
:func:`mean_relative_accuracy`, :func:`math_equal`, :func:`anls`, :func:`wer_score`,
:func:`box_iou`, :func:`parse_box`, :func:`counting`), :func:`canonical_answer_type`,
:func:`score` and :func:`score_batch`. Each answer type is a verifier registered in
:data:`ANSWER_TYPES` (``vlthinker.rewards.answer_types``); registering one adds an answer type.
"""

from vlthinker.rewards.answer_types import DEFAULT_NUMBERS, number_reading
from vlthinker.rewards.extract import extract_answer, extract_boxed, format_reward
from vlthinker.rewards.grounding import (
    BOX_FORMATS,
    box_iou,
    grounding_accuracy,
    parse_box,
    parse_boxes,
    to_absolute,
)
from vlthinker.rewards.mathcheck import (
    DEFAULT_MATH_TIMEOUT_S,
    math_equal,
    normalize_math,
    shutdown_math_workers,
)
from vlthinker.rewards.safety import is_safe_math
from vlthinker.rewards.score import (
    ANSWER_TYPES,
    STRUCTURE_BONUS,
    canonical_answer_type,
    score,
    score_batch,
)
from vlthinker.rewards.verifiers import (
    NUMBER_READINGS,
    anls,
    counting,
    mean_relative_accuracy,
    multiple_choice,
    numeric,
    parse_number,
    relaxed_accuracy,
    wer_score,
)

__all__ = [
    "ANSWER_TYPES",
    "BOX_FORMATS",
    "DEFAULT_MATH_TIMEOUT_S",
    "DEFAULT_NUMBERS",
    "NUMBER_READINGS",
    "STRUCTURE_BONUS",
    "anls",
    "box_iou",
    "canonical_answer_type",
    "counting",
    "extract_answer",
    "extract_boxed",
    "format_reward",
    "grounding_accuracy",
    "is_safe_math",
    "math_equal",
    "mean_relative_accuracy",
    "multiple_choice",
    "normalize_math",
    "number_reading",
    "numeric",
    "parse_box",
    "parse_boxes",
    "parse_number",
    "relaxed_accuracy",
    "score",
    "score_batch",
    "shutdown_math_workers",
    "to_absolute",
    "wer_score",
]
