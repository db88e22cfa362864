"""The OpenAPI document: raw spec bodies described, every error as problem+json.

Spec and profile bodies are read by hand (YAML or JSON, size-limited,
located errors), so FastAPI cannot infer them; routes declare them with
`request_body()` and the schemas are added to the components here.  FastAPI
documents its own 422 as `HTTPValidationError` JSON; this service answers
every 4xx/5xx with RFC 9457 problems, so every error response is rewritten
to say so.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from configspec_opt.api.body import JSON_TYPES, YAML_TYPES
from configspec_opt.api.problem import PROBLEM_JSON, Problem
from configspec_opt.api.schemas import ProfilesIn
from configspec_opt.spec import Spec

REF = "#/components/schemas/{model}"
PROBLEM_REF = {"$ref": REF.format(model="Problem")}
BODY_MODELS: tuple[type[BaseModel], ...] = (Spec, ProfilesIn, Problem)
FASTAPI_ERROR_MODELS = ("HTTPValidationError", "ValidationError")


def request_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """`openapi_extra` for a route whose body is `model` as JSON or YAML."""
    schema = {"$ref": REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "description": description, "content": {
        kind: {"schema": schema} for kind in sorted(JSON_TYPES | YAML_TYPES)}}}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the errors a route can answer (problem+json added later)."""
    what = {400: "Body empty or not UTF-8 text", 401: "Missing or wrong bearer token",
            404: "No such resource", 413: "Body larger than the server's limit",
            415: "Not JSON or YAML", 422: "Invalid spec, body or parameters (located errors)",
            429: "Too many unfinished jobs (Retry-After)",
            503: "Solver processes busy (Retry-After)"}
    return {code: {"description": what[code]} for code in codes}


def _component_schemas() -> dict[str, Any]:
    _, top = models_json_schema([(m, "validation") for m in BODY_MODELS], ref_template=REF)
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description,
                          routes=app.routes)
        components = doc.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in _component_schemas().items():
            components.setdefault(name, schema)
        for item in doc.get("paths", {}).values():
            for op in item.values():
                for code, response in op.get("responses", {}).items():
                    if code[:1] in ("4", "5"):
                        response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
        for name in FASTAPI_ERROR_MODELS:
            components.pop(name, None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
