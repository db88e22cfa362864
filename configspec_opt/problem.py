"""The optimisation problem as plain data: pools, candidates, linear rows.

Everything a solver needs, and nothing that depends on one: the Pyomo
formulation, the direct-HiGHS benchmark, brute force and the explanations
all read this.  Fleet constraints are `Row`s (sum over devices of a
per-candidate coefficient, compared with a bound); ratio constraints are
linearised here once (N/D <= v  <=>  N - v*D <= 0 for D > 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from configspec_opt.candidates import (
    Candidate,
    PoolCandidates,
    enumerate_candidates,
    slo_violations,
)
from configspec_opt.metrics import SECONDS_PER_HOUR
from configspec_opt.spec import Metric, Objective, Spec
from configspec_opt.verifiers import Mode, VerifierPlan, expand

Sense = Literal["<=", ">="]


@dataclass(frozen=True)
class Pool:
    index: int
    name: str
    count: int


@dataclass
class Row:
    """sum_i coef[i] * x_i (+ t_coef * t)  sense  rhs, over the problem's candidates."""

    key: str  # where it comes from in the spec, e.g. constraints.fleet.max_power_w
    label: str  # what a person reads
    coef: Callable[[Candidate], float]
    sense: Sense
    rhs: float
    t_coef: float = 0.0
    unit: str = ""
    ratio: MetricForm | None = None  # set when the row linearises a bound on a ratio
    limit: float | None = None  # the bound as the user wrote it (ratio rows: the ratio)
    replica_coef: dict[str, float] = field(default_factory=dict)  # per replica of a target
    internal: bool = False  # a modelling row (verifier load levels), not a user's constraint


@dataclass(frozen=True)
class MetricForm:
    """How a fleet metric is computed from per-candidate coefficients."""

    kind: Literal["sum", "ratio", "min"]
    num: Callable[[Candidate], float]
    den: Callable[[Candidate], float] | None = None
    unit: str = ""
    # What one replica of a batched verifier adds to num (or den): $/h, $/s.
    num_per_replica: Callable[[VerifierPlan], float] | None = None
    den_per_replica: Callable[[VerifierPlan], float] | None = None


def _g(c: Candidate) -> float:
    return c.goodput_tok_s


def _cost_per_s(c: Candidate) -> float:
    return c.cost_usd_per_hour / SECONDS_PER_HOUR


def _drafting_power(c: Candidate) -> float:
    if c.drafting_power_w is None:
        raise ValueError(f"no power data for {c.device}")
    return c.drafting_power_w


def _power(c: Candidate) -> float:
    if c.power_w is None:
        raise ValueError(f"no power data for {c.device}")
    return c.power_w


METRICS: dict[Metric, MetricForm] = {
    Metric.goodput: MetricForm("sum", _g, unit="tok/s"),
    Metric.cost: MetricForm("sum", lambda c: c.cost_usd_per_hour, unit="$/h",
                            num_per_replica=lambda p: p.price_usd_per_hour),
    Metric.power: MetricForm("sum", _power, unit="W"),
    Metric.verifier_load: MetricForm("sum", lambda c: c.verifier_load_tok_s, unit="tok/s"),
    Metric.min_goodput: MetricForm("min", _g, unit="tok/s"),
    Metric.cost_efficiency: MetricForm(
        "ratio", _g, _cost_per_s, unit="tok/$",
        den_per_replica=lambda p: p.price_usd_per_hour / SECONDS_PER_HOUR),
    Metric.energy: MetricForm("ratio", _drafting_power, _g, unit="J/tok"),
}


@dataclass
class Problem:
    spec: Spec
    pools: list[Pool]
    candidates: list[Candidate]  # after SLO filtering (and pruning, if asked)
    by_pool: list[list[int]]
    rows: list[Row]
    max_variants: int | None
    structural: list[PoolCandidates]  # before SLOs: for diagnosis and explanations
    pruned: int = 0
    notes: list[str] = field(default_factory=list)
    verifiers: list[VerifierPlan] = field(default_factory=list)  # batched, load-dependent

    @property
    def variants(self) -> list[tuple[str, str]]:
        return sorted({c.variant for c in self.candidates})

    def row_size(self, row: Row) -> float:
        """The size of a row's numbers: what its feasibility tolerance is relative to.

        For a linearised ratio N - v*D it is the size of the terms, not of their
        cancelling difference.
        """
        cands = self.candidates
        if row.ratio is not None and row.ratio.den is not None and row.limit is not None:
            num, den, v = row.ratio.num, row.ratio.den, row.limit
            return max((max(abs(num(c)), abs(v * den(c))) for c in cands), default=0.0)
        return max([abs(row.rhs), abs(row.t_coef), *map(abs, row.replica_coef.values())]
                   + [abs(row.coef(c)) for c in cands])

    def empty_pools(self) -> list[int]:
        return [p.index for p in self.pools if not self.by_pool[p.index]]


def _load_on(target: str) -> Callable[[Candidate], float]:
    return lambda c: c.verifier_load_tok_s if c.target == target else 0.0


def ratio_row(num: Callable[[Candidate], float], den: Callable[[Candidate], float],
               bound: float) -> Callable[[Candidate], float]:
    """N/D vs bound, linearised as N - bound*D (D > 0)."""
    return lambda c: num(c) - bound * den(c)


def _per_replica(plans: Sequence[VerifierPlan],
                 what: Callable[[VerifierPlan], float] | None,
                 scale: float = 1.0) -> dict[str, float]:
    if what is None:
        return {}
    return {p.target: scale * what(p) for p in plans}


def level_rows(plans: Sequence[VerifierPlan]) -> list[Row]:
    """Per verifier and load level: requests in flight at that level <= beta * replicas."""
    rows: list[Row] = []
    for plan in plans:
        for level, beta in enumerate(plan.levels, start=1):
            rows.append(Row(
                f"targets[{plan.target}].verifier.load_level[{level}]",
                f"in-flight requests at {plan.target}, load level {beta:g}",
                _in_flight_at(plan.target, level), "<=", 0.0, unit="requests",
                replica_coef={plan.target: -beta}, internal=True))
    return rows


def _in_flight_at(target: str, level: int) -> Callable[[Candidate], float]:
    return lambda c: c.in_flight if c.target == target and c.level == level else 0.0


def fleet_rows(spec: Spec, plans: Sequence[VerifierPlan] = ()) -> list[Row]:
    """The spec's fleet-wide constraints as linear rows."""
    rows: list[Row] = []
    for t in spec.targets:
        if t.capacity_tok_s is not None:
            name = t.name
            rows.append(Row(
                f"targets[{name}].capacity_tok_s", f"verifier capacity of {name}",
                _load_on(name),
                "<=", t.capacity_tok_s, unit="tok/s"))
    f = spec.constraints.fleet
    if f.max_cost_usd_per_hour is not None:
        rows.append(Row("constraints.fleet.max_cost_usd_per_hour", "fleet verifier cost",
                        METRICS[Metric.cost].num, "<=", f.max_cost_usd_per_hour, unit="$/h",
                        replica_coef=_per_replica(plans, METRICS[Metric.cost].num_per_replica)))
    if f.max_power_w is not None:
        rows.append(Row("constraints.fleet.max_power_w", "fleet edge power", _power,
                        "<=", f.max_power_w, unit="W"))
    if f.min_goodput_tok_s is not None:
        rows.append(Row("constraints.fleet.min_goodput_tok_s", "fleet goodput", _g,
                        ">=", f.min_goodput_tok_s, unit="tok/s"))
    if f.max_energy_j_per_tok is not None:
        v = f.max_energy_j_per_tok
        rows.append(Row("constraints.fleet.max_energy_j_per_tok", "fleet energy per token",
                        ratio_row(_drafting_power, _g, v), "<=", 0.0,
                        unit="J/tok", ratio=METRICS[Metric.energy], limit=v))
    if f.min_cost_efficiency_tok_per_usd is not None:
        v = f.min_cost_efficiency_tok_per_usd
        rows.append(Row("constraints.fleet.min_cost_efficiency_tok_per_usd",
                        "fleet cost efficiency", ratio_row(_g, _cost_per_s, v),
                        ">=", 0.0, unit="tok/$", ratio=METRICS[Metric.cost_efficiency],
                        limit=v, replica_coef=_per_replica(
                            plans, METRICS[Metric.cost_efficiency].den_per_replica, -v)))
    return rows + level_rows(plans)


def objective_directions(objective: Objective) -> list[tuple[Callable[[Candidate], float], int]]:
    """Per-candidate coefficients the objective reads, with +1 where larger is better."""
    out: list[tuple[Callable[[Candidate], float], int]] = []
    for term in objective.terms():
        form = METRICS[term.metric]
        sign = 1 if term.sense == "maximize" else -1
        out.append((form.num, sign))
        if form.den is not None:
            out.append((form.den, -sign))
    return out


def build_problem(
    spec: Spec,
    *,
    only: set[str] | None = None,
    objective: Objective | None = None,
    prune: bool = True,
    apply_slo: bool = True,
    plans: Sequence[VerifierPlan] = (),
    mode: Mode = "conservative",
) -> Problem:
    """Pools, SLO-feasible candidates and fleet rows; dominated candidates removed.

    Within one pool and one (draft, quant), candidate a dominates b when a is
    at least as good in every coefficient that the objective and the rows
    read.  Swapping b for a in any assignment keeps it feasible and does not
    worsen any objective (sums, min, and ratios N/D with N up and D down), so
    removing b never changes the optimal value.  Exact ties keep the first
    candidate in (target, draft, quant, K) order.

    With `plans` (batched verifiers), candidates on those targets are copied
    per load level (`configspec_opt.verifiers.expand`, in `mode`), and
    dominance is only judged within one level.
    """
    objective = objective or spec.objective
    structural = enumerate_candidates(spec, only)
    pools = [Pool(pc.index, pc.device.name, pc.device.count) for pc in structural]
    rows = fleet_rows(spec, plans)
    dirs = [(r.coef, 1 if r.sense == ">=" else -1) for r in rows]
    dirs += objective_directions(objective)

    candidates: list[Candidate] = []
    by_pool: list[list[int]] = []
    pruned = 0
    for pc in structural:
        slo = spec.slo_for(pc.device)
        own = expand(pc.candidates, plans, mode) if plans else pc.candidates
        feasible = [c for c in own if not (apply_slo and slo_violations(c, slo))]
        kept = _undominated(feasible, dirs) if prune else feasible
        pruned += len(feasible) - len(kept)
        start = len(candidates)
        candidates.extend(kept)
        by_pool.append(list(range(start, len(candidates))))
    return Problem(spec, pools, candidates, by_pool, rows,
                   spec.constraints.fleet.max_distinct_variants, structural, pruned,
                   verifiers=list(plans))


def _undominated(
    cands: Sequence[Candidate], dirs: list[tuple[Callable[[Candidate], float], int]]
) -> list[Candidate]:
    groups: dict[tuple[str, str, int], list[tuple[Candidate, tuple[float, ...]]]] = {}
    for c in cands:
        try:
            vec = tuple(sign * f(c) for f, sign in dirs)
        except ValueError:
            return list(cands)
        groups.setdefault((*c.variant, c.level), []).append((c, vec))
    keep: set[int] = set()
    for members in groups.values():
        for i, (c, v) in enumerate(members):
            dominated = False
            for j, (_, w) in enumerate(members):
                if i == j:
                    continue
                if all(wa >= va for wa, va in zip(w, v)) and (w != v or j < i):
                    dominated = True
                    break
            if not dominated:
                keep.add(id(c))
    return [c for c in cands if id(c) in keep]
