"""`configspec worker`: solves queued jobs from the shared database, with no HTTP.

Run any number, on any machine that reaches the database: each claims jobs
with a lease it renews while solving (api/job_runner.py), so a worker that
dies mid-solve loses its jobs to another once the lease runs out, and a
job's result is written once.  `configspec serve --no-embedded-workers`
then only answers HTTP.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from configspec_opt.cli.app import app, err, require_db_driver, require_extra, user_errors
from configspec_opt.cli.options import (
    MAX_TIME_LIMIT_S,
    Bounds,
    DbOpt,
    JobAttemptsOpt,
    JobLeaseOpt,
    LogLevel,
    LogLevelOpt,
)
from configspec_opt.cli.serve import SERVER_MODULES, log_to_stderr
from configspec_opt.errors import ServerUnavailableError, UsageError


async def run_worker(db_url: str, concurrency: int, lease_s: float, attempts: int,
                     poll_s: float, max_tasks_per_child: int = 200) -> None:
    """Migrate, start `concurrency` solver processes, solve jobs until SIGTERM/SIGINT,
    then hand back the jobs in hand (they are claimed again at once, not after the lease)."""
    import anyio.to_thread

    from configspec_opt.api.job_runner import JobRunner
    from configspec_opt.api.pool import SolverPool
    from configspec_opt.api.settings import Settings
    from configspec_opt.store.database import Database

    settings = Settings(db_url=db_url, workers=concurrency, backlog=0,
                        job_concurrency=concurrency, job_lease_s=lease_s,
                        max_job_attempts=attempts, job_poll_s=poll_s,
                        max_tasks_per_child=max_tasks_per_child)
    db = Database(db_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await anyio.to_thread.run_sync(db.migrate)
    pool = SolverPool(concurrency, 0, max_tasks_per_child, default_limit=None)
    await pool.start()
    runner = JobRunner(db, pool, settings)
    runner.start()
    err.print(f"configspec worker {runner.name}: database {db.display_url}, "
              f"{concurrency} job{'s' if concurrency > 1 else ''} at a time, lease {lease_s:g} s",
              markup=False)
    try:
        await stop.wait()
    finally:
        await runner.stop()
        pool.shutdown()
        db.close()


@app.command()
def worker(
    db: DbOpt = None,
    concurrency: Annotated[int, typer.Option(
        min=1, envvar="CONFIGSPEC_WORKER_CONCURRENCY",
        help="Jobs solved at once (one solver process each).")] = 1,
    job_lease: JobLeaseOpt = 30.0,
    job_attempts: JobAttemptsOpt = 3,
    poll: Annotated[float, typer.Option(
        parser=Bounds(min=0.05, max=MAX_TIME_LIMIT_S, unit="seconds"),
        envvar="CONFIGSPEC_WORKER_POLL", help="Seconds between looks for new jobs while idle.")]
    = 1.0,
    log_level: LogLevelOpt = LogLevel.info,
) -> None:
    """Solve queued jobs from the database (no HTTP); run as many as you like."""
    with user_errors():
        require_extra(ServerUnavailableError, "`configspec worker`", *SERVER_MODULES)
        from sqlalchemy.exc import SQLAlchemyError

        from configspec_opt.store.engine import describe_url, resolve_db_url

        url = resolve_db_url(db)
        require_db_driver(url, "`configspec worker`")
        log_to_stderr(log_level.value)
        try:
            asyncio.run(run_worker(url, concurrency, job_lease, job_attempts, poll))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"cannot start the worker: {exc}") from None
        except SQLAlchemyError as exc:
            from configspec_opt.api.dispatch import describe_error

            raise UsageError(f"cannot use the database {describe_url(url)}: "
                             f"{describe_error(exc)}") from None
