"""T(b, K): the latency of one verification request in a step of b, measured.

`configspec profile-verifier` runs this against any OpenAI-compatible server with prompt
caching (llama.cpp's llama-server; vLLM or SGLang on a GPU, see docs/verifier.md).

**The work of one request is exactly a verification round.**  Each of b concurrent clients
holds its own context (a distinct prefix of ``context_tokens`` tokens, cached by the server
once, before timing), and every request sends that context extended by K *new* tokens and
asks for one token (``max_tokens: 1``, greedy, ``cache_prompt``): the server evaluates the K
drafted tokens against the cached context and returns the next token - what a target does
with K drafts.  Prompts are token ids (exact K) where the server takes them; the ids come
from the server's own ``/tokenize`` of the bundled prompt texts.

**b requests are verified together.**  Each client sends request after request on its own
keep-alive connection, and the b clients start every request together (a barrier): the
server verifies them in one step, so T(b, K) is the time of a step of b requests, what the
load model reads (`configspec_opt.verifier_load`: a fleet's request waits for the step in
progress, then runs in the next).  Clients that each send as soon as their last answer came
drift into alternating steps of fewer requests, and the cell would time two half steps.
A request is timed only if it started after every client finished its warm-up request and
ended before the stop signal.  Per cell: the median, IQR/median (of the server's times
where it reports them, see below), and the requests behind it; the cell stops once the
median's relative standard error (0.93 * IQR/median / sqrt(requests / b)) is at most
``precision``, or at
``max_requests`` / ``max_time_s`` (with a warning).

**The step as the server timed it.**  Sent together, the b requests of a cell are
encoded, sent and parsed one after another (by the clients and the server's HTTP threads),
so the last of 16 reaches the step up to tens of ms after the first; a fleet's requests,
arriving spread out, are handled while the previous step runs.  Where the server times its
own work (llama-server's ``timings``: prompt and generation ms), a cell's value is the
median of the server's times plus the least time any request of the cell spent outside
them (client, HTTP, wire: one request's handling, unqueued) - `Cell.value`.  At b = 1 that
is the client's latency; at b = 16 it was 3-8 % below it here.  llama-server reports
``timings`` on both of its routes; a server that does not (vLLM, SGLang) gets the client's
median latency.  ``clock`` in the provenance says which.

**A burst the server split.**  llama-server starts a step as soon as its first request is
in, so a burst whose last requests arrive a moment later runs as two steps, and the later
requests' own times are a smaller step's: read by the server's clock, the cell would be
low.  Such a request waited a whole step at the server, which its latency minus its server
time shows; its burst is left out (`split_bursts`).  Where most bursts split, the server is
not running b requests as one step, and the cell is the time until a burst's last answer
instead (about b x T(1) on a server that runs one request at a time; the not-batching check
reads the server's clock for that, `serial_ratio`).  Sending every request's last byte
together did not help: it split more bursts here (2-5 of 35 at b = 2, against 0 without).

**What the server saw.**  llama-server with ``--metrics`` counts busy slots at each decode:
the mean over a cell is the batch the server actually formed (``observed_batch``); without
metrics ``/slots`` is sampled.  llama-server also reports the prompt tokens it evaluated
per request (``processed_tokens``, K + 1 when the cache works: column K of the table is the
work of a real round, the previous round's bonus token plus K drafted tokens).

**Where the requests sit.**  llama-server keeps one KV stream per slot, and a decode step
attends over the whole range of streams its requests touch: 8 requests on slots 0, 2, .., 14
took 215 ms per step here, on slots 0..7 158-181 ms.  A fleet's clients land on any slot, so
on a llama-server the b clients of a cell are pinned (``id_slot``) to slots spread evenly
over all of the server's slots (`spread_slots`), the span a fleet's steps have; a table
measured on adjacent slots was up to 37 % optimistic for a fleet.

Stdlib only (http.client + threads): no llama_cpp, no Pyomo, no FastAPI.
"""

from __future__ import annotations

import http.client
import json
import math
import random
import statistics
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

from profiler.errors import EndpointError, ProfilerError
from profiler.prompts import bundled_prompts

LatencyTable = dict[int, dict[int, float]]

# keys of the provenance that say *what* was measured: a table is resumed only when
# every one of them is unchanged
IDENTITY_KEYS = ("endpoint", "server", "model", "api", "context_tokens", "protocol")
# How cells are timed (module doc); a table timed otherwise is measured afresh, not resumed.
PROTOCOL = "steps of b sent together, spread slots, server clock, split bursts left out"
NOT_BATCHING_FACTOR = 0.9
OBSERVED_BATCHING = 1.2  # mean requests per decode above which a server batches
# A burst's time over the sum of its requests' server times above which they ran one after
# another: ~1 on a server that serialises, ~1/b (one shared step) on one that batches.
SERIAL_RATIO = 0.75
_SE_FACTOR = 0.93  # se(median) ~ 1.2533 * sigma / sqrt(n), sigma ~ IQR / 1.349
NOT_BATCHING_MESSAGE = ("the server does not seem to batch concurrent requests (--parallel?): "
                        "T(b)/T({b0}) >= {f:g}*b/{b0} at every b")


class NotBatchingError(ProfilerError):
    """Latency grows linearly with the requests in flight: the server serialises them."""


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Endpoint:
    """``http://host:port`` (a trailing ``/v1`` is accepted and dropped)."""

    url: str
    scheme: str
    host: str
    port: int
    base: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Read a user's --endpoint; EndpointError for anything but http(s)://host[:port][/path]."""
        u = urllib.parse.urlsplit(url.strip())
        if u.scheme not in ("http", "https") or not u.hostname:
            raise EndpointError(f"--endpoint {url!r}: write http://host:port")
        base = u.path.rstrip("/")
        if base.endswith("/v1"):
            base = base[:-3]
        try:
            port = u.port or (443 if u.scheme == "https" else 80)
        except ValueError:
            raise EndpointError(f"--endpoint {url!r}: bad port") from None
        clean = f"{u.scheme}://{u.netloc}{base}"
        return cls(clean, u.scheme, u.hostname, port, base)

    def connect(self, timeout_s: float) -> http.client.HTTPConnection:
        """A new, not yet opened connection; `timeout_s` bounds each socket operation."""
        cls = (http.client.HTTPSConnection if self.scheme == "https"
               else http.client.HTTPConnection)
        return cls(self.host, self.port, timeout=timeout_s)


def _one_line(raw: bytes | str, n: int = 160) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = " ".join(text.split())
    return text[:n] + ("..." if len(text) > n else "")


class Conn:
    """One keep-alive connection; every failure becomes a one-line `EndpointError`."""

    def __init__(self, ep: Endpoint, timeout_s: float) -> None:
        self.ep = ep
        self.timeout_s = timeout_s
        self._c: http.client.HTTPConnection | None = None

    def close(self) -> None:
        """Drop the connection; the next call opens a fresh one."""
        if self._c is not None:
            self._c.close()
            self._c = None

    def call(self, method: str, path: str, body: Any | None = None,
             ok_missing: bool = False) -> tuple[int, bytes]:
        """(status, body); 404/405/501 are returned when `ok_missing`, other >= 400 raise."""
        url = self.ep.url + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):  # one silent retry: a keep-alive connection the server closed
            if self._c is None:
                self._c = self.ep.connect(self.timeout_s)
            try:
                self._c.request(method, self.ep.base + path, body=data, headers=headers)
                resp = self._c.getresponse()
                raw = resp.read()
                status = resp.status
                if resp.will_close:
                    self.close()
                break
            except TimeoutError:
                self.close()
                raise EndpointError(f"{method} {url}: no answer within {self.timeout_s:g} s "
                                    "(--timeout)") from None
            except ConnectionRefusedError:
                self.close()
                raise EndpointError(f"cannot connect to {self.ep.url}: connection refused "
                                    "(is the server running?)") from None
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                self.close()
                if attempt:
                    raise EndpointError(f"{method} {url}: the server closed the connection "
                                        f"({type(exc).__name__})") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                raise EndpointError(f"cannot reach {self.ep.url}: {reason}") from None
        if status >= 400 and not (ok_missing and status in (404, 405, 501)):
            raise EndpointError(f"{method} {url} failed: HTTP {status}: {_one_line(raw)}")
        return status, raw

    def json(self, method: str, path: str, body: Any | None = None,
             ok_missing: bool = False) -> Any:
        """The decoded JSON answer (None: empty body, or a missing route with `ok_missing`)."""
        status, raw = self.call(method, path, body, ok_missing)
        if status >= 400:
            return None
        try:
            return json.loads(raw) if raw.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise EndpointError(f"{method} {self.ep.url + path} answered something that is "
                                f"not JSON: {_one_line(raw)!r}") from None


# --------------------------------------------------------------------------- the server


@dataclass
class ServerInfo:
    """What `probe` learnt about a server: its API, identity, and which load signals it offers."""

    endpoint: str
    api: str                  # "llama" (llama-server's /completion) or "openai"
    server: str               # e.g. "llama.cpp llama-server b1234 (abc123)", "vLLM 0.6.3"
    model: str                # file name or served model id
    model_id: str | None      # the OpenAI "model" field to send
    slots: int | None         # concurrent requests the server runs (llama-server)
    metrics: bool             # llama-server --metrics is on
    slots_endpoint: bool      # llama-server /slots answers
    tokenize: str | None      # "llama" or "vllm" /tokenize body shape; None: text prompts
    gauge: str | None = None  # a Prometheus gauge of running requests (vLLM, SGLang)


def probe(ep: Endpoint, timeout_s: float, api: str = "auto",
          model: str | None = None) -> ServerInfo:
    """What kind of server `ep` is, and which of its extras (metrics, /tokenize) exist."""
    c = Conn(ep, timeout_s)
    try:
        try:
            props = c.json("GET", "/props", ok_missing=True)
        except EndpointError as exc:  # some other server's page: not a llama-server
            if "not JSON" not in str(exc) and "HTTP" not in str(exc):
                raise
            props = None
        is_llama = isinstance(props, dict) and ("total_slots" in props
                                                or "default_generation_settings" in props)
        if api == "llama" and not is_llama:
            raise EndpointError(f"{ep.url} is not a llama-server (no /props): use --api openai")
        models = c.json("GET", "/v1/models", ok_missing=True)
        ids = [m.get("id") for m in (models or {}).get("data", []) if isinstance(m, dict)] \
            if isinstance(models, dict) else []
        model_id = model or (ids[0] if ids else None)
        if is_llama and api != "openai":
            assert isinstance(props, dict)
            build = props.get("build_info")
            server = "llama.cpp llama-server" + (f" {build}" if build else "")
            path = props.get("model_path") or model_id or "unknown"
            slots = props.get("total_slots")
            st, _ = c.call("GET", "/metrics", ok_missing=True)
            metrics = st < 400
            st, _ = c.call("GET", "/slots", ok_missing=True)
            return ServerInfo(ep.url, "llama", server, PurePosixPath(str(path)).name,
                              model_id, int(slots) if isinstance(slots, int) else None,
                              metrics, st < 400, "llama")
        if model_id is None:
            raise EndpointError(f"{ep.url}/v1/models lists no model: pass --model")
        server = _openai_server_name(c, is_llama, props)
        tok = _which_tokenize(c, model_id)
        slots = props.get("total_slots") if is_llama and isinstance(props, dict) else None
        name = str(model_id)
        if name.endswith(".gguf"):
            name = PurePosixPath(name).name
        return ServerInfo(ep.url, "openai", server, name, str(model_id),
                          slots if isinstance(slots, int) else None, False, False, tok,
                          _running_gauge(c))
    finally:
        c.close()


def _openai_server_name(c: Conn, is_llama: bool, props: Any) -> str:
    if is_llama and isinstance(props, dict):
        return "llama.cpp llama-server" + (f" {props['build_info']}"
                                           if props.get("build_info") else "")
    ver = c.json("GET", "/version", ok_missing=True)  # vLLM
    if isinstance(ver, dict) and ver.get("version"):
        return f"vLLM {ver['version']}"
    info = c.json("GET", "/get_server_info", ok_missing=True)  # SGLang
    if isinstance(info, dict) and info.get("version"):
        return f"SGLang {info['version']}"
    return "OpenAI-compatible server"


RUNNING_GAUGES = ("vllm:num_requests_running", "sglang:num_running_reqs",
                  "llamacpp:requests_processing")


def _running_gauge(c: Conn) -> str | None:
    """The Prometheus gauge of requests being run, where /metrics has one."""
    status, raw = c.call("GET", "/metrics", ok_missing=True)
    if status >= 400:
        return None
    text = raw.decode("utf-8", "replace")
    return next((g for g in RUNNING_GAUGES if g in text), None)


def _gauge_value(raw: bytes, name: str) -> float | None:
    """Sum of the gauge over its label sets (one line per model or engine)."""
    total, found = 0.0, False
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"):
            try:
                total += float(line.rsplit(" ", 1)[1])
                found = True
            except (ValueError, IndexError):
                continue
    return total if found else None


def _which_tokenize(c: Conn, model_id: str) -> str | None:
    for shape in ("llama", "vllm"):
        try:
            if _tokenize(c, shape, model_id, "hello world"):
                return shape
        except EndpointError:
            continue
    return None


def _tokenize(c: Conn, shape: str, model_id: str | None, text: str) -> list[int]:
    body: dict[str, Any] = ({"content": text, "add_special": False} if shape == "llama"
                            else {"model": model_id, "prompt": text,
                                  "add_special_tokens": False})
    res = c.json("POST", "/tokenize", body, ok_missing=True)
    toks = res.get("tokens") if isinstance(res, dict) else None
    if not isinstance(toks, list) or not all(isinstance(t, int) for t in toks):
        return []
    return [int(t) for t in toks]


def token_pool(ep: Endpoint, info: ServerInfo, timeout_s: float) -> list[int]:
    """Real token ids of the bundled prompt texts, tokenized by the server itself."""
    text = "\n".join(p.text for p in bundled_prompts())
    if info.tokenize is None:
        return []
    c = Conn(ep, timeout_s)
    try:
        pool = _tokenize(c, info.tokenize, info.model_id, text)
    finally:
        c.close()
    if len(pool) < 64:
        raise EndpointError(f"{ep.url}/tokenize returned {len(pool)} tokens for the bundled "
                            "prompts: cannot build contexts")
    return pool


# --------------------------------------------------------------------------- one client


@dataclass
class Timed:
    """One request's wall-clock interval (`time.perf_counter` s) and the prompt tokens it cost."""

    start: float
    end: float
    processed: int | None  # prompt tokens the server evaluated (None: not reported)
    server_s: float | None = None  # the server's own time for the request (None: not reported)
    burst: int = 0  # which of the cell's bursts (the b requests sent together) it belongs to

    @property
    def latency(self) -> float:
        """The request's latency in seconds, as the client saw it."""
        return self.end - self.start


class Client:
    """One concurrent client: its own context (cached once) and keep-alive connection."""

    def __init__(self, index: int, ep: Endpoint, info: ServerInfo, pool: Sequence[int],
                 context_tokens: int, timeout_s: float, seed: int) -> None:
        self.index = index
        self.info = info
        self.conn = Conn(ep, timeout_s)
        self.rng = random.Random(seed * 1_000_003 + index)
        self.pool = list(pool)
        if pool:
            off = (index * 97) % len(pool)
            self.prefix: list[int] | str = [pool[(off + j) % len(pool)]
                                            for j in range(context_tokens)]
        else:  # text prompts: K counted in words, approximate
            words = " ".join(p.text for p in bundled_prompts()).split()
            off = (index * 97) % len(words)
            self.prefix = " ".join(words[(off + j) % len(words)]
                                   for j in range(context_tokens))
            self.pool_words = words
        self.warm = False
        self.slot: int | None = None  # llama-server slot to pin (id_slot); None: server picks

    def _fresh(self, k: int) -> list[int] | str:
        if isinstance(self.prefix, list):
            return self.prefix + [self.rng.choice(self.pool) for _ in range(k)]
        return self.prefix + " " + " ".join(self.rng.choice(self.pool_words) for _ in range(k))

    def _body(self, prompt: list[int] | str) -> tuple[str, dict[str, Any]]:
        if self.info.api == "llama":
            body: dict[str, Any] = {"prompt": prompt, "n_predict": 1, "cache_prompt": True,
                                    "temperature": 0.0, "top_k": 1, "stream": False}
            if self.slot is not None:
                body["id_slot"] = self.slot
            return "/completion", body
        return "/v1/completions", {"model": self.info.model_id, "prompt": prompt,
                                   "max_tokens": 1, "temperature": 0.0, "stream": False}

    def send(self, prompt: list[int] | str) -> Timed:
        """Time one completion request (one token generated) on this client's connection."""
        path, body = self._body(prompt)
        t0 = time.perf_counter()
        res = self.conn.json("POST", path, body)
        t1 = time.perf_counter()
        return Timed(t0, t1, _processed(res), _server_time(res))

    def warm_up(self) -> None:
        """Cache this client's context at the server (once)."""
        if not self.warm:
            self.send(self.prefix)
            self.warm = True

    def round(self, k: int) -> Timed:
        """One timed request: the cached context plus `k` fresh random tokens."""
        return self.send(self._fresh(k))

    def close(self) -> None:
        """Close this client's connection."""
        self.conn.close()


def spread_slot(i: int, count: int, slots: int | None) -> int | None:
    """Client i of `count`'s slot, spread evenly over `slots` (None: let the server pick)."""
    if not slots or count > slots:
        return None
    return i * slots // count


def spread_slots(clients: Sequence[Client]) -> None:
    """Pin llama-server clients to slots spread over the server (see the module doc)."""
    for i, cl in enumerate(clients):
        cl.slot = (spread_slot(i, len(clients), cl.info.slots)
                   if cl.info.api == "llama" else None)


def _processed(res: Any) -> int | None:
    if not isinstance(res, dict):
        raise EndpointError(f"unexpected completion answer: {_one_line(json.dumps(res))}")
    timings = res.get("timings")
    if isinstance(timings, dict) and isinstance(timings.get("prompt_n"), int):
        return int(timings["prompt_n"])
    usage = res.get("usage")
    if isinstance(usage, dict):
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        if isinstance(usage.get("prompt_tokens"), int) and isinstance(cached, int):
            return int(usage["prompt_tokens"]) - cached
    return None


def _server_time(res: Any) -> float | None:
    """llama-server's own time for a request, prompt plus generation (s); None elsewhere."""
    timings = res.get("timings") if isinstance(res, dict) else None
    if not isinstance(timings, dict):
        return None
    parts = [timings.get("prompt_ms"), timings.get("predicted_ms", 0.0)]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
               for x in parts):
        return None
    return sum(float(x) for x in parts) / 1e3


# --------------------------------------------------------------------------- load at server


_METRIC_LINE = "llamacpp:"


def _metrics(c: Conn) -> tuple[float, float] | None:
    """(decodes, busy-slot count summed over decodes) since the server started."""
    status, raw = c.call("GET", "/metrics", ok_missing=True)
    if status >= 400:
        return None
    vals: dict[str, float] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith(_METRIC_LINE):
            name, _, value = line[len(_METRIC_LINE):].partition(" ")
            try:
                vals[name] = float(value)
            except ValueError:
                continue
    if "n_decode_total" not in vals or "n_busy_slots_per_decode" not in vals:
        return None
    n = vals["n_decode_total"]
    return n, vals["n_busy_slots_per_decode"] * n


class LoadMonitor:
    """The mean number of requests the server processed together during a window."""

    def __init__(self, ep: Endpoint, info: ServerInfo, timeout_s: float,
                 interval_s: float = 0.02) -> None:
        self.info = info
        self.conn = Conn(ep, timeout_s)
        self.interval_s = interval_s
        self._start: tuple[float, float] | None = None
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.source = ("metrics" if info.metrics else
                       "slots" if info.slots_endpoint else
                       f"gauge {info.gauge}" if info.gauge else None)

    def begin(self) -> None:
        """Start a window: read the counters now, or start sampling in a thread."""
        if self.source == "metrics":
            self._start = _metrics(self.conn)
        elif self.source is not None:
            self._samples = []
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        c = Conn(self.conn.ep, self.conn.timeout_s)
        try:
            while not self._stop.wait(self.interval_s):
                if self.info.gauge is not None and self.source != "slots":
                    status, raw = c.call("GET", "/metrics", ok_missing=True)
                    value = _gauge_value(raw, self.info.gauge) if status < 400 else None
                    if value is not None:
                        self._samples.append(value)
                    continue
                slots = c.json("GET", "/slots", ok_missing=True)
                if isinstance(slots, list):
                    self._samples.append(sum(1 for s in slots if isinstance(s, dict)
                                             and s.get("is_processing")))
        except EndpointError:
            pass
        finally:
            c.close()

    def end(self) -> float | None:
        """Mean requests processed together while any were (None: no signal, or never busy)."""
        if self.source == "metrics":
            stop = _metrics(self.conn)
            if self._start is None or stop is None or stop[0] <= self._start[0]:
                return None
            return (stop[1] - self._start[1]) / (stop[0] - self._start[0])
        if self.source is not None:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=5)
            busy = [x for x in self._samples if x > 0]  # idle moments between steps are no batch
            return statistics.fmean(busy) if busy else None
        return None

    def close(self) -> None:
        """Stop sampling and close the monitor's connection."""
        self._stop.set()
        self.conn.close()


# --------------------------------------------------------------------------- one cell


@dataclass(frozen=True)
class CellOptions:
    """When a cell stops: once its median is precise, or at a limit (with a warning).

    Precise means at least `min_requests` requests in at least `min_bursts` bursts
    and a relative standard error of the median at most `precision`; the limits are
    `max_requests` and `max_time_s` seconds.  The b requests of one burst run in one
    step and share its time, so a burst is one sample, not b: a b = 16 cell once
    stopped after 3 bursts (48 requests) and read 30 % high while the machine had
    a slow minute.
    """

    min_requests: int = 20
    max_requests: int = 400
    max_time_s: float = 30.0
    precision: float = 0.03
    min_bursts: int = 6


@dataclass
class Cell:
    """One cell of the latency table: b concurrent requests of K new tokens, as measured.

    `latencies` are seconds; `converged` is false when the cell stopped at a
    limit before its median was precise enough (`warnings_for` says so).  A burst the
    server split over several steps did not time a step of b: its requests are left out
    (`split` counts them).  Where most bursts split, the server does not run b requests as
    one step, and the cell is what b requests sent together cost it instead: per burst, the
    time until the last of them was answered (`burst_times`, the clients' clock) - b times
    T(1) on a server that runs one request at a time.
    """

    b: int
    k: int
    latencies: list[float]
    processed: list[int]
    observed_batch: float | None
    elapsed_s: float
    converged: bool
    server: list[float] = field(default_factory=list)  # per request, where the server says
    split: int = 0   # bursts the server split over several steps (`split_bursts`)
    bursts: int = 0  # bursts timed
    burst_times: list[float] = field(default_factory=list)  # set where most bursts split
    serial: float | None = None  # `serial_ratio` of the cell's bursts, by the server's clock

    @property
    def n(self) -> int:
        """Timed requests behind the cell."""
        return len(self.latencies)

    @property
    def server_clock(self) -> bool:
        """Whether the server timed every request of the cell."""
        return bool(self.server) and len(self.server) == len(self.latencies)

    @property
    def value(self) -> float:
        """T(b, K), what the table records: the step by the server's clock (module doc)."""
        if self.burst_times:
            return statistics.median(self.burst_times)
        if not self.server_clock:
            return self.median
        outside = min(c - s for c, s in zip(self.latencies, self.server, strict=True))
        return statistics.median(self.server) + max(0.0, outside)

    @property
    def median(self) -> float:
        """The clients' median latency (s); the table records `value`."""
        return statistics.median(self.latencies)

    @property
    def spread(self) -> float:
        """IQR / median of what the value is the median of (the server's times, or latencies)."""
        return iqr_rel(self.timed)

    @property
    def timed(self) -> list[float]:
        """The samples behind the value: the server's times where it gave them all."""
        if self.burst_times:
            return self.burst_times
        return self.server if self.server_clock else self.latencies

    @property
    def rel_se(self) -> float:
        """Relative standard error of the value's median (`median_rel_se`)."""
        return median_rel_se(self.timed, 1 if self.burst_times else self.b)

    @property
    def processed_median(self) -> float | None:
        """Median prompt tokens the server evaluated per request (None when it did not say)."""
        if not self.processed:
            return None
        m = float(statistics.median(self.processed))
        return float(int(m)) if m.is_integer() else m


def iqr_rel(xs: Sequence[float]) -> float:
    """Interquartile range over the median: the spread measure cells report and stop on."""
    if len(xs) < 2:
        return 0.0
    q = statistics.quantiles(xs, n=4, method="inclusive")
    med = statistics.median(xs)
    return (q[2] - q[0]) / med if med > 0 else math.inf


def median_rel_se(xs: Sequence[float], b: int) -> float:
    """Relative standard error of the median; b concurrent requests count as one sample."""
    n_eff = len(xs) / max(b, 1)
    if n_eff < 1:
        return math.inf
    return _SE_FACTOR * iqr_rel(xs) / math.sqrt(n_eff)


def _server_times(kept: Sequence[Timed]) -> list[float]:
    """The server's own times, if it gave one for every request (else none: client's clock)."""
    server = [t.server_s for t in kept if t.server_s is not None]
    return server if len(server) == len(kept) else []


def measure_cell(clients: Sequence[Client], k: int, opts: CellOptions,
                 monitor: LoadMonitor | None = None,
                 on_request: Callable[[int], None] | None = None) -> Cell:
    """b = len(clients) loops of requests of K new tokens; see the module doc."""
    b = len(clients)
    spread_slots(clients)
    stop = threading.Event()
    lock = threading.Lock()
    done: list[Timed] = []
    warm_end: list[float] = []
    errors: list[BaseException] = []

    together = threading.Barrier(b)

    def loop(cl: Client) -> None:
        try:
            cl.warm_up()
            together.wait()
            first = cl.round(k)  # warm-up request of this cell: not timed
            with lock:
                warm_end.append(first.end)
            burst = 0
            while not stop.is_set():
                together.wait()
                t = cl.round(k)
                t.burst = burst
                burst += 1
                with lock:
                    done.append(t)
        except threading.BrokenBarrierError:
            return  # the cell stopped (or another client failed) while this one waited
        except BaseException as exc:  # reported by the main thread
            with lock:
                errors.append(exc)
            stop.set()
            together.abort()

    threads = [threading.Thread(target=loop, args=(cl,), daemon=True) for cl in clients]
    t_begin = time.perf_counter()
    for th in threads:
        th.start()
    began = False
    t_window = math.inf
    kept: list[Timed] = []
    checked = 0
    converged = False
    try:
        while True:
            time.sleep(0.02)
            with lock:
                if errors:
                    break
                if not began and len(warm_end) == b:
                    t_window = max(warm_end)
                    began = True
                    if monitor is not None:
                        monitor.begin()
                kept = [t for t in done if t.start >= t_window]
            if on_request is not None:
                on_request(len(kept))
            if (began and len(kept) > checked and len(kept) >= opts.min_requests
                    and len({t.burst for t in kept}) >= opts.min_bursts
                    and cell_of(b, k, kept).rel_se <= opts.precision):
                converged = True
                break
            checked = len(kept)  # the stopping rule is looked at again once more came in
            if len(kept) >= opts.max_requests:
                break
            # past max_time, wait for one measured request (up to the hard cap below):
            # a loaded machine may finish the warm-up just before the limit
            if time.perf_counter() - t_begin >= opts.max_time_s and (kept or not threads):
                break
            if time.perf_counter() - t_begin >= opts.max_time_s * 4 + 60:
                break  # not even the warm-up finished: the join below reports it
    finally:
        t_stop = time.perf_counter()
        stop.set()
        together.abort()
        observed = monitor.end() if (monitor is not None and began) else None
        timeout = max(c.conn.timeout_s for c in clients) + 5
        for th in threads:
            th.join(timeout=timeout)
    if errors:
        exc = errors[0]
        if isinstance(exc, Exception):
            raise exc
        raise RuntimeError(repr(exc))
    if not began:
        raise EndpointError(f"b={b} K={k}: the warm-up requests did not finish in time")
    kept = [t for t in done if t.start >= t_window and t.end <= t_stop]
    if not kept:
        raise EndpointError(f"b={b} K={k}: no request completed within {opts.max_time_s:g} s "
                            "(--max-time)")
    return replace(cell_of(b, k, kept), observed_batch=observed,
                   elapsed_s=t_stop - t_begin, converged=converged)


def split_bursts(kept: Sequence[Timed]) -> set[int]:
    """The bursts the server did not run as one step (needs the server's clock).

    A request that the server ran in a later step than its burst's first waited a whole
    step at the server: its latency exceeds the server's time by the least such excess
    (one request's handling, unqueued) plus at least a step.  Half of the burst's
    shortest server time is the line: on a shared 2-core machine an unsplit burst of 16
    waited at most a third of a step (the handling of the other requests).
    """
    if not _server_times(kept):
        return set()
    outside = _outside(kept)
    split: set[int] = set()
    for i, ts in _by_burst(kept).items():
        if len(ts) < 2:
            continue  # one request is one step: a delay outside the server is no split
        step = min(t.server_s or 0.0 for t in ts)
        if any(t.latency - (t.server_s or 0.0) - outside > step / 2 for t in ts):
            split.add(i)
    return split


def _outside(kept: Sequence[Timed]) -> float:
    """One request's handling outside the server, unqueued: the least latency less server
    time of the cell (needs the server's clock)."""
    return min(t.latency - (t.server_s or 0.0) for t in kept)


def _by_burst(kept: Sequence[Timed]) -> dict[int, list[Timed]]:
    bursts: dict[int, list[Timed]] = {}
    for t in kept:
        bursts.setdefault(t.burst, []).append(t)
    return bursts


def serial_ratio(kept: Sequence[Timed], b: int) -> float | None:
    """How far the requests of a burst ran one after another, by the server's clock.

    Per complete burst of b > 1: its time from the first send to the last answer, less one
    request's handling outside the server (the least such time of the cell), over the sum of
    its requests' server times; the median over bursts.  A server that runs them one at a
    time reads ~1 (each waited for the others), one that verifies them in one step ~1/b
    (each request's server time is that shared step), and a burst that a batching server
    split into s steps about s/b (a burst of 2 split in two reads ~1: it did run one after
    another, so the median over bursts decides).  None without the server's clock or a
    complete burst.
    """
    if b < 2 or not _server_times(kept):
        return None
    outside = max(0.0, _outside(kept))
    ratios = []
    for ts in _by_burst(kept).values():
        work = sum(t.server_s or 0.0 for t in ts)
        if len(ts) == b and work > 0:
            ratios.append((max(t.end for t in ts) - min(t.start for t in ts) - outside) / work)
    return statistics.median(ratios) if ratios else None


def cell_of(b: int, k: int, kept: Sequence[Timed]) -> Cell:
    """The cell of `kept` requests, before the window's bookkeeping (see `Cell.split`)."""
    split = split_bursts(kept)
    bursts = _by_burst(kept)
    mostly_split = 2 * len(split) > len(bursts)
    use = [t for t in kept if mostly_split or t.burst not in split]
    whole = [max(t.end for t in ts) - min(t.start for t in ts) for ts in bursts.values()
             if len(ts) == b] if mostly_split else []
    return Cell(b, k, [t.latency for t in use],
                [t.processed for t in use if t.processed is not None],
                None, 0.0, False, [] if mostly_split else _server_times(use), len(split),
                len(bursts), whole, serial_ratio(kept, b))


# A cell above this multiple of proportional growth from the row below is measured again.
SUPERLINEAR = 1.15
# The discarded cells that warm a server up (fresh servers read up to 30 % high at first).
WARM_UP = CellOptions(min_requests=20, max_requests=60, max_time_s=3.0, precision=1.0,
                      min_bursts=3)


def superlinear(value: float, b: int, below: tuple[int, float] | None) -> bool:
    """Whether a step of b costs more than `SUPERLINEAR` x b/b' steps of the row below.

    Serving the b requests as b/b' steps of b' one after another would cost b/b' x T(b');
    a step that costs clearly more is a noisy moment of a shared machine, not the server.
    """
    return below is not None and value > SUPERLINEAR * below[1] * b / below[0]


def faster_than_below(value: float, below: tuple[int, float] | None) -> bool:
    """Whether a step of b reads faster than the smaller step of the row below.

    A step of more requests does the work of the fewer and more, so it is never faster;
    where T grows little with b (a wide server), noise makes the two cross.
    """
    return below is not None and value < below[1]


@dataclass(frozen=True)
class Steady:
    """A cell's value after the plausibility checks of `steady_value`.

    `cell` is the first measurement (its counts go into the provenance), `times` how
    many were taken, `measured` their median and `value` what the table records: the
    median, raised to the row below where it still read faster (`floored`).
    """

    cell: Cell
    measured: float
    value: float
    times: int

    @property
    def floored(self) -> bool:
        """Whether the table records the row below's value instead of the median."""
        return self.value > self.measured


def steady_value(measure: Callable[[], Cell], b: int,
                 below: tuple[int, float] | None) -> Steady:
    """One cell's value, checked against the row below (b' < b at the same K).

    A cell that reads superlinear in b or faster than the row below is measured twice
    more and the median kept; a median still faster than the row below is raised to it
    (the running maximum over b, which the spec requires), and `Steady.floored` says so.
    """
    first = measure()
    values = [first.value]

    def implausible(v: float) -> bool:
        return superlinear(v, b, below) or faster_than_below(v, below)

    while len(values) < 3 and implausible(statistics.median(values)):
        values.append(measure().value)
    med = statistics.median(values)
    return Steady(first, med, max(med, below[1]) if below is not None else med, len(values))


def row_below(table: Mapping[int, Mapping[int, float]], b: int,
              k: int) -> tuple[int, float] | None:
    """The nearest measured row under b with a value at K: (b', T(b', K)), or None."""
    under = [bb for bb in table if bb < b and k in table[bb]]
    return (max(under), float(table[max(under)][k])) if under else None


def warm_up(clients: Sequence[Client], bs: Collection[int], k: int) -> None:
    """Discarded cells at the smallest and largest b: T(1, K) has no row below to catch a
    cold server (two runs of five read it up to 30 % high)."""
    sizes = sorted(set(bs))
    for b in sorted({sizes[0], sizes[-1]}):
        measure_cell(clients[:b], k, WARM_UP)


# --------------------------------------------------------------------------- planning


@dataclass
class Plan:
    """What to measure: rows b with their missing K; the table's rows end up rectangular."""

    keep: LatencyTable                     # cells kept from the spec
    todo: dict[int, list[int]]             # b -> K to measure (ascending)
    ks: list[int]                          # every K of the final table
    bs: list[int]                          # every b of the final table
    resumed: bool
    note: str | None = None
    skipped: list[tuple[int, int]] = field(default_factory=list)


def identity(info: ServerInfo, context_tokens: int) -> dict[str, Any]:
    """The keys that say how a table was measured; a table is resumed only when they match."""
    return {"endpoint": info.endpoint, "server": info.server, "model": info.model,
            "api": info.api, "context_tokens": context_tokens, "protocol": PROTOCOL}


def plan_cells(existing: Mapping[int, Mapping[int, float]] | None,
               existing_provenance: Mapping[str, Any] | None, ident: Mapping[str, Any],
               bs: Iterable[int], ks: Iterable[int], force: bool) -> Plan:
    """Cells to measure; an existing table is resumed only when measured the same way.

    Every row of a spec's table must list the same K, and the table is written row by
    row; so a resumed table is extended to the union of its b and K and the asked ones.
    """
    bs, ks = sorted(set(bs)), sorted(set(ks))
    prov = existing_provenance or {}
    same = bool(existing) and all(prov.get(key) == ident[key] for key in IDENTITY_KEYS)
    if not existing or force or not same:
        note = None
        if existing and not force:
            diff = [key for key in IDENTITY_KEYS if prov.get(key) != ident[key]]
            note = ("the existing table was measured differently (" + ", ".join(
                f"{key}: {prov.get(key)!r} -> {ident[key]!r}" for key in diff)
                + "): it is replaced")
        elif existing and force:
            note = "--force: the existing table is replaced"
        return Plan({}, {b: list(ks) for b in bs}, ks, bs, False, note)
    assert existing is not None
    all_ks = sorted(set(ks) | {k for row in existing.values() for k in row})
    all_bs = sorted(set(bs) | set(existing))
    keep = {b: dict(row) for b, row in existing.items()}
    todo: dict[int, list[int]] = {}
    skipped: list[tuple[int, int]] = []
    for b in all_bs:
        missing = [k for k in all_ks if k not in keep.get(b, {})]
        if missing:
            todo[b] = missing
        skipped += [(b, k) for k in all_ks if k in keep.get(b, {}) and b in bs and k in ks]
    extra = sorted({(b, k) for b, row in todo.items() for k in row}
                   - {(b, k) for b in bs for k in ks})
    note = None
    if extra:
        note = ("to keep every row's K the same, also measuring " + ", ".join(
            f"b={b} K={k}" for b, k in extra))
    return Plan(keep, todo, all_ks, all_bs, True, note, skipped)


# --------------------------------------------------------------------------- the verdict


def _beyond_one(per_cell: Mapping[int, Mapping[int, float | None]] | None) -> list[float]:
    """The known values of the cells at b > 1 (where b requests could share a step)."""
    return [v for b, row in (per_cell or {}).items() if b > 1 for v in row.values()
            if v is not None]


def not_batching(table: Mapping[int, Mapping[int, float]],
                 observed: Mapping[int, Mapping[int, float | None]] | None = None,
                 factor: float = NOT_BATCHING_FACTOR,
                 serial: Mapping[int, Mapping[int, float | None]] | None = None) -> bool:
    """True when the server serialises concurrent requests instead of batching them.

    Where the server counted how many requests it ran together (`observed`, the mean
    busy slots per decode) that count decides: not batching when it stayed below
    `OBSERVED_BATCHING` at every b > 1.  Next, where the server timed every request
    (`serial`, `serial_ratio` per cell) its clock decides: not batching when the bursts ran
    one after another (at least `SERIAL_RATIO`) at every b > 1 - the clients' times cannot,
    since one request's HTTP handling overlaps another's step (1.64 x T(1) measured for a
    burst of 2 on one slot).  Otherwise timing decides: latency grows
    ~linearly with b, T(b)/T(b0) >= factor*b/b0 at every b > b0, b0 the smallest
    measured b (1 normally) and T(b) the median over K of the ratio.  Needs two rows.
    """
    rows = sorted(table)
    if len(rows) < 2:
        return False
    seen = _beyond_one(observed)
    if seen:
        return max(seen) < OBSERVED_BATCHING
    ratios_seen = _beyond_one(serial)
    if ratios_seen:
        return min(ratios_seen) >= SERIAL_RATIO
    b0 = rows[0]
    for b in rows[1:]:
        ratios = [table[b][k] / table[b0][k] for k in table[b] if k in table[b0]
                  and table[b0][k] > 0]
        if not ratios or statistics.median(ratios) < factor * b / b0:
            return False
    return True


def not_batching_message(table: Mapping[int, Mapping[int, float]],
                         observed: Mapping[int, Mapping[int, float | None]] | None = None,
                         serial: Mapping[int, Mapping[int, float | None]] | None = None) -> str:
    """Why the server is judged not to batch, in the terms `not_batching` decided on."""
    seen = _beyond_one(observed)
    head = NOT_BATCHING_MESSAGE.split(":")[0]
    if seen:
        return (head + f": it ran at most {max(seen):.2f} "
                f"requests together while up to {max(table)} were sent together")
    ratios = _beyond_one(serial)
    if ratios:
        return (head + ": by its own clock, the requests sent together ran one after another "
                f"(a burst took at least {min(ratios):.2f} x the sum of its requests' "
                f"server times; a batched step takes ~1/b)")
    return NOT_BATCHING_MESSAGE.format(b0=min(table), f=NOT_BATCHING_FACTOR)


# --------------------------------------------------------------------------- the session


@dataclass(frozen=True)
class SessionOptions:
    """How a verifier session measures: context length (tokens), timeouts (s), seed, cells."""

    context_tokens: int = 256
    timeout_s: float = 60.0
    seed: int = 0
    cell: CellOptions = CellOptions()


class VerifierSession:
    """The server, its token pool, and up to max(b) clients reused across cells."""

    def __init__(self, endpoint: str, opts: SessionOptions, api: str = "auto",
                 model: str | None = None) -> None:
        self.ep = Endpoint.parse(endpoint)
        self.opts = opts
        self.info = probe(self.ep, opts.timeout_s, api, model)
        self.pool = token_pool(self.ep, self.info, opts.timeout_s)
        self.clients: list[Client] = []
        self.monitor = LoadMonitor(self.ep, self.info, opts.timeout_s)

    def _clients(self, b: int) -> list[Client]:
        while len(self.clients) < b:
            self.clients.append(Client(len(self.clients), self.ep, self.info, self.pool,
                                       self.opts.context_tokens, self.opts.timeout_s,
                                       self.opts.seed))
        return self.clients[:b]

    def measure(self, b: int, k: int,
                on_request: Callable[[int], None] | None = None) -> Cell:
        """Column K of the table: a round verifies the last bonus token and K drafts (K + 1)."""
        cell = measure_cell(self._clients(b), k + 1, self.opts.cell, self.monitor, on_request)
        return replace(cell, k=k)

    def measure_steady(self, b: int, k: int, below: tuple[int, float] | None,
                       on_request: Callable[[int], None] | None = None) -> Steady:
        """`measure`, checked against the row below (`steady_value`)."""
        return steady_value(lambda: self.measure(b, k, on_request), b, below)

    def warm_up(self, bs: Collection[int], k: int) -> None:
        """Warm the server up before the first timed cell (`warm_up`)."""
        warm_up(self._clients(max(bs)), bs, k + 1)

    def warnings_for(self, cell: Cell) -> list[str]:
        """What a reader must know of a cell: an imprecise median, or a prompt cache not reused."""
        out = []
        if not cell.converged:
            se = cell.rel_se
            want = self.opts.cell.precision
            if se > want:
                out.append(f"b={cell.b} K={cell.k}: median not stable after {cell.n} requests "
                           f"/ {cell.elapsed_s:.0f} s (+-{se:.1%}, wanted {want:.0%}; a busy "
                           "machine?)")
            else:
                out.append(f"b={cell.b} K={cell.k}: only {cell.n} timed requests in "
                           f"{cell.elapsed_s:.0f} s (--min-requests "
                           f"{max(self.opts.cell.min_requests, 3 * cell.b)})")
        if cell.split and not cell.server_clock:
            out.append(f"b={cell.b} K={cell.k}: the server split {cell.split} of {cell.bursts} "
                       f"bursts of {cell.b} requests over several steps: the cell is the "
                       "clients' time for a burst (does the server batch? --parallel?)")
        pm = cell.processed_median
        if pm is not None and pm > cell.k + 2:
            out.append(f"b={cell.b} K={cell.k}: the server evaluated {pm:g} prompt tokens per "
                       f"request, not {cell.k + 1}: its prompt cache is not reused (slots "
                       "evicted? fewer slots than clients?)")
        return out

    def provenance_base(self) -> dict[str, Any]:
        """Provenance shared by every cell of the session: server identity, date and settings."""
        o = self.opts
        prov = {
            "measured_by": "configspec profile-verifier",
            **identity(self.info, o.context_tokens),
            "date": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            "prompt": ("token ids" if self.pool else "text (K approximate, in words)"),
            "load_source": self.monitor.source,
            "slots": self.info.slots,
            "settings": {"min_requests": o.cell.min_requests,
                         "max_requests": o.cell.max_requests,
                         "max_time_s": o.cell.max_time_s, "precision": o.cell.precision,
                         "min_bursts": o.cell.min_bursts,
                         "timeout_s": o.timeout_s, "seed": o.seed},
        }
        return {key: v for key, v in prov.items() if v is not None}

    def close(self) -> None:
        """Close every client's connection and the load monitor's."""
        for c in self.clients:
            c.close()
        self.monitor.close()
