"""Jobs: persisted before 202, run in the background, survive restarts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from configspec_opt.store import repo
from configspec_opt.store.database import Database
from tests.api.conftest import YAML_CT, MakeClient, service
from tests.api.helpers import assert_problem, without_timing


def wait_done(c: TestClient, location: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = c.get(location).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {location} not finished after {timeout} s")


def pause_jobs(c: TestClient) -> None:
    c.portal.call(service(c).jobs.stop)  # type: ignore[union-attr]


def resume_jobs(c: TestClient) -> None:
    c.portal.call(service(c).jobs.start)  # type: ignore[union-attr]


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


def test_full_queue_is_429(make_client: MakeClient, example_text: str) -> None:
    with make_client(max_pending_jobs=2) as c:
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


def test_stored_profiles_are_a_snapshot_at_submission(make_client: MakeClient,
                                                      example_text: str) -> None:
    from tests.api.test_profiles import FAST_ORIN

    with make_client() as c:
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


def test_restart_requeues_interrupted_jobs(make_client: MakeClient, tmp_path: Path,
                                           example_text: str) -> None:
    db_path = tmp_path / "restart.sqlite3"
    with make_client(db=db_path) as c:
        pause_jobs(c)
        queued = c.post("/v1/jobs", content=example_text, headers=YAML_CT).json()["id"]
        running = c.post("/v1/jobs?objective=min:cost", content=example_text,
                         headers=YAML_CT).json()["id"]
        dying = c.post("/v1/jobs?objective=min:power", content=example_text,
                       headers=YAML_CT).json()["id"]
    db = Database(f"sqlite:///{db_path}")
    with db.transaction() as s:  # as if the process had died while solving these two
        for job_id, attempts in ((running, 1), (dying, 3)):
            job = repo.get_job(s, job_id)
            assert job is not None
            job.state, job.attempts = "running", attempts
    db.close()
    with make_client(db=db_path) as c:
        assert wait_done(c, f"/v1/jobs/{queued}")["attempts"] == 1
        again = wait_done(c, f"/v1/jobs/{running}")
        assert again["status"] == "succeeded"
        assert again["attempts"] == 2
        assert again["result"]["objective"]["metric"] == "cost"
        gave_up = c.get(f"/v1/jobs/{dying}").json()
        assert gave_up["status"] == "failed"
        assert "stopped 3 times" in gave_up["error"]["detail"]


@pytest.mark.parametrize("endpoint", ["/v1/jobs"])
def test_job_body_limits_apply(make_client: MakeClient, endpoint: str,
                               example_text: str) -> None:
    with make_client(max_body_bytes=1024) as c:
        assert_problem(c.post(endpoint, content=example_text, headers=YAML_CT), 413,
                       "body-too-large")
        assert_problem(c.post(endpoint, content=example_text,
                              headers={"Content-Type": "text/csv"}), 415,
                       "unsupported-media-type")
