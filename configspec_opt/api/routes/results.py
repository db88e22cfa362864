"""GET /v1/results/{id}: a stored solve or Pareto answer (the `Content-Location` of one)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from configspec_opt.api.deps import DbDep
from configspec_opt.api.openapi import errors
from configspec_opt.api.problem import ApiProblem
from configspec_opt.api.schemas import ResultOut
from configspec_opt.store import repo

router = APIRouter(prefix="/v1/results", tags=["results"])


@router.get("/{result_id}", responses=errors(401, 404, 422))
def get_result(db: DbDep, result_id: Annotated[int, Path(ge=1, le=2**62)]) -> ResultOut:
    with db.transaction() as s:
        row = repo.get_result(s, result_id)
        if row is None:
            raise ApiProblem(404, "not-found", "No such result", f"no result {result_id}")
        return ResultOut.model_validate({
            "id": row.id, "kind": row.kind, "spec_sha256": row.spec_sha256,
            "params": row.params, "status": row.status, "created_at": row.created_at,
            "body": row.body})
