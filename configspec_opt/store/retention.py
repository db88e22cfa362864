"""Retention: what the store forgets, so the database does not grow without bound.

Every solve and Pareto run stores its answer (about 6 KB for the example
fleet), so a busy server grows by gigabytes a year.  The policy:

* finished jobs (succeeded or failed) and results older than `older_than`
  days are deleted, and beyond the newest `keep` of each, older ones too;
* a result a remaining job points to stays (a job's `result_url` keeps
  working for as long as the job is listed);
* a spec no remaining result or job refers to is deleted once it is older
  than the cut-off (specs are stored only for results and jobs);
* idempotency keys of profile uploads older than the cut-off are deleted
  (a device retries within minutes, not days; there is no count limit);
* profiles are never pruned: the newest per (device, draft, quant) is what
  `profiles=stored` solves use, and the history is the audit of who wrote
  what (`token_fingerprint`).

Queued and running jobs are never touched.  `configspec serve` applies the
policy at start-up and hourly (`--keep-days`, `--keep-results`);
`configspec db prune` applies it once, by hand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from configspec_opt.store.models import (
    IdempotencyRecord,
    JobRecord,
    ResultRecord,
    SpecRecord,
    utcnow,
)

FINISHED = ("succeeded", "failed")


@dataclass(frozen=True)
class Pruned:
    """How many rows one prune removed, by table; false when it removed nothing."""

    results: int
    jobs: int
    specs: int
    idempotency_keys: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The counts as a plain dict, for JSON output."""
        return asdict(self)

    def __bool__(self) -> bool:
        return bool(self.results or self.jobs or self.specs or self.idempotency_keys)


def _beyond_newest(stmt: Select[Any], keep: int | None) -> Select[Any] | None:
    return None if keep is None else stmt.offset(keep)


def _old_or_excess(cutoff_clause: ColumnElement[bool] | None,
                   excess: Select[Any] | None, id_column: Any) -> ColumnElement[bool] | None:
    parts: list[ColumnElement[bool]] = []
    if cutoff_clause is not None:
        parts.append(cutoff_clause)
    if excess is not None:
        parts.append(id_column.in_(excess.scalar_subquery()))
    return or_(*parts) if parts else None


def prune(s: Session, *, older_than_days: float | None, keep: int | None,
          now: datetime | None = None, dry_run: bool = False) -> Pruned:
    """Delete what the policy (module docstring) says; returns how many rows went.

    `older_than_days` None: no age limit; `keep` None: no count limit.
    `dry_run` does the same inside a savepoint it rolls back: exact counts,
    nothing deleted.
    """
    if older_than_days is not None and older_than_days < 0:
        raise ValueError("older_than_days must be >= 0")
    if keep is not None and keep < 0:
        raise ValueError("keep must be >= 0")
    if older_than_days is None and keep is None:
        return Pruned(results=0, jobs=0, specs=0)
    if dry_run:
        savepoint = s.begin_nested()
        try:
            return _prune(s, older_than_days, keep, now or utcnow())
        finally:
            savepoint.rollback()
    return _prune(s, older_than_days, keep, now or utcnow())


def _prune(s: Session, older_than_days: float | None, keep: int | None,
           now: datetime) -> Pruned:
    cutoff = now - timedelta(days=older_than_days) if older_than_days is not None else None

    finished = JobRecord.state.in_(FINISHED)
    job_time = func.coalesce(JobRecord.finished_at, JobRecord.created_at)
    job_excess = _beyond_newest(select(JobRecord.id).where(finished)
                                .order_by(job_time.desc(), JobRecord.id.desc()), keep)
    job_rule = _old_or_excess(job_time < cutoff if cutoff is not None else None,
                              job_excess, JobRecord.id)
    job_ids: list[str] = [] if job_rule is None else \
        list(s.scalars(select(JobRecord.id).where(finished, job_rule)))
    for chunk in _chunks(job_ids):
        s.execute(delete(JobRecord).where(JobRecord.id.in_(chunk)))

    referenced = select(JobRecord.result_id).where(JobRecord.result_id.is_not(None))
    result_excess = _beyond_newest(select(ResultRecord.id).order_by(
        ResultRecord.created_at.desc(), ResultRecord.id.desc()), keep)
    result_rule = _old_or_excess(ResultRecord.created_at < cutoff if cutoff is not None
                                 else None, result_excess, ResultRecord.id)
    result_ids: list[int] = [] if result_rule is None else list(s.scalars(
        select(ResultRecord.id).where(result_rule, ResultRecord.id.not_in(referenced))))
    for chunk in _chunks(result_ids):
        s.execute(delete(ResultRecord).where(ResultRecord.id.in_(chunk)))

    used = or_(SpecRecord.sha256.in_(select(ResultRecord.spec_sha256)),
               SpecRecord.sha256.in_(select(JobRecord.spec_sha256)))
    orphan = and_(~used, SpecRecord.received_at < cutoff) if cutoff is not None else ~used
    spec_ids = list(s.scalars(select(SpecRecord.sha256).where(orphan)))
    for chunk in _chunks(spec_ids):
        s.execute(delete(SpecRecord).where(SpecRecord.sha256.in_(chunk)))
    keys = 0
    if cutoff is not None:
        gone = s.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)
                         .execution_options(synchronize_session=False))
        keys = int(getattr(gone, "rowcount", 0) or 0)
    s.flush()
    return Pruned(results=len(result_ids), jobs=len(job_ids), specs=len(spec_ids),
                  idempotency_keys=keys)


def _chunks(ids: list[Any], size: int = 500) -> list[list[Any]]:
    """SQLite limits the parameters of one statement; delete in slices."""
    return [ids[i:i + size] for i in range(0, len(ids), size)]
