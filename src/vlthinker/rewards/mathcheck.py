"""Math answers: symbolic equivalence through math-verify, bounded in time everywhere.

math-verify's own timeout uses ``signal.alarm`` and so works only in the main thread.  Here the
symbolic check runs in a small pool of persistent child processes (``_math_worker.py``) that the
parent kills after a hard deadline; this holds in threads, in forked workers and in daemonic
multiprocessing workers (children are started with ``subprocess``, not ``multiprocessing``).
Before any symbolic work, cheap rules decide the common cases (normalised string equality, plain
numbers) and :func:`~vlthinker.rewards.safety.is_safe_math` refuses exponent towers, huge literals
and the like.  The deadline is per response: every accepted answer of a record goes to the child in
one request under one timer, so a response checked against 16 accepted answers is bounded like one
checked against a single answer (``DEFAULT_MATH_TIMEOUT_S`` + ``_GRACE_S`` < 1 s).  If no child
can be started, the check runs in-process with an ``setitimer`` bound in the main thread, and with
the pre-screen alone elsewhere.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlthinker.rewards.extract import strip_answer_tags
from vlthinker.rewards.safety import is_safe_math, to_text

__all__ = [
    "DEFAULT_MATH_TIMEOUT_S",
    "MAX_ACCEPTED_ANSWERS",
    "math_equal",
    "normalize_math",
    "shutdown_math_workers",
]

log = logging.getLogger(__name__)

#: Default bound on the symbolic check of one response against all its accepted answers (the
#: child's own timer); the parent kills the child at this + ``_GRACE_S``.
DEFAULT_MATH_TIMEOUT_S = 0.75
_GRACE_S = 0.2
#: Most accepted answers a response is checked against.
MAX_ACCEPTED_ANSWERS = 16
_STARTUP_TIMEOUT_S = 60.0
_MAX_WORKERS = max(1, min(4, os.cpu_count() or 1))
_WORKER_SCRIPT = Path(__file__).with_name("_math_worker.py")

# ---------------------------------------------------------------------------- normalisation

_MATH_DROP = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\displaystyle|\\mathrm|\\text|\s+")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")


def normalize_math(value: Any) -> str:
    r"""String form used for the fallback grading: no ``$``, ``\boxed``, spacing or ``\left``;
    ``\dfrac``/``\tfrac`` -> ``\frac``; trailing period dropped; lower case."""
    s = strip_answer_tags(to_text(value)).strip()
    s = s.strip("$").strip()
    if s.startswith("\\boxed{") and s.endswith("}"):
        s = s[len("\\boxed{") : -1]
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _MATH_DROP.sub("", s)
    return s.rstrip(".").lower()


# ---------------------------------------------------------------------------- worker pool


class _WorkerDied(Exception):
    pass


class _Worker:
    """One child process speaking the line protocol of ``_math_worker.py``."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(_WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self._buf = b""
        self._next_id = 0
        line = self._readline(time.monotonic() + _STARTUP_TIMEOUT_S)
        if json.loads(line).get("ready") is not True:
            self.kill()
            raise _WorkerDied("math worker did not start")

    def _readline(self, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise _WorkerDied("math worker exited")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def check(
        self,
        pred: str,
        golds: Sequence[str],
        timeout_s: float,
        extra: dict[str, Any] | None = None,
    ) -> float | None:
        """Send one request (all accepted answers under one timer); raises TimeoutError past
        ``timeout_s`` + grace, _WorkerDied."""
        assert self.proc.stdin is not None
        self._next_id += 1
        req = {"id": self._next_id, "pred": pred, "golds": list(golds), "timeout": timeout_s}
        req.update(extra or {})
        try:
            self.proc.stdin.write((json.dumps(req) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise _WorkerDied(str(exc)) from exc
        deadline = time.monotonic() + timeout_s + _GRACE_S
        while True:
            reply = json.loads(self._readline(deadline))
            if reply.get("id") == self._next_id:
                result = reply.get("result")
                return None if result is None else float(result)

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


class _Pool:
    """Lazily started, bounded set of workers; reset after ``fork`` (owner pid changes)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.cond = threading.Condition()
        self.idle: list[_Worker] = []
        self.started = 0
        self.broken = False

    def acquire(self) -> _Worker | None:
        with self.cond:
            while not self.idle and self.started >= _MAX_WORKERS and not self.broken:
                self.cond.wait(timeout=1.0)
            if self.broken:
                return None
            if self.idle:
                return self.idle.pop()
            self.started += 1
        try:
            return _Worker()
        except Exception as exc:
            log.warning("math-verify worker unavailable (%s); checking in-process", exc)
            with self.cond:
                self.started -= 1
                self.broken = True
                self.cond.notify_all()
            return None

    def release(self, worker: _Worker | None, healthy: bool) -> None:
        with self.cond:
            if worker is not None:
                if healthy:
                    self.idle.append(worker)
                else:
                    worker.kill()  # its replacement starts in the background (still counted)
                    threading.Thread(target=self._replace, daemon=True).start()
            self.cond.notify()

    def _replace(self) -> None:
        """Start a worker for one that was killed, so the next call does not pay the start-up."""
        try:
            worker = _Worker()
        except Exception:
            with self.cond:
                self.started -= 1
                self.cond.notify()
            return
        with self.cond:
            if self.pid == os.getpid():
                self.idle.append(worker)
                self.cond.notify()
                return
        worker.kill()

    def close(self) -> None:
        with self.cond:
            for w in self.idle:
                w.kill()
            self.started -= len(self.idle)
            self.idle.clear()


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _get_pool() -> _Pool:
    global _pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = _Pool()  # a forked child must not share its parent's pipes
        return _pool


def shutdown_math_workers() -> None:
    """Kill idle math-verify child processes (they are also killed at interpreter exit)."""
    with _pool_lock:
        if _pool is not None and _pool.pid == os.getpid():
            _pool.close()


atexit.register(shutdown_math_workers)


# ---------------------------------------------------------------------------- in-process fallback


class _InProcessTimeout(BaseException):
    """Not an ``Exception``: a library's ``except Exception`` must not swallow the deadline."""


def _raise_timeout(signum: int, frame: Any) -> None:
    raise _InProcessTimeout


def _check_in_process(pred: str, golds: Sequence[str], timeout_s: float) -> float | None:
    from math_verify import LatexExtractionConfig, parse, verify

    def wrap(s: str) -> str:
        return s if ("$" in s or "\\boxed" in s) else f"${s}$"

    config = [LatexExtractionConfig()]
    main = threading.current_thread() is threading.main_thread()
    old = None
    if main:
        old = signal.signal(signal.SIGALRM, _raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    result: float | None = None
    try:
        p = parse(wrap(pred), extraction_config=config, parsing_timeout=None)
        if not p:
            return None
        for gold in golds:
            g = parse(wrap(gold), extraction_config=config, parsing_timeout=None)
            if not g:
                continue
            if verify(g, p, timeout_seconds=None):
                return 1.0
            result = 0.0
        return result
    except (Exception, _InProcessTimeout):
        return None
    finally:
        if main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def _symbolic(
    pred: str,
    gold: str | Sequence[str],
    timeout_s: float,
    extra: dict[str, Any] | None = None,
) -> float | None:
    """math-verify verdict (1.0 if ``pred`` equals one of the accepted answers ``gold``, else 0.0)
    or None on error/timeout; ``timeout_s`` bounds all answers together; ``extra`` is for tests."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    if not golds:
        return None
    pool = _get_pool()
    worker = pool.acquire()
    if worker is None:
        return _check_in_process(pred, golds, timeout_s)
    healthy = False
    try:
        result = worker.check(pred, golds, timeout_s, extra)
        healthy = True
        return result
    except (TimeoutError, _WorkerDied, ValueError):
        return None
    finally:
        pool.release(worker, healthy)


# ---------------------------------------------------------------------------- public rule


def _plain_number(s: str) -> float | None:
    if len(s) > 40 or not _NUMBER.fullmatch(s):
        return None
    try:
        return float(s)
    except ValueError:
        return None


def math_equal(prediction: Any, answer: Any, timeout_s: float = DEFAULT_MATH_TIMEOUT_S) -> float:
    """1.0 iff the prediction is mathematically equivalent to the answer (docs/method.md §6 "math").

    Rule: normalised strings equal -> 1; both plain decimal numbers -> equal within 1e-6
    relative; otherwise math-verify's LaTeX parse + ``verify`` in a child process bounded by
    ``timeout_s`` (hard kill after a short grace), only for inputs passing the safety
    pre-screen; any error, refusal or timeout falls back to the normalised string compare.
    A list answer accepts any alternative (at most ``MAX_ACCEPTED_ANSWERS``): the cheap rules
    run on every alternative first, then one symbolic request checks the rest, so ``timeout_s``
    bounds the response as a whole, however many alternatives there are.
    """
    answers = list(answer)[:MAX_ACCEPTED_ANSWERS] if isinstance(answer, (list, tuple)) else [answer]
    pred_text = strip_answer_tags(to_text(prediction)).strip()
    pred_norm = normalize_math(pred_text)
    if not pred_norm:
        return 0.0
    symbolic: list[str] = []
    for ans in answers:
        gold_text = strip_answer_tags(to_text(ans)).strip()
        gold_norm = normalize_math(gold_text)
        if not gold_norm:
            continue
        if pred_norm == gold_norm:
            return 1.0
        p, g = _plain_number(pred_norm), _plain_number(gold_norm)
        if p is not None and g is not None:
            if abs(p - g) <= 1e-6 * max(1.0, abs(g)):
                return 1.0
            continue
        if is_safe_math(gold_text) and gold_text not in symbolic:
            symbolic.append(gold_text)
    if not symbolic or "__" in pred_text or not is_safe_math(pred_text):
        return 0.0
    return 1.0 if _symbolic(pred_text, symbolic, float(timeout_s)) == 1.0 else 0.0
