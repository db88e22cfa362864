"""The step simulation (`configspec_opt.verifier_sim`) against closed forms and an explicit loop.

The explicit loop is a different formulation of the same server (a clock that advances one
integer tick at a time); with integer times both are exact, so their steps must agree.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from configspec_opt.verifier_sim import SimDevice, run_once, simulate

FLAT = {1: {2: 30.0}, 16: {2: 30.0}}


def _table(per_row: list[float]) -> dict[int, dict[int, float]]:
    return {b: {2: t} for b, t in zip([1, 2, 4, 8], per_row, strict=True)}


def test_a_lone_device_runs_its_round_in_think_time_plus_one_step() -> None:
    table = _table([25.0, 40.0, 70.0, 130.0])
    d = SimDevice(2, draft_s=100.0, rounds=50, tokens=120, rtt_s=7.0, overhead_s=3.0)
    run = run_once(table, [d], seed=3)
    assert math.isclose(run.goodput[0], 120 / (50 * (100.0 + 7.0 + 3.0 + 25.0)), rel_tol=1e-12)
    assert run.step_sizes == {1: 50}


def test_separate_replicas_are_separate_lone_devices() -> None:
    table = _table([25.0, 40.0, 70.0, 130.0])
    devs = [SimDevice(2, 100.0, 20, 40)] * 4
    res = simulate(table, devs, seeds=3, replicas=4)
    for g in res.goodput_range:
        assert math.isclose(g, 40 / (20 * 125.0), rel_tol=1e-12)


def test_steady_devices_on_a_flat_step_fall_into_two_alternating_cohorts() -> None:
    """Z < c on a flat step c: each request waits for the other cohort's step, R -> 2c.

    (The mean-value model says Z + 1.5 c here; the cohorts are what it cannot see.)
    """
    devs = [SimDevice(2, draft_s=10.0, rounds=2000, tokens=2000)] * 6
    for seed in range(4):
        run = run_once(FLAT, devs, seed=seed)
        for g in run.goodput:
            assert math.isclose(g, 1 / 60.0, rel_tol=0.01)


def _explicit(table: dict[int, dict[int, float]], think: list[int], rounds: int,
              phases: list[int], cap: int) -> tuple[dict[int, int], list[int]]:
    """A tick-by-tick server: at each integer time, finish the step, then start the next."""
    n = len(think)
    arrive = [p + z for p, z in zip(phases, think, strict=True)]
    waiting: list[int] = []
    left = [rounds] * n
    finish = list(phases)
    busy_until = -1
    members: list[int] = []
    sizes: dict[int, int] = {}
    t = 0
    while any(left) or members:
        for i in range(n):
            if left[i] and arrive[i] == t:
                waiting.append(i)
        if members and t == busy_until:
            for i in members:
                left[i] -= 1
                finish[i] = t
                if left[i]:
                    arrive[i] = t + think[i]
                    if think[i] == 0:
                        waiting.append(i)
            members = []
        if not members and waiting:
            waiting.sort(key=lambda i: (arrive[i], i))
            members, waiting = waiting[:cap], waiting[cap:]
            sizes[len(members)] = sizes.get(len(members), 0) + 1
            busy_until = t + int(table_lookup(table, len(members)))
        t += 1
    return sizes, finish


def table_lookup(table: dict[int, dict[int, float]], n: int) -> float:
    rows = sorted(table)
    lo = max([r for r in rows if r <= n], default=rows[0])
    hi = min(r for r in rows if r >= n)
    if lo == hi:
        return table[lo][2]
    w = (n - lo) / (hi - lo)
    return table[lo][2] * (1 - w) + table[hi][2] * w


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=1, max_size=6),
       st.data(), st.integers(1, 6))
def test_the_simulation_steps_as_an_explicit_clock_does(think: list[int], data: st.DataObject,
                                                         cap: int) -> None:
    table = {1: {2: 12.0}, 2: {2: 20.0}, 4: {2: 36.0}, 8: {2: 68.0}}  # integer at every n
    phases = data.draw(st.lists(st.integers(0, 40), min_size=len(think), max_size=len(think)))
    rounds = 6
    devs = [SimDevice(2, float(z), rounds, rounds) for z in think]
    run = run_once(table, devs, slots=cap, phases=[float(p) for p in phases])
    sizes, finish = _explicit(table, think, rounds, phases, cap)
    assert run.step_sizes == sizes
    for i, g in enumerate(run.goodput):
        assert math.isclose(g, rounds / (finish[i] - phases[i]), rel_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.0, 50.0), min_size=4, max_size=4).map(sorted),
       st.lists(st.tuples(st.floats(0.0, 200.0), st.floats(0.0, 0.5)), min_size=1,
                max_size=12),
       st.integers(0, 5))
def test_no_device_beats_its_lone_round_and_the_server_never_beats_its_best_step(
        steps: list[float], devs_: list[tuple[float, float]], seed: int) -> None:
    table = _table([steps[0], steps[0] + steps[1], steps[0] + steps[1] + steps[2],
                    sum(steps)])
    devs = [SimDevice(2, z, 15, 30, jitter=j) for z, j in devs_]
    run = run_once(table, devs, slots=8, seed=seed)
    best_rate = max(n / table_lookup(table, n) for n in range(1, 9))
    for g, d in zip(run.goodput, devs, strict=True):
        assert g <= 30 / (15 * (d.draft_s * (1 - d.jitter) + table[1][2])) * (1 + 1e-9)
    reqs = sum(n * c for n, c in run.step_sizes.items())
    assert reqs == 15 * len(devs)
    assert run.request_weighted_step <= 8
    busy = sum(c * table_lookup(table, n) for n, c in run.step_sizes.items())
    assert reqs / busy <= best_rate * (1 + 1e-9)
