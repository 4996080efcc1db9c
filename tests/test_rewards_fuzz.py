"""Hypothesis fuzzing of ``score`` for every answer type with hostile model output.

Properties: never raises on model text, every component is a finite float in [0, 1]
(structure in [0, 0.5]), and each call is bounded in time.  7 answer types x 300 examples plus
the extraction/format/verifier fuzzers give well over 2,000 examples per run.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlthinker.rewards import (
    ANSWER_TYPES,
    anls,
    box_iou,
    extract_answer,
    format_reward,
    math_equal,
    mean_relative_accuracy,
    multiple_choice,
    numeric,
    parse_box,
    relaxed_accuracy,
    score,
    wer_score,
)

#: Per-call bound asserted here: the ~1 s rule plus slack for a loaded CI machine and the
#: restart of a math worker killed by the previous example.
CALL_BOUND_S = 3.0

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HOSTILE = [
    "9**9**9",
    "10^10^10",
    "10^{10^{10}}",
    "2^{2^{2^{2^{2}}}}",
    "(((9^{60})^{60})^{60})^{60}",
    "99999999!",
    "\\frac{1}{0}",
    "\\frac{0}{0}",
    "1/0",
    "__import__('os').system('touch /tmp/vlthinker_pwned')",
    "$__import__('os').getcwd()$",
    "eval('1+1')",
    "lambda: 0",
    '{"boxes": [NaN, 0, 1, 1]}',
    '{"boxes": [Infinity, -Infinity, 1, 1]}',
    '{"boxes": [1e999, 0, 1, 1]}',
    '{"boxes": [' + "1" * 5000 + ", 0, 1, 1]}",
    "[" * 3000 + "]" * 3000,
    '{"boxes": ' * 500,
    "[nan, nan, nan, nan]",
    "(inf,inf),(inf,inf)",
    "\x00\x01\x02\x1b[31m\x7f\x85",
    "\ud800",
    "\udfff\ud800x",
    "\ufeff\u200b\u202e",
    "<answer>",
    "</answer>",
    "<answer><answer></answer>",
    "</answer><answer>",
    "<think><think></think>",
    "</think><answer>",
    "\\boxed{",
    "\\boxed{{{{{{",
    "}}}}}",
    "\\boxed{\\boxed{\\boxed{1}}}",
    "1,000,000,000,000,000,000,000,000",
    "1e308",
    "-1e308",
    "1e-400",
    "NaN",
    "Infinity",
    "-0",
    "(A)(B)(C)",
    "Answer: Answer: Answer:",
    "\\sqrt{-1}",
    "x^{4096}y^{4096}",
    "\\int_0^\\infty e^{-x^2} dx",
    "\\sum_{n=1}^{\\infty} n",
    "\\begin{pmatrix}" + "1&" * 200 + "1\\end{pmatrix}",
    "%" * 50,
    "1" * 10_000,
]

TAGS = ["<answer>", "</answer>", "<think>", "</think>", "<thinking>", "</thinking>", "\\boxed{"]

any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None)
text = st.text(alphabet=any_char, max_size=60)
big = st.integers(min_value=100_000, max_value=1_100_000).flatmap(
    lambda n: st.sampled_from(["a", "<", "{", "9", "<answer>", "\\boxed{", "^9"]).map(
        lambda s: (s * (n // len(s)))[:n]
    )
)
piece = st.one_of(
    st.sampled_from(HOSTILE),
    st.sampled_from(TAGS),
    text,
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
)
body = st.lists(piece, max_size=8).map("".join)


@st.composite
def responses(draw: st.DrawFn) -> str:
    """A hostile response: raw pieces, a well-formed wrapper round them, or a 0.1–1.1 MB blob."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(big) + draw(st.sampled_from(["", "<answer>1</answer>"]))
    inner = draw(body)
    if kind <= 3:
        return inner
    tag = draw(st.sampled_from(["think", "thinking"]))
    reasoning = draw(body)
    if kind <= 6:
        return f"<{tag}>{reasoning}</{tag}><answer>{inner}</answer>"
    return f"<answer>{inner}</answer>"


ANSWERS: dict[str, st.SearchStrategy[Any]] = {
    "multiple_choice": st.one_of(st.sampled_from(list("ABCDEFGHIJ")), text, body),
    "numeric": st.one_of(st.floats(), st.integers(), text, st.lists(text, max_size=3)),
    "chart": st.one_of(st.floats(), text, st.lists(text, max_size=3)),
    "math": st.one_of(st.sampled_from(["1", "\\frac{1}{2}", "x^2", "\\sqrt{2}"]), body),
    "ocr": st.one_of(text, body, st.lists(text, max_size=3)),
    "grounding": st.one_of(
        st.lists(st.floats(), min_size=4, max_size=4),
        st.lists(st.integers(-(10**30), 10**30), min_size=4, max_size=4),
        body,
    ),
    "counting": st.one_of(st.integers(-5, 10**6), st.floats(), text),
}


@st.composite
def metas(draw: st.DrawFn, answer_type: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "reasoning": draw(st.booleans()),
        "think_tag": draw(st.sampled_from(["think", "thinking"])),
    }
    if answer_type == "multiple_choice":
        meta["options"] = draw(
            st.one_of(st.none(), st.lists(text, max_size=10), st.sampled_from(["[]", "['A. x']"]))
        )
    elif answer_type == "chart":
        meta["metric"] = draw(st.sampled_from(["relaxed", "mra"]))
    elif answer_type == "ocr":
        meta["metric"] = draw(st.sampled_from(["wer", "anls"]))
    elif answer_type == "grounding":
        meta["box_format"] = draw(st.sampled_from(["absolute", "normalized", "qwen1000"]))
        if draw(st.booleans()):
            meta["image_size"] = [draw(st.integers(1, 4000)), draw(st.integers(1, 4000))]
            if draw(st.booleans()):
                meta["resized_size"] = [draw(st.integers(1, 4000)), draw(st.integers(1, 4000))]
    elif answer_type == "counting":
        meta["partial"] = draw(st.booleans())
    if draw(st.integers(0, 4)) == 0:
        meta["answers"] = draw(st.lists(text, max_size=2))
    return meta


def check(out: dict[str, float], elapsed: float) -> None:
    assert set(out) >= {"accuracy", "format", "structure"}
    for key, value in out.items():
        assert isinstance(value, float) and math.isfinite(value), (key, value)
        assert 0.0 <= value <= 1.0, (key, value)
    assert out["structure"] <= 0.5
    assert out["format"] in (0.0, 1.0)
    if out["format"] == 0.0:
        assert out["structure"] == 0.0
    assert elapsed < CALL_BOUND_S, elapsed


def _fuzz_type(answer_type: str) -> Any:
    @FUZZ
    @given(response=responses(), answer=ANSWERS[answer_type], meta=metas(answer_type))
    def run(response: str, answer: Any, meta: dict[str, Any]) -> None:
        start = time.monotonic()
        out = score(response, answer, answer_type, **meta)
        check(out, time.monotonic() - start)

    return run


def test_fuzz_multiple_choice() -> None:
    _fuzz_type("multiple_choice")()


def test_fuzz_numeric() -> None:
    _fuzz_type("numeric")()


def test_fuzz_chart() -> None:
    _fuzz_type("chart")()


def test_fuzz_math() -> None:
    _fuzz_type("math")()


def test_fuzz_ocr() -> None:
    _fuzz_type("ocr")()


def test_fuzz_grounding() -> None:
    _fuzz_type("grounding")()


def test_fuzz_counting() -> None:
    _fuzz_type("counting")()


def test_every_answer_type_is_fuzzed() -> None:
    assert set(ANSWERS) == set(ANSWER_TYPES)


@FUZZ
@given(response=responses(), answer=body)
def test_fuzz_extraction_and_verifiers(response: str, answer: str) -> None:
    """The building blocks on their own: same finiteness and range guarantees."""
    start = time.monotonic()
    extracted = extract_answer(response)
    assert extracted is None or len(extracted) <= 4096
    for reasoning in (True, False):
        assert format_reward(response, reasoning) in (0.0, 1.0)
    pred = extracted if extracted is not None else response[:4096]
    values = [
        multiple_choice(pred, answer),
        numeric(pred, answer),
        relaxed_accuracy(pred, answer),
        mean_relative_accuracy(pred, answer),
        anls(pred, answer),
        wer_score(pred, answer),
        box_iou(parse_box(pred), parse_box(answer)),
        math_equal(pred, answer),
    ]
    for v in values:
        assert isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 1.0
    assert time.monotonic() - start < 2 * CALL_BOUND_S


def test_no_payload_ran() -> None:
    """Runs after the fuzzers above: the ``touch`` payload in HOSTILE never executed."""
    assert not os.path.exists("/tmp/vlthinker_pwned")
