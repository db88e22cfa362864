"""Tables.  Each row is written once and (except a job's state) never changed.

JSON columns hold exactly what the API returns (a profile as the `Profile`
model dumps it, a result as the CLI's `--json` prints it), so reading a row
back never needs the solver or the code version that produced it.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JOB_STATES = ("queued", "running", "succeeded", "failed")
UNFINISHED = ("queued", "running")


def utcnow() -> datetime:
    """Now, zone-aware in UTC: every timestamp is stored in UTC (SQLite drops the zone)."""
    return datetime.now(timezone.utc)


def new_public_id() -> str:
    """128 random bits as 32 hex digits: an id in a URL that cannot be guessed or counted."""
    return secrets.token_hex(16)


class Base(DeclarativeBase):
    """Declarative base; dict and list columns are JSON on every backend."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class SpecRecord(Base):
    """A spec as received, identified by the SHA-256 the CLI also reports."""

    __tablename__ = "specs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProfileRecord(Base):
    """One uploaded profile entry; uploads append, the newest per key wins."""

    __tablename__ = "profiles"
    __table_args__ = (Index("ix_profiles_key", "device", "draft", "quant", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device: Mapped[str] = mapped_column(String(200))
    draft: Mapped[str] = mapped_column(String(200))
    quant: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # who wrote it: the first 12 hex digits of SHA-256 of the bearer token, never the token
    token_fingerprint: Mapped[str | None] = mapped_column(String(12), nullable=True)


class ResultRecord(Base):
    """The JSON answer of one solve or Pareto run, with what produced it.

    `id` stays internal (jobs refer to it); clients see `public_id`, random,
    so one client cannot read another's results by counting.
    """

    __tablename__ = "results"
    __table_args__ = (Index("ix_results_job_id", "job_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, index=True,
                                           default=new_public_id)
    kind: Mapped[str] = mapped_column(String(16))
    spec_sha256: Mapped[str] = mapped_column(ForeignKey("specs.sha256"), index=True)
    params: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the job that produced it (None for synchronous solves); unique: a job's result is
    # written once, even by a late second finisher
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class JobRecord(Base):
    """A queued solve.  Committed before the 202 goes out.

    A worker that claims it holds a lease (`lease_until`, renewed by its
    heartbeat); when the lease runs out (the worker died), any worker may
    claim the job again.  `attempts` counts claims and is the fencing token:
    a worker may renew or finish the job only while `attempts` is still the
    value its claim set, so a worker presumed dead cannot write over its
    successor.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_created", "state", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    spec_sha256: Mapped[str] = mapped_column(ForeignKey("specs.sha256"))
    params: Mapped[dict[str, Any]]
    stored_profiles: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result_id: Mapped[int | None] = mapped_column(ForeignKey("results.id"), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(100), nullable=True)  # who holds it


class IdempotencyRecord(Base):
    """The first answer to a request sent with an `Idempotency-Key` header.

    Keyed by the writer (token fingerprint, "" without a token) and the key,
    so two clients cannot collide; `request_sha256` tells a retry (same
    body: the stored answer again) from a reuse of the key (another body: 422).
    """

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(12), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ObservedSeries(Base):
    """One reporter's last counters for one configuration (`drift.observations`).

    Kept only to count what each report adds: counters are cumulative at the
    reporter, so the next report is measured against these.
    """

    __tablename__ = "observed_series"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    device: Mapped[str] = mapped_column(String(200), primary_key=True)
    target: Mapped[str] = mapped_column(String(200), primary_key=True)
    draft: Mapped[str] = mapped_column(String(200), primary_key=True)
    quant: Mapped[str] = mapped_column(String(200), primary_key=True)
    k: Mapped[int] = mapped_column(Integer, primary_key=True)
    drafts: Mapped[int] = mapped_column(BigInteger)
    draft_tokens: Mapped[int] = mapped_column(BigInteger)
    accepted_tokens: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class _ObservedSums:
    """The columns a total and a window bucket share: counter increments and reading sums."""

    device: Mapped[str] = mapped_column(String(200), primary_key=True)
    target: Mapped[str] = mapped_column(String(200), primary_key=True)
    draft: Mapped[str] = mapped_column(String(200), primary_key=True)
    quant: Mapped[str] = mapped_column(String(200), primary_key=True)
    k: Mapped[int] = mapped_column(Integer, primary_key=True)
    reports: Mapped[int] = mapped_column(BigInteger)
    drafts: Mapped[int] = mapped_column(BigInteger)
    draft_tokens: Mapped[int] = mapped_column(BigInteger)
    accepted_tokens: Mapped[int] = mapped_column(BigInteger)
    draft_tok_s_sum: Mapped[float] = mapped_column(Float)
    draft_tok_s_n: Mapped[int] = mapped_column(BigInteger)
    rtt_s_sum: Mapped[float] = mapped_column(Float)
    rtt_s_n: Mapped[int] = mapped_column(BigInteger)
    verify_step_s_sum: Mapped[float] = mapped_column(Float)
    verify_step_s_n: Mapped[int] = mapped_column(BigInteger)


class ObservedTotal(_ObservedSums, Base):
    """Everything observed of one configuration since the store began (what /metrics reads)."""

    __tablename__ = "observed_totals"

    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ObservedWindow(_ObservedSums, Base):
    """What one configuration added in one time bucket; drift is judged on recent buckets.

    `bucket` is the bucket's start in whole seconds since the Unix epoch.
    """

    __tablename__ = "observed_window"
    __table_args__ = (Index("ix_observed_window_bucket", "bucket"),)

    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
