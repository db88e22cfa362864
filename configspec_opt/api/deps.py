"""FastAPI dependencies, as `Annotated` aliases the routes declare.

The service's state lives on `app.state.service` (built by the lifespan);
these aliases hand routes its parts without globals, so tests can build as
many apps as they like.
"""

from __future__ import annotations

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
    settings: Settings
    db: Database
    pool: SolverPool
    jobs: JobRunner


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_db(service: ServiceDep) -> Database:
    return service.db


DbDep = Annotated[Database, Depends(get_db)]


async def get_body(request: Request, settings: SettingsDep) -> TextBody:
    return await read_text(request, settings.max_body_bytes)


BodyDep = Annotated[TextBody, Depends(get_body)]

bearer = HTTPBearer(auto_error=False, description="The server's CONFIGSPEC_API_TOKEN.")


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
