"""Who may talk to the service: Host names, browser origins, and response headers.

Three ASGI layers, outermost first:

* `SecurityHeaders` puts `X-Content-Type-Options: nosniff` and
  `Cache-Control: no-store` on every answer: results and profiles are
  private data that no proxy or browser cache should keep, and a browser
  must never guess a type other than the one declared.
* CORS (Starlette's), only when origins are configured: the server is
  CORS-off by default, so no page on another origin can read an answer.
* `RequestGuard` refuses a `Host` this server does not answer to (421; a
  missing one is 400) and a write (any method but GET, HEAD, OPTIONS) that
  a browser sent from another origin (403) unless that origin is allowed.

Why Host: a page on `evil.example` whose DNS name is re-pointed at
127.0.0.1 (DNS rebinding) reaches a loopback server as same-origin; its
requests still say `Host: evil.example`, which is refused.  Loopback names
and IP literals cannot be rebound, so they always pass where they can
reach the server; other names must be the bind name, this machine's own
name, or configured (`--allowed-host`, `CONFIGSPEC_ALLOWED_HOSTS`).

Why Origin: browsers add `Origin` to every cross-origin write, and
`Sec-Fetch-Site` to every request; programs (curl, the CLI, the profiler)
send neither, so they are unaffected.  Same-origin writes (the /docs page)
pass.  The checks run only when the app knows where it listens
(`Settings.bind_host`, set by `configspec serve`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from configspec_opt.api.problem import PROBLEM_JSON, ApiProblem
from configspec_opt.api.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"))
ECHO = 80  # characters of a refused Host or Origin echoed back


def split_list(text: str | None) -> tuple[str, ...]:
    """`a.example, b.example c.example` -> the names (settings from the environment)."""
    return tuple(p for p in (text or "").replace(",", " ").split() if p)


def parse_origins(values: Iterable[str]) -> tuple[str, ...]:
    """Configured origins, normalised as browsers send them; ValueError names a bad one."""
    out: list[str] = []
    for value in values:
        normal = "*" if value.strip() == "*" else origin_of(value)
        if normal is None or (normal != "*" and urlsplit(value.strip()).path not in ("", "/")):
            raise ValueError(f"'{value}' is not an origin (scheme://host[:port], e.g. "
                             "https://dashboard.example.com, or *)")
        out.append(normal)
    return tuple(out)


def host_name(header: str) -> str:
    """The host part of a Host header (or of a URL's netloc), lower case, no port."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.rsplit(":", 1)[0]
    return value.rstrip(".")


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return None


def is_loopback_name(name: str) -> bool:
    """Whether a host name or IP literal means this machine only: always served."""
    ip = _ip(name)
    if ip is not None:
        return ip.is_loopback
    return name == "localhost" or name.endswith(".localhost")


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an Origin header, lower case, default ports dropped."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


class HostPolicy:
    """Which Host names this server answers to, from where it listens and what was allowed."""

    def __init__(self, bind_host: str, allowed: Iterable[str]) -> None:
        self.bind = host_name(bind_host)
        self.wildcard = self.bind in WILDCARD_BINDS
        self.names = {host_name(a) for a in allowed if not a.startswith("*.") and a != "*"}
        self.suffixes = tuple(a[1:].lower() for a in allowed if a.startswith("*."))
        self.any = "*" in allowed
        if not is_loopback_name(self.bind):
            self.names |= {self.bind, *self._own_names()}
        self.names.discard("")

    @staticmethod
    def _own_names() -> set[str]:
        """This machine's name (not its FQDN: resolving that can stall start-up on DNS)."""
        return {socket.gethostname().lower().rstrip(".")}

    def allows(self, name: str) -> bool:
        """Whether a Host name (from `host_name`) is served; any IP is, when bound to all."""
        if self.any or is_loopback_name(name) or name in self.names:
            return True
        if self.suffixes and name.endswith(self.suffixes):
            return True
        ip = _ip(name)
        return ip is not None and (self.wildcard or name == self.bind)

    def describe(self) -> str:
        """The served names, short enough for a 421's detail (at most five named)."""
        named = sorted(self.names)
        extra = f", {', '.join(named[:5])}" if named else ""
        ips = "any IP address" if self.wildcard else "its bind address"
        return f"loopback names, {ips}{extra}"


class RequestGuard:
    """Refuses foreign Host headers and cross-origin browser writes before any route runs."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = HostPolicy(settings.bind_host or "127.0.0.1", settings.allowed_hosts)
        self.origins = {o for o in (origin_of(a) for a in settings.allow_origins) if o}
        self.any_origin = "*" in settings.allow_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a refused request with problem+json; pass the rest (and non-HTTP) on."""
        if scope["type"] == "http":
            problem = self.check(scope, Headers(scope=scope))
            if problem is not None:
                response = JSONResponse(problem.body(instance=scope.get("path")),
                                        status_code=problem.status, headers=problem.headers,
                                        media_type=PROBLEM_JSON)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def check(self, scope: Scope, headers: Headers) -> ApiProblem | None:
        """The problem a request must be refused with, or None to serve it.

        Host is checked on every request (a missing one is a 400, a foreign one a
        421); Origin only on unsafe methods, since only writes need guarding
        against pages on other sites.
        """
        raw_host = headers.get("host")
        if not raw_host or not raw_host.strip():
            return ApiProblem(400, "bad-host", "Host header required",
                              "the request has no Host header")
        name = host_name(raw_host)
        if not self.hosts.allows(name):
            return ApiProblem(421, "misdirected-request", "Host not served here",
                              f"this server does not answer to host '{name[:ECHO]}' (it "
                              f"answers to {self.hosts.describe()}); an operator can add the "
                              "name with configspec serve --allowed-host NAME or "
                              "CONFIGSPEC_ALLOWED_HOSTS")
        if scope["method"] in SAFE_METHODS:
            return None
        return self._check_origin(scope, headers, raw_host)

    def _check_origin(self, scope: Scope, headers: Headers, raw_host: str) -> ApiProblem | None:
        origin = headers.get("origin")
        site = (headers.get("sec-fetch-site") or "").lower()
        if origin is None:
            if site in ("cross-site", "same-site"):
                return self._cross_origin("(not sent)")
            return None
        normal = origin_of(origin)
        if self.any_origin or (normal is not None and normal in self.origins):
            return None
        own = origin_of(f"{scope.get('scheme', 'http')}://{raw_host.strip()}")
        if normal is not None and normal == own and site in ("", "same-origin", "none"):
            return None
        return self._cross_origin(origin)

    @staticmethod
    def _cross_origin(origin: str) -> ApiProblem:
        return ApiProblem(403, "cross-origin", "Cross-origin write refused",
                          f"a browser page from origin '{origin[:ECHO]}' may not write to "
                          "this server; an operator can allow it with configspec serve "
                          "--allow-origin ORIGIN or CONFIGSPEC_ALLOW_ORIGINS")


class SecurityHeaders:
    """`nosniff` and `no-store` on every answer (set where a route did not choose its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the missing security headers to the response start; the body passes untouched."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS:
                    if key.decode() not in headers:
                        headers.append(key.decode(), value.decode())
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: ASGIApp, settings: Settings) -> None:
    """Wrap `app` (a FastAPI app) in the layers above, in the order the docstring gives."""
    from fastapi import FastAPI
    from starlette.middleware.cors import CORSMiddleware

    assert isinstance(app, FastAPI)
    if settings.bind_host is not None:
        app.add_middleware(RequestGuard, settings=settings)
    if settings.allow_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.allow_origins),
            allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Location", "Content-Location", "Retry-After"], max_age=600)
    app.add_middleware(SecurityHeaders)
