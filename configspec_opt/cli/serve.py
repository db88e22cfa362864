"""`configspec serve`: the HTTP service (FastAPI on uvicorn).

FastAPI, uvicorn and SQLAlchemy are imported inside the command, so
`configspec --help` stays fast and an edge install without the server
extra still has a working CLI.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Annotated

import typer

from configspec_opt.cli.app import app, err, require_db_driver, require_extra, user_errors
from configspec_opt.cli.options import (
    MAX_DAYS,
    MAX_TIME_LIMIT_S,
    Bounds,
    DbOpt,
    JobAttemptsOpt,
    JobLeaseOpt,
    LogLevel,
    LogLevelOpt,
)
from configspec_opt.errors import ServerUnavailableError, UsageError

DEFAULT_PORT = 8765
SECONDS = Bounds(min=0.01, max=MAX_TIME_LIMIT_S, unit="seconds")
SERVER_MODULES = ("uvicorn", "fastapi", "sqlalchemy", "alembic", "platformdirs", "pyomo",
                  "highspy", "numpy")
"""What `configspec serve` imports from the server extra, which includes the solver's (its
worker processes refuse to start without it); httpx is for clients and tests."""
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]i?[bB]?|[bB])?\s*$")
UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 * 1024}


def parse_size(text: str) -> int:
    """`4194304`, `512KiB`, `4MiB`, `4M` -> bytes."""
    m = SIZE.match(text)
    if not m:
        raise UsageError(f"cannot read size '{text}' (e.g. 4MiB, 512KiB, 1048576)")
    return int(float(m.group(1)) * UNITS[(m.group(2) or "")[:1].lower()])


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback
                               for i in infos)


def check_exposure(host: str, token: str | None, allow_remote: bool) -> None:
    """Without a token, only this machine may talk to the server, unless told otherwise."""
    if token is None and not is_loopback(host) and not allow_remote:
        raise UsageError(
            f"refusing to listen on {host} without authentication: set CONFIGSPEC_API_TOKEN "
            "(clients then send 'Authorization: Bearer <token>'), or pass --allow-remote "
            "to serve anyone who can reach this address")


def log_to_stderr(level: str) -> None:
    """The service's own loggers (jobs, errors with their ids) beside uvicorn's."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    logger = logging.getLogger("configspec")
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = DEFAULT_PORT,
    db: DbOpt = None,
    workers: Annotated[int, typer.Option(min=1, help="Solver processes.")]
    = min(2, os.cpu_count() or 1),
    backlog: Annotated[int, typer.Option(
        min=0, help="Requests that may wait for a solver process before 503.")] = 4,
    max_body: Annotated[str, typer.Option(help="Largest request body (e.g. 4MiB).")] = "4MiB",
    time_limit: Annotated[float, typer.Option(
        parser=SECONDS, help="Default solver seconds of a synchronous request.")] = 10.0,
    max_time_limit: Annotated[float, typer.Option(
        parser=SECONDS, help="Largest time_limit a synchronous request may ask for.")] = 60.0,
    job_time_limit: Annotated[float, typer.Option(
        parser=SECONDS, help="Default solver seconds of a job.")] = 300.0,
    max_job_time_limit: Annotated[float, typer.Option(
        parser=SECONDS, help="Largest time_limit a job may ask for.")] = 3600.0,
    max_jobs: Annotated[int, typer.Option(
        min=1, help="Unfinished jobs before POST /v1/jobs answers 429.")] = 100,
    embedded_workers: Annotated[bool, typer.Option(
        "--embedded-workers/--no-embedded-workers", envvar="CONFIGSPEC_EMBEDDED_WORKERS",
        help="Solve jobs in this server too (one machine); off: HTTP only, jobs are solved "
        "by `configspec worker`s.")] = True,
    job_lease: JobLeaseOpt = 30.0,
    job_attempts: JobAttemptsOpt = 3,
    allow_remote: Annotated[bool, typer.Option(
        "--allow-remote", help="Listen beyond loopback even without CONFIGSPEC_API_TOKEN.")]
    = False,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", envvar="CONFIGSPEC_ALLOWED_HOSTS", help="A Host name clients may "
        "use besides loopback names, the bind address and this machine's name (repeatable; "
        "*.example.com for subdomains); others get 421.")] = None,
    allow_origin: Annotated[list[str] | None, typer.Option(
        "--allow-origin", envvar="CONFIGSPEC_ALLOW_ORIGINS", help="A browser origin "
        "(https://host[:port]) allowed to write and to read answers (CORS; repeatable). "
        "Default: none, cross-origin writes get 403.")] = None,
    keep_days: Annotated[float, typer.Option(
        parser=Bounds(min=0, max=MAX_DAYS, unit="days"),
        help="Delete finished jobs and results older than this many days (0: never).")]
    = 30.0,
    keep_results: Annotated[int, typer.Option(
        min=0, help="Keep at most this many results and finished jobs (0: no limit).")]
    = 100_000,
    header_timeout: Annotated[float, typer.Option(
        parser=Bounds(min=0.1, max=MAX_TIME_LIMIT_S, unit="seconds"),
        help="Seconds a client may take to send a request's line and headers (from "
        "connecting, or from the previous answer); then 408.")] = 10.0,
    body_timeout: Annotated[float, typer.Option(
        parser=Bounds(min=0.1, max=MAX_TIME_LIMIT_S, unit="seconds"),
        help="Seconds a client may take to send a request's body; then 408.")] = 60.0,
    max_client_connections: Annotated[int, typer.Option(
        min=1, help="Connections one client address may hold while still sending a request "
        "(or idle); a new one closes its oldest (408).")] = 32,
    max_pending_connections: Annotated[int, typer.Option(
        min=1, help="The same, all addresses together.")] = 512,
    max_requests: Annotated[int, typer.Option(
        min=1, help="Requests in progress before new ones get 503 (/healthz and /readyz "
        "always answer).")] = 256,
    watch: Annotated[Path | None, typer.Option(
        "--watch", help="A lock to check observations against (GET /v1/drift; its spec "
        "beside it; docs/drift.md).")] = None,
    drift_window: Annotated[float, typer.Option(
        parser=Bounds(min=60, max=30 * 86_400, unit="seconds"),
        help="Judge drift on the observations of this many seconds.")] = 3600.0,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    log_level: LogLevelOpt = LogLevel.info,
) -> None:
    """Serve validate / evaluate / solve / pareto, profiles and jobs over HTTP (docs at /docs)."""
    with user_errors():
        # all of them now: FastAPI is imported by create_app, Alembic, Pyomo and HiGHS at the
        # server's start-up, platformdirs for the default database: too late for a clean exit 3
        require_extra(ServerUnavailableError, "`configspec serve`", *SERVER_MODULES)
        import uvicorn

        from configspec_opt.api import create_app
        from configspec_opt.api.connections import guarded_protocol
        from configspec_opt.api.guard import parse_origins, split_list
        from configspec_opt.api.settings import Settings, token_from_env
        from configspec_opt.store.engine import describe_url, resolve_db_url

        token = token_from_env()
        check_exposure(host, token, allow_remote)
        if watch is not None:
            from configspec_opt.drift.watch import load_watched

            load_watched(watch)  # a lock that cannot be read stops the start (exit 2)
        url = resolve_db_url(db)
        require_db_driver(url, "`configspec serve`")
        try:
            settings = Settings(
                db_url=url, token=token, workers=workers, backlog=backlog,
                max_body_bytes=parse_size(max_body), default_time_limit=time_limit,
                max_time_limit=max_time_limit, job_time_limit=job_time_limit,
                max_job_time_limit=max_job_time_limit, max_pending_jobs=max_jobs,
                embedded_workers=embedded_workers, job_lease_s=job_lease,
                max_job_attempts=job_attempts,
                bind_host=host, allowed_hosts=split_list(" ".join(allowed_host or [])),
                allow_origins=parse_origins(split_list(" ".join(allow_origin or []))),
                keep_days=keep_days or None, keep_results=keep_results or None,
                header_timeout=header_timeout, body_timeout=body_timeout,
                max_client_connections=max_client_connections,
                max_pending_connections=max_pending_connections, max_requests=max_requests,
                watch_lock=str(watch.resolve()) if watch is not None else None,
                drift_window_s=drift_window)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        scheme = "https" if ssl_certfile else "http"
        auth = "bearer token" if token else "none"
        err.print(f"configspec serve: {scheme}://{host}:{port} (API docs at /docs), "
                  f"database {describe_url(url)}, {workers} solver process"
                  f"{'es' if workers > 1 else ''}, auth: {auth}", markup=False)
        log_to_stderr(log_level.value)
        if token and not ssl_certfile and not is_loopback(host):
            err.print("warning: the bearer token crosses the network in clear text; use "
                      "--ssl-certfile/--ssl-keyfile or a TLS proxy", markup=False)
        # slow clients and request counts: our h11 protocol (api/connections.py), which
        # unlike limit_concurrency spares the probes and never counts a slow client's
        # connection against everyone else's requests
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level.value,
                    http=guarded_protocol(settings.connection_limits()),
                    limit_concurrency=None, timeout_graceful_shutdown=10, server_header=False,
                    ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                    ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None)
