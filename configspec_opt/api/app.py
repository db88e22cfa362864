"""The FastAPI application factory and its lifespan.

Start-up order matters: migrate the database (under a lock: replicas may
start together), start the solver processes, then the job runner (unless
jobs are left to `configspec worker`s) and the retention pruner
(api/pruner.py); only then does the app answer.  Nothing is re-queued at
start-up: jobs whose worker died are claimed again when their lease runs
out (api/job_runner.py), so a restart never touches jobs alive elsewhere.
Shut-down reverses it and hands this server's running jobs back.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI

from configspec_opt.api import guard, handlers, openapi
from configspec_opt.api.deps import Service, require_token, single_valued_query
from configspec_opt.api.job_runner import JobRunner
from configspec_opt.api.pool import SolverPool
from configspec_opt.api.pruner import Pruner
from configspec_opt.api.routes import (
    drift,
    health,
    jobs,
    metrics,
    observations,
    profiles,
    results,
    specs,
    stored_specs,
    web,
)
from configspec_opt.api.settings import Settings
from configspec_opt.api.telemetry import TelemetryMiddleware
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
    """Own the app's resources for its lifetime: database, solver pool, job runner, pruner.

    Start-up and shut-down follow the order in the module docstring; the
    `Service` built here is what every route reaches through `api.deps`.
    """
    settings: Settings = app.state.settings
    db = Database(settings.db_url)
    await anyio.to_thread.run_sync(db.migrate)
    pool = SolverPool(settings.workers, settings.backlog, settings.max_tasks_per_child,
                      default_limit=settings.default_time_limit)
    await pool.start()
    runner = JobRunner(db, pool, settings, enabled=settings.embedded_workers)
    app.state.service = Service(settings, db, pool, runner)
    runner.start()
    pruner = Pruner(db, settings)
    pruner.start()
    log.info("database %s, %d solver processes, %s", db.display_url, settings.workers,
             "solving jobs" if settings.embedded_workers else "jobs left to workers")
    try:
        yield
    finally:
        await pruner.stop()
        await runner.stop()
        pool.shutdown()
        db.close()


def create_app(settings: Settings) -> FastAPI:
    """Assemble routers, handlers and middleware for `settings`; resources start in `lifespan`.

    The spec, profile, job, result and stored-spec routes require the bearer
    token when `settings.token` is set; probes, /metrics and the pages do not.
    Middleware order matters: telemetry is added last so it is outermost and
    counts every answer, including the guard's refusals.
    """
    from configspec_opt.api.routes.health import package_version

    app = FastAPI(title="configspec-opt", version=package_version(), description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None,
                  dependencies=[Depends(single_valued_query)])
    app.state.settings = settings
    handlers.install(app)
    auth = [Depends(require_token)] if settings.token else []
    app.include_router(health.router)
    app.include_router(metrics.router)
    for module in (specs, profiles, jobs, results, stored_specs, observations, drift):
        app.include_router(module.router, dependencies=auth)
    web.install(app)  # /, /static, /docs, /redoc: local assets, no CDN
    openapi.install(app)
    guard.install(app, settings)  # Host, Origin, nosniff / no-store (inside telemetry)
    app.add_middleware(TelemetryMiddleware)  # added last: outermost, sees every answer
    return app
