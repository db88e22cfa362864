"""GET /v1/drift and POST /v1/drift/replan: the watched lock against what the fleet reports.

The server watches one lock (`configspec serve --watch LOCK`), read with its
spec on every call, so a lock rewritten by `configspec lock` counts from the
next call.  `GET` checks the observations of the drift window against it
(`drift.compare`) and marks drifted pools; `POST .../replan` also solves the
spec with the drifted numbers replaced, in a solver process, and answers the
`configspec diff --json` of the lock against that answer.  Nothing is
applied: the lock and the spec are never written.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from configspec_opt.api import telemetry
from configspec_opt.api.deps import ServiceDep
from configspec_opt.api.dispatch import deadline_problem, time_limit_for
from configspec_opt.api.openapi import errors
from configspec_opt.api.params import TimeLimit
from configspec_opt.api.pool import TaskDeadline
from configspec_opt.api.problem import ApiProblem
from configspec_opt.api.schemas import OpenOut, Out
from configspec_opt.api.settings import Settings
from configspec_opt.drift.compare import Observed, Tolerances
from configspec_opt.drift.observations import ConfigKey
from configspec_opt.drift.replan import replan_task
from configspec_opt.drift.watch import Watched, check_watched, load_watched
from configspec_opt.errors import ConfigspecError, SpecError
from configspec_opt.store import observations as stored

router = APIRouter(prefix="/v1/drift", tags=["drift"])
LOCK_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "The server watches no lock (configspec serve --watch LOCK)"},
    409: {"description": "The watched lock or its spec cannot be read"}}


class CheckOut(Out):
    """One quantity of one pool: the number the solve used, its band, what was seen."""

    metric: Literal["acceptance", "draft_tok_s", "rtt_s", "verify_step_s"]
    expected: float
    band: list[float] = Field(description="[low, high]: beyond it (and beyond the "
                              "observation's own interval) is drift.")
    observed: float | None
    interval: list[float] | None = Field(description="Acceptance: the Wilson score "
                                         "interval of the observed rate.")
    n: int = Field(description="Draft rounds (acceptance) or reports (the others).")
    verdict: Literal["ok", "lower", "higher", "too few", "not observed"]


class ConfigOut(Out):
    """A configuration of a pool: what a lock row or a report names."""

    device: str
    target: str
    draft: str
    quant: str
    k: int


class PoolOut(ConfigOut):
    """One row of the lock's assignment, checked."""

    count: int
    status: Literal["drifted", "ok", "no data"]
    note: str | None = Field(description="Set when the pool reports a configuration the "
                             "lock does not assign.")
    checks: list[CheckOut]


class LockOut(Out):
    """The watched lock, its spec, and the spec's files changed since the lock was written."""

    file: str
    spec: str
    spec_name: str
    spec_sha256: str
    status: str | None
    stale: list[str]


class DriftOut(Out):
    """The drift report: every lock row checked over the window."""

    lock: LockOut
    window_s: float
    drifted: list[str] = Field(description="Pools with a drifted row, in the lock's order.")
    tolerances: dict[str, float]
    pools: list[PoolOut]
    unplanned: list[ConfigOut] = Field(description="Reported configurations of the lock's "
                                       "pools that the lock does not assign.")
    unknown: list[ConfigOut] = Field(description="Reported configurations of pools the lock "
                                     "does not have (ignored).")


class ProposalOut(Out):
    """A re-plan for review: what was changed in the spec, and the diff against the lock."""

    changes: list[str]
    applied: Literal[False] = Field(description="Always false: nothing is written.")
    diff: OpenOut = Field(description="`configspec diff --json` of the lock (old) against "
                          "the re-planned answer (new).")


class ReplanOut(DriftOut):
    """The drift report and, when a pool drifted, the proposed re-plan."""

    proposal: ProposalOut | None


class ReplanQuery(BaseModel):
    """Query of `POST /v1/drift/replan`; unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid")

    time_limit: TimeLimit = None


def watched_path(settings: Settings) -> str:
    """The watched lock's path, or a 404 saying how to watch one."""
    if settings.watch_lock is None:
        raise ApiProblem(404, "no-watched-lock", "No watched lock",
                         "this server watches no lock: start it with "
                         "`configspec serve --watch fleet.yaml.lock`")
    return settings.watch_lock


def lock_problem(exc: ConfigspecError | str) -> ApiProblem:
    """409: the server's own lock or spec is unreadable (the request is not at fault)."""
    extra: dict[str, Any] = {}
    if isinstance(exc, SpecError):
        extra["errors"] = [i.to_dict() for i in exc.issues]
    return ApiProblem(409, "watched-lock-invalid", "Watched lock unreadable",
                      f"the watched lock or its spec cannot be read: {exc}"[:4000], **extra)


async def _observed(service: ServiceDep) -> dict[ConfigKey, Observed]:
    window_s = service.settings.drift_window_s
    return await service.db.run(lambda s: stored.window(s, window_s=window_s))


async def _load(path: str) -> Watched:
    try:
        return await anyio.to_thread.run_sync(load_watched, path)
    except ConfigspecError as exc:
        raise lock_problem(exc) from None


@router.get("", responses={**errors(401), **LOCK_ERRORS})
async def get_drift(service: ServiceDep) -> DriftOut:
    """Which pools of the watched lock drifted from their profiles over the drift window."""
    watched = await _load(watched_path(service.settings))
    report = check_watched(watched, await _observed(service))
    return DriftOut.model_validate({"lock": watched.describe(),
                                    "window_s": service.settings.drift_window_s,
                                    **report.to_dict()})


@router.post("/replan", responses={**errors(401, 422, 503, 504), **LOCK_ERRORS})
async def replan(service: ServiceDep, q: Annotated[ReplanQuery, Query()]) -> ReplanOut:
    """Propose a re-plan for the drifted pools, as a diff against the lock (never applied)."""
    path = watched_path(service.settings)
    s = service.settings
    limit = time_limit_for(q.time_limit, s.default_time_limit, s.max_time_limit,
                           hint="run `configspec observe FILE --lock LOCK` for longer solves")
    observed = await _observed(service)
    try:
        outcome = await telemetry.timed_solve("replan", service.pool.run(
            replan_task, path, observed, Tolerances(), limit, limit=limit))
    except TaskDeadline as exc:
        raise deadline_problem(exc) from None
    if not outcome["ok"]:
        raise lock_problem(str(outcome["error"]))
    return ReplanOut.model_validate({"lock": outcome["lock"], "window_s": s.drift_window_s,
                                     **outcome["drift"], "proposal": outcome["proposal"]})
