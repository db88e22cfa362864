"""One deadline for everything a request starts: model building, every MILP, every point.

A `time_limit` used to bound each HiGHS run on its own, so a Pareto front of
50 points, a Dinkelbach sequence or a diagnosis after an infeasible solve
could each take the limit many times over, and building a model for a large
fleet was not counted at all.  `limited(seconds)` sets a deadline for the
code it wraps (a context variable, so threads and the CLI are unaffected
unless they set one):

* every HiGHS run is given at most the time left (`clamp`, used by
  `solvers.adapter.HighsSession`), and the solver loops check `expired()`
  between stages and stop with the best answer found so far, marked as not
  proven (status `feasible` with its certified gap, or `time_limit`);
* with `hard=True` (the service's solver processes, main thread only) a
  SIGALRM at `stop_after(seconds)` raises `DeadlineExceeded` in whatever
  Python code is still running past the limit (a model build that cannot be
  cut short cooperatively).  It is a BaseException, so `except Exception`
  blocks on the way do not swallow it; a process it interrupted may hold
  half-updated state and should not be reused.

`step(what)` names the step that is running, for the message a client gets
when the hard stop comes.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType

MIN_RUN_S = 0.01  # what HiGHS is given once the time is up: it returns at once
MARGIN_MIN_S = 2.0
MARGIN_FRACTION = 0.2
MARGIN_MAX_S = 30.0

_deadline: ContextVar[float | None] = ContextVar("configspec_deadline", default=None)
_limit: ContextVar[float | None] = ContextVar("configspec_limit", default=None)
_what: ContextVar[str] = ContextVar("configspec_doing", default="the request")
_alarm_armed = False
_alarm_limit = 0.0
_alarm_started = 0.0
_protected = 0
AFTER_PROTECTED_S = 1.0  # how long a hard stop waits once a protected call returned


class DeadlineExceeded(BaseException):
    """The hard stop: code was still running past `stop_after(limit)`."""

    def __init__(self, what: str, limit: float, elapsed: float) -> None:
        super().__init__(f"{what} did not finish within the time limit of {limit:g} s")
        self.what = what
        self.limit = limit
        self.elapsed = elapsed


def margin(seconds: float) -> float:
    """How long past its limit a request may run to finish and report what it found."""
    return min(MARGIN_MAX_S, max(MARGIN_MIN_S, MARGIN_FRACTION * seconds))


def stop_after(seconds: float) -> float:
    """When the hard stop comes for a limit of `seconds`."""
    return seconds + margin(seconds)


def remaining() -> float | None:
    """Seconds left (0 once passed), or None when no deadline is set."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def expired() -> bool:
    """Whether the request's deadline has passed; False when no deadline is set.

    Long loops check it between steps so that they stop with what they have
    instead of being cut off at the hard stop.
    """
    left = remaining()
    return left is not None and left <= 0.0


def clamp(seconds: float | None) -> float | None:
    """A solver run's own limit, shortened to the time left (at least `MIN_RUN_S`)."""
    left = remaining()
    if left is None:
        return seconds
    left = max(MIN_RUN_S, left)
    return left if seconds is None else min(seconds, left)


def limit() -> float | None:
    """The limit in force, in seconds (for messages)."""
    return _limit.get()


def step(what: str) -> None:
    """Name the step now running (for the hard stop's message), until the next step."""
    _what.set(what)


@contextmanager
def protected() -> Iterator[None]:
    """A call that keeps its own time limit (a HiGHS run, given the time left): the hard
    stop waits for it, then allows `AFTER_PROTECTED_S` to report what it found, instead
    of throwing away the assignment it is about to return."""
    global _protected
    _protected += 1
    try:
        yield
    finally:
        _protected -= 1


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if not _alarm_armed:  # delivered just as the block ended: nothing to stop
        return
    if _protected:  # look again once the protected call may have returned
        signal.setitimer(signal.ITIMER_REAL, AFTER_PROTECTED_S)
        return
    raise DeadlineExceeded(_what.get(), _alarm_limit, time.monotonic() - _alarm_started)


@contextmanager
def limited(seconds: float | None, *, hard: bool = False) -> Iterator[None]:
    """Run the block under a deadline `seconds` from now (None: no deadline).

    `hard`: also raise `DeadlineExceeded` at `stop_after(seconds)` if the
    block is still running (SIGALRM; main thread of a process only).  Inside
    another deadline the earlier of the two holds.
    """
    global _alarm_armed, _alarm_limit, _alarm_started
    if seconds is None:
        yield
        return
    if hard and threading.current_thread() is not threading.main_thread():
        raise RuntimeError("a hard deadline needs the main thread (SIGALRM)")
    ends = time.monotonic() + seconds
    outer = _deadline.get()
    tokens = (_deadline.set(ends if outer is None else min(outer, ends)), _limit.set(seconds),
              _what.set("the request"))
    previous = None
    if hard:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        _alarm_limit, _alarm_started = seconds, time.monotonic()
        _alarm_armed = True
        signal.setitimer(signal.ITIMER_REAL, stop_after(seconds))
    try:
        yield
    finally:
        if hard:
            _alarm_armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous or signal.SIG_DFL)
        _what.reset(tokens[2])
        _limit.reset(tokens[1])
        _deadline.reset(tokens[0])
