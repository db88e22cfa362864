"""The service's own metrics, in Prometheus' text exposition format (`GET /metrics`).

A small ASGI middleware counts every HTTP request by method, route
*template* (`/v1/jobs/{job_id}`, never the raw path, so ids cannot blow up
the number of series) and status, and times it; `dispatch.compute` times
each task handed to the solver processes.  Gauges that describe the
present (solver pool occupancy, jobs by state) are read when scraped, from
the pool and the store, so they cannot drift from the truth.

No `prometheus_client`: the format is a few lines of text, and the service
already has enough dependencies.  The counters live in one registry per
process (`REGISTRY`), as prometheus_client's do, because the job runner and
the request path both record solves and neither is handed the app.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from configspec_opt.api.pool import PoolFull

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SOLVE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                 3600.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "(unmatched)"

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    items = (*labels, extra) if extra is not None else labels
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


class Histogram:
    """Cumulative buckets, sum and count for each label set."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.series: dict[Labels, list[float]] = {}  # bucket counts..., sum, count

    def observe(self, labels: Labels, value: float) -> None:
        """Count `value` (seconds) in every bucket it fits, Prometheus-style (cumulative)."""
        row = self.series.get(labels)
        if row is None:
            row = self.series[labels] = [0.0] * (len(self.buckets) + 2)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                row[i] += 1
        row[-2] += value
        row[-1] += 1

    def lines(self, name: str) -> Iterable[str]:
        """The exposition lines of every series, in a stable (sorted) order."""
        for labels, row in sorted(self.series.items()):
            for bound, n in zip(self.buckets, row):
                yield f"{name}_bucket{_labels(labels, ('le', _number(bound)))} {_number(n)}"
            yield f"{name}_bucket{_labels(labels, ('le', '+Inf'))} {_number(row[-1])}"
            yield f"{name}_sum{_labels(labels)} {_number(row[-2])}"
            yield f"{name}_count{_labels(labels)} {_number(row[-1])}"


class Registry:
    """What the process has counted since it started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.requests: dict[Labels, float] = {}
        self.request_seconds = Histogram(REQUEST_BUCKETS)
        self.in_progress = 0
        self.solve_seconds = Histogram(SOLVE_BUCKETS)

    def request_started(self) -> None:
        """Count a request as in progress; each call needs its `request_finished`."""
        with self._lock:
            self.in_progress += 1

    def request_finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count an answered request by route template (not path: ids would multiply series)."""
        key = (("method", method), ("route", route), ("status", str(status)))
        with self._lock:
            self.in_progress -= 1
            self.requests[key] = self.requests.get(key, 0.0) + 1
            self.request_seconds.observe((("method", method), ("route", route)), seconds)

    def solve_finished(self, op: str, outcome: str, seconds: float) -> None:
        """One solver-pool task: `outcome` is ok, problem (a 4xx), error or cancelled."""
        with self._lock:
            self.solve_seconds.observe((("op", op), ("outcome", outcome)), seconds)

    def render(self, gauges: Sequence[Gauge] = ()) -> str:
        """Prometheus text exposition of everything counted, plus the caller's `gauges`."""
        out: list[str] = []
        with self._lock:
            _family(out, "configspec_http_requests_total", "counter",
                    "HTTP requests answered, by method, route template and status.",
                    (f"configspec_http_requests_total{_labels(k)} {_number(v)}"
                     for k, v in sorted(self.requests.items())))
            _family(out, "configspec_http_request_duration_seconds", "histogram",
                    "Time from receiving a request to the end of its answer.",
                    self.request_seconds.lines("configspec_http_request_duration_seconds"))
            _family(out, "configspec_http_requests_in_progress", "gauge",
                    "Requests being answered now.",
                    [f"configspec_http_requests_in_progress {self.in_progress}"])
            _family(out, "configspec_solve_duration_seconds", "histogram",
                    "Tasks of the solver processes (validate, evaluate, solve, pareto; "
                    "requests and jobs), from submission to the pool to the answer, by "
                    "operation and outcome (ok; problem: the request's fault; error; "
                    "cancelled: the client went away).",
                    self.solve_seconds.lines("configspec_solve_duration_seconds"))
        for g in gauges:
            _family(out, g.name, g.kind, g.help,
                    (f"{g.name}{_labels(labels)} {_number(v)}" for labels, v in g.values))
        _family(out, "process_start_time_seconds", "gauge",
                "Start time of the process since the Unix epoch, in seconds.",
                [f"process_start_time_seconds {_number(round(self.started, 3))}"])
        rss = _resident_bytes()
        if rss is not None:
            _family(out, "process_resident_memory_bytes", "gauge",
                    "Resident memory of the server process (not its solver processes).",
                    [f"process_resident_memory_bytes {rss}"])
        return "\n".join(out) + "\n"


class Gauge:
    """A value read at scrape time, possibly one per label set; `kind` "counter" for a total
    the store keeps (it only grows)."""

    def __init__(self, name: str, help: str, values: Iterable[tuple[Labels, float]],
                 kind: str = "gauge") -> None:
        self.name = name
        self.help = help
        self.values = list(values)
        self.kind = kind


def _family(out: list[str], name: str, kind: str, help: str, lines: Iterable[str]) -> None:
    out.append(f"# HELP {name} {help}")
    out.append(f"# TYPE {name} {kind}")
    out.extend(lines)


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


REGISTRY = Registry()


async def timed_solve(op: str, task: Awaitable[dict[str, Any]],
                      registry: Registry | None = None) -> dict[str, Any]:
    """Await a solver-pool task and record how long it took and how it ended.

    A task refused at once (pool full: the request's 503) never ran and is
    not recorded; one whose request went away is `cancelled`.
    """
    registry = registry or REGISTRY
    started = time.perf_counter()
    outcome: str | None = "error"
    try:
        answer = await task
        outcome = "ok" if answer.get("ok") else "problem"
        return answer
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    except PoolFull:
        outcome = None
        raise
    finally:
        if outcome is not None:
            registry.solve_finished(op, outcome, time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The path template of the route that answered, or `(unmatched)`.

    The router records the route it chose in the scope; mounted apps (the
    static files) are not recorded there, so they are found by prefix.
    """
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None)
    if isinstance(path, str) and path:
        return path
    app: Any = scope.get("app")
    here = scope.get("path", "")
    for r in getattr(app, "routes", ()):
        if isinstance(r, Mount) and (here == r.path or here.startswith(r.path + "/")):
            return r.path_format
    return UNMATCHED


class TelemetryMiddleware:
    """Counts and times every HTTP request; a request that raised counts as a 500."""

    def __init__(self, app: ASGIApp, registry: Registry = REGISTRY) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count and time the request, noting the status as the answer starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        method = scope.get("method", "")
        self.registry.request_started()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.registry.request_finished(method if method in METHODS else "other",
                                           route_template(scope), status,
                                           time.perf_counter() - started)
