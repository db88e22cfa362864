"""GET /healthz (alive, and the load) and GET /readyz (able to do its work), for probes.

Both answer without authentication.  `/healthz` is liveness: the process
answers and can read its database.  `/readyz` is readiness, what a load
balancer should route by: the database takes a write, the job runner is
running and not stuck on storage errors, and a solver process is up.  A
full disk once left jobs queued for good while `/healthz` said "ok"; that
is now a 503 from `/readyz` naming the reason.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text
from sqlalchemy.orm import Session

from configspec_opt.api.deps import ServiceDep
from configspec_opt.api.dispatch import describe_error
from configspec_opt.api.problem import ApiProblem
from configspec_opt.api.schemas import HealthOut
from configspec_opt.store import repo
from configspec_opt.store.database import Database

router = APIRouter(tags=["health"])
PROBE_TTL_S = 2.0  # a write probe's answer is reused this long (probes may come often)
PROBE_TIMEOUT_S = 5.0


def package_version() -> str:
    """The installed distribution's version, shown in the OpenAPI document and the probes."""
    try:
        return version("configspec-opt")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


@router.get("/healthz", responses={503: {"description": "Database unreachable"}})
async def healthz(service: ServiceDep) -> HealthOut:
    """Alive, with the load: the process answers and can read its database.

    For liveness probes; `/readyz` says whether to route traffic here.
    """
    try:
        unfinished = await service.db.run(repo.count_unfinished_jobs)
    except Exception as exc:
        raise ApiProblem(503, "unhealthy", "Database unreachable",
                         f"{type(exc).__name__}", headers={"Retry-After": "5"}) from None
    return HealthOut(status="ok", version=package_version(), database="ok",
                     workers=service.pool.workers, in_flight=service.pool.in_flight,
                     capacity=service.pool.capacity, unfinished_jobs=unfinished)


class ReadyOut(BaseModel):
    """The body of a ready `/readyz`: each check and what it found."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ready"]
    version: str
    checks: dict[str, str]


def _write_probe(s: Session) -> None:
    """A real write that changes nothing: the row Alembic keeps, changed and changed back
    in one transaction.  The commit writes (SQLite appends the page to its WAL; a
    row set to its own value would be skipped), so a full disk or a read-only
    database fails it, on SQLite and PostgreSQL alike."""
    s.execute(text("UPDATE alembic_version SET version_num = version_num || '+'"))
    s.execute(text("UPDATE alembic_version "
                   "SET version_num = substr(version_num, 1, length(version_num) - 1)"))


class _StoreProbe:
    """One write probe at a time per database, its answer kept `PROBE_TTL_S`."""

    def __init__(self) -> None:
        self.at = -PROBE_TTL_S
        self.answer: str | None = None
        self.running: asyncio.Task[str | None] | None = None

    async def check(self, db: Database) -> str | None:
        if time.monotonic() - self.at < PROBE_TTL_S:
            return self.answer
        if self.running is None or self.running.done():
            self.running = asyncio.ensure_future(self._probe(db))
        return await asyncio.shield(self.running)

    async def _probe(self, db: Database) -> str | None:
        try:
            await asyncio.wait_for(db.run(_write_probe), PROBE_TIMEOUT_S)
            answer = None
        except asyncio.TimeoutError:
            answer = f"the database took no write within {PROBE_TIMEOUT_S:g} s"
        except Exception as exc:
            answer = f"the database takes no write ({describe_error(exc)})"
        self.at, self.answer = time.monotonic(), answer
        return answer


_probes: weakref.WeakKeyDictionary[Database, _StoreProbe] = weakref.WeakKeyDictionary()


@router.get("/readyz", responses={503: {"description": "Not ready; `detail` says why"}})
async def readyz(service: ServiceDep) -> ReadyOut:
    """Ready to serve: database writable, job runner running, a solver process up."""
    probe = _probes.setdefault(service.db, _StoreProbe())
    live = service.pool.live_workers()
    store, runner = await probe.check(service.db), service.jobs.health()
    solvers = None if live else "no solver process is running"
    checks = {"database": store or "ok", "job_runner": runner or "ok",
              "solver_processes": solvers or f"{live} of {service.pool.workers} running"}
    failing = [why for why in (store, runner, solvers) if why is not None]
    if failing:
        raise ApiProblem(503, "not-ready", "Not ready", "; ".join(failing), checks=checks,
                         headers={"Retry-After": "5"})
    return ReadyOut(status="ready", version=package_version(), checks=checks)
