"""Answer extraction and the format reward (docs/method.md §6: answers come from ``<answer>``)."""

from __future__ import annotations

import re

from vlthinker.rewards.safety import MAX_ANSWER_CHARS, MAX_RESPONSE_CHARS, sanitize

__all__ = ["extract_answer", "extract_boxed", "format_reward", "strip_answer_tags"]

_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,31}")
_BOXED = "\\boxed"
#: How many ``\boxed`` occurrences (from the end) are tried before giving up.
_MAX_BOXED_TRIES = 8


def _tail(text: str) -> str:
    return text[-MAX_RESPONSE_CHARS:] if len(text) > MAX_RESPONSE_CHARS else text


def extract_boxed(text: str) -> str | None:
    r"""Content of the final ``\boxed{...}`` with balanced braces, or None.

    Rule: scan backwards over the last few ``\boxed`` occurrences; the first one (from the end)
    whose braces balance within MAX_ANSWER_CHARS characters wins.
    """
    if not isinstance(text, str):
        return None
    text = _tail(text)
    end = len(text)
    for _ in range(_MAX_BOXED_TRIES):
        pos = text.rfind(_BOXED, 0, end)
        if pos < 0:
            return None
        i = pos + len(_BOXED)
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            stop = min(len(text), i + MAX_ANSWER_CHARS + 2)
            for j in range(i, stop):
                c = text[j]
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        return sanitize(text[i + 1 : j].strip())
        end = pos
    return None


def extract_answer(text: str) -> str | None:
    r"""The last complete ``<answer>…</answer>``'s content, else the final ``\boxed{…}``, else None.

    Rule: the last ``</answer>`` paired with the nearest ``<answer>`` before it.  Only the tail
    (MAX_RESPONSE_CHARS) of a huge response is searched; the content is stripped, sanitized and
    truncated to MAX_ANSWER_CHARS.
    """
    if not isinstance(text, str):
        return None
    text = _tail(text)
    close = text.rfind("</answer>")
    if close >= 0:
        open_ = text.rfind("<answer>", 0, close)
        if open_ >= 0:
            return sanitize(text[open_ + len("<answer>") : close].strip())
    return extract_boxed(text)


def strip_answer_tags(value: str) -> str:
    """Reference answers are stored as ``<answer>X</answer>``: return ``X`` (or ``value``)."""
    if "<answer>" in value and "</answer>" in value:
        inner = extract_answer(value)
        if inner is not None:
            return inner
    return value.strip()


def format_reward(text: str, reasoning: bool, think_tag: str = "think") -> float:
    r"""1.0 iff the whole stripped response is ``<T>…</T>\s*<answer>…</answer>`` (reasoning) or
    ``<answer>…</answer>`` (direct), with exactly one of each tag; else 0.0.

    ``T`` is ``think_tag`` (the authors' Qwen3 prompt uses ``thinking``).  Implemented with
    ``str.count``/``str.find`` only: linear time on any input.
    """
    if not isinstance(think_tag, str) or not _TAG_NAME.fullmatch(think_tag):
        raise ValueError(f"invalid think_tag {think_tag!r}")
    if not isinstance(text, str) or len(text) > MAX_RESPONSE_CHARS:
        return 0.0
    s = text.strip()
    a_open, a_close = "<answer>", "</answer>"
    if s.count(a_open) != 1 or s.count(a_close) != 1 or not s.endswith(a_close):
        return 0.0
    t_open, t_close = f"<{think_tag}>", f"</{think_tag}>"
    n_open, n_close = s.count(t_open), s.count(t_close)
    ans_start = s.find(a_open)
    if not reasoning:
        return 1.0 if n_open == 0 and n_close == 0 and ans_start == 0 else 0.0
    if n_open != 1 or n_close != 1 or not s.startswith(t_open):
        return 0.0
    close_pos = s.find(t_close)
    if close_pos < len(t_open):
        return 0.0
    between = s[close_pos + len(t_close) : ans_start]
    if ans_start < close_pos or between.strip() != "":
        return 0.0
    return 1.0
