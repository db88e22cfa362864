"""The page's files and the API docs over HTTP: all local, nothing from a CDN.

These run without a browser; tests/api/test_web.py drives the page in Chromium.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from configspec_opt.api.routes.web import STATIC

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


def test_page_and_its_assets_are_served_from_the_package(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert not EXTERNAL.search(r.text)
    for name in ("app.js", "style.css", "favicon.svg"):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200, name
        assert asset.content == (STATIC / name).read_bytes()
    assert "http://" not in client.get("/static/app.js").text.replace("http://www.w3.org", "")


def test_api_docs_load_local_assets(client: TestClient) -> None:
    for page, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")),
                         ("/redoc", ("redoc.standalone.js",))):
        r = client.get(page)
        assert r.status_code == 200
        assert not EXTERNAL.search(r.text), f"{page} loads something from elsewhere"
        assert "fonts.googleapis" not in r.text
        for name in assets:
            assert f"/static/docs/{name}" in r.text
            asset = client.get(f"/static/docs/{name}")
            assert asset.status_code == 200 and len(asset.content) > 50_000, name
    assert '"validatorUrl": null' in client.get("/docs").text


def test_page_routes_stay_out_of_the_api_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/", "/docs", "/redoc", "/metrics"}.isdisjoint(paths)
    assert "get" in paths["/v1/jobs"] and "post" in paths["/v1/jobs"]
    assert "/v1/specs/{sha256}" in paths
