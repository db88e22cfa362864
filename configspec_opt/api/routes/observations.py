"""POST /v1/observations: what devices and scrapers see of the running fleet (docs/drift.md).

A body is a batch of reports (`drift.observations`: counters as vLLM and
llama-server expose them, draft speed, rtt, verifier step time), read like a
profile upload (JSON or YAML, size-limited, located 422s) and stored in one
transaction: the 200 is sent after the commit.  A counter that went
backwards is a located 422 and nothing of the batch is stored.  A retry
with the same `Idempotency-Key` gets the first answer and adds nothing, so
a lost answer never counts readings twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import weakref
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy.orm import Session

from configspec_opt.api.body import TextBody
from configspec_opt.api.deps import BodyDep, ServiceDep, WriterDep
from configspec_opt.api.openapi import errors, request_body
from configspec_opt.api.problem import ApiProblem, from_error
from configspec_opt.api.routes.profiles import IDEMPOTENCY_KEY, KEY_PATTERN, check_key
from configspec_opt.api.schemas import Out
from configspec_opt.api.tasks import REQUEST_NAME, check_json
from configspec_opt.drift.observations import (
    MAX_BATCH,
    Batch,
    CounterRefused,
    ObservationsIn,
    parse_observations,
)
from configspec_opt.errors import SpecError
from configspec_opt.store import observations as stored
from configspec_opt.store import repo
from configspec_opt.store.database import Database

router = APIRouter(prefix="/v1/observations", tags=["observations"])


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Database, asyncio.Lock] = \
    weakref.WeakKeyDictionary()


def one_writer(db: Database) -> contextlib.AbstractAsyncContextManager[Any]:
    """On SQLite, batches of this process take turns before they open a transaction.

    SQLite has one writer at a time anyway; batches that wait here are woken the
    moment the previous one commits, where waiting on the database's lock sleeps in
    steps of up to 100 ms (measured: 4 concurrent clients stored 1,252 reports/s
    that way, one client 2,791).  PostgreSQL locks only the reporters' rows.
    """
    if db.engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    lock = _SQLITE_WRITERS.get(db)
    if lock is None:
        lock = _SQLITE_WRITERS[db] = asyncio.Lock()
    return lock


class ObservationsOut(Out):
    """What a batch did once committed."""

    stored: int = Field(description="Reports read and stored.")
    configurations: int = Field(description="Configurations (device, target, draft, quant, "
                                "K) the batch added to.")
    series: int = Field(description="Reporters whose counters moved.")


def _parse(body: TextBody) -> Batch:
    check_json(body.text, body.media_type)
    return parse_observations(body.text, REQUEST_NAME)


@router.post("", response_model=ObservationsOut, openapi_extra=request_body(
    ObservationsIn, f"Up to {MAX_BATCH:,} reports; devices send 100 at a time."),
    responses={**errors(400, 401, 413, 415, 422),
               409: {"description": "Idempotency-Key already used for another body"},
               507: {"description": "The store keeps no more configurations or reporters "
                     "(those silent for --keep-days are forgotten)"}})
async def post_observations(
    service: ServiceDep, body: BodyDep, writer: WriterDep,
    idempotency_key: Annotated[str | None, Header(
        alias=IDEMPOTENCY_KEY, min_length=1, max_length=200, pattern=KEY_PATTERN,
        description="Any unique string naming this batch: a retry with the same key and "
        "body gets the first answer again and adds nothing.")] = None,
) -> Any:
    """Store a batch of observations of the running fleet (counters, speeds, rtt, step time)."""
    key = check_key(idempotency_key)
    try:
        batch = await anyio.to_thread.run_sync(_parse, body)
    except SpecError as exc:
        raise from_error(exc, "observations") from None
    scope = writer or ""
    digest = hashlib.sha256(body.text.encode()).hexdigest() if key is not None else ""
    bucket_s = service.settings.drift_bucket_s

    def store(s: Session) -> tuple[dict[str, Any], bool]:
        if key is not None and not repo.remember_response(s, scope, key, digest):
            first = repo.get_remembered(s, scope, key)
            assert first is not None
            if first.request_sha256 != digest:
                raise ApiProblem(409, "idempotency-key-reused", "Idempotency-Key reused",
                                 f"the Idempotency-Key '{key}' was used for another body; "
                                 "use a new key for a new batch")
            return dict(first.response), True
        try:
            done = stored.ingest(s, batch.observations, bucket_s=bucket_s)
        except CounterRefused as exc:
            raise from_error(exc.error(batch.source), "observations") from None
        except stored.Full as exc:
            raise ApiProblem(507, "store-full", "Observation store full", str(exc)) from None
        answer = ObservationsOut(stored=done.observations, configurations=done.configurations,
                                 series=done.series).model_dump(mode="json")
        if key is not None:
            repo.store_response(s, scope, key, 200, answer)
        return answer, False

    async with one_writer(service.db):
        answer, replayed = await service.db.run(store)
    return JSONResponse(answer, headers={"Idempotent-Replayed": "true"} if replayed else None)
