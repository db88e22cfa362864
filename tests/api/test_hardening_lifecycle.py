"""Issue 12, items 1, 3 and 5, against real `configspec serve` processes on 127.0.0.1.

* Slow clients: hundreds of connections trickling a header line while the
  probes and an authenticated request still answer; every trickler gets 408.
* Time limits cover everything a request starts; an abandoned request stops
  its solver process.
* Solver processes die with the server (SIGKILL) and with a clean SIGTERM;
  the job runner survives a full disk, `/readyz` says so, and jobs run again
  once the disk has room.

Every wait is bounded; the durations asserted are generous multiples of the
limits (shared, loaded CI machines), never tight timings.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import EXAMPLE, YAML_CT
from tests.api.live import LiveServer, fleet_spec_json

TOKEN = "lifecycle-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HEADER_TIMEOUT_S = 3.0
BODY_TIMEOUT_S = 2.0


# --- inputs ------------------------------------------------------------------


JSON_CT = {"Content-Type": "application/json"}
HEAVY_PARETO = fleet_spec_json(20, 10)  # a whole front takes about 40 s on 2 cores


def huge_fleet() -> str:
    """1.7 MB, 87,000 candidates: about 10 s to build (the issue's 44.9 s solve)."""
    return fleet_spec_json(1000, 64)


# --- processes and sockets ------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None \
                and st[1] == pid and st[0] != "Z":
            out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def wait_until(condition: Any, timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return bool(condition())


def raw_post(port: int, path: str, body: str, content_type: str = "application/json",
             extra: str = "") -> socket.socket:
    """A whole request sent on a socket we keep (to abandon it later)."""
    data = body.encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
              f"Content-Length: {len(data)}\r\n{extra}\r\n".encode() + data)
    return s


def server(tmp_path: Path, *args: str, workers: int = 1,
           env: dict[str, str] | None = None) -> LiveServer:
    return LiveServer(tmp_path / "db.sqlite3", tmp_path / "server.log", "--workers",
                      str(workers), *args, env=env)


def solver_pids(srv: LiveServer) -> list[int]:
    """The server's solver processes (its other child is multiprocessing's resource tracker)."""
    return [p for p in children(srv.proc.pid)
            if "serve_tasks" in _cmdline(p) or "spawn_main" in _cmdline(p)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server with a token, one solver process and short connection timeouts."""
    tmp = tmp_path_factory.mktemp("guarded")
    with server(tmp, "--header-timeout", str(HEADER_TIMEOUT_S), "--body-timeout",
                str(BODY_TIMEOUT_S), env={"CONFIGSPEC_API_TOKEN": TOKEN}) as srv:
        yield srv
        srv.stop()
    assert "Traceback" not in (tmp / "server.log").read_text()


# --- item 1: slow clients ----------------------------------------------------------


def trickle(socks: list[socket.socket], seconds: float) -> dict[socket.socket, str]:
    """Send a header line on every open socket each 0.5 s, reading answers meanwhile,
    until each got an answer or was closed (or `seconds` passed)."""
    got = {s: b"" for s in socks}
    state = dict.fromkeys(socks, "open")
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, s)
    deadline = time.monotonic() + seconds
    next_send = time.monotonic()
    while time.monotonic() < deadline and "open" in state.values():
        for key, _ in sel.select(timeout=0.1):
            sock: socket.socket = key.data
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            got[sock] += chunk
            if not chunk or b"\r\n\r\n" in got[sock]:
                state[sock] = "408" if got[sock].startswith(b"HTTP/1.1 408") else \
                    ("closed" if not got[sock] else got[sock][:40].decode(errors="replace"))
                sel.unregister(sock)
        if time.monotonic() >= next_send:
            next_send += 0.5
            for s, st in state.items():
                if st == "open":
                    with contextlib.suppress(OSError):
                        s.send(b"X-Trickle: 1\r\n")
    sel.close()
    for s in socks:
        s.close()
    return state


def test_trickling_clients_do_not_deny_service(guarded: LiveServer) -> None:
    """255 connections sending their headers a line at a time (the issue's probe)."""
    socks = []
    for _ in range(255):
        s = socket.create_connection(("127.0.0.1", guarded.port), timeout=10)
        s.sendall(b"POST /v1/validate HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        socks.append(s)
    health = httpx.get(f"{guarded.url}/healthz", timeout=10)
    assert health.status_code == 200
    assert httpx.get(f"{guarded.url}/readyz", timeout=10).status_code == 200
    valid = httpx.post(f"{guarded.url}/v1/validate", content=EXAMPLE.read_text(),
                       headers={**YAML_CT, **AUTH}, timeout=30)
    assert valid.status_code == 200, valid.text
    outcome = trickle(socks, 10 * HEADER_TIMEOUT_S)
    assert set(outcome.values()) == {"408"}, {v: list(outcome.values()).count(v)
                                             for v in set(outcome.values())}


def test_a_slow_body_gets_408_and_the_server_goes_on(guarded: LiveServer) -> None:
    body = EXAMPLE.read_text().encode()
    s = socket.create_connection(("127.0.0.1", guarded.port), timeout=10)
    s.sendall(b"POST /v1/validate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Content-Type: application/yaml\r\nAuthorization: Bearer " + TOKEN.encode() +
              b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10])
    started = time.monotonic()
    outcome = trickle([s], 10 * BODY_TIMEOUT_S)
    assert outcome[s] == "408"
    assert time.monotonic() - started < 10 * BODY_TIMEOUT_S
    assert httpx.get(f"{guarded.url}/healthz", timeout=10).status_code == 200


def test_a_silent_connection_gets_408(guarded: LiveServer) -> None:
    s = socket.create_connection(("127.0.0.1", guarded.port), timeout=10)
    s.settimeout(10 * HEADER_TIMEOUT_S)
    answer = s.recv(4096)
    s.close()
    assert answer.startswith(b"HTTP/1.1 408")
    problem = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert problem["type"] == "urn:configspec-opt:problem:request-timeout"
    assert "did not arrive within" in problem["detail"]


def _read_all(s: socket.socket) -> bytes:
    """Everything the server sends until it closes (ConnectionResetError propagates)."""
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_an_oversized_request_line_is_refused_with_431_not_reset(guarded: LiveServer) -> None:
    """A URL past h11's 16 KiB: the client, still sending, reads a 431, never a reset.

    Schemathesis sent `/v1/evaluate?device=...` with 100 KB of query and the old
    server answered a plain 400 and closed while the request was still arriving, so the
    client saw `Connection reset by peer`.  The whole request is sent before reading.
    The URL is 600 KiB, more than the event loop reads at once (256 KiB), so h11 sees
    the head incomplete and past its limit (a smaller head read in one piece is parsed
    whole and answered by the app).
    """
    query = "&".join(f"device=d{i:06d}" for i in range(600 * 1024 // 16))
    s = socket.create_connection(("127.0.0.1", guarded.port), timeout=10)
    s.sendall(f"POST /v1/evaluate?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              "Content-Length: 2\r\nContent-Type: application/json\r\n\r\n{}".encode())
    answer = _read_all(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    head, body = answer.split(b"\r\n\r\n", 1)
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(body)
    assert problem["status"] == 431 and "16 KiB" in problem["detail"]
    assert httpx.get(f"{guarded.url}/healthz", timeout=10).status_code == 200


def test_a_request_that_is_not_http_gets_a_400_problem(guarded: LiveServer) -> None:
    s = socket.create_connection(("127.0.0.1", guarded.port), timeout=10)
    s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    answer = _read_all(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["status"] == 400


# --- item 3: time limits end to end ---------------------------------------------------


def test_pareto_stops_at_its_time_limit_with_what_it_proved(guarded: LiveServer) -> None:
    limit = 3.0
    started = time.monotonic()
    r = httpx.post(f"{guarded.url}/v1/pareto?x=goodput&y=energy&time_limit={limit}",
                   content=HEAVY_PARETO, headers={**JSON_CT, **AUTH}, timeout=120)
    took = time.monotonic() - started
    assert r.status_code == 200, r.text
    front = r.json()
    assert front["complete"] is False
    assert "time limit" in front["message"]
    assert len(front["points"]) < 50
    assert took < 5 * limit, took


def test_a_solve_too_large_for_its_limit_stops_at_it(guarded: LiveServer) -> None:
    """The issue's 1.77 MB spec took 44.9 s against a 10 s limit (model building
    was not counted); now the limit covers it."""
    limit = 2.0
    started = time.monotonic()
    r = httpx.post(f"{guarded.url}/v1/solve?time_limit={limit}", content=huge_fleet(),
                   headers={**JSON_CT, **AUTH}, timeout=120)
    took = time.monotonic() - started
    assert took < 5 * limit + 5, took  # + parsing 1.7 MB before the clock starts
    if r.status_code == 200:
        assert r.json()["status"] in ("time_limit", "feasible"), r.json()["status"]
    else:
        body = r.json()
        assert r.status_code == 504, r.text
        assert body["type"] == "urn:configspec-opt:problem:deadline-exceeded"
        assert "POST /v1/jobs" in body["detail"]
    # the process cut short was replaced: the next request is served
    assert httpx.post(f"{guarded.url}/v1/solve", content=EXAMPLE.read_text(),
                      headers={**YAML_CT, **AUTH}, timeout=60).status_code == 200


def test_same_metric_on_both_axes_is_a_422(guarded: LiveServer) -> None:
    for query in ("x=min:cost&y=max:cost", "x=max:goodput&y=min:goodput", "x=cost&y=cost"):
        r = httpx.post(f"{guarded.url}/v1/pareto?{query}", content=EXAMPLE.read_text(),
                       headers={**YAML_CT, **AUTH}, timeout=30)
        assert r.status_code == 422, (query, r.text)
        assert "two different metrics" in r.json()["detail"]


def test_an_abandoned_request_frees_its_solver_process(guarded: LiveServer) -> None:
    """The issue's abandoned Pareto kept a solver busy about 130 s."""
    before = solver_pids(guarded)
    assert len(before) == 1
    s = raw_post(guarded.port, "/v1/pareto?x=goodput&y=energy&time_limit=60", HEAVY_PARETO,
                 extra=f"Authorization: Bearer {TOKEN}\r\n")

    def in_flight() -> int:
        count: int = httpx.get(f"{guarded.url}/healthz", timeout=10).json()["in_flight"]
        return count

    assert wait_until(lambda: in_flight() == 1, 30), "the request never reached the pool"
    time.sleep(1.0)  # let it start computing
    s.close()  # the client goes away
    assert wait_until(lambda: in_flight() == 0, 20), "the abandoned work kept its slot"
    assert wait_until(lambda: not alive(before[0]), 20), "the solver process kept running"
    started = time.monotonic()
    r = httpx.post(f"{guarded.url}/v1/solve", content=EXAMPLE.read_text(),
                   headers={**YAML_CT, **AUTH}, timeout=60)
    assert r.status_code == 200
    assert time.monotonic() - started < 30  # not behind the abandoned front (~40 s)
    assert solver_pids(guarded) != before


# --- item 5: processes die with the server ---------------------------------------------


def test_sigkill_of_the_server_leaves_no_solver_process(tmp_path: Path) -> None:
    srv = server(tmp_path, workers=2)
    try:
        pids = solver_pids(srv)
        assert len(pids) == 2
        busy = raw_post(srv.port, "/v1/pareto?x=goodput&y=energy&time_limit=60", HEAVY_PARETO)
        wait_until(lambda: httpx.get(f"{srv.url}/healthz").json()["in_flight"] == 1, 30)
        os.kill(srv.proc.pid, signal.SIGKILL)  # the server only, not its process group
        srv.proc.wait(timeout=10)
        assert wait_until(lambda: not any(alive(p) for p in pids), 15), \
            [p for p in pids if alive(p)]
        busy.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(srv.proc.pid, signal.SIGKILL)
        srv.kill()


def test_sigterm_stops_everything_cleanly(tmp_path: Path) -> None:
    srv = server(tmp_path, workers=2)
    pids = solver_pids(srv)
    try:
        job = httpx.post(f"{srv.url}/v1/jobs?time_limit=120", content=HEAVY_PARETO,
                         headers=JSON_CT, timeout=30)
        assert job.status_code == 202
        busy = raw_post(srv.port, "/v1/pareto?x=goodput&y=energy&time_limit=60", HEAVY_PARETO)
        wait_until(lambda: httpx.get(f"{srv.url}/healthz").json()["in_flight"] >= 1, 30)
        srv.stop()
        busy.close()
        assert srv.proc.returncode in (0, -signal.SIGTERM)
        assert wait_until(lambda: not any(alive(p) for p in pids), 15)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(srv.proc.pid, signal.SIGKILL)
        srv.kill()
    log = (tmp_path / "server.log").read_text()
    assert "Application shutdown failed" not in log
    assert "Traceback" not in log


# --- item 5: a store that fails writes ------------------------------------------------


class DiskFault:
    """A disk that fills up and is freed again, under the server's database.

    A small tmpfs when this machine lets us mount one (root in most CI
    containers): filled with a file until ENOSPC, freed by deleting it.
    Elsewhere the server's own file-size limit (RLIMIT_FSIZE, set from outside
    with prlimit) drops to zero, so its writes fail with EFBIG, then is raised.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "disk"
        self.dir.mkdir()
        self.mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(self.dir)],
            capture_output=True).returncode == 0
        self.pid: int | None = None
        self.filler = self.dir / "filler"

    def fill(self) -> None:
        if not self.mounted:
            assert self.pid is not None
            hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)[1]
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (0, hard))
            return
        with self.filler.open("wb", buffering=0) as f:  # unbuffered: close writes nothing
            try:
                for _ in range(64 * 256):  # bounded: at most 64 MiB for a 16 MiB disk
                    f.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            else:
                raise AssertionError("the tmpfs did not fill up")

    def free(self) -> None:
        if not self.mounted:
            assert self.pid is not None
            hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)[1]
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, hard))
            return
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.dir)], capture_output=True)


def test_full_disk_readiness_and_recovery(tmp_path: Path) -> None:
    """The issue's full disk: jobs stayed queued for good while /healthz said ok."""
    disk = DiskFault(tmp_path)
    srv = LiveServer(disk.dir / "db.sqlite3", tmp_path / "server.log", "--workers", "1",
                     "--time-limit", "60")
    disk.pid = srv.proc.pid
    base = srv.url

    def ready() -> httpx.Response:
        return httpx.get(f"{base}/readyz", timeout=30)

    def status(location: str) -> str:
        answer: str = httpx.get(base + location, timeout=30).json()["status"]
        return answer

    try:
        assert ready().status_code == 200
        # the only solver process evaluates a large fleet (seconds; nothing is written at
        # its end); meanwhile job A is claimed (its row `running`) and waits for the
        # process, and job B waits in the queue
        busy = raw_post(srv.port, "/v1/evaluate?top=1", huge_fleet())
        assert wait_until(lambda: httpx.get(f"{base}/healthz").json()["in_flight"] == 1, 30)
        job_a = httpx.post(f"{base}/v1/jobs", content=EXAMPLE.read_text(), headers=YAML_CT)
        assert job_a.status_code == 202
        a = job_a.headers["location"]
        assert wait_until(lambda: status(a) == "running", 30)
        job_b = httpx.post(f"{base}/v1/jobs?objective=min:cost", content=EXAMPLE.read_text(),
                           headers=YAML_CT)
        b = job_b.headers["location"]

        disk.fill()
        assert wait_until(lambda: ready().status_code == 503
                          and ready().json()["checks"]["database"] != "ok", 30), ready().text
        problem = ready().json()
        assert problem["type"] == "urn:configspec-opt:problem:not-ready"
        assert ready().headers["retry-after"]
        assert httpx.get(f"{base}/healthz").status_code == 200  # alive, just not ready
        refused = httpx.post(f"{base}/v1/jobs", content=EXAMPLE.read_text(), headers=YAML_CT)
        assert refused.status_code == 503, refused.text
        assert refused.json()["type"] == "urn:configspec-opt:problem:storage-unavailable"
        # job A is solved once the evaluation ends, and its result cannot be written:
        # the runner keeps it and retries, and says so
        assert wait_until(lambda: ready().json().get("checks", {}).get("job_runner", "ok")
                          != "ok", 120), ready().text
        assert status(a) == "running" and status(b) == "queued"

        disk.free()
        assert wait_until(lambda: ready().status_code == 200, 60), ready().text
        assert wait_until(lambda: status(a) == "succeeded", 60), status(a)
        assert wait_until(lambda: status(b) == "succeeded", 60), status(b)
        busy.close()
        srv.stop()
    finally:
        srv.kill()
        disk.close()
    log = (tmp_path / "server.log").read_text()
    assert "Application shutdown failed" not in log
    assert "Traceback" not in log
