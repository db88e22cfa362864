"""A batched verifier under the fleet's own load: T(b, K) and the load it settles at.

A continuous-batching server verifies the requests in flight together, so
one request's latency T(b, K) grows with b, the mean number of requests in
flight at one replica.  Devices in turn spend T(b, K) of every round R
waiting for the verifier, so by Little's law the fleet keeps
``b = sum_devices T(b, K_d) / R_d(b) / replicas`` requests in flight per
replica.  The load a fleet settles at from idle is the least b solving that
equation; T at fractional b interpolates linearly between measured rows, the
first row holds below it, and beyond the last row (or ``max_batch``) there is
no measurement, hence no feasible load.

Pure functions on plain numbers: the optimiser, the brute force in the tests
and the reports all read the same definition.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

LatencyTable = Mapping[int, Mapping[int, float]]

# Subdivisions of each interval between measured rows when searching for the
# least root; bisection then narrows the first sign change to `_B_TOL`.
_SCAN_STEPS = 64
_B_TOL = 1e-12


def rows(table: LatencyTable) -> list[int]:
    """The measured in-flight counts b, ascending."""
    return sorted(table)


def ks(table: LatencyTable) -> list[int]:
    """The K values the table measured (the same in every row)."""
    return sorted(table[rows(table)[0]])


def b_limit(table: LatencyTable, max_batch: int) -> float:
    """The largest in-flight count the model knows: the last row, capped by max_batch."""
    return float(min(rows(table)[-1], max_batch))


def latency_at(table: LatencyTable, b: float, k: int) -> float:
    """T(b, K): linear between measured rows, the first row's value below it.

    Raises ValueError beyond the last row or for an unmeasured K, because a
    latency that was never measured must not be invented.
    """
    bs = rows(table)
    if k not in table[bs[0]]:
        raise ValueError(f"K={k} was not measured")
    if b <= bs[0]:
        return float(table[bs[0]][k])
    if b > bs[-1]:
        raise ValueError(f"b={b:g} is beyond the last measured row b={bs[-1]}")
    j = bisect.bisect_left(bs, b)
    hi = bs[j]
    if hi == b:
        return float(table[hi][k])
    lo = bs[j - 1]
    w = (b - lo) / (hi - lo)
    return float(table[lo][k]) * (1.0 - w) + float(table[hi][k]) * w


@dataclass(frozen=True)
class Rider:
    """Devices that share one verifier: n of them drafting K tokens per round.

    ``busy_s`` is everything in a round that is not verification (drafting,
    catch-up, rtt, client overhead): R(b) = busy_s + T(b, K).
    """

    n: float
    k: int
    busy_s: float


def in_flight(table: LatencyTable, riders: Sequence[Rider], b: float) -> float:
    """sum_d n_d * T(b, K_d) / R_d(b): requests in flight fleet-wide if latency were T(b, .)."""
    total = 0.0
    for r in riders:
        t = latency_at(table, b, r.k)
        total += r.n * t / (r.busy_s + t)
    return total


def least_fixed_point(table: LatencyTable, max_batch: int, riders: Sequence[Rider],
                      replicas: int) -> float | None:
    """The least b >= 0 with b = in_flight(b) / replicas, or None if none within the table.

    The residual h(b) = in_flight(b)/replicas - b is positive at b = 0 (when
    anyone rides) and continuous; the first sign change is found by scanning
    each interval between measured rows and bisecting, and the root is
    returned only if it lies within the measured range and max_batch.
    """
    if replicas <= 0:
        return 0.0 if not any(r.n > 0 for r in riders) else None
    if not any(r.n > 0 for r in riders):
        return 0.0
    end = b_limit(table, max_batch)

    def h(b: float) -> float:
        return in_flight(table, riders, b) / replicas - b

    points = [0.0] + [float(b) for b in rows(table) if b < end] + [end]
    grid: list[float] = []
    for lo, hi in itertools.pairwise(points):
        if hi <= lo:
            continue
        grid.extend(lo + (hi - lo) * i / _SCAN_STEPS for i in range(_SCAN_STEPS))
    grid.append(end)
    prev_b, prev_h = grid[0], h(grid[0])
    for b in grid[1:]:
        hb = h(b)
        if hb <= 0.0:
            return _bisect(h, prev_b, b) if prev_h > 0.0 else prev_b
        prev_b, prev_h = b, hb
    return None


def _bisect(h: Callable[[float], float], lo: float, hi: float) -> float:
    """The sign change of h in [lo, hi] (h(lo) > 0 >= h(hi)); returns the right end."""
    while hi - lo > _B_TOL * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        if h(mid) > 0.0:
            lo = mid
        else:
            hi = mid
    return hi
