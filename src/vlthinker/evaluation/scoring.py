"""Scoring one prediction: the training verifiers first, then the benchmark's own rule.

Every item is scored by ``vlthinker.rewards.score`` — the code that scores rollouts in
training — which gives ``accuracy`` and ``format``. A benchmark whose published protocol
differs from the training verifier names an item rule in ``record.meta["eval"]["rule"]``
and the rule gives the item's ``score`` (the number the benchmark reports); otherwise
``score`` is the verifier's accuracy. Items with no training verifier (pointing) are scored by
their rule alone. Benchmark-only rules live here, built on the verifiers' parsers:

- ``anls``: DocVQA / InfoVQA average normalised Levenshtein similarity (threshold 0.5),
  best over the reference answers;
- ``relaxed``: ChartQA relaxed accuracy (numbers within 5 % relative error, text exact),
  best over the reference answers;
- ``ocrbench``: OCRBench containment — an item scores 1 when a reference answer appears in
  the prediction (case-insensitive; handwritten math compares with all spaces removed);
- ``iou50``: RefCOCO Acc@0.5 — 1 when the predicted box has IoU ≥ 0.5 with the truth;
- ``mathvista``: MathVista's free-form rule (integer / float at the key's precision / list
  / text); ``charxiv``: numbers exact at the key's precision, text normalised equality;
- ``mmmu_open``: MMMU open questions — a reference number equal to a predicted number, or a
  reference string contained in the prediction;
- ``yes_no``: RoboSpatial configuration / compatibility (the answer starts with yes / no);
- ``point_in_polygon``: RoboSpatial context (the first predicted point inside the polygon);
- ``point_in_mask``: RefSpatial (the share of predicted points inside the mask).

Model output is untrusted: parsing is regex-only on a bounded prefix of the answer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from vlthinker import rewards
from vlthinker.data.prompts import verifier_meta

MAX_PARSE_CHARS = 4096  # parsers only ever look at this much of an answer
MAX_POINTS = 64
_NUMBER = re.compile(r"[-+]?(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
_POINT = re.compile(r"[\(\[]\s*([-+]?\d+(?:\.\d+)?)\s*,\s*([-+]?\d+(?:\.\d+)?)\s*[\)\]]")
RULE_ONLY = frozenset({"point_in_mask", "point_in_polygon"})


def eval_meta(record: Any) -> dict[str, Any]:
    return dict((record.meta or {}).get("eval") or {})


def score_prediction(record: Any, response: str, prompt_config: Any = None) -> dict[str, Any]:
    """``{"score", "accuracy", "format", "extracted", …}`` for one response to one record."""
    details = eval_meta(record)
    rule = details.get("rule")
    meta = verifier_meta(record, prompt_config)
    extracted = rewards.extract_answer(response)
    extracted = "" if extracted is None else str(extracted)
    if rule in RULE_ONLY:
        fmt = rewards.format_reward(
            response, meta.get("reasoning", True), meta.get("think_tag", "think")
        )
        value = RULES[rule](extracted[:MAX_PARSE_CHARS], record, details)
        result: dict[str, Any] = {"accuracy": value, "format": float(fmt)}
    else:
        result = {
            key: float(value)
            for key, value in rewards.score(
                response, record.answer, record.answer_type, **meta
            ).items()
            if isinstance(value, int | float)
        }
        value = (
            RULES[rule](extracted[:MAX_PARSE_CHARS], record, details)
            if rule
            else result["accuracy"]
        )
    result["score"] = float(value)
    result["extracted"] = extracted[:MAX_PARSE_CHARS]
    return result


# ---------------------------------------------------------------- rules


def _answers(record: Any, details: dict[str, Any]) -> list[str]:
    answers = details.get("answers")
    return [str(a) for a in answers] if answers else [str(record.answer)]


def rule_anls(pred: str, record: Any, details: dict[str, Any]) -> float:
    return float(rewards.anls(pred.strip(), _answers(record, details), threshold=0.5))


def rule_relaxed(pred: str, record: Any, details: dict[str, Any]) -> float:
    pred = pred.strip().rstrip(".")
    return max(
        float(rewards.relaxed_accuracy(pred, a.strip(), tolerance=0.05))
        for a in _answers(record, details)
    )


def rule_ocrbench(pred: str, record: Any, details: dict[str, Any]) -> float:
    """OCRBench: a reference answer contained in the prediction scores the item 1."""
    if details.get("handwritten_math"):
        squeeze = lambda text: text.strip().replace("\n", " ").replace(" ", "")  # noqa: E731
        predicted = squeeze(pred)
        return float(any(squeeze(a) in predicted for a in _answers(record, details)))
    normal = lambda text: text.lower().strip().replace("\n", " ")  # noqa: E731
    predicted = normal(pred)
    return float(any(normal(a) in predicted for a in _answers(record, details)))


def rule_iou50(pred: str, record: Any, details: dict[str, Any]) -> float:
    """RefCOCO Acc@0.5: both boxes mapped to pixels of the original image (the record's
    ``box_format`` and ``image_size``) by the training verifier's parser, then IoU >= 0.5."""
    meta = record.meta or {}
    box_format = meta.get("box_format", "absolute")
    size = meta.get("image_size")
    box = rewards.parse_box(pred, box_format=box_format, image_size=size)
    truth = rewards.parse_box(list(record.answer), box_format=box_format, image_size=size)
    if box is None or truth is None:
        return 0.0
    return float(rewards.box_iou(box, truth) >= 0.5)


def _numbers(text: str) -> list[float]:
    found = []
    for match in _NUMBER.findall(text[:MAX_PARSE_CHARS]):
        try:
            found.append(float(match.replace(",", "")))
        except ValueError:
            continue
    return found


def _last_number(text: str) -> float | None:
    numbers = _numbers(text)
    return numbers[-1] if numbers else None


def _normal_text(text: str) -> str:
    text = text.lower().strip()
    text = re.sub(r"[\s]+", " ", text)
    return text.strip(" .,;:!?\"'`()[]{}")


def rule_mathvista(pred: str, record: Any, details: dict[str, Any]) -> float:
    """MathVista free-form: integer and float answers compare as numbers (floats at the key's
    precision), lists element-wise, text after lower-casing and trimming punctuation."""
    kind = details.get("kind", "text")
    answer = str(record.answer).strip()
    if kind == "integer":
        value, key = _last_number(pred), _last_number(answer)
        return float(
            value is not None
            and key is not None
            and round(value) == value
            and int(value) == int(key)
        )
    if kind == "float":
        value, key = _last_number(pred), _last_number(answer)
        digits = int(details.get("precision") or 2)
        return float(
            value is not None and key is not None and round(value, digits) == round(key, digits)
        )
    if kind == "list":
        return float(_numbers(pred) == _numbers(answer) and bool(_numbers(answer)))
    return float(_normal_text(pred) == _normal_text(answer))


def rule_charxiv(pred: str, record: Any, details: dict[str, Any]) -> float:
    answer = str(record.answer).strip()
    key = _last_number(answer) if re.fullmatch(r"[-+]?[\d,]*\.?\d+%?", answer) else None
    if key is not None:
        value = _last_number(pred)
        digits = len(answer.split(".")[1].rstrip("%")) if "." in answer else 0
        return float(value is not None and round(value, digits) == round(key, digits))
    return float(_normal_text(pred) == _normal_text(answer))


def rule_mmmu_open(pred: str, record: Any, details: dict[str, Any]) -> float:
    """MMMU open question: a number equal (to 2 decimals) to a reference number, or a
    reference string (lower-cased) contained in the answer."""
    predicted_numbers = {round(v, 2) for v in _numbers(pred)}
    lowered = pred.lower()
    for answer in _answers(record, details):
        value = _last_number(answer) if re.fullmatch(r"\s*[-+]?[\d,]*\.?\d+\s*", answer) else None
        if value is not None:
            if round(value, 2) in predicted_numbers:
                return 1.0
        elif _normal_text(answer) and _normal_text(answer) in lowered:
            return 1.0
    return 0.0


def rule_yes_no(pred: str, record: Any, details: dict[str, Any]) -> float:
    """RoboSpatial yes/no: the answer's first word is the key ("Yes, it is." → yes)."""
    first = re.match(r"[a-z]+", _normal_text(pred))
    return float(first is not None and first.group(0) == str(record.answer).strip().lower())


def parse_points(text: str) -> list[tuple[float, float]]:
    """``(x, y)`` / ``[x, y]`` pairs in order (at most ``MAX_POINTS``)."""
    points = []
    for x, y in _POINT.findall(text[:MAX_PARSE_CHARS]):
        points.append((float(x), float(y)))
        if len(points) >= MAX_POINTS:
            break
    return points


def to_unit_square(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points in [0, 1] are normalised already; larger ones are read on the 0–1000 scale."""
    if all(0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 for x, y in points):
        return points
    return [(x / 1000.0, y / 1000.0) for x, y in points]


def point_in_polygon(x: float, y: float, polygon: list[list[float]]) -> bool:
    """Ray casting: the point is inside when a ray to the right crosses an odd number of edges."""
    inside = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def rule_point_in_polygon(pred: str, record: Any, details: dict[str, Any]) -> float:
    points = parse_points(pred)
    if not points:
        return 0.0
    x, y = to_unit_square(points[:1])[0]
    return float(point_in_polygon(x, y, details["polygon"]))


def rule_point_in_mask(pred: str, record: Any, details: dict[str, Any]) -> float:
    from vlthinker.evaluation.adapters.base import load_mask

    points = parse_points(pred)
    if not points:
        return 0.0
    mask = load_mask(details["mask"])
    height, width = mask.shape
    hits = 0
    for x, y in to_unit_square(points):
        col, row = math.floor(x * width), math.floor(y * height)
        hits += int(0 <= col < width and 0 <= row < height and bool(mask[row, col]))
    return hits / len(points)


RULES: dict[str, Callable[[str, Any, dict[str, Any]], float]] = {
    "anls": rule_anls,
    "relaxed": rule_relaxed,
    "ocrbench": rule_ocrbench,
    "iou50": rule_iou50,
    "mathvista": rule_mathvista,
    "charxiv": rule_charxiv,
    "mmmu_open": rule_mmmu_open,
    "yes_no": rule_yes_no,
    "point_in_polygon": rule_point_in_polygon,
    "point_in_mask": rule_point_in_mask,
}
