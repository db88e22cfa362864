"""Runs queued jobs from the database, oldest first.

The database is the queue: a job is a row committed before its 202, picked
up by `claim_next_job`, and finished with its result in one transaction.
Nothing lives only in memory, so a restart loses nothing: `recover_jobs`
(at start-up) puts jobs that were running back in the queue.  Jobs wait for
a free solver process instead of being refused, at most `job_concurrency`
at a time, leaving the rest of the pool to synchronous requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from configspec_opt.api.dispatch import compute, job_params, record
from configspec_opt.api.params import Op
from configspec_opt.api.pool import SolverPool, WorkerCrashed
from configspec_opt.api.problem import ApiProblem
from configspec_opt.api.settings import Settings
from configspec_opt.store import repo
from configspec_opt.store.database import Database

log = logging.getLogger("configspec.jobs")
IDLE_POLL_S = 5.0


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    text: str
    params: dict[str, Any]
    stored: list[dict[str, Any]] | None
    attempts: int


def _claim(s: Session) -> ClaimedJob | None:
    job = repo.claim_next_job(s)
    if job is None:
        return None
    spec = repo.get_spec(s, job.spec_sha256)
    assert spec is not None  # foreign key
    return ClaimedJob(job.id, spec.text, dict(job.params), job.stored_profiles, job.attempts)


class JobRunner:
    def __init__(self, db: Database, pool: SolverPool, settings: Settings) -> None:
        self.db = db
        self.pool = pool
        self.settings = settings
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(), name=f"jobs-{i}")
                       for i in range(self.settings.job_concurrency)]

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []

    async def _loop(self) -> None:
        while True:
            try:
                job = await self.db.run(_claim)
            except Exception:  # database hiccup: log, wait, try again
                log.exception("cannot claim a job")
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S)
                continue
            await self.execute(job)

    async def execute(self, job: ClaimedJob) -> None:
        params = job_params(job.params)
        try:
            outcome = await compute(self.pool, Op.solve, job.text, None, params,
                                    params.time_limit, job.stored, wait=True)
        except ApiProblem as problem:
            error = problem.body()
            await self.db.run(lambda s: repo.finish_job(s, job.id, error=error))
            return
        except WorkerCrashed:
            log.error("job %s: solver process died (attempt %d)", job.id, job.attempts)
            if job.attempts >= self.settings.max_job_attempts:
                error = ApiProblem(500, "worker-crashed", "Solver process died",
                                   f"the solver process died {job.attempts} times on this "
                                   "job; it is not retried again").body()
                await self.db.run(lambda s: repo.finish_job(s, job.id, error=error))
            else:
                await self.db.run(lambda s: repo.requeue_job(s, job.id))
            return
        except asyncio.CancelledError:
            raise  # shutting down: the job stays running and is re-queued at start-up
        except Exception as exc:
            log.exception("job %s failed", job.id)
            error = ApiProblem(500, "internal-error", "Internal error",
                               f"the job failed unexpectedly ({type(exc).__name__})").body()
            await self.db.run(lambda s: repo.finish_job(s, job.id, error=error))
            return

        def done(s: Session) -> None:
            result_id = record(s, Op.solve, job.text, outcome, job.params)
            repo.finish_job(s, job.id, result_id=result_id)

        await self.db.run(done)
        log.info("job %s: %s", job.id, outcome["body"].get("status"))
