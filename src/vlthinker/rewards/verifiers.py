"""Accuracy verifiers for text answers: multiple choice, numbers, charts, OCR, counting.

Every verifier takes untrusted prediction text, returns a finite float in [0, 1], and never
raises on any prediction (bad input scores 0).
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from rapidfuzz.distance import Levenshtein

from vlthinker.rewards.extract import strip_answer_tags
from vlthinker.rewards.safety import clamp01, to_text

__all__ = [
    "NUMBER_READINGS",
    "anls",
    "counting",
    "mean_relative_accuracy",
    "multiple_choice",
    "normalize_text",
    "numeric",
    "official_float",
    "parse_number",
    "parse_options",
    "relaxed_accuracy",
    "wer_score",
]

# ---------------------------------------------------------------------------- text helpers

_WS = re.compile(r"\s+")
_LATEX_WRAP = re.compile(r"^\\(?:text|textbf|mathrm|mathbf|boxed)\{(.*)\}$", re.S)


def _answer_text(value: Any) -> str:
    """Sanitized, tag-stripped text of an answer/prediction value."""
    return strip_answer_tags(to_text(value))


def _unwrap(s: str) -> str:
    """Strip ``$…$``, ``\\text{…}``/``\\boxed{…}`` wrappers and surrounding whitespace (bounded)."""
    s = s.strip()
    for _ in range(4):
        before = s
        if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
            s = s.strip("$").strip()
        m = _LATEX_WRAP.match(s)
        if m:
            s = m.group(1).strip()
        if s == before:
            break
    return s


def normalize_text(value: Any) -> str:
    """Lower-case, whitespace-collapsed, wrapper-free text; trailing period dropped."""
    s = _unwrap(_answer_text(value)).lower()
    s = _WS.sub(" ", s).strip()
    return s.rstrip(".").strip()


def _alternatives(answer: Any) -> list[Any]:
    """A list answer means "any of these"; anything else is a single answer."""
    if isinstance(answer, (list, tuple)):
        return list(answer)[:64]
    return [answer]


# ---------------------------------------------------------------------------- numbers

_NUM = re.compile(
    r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d{1,4})?|[-+−]?\.\d+(?:[eE][-+]?\d{1,4})?"
)
_FRACTION = re.compile(r"^\s*([-+−]?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")
_LATEX_FRAC = re.compile(
    r"^\s*([-+−]?)\\d?frac\{\s*(\d+(?:\.\d+)?)\s*\}\{\s*(\d+(?:\.\d+)?)\s*\}\s*$"
)
_PERCENT = re.compile(r"%|\\%|\bpercent\b|\bper cent\b", re.I)
_UNIT_POWER = re.compile(r"\^\{?\d\}?|[²³]")
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}


#: How a verifier reads a number (its ``numbers`` option). ``"official"``: as the benchmarks'
#: official scorers do, Python's ``float()`` on the answer text (so ``2,829.38`` and ``$5`` are
#: text, not numbers); benchmark items declare it. ``"lenient"``: the training reading, which
#: also takes thousands separators and currency signs (``1,234``, ``$1,234.50``); the default of
#: the training rewards.
NUMBER_READINGS = ("official", "lenient")


def _check_reading(numbers: str) -> bool:
    """True for the lenient reading; an unknown reading is a configuration error."""
    if numbers not in NUMBER_READINGS:
        raise ValueError(f"unknown number reading {numbers!r}; expected one of {NUMBER_READINGS}")
    return numbers == "lenient"


def official_float(text: Any) -> float | None:
    """What the official scorers' ``float(text)`` gives (ChartQA's ``relaxed_correctness``,
    VSI-Bench's ``to_float``): Python's own number syntax — no thousands separators, no
    currency signs —, None where ``float()`` raises. Non-finite values are kept, as there."""
    s = str(text)[:400]
    try:
        return float(s)
    except (ValueError, OverflowError):
        return None


_SIGN = "+-−"
_CURRENCY = "$€£¥"
_PLAIN_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,4})?")
_GROUPED_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_PERCENT_SUFFIX = re.compile(r"\s*(?:\\?%|percent|per cent)$", re.I)
#: Suffixes every numeric answer may carry: the degree sign in its plain and LaTeX forms.
_DEGREE_SUFFIX = re.compile(r"\s*(?:°|\^\s*\{?\\circ\}?|\\circ|\\degree)$")


def _strip_unit(s: str, units: Sequence[str]) -> str:
    """``s`` without one trailing declared unit (longest first, case-insensitive)."""
    lowered = s.lower()
    for unit in sorted((str(u).strip() for u in units if str(u).strip()), key=len, reverse=True):
        if lowered.endswith(unit.lower()):
            return s[: len(s) - len(unit)].rstrip()
    return s


def parse_number(
    value: Any, units: Sequence[str] = (), numbers: str = "lenient"
) -> tuple[float, bool] | None:
    """The number an answer *is*: ``(value, had_percent_sign)``, or None.

    Rule: after unwrapping ``$``/``\\boxed`` and dropping a final period, the whole text must be
    one number.  The only decorations read are deliberate and listed here: a sign, a leading
    currency sign (``$1,234.50``), thousands separators in groups of three (``1,234``), a
    trailing percent sign (``12%``), a trailing degree sign, a trailing unit named in ``units``
    (units the task declares, e.g. ``("cm^2",)``), simple fractions ``a/b`` and
    ``\\frac{a}{b}``, and the words zero..twenty.  Any other text around the number
    (``"below 10"``, ``"12 kg"`` when ``kg`` is not declared) makes it a non-number, so the
    caller compares texts instead.  Non-finite values -> None.  With ``numbers="official"``
    (benchmark scoring) currency signs and thousands separators are not read: such a text is
    no number, as for the official scorers' ``float()``.
    """
    lenient = _check_reading(numbers)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            f = float(value)
        except OverflowError:
            return None
        return (f, False) if math.isfinite(f) else None
    s = _unwrap(_answer_text(value))
    if not s or len(s) > 200:
        return None
    s = _WS.sub(" ", s).strip()
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1].rstrip()
    if s.lower() in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[s.lower()]), False
    s = _strip_unit(s, units)
    s = _DEGREE_SUFFIX.sub("", s)
    pct = bool(_PERCENT_SUFFIX.search(s))
    s = _PERCENT_SUFFIX.sub("", s).strip()
    for pat in (_FRACTION, _LATEX_FRAC):
        m = pat.match(s)
        if m:
            sign = -1.0 if m.group(1) in ("-", "−") else 1.0
            groups = m.groups()[-2:] if pat is _LATEX_FRAC else m.groups()
            try:
                num, den = float(groups[0].replace("−", "-")), float(groups[1])
            except ValueError:
                return None
            if den == 0:
                return None
            v = (sign * num / den) if pat is _LATEX_FRAC else num / den
            return (v, pct) if math.isfinite(v) else None
    negative = False
    for _ in range(2):  # "-$5", "$-5", "$5"
        if s[:1] and s[0] in _SIGN:  # "" is in every string: "%" leaves nothing to read
            negative = negative != (s[0] in "-−")
            s = s[1:].lstrip()
        if lenient and s[:1] and s[0] in _CURRENCY:
            s = s[1:].lstrip()
    if not (_PLAIN_NUMBER.fullmatch(s) or (lenient and _GROUPED_NUMBER.fullmatch(s))):
        return None
    try:
        f = float(s.replace(",", ""))
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(f):
        return None
    return (-f if negative else f), pct


def _candidates(parsed: tuple[float, bool]) -> tuple[float, ...]:
    """A percent-signed number may mean x or x/100 ("12%" vs 0.12)."""
    v, pct = parsed
    return (v, v / 100.0) if pct else (v,)


def numeric(
    prediction: Any, answer: Any, units: Sequence[str] = (), numbers: str = "lenient"
) -> float:
    """1.0 iff the numbers are equal after rounding to 2 decimals (docs/method.md §6 "numerical").

    Both sides must *be* numbers in the sense of :func:`parse_number` (percent, currency,
    thousands separators and the declared ``units`` tolerated; a percent-signed number may mean
    x or x/100); when either side is not a number, the normalised texts must be equal and
    non-empty.  A list answer accepts any of its alternatives.  ``numbers="official"`` (benchmark
    scoring) reads no currency signs or thousands separators (see :data:`NUMBER_READINGS`).
    """
    pred = parse_number(prediction, units, numbers)
    for ans in _alternatives(answer):
        gold = parse_number(ans, units, numbers)
        if pred is not None and gold is not None:
            pairs = ((p, g) for p in _candidates(pred) for g in _candidates(gold))
            if any(round(p, 2) == round(g, 2) for p, g in pairs):
                return 1.0
        else:
            text = normalize_text(ans)
            if text != "" and normalize_text(prediction) == text:
                return 1.0
    return 0.0


_STRICT_FLOAT = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def _chartqa_float(text: str, thousands: bool) -> float | None:
    """ChartQA's number reading: the stripped text is a number, a trailing ``%`` divides it by
    100; with ``thousands`` (the lenient training reading), separators in groups of three are
    read too (``1,000``). Without it, exactly the official ``_to_float``: ``float()`` of the
    text, or of the text less its trailing ``%`` signs, divided by 100."""
    s = text.strip()
    if not thousands:
        if s.endswith("%"):
            value = official_float(s.rstrip("%"))
            return None if value is None else value / 100.0
        return official_float(s)
    scale = 1.0
    if s.endswith("%"):
        s, scale = s.rstrip("%").strip(), 0.01
    if thousands and _GROUPED_NUMBER.fullmatch(s.lstrip("+-")):
        s = s.replace(",", "")
    if not _STRICT_FLOAT.fullmatch(s):
        return None
    try:
        value = float(s) * scale
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def relaxed_accuracy(
    prediction: Any, answer: Any, tolerance: float = 0.05, numbers: str = "lenient"
) -> float:
    """ChartQA relaxed accuracy, best over the alternatives of ``answer``.

    Official rule (Masry et al. 2022, §5.1; ``relaxed_correctness`` in
    EvolvingLMMs-Lab/lmms-eval ``lmms_eval/tasks/chartqa/utils.py`` and open-compass/VLMEvalKit
    ``vlmeval/dataset/utils/vqa_eval.py``): when the stripped prediction and the answer are both
    numbers (a trailing ``%`` divides by 100) and the answer is not 0, correct iff
    ``|p - a| / |a| <= tolerance``; otherwise correct iff the stripped texts are equal ignoring
    case.  A number inside other text is text (``"Under 30 mins"`` is not 30).  The lenient
    reading (``numbers="lenient"``, the training default) also reads ``1,000`` as 1000, a
    deliberate normalisation the official rule does not make; benchmark scoring passes
    ``numbers="official"``: ``float()`` exactly, so ``2,829.38`` against ``2829.38`` is text and
    scores 0.
    """
    thousands = _check_reading(numbers)
    pred = _answer_text(prediction)
    pred_value = _chartqa_float(pred, thousands)
    for ans in _alternatives(answer):
        gold = _answer_text(ans)
        gold_value = _chartqa_float(gold, thousands)
        if pred_value is not None and gold_value:
            try:
                change = abs(pred_value - gold_value) / abs(gold_value)
            except (OverflowError, ZeroDivisionError):
                continue
            if change <= tolerance:  # NaN compares False, as in the official rule
                return 1.0
        elif pred.strip().lower() == gold.strip().lower():
            return 1.0
    return 0.0


def _number_pairs(
    prediction: Any, answer: Any, numbers: str = "lenient"
) -> Iterator[tuple[float, float]]:
    """``(predicted, reference)`` numbers for each alternative of ``answer`` that is a number;
    none when the prediction is not a number. The official reading is ``float()`` of the
    stripped text (finite values only: a non-finite one never scores there either)."""
    lenient = _check_reading(numbers)
    pred = _read_number(prediction, lenient)
    if pred is None:
        return
    for ans in _alternatives(answer):
        gold = _read_number(ans, lenient)
        if gold is not None:
            yield pred, gold


def _read_number(value: Any, lenient: bool) -> float | None:
    if lenient:
        parsed = parse_number(value)
        return None if parsed is None else parsed[0]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number: float | None = float(value)
    else:
        number = official_float(_answer_text(value).strip())
    return number if number is not None and math.isfinite(number) else None


_MRA_THRESHOLDS = tuple(range(50, 100, 5))  # 0.50, 0.55, ..., 0.95 in hundredths


def mean_relative_accuracy(prediction: Any, answer: Any, numbers: str = "lenient") -> float:
    """Mean relative accuracy (the reference's "regression" reward).

    Rule: over thresholds θ = 0.50, 0.55, …, 0.95, the share with ``|p - a| / |a| < 1 - θ``.
    When ``a == 0`` the relative error is 0 for ``p == 0`` and infinite otherwise.  A
    non-number scores 0; a list answer takes the best alternative.  ``numbers="official"``
    reads a number as VSI-Bench's ``to_float`` does (``float()``: no currency signs or thousands
    separators); the lenient training reading is :func:`parse_number`'s.
    """
    best = 0.0
    for p, g in _number_pairs(prediction, answer, numbers):
        rel = (0.0 if p == 0 else math.inf) if g == 0 else abs(p - g) / abs(g)
        hits = sum(1 for t in _MRA_THRESHOLDS if rel < (100 - t) / 100)
        best = max(best, hits / len(_MRA_THRESHOLDS))
    return clamp01(best)


# ---------------------------------------------------------------------------- multiple choice

_LETTERS = "ABCDEFGHIJ"
_MC_PREFIX = re.compile(
    r"^(?:the\s+)?(?:final\s+|correct\s+|best\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:：]?\s*",
    re.I,
)
_MC_LETTER = re.compile(r"^(?:\(([A-J])\)|\[([A-J])\]|([A-J])(?:[.:：)]|$))")
_OPTION_PREFIX = re.compile(r"^\s*[\(\[]?([A-Ja-j])[\)\]]?\s*[.:：)]\s*(.*)$", re.S)


def parse_options(options: Any) -> list[tuple[str, str]]:
    """Options as ``[(letter, text), …]`` from ``["A. clothing", …]``, plain texts, or the
    reference data's string form ``"['A. clothing', …]"``."""
    if options is None:
        return []
    if isinstance(options, str):
        raw = options.strip()[:20000]
        if not raw or raw == "[]":
            return []
        parsed: Any = None
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            try:
                parsed = ast.literal_eval(raw)  # data, not model text; literal syntax only
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                return []
        options = parsed
    if not isinstance(options, Iterable) or isinstance(options, (str, bytes, dict)):
        return []
    out: list[tuple[str, str]] = []
    for i, opt in enumerate(list(options)[: len(_LETTERS)]):
        text = to_text(opt)
        m = _OPTION_PREFIX.match(text)
        if m:
            out.append((m.group(1).upper(), m.group(2)))
        else:
            out.append((_LETTERS[i], text))
    return out


def _choice_letter(text: str) -> str | None:
    """The option letter a prediction names: "B", "(B)", "B.", "Answer: B", "B. dogs"."""
    s = _MC_PREFIX.sub("", _unwrap(text), count=1).strip()
    bare = s.strip("()[]. ")
    if len(bare) == 1 and bare.upper() in _LETTERS and len(s) <= 4:
        return bare.upper()
    m = _MC_LETTER.match(s)
    if m is None:
        return None
    return next(g for g in m.groups() if g)


def _choice_text(text: str) -> str:
    """The option text a prediction names ("B. dogs" -> "dogs", "dogs" -> "dogs")."""
    s = _MC_PREFIX.sub("", _unwrap(text), count=1).strip()
    m = _OPTION_PREFIX.match(s)
    return m.group(2) if m else s


def _mc_norm(s: str) -> str:
    return normalize_text(s).strip(" .;:!\"'")


def _is_bare_letter(text: str) -> bool:
    bare = _MC_PREFIX.sub("", _unwrap(text), count=1).strip().strip("()[]. ")
    return len(bare) == 1 and bare.upper() in _LETTERS


def multiple_choice(prediction: Any, answer: Any, options: Any = None) -> float:
    """1.0 iff the prediction chooses the key's option.

    Rule (the letter-first reading of MMMU-Benchmark/MMMU ``eval/eval_utils.py``
    ``parse_multi_choice_response`` and open-compass/VLMEvalKit
    ``vlmeval/utils/matching_util.py`` ``can_infer``): the key is a letter ("C", "(C)"), a
    lettered option ("C. human") or an option text ("human", whose letter is looked up in
    ``options``).  A prediction that names a letter ("B", "(B)", "B.", "Answer: B",
    "B. dogs") is scored by that letter alone, so a wrong letter is wrong whatever text follows
    it, and a letter is never read as option text (with options ``["A. B", "B. A", …]`` the
    answer "A" means option A).  Only a prediction naming no letter is compared with the key's
    option text.  Case- and whitespace-insensitive.
    """
    pred = _answer_text(prediction)
    opts = parse_options(options)
    by_letter = {letter: text for letter, text in opts}
    pred_letter = _choice_letter(pred)
    pred_text = _mc_norm(_choice_text(pred))
    for ans in _alternatives(answer):
        ans_text = _answer_text(ans)
        gold_letter = _choice_letter(ans_text)
        if gold_letter is not None and _is_bare_letter(ans_text):
            gold_text = by_letter.get(gold_letter)
        elif gold_letter is not None:
            gold_text = _choice_text(ans_text)
        else:
            gold_text = ans_text
            gold_letter = next(
                (lt for lt, t in opts if _mc_norm(t) == _mc_norm(ans_text) != ""), None
            )
        if pred_letter is not None:
            if pred_letter == gold_letter:
                return 1.0
        elif gold_text is not None and pred_text and pred_text == _mc_norm(gold_text):
            return 1.0
    return 0.0


# ---------------------------------------------------------------------------- OCR


def _ocr_norm(s: Any) -> str:
    return " ".join(_answer_text(s).lower().split())


def anls(prediction: Any, answers: str | Sequence[str], threshold: float = 0.5) -> float:
    """DocVQA / InfoVQA ANLS for one question: ``s = max_a (1 - NL(p, a))``, 0 when s < threshold.

    Official rule (open-compass/VLMEvalKit ``vlmeval/dataset/utils/vqa_eval.py``
    ``anls_compute`` / ``hit_calculate``, the authors' harness; lmms-eval's DocVQA task agrees):
    NL is the Levenshtein distance divided by the longer string's length, on lower-cased,
    whitespace-collapsed strings; a similarity exactly at the threshold is kept ("13" for "12"
    scores 0.5).
    """
    pred = _ocr_norm(prediction)
    best = 0.0
    for ans in _alternatives(answers):
        similarity = 1.0 - Levenshtein.normalized_distance(pred, _ocr_norm(ans))
        if similarity >= threshold:
            best = max(best, similarity)
    return clamp01(best)


def wer_score(prediction: Any, answer: Any) -> float:
    """``max(0, 1 - WER)`` where WER = word edit distance / number of reference words.

    Words are whitespace tokens of the (case-preserving) texts; the edit distance is
    rapidfuzz's Levenshtein on token lists.  An empty reference gives 1 for an empty
    prediction and 0 otherwise.  A list answer takes the best alternative.
    """
    pred = _answer_text(prediction).split()
    best = 0.0
    for ans in _alternatives(answer):
        ref = _answer_text(ans).split()
        if not ref:
            score = 1.0 if not pred else 0.0
        else:
            score = 1.0 - Levenshtein.distance(pred, ref) / len(ref)
        best = max(best, score)
    return clamp01(best)


# ---------------------------------------------------------------------------- counting


def counting(
    prediction: Any, answer: Any, partial: bool = False, numbers: str = "lenient"
) -> float:
    """Object counting: 1.0 iff the counts are equal; with ``partial``,
    ``max(0, 1 - |p - a| / max(a, 1))``.  A non-number scores 0 (``numbers`` as for
    :func:`mean_relative_accuracy`)."""
    best = 0.0
    for p, a in _number_pairs(prediction, answer, numbers):
        if p == a:
            return 1.0
        if partial:
            best = max(best, 1.0 - abs(p - a) / max(abs(a), 1.0))
    return clamp01(best)
