"""Reference optimiser for batched verifiers: every assignment x every replica count.

Written apart from the code under test: T(n, K) is interpolated here; a
device's request, with b in flight per replica, finds m = max(0, b - s) others
(s = T/(busy + T) its own share, the documented arrival view) and takes
T(1)(1 + m/2) for m <= 1, else 1.5 T((2m + 1)/3) (it waits half the step in
progress, then runs in the next), with s found by regula falsi; the load each verifier settles at
is found by Kleene iteration (b_0 = 0, b_{n+1} = in_flight(b_n) / replicas,
which rises monotonically to the least fixed point because in_flight is
non-decreasing in b); and every figure of a device (round time, goodput,
per-token cost) is recomputed from the spec.
Only the candidates' identities (pool, device, target, draft, quant, K) are
read from `configspec_opt.candidates.enumerate_candidates`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from configspec_opt.candidates import Candidate, enumerate_candidates
from configspec_opt.spec import Metric, PerTokenAcceptance, Profile, Spec, Target, Verifier
from tests.core.brute import compositions

SECONDS_PER_HOUR = 3600.0
# Kleene iteration stops when a step is below this (relative), or after this many steps.
_STEP_TOL = 1e-14
_MAX_STEPS = 200_000

Rider = tuple[float, int, float]  # (devices, K, busy seconds of a round outside verification)


def table_latency(table: Mapping[int, Mapping[int, float]], b: float, k: int) -> float:
    """T(b, K): linear between rows, the first row below it; ValueError beyond the last."""
    bs = sorted(table)
    if b <= bs[0]:
        return float(table[bs[0]][k])
    for lo, hi in itertools.pairwise(bs):
        if b <= hi:
            w = (b - lo) / (hi - lo)
            return float(table[lo][k]) + w * (float(table[hi][k]) - float(table[lo][k]))
    raise ValueError(f"b={b} beyond the table")


def load_limit(verifier: Verifier) -> float:
    return float(min(max(verifier.latency_s), verifier.max_batch))


def seen(table: Mapping[int, Mapping[int, float]], k: int, m: float) -> float:
    """T of a request that finds m others in flight (the documented step view)."""
    if m <= 1.0:
        return table_latency(table, 1.0, k) * (1.0 + m / 2.0)
    return 1.5 * table_latency(table, (2.0 * m + 1.0) / 3.0, k)


def device_latency(verifier: Verifier, b: float, k: int, busy: float) -> float | None:
    """T of one device's request with b in flight per replica; None past the table."""
    table, end = verifier.latency_s, load_limit(verifier)

    def f(share: float) -> float:  # falls as share grows; inf where the batch is too big
        m = max(0.0, b - share)
        if 1.0 + m > end:
            return float("inf")
        t = seen(table, k, m)
        return t / (busy + t) - share

    lo, hi = 0.0, 1.0
    if f(hi) == float("inf"):
        return None
    for _ in range(200):  # regula falsi, bisection where f is infinite
        f_lo, f_hi = f(lo), f(hi)
        if f_hi >= 0.0:
            lo = hi
            break
        mid = 0.5 * (lo + hi) if f_lo == float("inf") else lo - f_lo * (hi - lo) / (f_hi - f_lo)
        mid = min(max(mid, lo), hi)
        if f(mid) > 0.0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13:
            break
    if abs(f(hi)) > 1e-9:  # the sign change is the table's edge, not a root
        return None
    m = max(0.0, b - hi)
    return None if 1.0 + m > end else seen(table, k, m)


def settled_load(verifier: Verifier, riders: Sequence[Rider], replicas: int) -> float | None:
    """The least b >= 0 with b = sum n T_d/(busy + T_d) / replicas; None past the table."""
    riders = [r for r in riders if r[0] > 0]
    if not riders:
        return 0.0
    if replicas <= 0:
        return None
    b = 0.0
    for _ in range(_MAX_STEPS):
        total = 0.0
        for n, k, busy in riders:
            t = device_latency(verifier, b, k, busy)
            if t is None:
                return None
            total += n * t / (busy + t)
        nxt = total / replicas
        if nxt - b <= _STEP_TOL * max(1.0, nxt):
            return nxt
        b = nxt
    raise AssertionError(f"Kleene iteration did not converge (b={b})")


@dataclass(frozen=True)
class Device:
    """One group of identical devices running one configuration, at its settled latency."""

    pool: int
    device: str
    config: tuple[str, str, str, int]  # (target, draft, quant, K)
    n: int
    verify_latency_s: float
    round_time_s: float
    goodput_tok_s: float
    cost_usd_per_hour: float  # per-token billing only (0 on a batched verifier)


@dataclass
class Evaluation:
    """An assignment with its replica counts, settled: what every constraint reads."""

    rows: list[Device]
    replicas: dict[str, int]
    loads: dict[str, float]  # in flight per replica, per batched verifier
    goodput_tok_s: float
    cost_usd_per_hour: float
    violations: list[str] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        return not self.violations

    def value(self, metric: Metric) -> float:
        if metric is Metric.goodput:
            return self.goodput_tok_s
        if metric is Metric.cost:
            return self.cost_usd_per_hour
        raise ValueError(f"the reference handles goodput and cost, not {metric.value}")


def _profile(spec: Spec, c: Candidate) -> Profile:
    return next(p for p in spec.profiles
                if (p.device, p.draft, p.quant) == (c.device, c.draft, c.quant))


def busy_s(spec: Spec, c: Candidate) -> float:
    """Everything of a round but verification: (K + f_K)/v_d + rtt + overhead, from the spec."""
    device = next(d for d in spec.devices if d.name == c.device)
    prof = _profile(spec, c)
    f_k = prof.full_accept.get(c.target, {}).get(c.k, 0.0)
    return (c.k + f_k) / prof.draft_tok_s + device.rtt_s + device.round_overhead_s


def accepted_per_round(spec: Spec, c: Candidate) -> float:
    """K * alpha(K) + 1, with alpha from the profile (a table, or a + ... + a^K over K)."""
    acc = _profile(spec, c).acceptance[c.target]
    if isinstance(acc, PerTokenAcceptance):
        return sum(acc.per_token**i for i in range(1, c.k + 1)) + 1.0
    return c.k * acc[c.k] + 1.0


def _short(value: float, bound: float, rel_tol: float) -> bool:
    """value is below bound by more than rel_tol (relative to the bound's size, at least 1)."""
    return bound - value > rel_tol * max(1.0, abs(bound))


def evaluate(spec: Spec, assignment: Sequence[tuple[Candidate, int]],
             replicas: Mapping[str, int], rel_tol: float = 0.0,
             loads: Mapping[str, float | None] | None = None) -> Evaluation | None:
    """Settle an assignment of structural candidates; None if a verifier has no load.

    `loads` may give the settled loads already (per batched verifier target).
    """
    targets: dict[str, Target] = {t.name: t for t in spec.targets}
    used = [(c, n) for c, n in assignment if n > 0]
    busy = {id(c): busy_s(spec, c) for c, _ in used}
    settled: dict[str, float] = {}
    for t in spec.targets:
        if t.verifier is None:
            continue
        r = replicas.get(t.name, 0)
        if loads is not None and t.name in loads:
            b = loads[t.name]
        else:
            b = settled_load(t.verifier, [(n, c.k, busy[id(c)]) for c, n in used
                                          if c.target == t.name], r)
        if b is None:
            return None
        settled[t.name] = b
    rows: list[Device] = []
    for c, n in used:
        target = targets[c.target]
        if target.verifier is not None:
            t_dev = device_latency(target.verifier, settled[c.target], c.k, busy[id(c)])
            if t_dev is None:
                return None
            t_v = t_dev
            cost = 0.0
        else:
            t_v = target.verify_latency_s + c.k * target.verify_latency_per_token_s
        r_s = busy[id(c)] + t_v
        if target.verifier is None:
            cost = target.price_usd_per_mtok * 1e-6 * c.k / r_s * SECONDS_PER_HOUR
        rows.append(Device(c.pool, c.device, (c.target, c.draft, c.quant, c.k), n, t_v, r_s,
                           accepted_per_round(spec, c) / r_s, cost))
    replica_cost = sum(replicas.get(t.name, 0) * t.verifier.price_usd_per_replica_hour
                       for t in spec.targets if t.verifier is not None)
    ev = Evaluation(rows, dict(replicas), settled, sum(d.n * d.goodput_tok_s for d in rows),
                    sum(d.n * d.cost_usd_per_hour for d in rows) + replica_cost)
    ev.violations = violations(spec, ev, rel_tol)
    return ev


def violations(spec: Spec, ev: Evaluation, rel_tol: float = 0.0) -> list[str]:
    """The constraints the settled assignment breaks, by their spec keys."""
    out: list[str] = []
    devices = {d.name: d for d in spec.devices}
    for d in ev.rows:
        slo = spec.slo_for(devices[d.device])
        if slo.min_goodput_tok_s is not None and _short(d.goodput_tok_s, slo.min_goodput_tok_s,
                                                        rel_tol):
            out.append(f"{d.device}.min_goodput_tok_s")
    for other in ("max_energy_j_per_tok", "min_cost_efficiency_tok_per_usd", "max_power_w"):
        if any(getattr(spec.slo_for(dev), other) is not None for dev in spec.devices):
            raise ValueError(f"the reference does not check per-device {other}")
    f = spec.constraints.fleet
    if f.max_cost_usd_per_hour is not None and _short(
            -ev.cost_usd_per_hour, -f.max_cost_usd_per_hour, rel_tol):
        out.append("constraints.fleet.max_cost_usd_per_hour")
    if f.min_goodput_tok_s is not None and _short(ev.goodput_tok_s, f.min_goodput_tok_s,
                                                  rel_tol):
        out.append("constraints.fleet.min_goodput_tok_s")
    if f.max_distinct_variants is not None and len(
            {c[1:3] for c in (d.config for d in ev.rows)}) > f.max_distinct_variants:
        out.append("constraints.fleet.max_distinct_variants")
    unchecked = {"max_power_w", "max_energy_j_per_tok", "min_cost_efficiency_tok_per_usd"}
    if any(getattr(f, k) is not None for k in unchecked) or any(
            t.capacity_tok_s is not None for t in spec.targets):
        raise ValueError("the reference checks budget, goodput floor and variants only")
    return out


def replica_choices(spec: Spec) -> list[dict[str, int]]:
    """Every replica count in [min, max] for every batched verifier."""
    names = [t.name for t in spec.targets if t.verifier is not None]
    ranges = [range(t.verifier.replicas.min, t.verifier.replicas.max + 1)
              for t in spec.targets if t.verifier is not None]
    return [dict(zip(names, combo)) for combo in itertools.product(*ranges)]


def search_size(spec: Spec) -> int:
    """How many (assignment, replicas) pairs `brute_force_load` settles."""
    from math import comb

    size = len(replica_choices(spec))
    for pc in enumerate_candidates(spec):
        size *= comb(len(pc.candidates) + pc.device.count - 1, pc.device.count)
    return size


@dataclass
class Best:
    value: float  # of the objective's metric, in its own sense
    evaluation: Evaluation
    assignment: list[tuple[Candidate, int]]
    feasible_count: int


def brute_force_load(spec: Spec, rel_tol: float = 0.0) -> Best | None:
    """The best settled assignment and replica counts (None when nothing is feasible).

    Single objectives on goodput or cost only (the metrics `evaluate` computes).
    """
    [term] = spec.objective.terms()
    if spec.objective.mode != "single":
        raise ValueError("the reference handles single objectives")
    sign = 1.0 if term.sense == "maximize" else -1.0
    pools = enumerate_candidates(spec)
    if any(not pc.candidates for pc in pools):
        return None
    verifier_targets = [t for t in spec.targets if t.verifier is not None]
    choices = replica_choices(spec)
    cache: dict[tuple[str, int, tuple[Rider, ...]], float | None] = {}
    best: Best | None = None
    feasible = 0
    for parts in itertools.product(*[list(compositions(pc.candidates, pc.device.count))
                                     for pc in pools]):
        assignment = [x for part in parts for x in part]
        riders = {t.name: tuple(sorted((float(n), c.k, busy_s(spec, c)) for c, n in assignment
                                       if c.target == t.name)) for t in verifier_targets}
        for replicas in choices:
            loads: dict[str, float | None] = {}
            for t in verifier_targets:
                assert t.verifier is not None
                key = (t.name, replicas[t.name], riders[t.name])
                if key not in cache:
                    cache[key] = settled_load(t.verifier, riders[t.name], replicas[t.name])
                loads[t.name] = cache[key]
            if any(b is None for b in loads.values()):
                continue
            ev = evaluate(spec, assignment, replicas, rel_tol, loads)
            if ev is None or not ev.feasible:
                continue
            feasible += 1
            value = ev.value(term.metric)
            if best is None or sign * value > sign * best.value:
                best = Best(value, ev, assignment, 0)
    if best is not None:
        best.feasible_count = feasible
    return best
