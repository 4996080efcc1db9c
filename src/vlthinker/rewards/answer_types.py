"""The answer types: one registered verifier each, looked up by name or alias.

An answer type is a function ``(prediction, answer, meta) -> float`` registered in
:data:`ANSWER_TYPES`; ``prediction`` is the text inside the response's ``<answer>`` tag,
``answer`` the record's reference (extra accepted answers already merged in) and ``meta`` the
record's verifier options. Names are looked up with case, ``_``, ``-`` and spaces ignored.
Registration metadata says the rest:

- ``aliases``: other names for it (the registry's own aliases): the reference data's
  ``problem_type`` spellings and common abbreviations;
- ``alias_defaults``: ``{name or alias: {option: value}}``, options that spelling implies unless
  the record sets them (``regression`` is ``chart`` scored with mean relative accuracy). The data
  layer reads a reference record's ``problem_type`` through :func:`resolve`, so these are also
  the options such a record gets in its ``meta``;
- ``metrics``: the ``meta["metric"]`` values it reads (an unknown metric is a config error);
- ``check``: ``check(meta)`` raising ``ValueError`` on options it cannot use;
- ``structure``: ``structure(prediction) -> bool``, extra condition for the structure bonus.

The number-reading verifiers (numeric, chart, counting) read ``meta["numbers"]``
(:data:`~vlthinker.rewards.verifiers.NUMBER_READINGS`): ``"lenient"``, the training rewards'
declared default (:data:`DEFAULT_NUMBERS`), also reads thousands separators and currency signs;
``"official"``, which every benchmark item declares, reads numbers as the official scorers'
``float()`` does.

Adding an answer type is one function and its decorator::

    @ANSWER_TYPES.register("yes_no", aliases=("yes or no",))
    def _yes_no(pred: str, answer: Any, meta: Mapping[str, Any]) -> float:
        return float(pred.strip().lower() == str(answer).strip().lower())

The data layer validates a record's ``answer_type`` against this registry, so the new name is
accepted in data files as soon as the function is registered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from vlthinker.registry import Registry
from vlthinker.rewards.grounding import grounding_accuracy, has_json_box, to_absolute
from vlthinker.rewards.mathcheck import math_equal
from vlthinker.rewards.verifiers import (
    anls,
    counting,
    mean_relative_accuracy,
    multiple_choice,
    numeric,
    relaxed_accuracy,
    wer_score,
)

__all__ = [
    "ANSWER_TYPES",
    "DEFAULT_NUMBERS",
    "Verifier",
    "canonical_answer_type",
    "known_metrics",
    "number_reading",
    "resolve",
]

#: The training rewards' number reading where a record declares none (``meta["numbers"]``).
DEFAULT_NUMBERS = "lenient"


def number_reading(meta: Mapping[str, Any]) -> str:
    """The number reading ``meta`` declares (``meta["numbers"]``), else :data:`DEFAULT_NUMBERS`."""
    return str(meta.get("numbers") or DEFAULT_NUMBERS)


#: ``(prediction, answer, meta) -> accuracy in [0, 1]``.
Verifier = Callable[[str, Any, Mapping[str, Any]], float]

_SEP = re.compile(r"[\s_\-]+")


def _key(name: str) -> str:
    """Case, ``_``, ``-`` and spaces are ignored when a name is looked up."""
    return _SEP.sub(" ", name.strip().lower())


ANSWER_TYPES: Registry[Verifier] = Registry("answer type", normalise=_key)


def resolve(name: str) -> tuple[str, dict[str, Any]]:
    """The canonical answer type ``name`` stands for and the options its spelling implies.

    The spelling is the registered name or alias ``name`` matched (case, ``_``, ``-`` and spaces
    ignored); its options are the entry's ``alias_defaults`` for that spelling. An unknown name
    raises :class:`~vlthinker.registry.UnknownNameError` (a ``ValueError``) listing the
    registered names and their aliases.
    """
    canonical, spelling = ANSWER_TYPES.resolve(name)
    defaults = ANSWER_TYPES.meta(canonical).get("alias_defaults", {}).get(spelling, {})
    return canonical, dict(defaults)


def canonical_answer_type(name: str) -> str:
    """Map a canonical or reference ``problem_type`` name onto a registered answer type.

    "multiple choice" -> multiple_choice, "numerical" -> numeric, "regression" -> chart (scored
    with mean relative accuracy), "math" -> math, "OCR" -> ocr, "spatial grounding" ->
    grounding, "counting" -> counting.  Case, ``_``, ``-`` and spaces are ignored; an unknown
    name raises ``ValueError`` naming it and the known ones.
    """
    return resolve(name)[0]


def known_metrics() -> tuple[str, ...]:
    """Every ``meta["metric"]`` value some registered answer type reads."""
    return tuple(
        sorted({m for name in ANSWER_TYPES for m in ANSWER_TYPES.meta(name).get("metrics", ())})
    )


# ---------------------------------------------------------------- the built-in answer types


@ANSWER_TYPES.register(
    "multiple_choice",
    aliases=("multiple choice", "multiplechoice", "multi choice", "mc", "mcq", "choice"),
)
def _multiple_choice(pred: str, answer: Any, meta: Mapping[str, Any]) -> float:
    return multiple_choice(pred, answer, meta.get("options"))


@ANSWER_TYPES.register("numeric", aliases=("numerical", "number"))
def _numeric(pred: str, answer: Any, meta: Mapping[str, Any]) -> float:
    return numeric(pred, answer, units=_units(meta), numbers=number_reading(meta))


def _units(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The units a task declares (``meta["units"]``: one string or a list), read after numbers."""
    units = meta.get("units") or ()
    if isinstance(units, str):
        return (units,)
    return tuple(str(u) for u in list(units)[:16])


@ANSWER_TYPES.register(
    "chart",
    aliases=("regression", "chart qa"),
    # the reference data's regression questions are scored with mean relative accuracy
    alias_defaults={"regression": {"metric": "mra"}},
    metrics=("mra", "relaxed"),
)
def _chart(pred: str, answer: Any, meta: Mapping[str, Any]) -> float:
    if meta.get("metric", "relaxed") == "mra":
        return mean_relative_accuracy(pred, answer, numbers=number_reading(meta))
    tolerance = float(meta.get("tolerance", 0.05))
    return relaxed_accuracy(pred, answer, tolerance, numbers=number_reading(meta))


@ANSWER_TYPES.register("math")
def _math(pred: str, answer: Any, meta: Mapping[str, Any]) -> float:
    kwargs = {"timeout_s": float(meta["timeout_s"])} if "timeout_s" in meta else {}
    return math_equal(pred, answer, **kwargs)


@ANSWER_TYPES.register(
    "ocr",
    # the reference data's "OCR" records name their metric (word error rate, also the default)
    alias_defaults={"ocr": {"metric": "wer"}},
    metrics=("anls", "wer"),
)
def _ocr(pred: str, answer: Any, meta: Mapping[str, Any]) -> float:
    if meta.get("metric") == "anls":
        return anls(pred, answer if isinstance(answer, (list, tuple)) else [answer])
    return wer_score(pred, answer)


def _check_grounding(meta: Mapping[str, Any]) -> None:
    """A bad image size is a configuration error, raised before any response is scored."""
    for key in ("image_size", "resized_size"):
        if meta.get(key) is not None:
            to_absolute([0, 0, 1, 1], "absolute", meta[key])  # raises on a bad size


@ANSWER_TYPES.register(
    "grounding",
    aliases=("spatial grounding",),
    # the reference data's "spatial grounding" boxes are Qwen's 0–1000 coordinates
    alias_defaults={"spatial grounding": {"box_format": "qwen1000"}},
    check=_check_grounding,
    # the reference's structure bonus for grounding needs JSON with a 4-number "boxes"
    structure=has_json_box,
)
def _grounding(pred: str, answer: Any, meta: Mapping[str, Any]) -> float:
    return grounding_accuracy(
        pred,
        answer,
        box_format=meta.get("box_format", "absolute"),
        image_size=meta.get("image_size"),
        resized_size=meta.get("resized_size"),
        answer_box_format=meta.get("answer_box_format"),
    )


@ANSWER_TYPES.register("counting", aliases=("count",))
def _counting(pred: str, answer: Any, meta: Mapping[str, Any]) -> float:
    partial = bool(meta.get("partial", False))
    return counting(pred, answer, partial=partial, numbers=number_reading(meta))
