"""Back-pressure: a full solver pool answers 503 with Retry-After; a dead worker is replaced."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from fastapi.testclient import TestClient

from configspec_opt.api.pool import WorkerCrashed
from tests.api.conftest import YAML_CT, MakeClient, service
from tests.api.helpers import assert_problem
from tests.api.live import fleet_spec_json


def occupy(c: TestClient, seconds: float) -> None:
    """Keep the (single) solver process busy, as a long solve would."""
    c.portal.start_task_soon(service(c).pool.run, time.sleep, seconds)  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while service(c).pool.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)


def idle(c: TestClient, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while c.get("/healthz").json()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)


def test_full_pool_is_503_with_retry_after(make_client: MakeClient, example_text: str) -> None:
    with make_client(workers=1, backlog=0) as c:
        occupy(c, 2)
        assert c.get("/healthz").json()["in_flight"] == 1
        r = c.post("/v1/solve", content=example_text, headers=YAML_CT)
        body = assert_problem(r, 503, "overloaded")
        assert int(r.headers["retry-after"]) >= 1
        assert "POST /v1/jobs" in body["detail"]
        assert_problem(c.post("/v1/validate", content=example_text, headers=YAML_CT), 503,
                       "overloaded")
        # jobs are not refused: they wait for the process
        job = c.post("/v1/jobs", content=example_text, headers=YAML_CT)
        assert job.status_code == 202
        idle(c)
        assert c.post("/v1/solve", content=example_text, headers=YAML_CT).status_code == 200


def test_backlog_waits_instead_of_refusing(make_client: MakeClient, example_text: str) -> None:
    with make_client(workers=1, backlog=1) as c:
        occupy(c, 1)
        started = time.monotonic()
        r = c.post("/v1/solve", content=example_text, headers=YAML_CT)
        assert r.status_code == 200
        assert time.monotonic() - started > 0.5  # it queued behind the busy process


def test_dead_worker_is_replaced(make_client: MakeClient, example_text: str) -> None:
    with make_client(workers=1) as c:
        pool = service(c).pool
        try:
            c.portal.call(pool.run, os._exit, 3)  # type: ignore[union-attr]
        except WorkerCrashed:
            pass
        else:
            raise AssertionError("a worker that exits must surface as WorkerCrashed")
        assert pool.in_flight == 0
        assert c.post("/v1/solve", content=example_text, headers=YAML_CT).status_code == 200


def test_request_whose_worker_dies_gets_503(make_client: MakeClient, example_text: str) -> None:
    """Only the request on the killed process fails; the pool goes on with a fresh one."""
    with make_client(workers=1, backlog=1, max_time_limit=120) as c:
        pool = service(c).pool
        [pid] = pool.worker_pids()
        answer: dict[str, Any] = {}

        def request() -> None:  # a Pareto front of about 40 s of MILPs
            answer["r"] = c.post("/v1/pareto?time_limit=120", content=fleet_spec_json(20, 10),
                                 headers={"Content-Type": "application/json"})

        t = threading.Thread(target=request)
        t.start()
        # kill only once the request holds the process (a fixed sleep raced a loaded CPU)
        deadline = time.monotonic() + 30
        while pool.in_flight < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.in_flight == 1, "the request never reached the solver pool"
        os.kill(pid, signal.SIGKILL)  # the OOM killer, say
        t.join(60)
        r = answer["r"]
        assert_problem(r, 503, "worker-crashed")
        assert r.headers["retry-after"] == "1"
        idle(c)
        assert c.post("/v1/solve", content=example_text, headers=YAML_CT).status_code == 200
        assert pool.worker_pids() != [pid]
