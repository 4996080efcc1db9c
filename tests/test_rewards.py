"""Golden, hand-worked cases for every verifier of ``vlthinker.rewards`` and for ``score``."""

from __future__ import annotations

import math
import multiprocessing
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from vlthinker.registry import Registry, UnknownNameError
from vlthinker.rewards import (
    ANSWER_TYPES,
    anls,
    box_iou,
    canonical_answer_type,
    counting,
    extract_answer,
    format_reward,
    is_safe_math,
    math_equal,
    mathcheck,
    mean_relative_accuracy,
    multiple_choice,
    numeric,
    parse_box,
    relaxed_accuracy,
    score,
    score_batch,
    to_absolute,
    wer_score,
)
from vlthinker.rewards.mathcheck import _get_pool, _symbolic

OPTIONS = ["A. clothing", "B. dogs", "C. human", "D. bedding"]


def wrap(answer: str, tag: str = "think") -> str:
    return f"<{tag}>some reasoning</{tag}>\n<answer>{answer}</answer>"


# ---------------------------------------------------------------- extraction and format


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>42</answer>", "42"),
        ("<answer> 1 </answer> then <answer>2</answer>", "2"),
        ("<answer>1</answer><answer>unclosed", "1"),
        ("<answer><answer>inner</answer>", "inner"),
        ("no tags but \\boxed{\\frac{1}{2}} here", "\\frac{1}{2}"),
        ("\\boxed{1} and finally \\boxed{{2}+3}", "{2}+3"),
        ("\\boxed{2} then unbalanced \\boxed{3", "2"),
        ("<answer>x", None),
        ("plain text", None),
        ("", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_extract_answer_non_string_and_huge() -> None:
    assert extract_answer(None) is None  # type: ignore[arg-type]
    huge = "x" * 2_000_000 + "<answer>" + "y" * 10_000 + "</answer>"
    out = extract_answer(huge)
    assert out is not None and len(out) == 4096


@pytest.mark.parametrize(
    ("text", "reasoning", "tag", "expected"),
    [
        ("<think>r</think><answer>a</answer>", True, "think", 1.0),
        ("  <think>r</think>\n\n <answer>a</answer>\n", True, "think", 1.0),
        ("<think></think><answer></answer>", True, "think", 1.0),
        ("<thinking>r</thinking><answer>a</answer>", True, "thinking", 1.0),
        ("<think>r</think><answer>a</answer>", True, "thinking", 0.0),
        ("<answer>a</answer>", True, "think", 0.0),
        ("<answer>a</answer>", False, "think", 1.0),
        ("<think>r</think><answer>a</answer>", False, "think", 0.0),
        ("<think>r</think>junk<answer>a</answer>", True, "think", 0.0),
        ("<think>r</think><answer>a</answer>trailing", True, "think", 0.0),
        ("<think>r<think>r</think><answer>a</answer>", True, "think", 0.0),
        ("<think>r</think><answer>a</answer><answer>b</answer>", True, "think", 0.0),
        ("<answer>a</answer><think>r</think>", True, "think", 0.0),
        ("</think><think>r<answer>a</answer>", True, "think", 0.0),
        ("<answer><think>x</think></answer>", False, "think", 0.0),
    ],
)
def test_format_reward(text: str, reasoning: bool, tag: str, expected: float) -> None:
    assert format_reward(text, reasoning, think_tag=tag) == expected


def test_format_reward_rejects_bad_tag() -> None:
    with pytest.raises(ValueError, match="think_tag"):
        format_reward("<answer>a</answer>", True, think_tag="a>b")


# ---------------------------------------------------------------- multiple choice


@pytest.mark.parametrize(
    ("pred", "answer", "options", "expected"),
    [
        ("C", "C", None, 1.0),
        ("(C)", "C", None, 1.0),
        ("C.", "C", None, 1.0),
        ("Answer: C", "C", None, 1.0),
        ("The answer is (C)", "C", None, 1.0),
        ("c", "C", None, 1.0),
        ("C. human", "C", OPTIONS, 1.0),
        ("human", "C", OPTIONS, 1.0),
        ("Human.", "C", OPTIONS, 1.0),
        ("B", "C", OPTIONS, 0.0),
        ("dogs", "C", OPTIONS, 0.0),
        ("B. human", "C", OPTIONS, 0.0),  # a letter answer is scored by its letter alone
        ("C", "D", ["A. B", "B. A", "C. D", "D. C"], 0.0),  # letter C is not the text "C"
        ("D", "D", ["A. B", "B. A", "C. D", "D. C"], 1.0),
        ("C", "human", OPTIONS, 1.0),  # key given as option text
        ("C", "C. human", None, 1.0),
        ("human", "human", ["clothing", "dogs", "human"], 1.0),
        ("C", "human", ["clothing", "dogs", "human"], 1.0),
        ("A dog", "A", None, 0.0),  # a sentence starting with "A" is not a choice
        ("", "A", None, 0.0),
        ("C", "<answer>C</answer>", "['A. clothing', 'B. dogs', 'C. human', 'D. bedding']", 1.0),
        ("J", "J", None, 1.0),
        ("K", "K", None, 0.0),  # letters stop at J; "K" == "K" as text is still wrong? see below
    ],
)
def test_multiple_choice(pred: str, answer: str, options: object, expected: float) -> None:
    if pred == "K":
        # Outside A–J there is no letter, so the texts are compared: equal texts score 1.
        expected = 1.0
    assert multiple_choice(pred, answer, options) == expected


# ---------------------------------------------------------------- numbers and charts


@pytest.mark.parametrize(
    ("pred", "answer", "expected"),
    [
        ("40.33", "40.33", 1.0),
        ("40.334", "40.33", 1.0),  # rounds to 40.33
        ("40.336", "40.33", 0.0),  # rounds to 40.34
        ("1,234", 1234, 1.0),
        ("$1,234.50", "1234.5", 1.0),
        ("12 kg", "12", 0.0),  # an undeclared unit is text around the number
        ("12%", "12", 1.0),
        ("12%", "0.12", 1.0),
        ("5 cm^2", 5, 0.0),
        ("below 10", "above 10", 0.0),  # text around a number is text, not the number
        ("30°", "30", 1.0),  # the degree sign is always read
        ("1/4", "0.25", 1.0),
        ("\\frac{1}{4}", "0.25", 1.0),
        ("-3", "-3", 1.0),
        ("3", "-3", 0.0),
        ("three", 3, 1.0),
        ("3 or 4", "3", 0.0),  # two numbers: ambiguous
        ("nan", "1", 0.0),
        ("1e999", "1", 0.0),
        ("Paris", "paris", 1.0),  # not numbers: string compare
        ("7", ["6", "7"], 1.0),
    ],
)
def test_numeric(pred: str, answer: object, expected: float) -> None:
    assert numeric(pred, answer) == expected


def test_numeric_never_raises_when_nothing_is_left_after_the_percent_sign() -> None:
    # "%" alone once raised IndexError; it is not a number, so the texts are compared
    assert numeric("%", "5") == 0.0
    assert numeric("%", "%") == 1.0
    assert numeric("5", "%") == 0.0


def test_numeric_reads_only_the_units_the_task_declares() -> None:
    assert numeric("12 kg", "12", units=["kg"]) == 1.0
    assert numeric("5 cm^2", 5, units=("cm^2", "cm")) == 1.0
    assert numeric("12 lb", "12", units=["kg"]) == 0.0
    assert (
        score("<answer>12 kg</answer>", "12", "numeric", reasoning=False, units="kg")["accuracy"]
        == 1.0
    )
    assert score("<answer>12 kg</answer>", "12", "numeric", reasoning=False)["accuracy"] == 0.0


@pytest.mark.parametrize(
    ("pred", "answer", "expected"),
    [
        ("104", "100", 1.0),  # 4 % off
        ("105", "100", 1.0),  # exactly 5 % off (ChartQA uses <=)
        ("106", "100", 0.0),
        ("95", "100", 1.0),
        ("0", "0", 1.0),
        ("0.001", "0", 0.0),  # exact when the answer is 0
        ("12%", "0.12", 1.0),
        ("Yes", "yes", 1.0),
        ("no", "yes", 0.0),
        ("1,000", "1000", 1.0),  # thousands separators: a deliberate training normalisation
        ("Under 30 mins", "Over 30 mins", 0.0),  # not numbers: exact text
        ("30 mins", "30", 0.0),
        ("12", "12%", 0.0),  # official: "12%" is 0.12
        ("0", "0", 1.0),
    ],
)
def test_relaxed_accuracy(pred: str, answer: str, expected: float) -> None:
    assert relaxed_accuracy(pred, answer) == expected


@pytest.mark.parametrize(
    ("pred", "answer", "expected"),
    [
        ("10", "10", 1.0),
        ("9", "10", 0.8),  # rel 0.10: below 1-θ for θ = .50 … .85 (8 of 10)
        ("7.5", "10", 0.5),  # rel 0.25: θ = .50 … .70 (5 of 10)
        ("12.4", "10", 0.6),  # rel 0.24: θ = .50 … .75 (6 of 10)
        ("5", "10", 0.0),  # rel 0.5 is not < 0.5
        ("0.0", "0.0", 1.0),
        ("1", "0", 0.0),
        ("far", "10", 0.0),
    ],
)
def test_mean_relative_accuracy(pred: str, answer: str, expected: float) -> None:
    assert mean_relative_accuracy(pred, answer) == pytest.approx(expected)


# ---------------------------------------------------------------- math


@pytest.mark.parametrize(
    ("pred", "answer", "expected"),
    [
        ("\\frac{\\sqrt{2}}{3}", "$\\frac{\\sqrt{2}}{3}$", 1.0),
        ("\\sqrt{2}/3", "$\\frac{\\sqrt{2}}{3}$", 1.0),
        ("\\dfrac{1}{2}", "0.5", 1.0),
        ("0.5", "\\frac12", 1.0),
        ("x = 2", "2", 1.0),
        ("2", "3", 0.0),
        ("\\{1, 2\\}", "\\{2, 1\\}", 1.0),
        ("\\boxed{7}", "7", 1.0),
        ("\\frac{1}{0}", "1", 0.0),
        ("9**9**9", "1", 0.0),
        ("", "1", 0.0),
    ],
)
def test_math_equal(pred: str, answer: str, expected: float) -> None:
    assert math_equal(pred, answer) == expected


@pytest.mark.parametrize(
    "expr",
    [
        "9**9**9",
        "10^10^10",
        "10^{10^{10}}",
        "{9^{4096}}^{4096}",
        "(9^{4096})^{4096}",
        "(((9^{60})^{60})^{60})^{60}",
        "2^{99999}",
        "99999!",
        "1" * 60,
        "x" * 2000,
    ],
)
def test_math_prescreen_refuses_bombs(expr: str) -> None:
    assert not is_safe_math(expr)


@pytest.mark.parametrize("expr", ["2^{2023}", "\\frac{\\sqrt{2}}{3}", "x^2+1", "(1+x^{2})^{3}"])
def test_math_prescreen_accepts_ordinary(expr: str) -> None:
    assert is_safe_math(expr)


def test_math_no_code_execution(tmp_path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    for pred in (payload, f"${payload}$", f"\\boxed{{{payload}}}"):
        assert math_equal(pred, "0") == 0.0
        assert score(wrap(pred), "0", "math")["accuracy"] == 0.0
    assert not marker.exists()


def test_math_hard_timeout_kills_worker() -> None:
    start = time.monotonic()
    assert _symbolic("1", "1", 0.3, {"op": "sleep", "seconds": 30}) is None
    assert time.monotonic() - start < 2.0
    assert _symbolic("1", "1", 1.0) == 1.0  # a fresh worker replaces the killed one
    time.sleep(0.1)
    start = time.monotonic()
    assert _symbolic("2", "2", 1.0) == 1.0
    assert time.monotonic() - start < 0.5  # started in the background, not on this call


def test_math_bounded_in_threads() -> None:
    preds = ["\\frac{1}{2}", "0.5", "9**9**9", "\\sqrt{2}/3", "10^10^10", "x=2"] * 4
    with ThreadPoolExecutor(max_workers=6) as ex:
        got = list(ex.map(lambda p: math_equal(p, "1/2"), preds))
    assert got[:6] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert threading.current_thread() is threading.main_thread()
    assert _get_pool().started <= 4


def _math_in_child(pred: str) -> float:
    return math_equal(pred, "1/2")


def test_math_bounded_in_daemonic_worker_process() -> None:
    """multiprocessing workers are daemonic (no multiprocessing children): still bounded."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        start = time.monotonic()
        got = pool.map(_math_in_child, ["\\frac{2}{4}", "9**9**9", "0.4"])
    assert got == [1.0, 0.0, 0.0]
    assert time.monotonic() - start < 30


def test_math_falls_back_in_process_without_worker(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(mathcheck, "_WORKER_SCRIPT", tmp_path / "missing.py")
    monkeypatch.setattr(mathcheck, "_pool", None)
    assert math_equal("\\sqrt{2}/3", "\\frac{\\sqrt{2}}{3}") == 1.0
    assert _get_pool().broken
    with ThreadPoolExecutor(max_workers=2) as ex:  # no signal timer off the main thread
        assert list(ex.map(lambda p: math_equal(p, "1/2"), ["\\frac{1}{2}", "7"])) == [1.0, 0.0]
    monkeypatch.setattr(mathcheck, "_pool", None)


# ---------------------------------------------------------------- OCR


@pytest.mark.parametrize(
    ("pred", "answers", "expected"),
    [
        ("hello world", "hello world", 1.0),
        ("Hello  World ", ["hello world"], 1.0),
        ("hello worl", "hello world", 1 - 1 / 11),
        ("abc", "abd", 1 - 1 / 3),
        ("abcdef", "ab", 0.0),  # NL = 4/6 >= 0.5
        ("abcd", "ab", 0.5),  # similarity 1 - 2/4 = 0.5 is not below the threshold: kept
        ("13", ["12"], 0.5),  # exactly half wrong: VLMEvalKit keeps 0.5
        ("abcde", "ab", 0.0),  # similarity 0.4 < 0.5 -> 0
        ("x", ["no", "x"], 1.0),
    ],
)
def test_anls(pred: str, answers: object, expected: float) -> None:
    assert anls(pred, answers) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "answer", "expected"),
    [
        ("a b c d", "a b c d", 1.0),
        ("a b x d", "a b c d", 0.75),  # one substitution / 4 words
        ("a b c", "a b c d", 0.75),  # one deletion
        ("a b c d e f g h i", "a b c d", 0.0),  # WER 1.25 -> clamp 0
        ("", "", 1.0),
        ("x", "", 0.0),
        ("u ( x - x _ { 0 } )", "u ( x - x _ { 0 } )", 1.0),
    ],
)
def test_wer_score(pred: str, answer: str, expected: float) -> None:
    assert wer_score(pred, answer) == pytest.approx(expected)


# ---------------------------------------------------------------- grounding


def test_box_iou_golden() -> None:
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    assert box_iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0  # touching edges
    assert box_iou([10, 10, 0, 0], [0, 0, 10, 10]) == 0.0  # inverted box has no area
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
    assert box_iou([math.nan, 0, 1, 1], [0, 0, 1, 1]) == 0.0
    assert box_iou([0, 0, math.inf, 1], [0, 0, 1, 1]) == 0.0
    assert box_iou([0, 0, 1], [0, 0, 1, 1]) == 0.0
    assert box_iou(None, [0, 0, 1, 1]) == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"boxes": [577, 232, 899, 786]}', [577, 232, 899, 786]),
        ('{"boxes": [[1, 2, 3, 4], [5, 6, 7, 8]]}', [1, 2, 3, 4]),
        ("[1, 2, 3, 4]", [1, 2, 3, 4]),
        ("the box is [1.5, 2, 3, 4.25].", [1.5, 2, 3, 4.25]),
        ("(10,20),(30,40)", [10, 20, 30, 40]),
        ([1, 2, 3, 4], [1, 2, 3, 4]),
        ('<answer>{"boxes": [1, 2, 3, 4]}</answer>', [1, 2, 3, 4]),
        ('{"boxes": [NaN, 2, 3, 4]}', None),
        ('{"boxes": [Infinity, 2, 3, 4]}', None),
        ('{"boxes": [1e999, 2, 3, 4]}', None),
        ('{"boxes": [1, 2, 3]}', None),
        ('{"boxes": [true, 2, 3, 4]}', None),
        ("no box", None),
    ],
)
def test_parse_box(text: object, expected: list[float] | None) -> None:
    assert parse_box(text) == expected


def test_coordinate_systems() -> None:
    assert to_absolute([0.1, 0.2, 0.5, 1.0], "normalized", [200, 100]) == pytest.approx(
        [20, 20, 100, 100]
    )
    assert to_absolute([100, 200, 500, 1000], "qwen1000", [200, 100]) == pytest.approx(
        [20, 20, 100, 100]
    )
    # predicted on a 100x50 resize of a 200x100 image: coordinates double
    assert to_absolute([10, 10, 50, 50], "absolute", [200, 100], [100, 50]) == [20, 20, 100, 100]
    with pytest.raises(ValueError, match="box_format"):
        to_absolute([0, 0, 1, 1], "pixels")


def test_grounding_score_resized_and_qwen() -> None:
    resp = wrap('{"boxes": [10, 10, 50, 50]}')
    # model saw a half-size image; truth in original pixels
    got = score(
        resp, [20, 20, 100, 100], "grounding", image_size=[200, 200], resized_size=[100, 100]
    )
    assert got == {"accuracy": 1.0, "format": 1.0, "structure": 0.5}
    # without the resize the boxes only partly overlap: IoU = 30*30 / (40*40 + 80*80 - 900)
    got = score(resp, [20, 20, 100, 100], "grounding", image_size=[200, 200])
    assert got["accuracy"] == pytest.approx(900 / (1600 + 6400 - 900))
    ref = '<answer>{"boxes": [577, 232, 899, 786]}</answer>'
    got = score(
        wrap('{"boxes": [577, 232, 899, 786]}'),
        ref,
        "spatial grounding",
        box_format="qwen1000",
        image_size=[640, 480],
    )
    assert got["accuracy"] == pytest.approx(1.0)
    # a bare list answers correctly but earns no structure bonus (not JSON with "boxes")
    got = score(wrap("[577, 232, 899, 786]"), ref, "spatial grounding", box_format="qwen1000")
    assert got == {"accuracy": 1.0, "format": 1.0, "structure": 0.0}


# ---------------------------------------------------------------- counting


@pytest.mark.parametrize(
    ("pred", "answer", "partial", "expected"),
    [
        ("3", 3, False, 1.0),
        ("three", "3", False, 1.0),
        ("3.0", 3, False, 1.0),
        ("4", 3, False, 0.0),
        ("4", 3, True, 1 - 1 / 3),
        ("0", 3, True, 0.0),
        ("1", 0, True, 0.0),  # max(a, 1) = 1: off by one is 0
        ("9", 3, True, 0.0),
        ("many", 3, True, 0.0),
    ],
)
def test_counting(pred: str, answer: object, partial: bool, expected: float) -> None:
    assert counting(pred, answer, partial=partial) == pytest.approx(expected)


# ---------------------------------------------------------------- score


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("multiple choice", "multiple_choice"),
        ("numerical", "numeric"),
        ("regression", "chart"),
        ("math", "math"),
        ("OCR", "ocr"),
        ("spatial grounding", "grounding"),
        ("counting", "counting"),
        ("Multiple-Choice", "multiple_choice"),
    ],
)
def test_canonical_answer_type(name: str, canonical: str) -> None:
    assert canonical_answer_type(name) == canonical


def test_unknown_answer_type_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="free-form-poetry"):
        score(wrap("x"), "x", "free-form-poetry")
    with pytest.raises(ValueError, match="box_format"):
        score(wrap("[1,2,3,4]"), [1, 2, 3, 4], "grounding", box_format="weird")
    with pytest.raises(ValueError, match="image size"):
        score(wrap("junk"), [1, 2, 3, 4], "grounding", image_size=[0, 10])
    with pytest.raises(ValueError, match="metric"):
        score(wrap("1"), "1", "chart", metric="bleu")


def test_score_reference_records() -> None:
    """The seven reference records (shared/data), answered correctly."""
    cases = [
        (
            '{"boxes": [577, 232, 899, 786]}',
            '<answer>{"boxes": [577, 232, 899, 786]}</answer>',
            "spatial grounding",
            {"box_format": "qwen1000"},
        ),
        ("3", "<answer>3</answer>", "numerical", {}),
        (
            "C",
            "<answer>C</answer>",
            "multiple choice",
            {"options": "['A. clothing', 'B. dogs', 'C. human', 'D. bedding']"},
        ),
        ("\\frac{\\sqrt{2}}{3}", "<answer>$\\frac{\\sqrt{2}}{3}$</answer>", "math", {}),
        ("40.33", "<answer>40.33</answer>", "numerical", {}),
        (
            "u ( x - x _ { 0 } ) + v ( y - y _ { 0 } ) = 0",
            "<answer>u ( x - x _ { 0 } ) + v ( y - y _ { 0 } ) = 0</answer>",
            "OCR",
            {},
        ),
        ("0.0", "<answer>0.0</answer>", "regression", {}),
    ]
    for pred, answer, kind, meta in cases:
        got = score(wrap(pred, "thinking"), answer, kind, think_tag="thinking", **meta)
        assert got == {"accuracy": 1.0, "format": 1.0, "structure": 0.5}, (kind, got)


def test_score_format_and_structure() -> None:
    # right answer, wrong structure: accuracy still counts, format and structure are 0
    got = score("The answer is <answer>7</answer> ok", "7", "numeric")
    assert got == {"accuracy": 1.0, "format": 0.0, "structure": 0.0}
    got = score("<answer>7</answer>", "7", "numeric", reasoning=False)
    assert got == {"accuracy": 1.0, "format": 1.0, "structure": 0.5}
    got = score("no answer at all", "7", "numeric")
    assert got == {"accuracy": 0.0, "format": 0.0, "structure": 0.0}
    # chart answers default to relaxed accuracy, regression to MRA; metric overrides
    assert score(wrap("104"), "100", "chart")["accuracy"] == 1.0
    assert score(wrap("106"), "100", "regression")["accuracy"] == pytest.approx(0.9)
    assert score(wrap("106"), "100", "chart")["accuracy"] == 0.0
    assert score(wrap("106"), "100", "chart", metric="mra")["accuracy"] == pytest.approx(0.9)
    assert score(wrap("hello worl"), ["hello world"], "ocr", metric="anls")["accuracy"] == (
        pytest.approx(1 - 1 / 11)
    )
    assert score(wrap("4"), 3, "counting", partial=True)["accuracy"] == pytest.approx(2 / 3)
    assert score(wrap("Lyon"), "Paris", "ocr", answers=["Lyon"])["accuracy"] == 1.0


def test_score_batch() -> None:
    out = score_batch(
        [wrap("B"), wrap("2"), "junk"],
        ["B", 2, "x"],
        ["multiple_choice", "numeric", "ocr"],
        [{"options": OPTIONS}, {}, None],
    )
    assert [o["accuracy"] for o in out] == [1.0, 1.0, 0.0]
    assert [o["format"] for o in out] == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="lengths"):
        score_batch([wrap("B")], ["B", "C"], ["multiple_choice"], [{}])


# ---------------------------------------------------------------- the answer-type registry


@pytest.fixture
def scratch_answer_types() -> Iterator[Registry]:
    """The answer-type registry, restored after the test (registrations here do not leak)."""
    with ANSWER_TYPES.scoped() as registry:
        yield registry


def test_a_registered_answer_type_is_scored_and_accepted_by_the_data_layer(
    scratch_answer_types: Registry,
) -> None:
    seen: list[dict] = []

    def yes_no(pred: str, answer: object, meta) -> float:
        seen.append(dict(meta))
        return float(pred.strip().lower() == str(answer).strip().lower())

    scratch_answer_types.register(
        "yes_no",
        aliases=("yes or no", "binary"),
        alias_defaults={"binary": {"strict": True}},
        metrics=("exact",),
        structure=lambda pred: pred.strip().lower() in ("yes", "no"),
    )(yes_no)
    out = score_batch(
        [wrap("Yes"), wrap("maybe"), wrap("no")],
        ["yes", "yes", "no"],
        ["yes_no", "Yes-or-No", "binary"],
        [{}, {"metric": "exact"}, None],
    )
    assert [o["accuracy"] for o in out] == [1.0, 0.0, 1.0]
    assert [o["structure"] for o in out] == [0.5, 0.0, 0.5]  # its own structure condition
    assert seen[-1] == {"strict": True}  # the alias's implied option
    assert canonical_answer_type("YES OR NO") == "yes_no"

    from pathlib import Path

    from vlthinker.data.readers import to_record

    raw = {"task": "vqa", "answer_type": "yes_no", "question": "q", "answer": "yes"}
    assert to_record(raw, "mem#0", Path(".")).answer_type == "yes_no"


def test_unknown_answer_type_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="known: chart, counting, grounding, math") as info:
        score_batch([wrap("x")], ["x"], ["free-form-poetry"])
    assert "aliases:" in str(info.value) and "numerical" in str(info.value)
    with pytest.raises(ValueError, match="unknown metric 'bleu'; known: anls, mra, relaxed, wer"):
        score(wrap("1"), "1", "chart", metric="bleu")
