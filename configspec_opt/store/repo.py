"""Repository functions: every query the service makes, one function each.

Each takes an open `Session` inside a transaction that the caller commits,
so one request is one transaction whatever it touches.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, update
from sqlalchemy.orm import Session

from configspec_opt.store.models import (
    UNFINISHED,
    IdempotencyRecord,
    JobRecord,
    ProfileRecord,
    ResultRecord,
    SpecRecord,
    new_public_id,
    utcnow,
)

# --- specs -------------------------------------------------------------------


def save_spec(s: Session, sha256: str, name: str, text: str) -> None:
    """Store a spec once per content hash (a second upload of the same text is a no-op)."""
    values = {"sha256": sha256, "name": name[:200], "text": text, "received_at": utcnow()}
    dialect = s.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        s.execute(sqlite.insert(SpecRecord).values(**values).on_conflict_do_nothing())
    elif dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        s.execute(postgresql.insert(SpecRecord).values(**values).on_conflict_do_nothing())
    elif s.get(SpecRecord, sha256) is None:
        s.add(SpecRecord(**values))
        s.flush()


def get_spec(s: Session, sha256: str) -> SpecRecord | None:
    """A stored spec by the SHA-256 of its text, or None."""
    return s.get(SpecRecord, sha256)


# --- profiles ----------------------------------------------------------------


def add_profiles(s: Session, profiles: Sequence[dict[str, Any]],
                 token_fingerprint: str | None = None) -> list[ProfileRecord]:
    """Append profile entries (validated dicts); ids grow, so newer means larger id.

    `token_fingerprint` names the bearer token that wrote them (None: no token set).
    """
    now = utcnow()
    rows = [ProfileRecord(device=p["device"], draft=p["draft"], quant=p["quant"], data=p,
                          received_at=now, token_fingerprint=token_fingerprint)
            for p in profiles]
    s.add_all(rows)
    s.flush()
    return rows


def _filtered(stmt: Select[Any], device: str | None, draft: str | None,
              quant: str | None) -> Select[Any]:
    if device is not None:
        stmt = stmt.where(ProfileRecord.device == device)
    if draft is not None:
        stmt = stmt.where(ProfileRecord.draft == draft)
    if quant is not None:
        stmt = stmt.where(ProfileRecord.quant == quant)
    return stmt


def find_profiles(
    s: Session, *, device: str | None = None, draft: str | None = None,
    quant: str | None = None, history: bool = False, limit: int = 100, offset: int = 0,
) -> list[ProfileRecord]:
    """Newest entry per (device, draft, quant), or every upload with `history`."""
    stmt = _filtered(select(ProfileRecord), device, draft, quant)
    if history:
        stmt = stmt.order_by(ProfileRecord.id.desc())
    else:
        newest = _filtered(select(func.max(ProfileRecord.id)), device, draft, quant).group_by(
            ProfileRecord.device, ProfileRecord.draft, ProfileRecord.quant)
        stmt = stmt.where(ProfileRecord.id.in_(newest)).order_by(
            ProfileRecord.device, ProfileRecord.draft, ProfileRecord.quant)
    return list(s.scalars(stmt.limit(limit).offset(offset)))


def latest_profiles(s: Session, devices: Iterable[str] | None = None) -> list[ProfileRecord]:
    """Newest entry per key (of these devices, or all), oldest first: what solves use."""
    newest = select(func.max(ProfileRecord.id)).group_by(
        ProfileRecord.device, ProfileRecord.draft, ProfileRecord.quant)
    if devices is not None:
        newest = newest.where(ProfileRecord.device.in_(sorted(set(devices))))
    return list(s.scalars(select(ProfileRecord).where(ProfileRecord.id.in_(newest))
                          .order_by(ProfileRecord.id)))


def get_profile(s: Session, profile_id: int) -> ProfileRecord | None:
    """One profile upload entry by id, or None; it need not be the newest for its key."""
    return s.get(ProfileRecord, profile_id)


# --- results -----------------------------------------------------------------


def add_result(s: Session, kind: str, spec_sha256: str, params: dict[str, Any],
               body: dict[str, Any], job_id: str | None = None) -> ResultRecord:
    """Record an answer with a fresh public id; `status` is the body's own, else "done".

    `job_id` ties it to a job; the unique index on it refuses a second result.
    """
    status = body.get("status")
    row = ResultRecord(public_id=new_public_id(), kind=kind, spec_sha256=spec_sha256,
                       params=params, job_id=job_id,
                       status=status if isinstance(status, str) else "done", body=body,
                       created_at=utcnow())
    s.add(row)
    s.flush()
    return row


def get_result(s: Session, result_id: int) -> ResultRecord | None:
    """A result by its internal key, which jobs refer to and clients never see."""
    return s.get(ResultRecord, result_id)


def find_result(s: Session, public_id: str) -> ResultRecord | None:
    """A result by the id clients see (`/v1/results/{public_id}`)."""
    return s.scalars(select(ResultRecord).where(ResultRecord.public_id == public_id)).first()


def result_public_id(s: Session, result_id: int) -> str | None:
    """The public id of a result known by internal key (for a job's `result_url`)."""
    return s.scalar(select(ResultRecord.public_id).where(ResultRecord.id == result_id))


# --- jobs --------------------------------------------------------------------


def create_job(s: Session, spec_sha256: str, params: dict[str, Any],
               stored_profiles: list[dict[str, Any]] | None) -> JobRecord:
    """Queue a job under a random id; committed by the caller before the 202 is sent."""
    job = JobRecord(id=secrets.token_hex(16), spec_sha256=spec_sha256, params=params,
                    stored_profiles=stored_profiles, state="queued", attempts=0,
                    created_at=db_now(s))
    s.add(job)
    s.flush()
    return job


def get_job(s: Session, job_id: str) -> JobRecord | None:
    """A job by id, or None."""
    return s.get(JobRecord, job_id)


def count_unfinished_jobs(s: Session) -> int:
    """Queued and running jobs: what --max-jobs bounds."""
    return int(s.scalar(select(func.count()).select_from(JobRecord)
                        .where(JobRecord.state.in_(UNFINISHED))) or 0)


def db_now(s: Session) -> datetime:
    """The time jobs are stamped and leases measured in: the database server's clock on
    PostgreSQL (one clock for every machine), this machine's on SQLite (one machine by
    construction)."""
    if s.get_bind().dialect.name == "postgresql":
        value = s.scalar(select(func.clock_timestamp()))
        assert isinstance(value, datetime)
        return value
    return utcnow()


def _lease_expired(now: datetime) -> ColumnElement[bool]:
    return and_(JobRecord.state == "running",
                or_(JobRecord.lease_until.is_(None), JobRecord.lease_until < now))


def fail_exhausted_jobs(s: Session, max_attempts: int, now: datetime | None = None) -> int:
    """Fail jobs whose lease ran out after `max_attempts` claims: a spec that kills every
    worker that takes it must not kill workers forever.  Returns how many."""
    now = now or db_now(s)
    result = s.execute(update(JobRecord).where(
        _lease_expired(now), JobRecord.attempts >= max_attempts).values(
        state="failed", finished_at=now, lease_until=None,
        error={"type": "urn:configspec-opt:problem:worker-lost", "title": "Job interrupted",
               "status": 500, "detail": f"the worker running this job stopped "
               f"{max_attempts} times before finishing it; it is not retried again"})
        .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def claim_next_job(s: Session, worker: str = "", lease_s: float = 30.0,
                   max_attempts: int | None = None) -> JobRecord | None:
    """The oldest job that is queued or whose lease ran out, leased to `worker`.

    PostgreSQL: `FOR UPDATE SKIP LOCKED`, so workers claiming at once take
    different jobs; SQLite: the transaction's `BEGIN IMMEDIATE` holds the write
    lock.  With `max_attempts`, exhausted jobs are failed first.  The start is
    stamped once the job is in hand: a worker that began claiming, then waited
    for SQLite's lock while the job was being queued, stamped a start 51 ms
    before the job's creation.
    """
    now = db_now(s)
    if max_attempts is not None:
        fail_exhausted_jobs(s, max_attempts, now)
    job = s.scalars(select(JobRecord).where(or_(JobRecord.state == "queued",
                                                _lease_expired(now)))
                    .order_by(JobRecord.created_at, JobRecord.id).limit(1)
                    .with_for_update(skip_locked=True)).first()
    if job is None:
        return None
    started = db_now(s)
    job.state = "running"
    job.attempts += 1
    job.started_at = started
    job.lease_until = started + timedelta(seconds=lease_s)
    job.worker = worker[:100] or None
    s.flush()
    return job


def _held(job_id: str, attempt: int) -> ColumnElement[bool]:
    return and_(JobRecord.id == job_id, JobRecord.state == "running",
                JobRecord.attempts == attempt)


def renew_lease(s: Session, job_id: str, attempt: int, lease_s: float) -> bool:
    """The heartbeat: extend the lease of a job this claim still holds.  False when the
    job was taken over (our lease ran out) or finished: the caller must stop working."""
    now = db_now(s)
    result = s.execute(update(JobRecord).where(_held(job_id, attempt))
                       .values(lease_until=now + timedelta(seconds=lease_s))
                       .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0) == 1


def finish_job(s: Session, job_id: str, *, attempt: int | None = None,
               result_id: int | None = None, error: dict[str, Any] | None = None) -> bool:
    """Mark a job finished, only while `attempt` still holds it (None: unconditionally).

    False when another claim took it over: the caller's outcome is dropped
    and, the transaction being rolled back by the caller, nothing is written.
    """
    cond = JobRecord.id == job_id if attempt is None else _held(job_id, attempt)
    result = s.execute(update(JobRecord).where(cond).values(
        state="failed" if error is not None else "succeeded", result_id=result_id,
        error=error, finished_at=db_now(s), lease_until=None)
        .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0) == 1


def requeue_job(s: Session, job_id: str, attempt: int | None = None) -> bool:
    """Give a held job back to the queue at once (a solver process died, or a worker
    stopping cleanly), instead of waiting for its lease to run out."""
    cond = JobRecord.id == job_id if attempt is None else _held(job_id, attempt)
    result = s.execute(update(JobRecord).where(cond)
                       .values(state="queued", started_at=None, lease_until=None, worker=None)
                       .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0) == 1


def set_job_result(s: Session, job_id: str, result_id: int) -> None:
    """Point a job at its result row."""
    s.execute(update(JobRecord).where(JobRecord.id == job_id).values(result_id=result_id)
              .execution_options(synchronize_session=False))


# --- idempotency keys --------------------------------------------------------


def remember_response(s: Session, scope: str, key: str, request_sha256: str) -> bool:
    """Reserve `key` for this request; False when it was used before (read it with
    `get_remembered`).  On PostgreSQL a concurrent first use waits for the other
    transaction and then sees its row; on SQLite the write lock serialises them."""
    values = {"scope": scope, "key": key, "request_sha256": request_sha256, "status": 0,
              "response": {}, "created_at": utcnow()}
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        stmt: Any = postgresql.insert(IdempotencyRecord).values(**values)
    else:
        from sqlalchemy.dialects import sqlite

        stmt = sqlite.insert(IdempotencyRecord).values(**values)
    return s.scalar(stmt.on_conflict_do_nothing().returning(IdempotencyRecord.key)) is not None


def get_remembered(s: Session, scope: str, key: str) -> IdempotencyRecord | None:
    """The first use of an idempotency key in this token's scope, or None."""
    return s.get(IdempotencyRecord, (scope, key))


def store_response(s: Session, scope: str, key: str, status: int,
                   response: dict[str, Any]) -> None:
    """Keep the answer to replay for a key reserved by `remember_response` in this transaction."""
    s.execute(update(IdempotencyRecord)
              .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
              .values(status=status, response=response)
              .execution_options(synchronize_session=False))


# --- listings (the web page, /metrics) ---------------------------------------


def list_jobs(s: Session, *, state: str | None = None, limit: int = 50,
              offset: int = 0) -> tuple[list[JobRecord], int]:
    """Jobs newest first, and how many match in all (for paging)."""
    stmt = select(JobRecord)
    count = select(func.count()).select_from(JobRecord)
    if state is not None:
        stmt = stmt.where(JobRecord.state == state)
        count = count.where(JobRecord.state == state)
    rows = list(s.scalars(stmt.order_by(JobRecord.created_at.desc(), JobRecord.id.desc())
                          .limit(limit).offset(offset)))
    return rows, int(s.scalar(count) or 0)


def count_jobs_by_state(s: Session) -> dict[str, int]:
    """Only the states that have jobs."""
    rows = s.execute(select(JobRecord.state, func.count()).group_by(JobRecord.state))
    return {state: int(n) for state, n in rows}


def list_specs(s: Session, *, limit: int = 50,
               offset: int = 0) -> tuple[list[tuple[str, str, Any, int]], int]:
    """Stored specs newest first as (sha256, name, received_at, characters), and the total."""
    rows = s.execute(select(SpecRecord.sha256, SpecRecord.name, SpecRecord.received_at,
                            func.length(SpecRecord.text))
                     .order_by(SpecRecord.received_at.desc(), SpecRecord.sha256)
                     .limit(limit).offset(offset))
    total = int(s.scalar(select(func.count()).select_from(SpecRecord)) or 0)
    return [(sha, name, at, int(n or 0)) for sha, name, at, n in rows], total
