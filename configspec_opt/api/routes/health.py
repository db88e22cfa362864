"""GET /healthz: liveness and load, without authentication (for probes)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter

from configspec_opt.api.deps import ServiceDep
from configspec_opt.api.problem import ApiProblem
from configspec_opt.api.schemas import HealthOut
from configspec_opt.store import repo

router = APIRouter(tags=["health"])


def package_version() -> str:
    try:
        return version("configspec-opt")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


@router.get("/healthz", responses={503: {"description": "Database unreachable"}})
async def healthz(service: ServiceDep) -> HealthOut:
    try:
        unfinished = await service.db.run(repo.count_unfinished_jobs)
    except Exception as exc:
        raise ApiProblem(503, "unhealthy", "Database unreachable",
                         f"{type(exc).__name__}", headers={"Retry-After": "5"}) from None
    return HealthOut(status="ok", version=package_version(), database="ok",
                     workers=service.pool.workers, in_flight=service.pool.in_flight,
                     capacity=service.pool.capacity, unfinished_jobs=unfinished)
