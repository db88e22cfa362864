"""POST /v1/profiles (edge devices push measurements), GET /v1/profiles[/{id}].

Uploads append: nothing is overwritten, and `GET` shows the newest entry per
(device, draft, quant) unless `history=true`.  The 201 is sent after the
commit, so a profile the device saw acknowledged is on disk.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from configspec_opt.api.deps import BodyDep, DbDep
from configspec_opt.api.openapi import errors, request_body
from configspec_opt.api.problem import ApiProblem, from_error
from configspec_opt.api.profile_upload import parse_upload
from configspec_opt.api.schemas import ProfileOut, ProfilesIn, ProfilesOut
from configspec_opt.errors import SpecError
from configspec_opt.store import repo
from configspec_opt.store.models import ProfileRecord

router = APIRouter(prefix="/v1/profiles", tags=["profiles"])
Name = Annotated[str, Field(min_length=1, max_length=200)]


class ProfileQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: Name | None = None
    draft: Name | None = None
    quant: Name | None = None
    history: bool = Field(False, description="Every upload, newest first, instead of the "
                          "newest entry per (device, draft, quant).")
    limit: int = Field(100, ge=1, le=10_000)
    offset: int = Field(0, ge=0, le=1_000_000_000)


def _out(r: ProfileRecord) -> ProfileOut:
    return ProfileOut.model_validate({"id": r.id, "received_at": r.received_at,
                                      "profile": r.data})


@router.post("", status_code=201, openapi_extra=request_body(
    ProfilesIn, "Profile entries, as `configspec profile --push` sends them."),
    responses=errors(400, 401, 413, 415, 422))
async def push_profiles(db: DbDep, body: BodyDep) -> ProfilesOut:
    """Store profile entries measured on an edge device."""
    try:
        entries = await anyio.to_thread.run_sync(parse_upload, body.text, body.media_type)
    except SpecError as exc:
        raise from_error(exc, "profiles") from None
    rows = await db.run(lambda s: repo.add_profiles(s, entries))
    return ProfilesOut(profiles=[_out(r) for r in rows])


@router.get("", responses=errors(401, 422))
def list_profiles(db: DbDep, q: Annotated[ProfileQuery, Query()]) -> ProfilesOut:
    """Stored profiles, filtered by device, draft and quant."""
    with db.transaction() as s:
        rows = repo.find_profiles(s, device=q.device, draft=q.draft, quant=q.quant,
                                  history=q.history, limit=q.limit, offset=q.offset)
        return ProfilesOut(profiles=[_out(r) for r in rows])


@router.get("/{profile_id}", responses=errors(401, 404, 422))
def get_profile(db: DbDep, profile_id: Annotated[int, Path(ge=1, le=2**62)]) -> ProfileOut:
    with db.transaction() as s:
        row = repo.get_profile(s, profile_id)
        if row is None:
            raise ApiProblem(404, "not-found", "No such profile", f"no profile {profile_id}")
        return _out(row)
