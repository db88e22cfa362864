"""POST /v1/profiles (edge devices push measurements), GET /v1/profiles[/{id}].

Uploads append: nothing is overwritten, and `GET` shows the newest entry per
(device, draft, quant) unless `history=true`.  The 201 is sent after the
commit, so a profile the device saw acknowledged is on disk.

A device that retries (its answer was lost, or the replica died before
answering) sends the same `Idempotency-Key` header: the retry, through any
replica, gets the first answer again (`Idempotent-Replayed: true`) and
nothing new is stored.  The key and the profiles commit in one transaction.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from configspec_opt.api.deps import BodyDep, DbDep, WriterDep
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
    """Filter and page of `GET /v1/profiles`; unknown parameters are refused."""

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
                                      "profile": r.data,
                                      "token_fingerprint": r.token_fingerprint})


IDEMPOTENCY_KEY = "Idempotency-Key"
KEY_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))
KEY_PATTERN = r"^[!-~]+$"  # visible ASCII, as KEY_CHARS


def check_key(key: str | None) -> str | None:
    """The Idempotency-Key when given and well formed (1 to 200 visible ASCII), else a 422."""
    if key is None:
        return None
    if not 1 <= len(key) <= 200 or not set(key) <= KEY_CHARS:
        raise ApiProblem(422, "invalid-request", "Invalid Idempotency-Key",
                         "the Idempotency-Key header must be 1 to 200 visible ASCII characters "
                         "(a UUID is a good choice)")
    return key


@router.post("", status_code=201, response_model=ProfilesOut, openapi_extra=request_body(
    ProfilesIn, "Profile entries, as `configspec profile --push` sends them."),
    responses={**errors(400, 401, 413, 415, 422),
               409: {"description": "Idempotency-Key already used for another body"}})
async def push_profiles(
    db: DbDep, body: BodyDep, writer: WriterDep,
    idempotency_key: Annotated[str | None, Header(
        alias=IDEMPOTENCY_KEY, min_length=1, max_length=200, pattern=KEY_PATTERN,
        description="Any unique string (a UUID) naming this upload: "
        "a retry with the same key and body gets the first answer again and stores nothing "
        "new; the same key with another body is a 409.")] = None,
) -> Any:
    """Store profile entries measured on an edge device, with the writing token's fingerprint."""
    key = check_key(idempotency_key)
    try:
        entries = await anyio.to_thread.run_sync(parse_upload, body.text, body.media_type)
    except SpecError as exc:
        raise from_error(exc, "profiles") from None
    scope = writer or ""
    digest = hashlib.sha256(body.text.encode()).hexdigest()

    def store(s: Session) -> tuple[int, dict[str, Any], bool]:
        if key is not None and not repo.remember_response(s, scope, key, digest):
            first = repo.get_remembered(s, scope, key)
            assert first is not None
            if first.request_sha256 != digest:
                raise ApiProblem(409, "idempotency-key-reused", "Idempotency-Key reused",
                                 f"the Idempotency-Key '{key}' was used for another body; "
                                 "use a new key for a new upload")
            return first.status, dict(first.response), True
        out = ProfilesOut(profiles=[_out(r) for r in repo.add_profiles(s, entries, writer)])
        answer = out.model_dump(mode="json")
        if key is not None:
            repo.store_response(s, scope, key, 201, answer)
        return 201, answer, False

    status, answer, replayed = await db.run(store)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(answer, status_code=status, headers=headers)


@router.get("", responses=errors(401, 422))
def list_profiles(db: DbDep, q: Annotated[ProfileQuery, Query()]) -> ProfilesOut:
    """Stored profiles, filtered by device, draft and quant."""
    with db.transaction() as s:
        rows = repo.find_profiles(s, device=q.device, draft=q.draft, quant=q.quant,
                                  history=q.history, limit=q.limit, offset=q.offset)
        return ProfilesOut(profiles=[_out(r) for r in rows])


@router.get("/{profile_id}", responses=errors(401, 404, 422))
def get_profile(db: DbDep, profile_id: Annotated[int, Path(ge=1, le=2**62)]) -> ProfileOut:
    """One stored profile upload entry by its id, whether or not it is still the newest."""
    with db.transaction() as s:
        row = repo.get_profile(s, profile_id)
        if row is None:
            raise ApiProblem(404, "not-found", "No such profile", f"no profile {profile_id}")
        return _out(row)
