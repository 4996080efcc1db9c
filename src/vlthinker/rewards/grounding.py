"""Spatial grounding: box parsing, coordinate systems and IoU (docs/method.md §6)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from vlthinker.rewards.extract import strip_answer_tags
from vlthinker.rewards.safety import MAX_ANSWER_CHARS, clamp01, sanitize

__all__ = [
    "BOX_FORMATS",
    "box_iou",
    "grounding_accuracy",
    "has_json_box",
    "parse_box",
    "parse_boxes",
    "to_absolute",
]

#: Declared coordinate systems: pixels, [0, 1] relative, Qwen-VL's [0, 1000] relative.
BOX_FORMATS = ("absolute", "normalized", "qwen1000")
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,3})?"
_BRACKET4 = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
_PAIRS = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,?\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)")

Box = list[float]


def _as_box(value: Any) -> Box | None:
    """Four finite real numbers (not bools) as a float list, else None."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    out: Box = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        try:
            f = float(v)
        except OverflowError:
            return None
        if not math.isfinite(f):
            return None
        out.append(f)
    return out


def _boxes_from_json(value: Any, depth: int = 0) -> list[Box]:
    if depth > 4:
        return []
    if isinstance(value, dict):
        for key in ("boxes", "box", "bbox", "bbox_2d"):
            if key in value:
                return _boxes_from_json(value[key], depth + 1)
        return []
    box = _as_box(value)
    if box is not None:
        return [box]
    out: list[Box] = []
    if isinstance(value, (list, tuple)):
        for item in list(value)[:32]:
            b = _as_box(item)
            if b is not None:
                out.append(b)
            elif isinstance(item, dict):
                out.extend(_boxes_from_json(item, depth + 1))
    return out


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def parse_boxes(value: Any) -> list[Box]:
    """Every box in an answer: JSON ``{"boxes": [x1, y1, x2, y2]}`` (or a list of boxes), a bare
    list ``[1, 2, 3, 4]`` (value or text), or Qwen's ``(x1,y1),(x2,y2)``; non-finite -> none."""
    if not isinstance(value, str):
        return _boxes_from_json(value)
    text = strip_answer_tags(sanitize(value, MAX_ANSWER_CHARS))
    boxes = _boxes_from_json(_loads(text)) if text[:1] in "{[" else []
    if boxes:
        return boxes
    for pat in (_BRACKET4, _PAIRS):
        m = pat.search(text)
        if m:
            try:
                box = _as_box([float(g) for g in m.groups()])
            except (ValueError, OverflowError):
                box = None
            if box is not None:
                return [box]
    return []


def parse_box(
    text: Any,
    box_format: str = "absolute",
    image_size: Sequence[float] | None = None,
    resized_size: Sequence[float] | None = None,
) -> Box | None:
    """The first box in ``text`` (see :func:`parse_boxes`), mapped by :func:`to_absolute` when
    ``image_size`` is given, else returned in its own coordinates; None when there is none."""
    boxes = parse_boxes(text)
    if not boxes:
        return None
    if image_size is None:
        return boxes[0]
    return to_absolute(boxes[0], box_format, image_size, resized_size)


def has_json_box(text: str) -> bool:
    """True iff ``text`` is JSON ``{"boxes": [n, n, n, n]}`` with four finite numbers (the
    reference's structure bonus condition)."""
    if not isinstance(text, str) or len(text) > MAX_ANSWER_CHARS:
        return False
    obj = _loads(text.strip())
    return isinstance(obj, dict) and _as_box(obj.get("boxes")) is not None


def _size(size: Sequence[float] | None) -> tuple[float, float] | None:
    if size is None:
        return None
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise ValueError(f"image size must be [w, h], got {size!r}")
    w, h = float(size[0]), float(size[1])
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise ValueError(f"image size must be positive and finite, got {size!r}")
    return w, h


def to_absolute(
    box: Sequence[float],
    box_format: str = "absolute",
    image_size: Sequence[float] | None = None,
    resized_size: Sequence[float] | None = None,
) -> Box:
    """Map a box to pixels of the original image.

    Rule: "normalized" multiplies by (w, h); "qwen1000" by (w/1000, h/1000); "absolute" boxes
    predicted on a resized image (``resized_size``) are scaled by ``image_size / resized_size``.
    Without ``image_size``, relative boxes are returned in [0, 1] units and absolute ones as is.
    """
    if box_format not in BOX_FORMATS:
        raise ValueError(f"unknown box_format {box_format!r}; expected one of {BOX_FORMATS}")
    size = _size(image_size)
    x1, y1, x2, y2 = (float(v) for v in box)
    if box_format == "absolute":
        resized = _size(resized_size)
        if size is None or resized is None:
            return [x1, y1, x2, y2]
        sx, sy = size[0] / resized[0], size[1] / resized[1]
    else:
        unit = 1.0 if box_format == "normalized" else 1000.0
        w, h = size if size is not None else (1.0, 1.0)
        sx, sy = w / unit, h / unit
    return [x1 * sx, y1 * sy, x2 * sx, y2 * sy]


def box_iou(a: Sequence[float] | None, b: Sequence[float] | None) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes.

    Boxes with ``x2 <= x1`` or ``y2 <= y1`` have zero area; malformed or non-finite boxes and a
    zero union give 0.
    """
    ba, bb = (
        _as_box(list(a) if isinstance(a, tuple) else a),
        _as_box(list(b) if isinstance(b, tuple) else b),
    )
    if ba is None or bb is None:
        return 0.0
    ax1, ay1, ax2, ay2 = ba
    bx1, by1, bx2, by2 = bb
    iw = min(ax2, bx2) - max(ax1, bx1)
    ih = min(ay2, by2) - max(ay1, by1)
    inter = iw * ih if iw > 0 and ih > 0 else 0.0
    area_a = max(0.0, ax2 - ax1) * max(0.0, ay2 - ay1)
    area_b = max(0.0, bx2 - bx1) * max(0.0, by2 - by1)
    union = area_a + area_b - inter
    if not math.isfinite(union) or union <= 0 or not math.isfinite(inter):
        return 0.0
    return clamp01(inter / union)


def grounding_accuracy(
    prediction: Any,
    answer: Any,
    box_format: str = "absolute",
    image_size: Sequence[float] | None = None,
    resized_size: Sequence[float] | None = None,
    answer_box_format: str | None = None,
) -> float:
    """IoU of the predicted box with the best-matching reference box, both mapped to pixels of
    the original image (``answer_box_format`` defaults to ``box_format``; the answer is never
    treated as predicted on the resized image)."""
    pred_boxes = parse_boxes(prediction)
    gold_boxes = parse_boxes(answer)
    if not pred_boxes or not gold_boxes:
        return 0.0
    pred = to_absolute(pred_boxes[0], box_format, image_size, resized_size)
    gold_format = answer_box_format or box_format
    return max(box_iou(pred, to_absolute(g, gold_format, image_size)) for g in gold_boxes)
