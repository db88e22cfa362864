"""GET /v1/jobs and GET /v1/specs[/{sha256}]: what the web page lists."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import YAML_CT, MakeClient
from tests.api.helpers import assert_problem
from tests.api.test_jobs import pause_jobs, resume_jobs, wait_done


def submit(c: TestClient, text: str, query: str = "") -> str:
    r = c.post(f"/v1/jobs{query}", content=text, headers=YAML_CT)
    assert r.status_code == 202, r.text
    job_id: str = r.json()["id"]
    return job_id


def test_jobs_newest_first_paged_and_filtered(make_client: MakeClient,
                                              example_text: str) -> None:
    with make_client(workers=1) as c:
        assert c.get("/v1/jobs").json() == {"jobs": [], "total": 0}
        pause_jobs(c)
        ids = [submit(c, example_text, q) for q in
               ("", "?objective=max:cost_efficiency", "?objective=min:energy")]
        page = c.get("/v1/jobs?limit=2").json()
        assert page["total"] == 3
        assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
        assert all(j["status"] == "queued" and j["result"] is None for j in page["jobs"])
        rest = c.get("/v1/jobs?limit=2&offset=2").json()
        assert [j["id"] for j in rest["jobs"]] == [ids[0]]
        resume_jobs(c)
        for i in ids:
            wait_done(c, f"/v1/jobs/{i}")
        done = c.get("/v1/jobs?status=succeeded").json()
        assert done["total"] == 3
        assert all(j["result"] is None and j["result_url"] for j in done["jobs"]), \
            "listings leave results out; result_url points at them"
        assert c.get("/v1/jobs?status=queued").json() == {"jobs": [], "total": 0}


def test_job_listing_refuses_bad_parameters(client: TestClient) -> None:
    for query in ("?status=done", "?limit=0", "?limit=1001", "?offset=-1", "?colour=red"):
        assert_problem(client.get(f"/v1/jobs{query}"), 422, "invalid-request")


def test_stored_specs_listed_and_reopened(make_client: MakeClient, example_text: str) -> None:
    with make_client() as c:
        assert c.get("/v1/specs").json() == {"specs": [], "total": 0}
        solved = c.post("/v1/solve", content=example_text, headers=YAML_CT).json()
        listing: dict[str, Any] = c.get("/v1/specs").json()
        assert listing["total"] == 1
        (entry,) = listing["specs"]
        assert entry["sha256"] == solved["spec_sha256"]
        assert entry["name"] == "llama70b-edge"
        assert entry["characters"] == len(example_text)
        assert "text" not in entry
        full = c.get(f"/v1/specs/{entry['sha256']}").json()
        assert full["text"] == example_text
        assert_problem(c.get("/v1/specs/" + "0" * 64), 404, "not-found")
        assert_problem(c.get("/v1/specs/not-a-hash"), 422, "invalid-request")
        assert_problem(c.get("/v1/specs?limit=0"), 422, "invalid-request")


def test_listings_need_the_token(make_client: MakeClient) -> None:
    with make_client(token="listing-token") as c:
        for path in ("/v1/jobs", "/v1/specs", "/v1/specs/" + "0" * 64):
            assert_problem(c.get(path), 401, "unauthorized")
        auth = {"Authorization": "Bearer listing-token"}
        assert c.get("/v1/jobs", headers=auth).status_code == 200
        assert c.get("/v1/specs", headers=auth).status_code == 200
