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
# False-position passes of `batch_latency_array` before the rest is bisected.
_FALSE_POSITION_STEPS = 30
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
        return _in_flight_arrays(table, max_batch, riders, [b])[0]
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
    blocks: list[list[float]] = []
    for lo, hi in itertools.pairwise(points):
        if hi <= lo:
            continue
        blocks.append([lo + (hi - lo) * i / _SCAN_STEPS for i in range(_SCAN_STEPS)])
    blocks.append([end])
    grid = [b for block in blocks for b in block]
    # the scan in order, one interval between rows at a time: it stops at the first root
    scan = (hb for block in blocks
            for hb in _residuals(table, max_batch, riders, replicas, block))
    for i, hb in enumerate(scan):
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
    loads = _in_flight_arrays(table, max_batch, riders, grid)
    return [math.inf if load is None else load / replicas - b
            for load, b in zip(loads, grid, strict=True)]


def _in_flight_arrays(table: LatencyTable, max_batch: int, riders: Sequence[Rider],
                      loads: Sequence[float]) -> list[float | None]:
    """`in_flight` at every load of `loads`: one numpy pass over every (load, rider) pair."""
    import numpy as np

    nr = len(riders)
    n = np.array([r.n for r in riders], dtype=np.float64)
    k = np.array([r.k for r in riders], dtype=np.int64)
    busy = np.array([r.busy_s for r in riders], dtype=np.float64)
    at = np.repeat(np.asarray(loads, dtype=np.float64), nr)
    t, bad = batch_latency_array(table, max_batch, at, np.tile(k, len(loads)),
                                 np.tile(busy, len(loads)))
    t, bad = t.reshape(len(loads), nr), bad.reshape(len(loads), nr)
    total = (n * (t / (busy + t))).sum(axis=1)
    return [None if x else float(v) for x, v in zip(bad.any(axis=1).tolist(), total.tolist())]


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
    """`batch_latency` for many devices (each at `b`, or at its own b), as a list.

    A fleet of 1,000 pools has 100,000 candidates on one verifier, and the solver
    asks for their latency at every load it tries; one scalar bisection each would
    take seconds (`batch_latency_array` does them all at once).
    """
    t, bad = batch_latency_array(table, max_batch, b, k, busy_s)
    return [None if x else float(v) for x, v in zip(bad.tolist(), t.tolist())]


def batch_latency_array(table: LatencyTable, max_batch: int, b: Any, k: Any, busy_s: Any
                        ) -> tuple[Any, Any]:
    """`batch_latency` elementwise on numpy arrays: (latencies, where there is none).

    Each step does what `batch_latency` does, elementwise, so the results agree
    with it to the bisection's tolerance.  numpy is imported here: the solvers
    need it, the reports that read the scalar functions do not.
    """
    import numpy as np

    limit = b_limit(table, max_batch)
    ks_ = np.asarray(k, dtype=np.int64)
    busy = np.asarray(busy_s, dtype=np.float64)
    n = len(ks_)
    if n == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    load = np.broadcast_to(np.asarray(b, dtype=np.float64), (n,))
    bs = np.asarray([float(x) for x in rows(table)])
    first = table[rows(table)[0]]
    for kk in set(ks_.tolist()):
        if int(kk) not in first:
            raise ValueError(f"K={int(kk)} was not measured")
    uk, inv = np.unique(ks_, return_inverse=True)
    curve = np.asarray([[float(table[r][int(kk)]) for r in rows(table)] for kk in uk]
                       ).reshape(len(uk), len(bs))[inv.reshape(n)]
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

    def h(share: Any) -> Any:
        t, _ = t_at(share)
        return share - t / (busy + t)

    # h rises with s (the others' load, hence T, falls as the own share grows); below
    # s_min more than the table's batch is in flight.  False position with the
    # Illinois step brackets the root and converges in a few passes; what has not
    # converged then is bisected as before.
    s_min = np.clip(load - (limit - 1.0), 0.0, 1.0)
    lo, hi = s_min.copy(), np.ones(n)
    f_lo, f_hi = h(lo), h(hi)
    side = np.zeros(n)
    x = lo.copy()
    for _ in range(_FALSE_POSITION_STEPS):
        with np.errstate(invalid="ignore", divide="ignore"):
            x = np.where(f_lo >= 0.0, lo, hi - f_hi * (hi - lo) / (f_hi - f_lo))
        x = np.clip(np.where(np.isfinite(x), x, 0.5 * (lo + hi)), lo, hi)
        fx = h(x)
        up = fx < 0.0
        lo, f_lo = np.where(up, x, lo), np.where(up, fx, f_lo)
        hi, f_hi = np.where(up, hi, x), np.where(up, f_hi, fx)
        f_hi = np.where(up & (side > 0), 0.5 * f_hi, f_hi)  # Illinois: the stale end
        f_lo = np.where(~up & (side < 0), 0.5 * f_lo, f_lo)
        side = np.where(up, 1.0, -1.0)
        if float(np.max(np.abs(fx))) <= _B_TOL / 4:
            break
    slow = np.abs(h(x)) > _B_TOL / 4
    if slow.any():
        a, b_ = np.where(slow, 0.0, x), np.where(slow, 1.0, x)
        while float(np.max(b_ - a)) > _B_TOL:
            mid = 0.5 * (a + b_)
            t, over = t_at(mid)
            up = slow & (over | (t / (busy + t) > mid))
            a = np.where(up, mid, a)
            b_ = np.where(slow & ~up, mid, b_)
        x = np.where(slow, b_, x)
    t, over = t_at(x)
    bad = over | (np.abs(t / (busy + t) - x) > 4 * _B_TOL) | (np.maximum(0.0, load - 1.0)
                                                              + 1.0 > limit)
    return t, bad
