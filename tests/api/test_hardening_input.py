"""Who may write, and what a client learns: against real `configspec serve` processes.

The probe of issue 12 wrote profiles with a foreign `Origin` and `Host`
and no Content-Type, got 201, and changed every later `profiles=stored`
solve.  Here each of those faults, alone and together, is refused and
changes nothing; legitimate clients (programs without Origin, the
server's own page, loopback names, configured hosts and origins) still
write; the token that wrote a profile is recorded by fingerprint only;
result and job ids cannot be counted; every answer says nosniff and
no-store; rows written before the migration stay readable; and the
retention policy runs at start-up.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from configspec_opt.store.database import Database
from configspec_opt.store.migrate import upgrade
from tests.api.conftest import EXAMPLE, YAML_CT
from tests.api.live import LiveServer

JSON_CT = {"Content-Type": "application/json"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
TOKEN = "hardening-token-0123456789"
FOREIGN = "evil.example"
ORIN = {"device": "orin", "draft": "llama-3.2-1b-instruct", "quant": "Q4_K_M",
        "draft_tok_s": 4000.0, "power_w": 44.1,
        "acceptance": {"llama-3.1-70b": {"per_token": 0.9}}}


def upload(**changes: Any) -> str:
    return json.dumps({"profiles": [{**ORIN, **changes}]})


def stored_count(base: str, headers: dict[str, str] | None = None) -> int:
    r = httpx.get(f"{base}/v1/profiles?history=true&limit=10000", headers=headers or {})
    assert r.status_code == 200, r.text
    return len(r.json()["profiles"])


def problem(r: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["type"] == f"urn:configspec-opt:problem:{kind}"
    return body


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server as `configspec serve` starts by default: loopback, no token, no CORS."""
    tmp = tmp_path_factory.mktemp("hardening")
    with LiveServer(tmp / "plain.sqlite3", tmp / "server.log") as server:
        yield server
        server.stop()
    assert "Traceback" not in (tmp / "server.log").read_text()


def test_the_probe_write_and_each_of_its_faults_are_refused(plain: LiveServer) -> None:
    base, port = plain.url, plain.port
    before = stored_count(base)
    stored_solve = httpx.post(f"{base}/v1/evaluate?profiles=stored&top=1",
                              content=EXAMPLE.read_text(), headers=YAML_CT, timeout=60).json()
    # the probe itself: foreign Origin and Host, no Content-Type
    r = httpx.post(f"{base}/v1/profiles", content=upload(),
                   headers={"Origin": f"http://{FOREIGN}", "Host": FOREIGN})
    assert "does not answer to host 'evil.example'" in problem(
        r, 421, "misdirected-request")["detail"]
    # each fault alone
    r = httpx.post(f"{base}/v1/profiles", content=upload(), headers={"Host": FOREIGN, **JSON_CT})
    assert "--allowed-host" in problem(r, 421, "misdirected-request")["detail"]
    r = httpx.post(f"{base}/v1/profiles", content=upload(),
                   headers={"Origin": f"http://{FOREIGN}", **JSON_CT})
    assert "--allow-origin" in problem(r, 403, "cross-origin")["detail"]
    r = httpx.post(f"{base}/v1/profiles", content=upload(),
                   headers={"Origin": "null", **JSON_CT})
    problem(r, 403, "cross-origin")
    r = httpx.post(f"{base}/v1/profiles", content=upload(),
                   headers={"Sec-Fetch-Site": "cross-site", **JSON_CT})
    problem(r, 403, "cross-origin")
    r = httpx.post(f"{base}/v1/profiles", content=upload().encode())
    assert "no Content-Type" in problem(r, 415, "unsupported-media-type")["detail"]
    r = httpx.post(f"{base}/v1/profiles", content=upload(), headers={"Content-Type": "text/plain"})
    problem(r, 415, "unsupported-media-type")
    # the same-origin page on a loopback port of another scheme is another origin
    r = httpx.post(f"{base}/v1/profiles", content=upload(),
                   headers={"Origin": f"https://127.0.0.1:{port}", **JSON_CT})
    problem(r, 403, "cross-origin")
    # nothing was stored, and stored-profile answers did not move
    assert stored_count(base) == before
    again = httpx.post(f"{base}/v1/evaluate?profiles=stored&top=1",
                       content=EXAMPLE.read_text(), headers=YAML_CT, timeout=60).json()
    assert again == stored_solve


def test_legitimate_writers_still_write(plain: LiveServer) -> None:
    base, port = plain.url, plain.port
    before = stored_count(base)
    # a program (no Origin), the server's own page (same origin), loopback names
    for headers in ({}, {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"},
                    {"Host": f"localhost:{port}"}, {"Host": f"[::1]:{port}"},
                    {"Host": f"127.0.0.2:{port}"},
                    {"Host": f"app.localhost:{port}", "Origin": f"http://app.localhost:{port}"}):
        r = httpx.post(f"{base}/v1/profiles", content=upload(), headers={**JSON_CT, **headers})
        assert r.status_code == 201, (headers, r.text)
        assert r.json()["profiles"][0]["token_fingerprint"] is None  # no token on this server
    assert stored_count(base) == before + 6
    # reads from a foreign page are answered, but CORS is off: the browser cannot read them
    r = httpx.get(f"{base}/v1/profiles", headers={"Origin": f"http://{FOREIGN}"})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    r = httpx.options(f"{base}/v1/profiles", headers={
        "Origin": f"http://{FOREIGN}", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers


def test_every_answer_says_nosniff_and_no_store(plain: LiveServer) -> None:
    base = plain.url
    answers = [
        httpx.get(f"{base}/healthz"), httpx.get(f"{base}/openapi.json"),
        httpx.get(f"{base}/v1/profiles"), httpx.get(f"{base}/v1/results/{'0' * 32}"),
        httpx.get(f"{base}/nowhere"), httpx.post(f"{base}/v1/validate", content=b"x: 1"),
        httpx.get(f"{base}/healthz", headers={"Host": FOREIGN}),
        httpx.post(f"{base}/v1/profiles", content=upload(),
                   headers={"Origin": f"http://{FOREIGN}", **JSON_CT}),
        httpx.post(f"{base}/v1/validate", content=EXAMPLE.read_text(), headers=YAML_CT,
                   timeout=60),
    ]
    assert sorted({r.status_code for r in answers}) == [200, 403, 404, 415, 421]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["cache-control"] == "no-store", r.url


def test_the_refusals_are_documented(plain: LiveServer) -> None:
    doc = httpx.get(f"{plain.url}/openapi.json").json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert {"400", "421", "431"} <= set(op["responses"]), (method, path)
            assert ("403" in op["responses"]) == (method == "post"), (method, path)
    spec = doc["components"]["schemas"]["Spec"]
    assert "profiles_from" not in spec["properties"]
    assert "cannot state" in spec["description"]


def test_result_and_job_ids_cannot_be_counted(plain: LiveServer) -> None:
    base = plain.url
    spec = EXAMPLE.read_text()
    locations = [httpx.post(f"{base}/v1/solve", content=spec, headers=YAML_CT, timeout=60)
                 .headers["content-location"] for _ in range(2)]
    ids = [loc.rsplit("/", 1)[1] for loc in locations]
    assert all(HEX32.match(i) for i in ids) and ids[0] != ids[1]
    stored = httpx.get(f"{base}{locations[1]}").json()
    assert stored["id"] == ids[1] and stored["kind"] == "solve"
    problem(httpx.get(f"{base}/v1/results/1"), 422, "invalid-request")
    problem(httpx.get(f"{base}/v1/results/2"), 422, "invalid-request")
    flipped = ids[1][:-1] + ("0" if ids[1][-1] != "0" else "1")
    problem(httpx.get(f"{base}/v1/results/{flipped}"), 404, "not-found")
    jobs = [httpx.post(f"{base}/v1/jobs", content=spec, headers=YAML_CT).json()["id"]
            for _ in range(2)]
    assert all(HEX32.match(j) for j in jobs) and jobs[0] != jobs[1]
    # 128 random bits each: two ids share no long prefix or suffix
    assert ids[0][:8] != ids[1][:8] and jobs[0][-8:] != jobs[1][-8:]


def test_a_stored_profile_that_breaks_the_spec_is_named(plain: LiveServer) -> None:
    base = plain.url
    no_power = {k: v for k, v in ORIN.items() if k != "power_w"}
    pushed = httpx.post(f"{base}/v1/profiles", content=json.dumps({"profiles": [no_power]}),
                        headers=JSON_CT)
    pid = pushed.json()["profiles"][0]["id"]
    r = httpx.post(f"{base}/v1/evaluate?profiles=stored&top=1", content=EXAMPLE.read_text(),
                   headers=YAML_CT, timeout=60)
    errors = problem(r, 422, "invalid-spec")["errors"]
    assert errors and all(e["file"] == f"stored profile {pid}" for e in errors), errors
    assert any(e["path"].startswith("constraints.") for e in errors)
    # put it right, so later tests of this module see a consistent store
    httpx.post(f"{base}/v1/profiles", content=upload(), headers=JSON_CT)


# --- a configured server over a database written before the migration -----------------


OLD_BODY: dict[str, Any] = {"status": "optimal", "objective": {}, "assignments": [], "fleet": None,
            "solver": {}, "old": True}


def seed_revision_0001(db: Path) -> None:
    """A store as the previous release left it: sequential result ids, no fingerprints,
    one result a job points to, one result and one job too old to keep."""
    database = Database(f"sqlite:///{db}")
    upgrade(database.engine, "0001")
    recent, ancient = "2099-01-01 00:00:00.000000", "2000-01-01 00:00:00.000000"
    with database.engine.begin() as c:
        c.execute(text("INSERT INTO specs VALUES ('s1', 'old', 'name: old', :t)"),
                  {"t": recent})
        c.execute(text("INSERT INTO specs VALUES ('s2', 'ancient', 'name: x', :t)"),
                  {"t": ancient})
        for rid, spec, at in ((1, "s1", recent), (2, "s2", ancient)):
            c.execute(text("INSERT INTO results (id, kind, spec_sha256, params, status, body, "
                           "created_at) VALUES (:id, 'solve', :s, '{}', 'optimal', :b, :t)"),
                      {"id": rid, "s": spec, "t": at, "b": json.dumps(OLD_BODY)})
        jobs: list[tuple[str, int | None, str]] = [("a" * 32, 1, recent),
                                                   ("b" * 32, None, ancient)]
        for jid, job_result, at in jobs:
            c.execute(text("INSERT INTO jobs VALUES (:j, 's1', '{}', NULL, 'succeeded', 1, "
                           ":r, NULL, :t, :t, :t)"), {"j": jid, "r": job_result, "t": at})
        c.execute(text("INSERT INTO profiles (device, draft, quant, data, received_at) VALUES "
                       "('orin', 'llama-3.2-1b-instruct', 'Q4_K_M', :d, :t)"),
                  {"d": json.dumps(ORIN), "t": recent})
    database.close()


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    tmp = tmp_path_factory.mktemp("configured")
    db = tmp / "old.sqlite3"
    seed_revision_0001(db)
    with LiveServer(db, tmp / "server.log", "--allow-origin", "https://dash.example",
                    "--allowed-host", "api.example", "--keep-days", "30",
                    env={"CONFIGSPEC_API_TOKEN": TOKEN}) as server:
        yield server, db
        server.stop()
    assert "Traceback" not in (tmp / "server.log").read_text()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_configured_origin_and_host(configured: tuple[LiveServer, Path]) -> None:
    server, _ = configured
    base, port = server.url, server.port
    r = httpx.post(f"{base}/v1/profiles", content=upload(), headers={
        **AUTH, **JSON_CT, "Origin": "https://dash.example", "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 201, r.text
    assert r.headers["access-control-allow-origin"] == "https://dash.example"
    pre = httpx.options(f"{base}/v1/profiles", headers={
        "Origin": "https://dash.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "https://dash.example"
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    r = httpx.post(f"{base}/v1/profiles", content=upload(), headers={
        **AUTH, **JSON_CT, "Origin": "https://other.example"})
    problem(r, 403, "cross-origin")
    assert "access-control-allow-origin" not in r.headers
    assert httpx.get(f"{base}/healthz", headers={"Host": f"api.example:{port}"}).status_code \
        == 200
    problem(httpx.get(f"{base}/healthz", headers={"Host": f"other.example:{port}"}), 421,
            "misdirected-request")
    # the guard runs before authentication: a foreign write without a token learns nothing more
    problem(httpx.post(f"{base}/v1/profiles", content=upload(),
                       headers={**JSON_CT, "Origin": f"http://{FOREIGN}"}), 403, "cross-origin")


def test_the_writing_token_is_recorded_by_fingerprint_only(
        configured: tuple[LiveServer, Path]) -> None:
    server, db = configured
    base = server.url
    written = httpx.post(f"{base}/v1/profiles", content=upload(draft_tok_s=123.0),
                         headers={**AUTH, **JSON_CT}).json()["profiles"][0]
    fingerprint = hashlib.sha256(TOKEN.encode()).hexdigest()[:12]
    assert written["token_fingerprint"] == fingerprint
    history = httpx.get(f"{base}/v1/profiles?history=true", headers=AUTH).json()["profiles"]
    assert history[0]["token_fingerprint"] == fingerprint
    assert history[-1]["token_fingerprint"] is None  # written before fingerprints existed
    for path in db.parent.glob(db.name + "*"):  # the database, its WAL and shared memory
        assert TOKEN.encode() not in path.read_bytes(), path
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT token_fingerprint FROM profiles")}
    assert stored == {None, fingerprint}


def test_rows_from_before_the_migration_stay_readable_and_old_ones_are_pruned(
        configured: tuple[LiveServer, Path]) -> None:
    server, db = configured
    base = server.url
    job = httpx.get(f"{base}/v1/jobs/{'a' * 32}", headers=AUTH).json()
    location = job["result_url"]
    assert HEX32.match(location.rsplit("/", 1)[1]), location
    result = httpx.get(f"{base}{location}", headers=AUTH).json()
    assert result["body"] == OLD_BODY
    assert job["result"] == OLD_BODY
    problem(httpx.get(f"{base}/v1/results/1", headers=AUTH), 422, "invalid-request")
    # the retention policy ran at start-up: the job and result from 2000 are gone
    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/v1/jobs/{'b' * 32}", headers=AUTH).status_code != 404:
        assert time.monotonic() < deadline, "the old job was not pruned"
        time.sleep(0.2)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM results").fetchone()[0] == 1
        assert [r[0] for r in conn.execute("SELECT sha256 FROM specs")] == ["s1"]


# --- the rules themselves, without a server ---------------------------------------------


def test_host_policy() -> None:
    from configspec_opt.api.guard import HostPolicy, host_name

    assert host_name("Example.COM.:8080") == "example.com"
    assert host_name("[::1]:8765") == "::1"
    loop = HostPolicy("127.0.0.1", ())
    assert all(loop.allows(h) for h in ("localhost", "127.0.0.1", "::1", "a.localhost"))
    assert not loop.allows("10.0.0.5") and not loop.allows(FOREIGN)
    anywhere = HostPolicy("0.0.0.0", ("api.example", "*.corp.example"))
    assert all(anywhere.allows(h) for h in ("10.0.0.5", "fe80::1", "localhost", "api.example",
                                            "x.corp.example"))
    assert not anywhere.allows("corp.example.evil") and not anywhere.allows(FOREIGN)
    one = HostPolicy("10.0.0.5", ())
    assert one.allows("10.0.0.5") and not one.allows("10.0.0.6")
    assert HostPolicy("127.0.0.1", ("*",)).allows(FOREIGN)


def test_origin_settings_are_checked() -> None:
    from typer.testing import CliRunner

    from configspec_opt.api.guard import parse_origins, split_list
    from configspec_opt.cli import app as cli_app

    assert split_list("https://a.example, https://b.example  c") == (
        "https://a.example", "https://b.example", "c")
    assert parse_origins(["HTTPS://Dash.Example:443/", "http://x.example:8080", "*"]) == (
        "https://dash.example", "http://x.example:8080", "*")
    for bad in ("dash.example", "ftp://x.example", "https://x.example/path"):
        with pytest.raises(ValueError, match="not an origin"):
            parse_origins([bad])
    r = CliRunner().invoke(cli_app, ["serve", "--allow-origin", "dash.example",
                                     "--db", "/nonexistent/never-created.sqlite3"])
    assert r.exit_code == 2 and "not an origin" in r.output
    assert "Traceback" not in r.output
    r = CliRunner().invoke(cli_app, ["serve", "--db", "/nonexistent/never-created.sqlite3"],
                           env={"CONFIGSPEC_ALLOW_ORIGINS": "https://ok.example, ftp://no"})
    assert r.exit_code == 2 and "'ftp://no' is not an origin" in r.output
