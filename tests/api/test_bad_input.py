"""Hostile and broken bodies: always a clear 4xx problem, and the server stays up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import YAML_CT, MakeClient
from tests.api.helpers import assert_problem

BOMB = """\
a: &a ["x","x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app with a 64 KiB body limit, to test the limit without sending megabytes."""
    from configspec_opt.api import create_app
    from tests.api.conftest import settings_for

    db = tmp_path_factory.mktemp("bad") / "bad.sqlite3"
    with TestClient(create_app(settings_for(db, max_body_bytes=64 * 1024))) as c:
        yield c


def still_up(c: TestClient, example_text: str) -> None:
    assert c.get("/healthz").json()["status"] == "ok"
    assert c.post("/v1/validate", content=example_text, headers=YAML_CT).status_code == 200


def test_malformed_yaml_is_located(small: TestClient, example_text: str) -> None:
    text = "version: 1\nname: x\ntargets:\n  - name: [unclosed\n"
    body = assert_problem(small.post("/v1/solve", content=text, headers=YAML_CT), 422,
                          "invalid-spec")
    assert body["errors"][0]["message"].startswith("invalid YAML")
    assert body["errors"][0]["line"] == 5
    still_up(small, example_text)


def test_malformed_json_is_located(small: TestClient, example_text: str) -> None:
    r = small.post("/v1/solve", content='{"version": 1,\n "name": }',
                   headers={"Content-Type": "application/json"})
    err = assert_problem(r, 422, "invalid-spec")["errors"][0]
    assert err["message"].startswith("invalid JSON")
    assert (err["line"], err["column"]) == (2, 10)
    still_up(small, example_text)


def test_yaml_alias_bomb(small: TestClient, example_text: str) -> None:
    body = assert_problem(small.post("/v1/validate", content=BOMB, headers=YAML_CT), 422,
                          "invalid-spec")
    assert "expands to more than" in body["errors"][0]["message"]
    still_up(small, example_text)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_json_nan_and_infinity(small: TestClient, example_text: str, value: str,
                               example_data: dict[str, object]) -> None:
    text = json.dumps(example_data).replace('"draft_tok_s": 14.4', f'"draft_tok_s": {value}')
    r = small.post("/v1/solve", content=text, headers={"Content-Type": "application/json"})
    assert value in assert_problem(r, 422, "invalid-spec")["errors"][0]["message"]
    still_up(small, example_text)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e400"])
def test_yaml_nan_inf_and_overflow(small: TestClient, example_text: str, value: str) -> None:
    text = example_text.replace("draft_tok_s: 14.4", f"draft_tok_s: {value}")
    body = assert_problem(small.post("/v1/solve", content=text, headers=YAML_CT), 422,
                          "invalid-spec")
    assert body["errors"][0]["path"] == "profiles[0].draft_tok_s"
    still_up(small, example_text)


def test_huge_integer(small: TestClient, example_text: str) -> None:
    text = example_text.replace("count: 200 ", "count: " + "9" * 5000 + " ")
    body = assert_problem(small.post("/v1/solve", content=text, headers=YAML_CT), 422,
                          "invalid-spec")
    assert "devices[0].count" in body["errors"][0]["path"] or \
        "digits" in body["errors"][0]["message"]
    json_text = '{"version": 1, "name": "x", "count": ' + "9" * 5000 + "}"
    r = small.post("/v1/solve", content=json_text, headers={"Content-Type": "application/json"})
    assert_problem(r, 422, "invalid-spec")
    still_up(small, example_text)


@pytest.mark.parametrize("kind", ["json", "yaml"])
def test_deep_nesting(small: TestClient, example_text: str, kind: str) -> None:
    depth = 5000
    text = "[" * depth + "]" * depth if kind == "json" else "a:\n" + "".join(
        "  " * i + "- \n" for i in range(1, 200))
    ctype = "application/json" if kind == "json" else "application/yaml"
    body = assert_problem(small.post("/v1/validate", content=text,
                                     headers={"Content-Type": ctype}), 422, "invalid-spec")
    assert "nested" in body["errors"][0]["message"]
    still_up(small, example_text)


@pytest.mark.parametrize("ctype", ["text/html", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "text/plain"])
def test_wrong_content_type(small: TestClient, example_text: str, ctype: str) -> None:
    r = small.post("/v1/solve", content=example_text, headers={"Content-Type": ctype})
    body = assert_problem(r, 415, "unsupported-media-type")
    assert "application/yaml" in body["detail"]
    still_up(small, example_text)


def test_wrong_charset(small: TestClient, example_text: str) -> None:
    r = small.post("/v1/solve", content=example_text,
                   headers={"Content-Type": "application/yaml; charset=latin-1"})
    assert "UTF-8" in assert_problem(r, 415, "unsupported-media-type")["detail"]


def test_missing_content_type_is_refused(small: TestClient, example_text: str) -> None:
    """Not sniffed: a page in a browser can send an untyped body without a preflight."""
    r = small.post("/v1/validate", content=example_text.encode())
    assert "no Content-Type" in assert_problem(r, 415, "unsupported-media-type")["detail"]


def test_json_declared_but_yaml_sent(small: TestClient, example_text: str) -> None:
    r = small.post("/v1/validate", content=example_text,
                   headers={"Content-Type": "application/json"})
    body = assert_problem(r, 422, "invalid-spec")
    assert "declared application/json" in body["errors"][0]["message"]


def test_oversized_body(small: TestClient, example_text: str) -> None:
    big = example_text + "#" + "x" * (64 * 1024)
    body = assert_problem(small.post("/v1/solve", content=big, headers=YAML_CT), 413,
                          "body-too-large")
    assert body["limit_bytes"] == 64 * 1024
    still_up(small, example_text)


def test_oversized_body_without_content_length(small: TestClient, example_text: str) -> None:
    """Chunked uploads are counted as they arrive, not trusted by their headers."""
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"#" + b"x" * 1023 + b"\n"

    r = small.post("/v1/solve", content=chunks(), headers=YAML_CT)
    assert_problem(r, 413, "body-too-large")
    still_up(small, example_text)


def test_empty_body(small: TestClient) -> None:
    assert_problem(small.post("/v1/solve", content=b"", headers=YAML_CT), 400, "empty-body")
    assert_problem(small.post("/v1/solve", content=b" \n", headers=YAML_CT), 400, "empty-body")


@pytest.mark.parametrize("raw", [b"name: \xff\xfe", b"name: a\x00b"])
def test_not_utf8_text(small: TestClient, raw: bytes) -> None:
    assert_problem(small.post("/v1/solve", content=raw, headers=YAML_CT), 400, "bad-encoding")


def test_not_a_mapping(small: TestClient) -> None:
    body = assert_problem(small.post("/v1/validate", content="- a\n- b\n", headers=YAML_CT),
                          422, "invalid-spec")
    assert "mapping" in body["errors"][0]["message"]


def test_unknown_route_and_method_are_problems(small: TestClient) -> None:
    r = small.get("/v1/nope")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "about:blank"
    r = small.get("/v1/solve")
    assert r.status_code == 405
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "POST" in r.headers["allow"]


def test_unexpected_error_is_a_500_problem_without_traceback(
        make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    from configspec_opt.store import repo

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(repo, "find_profiles", boom)
    with make_client(raise_server_exceptions=False) as c:
        r = c.get("/v1/profiles")
        body = assert_problem(r, 500, "internal-error")
        assert "secret" not in r.text and "Traceback" not in r.text
        assert body["error_id"] in body["detail"]
        assert any(body["error_id"] in rec.getMessage() for rec in caplog.records)
        assert c.get("/healthz").status_code == 200


def test_health_reports_an_unreachable_database(
        make_client: MakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from configspec_opt.store import repo

    with make_client() as c:
        assert c.get("/healthz").status_code == 200

        def down(*args: object) -> int:
            raise OSError("disk gone")

        monkeypatch.setattr(repo, "count_unfinished_jobs", down)
        r = c.get("/healthz")
        body = assert_problem(r, 503, "unhealthy")
        assert r.headers["retry-after"] == "5"
        assert "disk gone" not in r.text  # the exception's text may hold paths
        assert body["detail"] == "OSError"


@pytest.mark.parametrize("endpoint", ["/v1/validate", "/v1/jobs"])
def test_unusual_unicode_key_is_a_located_422(small: TestClient, example_text: str,
                                             endpoint: str) -> None:
    """'³' passes str.isdigit but not int(): the locator once crashed on it (found by
    schemathesis); now it is an ordinary unknown key with its position."""
    text = example_text.replace("Q8_0: {size_gb: 1.32}", 'Q8_0: {size_gb: 1.32, "³": 1}')
    body = assert_problem(small.post(endpoint, content=text, headers=YAML_CT), 422,
                          "invalid-spec")
    [issue] = body["errors"]
    assert issue["path"] == "drafts[0].quants.Q8_0.³"
    assert issue["message"] == "unknown key '³'"
    assert issue["line"] == next(i for i, t in enumerate(text.splitlines(), 1) if "³" in t)
    still_up(small, example_text)


def test_unusual_unicode_profile_key_is_a_422(small: TestClient) -> None:
    text = ('profiles:\n  - {device: a, draft: d, quant: q, draft_tok_s: 1, '
            '"²": 1}\n')
    r = small.post("/v1/profiles", content=text, headers=YAML_CT)
    assert assert_problem(r, 422, "invalid-profiles")["errors"][0]["path"] == "profiles[0].²"
