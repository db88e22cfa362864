"""Repository functions: every query the service makes, one function each.

Each takes an open `Session` inside a transaction that the caller commits,
so one request is one transaction whatever it touches.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from configspec_opt.store.models import (
    UNFINISHED,
    JobRecord,
    ProfileRecord,
    ResultRecord,
    SpecRecord,
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
    return s.get(SpecRecord, sha256)


# --- profiles ----------------------------------------------------------------


def add_profiles(s: Session, profiles: Sequence[dict[str, Any]]) -> list[ProfileRecord]:
    """Append profile entries (validated dicts); ids grow, so newer means larger id."""
    now = utcnow()
    rows = [ProfileRecord(device=p["device"], draft=p["draft"], quant=p["quant"], data=p,
                          received_at=now) for p in profiles]
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
    return s.get(ProfileRecord, profile_id)


# --- results -----------------------------------------------------------------


def add_result(s: Session, kind: str, spec_sha256: str, params: dict[str, Any],
               body: dict[str, Any]) -> ResultRecord:
    status = body.get("status")
    row = ResultRecord(kind=kind, spec_sha256=spec_sha256, params=params,
                       status=status if isinstance(status, str) else "done", body=body,
                       created_at=utcnow())
    s.add(row)
    s.flush()
    return row


def get_result(s: Session, result_id: int) -> ResultRecord | None:
    return s.get(ResultRecord, result_id)


# --- jobs --------------------------------------------------------------------


def create_job(s: Session, spec_sha256: str, params: dict[str, Any],
               stored_profiles: list[dict[str, Any]] | None) -> JobRecord:
    job = JobRecord(id=uuid.uuid4().hex, spec_sha256=spec_sha256, params=params,
                    stored_profiles=stored_profiles, state="queued", attempts=0,
                    created_at=utcnow())
    s.add(job)
    s.flush()
    return job


def get_job(s: Session, job_id: str) -> JobRecord | None:
    return s.get(JobRecord, job_id)


def count_unfinished_jobs(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(JobRecord)
                        .where(JobRecord.state.in_(UNFINISHED))) or 0)


def claim_next_job(s: Session) -> JobRecord | None:
    """Oldest queued job, marked running (row-locked on PostgreSQL; SQLite locks the file)."""
    job = s.scalars(select(JobRecord).where(JobRecord.state == "queued")
                    .order_by(JobRecord.created_at, JobRecord.id).limit(1)
                    .with_for_update(skip_locked=True)).first()
    if job is None:
        return None
    job.state = "running"
    job.attempts += 1
    job.started_at = utcnow()
    s.flush()
    return job


def finish_job(s: Session, job_id: str, *, result_id: int | None = None,
               error: dict[str, Any] | None = None) -> None:
    s.execute(update(JobRecord).where(JobRecord.id == job_id).values(
        state="failed" if error is not None else "succeeded", result_id=result_id,
        error=error, finished_at=utcnow()))


def requeue_job(s: Session, job_id: str) -> None:
    s.execute(update(JobRecord).where(JobRecord.id == job_id)
              .values(state="queued", started_at=None))


def recover_jobs(s: Session, max_attempts: int) -> tuple[int, int]:
    """After a restart: jobs left running go back to the queue, unless they keep dying.

    A job that was running when the process died `max_attempts` times is
    failed instead, so one spec that crashes the server cannot crash it forever.
    Returns (re-queued, failed).
    """
    running = list(s.scalars(select(JobRecord).where(JobRecord.state == "running")))
    failed = 0
    for job in running:
        if job.attempts >= max_attempts:
            job.state = "failed"
            job.finished_at = utcnow()
            job.error = {"title": "Job interrupted", "status": 500,
                         "detail": f"the server stopped {job.attempts} times while this job "
                                   "was running; it is not retried again"}
            failed += 1
        else:
            job.state = "queued"
            job.started_at = None
    queued = count_unfinished_jobs(s)
    s.flush()
    return queued, failed
