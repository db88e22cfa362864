"""The OpenAPI document: raw spec bodies described, every error as problem+json.

Spec and profile bodies are read by hand (YAML or JSON, size-limited,
located errors), so FastAPI cannot infer them; routes declare them with
`request_body()` and the schemas are added to the components here.  FastAPI
documents its own 422 as `HTTPValidationError` JSON; this service answers
every 4xx/5xx with RFC 9457 problems, so every error response is rewritten
to say so.

The spec body's schema is the spec model's, made to state what the server
really accepts where JSON Schema can: `profiles_from` is not a property
(requests may not name files), a weighted objective's terms cannot name a
ratio metric, a `time_limit` is bounded by this server's maximum, and
`objective`, `x` and `y` carry the exact grammar of a term.  The rules no
JSON Schema can state (names that must be unique or must refer to each
other, one field bounded by another) are listed in each body's
description (`UNSTATED_RULES`) and answered as located 422s.
"""

from __future__ import annotations

import copy
import functools
import sys
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from configspec_opt.api.body import JSON_TYPES, YAML_TYPES
from configspec_opt.api.problem import PROBLEM_JSON, ProblemDetails
from configspec_opt.api.schemas import ProfilesIn
from configspec_opt.api.settings import Settings
from configspec_opt.drift.observations import ObservationsIn
from configspec_opt.metric_registry import RATIO_METRICS as RATIO_METRIC_SET
from configspec_opt.operations import SENSE_ALIASES
from configspec_opt.spec import Metric, Spec

REF = "#/components/schemas/{model}"
PROBLEM_REF = {"$ref": REF.format(model="Problem")}
BODY_MODELS: tuple[type[BaseModel], ...] = (Spec, ProfilesIn, ObservationsIn, ProblemDetails)
SCHEMA_NAMES = {"ProblemDetails": "Problem"}
"""Components named otherwise than their classes: the names clients already know."""
FASTAPI_ERROR_MODELS = ("HTTPValidationError", "ValidationError")
RATIO_METRICS = tuple(m.value for m in Metric if m in RATIO_METRIC_SET)
UNSTATED_RULES = (
    "names are unique within targets, drafts and devices",
    "every name a profile or pin uses (device, draft, quant, target) is declared; a profile "
    "pairs a draft only with targets of its family; one profile per (device, draft, quant); "
    "a profile's acceptance_by_class names only targets its acceptance names",
    "search.k.max >= search.k.min and a pin's k lies between them; a verifier's "
    "replicas.max >= replicas.min; every row of a verifier's latency_s lists the same K",
    "energy and power (objective, constraint or SLO) need power data for every pool",
    "a per-device min_cost_efficiency_tok_per_usd is refused when a target is "
    "replica-priced (it has a verifier)",
    "query: every `device` names a pool of the spec; Pareto `x` and `y` name different "
    "metrics",
    "an integer is written without a fraction (36, not 36.0): JSON Schema counts 36.0 as an "
    "integer, the spec loader does not",
    "query: when a target has a batched verifier (`verifier:`), Pareto `y` is one that a "
    "fleet constraint can bound: minimize:cost, maximize:goodput, minimize:power, "
    "minimize:energy or maximize:cost_efficiency",
    "query: `simulate` and `load_blind` are not asked for together (the simulation plays "
    "batched verifiers' load forward, a load-blind solve models none)",
    "min_goodput (the slowest device's goodput) is only maximised, in the spec's objective "
    "and in the `objective` query alike",
)


def _chars(letter: str) -> str:
    """A character class matching what `str.lower()` turns into `letter`."""
    return "[" + "".join(sorted({c for c in (letter, letter.upper()) if c.lower() == letter})) \
        + "]"


@functools.cache
def term_pattern() -> str:
    """The language `operations.parse_term` accepts, as an ECMA-262 (and Python) regex.

    A term is `[sense:]metric`: Python strips whitespace around both parts and
    lower-cases the sense, so the whitespace class is exactly `str.isspace` and
    letters of the sense match either case; an empty sense (`:goodput`) is
    allowed, a sense that is only whitespace is not.
    """
    space = "[" + "".join(f"\\u{ord(c):04x}" for c in map(chr, range(sys.maxunicode + 1))
                          if c.isspace()) + "]"
    senses = "|".join("".join(_chars(ch) for ch in alias)
                      for alias in sorted(SENSE_ALIASES, key=len, reverse=True))
    metrics = "|".join(sorted((m.value for m in Metric), key=len, reverse=True))
    return f"^(?:{space}*(?:{senses}){space}*:|:)?{space}*(?:{metrics}){space}*$"


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
            503: "Solver processes busy, or storage unavailable (Retry-After)",
            504: "Past the hard stop of the request's time limit (deadline-exceeded)"}
    return {code: {"description": what[code]} for code in codes}


def _component_schemas() -> dict[str, Any]:
    _, top = models_json_schema([(m, "validation") for m in BODY_MODELS], ref_template=REF)
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


def _request_spec(components: dict[str, Any]) -> None:
    """The Spec component as a request body (module docstring): what JSON Schema can say."""
    spec = components["Spec"]
    spec["properties"].pop("profiles_from", None)
    spec["description"] = (spec.get("description") or "").rstrip() + (
        "\n\nRules this schema cannot state (a 422 `invalid-spec` names the place): "
        + "; ".join(UNSTATED_RULES) + ".").lstrip()
    latency = components["Verifier"]["properties"]["latency_s"]["additionalProperties"]
    latency["minProperties"] = 1  # a row of the table lists at least one K
    most = components["Replicas"]["properties"]["max"]
    most["minimum"] = max(most.get("minimum", 1), 1)  # the model refuses max 0
    term = copy.deepcopy(components["Term"])
    allowed = [m.value for m in Metric if m.value not in RATIO_METRICS]
    for sense in ("maximize", "minimize"):
        term["properties"][sense]["anyOf"] = [{"type": "string", "enum": allowed},
                                              {"type": "null"}]
    term["title"] = "WeightedTerm"
    term["description"] = ("A term of a weighted objective: ratio metrics "
                           f"({', '.join(RATIO_METRICS)}) cannot be summed.")
    components["WeightedTerm"] = term
    weighted = components["Objective"]["properties"]["weighted"]
    for branch in weighted["anyOf"]:
        if branch.get("type") == "array":
            branch["items"] = {"$ref": REF.format(model="WeightedTerm")}


def _query_rules(doc: dict[str, Any], settings: Settings | None) -> None:
    """Per-app limits and the term grammar, on the query parameters that have them."""
    pattern = term_pattern()
    for path, item in doc.get("paths", {}).items():
        for op in item.values():
            for param in op.get("parameters", []):
                schema = param.get("schema", {})
                branches = schema.get("anyOf", [schema])
                if param["name"] in ("objective", "x", "y"):
                    for b in branches:
                        if b.get("type") == "string":
                            b["pattern"] = pattern
                elif param["name"] == "time_limit" and settings is not None:
                    most = settings.max_job_time_limit if path.startswith("/v1/jobs") \
                        else settings.max_time_limit
                    for b in branches:
                        if b.get("type") == "number":
                            b["maximum"] = min(b.get("maximum", most), most)


def _rename_schemas(doc: dict[str, Any]) -> None:
    """Components and every `$ref` to them under their `SCHEMA_NAMES`, in place."""
    doc["components"]["schemas"] = {SCHEMA_NAMES.get(name, name): schema for name, schema
                                     in doc["components"]["schemas"].items()}
    refs = {REF.format(model=old): REF.format(model=new) for old, new in SCHEMA_NAMES.items()}
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str) and node["$ref"] in refs:
                node["$ref"] = refs[node["$ref"]]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def install(app: FastAPI) -> None:
    """Replace the app's OpenAPI generator with one that documents what FastAPI cannot see.

    The spec bodies (read by hand from YAML or JSON), the problem+json errors
    every route may answer, and the server's own limits on query values are
    added once, on first request, and cached on the app.
    """
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description,
                          routes=app.routes)
        components = doc.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in _component_schemas().items():
            components.setdefault(name, schema)
        _request_spec(components)
        _query_rules(doc, getattr(app.state, "settings", None))
        for item in doc.get("paths", {}).values():
            for method, op in item.items():
                guarded = op.setdefault("responses", {})
                guarded.setdefault("400", {"description": "Not a valid HTTP/1.1 request "
                                           "(a malformed request line or header)"})
                guarded.setdefault("421", {"description": "Host not served here "
                                           "(configspec serve --allowed-host)"})
                guarded.setdefault("431", {"description": "Request line and headers over "
                                           "16 KiB (a long query string)"})
                if method.upper() not in ("GET", "HEAD", "OPTIONS"):
                    guarded.setdefault("403", {"description": "Cross-origin write from a "
                                               "browser (configspec serve --allow-origin)"})
                for code, response in op.get("responses", {}).items():
                    if code[:1] in ("4", "5"):
                        response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
        for name in FASTAPI_ERROR_MODELS:
            components.pop(name, None)
        _rename_schemas(doc)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
