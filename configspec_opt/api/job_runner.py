"""Runs queued jobs from the database, oldest first, exactly once whatever dies.

The database is the queue: a job is a row committed before its 202. A
runner (embedded in `configspec serve`, or a `configspec worker` on any
machine) claims one with a lease (`lease_until`), renews the lease every
third of its length while the solve runs (the heartbeat), and finishes the
job in one transaction with its result, only if its claim still holds
(`attempts` is the fencing token).  A runner that dies stops renewing; once
the lease has run out, any runner claims the job again, up to
`max_job_attempts` claims, after which it is failed.  Nothing is re-queued
at start-up: a restarting server never touches jobs leased elsewhere.  A
runner that loses its lease (it was cut off from the database for longer
than the lease) cancels its solve; if it finishes anyway, its write is
refused, and `results.job_id` is unique besides, so a job's result is
written once.

A storage error (a full disk, a database that went away) does not end the
runner: claiming, renewing and finishing are retried with a growing pause
(`BACKOFF_S`).  Any other unexpected error in the loop is logged and the
loop goes on. `health()` says what `/readyz` reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from configspec_opt.api.dispatch import compute, describe_error, job_params
from configspec_opt.api.params import Op
from configspec_opt.api.pool import SolverPool, WorkerCrashed
from configspec_opt.api.problem import ApiProblem
from configspec_opt.api.settings import Settings
from configspec_opt.store import repo
from configspec_opt.store.database import Database

T = TypeVar("T")
log = logging.getLogger("configspec.jobs")
BACKOFF_S = (0.5, 30.0)  # first pause after a storage error, longest pause


@dataclass(frozen=True)
class ClaimedJob:
    """A job this runner holds the lease on; `attempts` is its writes' fencing token."""

    id: str
    text: str
    params: dict[str, Any]
    stored: list[dict[str, Any]] | None
    attempts: int


def _hand_back(s: Session, *, job_id: str, attempt: int) -> bool:
    return repo.requeue_job(s, job_id, attempt)


def worker_name() -> str:
    """Who holds a lease, for people reading the jobs table: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


class JobRunner:
    """Claims, solves and finishes queued jobs; one per server or `configspec worker`.

    With `enabled=False` (a server that leaves jobs to workers) it only
    answers `wake` and `health`.  `concurrency` loops share one solver pool.
    """

    def __init__(self, db: Database, pool: SolverPool, settings: Settings, *,
                 enabled: bool = True, concurrency: int | None = None) -> None:
        self.db = db
        self.pool = pool
        self.settings = settings
        self.enabled = enabled  # False: HTTP only, jobs are solved by `configspec worker`s
        self.concurrency = concurrency or settings.job_concurrency
        self.name = worker_name()
        self.held: dict[str, int] = {}  # job id -> attempt, the leases this runner holds
        self.runs = 0  # solves started (for logs and tests)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.storage_error: str | None = None  # the latest, while storage keeps failing
        self.storage_failing_since: float | None = None  # monotonic
        self.retry_in: float = 0.0

    def start(self) -> None:
        """Start the claim loops (none when disabled); call from inside the running event loop."""
        if not self.enabled:
            return
        self._tasks = [asyncio.create_task(self._loop(), name=f"jobs-{i}")
                       for i in range(self.concurrency)]

    def wake(self) -> None:
        """Look for work now instead of at the next poll, e.g. right after a job is submitted."""
        self._wake.set()

    def health(self) -> str | None:
        """None when the runner works, else what is wrong (for /readyz)."""
        if not self.enabled:
            return None
        dead = [t for t in self._tasks if t.done()]
        if not self._tasks or dead:
            why = ""
            if dead and not dead[0].cancelled() and dead[0].exception() is not None:
                why = f" ({type(dead[0].exception()).__name__})"
            return f"the job runner is not running{why}"
        if self.storage_failing_since is not None:
            for_s = time.monotonic() - self.storage_failing_since
            return (f"the job runner cannot use the database for {for_s:.1f} s "
                    f"({self.storage_error}); retrying every {self.retry_in:g} s")
        return None

    async def stop(self) -> None:
        """Cancel the loops; never raises, so the server's shut-down always goes on to
        stop the solver processes."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("the job runner had failed")
        self._tasks = []
        await self._release_held()

    async def _release_held(self) -> None:
        """A clean stop hands its jobs back at once rather than after the lease (one try:
        if the database is gone, the leases run out on their own)."""
        held, self.held = dict(self.held), {}
        for job_id, attempt in held.items():
            try:
                await self.db.run(functools.partial(_hand_back, job_id=job_id, attempt=attempt))
                log.info("job %s: handed back (stopping)", job_id)
            except Exception as exc:
                log.warning("job %s: not handed back (%s); its lease will run out", job_id,
                            describe_error(exc))

    def _claim(self, s: Session) -> ClaimedJob | None:
        job = repo.claim_next_job(s, self.name, self.settings.job_lease_s,
                                  self.settings.max_job_attempts)
        if job is None:
            return None
        spec = repo.get_spec(s, job.spec_sha256)
        assert spec is not None  # foreign key
        return ClaimedJob(job.id, spec.text, dict(job.params), job.stored_profiles,
                          job.attempts)

    def _hold(self, job: ClaimedJob | None) -> None:
        if job is not None:
            self.held[job.id] = job.attempts

    async def _storage(self, what: str, fn: Callable[[Session], T],
                       kept: Callable[[T], None] | None = None) -> T:
        """`fn` in a transaction, retried with a growing pause while storage fails.

        `kept`: a transaction whose caller is cancelled is still waited for, and what it
        returned goes to `kept` (`_waited`); the claim uses it so that a job claimed
        while the runner stops is handed back by `stop`.
        """
        pause = BACKOFF_S[0]
        while True:
            try:
                value = await (self.db.run(fn) if kept is None
                               else _waited(self.db.run(fn), kept))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.storage_error = describe_error(exc)
                if self.storage_failing_since is None:
                    self.storage_failing_since = time.monotonic()
                    log.error("job runner: cannot %s: %s; retrying", what, self.storage_error)
                self.retry_in = pause
                await asyncio.sleep(pause)
                pause = min(BACKOFF_S[1], pause * 2)
                continue
            if self.storage_failing_since is not None:
                log.warning("job runner: the database works again (%s)", what)
            self.storage_error = self.storage_failing_since = None
            return value

    async def _loop(self) -> None:
        while True:
            try:
                job = await self._storage("claim a job", self._claim, kept=self._hold)
                if job is None:
                    self._wake.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.settings.job_poll_s)
                    continue
                await self.execute(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the runner: log it, pause, go on
                log.exception("job runner: unexpected error")
                await asyncio.sleep(BACKOFF_S[0])

    async def _heartbeat(self, job: ClaimedJob, solving: asyncio.Task[None]) -> None:
        """Renew the lease every third of it; cancel the solve when the lease is lost."""
        every = self.settings.job_lease_s / 3
        while True:
            await asyncio.sleep(every)
            try:
                held = await self.db.run(lambda s: repo.renew_lease(
                    s, job.id, job.attempts, self.settings.job_lease_s))
            except Exception as exc:  # keep trying; a lost lease shows at the next renewal
                log.warning("job %s: lease not renewed (%s)", job.id, describe_error(exc))
                continue
            if not held:
                log.warning("job %s: lease lost to another worker; stopping its solve", job.id)
                solving.cancel()
                return

    async def execute(self, job: ClaimedJob) -> None:
        """Solve a claimed job under its heartbeat and write its outcome once."""
        self.held[job.id] = job.attempts
        self.runs += 1
        log.info("job %s: run started (attempt %d, worker %s)", job.id, job.attempts,
                 self.name)
        solving = asyncio.create_task(self._execute(job))
        beat = asyncio.create_task(self._heartbeat(job, solving))
        try:
            await asyncio.shield(solving)
        except asyncio.CancelledError:
            if not solving.done():  # we are being stopped: stop the solve too
                solving.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await solving
                raise
            if not beat.done():
                raise
            log.info("job %s: dropped (lease lost)", job.id)  # the heartbeat cancelled it
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        self.held.pop(job.id, None)

    async def _execute(self, job: ClaimedJob) -> None:
        params = job_params(job.params)
        try:
            outcome = await compute(self.pool, Op.solve, job.text, None, params,
                                    params.time_limit, job.stored, wait=True)
        except ApiProblem as problem:
            await self._fail(job, problem.body())
            return
        except WorkerCrashed:
            log.error("job %s: solver process died (attempt %d)", job.id, job.attempts)
            if job.attempts >= self.settings.max_job_attempts:
                await self._fail(job, ApiProblem(
                    500, "worker-crashed", "Solver process died",
                    f"the solver process died {job.attempts} times on this job; it is not "
                    "retried again").body())
            else:
                await self._storage("re-queue a job",
                                    lambda s: repo.requeue_job(s, job.id, job.attempts))
            return
        except asyncio.CancelledError:
            raise  # stopping (the job is handed back) or the lease was lost
        except Exception as exc:
            log.exception("job %s failed", job.id)
            await self._fail(job, ApiProblem(
                500, "internal-error", "Internal error",
                f"the job failed unexpectedly ({type(exc).__name__})").body())
            return

        def done(s: Session) -> bool:
            if not repo.finish_job(s, job.id, attempt=job.attempts):
                return False
            repo.save_spec(s, outcome["sha256"], outcome["name"], job.text)
            row = repo.add_result(s, Op.solve.value, outcome["sha256"], job.params,
                                  outcome["body"], job_id=job.id)
            repo.set_job_result(s, job.id, row.id)
            return True

        if await self._storage("record a job's result", done):
            log.info("job %s: %s", job.id, outcome["body"].get("status"))
        else:
            log.warning("job %s: result dropped: another worker holds the job now", job.id)

    async def _fail(self, job: ClaimedJob, error: dict[str, Any]) -> None:
        def failed(s: Session) -> bool:
            return repo.finish_job(s, job.id, attempt=job.attempts, error=error)

        if not await self._storage("record a failed job", failed):
            log.warning("job %s: failure dropped: another worker holds the job now", job.id)


async def _waited(call: Awaitable[T], kept: Callable[[T], None]) -> T:
    """`call`'s result, and if the caller is cancelled meanwhile, `call` still finished and
    its result handed to `kept` before the cancellation goes on.

    Cancelling a wait on a transaction does not stop its thread (anyio abandons it): a
    claim that committed after `stop` returned held a job that no runner ran until its
    lease ran out (seen as a job `running` on a stopped server).
    """
    running = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            kept(await running)
        raise
