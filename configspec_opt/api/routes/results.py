"""GET /v1/results/{id}: a stored solve or Pareto answer (the `Content-Location` of one).

Ids are 32 random hex digits, not row numbers: knowing one result's id
tells nothing about another's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from configspec_opt.api.deps import DbDep
from configspec_opt.api.openapi import errors
from configspec_opt.api.problem import ApiProblem
from configspec_opt.api.schemas import ResultOut
from configspec_opt.store import repo

router = APIRouter(prefix="/v1/results", tags=["results"])
ResultId = Annotated[str, Path(min_length=32, max_length=32, pattern="^[0-9a-f]{32}$")]


@router.get("/{result_id}", responses=errors(401, 404, 422))
def get_result(db: DbDep, result_id: ResultId) -> ResultOut:
    """A recorded solve or Pareto result, as it was answered (a job's `result_url` points here)."""
    with db.transaction() as s:
        row = repo.find_result(s, result_id)
        if row is None:
            raise ApiProblem(404, "not-found", "No such result", f"no result {result_id}")
        return ResultOut.model_validate({
            "id": row.public_id, "kind": row.kind, "spec_sha256": row.spec_sha256,
            "params": row.params, "status": row.status, "created_at": row.created_at,
            "body": row.body})
