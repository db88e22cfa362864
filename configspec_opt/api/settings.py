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
class Settings:
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
    max_job_attempts: int = 3  # restarts a running job survives before it is failed
    max_tasks_per_child: int = 200  # recycle solver processes: memory stays flat

    def __post_init__(self) -> None:
        if self.workers < 1 or self.backlog < 0 or self.job_concurrency < 1:
            raise ValueError("workers and job concurrency must be >= 1, backlog >= 0")
        if self.max_body_bytes < 1024:
            raise ValueError("max body size below 1 KiB")
        if not 0 < self.default_time_limit <= self.max_time_limit:
            raise ValueError("the default time limit must be positive and within the maximum")
        if not 0 < self.job_time_limit <= self.max_job_time_limit:
            raise ValueError("the job time limit must be positive and within its maximum")
