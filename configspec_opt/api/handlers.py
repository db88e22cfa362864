"""Exception handlers: every error leaves as application/problem+json.

Unexpected exceptions become a 500 problem carrying only an error id; the
traceback goes to the server log under that id, never to the client.
"""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from configspec_opt.api.pool import PoolFull, WorkerCrashed
from configspec_opt.api.problem import PROBLEM_JSON, ApiProblem

log = logging.getLogger("configspec.api")


def problem_response(request: Request, problem: ApiProblem) -> JSONResponse:
    """The problem as a problem+json response, with the request path as its `instance`."""
    return JSONResponse(problem.body(instance=request.url.path), status_code=problem.status,
                        headers=problem.headers, media_type=PROBLEM_JSON)


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(request)"


async def on_problem(request: Request, exc: Exception) -> JSONResponse:
    """An error a route raised on purpose: answered as it was built."""
    assert isinstance(exc, ApiProblem)
    return problem_response(request, exc)


async def on_validation(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, reshaped into a problem whose `errors` name each bad field by path."""
    assert isinstance(exc, RequestValidationError)
    errors = [{"message": e.get("msg", "invalid"), "path": _where(tuple(e.get("loc", ())))}
              for e in exc.errors()]
    detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
    return problem_response(request, ApiProblem(422, "invalid-request", "Invalid request",
                                                detail, errors=errors))


async def on_http(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (404, 405, ...) as problems, keeping their status and headers."""
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "Error"
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    return problem_response(request, ApiProblem(exc.status_code, "", phrase, detail,
                                                headers=dict(exc.headers or {})))


async def on_pool_full(request: Request, exc: Exception) -> JSONResponse:
    """503 with Retry-After when the solver backlog is full; jobs are the way around it."""
    assert isinstance(exc, PoolFull)
    return problem_response(request, ApiProblem(
        503, "overloaded", "All solver processes are busy",
        f"every solver process is busy and the wait queue is full; retry in "
        f"{exc.retry_after} s, or submit a job (POST /v1/jobs)",
        headers={"Retry-After": str(exc.retry_after)}))


async def on_worker_crash(request: Request, exc: Exception) -> JSONResponse:
    """503 for a solver process that died mid-request; the pool restarts it, so a retry can work."""
    log.error("a solver process died while serving %s", request.url.path)
    return problem_response(request, ApiProblem(
        503, "worker-crashed", "Solver process died",
        "the solver process serving this request died (out of memory?); the pool was "
        "restarted, retry", headers={"Retry-After": "1"}))


async def on_storage(request: Request, exc: Exception) -> JSONResponse:
    """The database refused a write (full disk, lost connection): the answer was not kept."""
    log.error("storage error on %s %s: %s", request.method, request.url.path,
              str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return problem_response(request, ApiProblem(
        503, "storage-unavailable", "Storage unavailable",
        "the database refused to record this request (full disk? lost connection?); "
        "nothing was stored, retry later (GET /readyz says when the store is back)",
        headers={"Retry-After": "5"}))


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """500 with an error id only; the traceback goes to the server log under that id."""
    error_id = uuid.uuid4().hex[:12]
    log.error("unexpected error %s on %s %s", error_id, request.method, request.url.path,
              exc_info=exc)
    return problem_response(request, ApiProblem(
        500, "internal-error", "Internal server error",
        f"an unexpected error occurred; the server log has the details under {error_id}",
        error_id=error_id))


def install(app: FastAPI) -> None:
    """Register the handlers so that no error, expected or not, leaves as anything but a problem."""
    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(PoolFull, on_pool_full)
    app.add_exception_handler(WorkerCrashed, on_worker_crash)
    app.add_exception_handler(OperationalError, on_storage)
    app.add_exception_handler(Exception, on_unexpected)
