"""Scoring one prediction: the training verifiers first, then the benchmark's own rule.

Every item is scored by ``vlthinker.rewards.score`` — the code that scores rollouts in
training — which gives ``accuracy`` and ``format``. A benchmark whose published protocol
differs from the training verifier names an item rule in ``record.meta["eval"]["rule"]``
and the rule gives the item's ``score`` (the number the benchmark reports); otherwise
``score`` is the verifier's accuracy. Items with no training verifier (pointing) are scored by
their rule alone. Each rule below is one function registered in :data:`RULES` under its name;
its docstring names the official rule it follows and where that rule lives (repository and
file). Adding a rule is one function with ``@RULES.register("name")`` (``rule_only=True`` when
the training verifiers cannot score its items). The registered rules:

- ``anls``: DocVQA / InfoVQA ANLS (VLMEvalKit ``vqa_eval.py``);
- ``relaxed``: ChartQA relaxed accuracy (lmms-eval ``chartqa/utils.py``, VLMEvalKit);
- ``ocrbench``: OCRBench containment (handwritten maths without spaces);
- ``iou50``: RefCOCO Acc@0.5;
- ``mathvista``: MathVista's normalisation and exact match (``calculate_score.py``);
- ``charxiv``: CharXiv's grading rubric, judge-free;
- ``mmmu_open``: MMMU open questions (``eval_utils.py``);
- ``yes_no`` / ``point_in_polygon``: RoboSpatial-Home (``RoboSpatial-Eval/evaluation.py``);
- ``point_in_mask``: RefSpatial (share of points inside the mask).

Model output is untrusted: parsing is regex-only on a bounded prefix of the answer.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from vlthinker import rewards
from vlthinker.data.prompts import verifier_meta
from vlthinker.registry import Registry

MAX_PARSE_CHARS = 4096  # parsers only ever look at this much of an answer
_NUMBER = re.compile(r"[-+]?(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")

#: ``rule(extracted_answer, record, eval_details) -> score in [0, 1]``.
Rule = Callable[[str, Any, dict[str, Any]], float]

#: Item rules by the name a record gives in ``meta["eval"]["rule"]``. ``rule_only=True`` marks
#: rules for items the training verifiers cannot score (pointing): the rule is their accuracy.
RULES: Registry[Rule] = Registry("eval rule")


def eval_meta(record: Any) -> dict[str, Any]:
    return dict((record.meta or {}).get("eval") or {})


def score_prediction(record: Any, response: str, prompt_config: Any = None) -> dict[str, Any]:
    """``{"score", "accuracy", "format", "extracted", "numbers", …}`` for one response to one
    record; ``numbers`` is the number reading the verifiers used (``"official"`` for benchmark
    items, which declare it; records that declare none get the training default)."""
    details = eval_meta(record)
    rule = details.get("rule")
    apply_rule = RULES.get(rule) if rule else None  # an unknown rule fails, naming the known
    meta = verifier_meta(record, prompt_config)
    extracted = rewards.extract_answer(response)
    extracted = "" if extracted is None else str(extracted)
    if apply_rule is not None and RULES.meta(rule).get("rule_only", False):
        fmt = rewards.format_reward(
            response, meta.get("reasoning", True), meta.get("think_tag", "think")
        )
        value = apply_rule(extracted[:MAX_PARSE_CHARS], record, details)
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
            apply_rule(extracted[:MAX_PARSE_CHARS], record, details)
            if apply_rule is not None
            else result["accuracy"]
        )
    result["score"] = float(value)
    result["extracted"] = extracted[:MAX_PARSE_CHARS]
    # the verifiers' number reading; a rule-only item (pointing) reads no number through them
    rule_only = apply_rule is not None and RULES.meta(rule).get("rule_only", False)
    result["numbers"] = None if rule_only else rewards.number_reading(meta)
    return result


# ---------------------------------------------------------------- rules


def _answers(record: Any, details: dict[str, Any]) -> list[str]:
    answers = details.get("answers")
    return [str(a) for a in answers] if answers else [str(record.answer)]


@RULES.register("anls")
def rule_anls(pred: str, record: Any, details: dict[str, Any]) -> float:
    """DocVQA / InfoVQA ANLS, best over the reference answers; a similarity of exactly 0.5 is
    kept (open-compass/VLMEvalKit ``vlmeval/dataset/utils/vqa_eval.py``, see
    ``rewards.anls``)."""
    return float(rewards.anls(pred, _answers(record, details), threshold=0.5))


@RULES.register("relaxed")
def rule_relaxed(pred: str, record: Any, details: dict[str, Any]) -> float:
    """ChartQA relaxed accuracy exactly as EvolvingLMMs-Lab/lmms-eval
    ``lmms_eval/tasks/chartqa/utils.py`` and open-compass/VLMEvalKit
    ``vlmeval/dataset/utils/vqa_eval.py`` (``relaxed_correctness``): 5 % tolerance only when
    the stripped prediction and a reference both are what ``float()`` reads (trailing ``%`` →
    /100; no thousands separators, no currency signs: ``2,829.38`` is text), else
    case-insensitive exact text; best over the references."""
    references = _answers(record, details)
    return float(rewards.relaxed_accuracy(pred, references, tolerance=0.05, numbers="official"))


@RULES.register("ocrbench")
def rule_ocrbench(pred: str, record: Any, details: dict[str, Any]) -> float:
    """OCRBench, as its authors' evaluation (Yuliang-Liu/MultimodalOCR, reproduced by
    VLMEvalKit's and lmms-eval's OCRBench tasks): a reference answer contained in the prediction
    scores 1 — after lower-casing and turning newlines into spaces, or, for the HME100k
    handwritten-maths items, after removing every space and newline (case kept)."""
    if details.get("handwritten_math"):
        squeeze = lambda text: text.strip().replace("\n", " ").replace(" ", "")  # noqa: E731
        predicted = squeeze(pred)
        return float(any(squeeze(a) in predicted for a in _answers(record, details)))
    normal = lambda text: text.lower().strip().replace("\n", " ")  # noqa: E731
    predicted = normal(pred)
    return float(any(normal(a) in predicted for a in _answers(record, details)))


@RULES.register("iou50")
def rule_iou50(pred: str, record: Any, details: dict[str, Any]) -> float:
    """RefCOCO / RefCOCO+ / RefCOCOg Acc@0.5, as lmms-eval's ``refcoco*_bbox_rec`` tasks
    (EvolvingLMMs-Lab/lmms-eval ``lmms_eval/tasks/refcoco*/``): both boxes mapped to pixels of
    the original image (the record's ``box_format`` and ``image_size``) by the training
    verifier's parser, then IoU >= 0.5."""
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


def _normal_text(text: str) -> str:
    text = text.lower().strip()
    text = re.sub(r"[\s]+", " ", text)
    return text.strip(" .,;:!?\"'`()[]{}")


_PY_FLOAT = re.compile(r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*")


def _python_float(text: str) -> float | None:
    """``float(text)`` for a finite decimal literal (what the official scripts' ``float()``
    accepts, less ``inf`` / ``nan``, which never score), else None."""
    if not _PY_FLOAT.fullmatch(text[:200]):
        return None
    try:
        value = float(text)
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _mathvista_choice(extraction: str, choices: list[str]) -> str | None:
    """MathVista's choice normalisation: a letter in parentheses ``(B)`` is the letter; a
    letter names its option text; anything else becomes the option nearest in edit distance."""
    from rapidfuzz.distance import Levenshtein

    if not choices:
        return None
    bracketed = re.search(r"\(([a-zA-Z])\)", extraction)
    if bracketed:
        extraction = bracketed.group(1).upper()
    letters = [chr(ord("A") + i) for i in range(len(choices))]
    if extraction in letters:
        return choices[letters.index(extraction)]
    distances = [Levenshtein.distance(extraction, choice) for choice in choices]
    return choices[distances.index(min(distances))]


@RULES.register("mathvista")
def rule_mathvista(pred: str, record: Any, details: dict[str, Any]) -> float:
    """MathVista, as lupantech/MathVista ``evaluation/calculate_score.py``
    (``normalize_extracted_answer`` + ``safe_equal``) scores an extracted answer.

    Multiple choice: the answer becomes an option text (a letter, ``(B)``, or the nearest option
    by edit distance) and must equal the key's text, so with duplicate option texts either
    letter scores. Free form: integer → ``str(int(float(x)))`` (truncation, as officially),
    float → ``str(round(float(x), precision))``, list and text → the string itself; the result
    must equal the key string exactly.
    """
    kind = details.get("kind", "text")
    extraction = pred.strip()
    answer = str(details.get("answer_text", record.answer)).strip()
    if kind == "multi_choice":
        choices = [str(c) for c in details.get("choices") or []]
        return float(_mathvista_choice(extraction, choices) == answer)
    if kind == "integer":
        value = _python_float(extraction)
        return float(value is not None and str(int(value)) == answer)
    if kind == "float":
        value = _python_float(extraction)
        digits = int(details.get("precision") or 0)
        return float(value is not None and str(round(value, digits)) == answer)
    return float(extraction == answer)


_SCI_TIMES = re.compile(
    r"^([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?:\\times|\\cdot|×|\*|x)\s*10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?$"
)
_SCI_POWER = re.compile(r"^10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?$")
_SCI_E = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")


def exact_number(text: str) -> Decimal | None:
    """The exact value of a text that is one number in any common notation, or None:
    ``1500``, ``1,500``, ``1.5e3``, ``1.5 \\times 10^{3}``, ``1.5 × 10^3``, ``10^{-2}``
    (``$…$`` and a trailing ``%`` on both sides are ignored)."""
    s = text.strip().strip("$").strip().rstrip("%").strip()
    if len(s) > 100:
        return None
    if re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    try:
        if _SCI_E.fullmatch(s):
            return Decimal(s)
        m = _SCI_TIMES.fullmatch(s)
        if m:
            return Decimal(m.group(1)).scaleb(int(m.group(2)))
        m = _SCI_POWER.fullmatch(s)
        if m:
            return Decimal(1).scaleb(int(m.group(1)))
    except (InvalidOperation, ValueError):
        return None
    return None


def _charxiv_terms(text: str) -> list[str]:
    """Comma-separated terms, each normalised; a subplot letter in parentheses ``(b)`` is ``b``."""
    return sorted(_normal_text(term) for term in text.split(",") if _normal_text(term))


@RULES.register("charxiv")
def rule_charxiv(pred: str, record: Any, details: dict[str, Any]) -> float:
    """CharXiv reasoning questions, by the grading rubric of princeton-nlp/CharXiv
    ``constants.py`` (``REASONING_GRADING_INST``; ``src/constants.py`` in later versions) with
    the judge's reading replaced by rule (judge-free, hence †).

    Number answers (questions of sources 3 and 4): 1 iff the two numbers are exactly equal in
    value, any notation (``0.012`` is not ``0.01``; ``9.4 \\times 10^{1}`` is 94). Text answers:
    the same terms after normalisation, in any order when several are asked for (source 1),
    ``(b)`` and ``b`` alike; otherwise normalised equality.
    """
    answer = str(record.answer).strip()
    key = exact_number(answer)
    if key is not None:
        value = exact_number(pred)
        return float(value is not None and value == key)
    if "," in answer:
        return float(_charxiv_terms(pred) == _charxiv_terms(answer))
    return float(_normal_text(pred) == _normal_text(answer))


# MMMU open-question parsing (MMMU-Benchmark/MMMU eval/eval_utils.py, parse_open_response)
_MMMU_KEY_WORDS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_MMMU_NUMBERS = (
    re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b"),
    re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+"),
    re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])"),
)


def _mmmu_normal(text: str) -> list[str | float]:
    """MMMU's normalisation: a number → itself rounded to 2 decimals; a string → lower-cased,
    and a one-character string → its two space-padded forms (so "c" is not found in "acid")."""
    text = text.strip()
    try:
        return [round(float(text.replace(",", "")), 2)]
    except ValueError:
        pass
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


def mmmu_open_candidates(response: str) -> list[str | float]:
    """What MMMU reads from an open answer: the tail after the last key word ("so", "is",
    "therefore", "answer", …, and "=" in the last sentence) of each sentence, or the whole
    answer when none has one, plus every number in those tails; all normalised."""
    text = response[:MAX_PARSE_CHARS].strip().strip(".").lower()
    sentences = re.split(r"\.\s(?=[A-Z])|\n", text)
    tails: list[str] = []
    for i, sentence in enumerate(sentences):
        words = _MMMU_KEY_WORDS + (("=",) if i == len(sentences) - 1 else ())
        found = [sentence.split(word)[-1].strip() for word in words if word in sentence]
        if found:
            shortest = min(found, key=len)
            if shortest not in (":", ",", ".", "!", "?", ";", "'"):
                tails.append(shortest)
    if not tails:
        tails = [text]
    pieces = list(tails)
    for tail in tails:
        for pattern in _MMMU_NUMBERS:
            pieces.extend(pattern.findall(tail))
    out: list[str | float] = []
    for piece in pieces:
        for item in _mmmu_normal(piece):
            if item not in out:
                out.append(item)
    return out


@RULES.register("mmmu_open")
def rule_mmmu_open(pred: str, record: Any, details: dict[str, Any]) -> float:
    """MMMU open question, as MMMU-Benchmark/MMMU ``eval/eval_utils.py`` (``parse_open_response``
    + ``eval_open``; ``mmmu/utils/eval_utils.py`` in later layouts): a predicted number equal
    (to 2 decimals) to a reference number, or a reference string contained in a predicted
    string; one-character references are padded with a space, so "C" does not match "acid"."""
    references: list[str | float] = []
    for answer in _answers(record, details):
        references.extend(_mmmu_normal(answer))
    for candidate in mmmu_open_candidates(pred):
        if isinstance(candidate, str):
            if any(isinstance(ref, str) and ref in candidate for ref in references):
                return 1.0
        elif candidate in references:
            return 1.0
    return 0.0


@RULES.register("yes_no")
def rule_yes_no(pred: str, record: Any, details: dict[str, Any]) -> float:
    """RoboSpatial yes/no, as chanhee-luke/RoboSpatial-Eval ``evaluation.py``
    (``evaluate_answer``): the lower-cased answer must start with the key ("yes" / "no"), so
    "Yes, it is." is yes and "nothing blocks it" counts as "no"."""
    return float(pred.strip().lower().startswith(str(record.answer).strip().lower()))


_TUPLE_POINT = re.compile(r"\(\s*(\d+\.?\d*)\s*,\s*(\d+\.?\d*)\s*\)")
_LIST_POINT = re.compile(r"\[\s*(\d+\.?\d*)\s*,\s*(\d+\.?\d*)\s*\]")


def first_point(text: str) -> tuple[float, float] | None:
    """RoboSpatial's point reading: the first ``(x, y)`` tuple, else the first ``[x, y]`` pair
    (non-negative numbers), in the answer's own coordinates."""
    for pattern in (_TUPLE_POINT, _LIST_POINT):
        m = pattern.search(text[:MAX_PARSE_CHARS])
        if m:
            return float(m.group(1)), float(m.group(2))
    return None


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


@RULES.register("point_in_polygon", rule_only=True)
def rule_point_in_polygon(pred: str, record: Any, details: dict[str, Any]) -> float:
    """RoboSpatial context, as chanhee-luke/RoboSpatial-Eval ``evaluation.py``: the first
    point of the answer (see ``first_point``), as given, inside the key polygon (normalised
    coordinates) by ray casting."""
    point = first_point(pred)
    if point is None:
        return 0.0
    return float(point_in_polygon(point[0], point[1], details["polygon"]))


#: Where RefSpatial's rule was read: open-compass/VLMEvalKit at this commit (the parser's file
#: last changed in ``REFSPATIAL_FILE_COMMIT``).
REFSPATIAL_RULE_FILES = (
    "vlmeval/dataset/refspatialbench.py (RefSpatialBench.evaluate)",
    "vlmeval/dataset/utils/spatial_bench/tools/utils.py (Point2DParser)",
)
REFSPATIAL_COMMIT = "e8e78f05f3080fe28154f2130321f17951c3be94"
REFSPATIAL_FILE_COMMIT = "401916c00a4769884aeca865a77674abe0c62a26"

# a parenthesised list of numbers, ``(x, y)`` or ``(x0, y0, x1, y1)``: digits before any point,
# commas followed by optional spaces, nothing else inside the brackets
_PAREN_NUMBERS = re.compile(r"\(([-+]?\d+\.?\d*(?:,\s*[-+]?\d+\.?\d*)*)\)")


def load_mask(path: str) -> Any:
    """A binary mask as a boolean array, as RefSpatial's official scorer reads it: a pixel is
    inside when its value is above 0 (the first channel of a multi-channel image)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image)
    if array.ndim == 3:
        array = array[:, :, 0]
    return array > 0


def _strip_fence(text: str) -> str:
    """The text inside a Markdown code fence (its first line, the language, dropped)."""
    s = text.strip()
    if not s.startswith("```"):
        return s
    newline = s.find("\n")
    inner = (s[newline + 1 :] if newline != -1 else s.lstrip("`")).strip()
    return inner[:-3].strip() if inner.endswith("```") else inner


def _json_points(text: str, width: float, height: float) -> list[tuple[float, float]] | None:
    """Points from a JSON (else Python-literal) list of ``{"point_2d": [x, y]}`` objects (or
    ``"point"``), in [0, 1]: a point whose larger absolute coordinate is at most 1.5 is
    normalised, at most 1000 on Qwen's 0–1000 scale, else in pixels. None when the text is no
    such literal or holds no point (then the text patterns are read)."""
    import ast

    s = _strip_fence(text)
    try:
        obj = json.loads(s)
    except (ValueError, RecursionError):
        try:
            obj = ast.literal_eval(s)  # bounded text, literal syntax only; anything may fail
        except Exception:
            return None
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, list):
        return None
    points = []
    for item in obj:
        if not isinstance(item, dict):
            continue
        point = item.get("point_2d") or item.get("point")
        if not (isinstance(point, (list, tuple)) and len(point) == 2):
            continue
        try:
            x, y = float(point[0]), float(point[1])
        except (TypeError, ValueError, OverflowError):
            continue
        largest = max(abs(x), abs(y))
        if 0.0 <= largest <= 1.5:
            points.append((x, y))
        elif 0.0 <= largest <= 1000.0:
            points.append((x / 1000.0, y / 1000.0))
        else:
            points.append((x / width, y / height))
    return points or None


def _axis_weights(start: int, stop: int, size: int) -> tuple[Any, int]:
    """How many of the pixel indices ``start … stop - 1`` land on each index of an axis of
    ``size`` once clipped to it, and how many indices there are."""
    import numpy as np

    weights = np.zeros(size, dtype=np.float64)
    lo, hi = max(start, 0), min(stop, size)
    if hi > lo:
        weights[lo:hi] = 1.0
    weights[0] += max(0, min(stop, 0) - start)
    weights[size - 1] += max(0, stop - max(start, size))
    return weights, max(0, stop - start)


def _pixel(value: float, size: int) -> int | None:
    """The pixel of a [0, 1] coordinate: scaled, clipped to the image, then rounded (half to
    even); None for NaN, which lands nowhere."""
    if math.isnan(value):
        return None
    return round(min(max(value * size, 0.0), size - 1.0))


def refspatial_hits(text: str, mask: Any) -> tuple[float, float]:
    """``(points inside the mask, points)`` for an answer, by VLMEvalKit's current RefSpatial rule
    (``REFSPATIAL_RULE_FILES`` at ``REFSPATIAL_COMMIT``): the JSON ``point_2d`` objects, else every
    ``(x, y)`` and ``(x0, y0, x1, y1)`` in the text — a pair or box is normalised when its larger
    absolute number is at most 1.5, else in pixels; a box stands for every pixel it covers —,
    each point mapped to a pixel clipped to the image and then rounded."""
    height, width = mask.shape
    w, h = float(width), float(height)
    points = _json_points(text, w, h)
    boxes: list[tuple[int, int, int, int]] = []
    if points is None:
        points = []
        for match in _PAREN_NUMBERS.finditer(text):
            numbers = [float(n) for n in match.group(1).split(",")]
            normalised = max(abs(n) for n in numbers) <= 1.5
            if len(numbers) == 2:
                x, y = numbers
                points.append((x, y) if normalised else (x / w, y / h))
            elif len(numbers) == 4:
                x0, y0, x1, y1 = numbers
                if normalised:
                    x0, y0, x1, y1 = x0 * w, y0 * h, x1 * w, y1 * h
                x0, x1 = min(x0, x1), max(x0, x1)
                y0, y1 = min(y0, y1), max(y0, y1)
                try:
                    corners = (round(x0), round(y0), round(x1), round(y1))
                except OverflowError:  # an infinite corner: no box
                    continue
                if corners[2] > corners[0] and corners[3] > corners[1]:
                    boxes.append(corners)
    hits, count = 0.0, float(len(points))
    for x, y in points:
        col, row = _pixel(x, width), _pixel(y, height)
        if col is not None and row is not None:
            hits += float(mask[row, col])
    inside = mask.astype("float64")
    for x0, y0, x1, y1 in boxes:
        cols, n_cols = _axis_weights(x0, x1, width)
        rows, n_rows = _axis_weights(y0, y1, height)
        hits += float(rows @ inside @ cols)
        count += float(n_cols) * float(n_rows)
    return hits, count


@RULES.register("point_in_mask", rule_only=True)
def rule_point_in_mask(pred: str, record: Any, details: dict[str, Any]) -> float:
    """RefSpatial: the share of predicted points inside the mask, as open-compass/VLMEvalKit
    scores it today (``vlmeval/dataset/refspatialbench.py`` with ``Point2DParser`` of
    ``vlmeval/dataset/utils/spatial_bench/tools/utils.py``, commit ``e8e78f05``): points read by
    :func:`refspatial_hits` — each clipped to the image and then rounded to a pixel (a point past
    an edge lands on the edge pixel) —; no point scores 0."""
    mask = load_mask(details["mask"])
    hits, count = refspatial_hits(pred, mask)
    return hits / count if count else 0.0
