"""POST /v1/jobs queues a solve; GET /v1/jobs/{id} reports it, with the result when done.

GET /v1/jobs lists them, newest first, without their results (which can be large).

For fleets whose solve outlasts an HTTP request.  The spec and options are
checked before the job is accepted (an invalid spec is a 422 now, not a
failed job later), and the job row is committed before the 202, so an
acknowledged job survives a crash.  `profiles=stored` takes a snapshot of
the stored profiles at submission.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from configspec_opt.api import tasks
from configspec_opt.api.deps import BodyDep, DbDep, ServiceDep
from configspec_opt.api.dispatch import (
    recorded_params,
    storage_unavailable,
    stored_profiles,
    time_limit_for,
)
from configspec_opt.api.openapi import errors, request_body
from configspec_opt.api.params import SolveParams
from configspec_opt.api.problem import ApiProblem
from configspec_opt.api.schemas import JobOut
from configspec_opt.spec import Spec
from configspec_opt.store import repo
from configspec_opt.store.models import JobRecord

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
JobId = Annotated[str, Path(min_length=32, max_length=32, pattern="^[0-9a-f]{32}$")]


def job_out(s: Session, job: JobRecord, *, with_result: bool = True) -> JobOut:
    """The API view of a job row; `with_result=False` for listings, where results would be large."""
    result = repo.get_result(s, job.result_id) \
        if job.result_id is not None and with_result else None
    return JobOut.model_validate({
        "id": job.id, "status": job.state, "spec_sha256": job.spec_sha256,
        "params": job.params, "stored_profiles": job.stored_profiles,
        "attempts": job.attempts, "created_at": job.created_at,
        "started_at": job.started_at, "finished_at": job.finished_at,
        "result_url": f"/v1/results/{repo.result_public_id(s, job.result_id)}"
        if job.result_id is not None else None,
        "result": result.body if result is not None else None, "error": job.error})


def _check_room(s: Session, service: ServiceDep) -> None:
    """429 when the queue is full, with a Retry-After from recent solve times."""
    settings = service.settings
    pending = repo.count_unfinished_jobs(s)
    if pending >= settings.max_pending_jobs:
        wait = math.ceil(max(1.0, service.pool.retry_after() * pending
                             / settings.job_concurrency))
        raise ApiProblem(429, "too-many-jobs", "Too many unfinished jobs",
                         f"{pending} jobs are queued or running (limit "
                         f"{settings.max_pending_jobs}); retry later",
                         headers={"Retry-After": str(min(wait, 3600))})


@router.post("", status_code=202, openapi_extra=request_body(
    Spec, "A deployment spec; the options are those of POST /v1/solve."),
    responses=errors(400, 401, 413, 415, 422, 429, 503))
async def submit_job(service: ServiceDep, body: BodyDep, response: Response,
                     params: Annotated[SolveParams, Query()]) -> JobOut:
    """Queue a solve. The answer's `Location` is the job to poll."""
    settings = service.settings
    limit = time_limit_for(params.time_limit, settings.job_time_limit,
                           settings.max_job_time_limit, hint="(configspec serve "
                           "--max-job-time-limit)")
    params = params.model_copy(update={"time_limit": limit})
    await service.db.run(lambda s: _check_room(s, service))
    stored = await stored_profiles(service.db, params)
    checked: dict[str, Any] = await anyio.to_thread.run_sync(
        tasks.check_job, body.text, body.media_type, params, stored)
    if not checked["ok"]:
        raise ApiProblem.from_wire(checked["problem"])

    def create(s: Session) -> JobOut:
        _check_room(s, service)  # again, in the transaction that inserts
        repo.save_spec(s, checked["sha256"], checked["name"], body.text)
        job = repo.create_job(s, checked["sha256"], recorded_params(params, limit),
                              checked["stored"])
        return job_out(s, job)

    try:
        out = await service.db.run(create)
    except DBAPIError as exc:  # nothing was acknowledged: the client may simply retry
        raise storage_unavailable(exc) from None
    service.jobs.wake()
    response.headers["Location"] = f"/v1/jobs/{out.id}"
    return out


class JobsQuery(BaseModel):
    """Filter and page of `GET /v1/jobs`; unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["queued", "running", "succeeded", "failed"] | None = None
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000_000)


class JobsOut(BaseModel):
    """One page of jobs, without their results."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobOut] = Field(description="Newest first; `result` is left out (follow "
                               "`result_url` or GET the job).")
    total: int = Field(description="Jobs matching the filter in all (for paging).")


@router.get("", responses=errors(401, 422))
def list_jobs(db: DbDep, q: Annotated[JobsQuery, Query()]) -> JobsOut:
    """Jobs, newest first, optionally only those in one `status`."""
    with db.transaction() as s:
        rows, total = repo.list_jobs(s, state=q.status, limit=q.limit, offset=q.offset)
        return JobsOut(jobs=[job_out(s, j, with_result=False) for j in rows], total=total)


@router.get("/{job_id}", responses=errors(401, 404, 422))
def get_job(db: DbDep, job_id: JobId) -> JobOut:
    """Status of a job; `result` holds the solve's JSON once it succeeded."""
    with db.transaction() as s:
        job = repo.get_job(s, job_id)
        if job is None:
            raise ApiProblem(404, "not-found", "No such job", f"no job {job_id}")
        return job_out(s, job)
