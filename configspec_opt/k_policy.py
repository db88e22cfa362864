"""A runtime K policy: per pool, the best K for each band of verifier load and of rtt.

The plan fixes K at the load the fleet settles at and at the rtt the spec declares.
At run time both move (the day's traffic, the network), and each candidate's goodput
moves with them as the model already says: G(K; b, rtt) = (K alpha_K + 1) / R with
R = drafting + overhead + rtt + T_d, where T_d is the latency of one request at b
requests in flight per replica (`verifier_load.batch_latency`, the arrival view), or
the target's fixed latency when it has no batched verifier.  A device (or a serving
layer) that watches b and rtt can switch K from a table instead of re-solving.

The table is built per (pool, configuration): for each rtt row (0.5x to 3x the
declared rtt) the load axis 0..load_max is scanned and every change of the argmax is
bisected to its exact switching point, so each load band's K is the argmax anywhere
on its row.  A row holds for the rtt values nearest to it (``rtt_from``..``rtt_to``,
midpoints between rows); off the row the K is a close approximation, and the test
suite bounds its loss.  For a target with a fixed verify latency only rtt matters:
the rows are then exact rtt bands, split at the bisected switching rtt.

The policy is a device's best response to the load it observes: switching K also
moves the load others see, which the plan (solved for the fleet) accounts for and
this table does not; `plan_k_at_plan_load` states whether the two agree where the
plan settled.  Pure functions on plain numbers; no numpy, no solver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from configspec_opt import verifier_load as vl
from configspec_opt.candidates import enumerate_candidates
from configspec_opt.spec import Spec

POLICY_KIND = "configspec-k-policy"
POLICY_VERSION = 1
RTT_FACTORS = tuple(0.5 + 0.25 * i for i in range(11))  # 0.5x .. 3x the declared rtt
RTT_WHEN_ZERO = tuple(0.01 * i for i in range(11))  # declared rtt 0: 0 .. 100 ms
LOAD_STEPS = 64
_TOL = 1e-9


@dataclass(frozen=True)
class Curve:
    """What G(K; b, rtt) reads for one configuration of a pool (plain numbers).

    ``base_s[K]`` is the part of a round that is neither rtt nor verification
    (drafting, catch-up, client overhead); ``fixed_s[K]`` the verify latency of a
    target without a batched verifier (``table`` None).
    """

    pool: str
    target: str
    draft: str
    quant: str
    plan_k: int
    rtt_s: float
    alpha: Mapping[int, float]
    base_s: Mapping[int, float]
    table: vl.LatencyTable | None = None
    max_batch: int = 0
    fixed_s: Mapping[int, float] = field(default_factory=dict)
    plan_load: float | None = None

    @property
    def ks(self) -> list[int]:
        """The candidate K values, ascending."""
        return sorted(self.alpha)

    @property
    def batched(self) -> bool:
        """Whether the verify latency depends on the load (a batched verifier)."""
        return self.table is not None

    def goodput(self, k: int, load: float, rtt: float) -> float | None:
        """G(K; b, rtt) in tok/s; None where the request would meet a batch past the table."""
        busy = self.base_s[k] + rtt
        if self.table is None:
            t: float | None = self.fixed_s[k]
        else:
            t = vl.batch_latency(self.table, self.max_batch, load, k, busy)
        if t is None:
            return None
        return (k * self.alpha[k] + 1.0) / (busy + t)

    def best(self, load: float, rtt: float) -> int | None:
        """The argmax K at (b, rtt); the smallest on an exact tie; None if no K is known there."""
        return self.best_many([load], rtt)[0]

    def best_many(self, loads: Sequence[float], rtt: float) -> list[int | None]:
        """`best` at many loads: every (load, K) latency in one vectorised call."""
        ks = self.ks
        if self.table is None:
            seen: Sequence[float | None] = [self.fixed_s[k] for k in ks] * len(loads)
        else:
            seen = vl.batch_latency_many(
                self.table, self.max_batch, [b for b in loads for _ in ks], ks * len(loads),
                [self.base_s[k] + rtt for k in ks] * len(loads))
        out: list[int | None] = []
        for i in range(len(loads)):
            found, top = None, -1.0
            for j, k in enumerate(ks):
                t = seen[i * len(ks) + j]
                if t is None:
                    continue
                g = (k * self.alpha[k] + 1.0) / (self.base_s[k] + rtt + t)
                if g > top:
                    found, top = k, g
            out.append(found)
        return out

    def load_max(self, rtt: float) -> float:
        """The largest load at which every K's latency is known up to this rtt.

        A longer round means a smaller own share of the load, so more others in its
        batch: the largest rtt is the binding one.  0 for a fixed latency.
        """
        if self.table is None:
            return 0.0
        limit = vl.b_limit(self.table, self.max_batch)
        lo, hi = max(0.0, limit - 1.0), limit

        def known(b: float) -> bool:
            return all(vl.batch_latency(self.table or {}, self.max_batch, b, k,
                                        self.base_s[k] + rtt) is not None for k in self.ks)
        if known(hi):
            return hi
        while hi - lo > _TOL * max(1.0, hi):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if known(mid) else (lo, mid)
        return lo


@dataclass(frozen=True)
class Band:
    """One K over a load interval [load_from, load_to] (load_to None: any load)."""

    k: int
    load_from: float
    load_to: float | None


@dataclass(frozen=True)
class Row:
    """The load bands that hold for rtt in [rtt_from, rtt_to); exact at ``rtt_s``."""

    rtt_s: float
    rtt_from: float
    rtt_to: float | None
    bands: tuple[Band, ...]


@dataclass(frozen=True)
class Policy:
    """The policy of one configuration of a pool."""

    curve: Curve
    load_max: float
    rows: tuple[Row, ...]

    def k_at(self, load: float, rtt: float) -> int:
        """The policy's K at (b, rtt): the row holding rtt, then the band holding b."""
        row = next((r for r in self.rows if r.rtt_to is None or rtt < r.rtt_to), self.rows[-1])
        for band in row.bands:
            if band.load_to is None or load <= band.load_to:
                return band.k
        return row.bands[-1].k


def switches(goodput: Callable[[int, float], float | None],
             best_many: Callable[[list[float]], list[int | None]],
             lo: float, hi: float, steps: int) -> list[tuple[float, int]]:
    """[(x, K from x on)] along [lo, hi]: a scan of `steps` cells, each change bisected.

    The first entry is (lo, argmax at lo); x is the switching point, bisected on the
    sign of G(K_before) - G(K_after) to a relative 1e-9, then the argmax just past it
    is read again (a third K may win there).
    """
    xs = [lo + (hi - lo) * i / steps for i in range(steps + 1)] if hi > lo else [lo]
    grid = best_many(xs)
    first = grid[0]
    if first is None:
        raise ValueError(f"no K is known at {lo:g}")
    out = [(lo, first)]

    def keeps(k0: int, k1: int, x: float) -> bool:
        g0, g1 = goodput(k0, x), goodput(k1, x)
        return g1 is None or (g0 is not None and g0 >= g1)

    for a, x, k in zip(xs, xs[1:], grid[1:]):
        while k is not None and k != out[-1][1]:
            k0 = out[-1][1]
            left, right = a, x
            while right - left > _TOL * max(1.0, abs(right)):
                mid = 0.5 * (left + right)
                left, right = (mid, right) if keeps(k0, k, mid) else (left, mid)
            after = best_many([right])[0]
            if after is None or after == k0:
                break  # k0 holds up to x after all: a near-tie the scan read differently
            out.append((left, after))
            a = right
    return out


def build(curve: Curve, steps: int = LOAD_STEPS) -> Policy:
    """The policy of one configuration (see the module doc)."""
    rtts = [curve.rtt_s * f for f in RTT_FACTORS] if curve.rtt_s > 0 else list(RTT_WHEN_ZERO)
    if not curve.batched:
        sw = switches(lambda k, r: curve.goodput(k, 0.0, r),
                      lambda rs: [curve.best(0.0, r) for r in rs], rtts[0], rtts[-1], steps)
        bounds = [x for x, _ in sw[1:]]
        rows = tuple(Row(x, x if i else 0.0, bounds[i] if i < len(bounds) else None,
                         (Band(k, 0.0, None),)) for i, (x, k) in enumerate(sw))
        return Policy(curve, 0.0, rows)
    top = curve.load_max(rtts[-1])
    rows_: list[Row] = []
    for i, rtt in enumerate(rtts):
        sw = _load_switches(curve, rtt, top, steps)
        bands = tuple(Band(k, x, sw[j + 1][0] if j + 1 < len(sw) else top)
                      for j, (x, k) in enumerate(sw))
        lo = 0.0 if i == 0 else 0.5 * (rtts[i - 1] + rtt)
        hi = None if i == len(rtts) - 1 else 0.5 * (rtt + rtts[i + 1])
        rows_.append(Row(rtt, lo, hi, bands))
    return Policy(curve, top, tuple(rows_))


def _load_switches(curve: Curve, rtt: float, top: float, steps: int
                   ) -> list[tuple[float, int]]:
    def goodput(k: int, b: float) -> float | None:
        return curve.goodput(k, b, rtt)

    def best_many(bs: list[float]) -> list[int | None]:
        return curve.best_many(bs, rtt)
    return switches(goodput, best_many, 0.0, top, steps)


def curves(spec: Spec, data: Mapping[str, Any]) -> list[Curve]:
    """One curve per distinct (pool, target, draft, quant) the decision assigns.

    `data` is lock-shaped (`export.Decision.data`); the candidates come from the spec
    exactly as the solver enumerates them (search.k, pins, acceptance known).
    """
    loads = {str(v["target"]): float(v["in_flight_per_replica"])
             for v in ((data.get("fleet") or {}).get("verifiers") or [])}
    targets = {t.name: t for t in spec.targets}
    devices = {d.name: d for d in spec.devices}
    out: list[Curve] = []
    seen: set[tuple[str, str, str, str]] = set()
    for row in data.get("assignments") or []:
        key = (str(row["device"]), str(row["target"]), str(row["draft"]), str(row["quant"]))
        if key in seen:
            continue
        seen.add(key)
        device = devices[key[0]]
        target = targets[key[1]]
        (pool,) = enumerate_candidates(spec, only={device.name})
        mine = [c for c in pool.candidates if (c.target, c.draft, c.quant) == key[1:]]
        if not mine:
            continue
        out.append(Curve(
            pool=key[0], target=key[1], draft=key[2], quant=key[3], plan_k=int(row["k"]),
            rtt_s=device.rtt_s, alpha={c.k: c.alpha for c in mine},
            base_s={c.k: c.busy_s - device.rtt_s for c in mine},
            table=None if target.verifier is None else {
                int(b): {int(k): float(t) for k, t in sorted(row.items())}
                for b, row in sorted(target.verifier.latency_s.items())},
            max_batch=0 if target.verifier is None else target.verifier.max_batch,
            fixed_s={c.k: c.verify_latency_s for c in mine} if target.verifier is None
            else {}, plan_load=loads.get(key[1])))
    return out


def document(policy: Policy) -> dict[str, Any]:
    """The policy as plain JSON data (floats rounded to 6 significant digits)."""
    c = policy.curve
    load = c.plan_load if c.batched and c.plan_load is not None else 0.0
    at_plan = policy.k_at(load, c.rtt_s)
    g_plan = c.goodput(c.plan_k, load, c.rtt_s)
    g_pol = c.goodput(at_plan, load, c.rtt_s)
    return {
        "pool": c.pool, "target": c.target, "draft": c.draft, "quant": c.quant, "plan_k": c.plan_k,
        "ks": c.ks, "load_aware": c.batched,
        "load": {"what": "requests in flight per verifier replica",
                 "plan": _r(c.plan_load) if c.batched else None,
                 "max": _r(policy.load_max) if c.batched else None},
        "rtt_s": {"declared": _r(c.rtt_s)},
        "plan_k_at_plan_load": {
            "policy_k": at_plan, "agrees": at_plan == c.plan_k or (
                g_plan is not None and g_pol is not None
                and abs(g_plan - g_pol) <= 1e-9 * max(g_plan, g_pol))},
        "rows": [{"rtt_s": _r(r.rtt_s), "rtt_from": _r(r.rtt_from), "rtt_to": _r(r.rtt_to),
                  "bands": [{"k": b.k, "load_from": _r(b.load_from), "load_to": _r(b.load_to)}
                            for b in r.bands]} for r in policy.rows],
    }


def _r(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")


def table_lines(policy: Policy) -> list[str]:
    """The policy as text rows: one line per rtt row, its bands as `K@from-to`."""
    c = policy.curve
    head = (f"{c.pool}: {c.draft} {c.quant} -> {c.target}, plan K={c.plan_k}"
            + (f" at load {c.plan_load:.3g}" if c.batched and c.plan_load is not None else "")
            + f", rtt {c.rtt_s * 1e3:.3g} ms")
    lines = [head]
    for r in policy.rows:
        to = "inf" if r.rtt_to is None else f"{r.rtt_to * 1e3:.2f}"
        span = f"rtt {r.rtt_from * 1e3:7.2f}..{to} ms"
        bands = "  ".join(
            f"K={b.k}" + ("" if not c.batched else
                          f" @ load {b.load_from:.3g}..{b.load_to:.3g}"
                          if b.load_to is not None else f" @ load {b.load_from:.3g}..")
            for b in r.bands)
        lines.append(f"  {span}: {bands}")
    return lines


def policies(spec: Spec, data: Mapping[str, Any]) -> list[Policy]:
    """Every configuration's policy, in the decision's order."""
    return [build(c) for c in curves(spec, data)]


__all__ = ["Band", "Curve", "Policy", "Row", "build", "curves", "document", "policies",
           "switches", "table_lines"]
