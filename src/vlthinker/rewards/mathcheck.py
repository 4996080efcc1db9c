"""Math answers: symbolic equivalence through math-verify, bounded in time everywhere.

math-verify's own timeout uses ``signal.alarm`` and so works only in the main thread.  Here the
symbolic check runs in a small pool of persistent child processes (``_math_worker.py``) that the
parent kills after a hard deadline; this holds in threads, in forked workers and in daemonic
multiprocessing workers (children are started with ``subprocess``, not ``multiprocessing``).
Before any symbolic work, cheap rules decide the common cases (normalised string equality, plain
numbers) and :func:`~vlthinker.rewards.safety.is_safe_math` refuses exponent towers, huge literals
and the like.  The deadline is per response: every accepted answer of a record goes to the child in
one request under one timer, so a response checked against 16 accepted answers is bounded like one
checked against a single answer.  If no child can be started, the check runs in-process with an
``setitimer`` bound in the main thread, and with the pre-screen alone elsewhere.

The bound is a wall-clock deadline measured from the call (:data:`MATH_CALL_BOUND_S` =
``timeout_s`` + ``_GRACE_S``, 0.95 s by default), so it holds on a loaded machine too: waiting for
a free child, the child's own timer (what is left of the deadline less the grace) and the parent's
read all end by it; the parent stops reading ``_RETURN_MARGIN_S`` before it, sends the child
SIGKILL without waiting for it (a background thread reaps it and starts its replacement) and
returns.  A call that finds no free child before its deadline — every child busy or still starting
— gets no symbolic verdict (the string compare decides).  The pool starts all its children when
the first call needs one; that first call (once per process) waits for one child to start, as an
import would, and each child does a warm-up check before it reports ready, so the first real check
pays no first-use cost.
"""

from __future__ import annotations

import atexit
import contextlib
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
    "MATH_CALL_BOUND_S",
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
#: The hard wall-clock bound on one call with the default timeout, from the call to the return.
MATH_CALL_BOUND_S = DEFAULT_MATH_TIMEOUT_S + _GRACE_S
#: The parent stops waiting this long before the deadline: time to kill the child and return on
#: a loaded machine.
_RETURN_MARGIN_S = 0.1
#: A check is not started with less than this left before the parent stops waiting.
_MIN_CHECK_S = 0.05
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
        deadline: float | None = None,
    ) -> float | None:
        """Send one request (all accepted answers under one timer); raises TimeoutError once
        the call's ``deadline`` (default: now + ``timeout_s`` + grace) is ``_RETURN_MARGIN_S``
        away, _WorkerDied. The child's timer is what is left of the deadline less the grace."""
        assert self.proc.stdin is not None
        now = time.monotonic()
        if deadline is None:
            deadline = now + timeout_s + _GRACE_S
        child_s = max(0.01, min(timeout_s, deadline - _GRACE_S - now))
        self._next_id += 1
        req = {"id": self._next_id, "pred": pred, "golds": list(golds), "timeout": child_s}
        req.update(extra or {})
        try:
            self.proc.stdin.write((json.dumps(req) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise _WorkerDied(str(exc)) from exc
        while True:
            reply = json.loads(self._readline(deadline - _RETURN_MARGIN_S))
            if reply.get("id") == self._next_id:
                result = reply.get("result")
                return None if result is None else float(result)

    def kill(self, wait: bool = True) -> None:
        """SIGKILL the child; ``wait=False`` leaves reaping it to the caller (:meth:`reap`)."""
        try:
            self.proc.kill()
            if wait:
                self.proc.wait(timeout=5)
        except Exception:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def reap(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=30)


#: :meth:`_Pool.acquire`'s answer when no worker came free before the call's deadline.
_BUSY = object()


class _Pool:
    """Lazily started, bounded set of workers; reset after ``fork`` (owner pid changes)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.cond = threading.Condition()
        self.idle: list[_Worker] = []
        self.started = 0  # workers alive or starting
        self.starting = 0  # of which still starting in the background
        self.warming = False  # a cold start is under way
        self.broken = False

    def acquire(self, deadline: float | None = None) -> tuple[Any, bool]:
        """``(worker, cold)``: an idle worker — None when none can be started (check in-process),
        ``_BUSY`` when none came free before ``deadline`` less the margins — and whether this
        call waited for the pool's start-up (which the caller's bound does not count).

        A cold pool (no worker at all: the process's first call, or after
        :func:`shutdown_math_workers`) starts all its workers at once, and this call and any
        arriving meanwhile wait for them — the one start-up a process pays, outside the bound.
        Afterwards a missing worker starts in the background and a call waits for a free one
        only until its deadline."""
        with self.cond:
            cold = self.started == 0 and not self.broken and not self.warming
            if cold:
                self.warming = True
                self.started = _MAX_WORKERS
                self.starting = _MAX_WORKERS - 1
            waited = cold
            while not cold and not self.idle and not self.broken:
                waited = waited or self.warming
                if self.started < _MAX_WORKERS:
                    self.started += 1
                    self.starting += 1
                    threading.Thread(target=self._replace, daemon=True).start()
                left = None
                if deadline is not None and not self.warming:
                    left = deadline - time.monotonic() - _RETURN_MARGIN_S - _MIN_CHECK_S
                    if left <= 0:
                        return _BUSY, False
                self.cond.wait(timeout=1.0 if left is None else min(left, 1.0))
            if self.broken:
                return None, waited
            if not cold:
                return self.idle.pop(), waited
        for _ in range(_MAX_WORKERS - 1):
            threading.Thread(target=self._replace, daemon=True).start()
        try:
            worker = _Worker()
        except Exception as exc:
            log.warning("math-verify worker unavailable (%s); checking in-process", exc)
            with self.cond:
                self.started -= 1
                self.broken = True
                self.warming = False
                self.cond.notify_all()
            return None, True
        with self.cond:  # a warm pool has a spare: wait for the others to be ready
            until = time.monotonic() + _STARTUP_TIMEOUT_S
            while self.starting > 0 and time.monotonic() < until:
                self.cond.wait(timeout=1.0)
            self.warming = False
            self.cond.notify_all()
        return worker, True

    def release(self, worker: _Worker | None, healthy: bool) -> None:
        with self.cond:
            if worker is not None:
                if healthy:
                    self.idle.append(worker)
                else:
                    # SIGKILL without waiting: reaping it and starting its replacement (still
                    # counted) happen in the background, after this call has returned
                    worker.kill(wait=False)
                    self.starting += 1
                    threading.Thread(target=self._replace, args=(worker,), daemon=True).start()
            self.cond.notify()

    def _replace(self, killed: _Worker | None = None) -> None:
        """Start a worker for one that was killed (reaping that one first) or not yet started,
        so no call pays the start-up."""
        if killed is not None:
            killed.reap()
        try:
            worker = _Worker()
        except Exception:
            with self.cond:
                self.started -= 1
                self.starting -= 1
                self.cond.notify_all()
            return
        with self.cond:
            self.starting -= 1
            if self.pid == os.getpid():
                self.idle.append(worker)
                self.cond.notify_all()
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
    timeout_s = max(0.01, timeout_s)
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
    deadline: float | None = None,
) -> float | None:
    """math-verify verdict (1.0 if ``pred`` equals one of the accepted answers ``gold``, else 0.0)
    or None on error/timeout/no free worker; ``timeout_s`` bounds all answers together, and the
    call returns by ``deadline`` (default: now + ``timeout_s`` + grace); ``extra`` is for tests."""
    if deadline is None:
        deadline = time.monotonic() + timeout_s + _GRACE_S
    golds = [gold] if isinstance(gold, str) else list(gold)
    if not golds:
        return None
    pool = _get_pool()
    worker, cold = pool.acquire(deadline)
    if cold:  # the pool's one start-up is not the check's time: the bound starts after it
        deadline = time.monotonic() + timeout_s + _GRACE_S
    if worker is _BUSY:
        return None
    if worker is None:
        left = deadline - _GRACE_S - time.monotonic()
        return _check_in_process(pred, golds, min(timeout_s, left))
    healthy = False
    try:
        result = worker.check(pred, golds, timeout_s, extra, deadline)
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
    bounds the response as a whole, however many alternatives there are. The call returns within
    ``timeout_s`` + ``_GRACE_S`` of wall-clock time from its start (:data:`MATH_CALL_BOUND_S` by
    default), on a loaded machine too; only a process's very first call also waits for its first
    worker to start.
    """
    deadline = time.monotonic() + float(timeout_s) + _GRACE_S
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
    verdict = _symbolic(pred_text, symbolic, float(timeout_s), deadline=deadline)
    return 1.0 if verdict == 1.0 else 0.0
