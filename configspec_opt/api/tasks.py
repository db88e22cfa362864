"""Entry points of the solver worker processes.

Everything CPU-bound (parsing a spec, building candidates, Pyomo models,
HiGHS) runs here, never on the server's event loop.  Arguments and results
are plain picklable data; user errors come back as problem data, not as
exceptions, so the server can answer them as 4xx.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from configspec_opt.api import spec_calls
from configspec_opt.api.params import (
    EvaluateParams,
    Op,
    OpParams,
    ParetoParams,
    SolveParams,
)
from configspec_opt.api.problem import from_error
from configspec_opt.api.stored_profiles import apply_stored
from configspec_opt.errors import ConfigspecError, SpecError, SpecIssue
from configspec_opt.loader import LoadedSpec, parse_spec

REQUEST_NAME = "<request>"


PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCHDOG_POLL_S = 1.0


def die_with_parent(parent_pid: int) -> None:
    """Make sure this process ends when the server does, even by SIGKILL.

    Linux delivers SIGKILL to us when the parent dies (`PR_SET_PDEATHSIG`);
    a thread polling `os.getppid()` covers other systems and the rare case
    the parent died before the request took effect.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent is already gone
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(WATCHDOG_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def init_worker(parent_pid: int | None = None) -> None:
    """Die with the server; Ctrl-C and SIGTERM are the server's to handle (it stops us);
    import the solver stack once per process."""
    if parent_pid is not None:
        die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import solvers.solve  # noqa: F401  # lazy: start-up
    from solvers.adapter import require_solver  # lazy: start-up

    require_solver()


def warm() -> bool:
    """A task that does nothing, to round-trip a process (no caller in the package)."""
    return True


def serve_tasks(conn: Connection, parent_pid: int) -> None:
    """A solver process: run `(fn, args, limit)` messages one at a time until told to stop.

    Replies are `("ok", value)`, `("error", exception)` or, when the hard
    deadline cut the task short, `("deadline", what, limit, elapsed)`, after
    which the process exits: the interrupted code may have left shared state
    half-updated, and the server starts a fresh one.  `None` (or the server
    closing its end) stops the process.
    """
    from solvers import deadline  # lazy: start-up

    try:
        init_worker(parent_pid)
    except Exception as exc:  # e.g. the solver extra is missing: the server says so
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, args, limit = message
        retire = False
        reply: tuple[Any, ...]
        try:
            with deadline.limited(limit, hard=True):
                reply = ("ok", fn(*args))
        except deadline.DeadlineExceeded as exc:
            reply, retire = ("deadline", exc.what, exc.limit, exc.elapsed), True
        except Exception as exc:
            reply = ("error", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result or exception
            conn.send(("error", RuntimeError(f"the solver process could not send its answer "
                                             f"({type(exc).__name__})")))
        if retire:
            return


def check_json(text: str, media_type: str | None) -> None:
    """A body declared JSON must be JSON (the loader would otherwise read it as YAML)."""
    if media_type == "application/json" and text.lstrip()[:1] not in ("{", "["):
        raise SpecError([SpecIssue("the body is declared application/json but is not a JSON "
                                   "object", file=REQUEST_NAME, line=1, column=1,
                                   hint="send YAML as application/yaml")])


def load(text: str, media_type: str | None, params: OpParams,
         stored: list[dict[str, Any]] | None) -> tuple[LoadedSpec, list[dict[str, Any]] | None]:
    """Parse a request body (paths in it are never opened) and merge stored profiles."""
    check_json(text, media_type)
    loaded = parse_spec(text, name=REQUEST_NAME, base_dir=None, received=True)
    if params.profiles == "stored":
        return apply_stored(loaded, stored or [])
    return loaded, None


def run(op: Op, text: str, media_type: str | None, params: OpParams, time_limit: float | None,
        stored: list[dict[str, Any]] | None) -> dict[str, Any]:
    """`{"ok": True, "body", "sha256", "name"}` or `{"ok": False, "problem"}`."""
    try:
        loaded, used = load(text, media_type, params, stored)
        body: dict[str, Any]
        if op is Op.validate:
            body = spec_calls.validate(loaded)
        elif op is Op.evaluate:
            assert isinstance(params, EvaluateParams)
            body = spec_calls.evaluate(loaded, params)
        elif op is Op.solve:
            assert isinstance(params, SolveParams)
            body = dict(spec_calls.solve(loaded, params, time_limit))
        else:
            assert isinstance(params, ParetoParams)
            body = dict(spec_calls.pareto(loaded, params, time_limit))
    except ConfigspecError as exc:
        return {"ok": False, "problem": from_error(exc).to_wire()}
    if used is not None:
        body["stored_profiles"] = used
    return {"ok": True, "body": body, "sha256": loaded.sha256, "name": loaded.spec.name}


def check_job(text: str, media_type: str | None, params: SolveParams,
              stored: list[dict[str, Any]] | None) -> dict[str, Any]:
    """What a job submission checks before it is accepted: spec and options."""
    try:
        loaded, used = load(text, media_type, params, stored)
        spec_calls.check_solve(loaded, params)
    except ConfigspecError as exc:
        return {"ok": False, "problem": from_error(exc).to_wire()}
    used_ids = {u["id"] for u in used or ()}
    return {"ok": True, "sha256": loaded.sha256, "name": loaded.spec.name,
            "stored": None if stored is None else [e for e in stored if e["id"] in used_ids]}
