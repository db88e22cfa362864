"""A fleet on one batched verifier, simulated step by step from the measured T(n, K).

Why it exists: the optimiser's load model (`verifier_load`) is a mean-value
approximation: a request waits half a step and then runs in a step of the mean
size.  A continuous-batching server such as llama-server forms each decode step
from the requests waiting when the step starts, and devices whose drafting time is
nearly constant return at nearly the same offset into the next step.  The fleet
then settles into cohorts that alternate on the server (the fleet trial saw steps
of 5 and 11 requests at N = 16, never 8), and on a step cost that is concave in n
uneven steps are cheaper than the mean says.  Which cohorts form depends on how
the devices started, so no closed formula gives it; this module plays the queue
forward instead, with nothing but measured quantities: the table T(n, K), each
device's drafting time (with its jitter), rtt and round overhead.

The server is *gated*: a step starts when the previous one ends (or, when idle, the
moment a request arrives) and takes every request waiting at that moment, up to the
server's slots; a request that arrives during a step waits for the next.  A step of
n requests lasts T(n, K) (`verifier_load.latency_at`); a step mixing several K lasts
the mean of its members' T(n, K), an approximation the trial's split pools use.

The simulation is deterministic for a seed; `simulate` averages several seeds
(several start phases), because the cohorts a fleet falls into vary from run to run.
"""

from __future__ import annotations

import heapq
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from configspec_opt.verifier_load import LatencyTable, latency_at, rows


@dataclass(frozen=True)
class SimDevice:
    """One device: K, its drafting time (mean), the rest of its round and what it emits.

    A round is: draft for `draft_s` x U[1 - jitter, 1 + jitter], then `rtt_s` plus
    `overhead_s` (client and wire time outside the server's step), then the request
    waits for and runs in a step.  `rounds` rounds emit `tokens` tokens in all (a count
    where a replay counted them, the expectation where the rounds are modelled).
    """

    k: int
    draft_s: float
    rounds: int
    tokens: float
    rtt_s: float = 0.0
    overhead_s: float = 0.0
    jitter: float = 0.0


@dataclass(frozen=True)
class SimRun:
    """One simulated run: per-device goodput and the steps the server ran."""

    goodput: list[float]          # tokens/s per device (emitted / its wall time)
    latency_s: float              # mean request latency (wait + step)
    steps: int
    step_sizes: dict[int, int]    # step size n -> how many steps of n

    @property
    def mean_goodput(self) -> float:
        """Mean goodput per device, as the fleet trial reports it."""
        return statistics.fmean(self.goodput)

    @property
    def request_weighted_step(self) -> float:
        """The mean size of the step a request runs in (what a request sees)."""
        reqs = sum(n * c for n, c in self.step_sizes.items())
        return sum(n * n * c for n, c in self.step_sizes.items()) / reqs if reqs else 0.0


@dataclass(frozen=True)
class SimResult:
    """Several seeds of the same fleet: their mean and spread."""

    runs: list[SimRun]

    @property
    def goodput(self) -> float:
        """Mean goodput per device, averaged over the seeds."""
        return statistics.fmean(r.mean_goodput for r in self.runs)

    @property
    def goodput_range(self) -> tuple[float, float]:
        """The lowest and highest per-seed mean goodput (how much the cohorts matter)."""
        g = [r.mean_goodput for r in self.runs]
        return min(g), max(g)

    @property
    def latency_s(self) -> float:
        """Mean request latency over the seeds."""
        return statistics.fmean(r.latency_s for r in self.runs)


def step_time(table: LatencyTable, ks: Sequence[int]) -> float:
    """The duration of one step running requests of these K (the mean of their T(n, K))."""
    n = float(len(ks))
    return statistics.fmean(latency_at(table, n, k) for k in ks)


def run_once(table: LatencyTable, devices: Sequence[SimDevice], slots: int | None = None,
             seed: int = 0, phases: Sequence[float] | None = None) -> SimRun:
    """Play one run forward: every device starts at a random phase of its first round.

    `slots`: the most requests one step takes (None: the table's last row).  `phases`:
    each device's start time instead of a random one (as the fleet trial's replay draws
    it: uniform over the device's drafting time plus rtt).
    """
    if not devices:
        raise ValueError("no devices to simulate")
    cap = slots if slots is not None else int(rows(table)[-1])
    if cap < 1:
        raise ValueError("a server needs at least one slot")
    rng = [random.Random(seed * 1_000_003 + i) for i in range(len(devices))]

    def think(i: int) -> float:
        d = devices[i]
        return (d.draft_s * rng[i].uniform(1.0 - d.jitter, 1.0 + d.jitter)
                + d.rtt_s + d.overhead_s)

    start = ([rng[i].random() * (d.draft_s + d.rtt_s) for i, d in enumerate(devices)]
             if phases is None else [float(x) for x in phases])
    if len(start) != len(devices):
        raise ValueError(f"{len(start)} phases for {len(devices)} devices")
    left = [d.rounds for d in devices]
    finish = list(start)
    arrivals: list[tuple[float, int]] = []
    for i, d in enumerate(devices):
        if d.rounds > 0:
            heapq.heappush(arrivals, (start[i] + think(i), i))
    free_at = 0.0
    sizes: dict[int, int] = {}
    latencies: list[float] = []
    while arrivals:
        begin = max(free_at, arrivals[0][0])
        members: list[tuple[float, int]] = []
        while arrivals and arrivals[0][0] <= begin and len(members) < cap:
            members.append(heapq.heappop(arrivals))
        end = begin + step_time(table, [devices[i].k for _, i in members])
        sizes[len(members)] = sizes.get(len(members), 0) + 1
        for arrived, i in members:
            latencies.append(end - arrived)
            left[i] -= 1
            finish[i] = end
            if left[i] > 0:
                heapq.heappush(arrivals, (end + think(i), i))
        free_at = end
    goodput = [d.tokens / (finish[i] - start[i]) if finish[i] > start[i] else 0.0
               for i, d in enumerate(devices)]
    return SimRun(goodput, statistics.fmean(latencies), sum(sizes.values()), sizes)


def simulate(table: LatencyTable, devices: Sequence[SimDevice], slots: int | None = None,
             seeds: int = 16, replicas: int = 1) -> SimResult:
    """`run_once` over `seeds` seeds (0, 1, ...): the expected fleet and its spread.

    With several replicas device i runs on replica i mod `replicas` (replicas do not
    interact); a seed's run then joins every replica's devices.
    """
    if replicas < 1:
        raise ValueError("replicas must be at least 1")
    groups = [[d for i, d in enumerate(devices) if i % replicas == r]
              for r in range(replicas)]
    runs = []
    for s in range(seeds):
        parts = [run_once(table, g, slots, s * replicas + r)
                 for r, g in enumerate(groups) if g]
        runs.append(parts[0] if len(parts) == 1 else _joined(parts))
    return SimResult(runs)


def _joined(parts: Sequence[SimRun]) -> SimRun:
    sizes: dict[int, int] = {}
    for p in parts:
        for n, c in p.step_sizes.items():
            sizes[n] = sizes.get(n, 0) + c
    reqs = [sum(n * c for n, c in p.step_sizes.items()) for p in parts]
    latency = sum(p.latency_s * r for p, r in zip(parts, reqs, strict=True)) / sum(reqs)
    return SimRun([g for p in parts for g in p.goodput], latency,
                  sum(p.steps for p in parts), sizes)
