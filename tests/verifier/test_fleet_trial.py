"""Fleet trial end to end: a real recording replayed by 2 devices against a real llama-server.

Properties that hold on any machine; no timing thresholds.  The server, its binary and
SmolLM2 are tests/verifier/conftest.py's fixtures: without the llama-server binary the test
skips with the build command in the message.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiler import fleet_trial as ft
from profiler.llama_server import LlamaServer
from profiler.verifier_profile import CellOptions, spread_slot

pytest.importorskip("llama_cpp")

N, K, TOKENS = 2, 2, 16
TEXTS = ("What causes the seasons on Earth?",
         "What is the difference between a virus and a bacterium?")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory,
               smollm2_gguf: Path) -> dict[int, ft.Recording]:
    d = tmp_path_factory.mktemp("fleet")
    draft = ft.requantised_draft(smollm2_gguf, d)  # as tests/profiler/conftest.py's smollm2_q4_0
    recs = ft.record(draft, smollm2_gguf, TEXTS, [K, K + 1], TOKENS, threads=2, n_ctx=512)
    return {r.k: r for r in recs}


@pytest.fixture(scope="module")
def recording(recordings: dict[int, ft.Recording]) -> ft.Recording:
    return recordings[K]


def test_spread_slots_are_distinct_and_span_the_server() -> None:
    for slots in (1, 2, 4, 16, 64):
        for count in range(1, slots + 1):
            got = [spread_slot(i, count, slots) for i in range(count)]
            assert got[0] == 0
            assert len(set(got)) == count
            assert all(s is not None and 0 <= s < slots for s in got)
            last = got[-1]
            assert last is not None and last >= slots - -(-slots // count)  # within one gap
    assert spread_slot(0, 3, 2) is None  # more clients than slots: the server picks
    assert spread_slot(0, 1, None) is None


_rows = st.lists(st.floats(0.001, 2.0), min_size=1, max_size=5).map(
    lambda xs: {2 ** i: {2: x} for i, x in enumerate(sorted(xs))})


@given(_rows, st.lists(st.floats(0.5, 2.0), min_size=5, max_size=5))
def test_the_bracketed_table_lies_between_its_two_measurements(
        before: dict[int, dict[int, float]], scale: list[float]) -> None:
    after = {b: {2: row[2] * scale[i]} for i, (b, row) in enumerate(sorted(before.items()))}
    for b in sorted(after)[1:]:  # the second measurement is non-decreasing in b too
        after[b][2] = max(after[b][2], after[b // 2][2])
    mean, drift = ft.bracketed(before, after)
    assert set(mean) == set(before) == set(drift)
    for b in before:
        lo, hi = sorted((before[b][2], after[b][2]))
        assert lo <= mean[b][2] <= hi
        assert math.isclose(drift[b], abs(after[b][2] / before[b][2] - 1.0))
        for n in (1, b, 2 * b):  # a fleet of n reads the rows up to n
            assert ft.drift_upto(drift, n) >= drift[b] or b > max(n, 1)
    assert ft.drift_upto(drift, 1) == drift[1]
    bs = sorted(mean)
    assert all(mean[lo][2] <= mean[hi][2] for lo, hi in itertools.pairwise(bs))
    assert set(ft.bracketed(before, before)[1].values()) == {0.0}


@given(st.lists(st.tuples(st.integers(1, 16), st.floats(0.02, 1.0)), min_size=1, max_size=30),
       st.randoms(use_true_random=False))
def test_fleet_steps_are_rebuilt_from_the_requests_server_times(
        steps: list[tuple[int, float]], rnd: Any) -> None:
    """Back-to-back steps of n requests: each request reports its step's time (+ under
    0.2 ms of sampling) and reaches its client up to min(5 ms, a quarter step) after it."""
    devices: dict[int, ft.DeviceResult] = {}
    end = 0.0
    for n, d in steps:
        end += d
        for i in range(n):
            dev = devices.setdefault(i, ft.DeviceResult(i, 0, 0, 0, 1.0, 0.0, 0.0, True, None))
            srv = d + rnd.uniform(0.0, 2e-4)
            arrive = end + rnd.uniform(0.0, min(5e-3, d / 4))
            dev.served.append((arrive, srv, srv + 1e-3))
    got = ft.fleet_steps(list(devices.values()))
    assert [n for n, _ in got] == [n for n, _ in steps]
    # the sampling may draw 2e-4 itself, and (d + 2e-4) - d rounds a little above it
    assert all(abs(t - d) <= 2e-4 + 1e-9 for (_, t), (_, d) in zip(got, steps, strict=True))


def _devices_on_slots(steps: list[list[int]], slots: int) -> list[ft.DeviceResult]:
    """Back-to-back steps of 50 ms, each of the devices on the given slots (device = slot)."""
    devices = {i: ft.DeviceResult(i, 0, 0, 0, 1.0, 0.0, 0.0, True, None, slot=i)
               for i in range(slots)}
    end = 0.0
    for j, held in enumerate(steps):
        end += 0.05 + 1e-3 * j  # distinct step times, as a real run's are
        for x in held:
            devices[x].served.append((end, 0.05 + 1e-3 * j, 0.051))
    return list(devices.values())


def _spread_span(n: int, slots: int) -> int:
    return (n - 1) * slots // n


@given(st.lists(st.sets(st.integers(0, 15), min_size=2), min_size=1, max_size=12))
def test_step_span_compares_each_steps_slot_range_with_the_tables(steps: list[set[int]]) -> None:
    """A step on the table's own (spread) slots reads 1; on neighbouring slots (n - 1) over
    the table's range; any step between those two bounds and (slots - 1) over the range."""
    slots = 16
    got = ft.step_span(_devices_on_slots([sorted(x) for x in steps], slots), slots)
    lows = [(len(x) - 1) / _spread_span(len(x), slots) for x in steps]
    highs = [(slots - 1) / _spread_span(len(x), slots) for x in steps]
    assert got is not None
    assert sum(lows) / len(lows) - 1e-12 <= got <= sum(highs) / len(highs) + 1e-12
    spread = [[i * slots // len(x) for i in range(len(x))] for x in steps]
    assert ft.step_span(_devices_on_slots(spread, slots), slots) == pytest.approx(1.0)
    packed = [list(range(len(x))) for x in steps]
    assert ft.step_span(_devices_on_slots(packed, slots), slots) == pytest.approx(
        sum(lows) / len(lows))


def test_step_span_needs_steps_of_two_on_known_slots() -> None:
    assert ft.step_span(_devices_on_slots([[3], [5]], 16), 16) is None
    unknown = [ft.DeviceResult(i, 0, 0, 0, 1.0, 0.0, 0.0, True, None) for i in range(2)]
    for d in unknown:
        d.served.append((1.0, 0.05, 0.051))
    assert ft.step_span(unknown, 16) is None


def test_recording_round_trips(recording: ft.Recording, tmp_path: Path) -> None:
    path = tmp_path / "rec.json"
    ft.save_recordings(path, [recording])
    (back,) = ft.load_recordings(path)
    assert back == recording
    for p in recording.prompts:
        assert len(p.tokens) == TOKENS
        assert all(len(r.drafted) == K and 0 <= r.accepted <= K for r in p.rounds)
        assert p.replay_context() == p.prompt + p.tokens


def test_replay_against_llama_server(recording: ft.Recording,
                                     llama_server: LlamaServer) -> None:
    run = ft.replay(llama_server.url, recording, N, v_d=200.0)
    assert len(run.devices) == N
    for d in run.devices:
        want = recording.prompts[d.prompt]
        assert d.emitted == len(want.tokens)
        assert d.rounds == len(want.rounds)
        assert d.context_ok  # the replayed context equals the recorded prompt + output
        assert d.goodput > 0
        assert d.processed_median is None or d.processed_median >= 1
    assert 0.0 <= run.b_steady <= N
    assert 0.0 <= run.b_whole <= N
    table, _ = ft.measure_table(llama_server.url, [1, 2], [K], context_tokens=48)
    pr = ft.predict(table, recording, N, 200.0)
    assert pr.g_blind > 0
    # the simulation's devices draft at least (1 - jitter) K/v_d and verify at least T(1, K)
    assert pr.g_sim is not None and 0 < pr.g_sim <= pr.g_blind / (1 - ft.JITTER)
    assert pr.b is None or 0.0 <= pr.b <= N
    # the steps rebuilt from the requests' server times hold every request once, no step
    # holds more than N, and their mean size is the server's own count (busy slots/decode)
    steps = ft.fleet_steps(run.devices)
    assert sum(n for n, _ in steps) == sum(d.rounds for d in run.devices)
    assert all(1 <= n <= N and t > 0 for n, t in steps)
    if run.server_batch is not None:
        mean = sum(n for n, _ in steps) / len(steps)
        assert abs(mean - run.server_batch) <= 0.25 * run.server_batch, (mean, run.server_batch)
    scale = ft.step_scale(run.devices, table, K)
    assert scale is not None and scale > 0


def test_a_split_fleet_replays_each_devices_own_recording(
        recordings: dict[int, ft.Recording], llama_server: LlamaServer) -> None:
    """`mix`: device 0 drafts K, device 1 K + 1 (a split pool), each its own recording."""
    mix = [(recordings[K], 200.0), (recordings[K + 1], 100.0)]
    run = ft.replay(llama_server.url, recordings[K], 2, 200.0, mix=mix)
    for d, (rec, _) in zip(sorted(run.devices, key=lambda d: d.device), mix):
        want = rec.prompts[d.prompt]
        assert d.rounds == len(want.rounds)
        assert d.emitted == len(want.tokens)
        assert d.context_ok
    with pytest.raises(ValueError, match="mix names 1 devices"):
        ft.replay(llama_server.url, recordings[K], 2, 200.0, mix=mix[:1])


def test_phases_start_each_device_where_it_is_told(recording: ft.Recording,
                                                  llama_server: LlamaServer) -> None:
    """`phases`: device 1 sends its first request no sooner than its offset allows.

    Device 0 starts at once and drafts K/v_d x at most (1 + jitter) before its first
    request; device 1 sleeps 0.5 s first, and a sleep never ends early.
    """
    run = ft.replay(llama_server.url, recording, N, v_d=200.0, phases=[0.0, 0.5])
    first = {d.device: d.intervals[0][0] for d in run.devices}
    assert first[1] - first[0] >= 0.5 - K / 200.0 * (1 + ft.JITTER)
    assert all(d.context_ok for d in run.devices)
    for bad in ([0.0], [0.0, -1.0]):
        with pytest.raises(ValueError, match="phases must be 2 offsets"):
            ft.replay(llama_server.url, recording, N, v_d=200.0, phases=bad)


def test_run_fleet_brackets_the_table_and_reports_every_point(
        recording: ft.Recording, llama_server: LlamaServer) -> None:
    cell = CellOptions(min_requests=6, max_requests=40, max_time_s=2.0, precision=0.1,
                       min_bursts=3)
    rows, info = ft.run_fleet(llama_server.url, [recording], [1, N], 200.0, cell=cell)
    assert [(r.n, r.k) for r in rows] == [(1, K), (N, K)]
    before, after = info["table_sides_s"]["before"], info["table_sides_s"]["after"]
    for b, row in info["table_s"].items():  # the table used lies between its two measurements
        lo, hi = sorted((before[str(b)][K], after[str(b)][K]))
        assert lo <= row[K] <= hi
    for r in rows:
        assert r.contexts_ok and r.g_meas > 0 and r.g_blind > 0
        assert r.table_drift is not None and r.table_drift >= 0.0
        assert r.step_scale is not None and r.step_scale > 0
        # the fixed point needs a positive busy time per round (drafting + overhead); on a
        # loaded machine the measured overhead can be more negative than drafting is long
        busy_s = r.draft_ms / 1e3 + r.overhead_s
        assert (r.g_aware_steps is not None and r.g_aware_steps > 0) or busy_s <= 1e-3, \
            (r, busy_s)
        # N devices sit on the slots the table's step of N uses: a step of all N spans
        # exactly the table's range (if the two ever met in one), one alone has no span
        assert r.step_span is None or (r.n == N and r.step_span == pytest.approx(1.0))
    assert "within 10%, all points (2)" in ft.markdown(rows)


def _row(g_meas: float, g_aware: float, drift: float) -> ft.Row:
    return ft.Row(4, K, 0.5, 1.8, 1.0, 1.0, None, 1.0, g_meas, 2.0 * g_meas, g_aware, 0.0,
                  100.0, 50.0, True, g_meas, drift)


def test_the_verdict_counts_points_within_ten_percent_and_the_steady_ones_apart() -> None:
    rows = [_row(10.0, 10.5, 0.02), _row(10.0, 12.0, 0.02), _row(10.0, 8.0, 0.3)]
    text = ft.verdict(rows)
    all_line, steady_line = text.splitlines()
    assert all_line.startswith("within 10%, all points (3)")
    assert "load-aware 1/3" in all_line and "worst +20.0%" in all_line
    assert "load-blind 0/3" in all_line and "simulated 3/3" in all_line
    assert steady_line.startswith("within 10%, table steady (2)")
    assert "load-aware 1/2" in steady_line
    # every point steady: one line
    assert len(ft.verdict(rows[:2]).splitlines()) == 1


def test_fleet_trial_refuses_a_recording_it_could_not_write(tmp_path: Path) -> None:
    """A --recording in a missing folder is refused before any decoding, not after it
    with a traceback from the atomic write (found trying the command's unhappy paths)."""
    from typer.testing import CliRunner

    from configspec_opt.cli import app

    where = tmp_path / "no-such-folder" / "rec.json"
    res = CliRunner().invoke(app, ["fleet-trial", "--recording", str(where), "--n", "1",
                                   "--k", "2"])
    assert res.exit_code == 2, res.output
    assert "does not exist" in res.output
    assert not where.parent.exists()
