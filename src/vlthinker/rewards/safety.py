"""Input hygiene shared by every verifier: bounded length, no control characters, finite numbers.

Model output is untrusted.  Every function here is linear in its (already truncated) input, uses
no backtracking-prone regular expressions on unbounded text, and never evaluates the text.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = [
    "MAX_ANSWER_CHARS",
    "MAX_MATH_CHARS",
    "MAX_RESPONSE_CHARS",
    "clamp01",
    "is_safe_math",
    "sanitize",
    "to_text",
]

#: Longest response searched for tags; longer responses are cut to their tail.
MAX_RESPONSE_CHARS = 262_144
#: Longest answer string any verifier parses (longer ones are truncated).
MAX_ANSWER_CHARS = 4096
#: Longest expression handed to math-verify; longer ones are refused (scored by string compare).
MAX_MATH_CHARS = 1000

# C0 controls except \t \n \r, DEL and C1 controls are dropped.
_CONTROL = {c: None for c in [*range(0, 9), 11, 12, *range(14, 32), *range(127, 160)]}


def sanitize(text: str, limit: int = MAX_ANSWER_CHARS) -> str:
    """Return ``text`` cut to ``limit`` characters, lone surrogates replaced, controls removed.

    Rule: truncate first (so the cost is bounded), then join surrogate pairs into their character
    and replace each unpaired UTF-16 surrogate with one U+FFFD (they cannot be encoded as UTF-8),
    then delete control characters. The result is never longer than ``limit``: a round trip
    through UTF-8 would turn one lone surrogate into three replacement characters.
    """
    if len(text) > limit:
        text = text[:limit]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.translate(_CONTROL)


def to_text(value: Any, limit: int = MAX_ANSWER_CHARS) -> str:
    """Render an answer value (str, number, other JSON value) as sanitized text."""
    if isinstance(value, str):
        return sanitize(value, limit)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**300 else ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if value is None:
        return ""
    return sanitize(str(value)[: limit * 2], limit)


def clamp01(x: Any) -> float:
    """Map any value to a finite float in [0, 1] (NaN, errors and non-numbers give 0)."""
    try:
        f = float(x)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    if not math.isfinite(f):
        return 0.0
    return min(1.0, max(0.0, f))


_EXP_OP = re.compile(r"\*\*|\^")
_LONG_DIGITS = re.compile(r"\d{41}")
_BIG_FACTORIAL = re.compile(r"\d{4,}\s*!|\\(?:factorial|Gamma)")
_INT = re.compile(r"[-+]?\d+(?:\.\d*)?")
#: Largest exponent literal accepted; at most one exponent may exceed ``_SMALL_EXPONENT``.
_MAX_EXPONENT = 4096
_SMALL_EXPONENT = 64


def _operand(s: str, i: int) -> tuple[str, int]:
    """The exponent operand starting at ``s[i]`` (a braced/parenthesised group or a token)."""
    n = len(s)
    while i < n and s[i] == " ":
        i += 1
    if i < n and s[i] in "{(":
        open_c = s[i]
        close_c = "}" if open_c == "{" else ")"
        depth = 0
        j = i
        while j < n:
            c = s[j]
            if c == open_c:
                depth += 1
            elif c == close_c:
                depth -= 1
                if depth == 0:
                    return s[i + 1 : j], j + 1
            j += 1
        return s[i + 1 :], n
    j = i
    if j < n and s[j] in "+-":
        j += 1
    while j < n and (s[j].isalnum() or s[j] in "._\\"):
        j += 1
    return s[i:j], j


def is_safe_math(expr: str) -> bool:
    """Refuse expressions whose evaluation could blow up (the math-verify pre-screen).

    Rule: length <= MAX_MATH_CHARS; no integer literal of more than 40 digits; no factorial of a
    4+ digit number or Gamma; no exponent tower (an exponent whose operand holds another exponent
    or is directly followed by one: ``9**9**9``, ``10^{10^{10}}``, ``10^10^10``); exponent
    literals at most 4096 and at most one above 64 (so ``(9^4096)^4096`` is refused); at most
    two powers of a bracketed group (``(((9^60)^60)^60)`` is refused).
    """
    if len(expr) > MAX_MATH_CHARS:
        return False
    if _LONG_DIGITS.search(expr) or _BIG_FACTORIAL.search(expr):
        return False
    big = 0
    group_powers = 0
    for m in _EXP_OP.finditer(expr):
        operand, end = _operand(expr, m.end())
        if _EXP_OP.search(operand):
            return False
        rest = expr[end : end + 8].lstrip(" }")
        if rest.startswith(("^", "**")):
            return False
        if expr[: m.start()].rstrip()[-1:] in (")", "}", "]"):
            group_powers += 1  # (…)^n: nested group powers multiply their exponents
            if group_powers > 2:
                return False
        for num in _INT.findall(operand):
            try:
                v = abs(float(num))
            except ValueError:
                return False
            if v > _MAX_EXPONENT:
                return False
            if v > _SMALL_EXPONENT:
                big += 1
                if big > 1:
                    return False
    return True
