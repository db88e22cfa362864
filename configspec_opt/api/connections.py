"""Connections before they are requests: slow or vanished clients cannot hold the server.

uvicorn waits for a request's headers and body as long as a client takes,
and counts every open connection against `limit_concurrency`; 255
connections trickling a header line every few seconds therefore answered
503 to everyone, `/healthz` included and before authentication (the token
is a header, read last).  `configspec serve` runs uvicorn's own h11
protocol with these limits instead (`ConnectionLimits`, from `Settings`):

* `header_timeout_s`: a request's line and headers must arrive within this
  of the connection opening (or the previous answer); then 408 and close.
* `body_timeout_s`: the body, within this of the headers; then 408, close,
  and the request's handling is cancelled.
* `max_client_connections`: connections one client address may hold while
  they are still sending a request or idle between requests ("pending").
  A new one past it closes that address's oldest pending connection (408):
  a client that opens many slow connections only ever pushes out its own,
  and a client that sends its request at once is never the oldest.
* `max_pending_connections`: the same over all addresses together.
* `max_requests`: requests in progress (body being read, answer being
  computed); past it a new one gets 503, except the probes (`/healthz`,
  `/readyz`), which always answer.

A request whose client disconnects before its answer is cancelled, so an
abandoned solve stops at once (its solver process is killed, see
`SolverPool`).  Nothing here reads a header: a slow client is refused
before authentication, and an authenticated request is never slowed by it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from configspec_opt.api.problem import PROBLEM_JSON, TYPE_PREFIX
from configspec_opt.api.settings import ConnectionLimits

log = logging.getLogger("configspec.connections")
PROBES = frozenset({"/healthz", "/readyz"})
WARN_EVERY_S = 60.0


def problem_bytes(status: int, kind: str, title: str, detail: str) -> bytes:
    """A problem+json body, built by hand because no request (and no FastAPI handler) exists yet."""
    return json.dumps({"type": TYPE_PREFIX + kind, "title": title, "status": status,
                       "detail": detail}).encode()


def raw_response(status: int, reason: str, kind: str, detail: str) -> bytes:
    """A whole problem+json answer that closes the connection, written straight to the
    socket (no request, and so no FastAPI handler, may exist yet)."""
    body = problem_bytes(status, kind, reason, detail)
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: {PROBLEM_JSON}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n"
            "x-content-type-options: nosniff\r\ncache-control: no-store\r\n\r\n")
    return head.encode() + body


def timeout_response(detail: str) -> bytes:
    """A whole 408 answer (`raw_response`)."""
    return raw_response(408, "Request Timeout", "request-timeout", detail)


# A refused connection reads on for this long (and at most this much) before it closes,
# so that a client still sending reads the refusal instead of a TCP reset.
LINGER_S = 2.0
LINGER_BYTES = 1 << 20
# h11's limit on a request's line and headers where uvicorn's config sets none (16 KiB)
HEAD_LIMIT_DEFAULT = 16 * 1024


class _Closed:
    """How many connections the limits closed, logged at most every `WARN_EVERY_S`."""

    def __init__(self) -> None:
        self.count = 0
        self.last_warning = 0.0

    def note(self, why: str, client: str) -> None:
        self.count += 1
        log.debug("closed a connection from %s: %s", client, why)
        now = time.monotonic()
        if now - self.last_warning >= WARN_EVERY_S:
            log.warning("slow or excess connections: %d closed so far (latest from %s: %s)",
                        self.count, client, why)
            self.last_warning = now


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with `ConnectionLimits`; one subclass per server
    (`guarded_protocol`), whose class attributes are that server's shared state."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    pending: ClassVar[dict[GuardedH11Protocol, None]] = {}  # oldest first
    closed: ClassVar[_Closed] = _Closed()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit_concurrency = None  # replaced by max_requests, which spares the probes
        self._inner_app = self.app
        self.app = self._guarded_app
        self._phase: str | None = None  # "header" or "body" while the client owes us bytes
        self._phase_bytes = 0
        self._answered = 0
        self._timer: asyncio.TimerHandle | None = None
        self._app_task: asyncio.Task[Any] | None = None
        self._cancelled_here = False
        self._address = ""
        self._lingering: asyncio.TimerHandle | None = None
        self._discarded = 0

    # -- the asyncio.Protocol side ---------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Note the address the per-client limit counts against, and start the header clock."""
        super().connection_made(transport)
        self._address = self.client[0] if self.client else ""
        self._sync()

    def data_received(self, data: bytes) -> None:
        """Count the bytes towards the current phase, then re-check what the client still owes."""
        if self._lingering is not None:  # refused: read and drop what the client still sends
            self._discarded += len(data)
            if self._discarded > LINGER_BYTES:
                self.transport.close()
            return
        self._phase_bytes += len(data)
        super().data_received(data)
        self._sync()

    def on_response_complete(self) -> None:
        """Count the answer (idle keep-alives then close quietly) and restart the header clock."""
        self._answered += 1
        super().on_response_complete()
        self._sync()

    def send_400_response(self, msg: str) -> None:
        """Refuse a request h11 cannot parse so that the client can read the refusal.

        uvicorn writes a plain 400 and closes at once; a client still sending (a URL of
        100 KB, say) then gets a TCP reset instead of the answer, since closing a socket
        with unread data resets it.  Here the answer is problem+json, 431 when the
        request line and headers outgrew h11's buffer, and the connection half-closes
        and reads on (`LINGER_S`, `LINGER_BYTES`) before it closes.
        """
        limit = self.config.h11_max_incomplete_event_size or HEAD_LIMIT_DEFAULT
        if self._phase == "header" and self._phase_bytes > limit:
            answer = raw_response(431, "Request Header Fields Too Large", "header-too-large",
                                  f"the request line and headers exceed {limit // 1024} KiB "
                                  "(a long query string?); send the values in a body")
        else:
            answer = raw_response(400, "Bad Request", "bad-request",
                                  f"not a valid HTTP/1.1 request: {msg}")
        self._leave()
        self.transport.write(answer)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._lingering = asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection; cancel the request's handling if its answer was still unsent."""
        if self._lingering is not None:
            self._lingering.cancel()
        self._leave()
        super().connection_lost(exc)
        if self.cycle is not None and not self.cycle.response_complete:
            self._cancel_app()  # nobody is waiting for the answer any more

    # -- phases: what the client still owes us ------------------------------------
    def _sync(self) -> None:
        if self.transport.is_closing():
            self._leave()
            return
        state = self.conn.their_state
        want = "header" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if want == self._phase:
            return
        if want is None:
            self._leave()
            return
        self._enter(want)

    def _enter(self, phase: str) -> None:
        self._cancel_timer()
        fresh = self._phase is None
        self._phase = phase
        if phase == "header":
            self._phase_bytes = len(self.conn.trailing_data[0])
        timeout = self.limits.header_timeout_s if phase == "header" \
            else self.limits.body_timeout_s
        self._timer = self.loop.call_later(timeout, self._expire)
        if fresh:
            self.pending[self] = None
            self._evict()

    def _leave(self) -> None:
        self._cancel_timer()
        self._phase = None
        self.pending.pop(self, None)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _evict(self) -> None:
        """Past a limit, the oldest pending connection (of this address first) goes."""
        limits = self.limits
        same = [p for p in self.pending if p._address == self._address]
        if len(same) > limits.max_client_connections:
            same[0]._give_up(f"this address has more than {limits.max_client_connections} "
                             "connections still sending a request; the oldest is closed")
        if len(self.pending) > limits.max_pending_connections:
            next(iter(self.pending))._give_up(
                f"the server has more than {limits.max_pending_connections} connections "
                "still sending a request; the oldest is closed")

    def _expire(self) -> None:
        self._timer = None
        if self._phase == "header":
            self._give_up(f"the request line and headers did not arrive within "
                          f"{self.limits.header_timeout_s:g} s")
        elif self._phase == "body":
            self._give_up(f"the request body did not arrive within "
                          f"{self.limits.body_timeout_s:g} s of its headers")

    def _give_up(self, why: str) -> None:
        phase, sent = self._phase, self._phase_bytes
        self._leave()
        if self.transport.is_closing():
            return
        self.closed.note(why, self._address)
        cycle = self.cycle if phase == "body" else None
        idle = phase == "header" and sent == 0 and self._answered > 0
        # an idle keep-alive connection closes quietly: a 408 there could be read as
        # the answer to the next request the client is just sending
        if not idle and not (cycle is not None and cycle.response_started):
            self.transport.write(timeout_response(why))
        if cycle is not None:
            cycle.disconnected = True  # what the app may still send goes nowhere
            cycle.message_event.set()
            self._cancel_app()
        self.transport.close()

    # -- the ASGI side -------------------------------------------------------------
    def _cancel_app(self) -> None:
        task = self._app_task
        if task is not None and not task.done():
            self._cancelled_here = True
            task.cancel()

    async def _guarded_app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._inner_app(scope, receive, send)
            return
        if len(self.tasks) > self.limits.max_requests and scope["path"] not in PROBES:
            await _unavailable(send, f"more than {self.limits.max_requests} requests are "
                               "in progress; retry shortly", 1)
            return
        task = asyncio.current_task()
        self._app_task, self._cancelled_here = task, False
        started = False

        async def send_noting(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._inner_app(scope, receive, send_noting)
        except asyncio.CancelledError:
            # ours (client gone, too slow): nobody to answer; otherwise the server is
            # shutting down and its grace period ran out: say so instead of a traceback
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
            if not self._cancelled_here and not started:
                await _unavailable(send, "the server is shutting down; retry shortly", 5)
        finally:
            if self._app_task is task:
                self._app_task = None


async def _unavailable(send: Any, detail: str, retry_after: int) -> None:
    body = problem_bytes(503, "overloaded", "Service unavailable", detail)
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", PROBLEM_JSON.encode()),
                            (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(retry_after).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A protocol class for one server (`uvicorn.run(..., http=...)`), with its own state."""
    attrs = {"limits": limits, "pending": {}, "closed": _Closed()}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), attrs)
