"""Running a spec operation for a request: stored profiles, the pool, the record.

Shared by the synchronous spec routes and the job runner, so a job and a
`POST /v1/solve` with the same body and options compute the same thing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from configspec_opt.api import tasks, telemetry
from configspec_opt.api.params import Op, OpParams, SolveParams
from configspec_opt.api.pool import SolverPool, TaskDeadline
from configspec_opt.api.problem import ApiProblem
from configspec_opt.store import repo
from configspec_opt.store.database import Database

RECORDED = (Op.solve, Op.pareto)


def time_limit_for(requested: float | None, default: float, maximum: float,
                   *, hint: str) -> float:
    """The solver time limit a request gets: its own, within the server's maximum."""
    if requested is None:
        return default
    if requested > maximum:
        raise ApiProblem(422, "invalid-request", "Time limit too long",
                         f"time_limit {requested:g} s is above this server's maximum of "
                         f"{maximum:g} s; {hint}")
    return requested


async def stored_profiles(db: Database, params: OpParams) -> list[dict[str, Any]] | None:
    """Newest stored profile per key, when the request asks for stored profiles."""
    if params.profiles != "stored":
        return None

    def load(s: Session) -> list[dict[str, Any]]:
        return [{"id": r.id, "profile": r.data} for r in repo.latest_profiles(s)]

    return await db.run(load)


def describe_error(exc: BaseException) -> str:
    """A short, path-free account of a storage error: its type and, for a database
    error, the driver's first line (e.g. 'database or disk is full')."""
    orig = getattr(exc, "orig", None)
    if orig is not None:
        first = (str(orig).splitlines() or [""])[0].strip()
        return f"{type(orig).__name__}: {first[:120]}" if first else type(orig).__name__
    return type(exc).__name__


def storage_unavailable(exc: BaseException) -> ApiProblem:
    """503 for a write the database refused (full disk, read-only, gone): nothing was
    stored, and retrying later is the remedy.  The driver's message stays in the log."""
    return ApiProblem(503, "storage-unavailable", "Storage unavailable",
                      f"the database cannot take this write now ({describe_error(exc)}); "
                      "nothing was stored: retry later (GET /readyz says when it works)",
                      headers={"Retry-After": "5"})


def deadline_problem(exc: TaskDeadline, *, job: bool = False) -> ApiProblem:
    """504: the work ran past its time limit in a step that cannot stop with a partial answer.

    A solve or Pareto run that reaches its limit answers 200 with what it
    found (`feasible` with its certified gap, `time_limit` without an
    assignment, an incomplete front); this is for the rest (parsing, building
    a model too large for the limit), stopped at `solvers.deadline.stop_after`.
    """
    advice = ("raise time_limit (up to the server's maximum)" if job else
              "submit a job (POST /v1/jobs) with a longer time_limit")
    return ApiProblem(504, "deadline-exceeded", "Time limit exceeded",
                      f"{exc.what} did not finish within the time limit of {exc.limit:g} s "
                      f"(stopped after {exc.elapsed:.1f} s); {advice}",
                      time_limit_s=exc.limit)


async def compute(pool: SolverPool, op: Op, text: str, media_type: str | None,
                  params: OpParams, time_limit: float | None,
                  stored: list[dict[str, Any]] | None, *, wait: bool = False) -> dict[str, Any]:
    """Run on the pool; a user error comes back as an `ApiProblem`, raised here.

    `time_limit` bounds everything the task does (None: the pool's default,
    the server's --time-limit); past it the task answers what it has, or is
    stopped (504).  Cancelling the caller (client gone) kills the process.
    """
    try:
        outcome = await telemetry.timed_solve(op.value, pool.run(
            tasks.run, op, text, media_type, params, time_limit, stored, wait=wait,
            limit=time_limit))
    except TaskDeadline as exc:
        raise deadline_problem(exc, job=wait) from None
    if not outcome["ok"]:
        raise ApiProblem.from_wire(outcome["problem"])
    return outcome


def recorded_params(params: OpParams, time_limit: float | None) -> dict[str, Any]:
    """The options stored with a result, with the time limit applied rather than the one asked."""
    data = params.model_dump(mode="json")
    if "time_limit" in data:
        data["time_limit"] = time_limit
    return data


def record(s: Session, op: Op, text: str, outcome: dict[str, Any],
           params: dict[str, Any]) -> int:
    """Store the spec (by hash) and the result; returns the result id."""
    repo.save_spec(s, outcome["sha256"], outcome["name"], text)
    return repo.add_result(s, op.value, outcome["sha256"], params, outcome["body"]).id


def job_params(data: dict[str, Any]) -> SolveParams:
    """Read a job's stored options back; a job keeps the options it was submitted with."""
    return SolveParams.model_validate(data)
