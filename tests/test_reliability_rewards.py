"""The math verifier's deadline holds per response, however many answers are accepted."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from vlthinker.rewards import mathcheck, score
from vlthinker.rewards.mathcheck import (
    _GRACE_S,
    DEFAULT_MATH_TIMEOUT_S,
    MATH_CALL_BOUND_S,
    MAX_ACCEPTED_ANSWERS,
    _symbolic,
    math_equal,
)

ACCEPTED = [f"\\frac{{{k}}}{{{k + 7}}}" for k in range(1, 17)]  # 16 distinct symbolic answers


def test_sixteen_accepted_answers_make_one_bounded_symbolic_request(monkeypatch):
    calls: list[tuple[str, list[str], float]] = []

    def record(pred, golds, timeout_s, extra=None, deadline=None):
        calls.append((pred, list(golds), timeout_s))
        return 0.0

    monkeypatch.setattr(mathcheck, "_symbolic", record)
    assert math_equal("x^2+1", ACCEPTED) == 0.0
    assert len(calls) == 1  # one deadline for all 16, not one each
    assert calls[0][1] == ACCEPTED and len(ACCEPTED) == MAX_ACCEPTED_ANSWERS
    assert calls[0][2] + _GRACE_S <= 1.0
    assert DEFAULT_MATH_TIMEOUT_S + _GRACE_S <= 1.0


def test_the_cheap_rules_see_every_answer_before_any_symbolic_work(monkeypatch):
    monkeypatch.setattr(mathcheck, "_symbolic", lambda *a, **k: 1 / 0)  # must not be reached
    assert math_equal("0.5", [*ACCEPTED[:15], "0.50"]) == 1.0
    assert math_equal("\\dfrac{1}{8}", [*ACCEPTED[:5], "\\frac{1}{8}"]) == 1.0


def test_the_worker_checks_a_list_of_answers_in_one_request():
    assert math_equal("\\frac{32}{46}", ACCEPTED) == 1.0  # = 16/23, the last one
    assert math_equal("\\frac{2}{16}", ACCEPTED) == 1.0  # = 1/8, the first one
    assert math_equal("\\frac{1}{9}", ACCEPTED) == 0.0
    assert _symbolic("\\frac{2}{4}", ["x", "\\frac{1}{2}"], 0.75) == 1.0


def test_a_hung_check_of_many_answers_is_killed_at_one_deadline():
    started = time.monotonic()
    assert _symbolic("1", ACCEPTED, 0.3, {"op": "sleep", "seconds": 30}) is None
    assert time.monotonic() - started < 0.3 + _GRACE_S + 0.5


def test_the_hard_bound_holds_from_the_call_under_cpu_load():
    """Issue 25 §6: the slowest hostile response (a sum to 4096 of k^64) took 1.2 s on a loaded
    2-core machine. With two busy processes per core, every call — a hostile sum, a hung child
    killed at the deadline, and the benign call right after it — returns within the bound."""
    assert MATH_CALL_BOUND_S == DEFAULT_MATH_TIMEOUT_S + _GRACE_S <= 0.95
    hostile = "<think>t</think><answer>\\sum_{k=1}^{4096} k^{64}</answer>"
    assert math_equal("\\frac{2}{4}", "\\frac{1}{2}") == 1.0  # the pool's one start-up
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(2 * (os.cpu_count() or 1))
    ]
    times: list[float] = []
    try:
        time.sleep(0.3)
        for _ in range(2):
            started = time.monotonic()
            assert score(hostile, "\\frac{1}{2}", "math")["accuracy"] == 0.0
            times.append(time.monotonic() - started)
        started = time.monotonic()
        hung = _symbolic("1", "1", DEFAULT_MATH_TIMEOUT_S, {"op": "sleep", "seconds": 30})
        times.append(time.monotonic() - started)
        assert hung is None
        started = time.monotonic()  # a free worker, or none: never a wait for a start-up
        math_equal("\\frac{2}{4}", "\\frac{1}{2}")
        times.append(time.monotonic() - started)
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait()
    assert max(times) < MATH_CALL_BOUND_S, times


def test_sanitize_replaces_each_lone_surrogate_by_one_character():
    from vlthinker.rewards.safety import sanitize

    assert sanitize("\ud800abc") == "\ufffdabc"  # one replacement, not three
    assert sanitize("x\ud83d\ude00y") == "x\U0001f600y"  # a pair is its character
    assert sanitize("a\ud800\udfffb\udfff") == "a\U000103ffb\ufffd"  # 0x10000 + 0x3FF
    assert sanitize("\ud800" + "1" * 5000, limit=4096) == "\ufffd" + "1" * 4095


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, categories=None), max_size=64))
def test_sanitize_never_grows_and_always_encodes(text):
    from vlthinker.rewards.safety import sanitize

    for limit in (8, 64):
        clean = sanitize(text, limit=limit)
        assert len(clean) <= limit
        clean.encode("utf-8")  # no lone surrogate is left
