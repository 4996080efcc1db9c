"""Child process for bounded math-verify calls (started by ``vlthinker.rewards.mathcheck``).

Protocol: one JSON object per line on stdin ``{"id", "pred", "golds", "timeout"}`` (``"gold"``
for a single accepted answer; an optional ``"op": "sleep"`` with ``"seconds"`` first sleeps, for
tests); one reply per line on the original stdout ``{"id", "result"}`` where result is 1.0 (the
prediction equals one of the accepted answers), 0.0 or null (nothing parsed, error or timeout).
``timeout`` bounds the whole request — every accepted answer together — not each answer.
The first line written is ``{"ready": true}``, after a warm-up check (so the first request pays
no first-use cost of sympy and math-verify).  Self-contained: imports nothing from
vlthinker, so it runs with any ``sys.path``.  Only the LaTeX extractor is used, so no model text
reaches ``sympy.parse_expr``'s ``eval``; each request is bounded by ``setitimer`` here (this is
the child's main thread) and by a hard kill in the parent.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from functools import lru_cache
from typing import Any


class _Timeout(BaseException):
    """Not an ``Exception``: a library's ``except Exception`` must not swallow the deadline."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout


def _wrap(s: str) -> str:
    return s if ("$" in s or "\\boxed" in s or "\\(" in s or "\\[" in s) else f"${s}$"


def main() -> None:
    out_fd = os.dup(1)
    os.dup2(2, 1)  # anything printed by libraries goes to stderr, never into the protocol
    import logging

    logging.disable(logging.CRITICAL)
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig()]

    def _parse(s: str) -> Any:
        return parse(_wrap(s), extraction_config=config, parsing_timeout=None)

    parse_gold = lru_cache(maxsize=2048)(_parse)
    signal.signal(signal.SIGALRM, _alarm)
    with contextlib.suppress(Exception):  # warm-up: the first check loads things lazily
        verify(_parse("\\frac{1}{2}+x"), _parse("x+0.5"), timeout_seconds=None)
    out = os.fdopen(out_fd, "w", buffering=1, encoding="utf-8")
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        try:
            req = json.loads(line)
        except ValueError:
            continue
        result: float | None = None
        if req.get("op") == "sleep":  # test hook: lets tests exercise the parent's hard kill
            time.sleep(float(req.get("seconds", 0.0)))
        try:
            signal.setitimer(signal.ITIMER_REAL, max(0.01, float(req.get("timeout", 1.0))))
            golds = req["golds"] if "golds" in req else [req["gold"]]
            pred = _parse(str(req["pred"]))
            if pred:
                for text in golds:
                    gold = parse_gold(str(text))
                    if not gold:
                        continue
                    if verify(gold, pred, timeout_seconds=None):
                        result = 1.0
                        break
                    result = 0.0
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            result = None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        out.write(json.dumps({"id": req.get("id"), "result": result}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
