"""The web page at `/`, its assets, and Swagger UI / ReDoc served without a CDN.

Everything a browser loads comes from this package, so the page and the API
docs work on a machine with no internet.  The page is one HTML file, one
JavaScript module and one stylesheet (configspec_opt/api/static/); it talks
to the same `/v1` API as any client, so it needs no route of its own beyond
these files.  Swagger UI and ReDoc are the builds that the `fastapi-offline`
package ships (Swagger UI: Apache-2.0; ReDoc: MIT); only its files are used.

The page is sent with a strict Content-Security-Policy: scripts, styles and
connections from this origin only, no inline script, no framing.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(str(files("configspec_opt.api").joinpath("static")))
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")
DOCS_ASSETS = "/static/docs"


def _docs_static() -> Path:
    """Where fastapi-offline keeps its copies of Swagger UI and ReDoc."""
    return Path(str(files("fastapi_offline").joinpath("static")))


def install(app: FastAPI) -> None:
    """Add `/`, `/static/*`, `/docs` and `/redoc` to the app (call with docs_url=None)."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    # More specific mount first: Starlette takes the first matching prefix.
    app.mount(DOCS_ASSETS, StaticFiles(directory=_docs_static()), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP,
                                           "X-Frame-Options": "DENY",
                                           "Referrer-Policy": "no-referrer"})

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
            # No "validator" badge: it would send the document to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None})

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url or "/openapi.json",
                              title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url="/static/favicon.svg",
                              with_google_fonts=False)
