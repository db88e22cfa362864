"""POST /v1/validate, /v1/evaluate, /v1/solve, /v1/pareto and GET /v1/schema.

Bodies are specs (YAML or JSON); answers are the CLI's `--json` output.
A solve or Pareto run is recorded (spec by hash, result by id) before the
answer goes out, and `Content-Location` names the stored result.  An
infeasible spec is a 200 with `status: infeasible` and the diagnosis: it is
an answer to the question asked, not an error of the request.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from configspec_opt.api.deps import BodyDep, ServiceDep
from configspec_opt.api.dispatch import (
    RECORDED,
    compute,
    record,
    recorded_params,
    stored_profiles,
    time_limit_for,
)
from configspec_opt.api.openapi import errors, request_body
from configspec_opt.api.params import (
    EvaluateParams,
    Op,
    OpParams,
    ParetoParams,
    SolveParams,
    ValidateParams,
)
from configspec_opt.api.schemas import EvaluateOut, ParetoOut, SolveOut, ValidateOut
from configspec_opt.spec import Spec
from configspec_opt.store import repo

router = APIRouter(prefix="/v1", tags=["specs"])

SPEC_BODY = request_body(Spec, "A deployment spec, as `configspec validate` reads it. "
                         "`profiles_from` is refused: send profiles inline, or use "
                         "`profiles=stored`.")
SPEC_ERRORS = errors(400, 401, 413, 415, 422, 503, 504)


async def _answer(service: ServiceDep, op: Op, body: BodyDep, params: OpParams,
                  time_limit: float | None) -> JSONResponse:
    stored = await stored_profiles(service.db, params)
    outcome = await compute(service.pool, op, body.text, body.media_type, params, time_limit,
                            stored)
    headers: dict[str, str] = {}
    if op in RECORDED:
        data = recorded_params(params, time_limit)
        public_id = await service.db.run(
            lambda s: repo.result_public_id(s, record(s, op, body.text, outcome, data)))
        headers["Content-Location"] = f"/v1/results/{public_id}"
    return JSONResponse(outcome["body"], headers=headers)


def _limit(service: ServiceDep, requested: float | None) -> float:
    s = service.settings
    return time_limit_for(requested, s.default_time_limit, s.max_time_limit,
                          hint="submit a job (POST /v1/jobs) for longer solves")


@router.post("/validate", openapi_extra=SPEC_BODY,
             responses={200: {"model": ValidateOut}, **SPEC_ERRORS})
async def validate(service: ServiceDep, body: BodyDep,
                   params: Annotated[ValidateParams, Query()]) -> JSONResponse:
    """Check a spec: syntax, types, unknown keys, references (`configspec validate --json`)."""
    return await _answer(service, Op.validate, body, params, None)


@router.post("/evaluate", openapi_extra=SPEC_BODY,
             responses={200: {"model": EvaluateOut}, **SPEC_ERRORS})
async def evaluate(service: ServiceDep, body: BodyDep,
                   params: Annotated[EvaluateParams, Query()]) -> JSONResponse:
    """Metrics of every candidate configuration per device (`configspec evaluate --json`)."""
    return await _answer(service, Op.evaluate, body, params, None)


@router.post("/solve", openapi_extra=SPEC_BODY,
             responses={200: {"model": SolveOut}, **SPEC_ERRORS})
async def solve(service: ServiceDep, body: BodyDep,
                params: Annotated[SolveParams, Query()]) -> JSONResponse:
    """Choose (draft, quant, K, target) for every pool (`configspec solve --json`)."""
    return await _answer(service, Op.solve, body, params, _limit(service, params.time_limit))


@router.post("/pareto", openapi_extra=SPEC_BODY,
             responses={200: {"model": ParetoOut}, **SPEC_ERRORS})
async def pareto(service: ServiceDep, body: BodyDep,
                 params: Annotated[ParetoParams, Query()]) -> JSONResponse:
    """Non-dominated trade-offs between two fleet metrics (`configspec pareto --json`).

    `time_limit` covers the whole front; a front cut short says so (`complete: false`).
    """
    return await _answer(service, Op.pareto, body, params, _limit(service, params.time_limit))


@router.get("/schema", responses=errors(401))
def schema() -> dict[str, Any]:
    """The spec's JSON Schema (`configspec schema`)."""
    from configspec_opt.operations import spec_schema

    return spec_schema()
