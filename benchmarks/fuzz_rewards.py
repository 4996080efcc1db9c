"""Long fuzz run of ``vlthinker.rewards.score``: hostile responses for every answer type.

Usage: ``python benchmarks/fuzz_rewards.py --n 100000 [--seed 0] [--many 300]``.  Prints
inputs/s, the slowest call (input repr truncated) and any invariant violation; exits 1 on a
violation (an exception, a non-finite or out-of-range value, or a call slower than ``--bound``
seconds).  A second pass scores ``--many`` math responses each against 16 accepted answers (the
most a record may list) and reports the slowest of them: the math verifier's deadline is per
response, so it stays under ``--many-bound`` (1 s) however many answers are accepted.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from typing import Any

from vlthinker.rewards import ANSWER_TYPES, math_equal, score, shutdown_math_workers

HOSTILE = [
    "9**9**9",
    "10^10^10",
    "10^{10^{10}}",
    "2^{2^{2^{2^{2}}}}",
    "(((9^{60})^{60})^{60})^{60}",
    "99999999!",
    "\\frac{1}{0}",
    "1/0",
    "__import__('os').system('touch /tmp/vlthinker_pwned')",
    "$__import__('os').getcwd()$",
    '{"boxes": [NaN, 0, 1, 1]}',
    '{"boxes": [Infinity, -Infinity, 1, 1]}',
    '{"boxes": [1e999, 0, 1, 1]}',
    "[" * 3000 + "]" * 3000,
    "[nan, nan, nan, nan]",
    "\x00\x01\x02\x1b[31m\x7f\x85",
    "\ud800",
    "\udfff\ud800x",
    "<answer>",
    "</answer>",
    "<answer><answer></answer>",
    "<think><think></think>",
    "\\boxed{",
    "\\boxed{{{{{{",
    "}}}}}",
    "1,000,000,000,000,000,000",
    "1e308",
    "NaN",
    "Infinity",
    "(A)(B)",
    "Answer: C",
    "\\sqrt{-1}",
    "x^{4096}y^{4096}",
    "\\int_0^\\infty e^{-x^2} dx",
    "\\begin{pmatrix}" + "1&" * 200 + "1\\end{pmatrix}",
    "1" * 10_000,
]
PLAIN = [
    "1",
    "2.5",
    "-3",
    "12%",
    "1,234",
    "\\frac{1}{2}",
    "\\sqrt{2}/3",
    "x=2",
    "B",
    "(C)",
    "human",
    "hello world",
    "[10, 20, 30, 40]",
    '{"boxes": [1, 2, 3, 4]}',
    "three",
    "0.0",
]
TAGS = ["<answer>", "</answer>", "<think>", "</think>", "<thinking>", "</thinking>"]
ALPHABET = "abcXYZ0123456789 .,-+*/^{}()[]<>\\$%=:\n\t"


def _blobs(rng: random.Random) -> list[str]:
    return [
        (s * (1_100_000 // len(s)))[: rng.randint(100_000, 1_100_000)]
        for s in ("a", "<", "{", "9", "<answer>", "\\boxed{", "^9")
    ]


def _piece(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.30:
        return rng.choice(HOSTILE)
    if r < 0.55:
        return rng.choice(PLAIN)
    if r < 0.70:
        return rng.choice(TAGS)
    if r < 0.85:
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 30)))
    if r < 0.95:
        return "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(0, 12)))
    return repr(rng.choice([math.nan, math.inf, -math.inf, 1e308, rng.uniform(-1e6, 1e6)]))


def make_response(rng: random.Random, blobs: list[str]) -> str:
    """Raw pieces, a well-formed wrapper round them, or (rarely) a 0.1–1.1 MB blob."""
    kind = rng.random()
    if kind < 0.002:
        return rng.choice(blobs) + rng.choice(["", "<answer>1</answer>"])
    inner = "".join(_piece(rng) for _ in range(rng.randint(0, 4)))
    if kind < 0.3:
        return inner
    if kind < 0.8:
        tag = rng.choice(["think", "thinking"])
        thought = "".join(_piece(rng) for _ in range(rng.randint(0, 3)))
        return f"<{tag}>{thought}</{tag}><answer>{inner}</answer>"
    return f"<answer>{inner}</answer>"


def make_case(rng: random.Random, blobs: list[str]) -> tuple[str, Any, str, dict[str, Any]]:
    answer_type = rng.choice(ANSWER_TYPES.names())
    meta: dict[str, Any] = {
        "reasoning": rng.random() < 0.7,
        "think_tag": rng.choice(["think", "thinking"]),
    }
    answer: Any = rng.choice(PLAIN) if rng.random() < 0.8 else _piece(rng)
    if answer_type == "multiple_choice":
        meta["options"] = rng.choice([None, ["A. x", "B. y", "C. z"], "['A. a', 'B. b']"])
        answer = rng.choice("ABCDEFGHIJ") if rng.random() < 0.7 else answer
    elif answer_type == "chart":
        meta["metric"] = rng.choice(["relaxed", "mra"])
    elif answer_type == "ocr":
        meta["metric"] = rng.choice(["wer", "anls"])
        if rng.random() < 0.3:
            answer = [answer, rng.choice(PLAIN)]
    elif answer_type == "grounding":
        meta["box_format"] = rng.choice(["absolute", "normalized", "qwen1000"])
        if rng.random() < 0.5:
            meta["image_size"] = [rng.randint(1, 4000), rng.randint(1, 4000)]
            if rng.random() < 0.5:
                meta["resized_size"] = [rng.randint(1, 4000), rng.randint(1, 4000)]
        if rng.random() < 0.5:
            answer = [rng.choice([rng.uniform(-10, 1000), math.nan, math.inf]) for _ in range(4)]
    elif answer_type == "counting":
        meta["partial"] = rng.random() < 0.5
        answer = rng.randint(0, 20) if rng.random() < 0.7 else answer
    return make_response(rng, blobs), answer, answer_type, meta


# Accepted answers that pass the safety pre-screen yet make math-verify work: long sums,
# nested fractions, matrices, high powers.
HEAVY_ACCEPTED = [
    "+".join(f"x^{{{k}}}" for k in range(60)),
    "\\frac{" * 12 + "1" + "}{2}" * 12,
    "\\begin{pmatrix}" + "&".join(str(k) for k in range(40)) + "\\end{pmatrix}",
    "(1+x)^{40}",
    "\\sqrt{\\sqrt{\\sqrt{\\sqrt{2}}}}",
    "\\int_0^1 x^{9} dx",
    "x^{12}-y^{12}",
    "\\sin^{2}(x)+\\cos^{2}(x)",
]


def accepted_answers(rng: random.Random, count: int = 16) -> list[str]:
    """``count`` distinct accepted answers: symbolic, heavy and plain ones mixed."""
    pool = HEAVY_ACCEPTED + [f"\\frac{{{k}}}{{{k + 3}}}" for k in range(1, 40)] + PLAIN
    return rng.sample(pool, count)


def many_answers_pass(rng: random.Random, n: int) -> tuple[float, str, list[str]]:
    """Score ``n`` math responses against 16 accepted answers each; the slowest one."""
    slowest = (0.0, "", [])
    for _ in range(n):
        answers = accepted_answers(rng)
        inner = rng.choice(
            [rng.choice(HEAVY_ACCEPTED), rng.choice(PLAIN), "(1+x)^{39}", _piece(rng)]
        )
        response = f"<think>t</think><answer>{inner}</answer>"
        start = time.perf_counter()
        score(response, answers, "math", reasoning=True, think_tag="think")
        elapsed = time.perf_counter() - start
        if elapsed > slowest[0]:
            slowest = (elapsed, response, answers)
    return slowest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of inputs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bound", type=float, default=2.0, help="max seconds per call")
    parser.add_argument("--repr-chars", type=int, default=160)
    parser.add_argument(
        "--many", type=int, default=300, help="math responses with 16 accepted answers each"
    )
    parser.add_argument(
        "--many-bound", type=float, default=1.0, help="max seconds per such response"
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    blobs = _blobs(rng)
    math_equal("x+1", "y")  # start the math worker outside the timing
    violations: list[str] = []
    slowest = (0.0, "", "")
    per_type: dict[str, list[float]] = {t: [0, 0.0] for t in ANSWER_TYPES}
    total = 0.0
    for i in range(args.n):
        response, answer, answer_type, meta = make_case(rng, blobs)
        start = time.perf_counter()
        try:
            out = score(response, answer, answer_type, **meta)
            err = None
        except Exception as exc:
            out, err = {}, f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - start
        total += elapsed
        per_type[answer_type][0] += 1
        per_type[answer_type][1] += elapsed
        if elapsed > slowest[0]:
            slowest = (elapsed, answer_type, repr(response))
        bad = err or next(
            (f"{k}={v!r}" for k, v in out.items() if not (math.isfinite(v) and 0 <= v <= 1)),
            None,
        )
        if bad is None and elapsed > args.bound:
            bad = f"took {elapsed:.2f}s"
        if bad is not None:
            violations.append(f"#{i} {answer_type}: {bad}: {repr(response)[: args.repr_chars]}")
    many = many_answers_pass(rng, args.many) if args.many > 0 else None
    shutdown_math_workers()
    print(f"inputs: {args.n}  scoring time: {total:.2f}s  inputs/s: {args.n / total:,.0f}")
    for answer_type, (count, secs) in per_type.items():
        if count:
            print(f"  {answer_type:16s} {int(count):7d} calls  {count / secs:10,.0f} /s")
    sec, kind, rep = slowest
    shown = (
        rep if len(rep) <= args.repr_chars else rep[: args.repr_chars] + f"... ({len(rep)} chars)"
    )
    print(f"slowest call: {sec * 1000:.1f} ms ({kind}) on {shown}")
    if many is not None:
        sec, response, answers = many
        print(
            f"slowest of {args.many} math responses with {len(answers)} accepted answers: "
            f"{sec * 1000:.1f} ms on {response[: args.repr_chars]!r}"
        )
        if sec > args.many_bound:
            violations.append(f"a response with 16 accepted answers took {sec:.2f}s")
    print(f"violations: {len(violations)}")
    for line in violations[:20]:
        print("  " + line)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
