"""FastAPI dependencies, as `Annotated` aliases the routes declare.

The service's state lives on `app.state.service` (built by the lifespan);
these aliases hand routes its parts without globals, so tests can build as
many apps as they like.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from configspec_opt.api.body import TextBody, read_text
from configspec_opt.api.pool import SolverPool
from configspec_opt.api.problem import ApiProblem
from configspec_opt.api.settings import Settings
from configspec_opt.store.database import Database

if TYPE_CHECKING:
    from configspec_opt.api.job_runner import JobRunner


@dataclass
class Service:
    """What the lifespan builds and every route shares: settings, store, solver pool, job runner."""

    settings: Settings
    db: Database
    pool: SolverPool
    jobs: JobRunner


def get_service(request: Request) -> Service:
    """The running app's `Service`; only valid once the lifespan has started."""
    service: Service = request.app.state.service
    return service


def get_settings(request: Request) -> Settings:
    """The app's settings; available before the lifespan runs (unlike `get_service`)."""
    settings: Settings = request.app.state.settings
    return settings


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_db(service: ServiceDep) -> Database:
    """The store, for routes that need nothing else of the service."""
    return service.db


DbDep = Annotated[Database, Depends(get_db)]


async def get_body(request: Request, settings: SettingsDep) -> TextBody:
    """The request body as text, within this server's --max-body (see `read_text`)."""
    return await read_text(request, settings.max_body_bytes)


BodyDep = Annotated[TextBody, Depends(get_body)]

bearer = HTTPBearer(auto_error=False, description="The server's CONFIGSPEC_API_TOKEN.")


REPEATABLE_QUERY = frozenset({"device"})


def single_valued_query(request: Request) -> None:
    """A query parameter that takes one value, given twice, is a 422.

    FastAPI would keep the last value silently: `?draft=a&draft=b` would
    filter by `b` alone, an answer to a question nobody asked.
    """
    counts: dict[str, int] = {}
    for name, _ in request.query_params.multi_items():
        counts[name] = counts.get(name, 0) + 1
    repeated = sorted(n for n, c in counts.items() if c > 1 and n not in REPEATABLE_QUERY)
    if repeated:
        errors = [{"message": f"given {counts[n]} times; it takes one value",
                   "path": f"query.{n[:80]}"} for n in repeated[:20]]
        raise ApiProblem(422, "invalid-request", "Invalid request",
                         "; ".join(f"{e['path']}: {e['message']}" for e in errors)
                         + " (only device repeats)", errors=errors)


def token_fingerprint(token: str) -> str:
    """First 12 hex digits of SHA-256: tells tokens apart in the store without keeping one."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def get_writer(request: Request, settings: SettingsDep) -> str | None:
    """Fingerprint of the token that authorised this request (None when none is set).

    Read from the header, not through `bearer`: that would put a security
    scheme into the OpenAPI document of a server that has no token.
    """
    if settings.token is None:
        return None
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return token_fingerprint(given.strip()) if scheme.lower() == "bearer" and given else None


WriterDep = Annotated[str | None, Depends(get_writer)]


def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Constant-time comparison with the configured token (only installed when one is set)."""
    if settings.token is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not secrets.compare_digest(given.encode(), settings.token.encode()):
        raise ApiProblem(401, "unauthorized", "Unauthorized",
                         "send 'Authorization: Bearer <token>' with the server's "
                         "CONFIGSPEC_API_TOKEN" if credentials is None else
                         "the bearer token is not this server's",
                         headers={"WWW-Authenticate": 'Bearer realm="configspec"'})
