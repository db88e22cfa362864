"""POST /v1/observations, GET /v1/drift, POST /v1/drift/replan, on SQLite and PostgreSQL.

Real apps on real databases (tests/conftest.py `db_url`), the example fleet's
lock watched from a temporary copy.  Bad bodies are 4xx with located errors and
store nothing; drift is found when rpi5's acceptance drops and not when its
reports agree with the profile (tests/api/drift_data.py says why that holds for
any seed); the proposed re-plan names the drifted pool and writes nothing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import MakeClient
from tests.api.drift_data import ALPHA, ORIN, RPI5, copy_example, reports
from tests.api.test_metrics import parse

JSON_CT = {"Content-Type": "application/json"}


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "fleet")


@pytest.fixture
def client(make_client: MakeClient, db_url: str, lock: Path) -> Iterator[TestClient]:
    with make_client(db=db_url, watch_lock=str(lock), raise_server_exceptions=False) as c:
        yield c


def post(c: TestClient, observations: list[dict[str, Any]], **headers: str) -> Any:
    return c.post("/v1/observations", content=json.dumps({"observations": observations}),
                  headers={**JSON_CT, **headers})


def one(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"source": "rpi5-a", **RPI5, "spec_decode": {
        "num_drafts": 100, "num_draft_tokens": 600, "num_accepted_tokens": 300}}
    base.update(over)
    return base


def totals(c: TestClient, name: str, device: str = "rpi5") -> float:
    samples = parse(c.get("/metrics").text)[0]
    return sum(v for (n, labels), v in samples.items()
               if n == name and ("device", device) in labels)


def counters(**values: Any) -> dict[str, Any]:
    return one(spec_decode={"num_drafts": 100, "num_draft_tokens": 600,
                            "num_accepted_tokens": 300, **values})


BAD = {
    "negative count": counters(num_drafts=-1),
    "fractional count": counters(num_draft_tokens=600.5),
    "count as a string": counters(num_drafts="100"),
    "count as a boolean": counters(num_drafts=True),
    "accepted more than drafted": counters(num_accepted_tokens=601),
    "tokens without rounds": counters(num_drafts=0),
    "unknown counter": counters(num_draft=3),
    "huge count": counters(num_drafts=2**70),
    "no reading at all": {k: v for k, v in one().items() if k != "spec_decode"},
    "zero draft speed": one(draft_tok_s=0.0),
    "negative rtt": one(rtt_s=-0.01),
    "k of 0": one(k=0),
    "k as text": one(k="6"),
    "no source": {k: v for k, v in one().items() if k != "source"},
    "a name with a newline": one(device="rpi5\nx"),
    "unknown key": one(rtt=0.04),
}


def test_bad_bodies_are_located_422s_and_store_nothing(client: TestClient) -> None:
    for why, obs in BAD.items():
        r = post(client, [one(source="ok-1"), obs])
        assert r.status_code == 422, (why, r.status_code, r.text)
        body = r.json()
        assert body["type"] == "urn:configspec-opt:problem:invalid-observations", why
        assert body["errors"][0]["path"].startswith("observations[1]"), (why, body)
        assert body["errors"][0]["line"] == 1, (why, body)
    assert totals(client, "configspec_observed_reports_total") == 0  # the good one neither


@pytest.mark.parametrize("text, status", [
    ('{"observations": [{"source": "a", "device": "rpi5", "target": "t", "draft": "d", '
     '"quant": "q", "k": 6, "draft_tok_s": NaN}]}', 422),
    ('{"observations": [{"source": "a", "device": "rpi5", "target": "t", "draft": "d", '
     '"quant": "q", "k": 6, "draft_tok_s": Infinity}]}', 422),
    ('{"observations": []}', 422),
    ('{"profiles": []}', 422),
    ("[1, 2]", 422),
    ('{"observations": [', 422),
    ("", 400),
])
def test_malformed_bodies(client: TestClient, text: str, status: int) -> None:
    r = client.post("/v1/observations", content=text, headers=JSON_CT)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_too_many_reports_and_wrong_types_are_refused(client: TestClient) -> None:
    r = post(client, [one(source=f"s{i}") for i in range(1001)])
    assert r.status_code == 422
    assert "1000" in r.text
    r = client.post("/v1/observations", content="observations: []",
                    headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_counters_count_what_each_report_adds(client: TestClient) -> None:
    first = one(spec_decode={"num_drafts": 100, "num_draft_tokens": 600,
                             "num_accepted_tokens": 300}, draft_tok_s=14.0)
    later = one(spec_decode={"num_drafts": 250, "num_draft_tokens": 1500,
                             "num_accepted_tokens": 700}, draft_tok_s=15.0)
    r = post(client, [first, later, one(source="rpi5-b", rtt_s=0.05, spec_decode=None)])
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 3, "configurations": 1, "series": 1}
    assert totals(client, "configspec_observed_draft_rounds_total") == 250
    assert totals(client, "configspec_observed_accepted_tokens_total") == 700
    # a retry of the same batch (same key) adds nothing; the same counters again add zero
    again = post(client, [later], **{"Idempotency-Key": "batch-2"})
    assert again.status_code == 200
    replay = post(client, [later], **{"Idempotency-Key": "batch-2"})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == again.json()
    assert totals(client, "configspec_observed_draft_rounds_total") == 250
    assert totals(client, "configspec_observed_readings_total") == 4  # 3 speeds and 1 rtt
    samples = parse(client.get("/metrics").text)[0]
    speed = [v for (n, labels), v in samples.items() if n == "configspec_observed_readings_sum"
             and ("metric", "draft_tok_s") in labels]
    assert speed == [pytest.approx(44.0)]


def test_counters_that_go_backwards_are_refused(client: TestClient) -> None:
    assert post(client, [counters(num_drafts=200, num_draft_tokens=1200)]).status_code == 200
    back = counters(num_drafts=150, num_draft_tokens=900)
    r = post(client, [one(source="other"), back])
    assert r.status_code == 422, r.text
    issue = r.json()["errors"][0]
    assert issue["path"] == "observations[1].spec_decode.num_drafts"
    assert "went backwards, from 200 to 150" in issue["message"]
    assert "reset: true" in issue["hint"]
    assert totals(client, "configspec_observed_reports_total") == 1  # nothing of that batch
    # more accepted than drafted since the last report, though each total is possible
    r = post(client, [counters(num_drafts=201, num_draft_tokens=1201, num_accepted_tokens=302)])
    assert r.status_code == 422
    assert "2 tokens accepted since the last report but only 1 drafted" in r.text
    # a restarted server says so and counts from zero
    r = post(client, [{**back, "reset": True}])
    assert r.status_code == 200, r.text
    assert totals(client, "configspec_observed_draft_rounds_total") == 350


def _drift(c: TestClient) -> dict[str, Any]:
    r = c.get("/v1/drift")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_no_drift_when_the_fleet_runs_as_profiled(client: TestClient) -> None:
    batch = reports(RPI5, ALPHA["rpi5"], draft_tok_s=14.4) + reports(ORIN, ALPHA["orin"])
    assert post(client, batch).status_code == 200
    d = _drift(client)
    assert d["drifted"] == []
    rpi5 = next(p for p in d["pools"] if p["device"] == "rpi5")
    assert rpi5["status"] == "ok"
    verdicts = {c["metric"]: c["verdict"] for c in rpi5["checks"]}
    assert verdicts["acceptance"] == "ok" and verdicts["draft_tok_s"] == "ok"
    lo, hi = next(c for c in rpi5["checks"] if c["metric"] == "acceptance")["interval"]
    assert lo < ALPHA["rpi5"] < hi
    r = client.post("/v1/drift/replan")
    assert r.status_code == 200, r.text
    assert r.json()["proposal"] is None


def test_drift_when_acceptance_drops_and_the_replan_names_the_pool(
        client: TestClient, lock: Path) -> None:
    before = lock.read_bytes(), lock.with_name("llama70b-edge.yaml").read_bytes()
    batch = reports(RPI5, 0.40) + reports(ORIN, ALPHA["orin"], seed=8)
    assert post(client, batch).status_code == 200
    d = _drift(client)
    assert d["drifted"] == ["rpi5"]
    rpi5 = next(p for p in d["pools"] if p["device"] == "rpi5")
    check = next(c for c in rpi5["checks"] if c["metric"] == "acceptance")
    assert check["verdict"] == "lower"
    assert check["interval"][1] < check["band"][0]
    assert next(p for p in d["pools"] if p["device"] == "orin")["status"] == "ok"
    r = client.post("/v1/drift/replan")
    assert r.status_code == 200, r.text
    proposal = r.json()["proposal"]
    assert proposal["applied"] is False
    assert any("rpi5" in line and "acceptance" in line for line in proposal["changes"])
    pools = {p["device"]: p for p in proposal["diff"]["pools"]}
    assert pools["rpi5"]["change"] in ("configuration", "metrics")
    assert pools["rpi5"]["new"][0]["goodput_tok_s"] < pools["rpi5"]["old"][0]["goodput_tok_s"]
    assert pools["orin"]["change"] in ("unchanged", "metrics", "configuration")
    assert proposal["diff"]["old"]["ref"].endswith("llama70b-edge.yaml.lock")
    after = lock.read_bytes(), lock.with_name("llama70b-edge.yaml").read_bytes()
    assert after == before  # proposed, never applied


def test_a_configuration_the_lock_does_not_assign_is_drift(client: TestClient) -> None:
    other = {**RPI5, "k": 4}
    assert post(client, reports(other, ALPHA["rpi5"])).status_code == 200
    d = _drift(client)
    assert d["drifted"] == ["rpi5"]
    assert d["unplanned"] == [other]
    assert "the lock assigns" in next(p for p in d["pools"] if p["device"] == "rpi5")["note"]
    unknown = {**RPI5, "device": "laptop"}
    assert post(client, reports(unknown, 0.5, n=30)).status_code == 200
    assert _drift(client)["unknown"] == [unknown]


def test_without_a_watched_lock_drift_is_404(make_client: MakeClient, tmp_path: Path) -> None:
    with make_client(db=tmp_path / "nolock.sqlite3") as c:
        r = c.get("/v1/drift")
        assert r.status_code == 404
        assert "--watch" in r.json()["detail"]
        assert c.post("/v1/drift/replan").status_code == 404


def test_a_broken_watched_lock_is_409_not_500(make_client: MakeClient, tmp_path: Path) -> None:
    lock = copy_example(tmp_path / "broken")
    lock.write_text(lock.read_text().replace("lock_version: 1", "lock_version: 99"))
    with make_client(db=tmp_path / "b.sqlite3", watch_lock=str(lock),
                     raise_server_exceptions=False) as c:
        for r in (c.get("/v1/drift"), c.post("/v1/drift/replan")):
            assert r.status_code == 409, r.text
            assert r.json()["type"].endswith("watched-lock-invalid")


def test_observations_are_in_the_openapi_document(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/v1/observations"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["$ref"].endswith("/ObservationsIn")
    assert "ObservationsIn" in doc["components"]["schemas"]
    assert "/v1/drift/replan" in doc["paths"]
    schema = copy.deepcopy(doc["components"]["schemas"]["Observation"])
    assert "spec_decode" in schema["properties"]


def test_the_store_is_bounded(db_url: str) -> None:
    """Buckets past the window and reporters silent for keep_days go; a batch that would
    pass the limit on configurations or reporters is refused whole."""
    from datetime import timedelta

    from configspec_opt.drift.observations import Observation
    from configspec_opt.store import observations as stored
    from configspec_opt.store.database import Database
    from configspec_opt.store.models import utcnow

    db = Database(db_url)
    db.migrate()
    try:
        batch = [Observation.model_validate(o) for o in reports(RPI5, 0.5, n=30)]
        now = utcnow().timestamp()
        db.call(lambda s: stored.ingest(s, batch[:4], bucket_s=60, now=now - 7200))
        db.call(lambda s: stored.ingest(s, batch[4:], bucket_s=60, now=now))
        assert db.call(lambda s: stored.window(s, window_s=3600, now=now))[
            tuple(RPI5.values())].reports == len(batch) - 4  # type: ignore[index]
        gone = db.call(lambda s: stored.prune(s, window_s=3600, keep_days=30))
        assert (gone.buckets, gone.series, gone.configurations) == (1, 0, 0)
        assert db.call(stored.totals)[0][1].reports == len(batch)  # totals stay
        later = utcnow() + timedelta(days=31)
        gone = db.call(lambda s: stored.prune(s, window_s=3600, keep_days=30, now=later))
        assert (gone.series, gone.configurations) == (3, 1)
        other = [Observation.model_validate(o) for o in reports({**RPI5, "k": 5}, 0.5, n=30)]
        with pytest.raises(stored.Full):
            db.call(lambda s: stored.ingest(s, [*batch, *other], bucket_s=60, max_configs=1))
        with pytest.raises(stored.Full):
            db.call(lambda s: stored.ingest(s, batch, bucket_s=60, max_series=2))
        assert db.call(stored.totals) == []  # refused whole
    finally:
        db.close()
