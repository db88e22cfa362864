"""The FastAPI application factory and its lifespan.

Start-up order matters: migrate the database, re-queue jobs a previous
process left running, start the solver processes, then the job runner;
only then does the app answer.  Shut-down reverses it; a job cut off stays
`running` in the database and is re-queued next time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI

from configspec_opt.api import handlers, openapi
from configspec_opt.api.deps import Service, require_token
from configspec_opt.api.job_runner import JobRunner
from configspec_opt.api.pool import SolverPool
from configspec_opt.api.routes import health, jobs, profiles, results, specs
from configspec_opt.api.settings import Settings
from configspec_opt.store import repo
from configspec_opt.store.database import Database

log = logging.getLogger("configspec.api")

DESCRIPTION = """\
Fleet assignments for edge-cloud speculative decoding over HTTP: the same
validate / evaluate / solve / pareto as the `configspec` CLI (same JSON),
device profiles pushed from the edge, and queued jobs for large fleets.
Errors are `application/problem+json` (RFC 9457). See docs/http.md.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    db = Database(settings.db_url)
    await anyio.to_thread.run_sync(db.migrate)
    requeued, failed = await db.run(lambda s: repo.recover_jobs(s, settings.max_job_attempts))
    if requeued or failed:
        log.info("jobs from before the restart: %d queued, %d given up", requeued, failed)
    pool = SolverPool(settings.workers, settings.backlog, settings.max_tasks_per_child)
    await pool.start()
    runner = JobRunner(db, pool, settings)
    app.state.service = Service(settings, db, pool, runner)
    runner.start()
    log.info("database %s, %d solver processes", db.display_url, settings.workers)
    try:
        yield
    finally:
        await runner.stop()
        pool.shutdown()
        db.close()


def create_app(settings: Settings) -> FastAPI:
    from configspec_opt.api.routes.health import package_version

    app = FastAPI(title="configspec-opt", version=package_version(), description=DESCRIPTION,
                  lifespan=lifespan, redoc_url=None)
    app.state.settings = settings
    handlers.install(app)
    auth = [Depends(require_token)] if settings.token else []
    app.include_router(health.router)
    for module in (specs, profiles, jobs, results):
        app.include_router(module.router, dependencies=auth)
    openapi.install(app)
    return app
