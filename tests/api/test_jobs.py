"""Jobs: persisted before 202, run in the background, survive restarts.

Every test here runs against SQLite and PostgreSQL (tests/conftest.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from configspec_opt.api import create_app
from configspec_opt.store import repo
from configspec_opt.store.database import Database
from tests.api.conftest import YAML_CT, MakeClient, service, settings_for
from tests.api.helpers import assert_problem, without_timing
from tests.api.live import fleet_spec_json


def wait_done(c: TestClient, location: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = c.get(location).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {location} not finished after {timeout} s")


def wait_until(check: Callable[[], bool], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def pause_jobs(c: TestClient) -> None:
    c.portal.call(service(c).jobs.stop)  # type: ignore[union-attr]


def resume_jobs(c: TestClient) -> None:
    c.portal.call(service(c).jobs.start)  # type: ignore[union-attr]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """This module's shared app, on each kind of database."""
    if request.param == "sqlite":
        db: Path | str = tmp_path_factory.mktemp("api") / "jobs.sqlite3"
    else:
        db = request.getfixturevalue("postgres").new_database()
    with TestClient(create_app(settings_for(db, workers=2, backlog=4))) as c:
        yield c


def test_job_lifecycle(client: TestClient, example_text: str) -> None:
    r = client.post("/v1/jobs?objective=max:cost_efficiency", content=example_text,
                    headers=YAML_CT)
    assert r.status_code == 202
    accepted = r.json()
    assert accepted["status"] == "queued"
    assert r.headers["location"] == f"/v1/jobs/{accepted['id']}"
    assert accepted["params"]["time_limit"] == 300.0  # the job default
    job = wait_done(client, r.headers["location"])
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1
    assert job["started_at"] >= job["created_at"]
    assert job["finished_at"] >= job["started_at"]
    sync = client.post("/v1/solve?objective=max:cost_efficiency", content=example_text,
                       headers=YAML_CT).json()
    assert without_timing(job["result"]) == without_timing(sync)
    stored = client.get(job["result_url"]).json()
    assert stored["body"] == job["result"]


def test_infeasible_job_succeeds_with_diagnosis(client: TestClient,
                                                spec_data: dict[str, Any]) -> None:
    spec_data["constraints"]["fleet"]["max_cost_usd_per_hour"] = 0.01
    r = client.post("/v1/jobs", json=spec_data)
    job = wait_done(client, r.headers["location"])
    assert job["status"] == "succeeded"
    assert job["result"]["status"] == "infeasible"
    assert job["result"]["diagnosis"]["relaxations"]


def test_invalid_job_is_refused_and_not_stored(client: TestClient) -> None:
    before = client.get("/healthz").json()["unfinished_jobs"]
    r = client.post("/v1/jobs", content="version: 1\nname: x\n", headers=YAML_CT)
    assert_problem(r, 422, "invalid-spec")
    r = client.post("/v1/jobs?device=nowhere",
                    content=(Path(__file__).parents[2] / "examples/llama70b-edge.yaml")
                    .read_text(), headers=YAML_CT)
    assert_problem(r, 422, "invalid-request")
    assert client.get("/healthz").json()["unfinished_jobs"] == before


def test_job_time_limit_bounds(client: TestClient, example_text: str) -> None:
    r = client.post("/v1/jobs?time_limit=3601", content=example_text, headers=YAML_CT)
    assert "3600" in assert_problem(r, 422, "invalid-request")["detail"]
    r = client.post("/v1/jobs?time_limit=120", content=example_text, headers=YAML_CT)
    assert r.json()["params"]["time_limit"] == 120


def test_unknown_job(client: TestClient) -> None:
    assert_problem(client.get("/v1/jobs/" + "0" * 32), 404, "not-found")
    assert_problem(client.get("/v1/jobs/not-an-id"), 422, "invalid-request")


def test_full_queue_is_429(make_client: MakeClient, db_url: str, example_text: str) -> None:
    with make_client(db=db_url, max_pending_jobs=2) as c:
        pause_jobs(c)
        ids = [c.post("/v1/jobs", content=example_text, headers=YAML_CT).json()["id"]
               for _ in range(2)]
        r = c.post("/v1/jobs", content=example_text, headers=YAML_CT)
        body = assert_problem(r, 429, "too-many-jobs")
        assert int(r.headers["retry-after"]) >= 1
        assert "2 jobs are queued" in body["detail"]
        assert [c.get(f"/v1/jobs/{i}").json()["status"] for i in ids] == ["queued"] * 2
        resume_jobs(c)
        assert all(wait_done(c, f"/v1/jobs/{i}")["status"] == "succeeded" for i in ids)
        assert c.post("/v1/jobs", content=example_text, headers=YAML_CT).status_code == 202


def test_stored_profiles_are_a_snapshot_at_submission(make_client: MakeClient, db_url: str,
                                                      example_text: str) -> None:
    from tests.api.test_profiles import FAST_ORIN

    with make_client(db=db_url) as c:
        pause_jobs(c)
        first = c.post("/v1/profiles", json={"profiles": [FAST_ORIN]}).json()
        r = c.post("/v1/jobs?profiles=stored", content=example_text, headers=YAML_CT)
        assert [p["id"] for p in r.json()["stored_profiles"]] == \
            [first["profiles"][0]["id"]]
        c.post("/v1/profiles", json={"profiles": [{**FAST_ORIN, "draft_tok_s": 1.0}]})
        resume_jobs(c)
        job = wait_done(c, r.headers["location"])
        assert job["result"]["stored_profiles"][0]["id"] == first["profiles"][0]["id"]
        orin = next(a for a in job["result"]["assignments"] if a["device"] == "orin")
        assert orin["draft_tok_s"] == 400.0


def test_restart_leaves_live_leases_alone(make_client: MakeClient, db_url: str,
                                          example_text: str) -> None:
    """A server starting (another replica, or this one again) re-queues nothing: a job
    whose lease is alive stays its holder's; one whose lease ran out is claimed again;
    one that lost its worker at every attempt is failed."""
    with make_client(db=db_url) as c:
        pause_jobs(c)
        queued = c.post("/v1/jobs", content=example_text, headers=YAML_CT).json()["id"]
        alive = c.post("/v1/jobs?objective=min:cost", content=example_text,
                       headers=YAML_CT).json()["id"]
        expired = c.post("/v1/jobs?objective=min:cost", content=example_text,
                         headers=YAML_CT).json()["id"]
        dying = c.post("/v1/jobs?objective=min:power", content=example_text,
                       headers=YAML_CT).json()["id"]
    db = Database(db_url)
    now = datetime.now(timezone.utc)
    with db.transaction() as s:  # as if other workers held these (one alive, two dead)
        for job_id, attempts, lease in ((alive, 1, now + timedelta(hours=1)),
                                        (expired, 1, now - timedelta(seconds=1)),
                                        (dying, 3, None)):
            job = repo.get_job(s, job_id)
            assert job is not None
            job.state, job.attempts, job.lease_until, job.worker = \
                "running", attempts, lease, "elsewhere:1"
    db.close()
    with make_client(db=db_url) as c:
        assert wait_done(c, f"/v1/jobs/{queued}")["attempts"] == 1
        again = wait_done(c, f"/v1/jobs/{expired}")
        assert again["status"] == "succeeded"
        assert again["attempts"] == 2
        assert again["result"]["objective"]["metric"] == "cost"
        gave_up = wait_done(c, f"/v1/jobs/{dying}")
        assert gave_up["status"] == "failed"
        assert "stopped 3 times" in gave_up["error"]["detail"]
        untouched = c.get(f"/v1/jobs/{alive}").json()
        assert (untouched["status"], untouched["attempts"]) == ("running", 1)


def test_a_stopping_server_hands_its_job_back(make_client: MakeClient, db_url: str) -> None:
    """A clean stop re-queues the job in hand at once (no wait for the lease) and the
    next claim solves it; the late outcome of the stopped run is never written."""
    slow = fleet_spec_json(20, 10)
    with make_client(db=db_url, job_lease_s=60.0) as c:
        r = c.post("/v1/jobs?time_limit=30", content=slow,
                   headers={"Content-Type": "application/json"})
        job_id = r.json()["id"]
        assert wait_until(lambda: c.get(f"/v1/jobs/{job_id}").json()["status"] == "running")
    with Database(db_url).transaction() as s:
        job = repo.get_job(s, job_id)
        assert job is not None and (job.state, job.lease_until) == ("queued", None)
        assert job.attempts == 1


def test_a_job_claimed_while_the_runner_stops_is_handed_back(
        make_client: MakeClient, tmp_path: Path, example_text: str) -> None:
    """A claim waiting for SQLite's write lock when the runner stops: once it commits, the
    job is handed back (queued), not left `running` on a stopped runner.

    Cancelling the wait does not stop the claim's thread; before the fix `stop` returned
    at once and the claim committed afterwards (`test_full_queue_is_429` saw a job
    `running` after `pause_jobs`, once, in a fresh-clone run).
    """
    path = tmp_path / "race.sqlite3"
    with make_client(db=path) as c:
        pause_jobs(c)
        job_id = c.post("/v1/jobs", content=example_text, headers=YAML_CT).json()["id"]
        lock = sqlite3.connect(path, timeout=0, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the write lock is ours: a claim waits for it
        resume_jobs(c)
        time.sleep(0.5)  # the claim loops are waiting for the lock
        stopper = threading.Thread(target=pause_jobs, args=(c,))
        stopper.start()
        time.sleep(0.5)  # `stop` has cancelled the loops while their claims wait
        lock.execute("COMMIT")
        lock.close()
        stopper.join(timeout=60)
        assert not stopper.is_alive()
        time.sleep(0.5)  # an abandoned claim, if any, would commit meanwhile
        assert c.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"

