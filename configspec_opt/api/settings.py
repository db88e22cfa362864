"""Server settings: every limit in one frozen object, set by `configspec serve` options."""

from __future__ import annotations

import os
from dataclasses import dataclass

MiB = 1024 * 1024
TOKEN_ENV = "CONFIGSPEC_API_TOKEN"


def token_from_env() -> str | None:
    """The bearer token, or None when unset or blank (a blank token would accept anyone)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


@dataclass(frozen=True)
class ConnectionLimits:
    """What a connection may take before it is a request (api/connections.py)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_client_connections: int = 32
    max_pending_connections: int = 512
    max_requests: int = 256

    def __post_init__(self) -> None:
        if self.header_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise ValueError("header and body timeouts must be positive")
        if min(self.max_client_connections, self.max_pending_connections,
               self.max_requests) < 1:
            raise ValueError("connection and request limits must be at least 1")


@dataclass(frozen=True)
class Settings:
    """Everything `configspec serve` (or a test) configures; checked once, when built.

    Time limits are solver seconds; a request may ask for less or more than
    the default, never more than the maximum.  Raises ValueError naming the
    first inconsistent group of values.
    """

    db_url: str
    token: str | None = None
    workers: int = 2  # solver processes
    backlog: int = 4  # requests that may wait for a solver process before 503
    max_body_bytes: int = 4 * MiB
    default_time_limit: float = 10.0  # seconds of solver time for a synchronous request
    max_time_limit: float = 60.0
    job_time_limit: float = 300.0
    max_job_time_limit: float = 3600.0
    max_pending_jobs: int = 100  # queued + running, before POST /v1/jobs answers 429
    job_concurrency: int = 1  # jobs solved at once; the rest of the pool serves requests
    max_job_attempts: int = 3  # claims of a job (workers lost under it) before it is failed
    job_lease_s: float = 30.0  # a claimed job's lease, renewed every third of it
    job_poll_s: float = 5.0  # an idle runner looks for jobs this often (its own are woken)
    embedded_workers: bool = True  # this server solves jobs too (False: `configspec worker`s)
    max_tasks_per_child: int = 200  # recycle solver processes: memory stays flat
    # request guard (api/guard.py); bind_host None: built in-process, Host not checked
    bind_host: str | None = None
    allowed_hosts: tuple[str, ...] = ()  # Host names accepted beyond the bind address
    allow_origins: tuple[str, ...] = ()  # browser origins allowed to write (CORS); none: off
    # retention (store/retention.py): finished jobs and results older / beyond are pruned
    keep_days: float | None = 30.0
    keep_results: int | None = 100_000
    # connections (api/connections.py, used by `configspec serve`)
    header_timeout: float = 10.0  # request line and headers, from connect or last answer
    body_timeout: float = 60.0  # the body, from its headers
    max_client_connections: int = 32  # pending (still sending) per client address
    max_pending_connections: int = 512  # pending, all addresses together
    max_requests: int = 256  # in progress; beyond: 503 (the probes always answer)
    # drift watch (docs/drift.md): the lock observations are checked against, and how far back
    watch_lock: str | None = None
    drift_window_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.workers < 1 or self.backlog < 0 or self.job_concurrency < 1:
            raise ValueError("workers and job concurrency must be >= 1, backlog >= 0")
        if self.job_lease_s < 0.3 or self.max_job_attempts < 1:
            raise ValueError("the job lease must be at least 0.3 s and attempts at least 1")
        if self.max_body_bytes < 1024:
            raise ValueError("max body size below 1 KiB")
        if not 0 < self.default_time_limit <= self.max_time_limit:
            raise ValueError("the default time limit must be positive and within the maximum")
        if not 0 < self.job_time_limit <= self.max_job_time_limit:
            raise ValueError("the job time limit must be positive and within its maximum")
        if (self.keep_days is not None and self.keep_days <= 0) or \
                (self.keep_results is not None and self.keep_results < 1):
            raise ValueError("retention must keep something: days > 0, results >= 1")
        if not 60 <= self.drift_window_s <= 30 * 86_400:
            raise ValueError("the drift window must lie between 60 s and 30 days")
        self.connection_limits()  # checks them

    @property
    def drift_bucket_s(self) -> int:
        """The window's time buckets: 60 of them, so the window is bounded in rows too."""
        return max(1, int(self.drift_window_s // 60))

    def connection_limits(self) -> ConnectionLimits:
        """The connection-level limits, for `api.connections` (built there, checked here)."""
        return ConnectionLimits(self.header_timeout, self.body_timeout,
                                self.max_client_connections, self.max_pending_connections,
                                self.max_requests)
