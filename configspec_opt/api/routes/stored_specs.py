"""GET /v1/specs[/{sha256}]: the specs this server has stored, to reopen one.

Solves, Pareto runs and jobs store the spec they were given, by the SHA-256
the CLI also prints; the web page lists them so that a spec solved earlier
(or by a colleague, with the same token) can be reopened and changed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from configspec_opt.api.deps import DbDep
from configspec_opt.api.openapi import errors
from configspec_opt.api.problem import ApiProblem
from configspec_opt.api.schemas import UtcDatetime
from configspec_opt.store import repo

router = APIRouter(prefix="/v1/specs", tags=["specs"])
Sha256 = Annotated[str, Path(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")]


class StoredSpecSummary(BaseModel):
    """A stored spec without its text; specs are stored by the SHA-256 of that text."""

    model_config = ConfigDict(extra="forbid")

    sha256: str
    name: str
    received_at: UtcDatetime
    characters: int = Field(description="Length of the spec's text.")


class StoredSpecsOut(BaseModel):
    """One page of stored specs, newest first."""

    model_config = ConfigDict(extra="forbid")

    specs: list[StoredSpecSummary]
    total: int = Field(description="Stored specs in all (for paging).")


class StoredSpecOut(StoredSpecSummary):
    """A stored spec with its text, byte for byte as it was sent."""

    text: str = Field(description="The spec exactly as it was received.")


class SpecsQuery(BaseModel):
    """Page of `GET /v1/specs`; unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000_000)


@router.get("", responses=errors(401, 422))
def list_specs(db: DbDep, q: Annotated[SpecsQuery, Query()]) -> StoredSpecsOut:
    """Stored specs, newest first, without their text."""
    with db.transaction() as s:
        rows, total = repo.list_specs(s, limit=q.limit, offset=q.offset)
    return StoredSpecsOut(specs=[StoredSpecSummary.model_validate(
        {"sha256": sha, "name": name, "received_at": at, "characters": n})
        for sha, name, at, n in rows], total=total)


@router.get("/{sha256}", responses=errors(401, 404, 422))
def get_spec(db: DbDep, sha256: Sha256) -> StoredSpecOut:
    """One stored spec with its text."""
    with db.transaction() as s:
        row = repo.get_spec(s, sha256)
        if row is None:
            raise ApiProblem(404, "not-found", "No such spec", f"no stored spec {sha256}")
        return StoredSpecOut.model_validate({
            "sha256": row.sha256, "name": row.name, "received_at": row.received_at,
            "characters": len(row.text), "text": row.text})
