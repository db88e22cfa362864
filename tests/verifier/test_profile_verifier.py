"""`configspec profile-verifier` against a real llama-server (SmolLM2), and its error paths.

No timing is asserted (the machine is shared): only that every cell was measured, what
was written and where, and that the server really batched.  The "does not batch"
detector is checked on synthetic numbers.
"""

from __future__ import annotations

import http.server
import math
import re
import socket
import statistics
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from configspec_opt.cli import app
from configspec_opt.loader import load_spec
from profiler.llama_server import LlamaServer, free_port
from profiler.verifier_profile import (
    PROTOCOL,
    SERIAL_RATIO,
    SUPERLINEAR,
    Cell,
    CellOptions,
    Client,
    Endpoint,
    Timed,
    cell_of,
    measure_cell,
    not_batching,
    not_batching_message,
    plan_cells,
    probe,
    row_below,
    serial_ratio,
    split_bursts,
    steady_value,
    superlinear,
    token_pool,
)

runner = CliRunner()

SPEC = """\
# A spec for the verifier tests: comments and spacing outside the table must survive.
version: 1
name: verifier-test   # the name
targets:
  - name: smollm2-135m
    family: smollm2
    price_usd_per_mtok: 0.05        # keep the trailing zero
    verify_latency_s: 0.02
    verifier:
      replicas: {min: 1, max: 2}    # two replicas at most
      price_usd_per_replica_hour: 1.50
      max_batch: 4
      latency_s:
        1: {2: 0.5, 4: 0.6}         # a placeholder, written by hand
    # a comment after the verifier
drafts:
  - name: smollm2-135m
    family: smollm2
    quants:
      Q8_0: {size_gb: 0.145, gguf: models/q8_0.gguf}
devices:
  - name: laptop
    count: 1
    memory_gb: 16
search:
  k: {min: 2, max: 8}
objective:
  maximize: goodput
"""

FAST = ["--batch", "1,2,4", "--k", "2,4", "--context", "64", "--min-requests", "6",
        "--max-requests", "40", "--max-time", "2.5", "--precision", "0.05", "--min-bursts", "3"]


def _without_table(text: str) -> str:
    """The text less the lines of `latency_s:` and `provenance:` under the verifier."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        indent = len(line) - len(line.lstrip())
        if re.match(r"^      (latency_s|provenance):", line):
            skipping = True
            continue
        if skipping and line.strip() and indent <= 6:
            skipping = False
        if not skipping:
            out.append(line)
    return "".join(out)


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC)
    return p


def test_measures_every_cell_and_writes_the_table(spec_file: Path,
                                                  llama_server: LlamaServer) -> None:
    res = runner.invoke(app, ["profile-verifier", str(spec_file), "--target", "smollm2-135m",
                              "--endpoint", llama_server.url, *FAST])
    assert res.exit_code == 0, res.output
    text = spec_file.read_text()
    ver = load_spec(spec_file).spec.targets[0].verifier
    assert ver is not None
    assert set(ver.latency_s) == {1, 2, 4}
    for row in ver.latency_s.values():
        assert set(row) == {2, 4}
        assert all(v > 0 for v in row.values())
    # minimal writeback: everything but the table and its provenance is byte-identical
    assert _without_table(text) == _without_table(SPEC)
    for comment in ("# the name", "# keep the trailing zero", "# two replicas at most",
                    "# a comment after the verifier", "price_usd_per_replica_hour: 1.50"):
        assert comment in text
    prov = ver.provenance or {}
    assert prov["endpoint"] == llama_server.url
    assert prov["server"].startswith("llama.cpp llama-server")
    assert prov["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert prov["context_tokens"] == 64 and prov["date"]
    # llama-server times its own work (timings); a cell whose bursts it mostly split is
    # timed by the clients instead, but a burst of one request cannot be split
    assert prov["clock"] in ("server", "client and server")
    assert set(prov["repeats"]) == {1, 2, 4}
    assert all(n >= 1 for row in prov["repeats"].values() for n in row.values())
    # the server counted what it ran together: never more than was sent, and more than
    # one request at some b (else the command refuses the table: exit 4); it evaluated
    # only the round's K + 1 new tokens (the previous bonus token and K drafts)
    observed = prov["observed_batch"]
    assert all(1.0 <= observed[b][k] <= b + 1e-9 for b in (1, 2, 4) for k in (2, 4)), observed
    assert max(observed[b][k] for b in (2, 4) for k in (2, 4)) > 1.0
    for row_b, row in (prov.get("split_bursts") or {}).items():
        assert row_b > 1, prov["split_bursts"]
        for split in row.values():
            some, of = map(int, split.split("/"))
            assert 0 < some <= of
    for row_b, row in prov["processed_tokens"].items():
        for k, n in row.items():
            assert 1 <= n <= k + 1, (row_b, k, n)

    # a rerun measures nothing and leaves the file as it was
    again = runner.invoke(app, ["profile-verifier", str(spec_file), "-t", "smollm2-135m",
                                "--endpoint", llama_server.url, *FAST])
    assert again.exit_code == 0, again.output
    assert "kept 6 cell(s)" in again.output
    assert spec_file.read_text() == text


def test_the_openai_route_measures_too(spec_file: Path, llama_server: LlamaServer) -> None:
    """/v1/completions with token-id prompts, as vLLM and SGLang are driven.

    One row: without slot pinning (an OpenAI route has none) whether two requests sent
    together share a step depends on how far apart they arrive, which a loaded machine
    decides (the full suite once saw them run one after the other, and the not-batching
    check rightly refused); batching itself is tested on the llama route.
    """
    res = runner.invoke(app, ["profile-verifier", str(spec_file), "-t", "smollm2-135m",
                              "--endpoint", llama_server.url + "/v1", "--api", "openai",
                              "--batch", "1", "--k", "2", "--context", "64",
                              "--min-requests", "4", "--max-requests", "12", "--max-time",
                              "1.5"])
    assert res.exit_code == 0, res.output
    ver = load_spec(spec_file).spec.targets[0].verifier
    assert ver is not None and set(ver.latency_s) == {1}
    prov = ver.provenance or {}
    assert prov["api"] == "openai" and prov["prompt"] == "token ids"
    assert prov["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert prov["load_source"] == "gauge llamacpp:requests_processing"
    assert all(n <= 3 for row in prov["processed_tokens"].values() for n in row.values())  # K + 1


def test_closed_port_exits_4_and_leaves_the_spec_alone(spec_file: Path) -> None:
    before = spec_file.read_bytes()
    url = f"http://127.0.0.1:{free_port()}"
    res = runner.invoke(app, ["profile-verifier", str(spec_file), "-t", "smollm2-135m",
                              "--endpoint", url, *FAST])
    assert res.exit_code == 4, res.output
    assert "connection refused" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert spec_file.read_bytes() == before


def test_unknown_target_exits_2_with_a_suggestion(spec_file: Path) -> None:
    res = runner.invoke(app, ["profile-verifier", str(spec_file), "-t", "smollm2-13m",
                              "--endpoint", "http://127.0.0.1:1"])
    assert res.exit_code == 2, res.output
    assert "did you mean 'smollm2-135m'?" in res.output


def test_missing_verifier_needs_the_creation_flags(tmp_path: Path) -> None:
    p = tmp_path / "spec.yaml"
    lines = SPEC.splitlines(keepends=True)
    start = lines.index("    verifier:\n")
    p.write_text("".join(lines[:start] + lines[start + 6:]))
    before = p.read_bytes()
    res = runner.invoke(app, ["profile-verifier", str(p), "-t", "smollm2-135m",
                              "--endpoint", "http://127.0.0.1:1", "--replicas-max", "2"])
    assert res.exit_code == 2, res.output
    assert "no verifier: section" in res.output and "--max-batch" in res.output
    assert p.read_bytes() == before


@pytest.fixture
def not_an_llm_server() -> Iterator[str]:
    """An HTTP server that answers 404 to everything."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_a_server_that_runs_one_request_at_a_time_is_refused_by_timing(
        spec_file: Path, llama_server_binary: Path, smollm2_gguf: Path) -> None:
    """One slot, no metrics and no /slots: only timing can tell, and the server's own clock
    cannot (each request's `timings` is one request's step).  Every burst of b waits at the
    server, so the cell is the time until the burst's last answer, b x T(1)."""
    before = spec_file.read_bytes()
    with LlamaServer(smollm2_gguf, parallel=1, ctx=512, threads=1, metrics=False,
                     binary=llama_server_binary, extra_args=["--no-slots"]) as srv:
        res = runner.invoke(app, ["profile-verifier", str(spec_file), "-t", "smollm2-135m",
                                  "--endpoint", srv.url, "--batch", "1,2", "--k", "2",
                                  "--context", "64", "--min-requests", "16",
                                  "--max-requests", "60", "--max-time", "4"])
    assert res.exit_code == 4, res.output
    assert "does not seem to batch" in res.output
    assert spec_file.read_bytes() == before


def _burst(i: int, t0: float, server: list[float], waited: list[float],
           outside: float = 0.002) -> list[Timed]:
    """Requests of burst i sent at t0: each spent `outside`, waited, then its server time."""
    return [Timed(t0, t0 + outside + w + s, 3, s, i) for s, w in zip(server, waited,
                                                                      strict=True)]


@settings(max_examples=120, deadline=None)
@given(st.integers(2, 8), st.lists(st.tuples(st.floats(0.01, 0.5), st.booleans(),
                                             st.floats(0.0, 0.45)), min_size=1,
                                   max_size=12), st.data())
def test_a_burst_the_server_split_is_found_and_left_out(
        b: int, bursts: list[tuple[float, bool, float]], data: st.DataObject) -> None:
    """A request that waited a whole step at the server marks its burst split; handling
    jitter under half a step does not.  Split bursts are left out of the server's clock
    while they are at most half; beyond that the cell is the clients' time per burst."""
    kept: list[Timed] = []
    truth = set()
    t0 = 0.0
    for i, (step, split, jitter) in enumerate(bursts):
        late = data.draw(st.integers(1, b - 1)) if split else 0
        waited = [jitter * step * data.draw(st.floats(0, 1)) for _ in range(b - late)]
        waited += [step * data.draw(st.floats(1.0, 3.0)) for _ in range(late)]
        kept += _burst(i, t0, [step] * b, waited)
        if split:
            truth.add(i)
        t0 += 10.0
    assert split_bursts(kept) == truth
    cell = cell_of(b, 2, kept)
    assert (cell.split, cell.bursts) == (len(truth), len(bursts))
    if 2 * len(truth) > len(bursts):
        assert not cell.server_clock and cell.n == len(kept)
        assert sorted(cell.burst_times) == sorted(
            max(t.end for t in kept if t.burst == i) - min(t.start for t in kept
                                                            if t.burst == i)
            for i in range(len(bursts)))
        assert cell.value == statistics.median(cell.burst_times)
    else:
        clean = [t for t in kept if t.burst not in truth]
        assert cell.server_clock and cell.n == len(clean)
        assert sorted(cell.server) == sorted(t.server_s or 0 for t in clean)
        assert cell.value >= statistics.median(cell.server)


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 16), st.floats(0.002, 0.5), st.floats(0.0, 0.05), st.data())
def test_the_servers_clock_tells_one_after_another_from_one_step(
        b: int, step: float, outside: float, data: st.DataObject) -> None:
    """A server that runs a burst's requests one after another reads at least SERIAL_RATIO
    whatever its handling time; one that verifies them in one step, each arriving up to
    half a step late, reads under it - and `not_batching` follows the server's clock even
    where the clients' times (handling overlapping the steps) would say otherwise."""
    serial: list[Timed] = []
    batched: list[Timed] = []
    for i in range(data.draw(st.integers(1, 6))):
        t0 = 10.0 * i
        times = [step * data.draw(st.floats(0.8, 1.2)) for _ in range(b)]
        serial += _burst(i, t0, times, [sum(times[:j]) for j in range(b)], outside)
        late = [step / 2 * data.draw(st.floats(0, 0.999)) for _ in range(b)]
        batched += _burst(i, t0, [step] * b, late, outside)
    rs, rb = serial_ratio(serial, b), serial_ratio(batched, b)
    assert rs is not None and rs >= SERIAL_RATIO
    assert rb is not None and rb < SERIAL_RATIO
    assert serial_ratio(serial[:1], 1) is None
    linear_looking = {1: {2: 1.0}, 2: {2: 1.0 * b}}
    assert not not_batching(linear_looking, serial={b: {2: rb}})
    assert not_batching({1: {2: 1.0}, 2: {2: 1.5}}, serial={2: {2: rs}})
    assert "one after another" in not_batching_message({1: {2: 1.0}}, serial={2: {2: rs}})


def test_a_lone_request_is_never_a_split_burst() -> None:
    kept = _burst(0, 0.0, [0.02], [0.0]) + _burst(1, 1.0, [0.02], [0.5])
    assert split_bursts(kept) == set()


def test_a_server_that_is_not_an_llm_server_exits_4(spec_file: Path,
                                                   not_an_llm_server: str) -> None:
    before = spec_file.read_bytes()
    res = runner.invoke(app, ["profile-verifier", str(spec_file), "-t", "smollm2-135m",
                              "--endpoint", not_an_llm_server, *FAST])
    assert res.exit_code == 4, res.output
    assert "lists no model" in res.output
    assert spec_file.read_bytes() == before


def test_a_silent_server_times_out_with_exit_4(spec_file: Path) -> None:
    before = spec_file.read_bytes()
    with socket.socket() as s:  # listens, never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        res = runner.invoke(app, ["profile-verifier", str(spec_file), "-t", "smollm2-135m",
                                  "--endpoint", url, "--timeout", "0.3", *FAST])
    assert res.exit_code == 4, res.output
    assert "no answer within 0.3 s" in res.output
    assert spec_file.read_bytes() == before


# ------------------------------------------------------------ pure parts, synthetic numbers


def test_not_batching_detector_on_synthetic_tables() -> None:
    serial = {1: {2: 0.10, 4: 0.12}, 2: {2: 0.20, 4: 0.24}, 4: {2: 0.39, 4: 0.47},
              8: {2: 0.80, 4: 0.97}}
    assert not_batching(serial)
    batched = {1: {2: 0.10, 4: 0.12}, 2: {2: 0.11, 4: 0.14}, 4: {2: 0.15, 4: 0.19},
               8: {2: 0.25, 4: 0.33}}
    assert not not_batching(batched)
    # linear up to b=4, then batching kicks in: it batches
    assert not not_batching({**serial, 8: {2: 0.41, 4: 0.5}})
    # just under 0.9*b at one b: batching
    assert not not_batching({1: {2: 1.0}, 2: {2: 1.79}, 4: {2: 3.6}})
    assert not_batching({1: {2: 1.0}, 2: {2: 1.8}, 4: {2: 3.6}})
    # one row says nothing; the smallest b is the reference when 1 is missing
    assert not not_batching({1: {2: 0.1}})
    assert not_batching({2: {2: 0.2}, 4: {2: 0.4}, 8: {2: 0.8}})
    assert "does not seem to batch concurrent requests (--parallel?)" in \
        not_batching_message(serial)


def test_the_servers_own_count_overrides_timing() -> None:
    """A compute-bound CPU server batches yet grows ~linearly: its count says it batched."""
    serial = {1: {2: 0.02}, 2: {2: 0.045}, 4: {2: 0.1}}
    assert not not_batching(serial, {1: {2: 1.0}, 2: {2: 1.7}, 4: {2: 3.9}})
    one_at_a_time = {1: {2: 1.0}, 2: {2: 1.0}, 4: {2: 1.05}}
    assert not_batching({1: {2: 0.02}, 2: {2: 0.021}, 4: {2: 0.022}}, one_at_a_time)
    message = not_batching_message(serial, one_at_a_time)
    assert message.startswith("the server does not seem to batch concurrent requests "
                              "(--parallel?)")
    assert "at most 1.05 requests together while up to 4 were sent together" in message
    # no count for b > 1: timing decides
    assert not_batching(serial, {1: {2: 1.0}})


IDENT = {"endpoint": "http://h:1", "server": "s", "model": "m", "api": "llama",
         "context_tokens": 64, "protocol": PROTOCOL}


def test_plan_resumes_only_the_same_measurement() -> None:
    table = {1: {2: 0.1, 4: 0.2}, 2: {2: 0.15, 4: 0.25}}
    plan = plan_cells(table, IDENT, IDENT, [1, 2, 4], [2, 4], force=False)
    assert plan.resumed and plan.todo == {4: [2, 4]}
    assert plan.skipped == [(1, 2), (1, 4), (2, 2), (2, 4)]
    # a new K extends every row, so the table stays rectangular
    plan = plan_cells(table, IDENT, IDENT, [1], [2, 8], force=False)
    assert plan.todo == {1: [8], 2: [8]} and plan.ks == [2, 4, 8]
    assert plan.note is not None and "b=2 K=8" in plan.note
    # another server, a hand-written table, or --force: replaced
    older = {k: v for k, v in IDENT.items() if k != "protocol"}  # timed the earlier way
    for prov, force in (({**IDENT, "server": "other"}, False), (None, False), (IDENT, True),
                        (older, False)):
        plan = plan_cells(table, prov, IDENT, [1, 2], [2], force=force)
        assert not plan.resumed and plan.keep == {} and plan.todo == {1: [2], 2: [2]}
    assert plan_cells(None, None, IDENT, [1], [2], False).todo == {1: [2]}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(0.001, 1.0), st.floats(0.0, 0.2)), min_size=1,
                max_size=40))
def test_a_cells_value_is_the_servers_step_plus_one_unqueued_handling(
        pairs: list[tuple[float, float]]) -> None:
    """Never above the client's median (every request saw at least the least handling)."""
    server = [s for s, _ in pairs]
    client = [s + o for s, o in pairs]
    cell = Cell(2, 2, client, [], None, 1.0, True, server)
    assert cell.server_clock
    assert statistics.median(server) <= cell.value <= cell.median * (1 + 1e-12)
    assert math.isclose(cell.value,
                        statistics.median(server) + min(o for _, o in pairs), rel_tol=1e-9)
    without = Cell(2, 2, client, [], None, 1.0, True)
    assert not without.server_clock and without.value == without.median


def _cell(value: float) -> Cell:
    return Cell(4, 2, [value], [], None, 1.0, True)


def test_a_superlinear_cell_is_measured_three_times_and_the_median_kept() -> None:
    below = (2, 0.100)  # a step of 4 should cost at most 1.15 x 0.2 s
    seen = iter([0.500, 0.210, 0.190])
    calls: list[float] = []

    def measure() -> Cell:
        calls.append(next(seen))
        return _cell(calls[-1])

    res = steady_value(measure, 4, below)
    assert res.times == 3 and res.cell.value == 0.500
    assert res.value == res.measured == statistics.median([0.500, 0.210, 0.190])
    assert not res.floored


@given(below=st.floats(0.01, 1.0), reads=st.lists(st.floats(0.001, 2.0), min_size=3,
                                                   max_size=3))
def test_a_table_cell_is_never_below_the_row_below(below: float,
                                                    reads: list[float]) -> None:
    """Whatever the reads, the recorded value keeps the table non-decreasing in b; it is
    the median of the reads taken, raised to the row below only when that median is lower;
    a cell is measured again exactly while its reads' median is implausible."""
    seen = iter(reads)
    taken: list[float] = []

    def measure() -> Cell:
        taken.append(next(seen))
        return _cell(taken[-1])

    res = steady_value(measure, 4, (2, below))
    assert res.value >= below
    assert res.measured == statistics.median(taken) and res.times == len(taken)
    assert res.value == max(res.measured, below)
    assert res.floored == (res.measured < below)
    for n in range(1, len(taken)):
        med = statistics.median(taken[:n])
        assert med < below or med > SUPERLINEAR * below * 2  # why it was measured again


def test_a_cell_within_proportional_growth_is_measured_once() -> None:
    calls = []

    def measure() -> Cell:
        calls.append(1)
        return _cell(0.229)

    for below in ((2, 0.100), None):  # None: no row below, nothing to compare
        res = steady_value(measure, 4, below)
        assert (res.value, res.times, res.floored) == (0.229, 1, False)
    assert len(calls) == 2
    assert not superlinear(0.229, 4, (2, 0.100)) and superlinear(0.231, 4, (2, 0.100))


def test_the_row_below_is_the_nearest_measured_one_at_that_k() -> None:
    table = {1: {2: 0.02, 4: 0.03}, 2: {2: 0.04}, 8: {2: 0.2, 4: 0.3}}
    assert row_below(table, 8, 2) == (2, 0.04)
    assert row_below(table, 8, 4) == (1, 0.03)
    assert row_below(table, 1, 2) is None


def test_a_cell_times_at_least_min_bursts_bursts(llama_server: LlamaServer) -> None:
    # precision 1.0 is met by any two requests: only min_bursts keeps the cell going
    ep = Endpoint.parse(llama_server.url)
    info = probe(ep, 30.0, "llama")
    pool = token_pool(ep, info, 30.0)
    clients = [Client(i, ep, info, pool, 32, 30.0, 0) for i in range(2)]
    try:
        opts = CellOptions(min_requests=2, max_requests=400, max_time_s=60.0, precision=1.0,
                           min_bursts=5)
        cell = measure_cell(clients, 3, opts)
    finally:
        for cl in clients:
            cl.close()
    assert cell.converged
    assert cell.bursts >= 5, cell.bursts
