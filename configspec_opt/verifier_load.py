"""A batched verifier under the fleet's own load: T(b, K) and the load it settles at.

A continuous-batching server verifies the requests in flight together, so
one request's latency grows with the batch it is verified in.  The table
T(n, K) is measured with n requests verified together in one step.  Devices
spend part of every round R waiting for the verifier, so by Little's law the
fleet keeps ``b = sum_devices s_d / replicas`` requests in flight per
replica, with ``s_d = T_d / R_d`` the share of its round a device has a
request there.

What does a request see?  By the arrival theorem of closed queueing networks
(the basis of mean value analysis) a device's request finds the others as
they are on average, ``m = max(0, b - s_d)`` of them in flight.  It does not
join a step already running: llama-server (like vLLM and SGLang) forms each
step from the requests waiting when it starts.  So it waits for the rest of
the step in progress, half of it on average, and is then verified in the
next step together with the requests that arrived meanwhile
(`request_latency`):

- ``m <= 1``: the others are in a step of their own (T(1, K)) when the
  server is busy, which it is with probability m:
  ``T_d = T(1, K) * (1 + m / 2)``;
- ``m >= 1``: steps follow each other; with n requests per step a request
  finds the n of the step in progress and half of the other n - 1 of its
  own, so ``m = n + (n - 1) / 2``, ``n = (2m + 1) / 3``, and
  ``T_d = 1.5 * T(n, K)`` (the half step it waits plus its own).

Both agree at m = 1 and T_d never falls as m grows.  Since s_d depends on
T_d, each device's share is a one-dimensional fixed point.  The fleet trial
against llama-server measured this view against the earlier one (the request
joins the others: T(1 + m, K)), which was up to 17 % pessimistic at N = 4-8
devices and wrong in kind for a verifier whose step time is flat in n
(docs/trial.md).  The load a fleet settles at from idle is the least b
solving the equation; T at a fractional n interpolates linearly between
measured rows, the first row holds below it, and more than the last row (or
``max_batch``) in flight, 1 + m, is not a feasible load.

Pure functions on plain numbers: the optimiser, the brute force in the tests
and the reports all read the same definition.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LatencyTable = Mapping[int, Mapping[int, float]]

# Subdivisions of each interval between measured rows when searching for the
# least root; bisection then narrows the first sign change to `_B_TOL`.
_SCAN_STEPS = 64
_B_TOL = 1e-12
# From this many riders on, `in_flight` evaluates them on numpy arrays.
_VECTOR_FROM = 8


def rows(table: LatencyTable) -> list[int]:
    """The measured in-flight counts b, ascending."""
    return sorted(table) if not isinstance(table, dict) else _sorted_keys(table)


def _sorted_keys(table: Mapping[int, Mapping[int, float]]) -> list[int]:
    keys = list(table)
    return keys if all(a < b for a, b in itertools.pairwise(keys)) else sorted(keys)


def ks(table: LatencyTable) -> list[int]:
    """The K values the table measured (the same in every row)."""
    return sorted(table[rows(table)[0]])


def b_limit(table: LatencyTable, max_batch: int) -> float:
    """The largest in-flight count the model knows: the last row, capped by max_batch."""
    return float(min(rows(table)[-1], max_batch))


def request_latency(table: LatencyTable, k: int, others: float) -> float:
    """T_d of a request that finds `others` (m) requests in flight; see the module doc.

    The caller checks that 1 + m stays within the table.
    """
    if others <= 1.0:
        return latency_at(table, 1.0, k) * (1.0 + 0.5 * others)
    return 1.5 * latency_at(table, (2.0 * others + 1.0) / 3.0, k)


def batch_latency(table: LatencyTable, max_batch: int, b: float, k: int,
                  busy_s: float) -> float | None:
    """T_d: the latency of one device's request when b are in flight per replica.

    Solves s = T_d(m) / (busy_s + T_d(m)), m = max(0, b - s), for the device's
    own share s (the right side falls as s grows, so the root is unique) and
    returns T_d there; None when 1 + m exceeds the table or max_batch.
    """
    limit = b_limit(table, max_batch)

    def t_at(share: float) -> float | None:
        m = max(0.0, b - share)
        return None if 1.0 + m > limit else request_latency(table, k, m)

    if t_at(1.0) is None:
        return None
    lo, hi = 0.0, 1.0
    while hi - lo > _B_TOL:
        mid = 0.5 * (lo + hi)
        t = t_at(mid)
        if t is None or t / (busy_s + t) > mid:  # None: too many in flight, s too small
            lo = mid
        else:
            hi = mid
    t = t_at(hi)
    if t is None or abs(t / (busy_s + t) - hi) > 4 * _B_TOL:
        return None  # the sign change is the table's edge: the root lies beyond it
    return t


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


def in_flight(table: LatencyTable, max_batch: int, riders: Sequence[Rider],
              b: float) -> float | None:
    """sum_d n_d * T_d / R_d: requests in flight fleet-wide if b were in flight per replica.

    None when some device's request would find more in flight than the table covers.
    Many riders are evaluated together (`batch_latency_many`): the fixed-point scan
    calls this a few hundred times per verifier for every plan the solver settles.
    """
    if len(riders) > _VECTOR_FROM:
        seen = batch_latency_many(table, max_batch, b, [r.k for r in riders],
                                  [r.busy_s for r in riders])
        total = 0.0
        for r, t in zip(riders, seen, strict=True):
            if t is None:
                return None
            total += r.n * t / (r.busy_s + t)
        return total
    total = 0.0
    for r in riders:
        t = batch_latency(table, max_batch, b, r.k, r.busy_s)
        if t is None:
            return None
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
        load = in_flight(table, max_batch, riders, b)
        return math.inf if load is None else load / replicas - b

    points = [0.0] + [float(b) for b in rows(table) if b < end] + [end]
    grid: list[float] = []
    for lo, hi in itertools.pairwise(points):
        if hi <= lo:
            continue
        grid.extend(lo + (hi - lo) * i / _SCAN_STEPS for i in range(_SCAN_STEPS))
    grid.append(end)
    for i, hb in enumerate(_residuals(table, max_batch, riders, replicas, grid)):
        if i == 0:
            prev_b, prev_h = grid[0], hb
            continue
        b = grid[i]
        if hb == math.inf:  # past the table: a root can only sit on its edge
            edge = _edge(h, prev_b, b)
            return edge if h(edge) <= 1e-9 * max(1.0, edge) else None
        if hb <= 0.0:
            return _bisect(h, prev_b, b) if prev_h > 0.0 else prev_b
        prev_b, prev_h = b, hb
    return None


def _residuals(table: LatencyTable, max_batch: int, riders: Sequence[Rider], replicas: int,
               grid: Sequence[float]) -> list[float]:
    """h(b) = in_flight(b)/replicas - b at every point of the scan (inf past the table).

    Many riders: one numpy bisection over every (point, rider) pair at once.
    """
    if len(riders) <= _VECTOR_FROM:
        out = []
        for b in grid:
            load = in_flight(table, max_batch, riders, b)
            out.append(math.inf if load is None else load / replicas - b)
        return out
    nr = len(riders)
    seen = batch_latency_many(table, max_batch, [b for b in grid for _ in range(nr)],
                              [r.k for r in riders] * len(grid),
                              [r.busy_s for r in riders] * len(grid))
    out = []
    for i, b in enumerate(grid):
        total = 0.0
        for r, t in zip(riders, seen[i * nr:(i + 1) * nr], strict=True):
            if t is None:
                total = math.inf
                break
            total += r.n * t / (r.busy_s + t)
        out.append(total / replicas - b if math.isfinite(total) else math.inf)
    return out


def _bisect(h: Callable[[float], float], lo: float, hi: float) -> float:
    """The sign change of h in [lo, hi] (h(lo) > 0 >= h(hi)); returns the right end."""
    while hi - lo > _B_TOL * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        if h(mid) > 0.0:
            lo = mid
        else:
            hi = mid
    return hi


def _edge(h: Callable[[float], float], lo: float, hi: float) -> float:
    """The last b in [lo, hi] where h is finite (h(lo) finite, h(hi) infinite)."""
    while hi - lo > _B_TOL * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        if h(mid) == math.inf:
            hi = mid
        else:
            lo = mid
    return lo


def batch_latency_many(table: LatencyTable, max_batch: int, b: float | Sequence[float],
                       k: Sequence[int], busy_s: Sequence[float]) -> list[float | None]:
    """`batch_latency` for many devices (each at `b`, or at its own b): numpy arrays.

    A fleet of 1,000 pools has 100,000 candidates on one verifier, and the solver
    asks for their latency at every load it tries; one scalar bisection each would
    take seconds.  Each step does what `batch_latency` does, elementwise, so the
    results agree with it to the bisection's tolerance.  numpy is imported here: the
    solvers need it, the reports that read the scalar functions do not.
    """
    import numpy as np

    limit = b_limit(table, max_batch)
    ks_ = np.asarray(k, dtype=np.int64)
    busy = np.asarray(busy_s, dtype=np.float64)
    n = len(ks_)
    if n == 0:
        return []
    load = np.broadcast_to(np.asarray(b, dtype=np.float64), (n,))
    bs = np.asarray([float(x) for x in rows(table)])
    first = table[rows(table)[0]]
    for kk in set(ks_.tolist()):
        if int(kk) not in first:
            raise ValueError(f"K={int(kk)} was not measured")
    by_k = {kk: [float(table[r][kk]) for r in rows(table)] for kk in set(ks_.tolist())}
    curve = np.asarray([by_k[kk] for kk in ks_.tolist()]).reshape(n, len(bs))
    at_first = curve[:, 0]
    span = np.diff(bs)
    rows_n = np.arange(n)

    def latency(at: Any) -> Any:
        """T(at, K) per element: `latency_at`'s linear interpolation, on arrays."""
        if len(bs) == 1:
            return at_first.copy()
        j = np.clip(np.searchsorted(bs, at, side="left"), 1, len(bs) - 1)
        w = np.clip((at - bs[j - 1]) / span[j - 1], 0.0, 1.0)
        low = curve[rows_n, j - 1]
        return np.where(at <= bs[0], at_first, low * (1.0 - w) + curve[rows_n, j] * w)

    def request(others: Any) -> Any:
        low = others <= 1.0
        t = latency(np.where(low, 1.0, (2.0 * others + 1.0) / 3.0))
        return np.where(low, t * (1.0 + 0.5 * others), 1.5 * t)

    def t_at(share: Any) -> tuple[Any, Any]:
        m = np.maximum(0.0, load - share)
        return request(m), 1.0 + m > limit

    lo, hi = np.zeros(n), np.ones(n)
    while float(np.max(hi - lo)) > _B_TOL:
        mid = 0.5 * (lo + hi)
        t, over = t_at(mid)
        up = over | (t / (busy + t) > mid)
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    t, over = t_at(hi)
    bad = over | (np.abs(t / (busy + t) - hi) > 4 * _B_TOL) | (np.maximum(0.0, load - 1.0)
                                                               + 1.0 > limit)
    return [None if x else float(v) for x, v in zip(bad.tolist(), t.tolist())]
