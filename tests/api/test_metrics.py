"""GET /metrics: Prometheus text format, counters that move with the traffic they count.

The text is parsed line by line as a scraper would (every sample under a
HELP and TYPE of its family, histogram buckets cumulative and ending at
+Inf = count), and checked before and after real requests.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import YAML_CT, MakeClient, service
from tests.api.live import LiveServer

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
Key = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> tuple[dict[Key, float], dict[str, str]]:
    """Samples by (name, labels), and each family's type; fails on any malformed line."""
    samples: dict[Key, float] = {}
    types: dict[str, str] = {}
    helped: set[str] = set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name in helped and name not in types, line
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, _, body, value = m.groups()
        labels = frozenset((k, v) for k, v, _ in LABEL.findall(body or ""))
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"sample before its TYPE: {line!r}"
        assert (name, labels) not in samples, f"duplicate series: {line!r}"
        samples[(name, labels)] = float(value)
    return samples, types


def scrape(c: TestClient) -> dict[Key, float]:
    r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(r.text)[0]


def value(samples: dict[Key, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: dict[Key, float], method: str, route: str, status: int) -> float:
    return value(samples, "configspec_http_requests_total", method=method, route=route,
                 status=str(status))


def test_exposition_is_well_formed(client: TestClient) -> None:
    client.get("/healthz")
    client.post("/v1/validate", content="name: [", headers=YAML_CT)
    r = client.get("/metrics")
    samples, types = parse(r.text)
    assert types["configspec_http_requests_total"] == "counter"
    assert types["configspec_http_request_duration_seconds"] == "histogram"
    assert types["configspec_solve_duration_seconds"] == "histogram"
    for name in ("configspec_jobs", "configspec_solver_in_flight", "configspec_solver_queue_depth",
                 "configspec_solver_workers", "configspec_store_up"):
        assert types[name] == "gauge"
    for family, kind in types.items():
        if kind != "histogram":
            continue
        series = {labels - {("le", v) for k, v in labels if k == "le"}
                  for (name, labels) in samples if name == f"{family}_bucket"}
        for labels in series:
            buckets = sorted(
                ((float(dict(lb)["le"]), n) for (name, lb), n in samples.items()
                 if name == f"{family}_bucket" and lb - {("le", dict(lb)["le"])} == labels),
                key=lambda t: t[0])
            counts = [n for _, n in buckets]
            assert counts == sorted(counts), f"{family} buckets not cumulative"
            assert buckets[-1][0] == float("inf")
            assert buckets[-1][1] == samples[(f"{family}_count", labels)]


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    before = scrape(client)
    missing = "0" * 32
    for _ in range(3):
        assert client.get(f"/v1/jobs/{missing}").status_code == 404
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/validate", content="name: [", headers=YAML_CT).status_code == 422
    assert client.get("/no/such/route").status_code == 404
    after = scrape(client)

    assert requests(after, "GET", "/v1/jobs/{job_id}", 404) \
        == requests(before, "GET", "/v1/jobs/{job_id}", 404) + 3
    assert requests(after, "GET", "/healthz", 200) == requests(before, "GET", "/healthz", 200) + 1
    assert requests(after, "POST", "/v1/validate", 422) \
        == requests(before, "POST", "/v1/validate", 422) + 1
    assert requests(after, "GET", "(unmatched)", 404) \
        == requests(before, "GET", "(unmatched)", 404) + 1
    assert requests(after, "GET", "/metrics", 200) == requests(before, "GET", "/metrics", 200) + 1
    routes = {dict(labels).get("route") for (_, labels) in after}
    assert not any(missing in str(r) for r in routes), "raw ids must not become labels"
    duration = "configspec_http_request_duration_seconds_count"
    assert value(after, duration, method="GET", route="/v1/jobs/{job_id}") \
        == value(before, duration, method="GET", route="/v1/jobs/{job_id}") + 3


def test_solve_durations_by_operation_and_outcome(client: TestClient, example_text: str) -> None:
    count = "configspec_solve_duration_seconds_count"
    before = scrape(client)
    assert client.post("/v1/solve", content=example_text, headers=YAML_CT).status_code == 200
    r = client.post("/v1/solve?device=nowhere", content=example_text, headers=YAML_CT)
    assert r.status_code == 422
    assert client.post("/v1/validate", content=example_text, headers=YAML_CT).status_code == 200
    after = scrape(client)
    assert value(after, count, op="solve", outcome="ok") \
        == value(before, count, op="solve", outcome="ok") + 1
    assert value(after, count, op="solve", outcome="problem") \
        == value(before, count, op="solve", outcome="problem") + 1
    assert value(after, count, op="validate", outcome="ok") \
        == value(before, count, op="validate", outcome="ok") + 1
    total = "configspec_solve_duration_seconds_sum"
    assert value(after, total, op="solve", outcome="ok") \
        > value(before, total, op="solve", outcome="ok")


def test_jobs_by_state_and_the_pool(client: TestClient, example_text: str) -> None:
    from tests.api.test_jobs import pause_jobs, resume_jobs, wait_done

    before = scrape(client)
    assert value(before, "configspec_store_up") == 1
    assert value(before, "configspec_solver_workers") == service(client).pool.workers
    assert value(before, "configspec_solver_capacity") == service(client).pool.capacity
    assert value(before, "configspec_solver_queue_depth") == 0
    pause_jobs(client)
    try:
        r = client.post("/v1/jobs", content=example_text, headers=YAML_CT)
        assert r.status_code == 202
        queued = scrape(client)
        assert value(queued, "configspec_jobs", state="queued") \
            == value(before, "configspec_jobs", state="queued") + 1
    finally:
        resume_jobs(client)
    assert wait_done(client, r.headers["Location"])["status"] == "succeeded"
    done = scrape(client)
    assert value(done, "configspec_jobs", state="queued") \
        == value(before, "configspec_jobs", state="queued")
    assert value(done, "configspec_jobs", state="succeeded") \
        == value(before, "configspec_jobs", state="succeeded") + 1
    assert value(done, "configspec_solve_duration_seconds_count", op="solve", outcome="ok") \
        >= value(before, "configspec_solve_duration_seconds_count", op="solve", outcome="ok") + 1


def test_a_store_that_cannot_be_read_does_not_fail_the_scrape(make_client: MakeClient) -> None:
    with make_client() as c:
        db = service(c).db
        with db.engine.begin() as conn:  # the jobs table disappears, as a broken store would
            conn.exec_driver_sql("ALTER TABLE jobs RENAME TO jobs_away")
        try:
            down = scrape(c)
            assert value(down, "configspec_store_up") == 0
            assert not any(name == "configspec_jobs" for name, _ in down)
            assert value(down, "configspec_solver_workers") == 1
        finally:
            with db.engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE jobs_away RENAME TO jobs")
        up = scrape(c)
        assert value(up, "configspec_store_up") == 1
        assert value(up, "configspec_jobs", state="queued") == 0


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(tmp_path / "m.sqlite3", tmp_path / "server.log",
                    env={"CONFIGSPEC_API_TOKEN": "metrics-test-token"}) as s:
        yield s
        s.stop()


def test_served_by_configspec_serve_without_the_token(live: LiveServer) -> None:
    """Scrapers rarely carry the API token: /metrics is open, like /healthz."""
    with httpx.Client(base_url=live.url, timeout=30) as http:
        assert http.get("/v1/jobs").status_code == 401
        deadline = time.monotonic() + 10
        while True:  # counted when its answer has been sent, which may be after we read it
            samples = parse(http.get("/metrics").text)[0]
            if requests(samples, "GET", "/v1/jobs", 401) >= 1:
                break
            assert time.monotonic() < deadline, "the 401 was not counted"
            time.sleep(0.1)
        assert requests(samples, "GET", "/v1/jobs", 401) == 1
        assert [v for (name, _), v in samples.items() if name == "configspec_build_info"] == [1]
