"""GET /metrics: the service's own metrics for Prometheus (see telemetry.py, docs/http.md).

Open like /healthz (scrapers and probes rarely carry the API token); it
reveals counts and timings, never a spec, profile or result.  A store that
cannot be read does not fail the scrape: `configspec_store_up` says 0 and
the job gauges and the observation totals (api/observed_metrics.py) are
left out, so the request metrics still arrive.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response

from configspec_opt.api.deps import ServiceDep
from configspec_opt.api.observed_metrics import observed_gauges
from configspec_opt.api.routes.health import package_version
from configspec_opt.api.telemetry import CONTENT_TYPE, REGISTRY, Gauge
from configspec_opt.store import observations, repo
from configspec_opt.store.models import JOB_STATES

router = APIRouter(tags=["metrics"])
log = logging.getLogger("configspec.api")


@router.get("/metrics", include_in_schema=False)
async def metrics(service: ServiceDep) -> Response:
    """The Prometheus text exposition: request counters plus pool and job gauges read now.

    Left out of the OpenAPI document and open without a token, as scrapers expect.
    """
    pool = service.pool
    gauges = [
        Gauge("configspec_build_info", "The running version (always 1).",
              [((("version", package_version()),), 1)]),
        Gauge("configspec_solver_workers", "Solver processes.", [((), pool.workers)]),
        Gauge("configspec_solver_capacity", "Tasks admitted at once (processes + backlog); "
              "beyond that a request gets 503.", [((), pool.capacity)]),
        Gauge("configspec_solver_in_flight", "Tasks running or waiting in the solver pool.",
              [((), pool.in_flight)]),
        Gauge("configspec_solver_queue_depth", "Tasks waiting for a free solver process.",
              [((), max(0, pool.in_flight - pool.workers))]),
    ]
    try:
        by_state, observed = await service.db.run(
            lambda s: (repo.count_jobs_by_state(s), observations.totals(s)))
    except Exception as exc:
        log.warning("metrics: cannot count jobs: %s", type(exc).__name__)
        gauges.append(Gauge("configspec_store_up", "1 when the store answered this scrape.",
                            [((), 0)]))
    else:
        gauges.append(Gauge("configspec_store_up", "1 when the store answered this scrape.",
                            [((), 1)]))
        gauges.append(Gauge("configspec_jobs", "Jobs in the store by state (queued is the "
                            "job queue's depth).",
                            [((("state", st),), by_state.get(st, 0)) for st in JOB_STATES]))
        gauges.extend(observed_gauges(observed))
    return Response(REGISTRY.render(gauges), media_type=CONTENT_TYPE)
