"""Fleet figures of an assignment, computed directly (no solver).

Used to report a solution, to check it, to explain it (what if this pool
switched?) and by brute force in the tests: one definition of every number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from configspec_opt.candidates import Candidate
from configspec_opt.constraint_families import REL_TOL
from configspec_opt.metric_registry import REGISTRY, MetricDef
from configspec_opt.problem import Problem
from configspec_opt.spec import Metric, Objective
from configspec_opt.verifiers import VerifierState, replica_cost_usd_per_hour, settle

Assignment = Sequence[tuple[Candidate, int]]


@dataclass
class FleetMetrics:
    """Every registered metric of one assignment (None: not available, e.g. no power data)."""

    values: dict[Metric, float | None]
    devices: int
    verifier_load_by_target: dict[str, float] = field(default_factory=dict)

    def get(self, metric: Metric) -> float | None:
        """The value, or None where it cannot be computed (unknown power)."""
        return self.values[metric]

    @property
    def goodput_tok_s(self) -> float:
        """Accepted tokens per second over the fleet."""
        return self.value(Metric.goodput)

    @property
    def cost_usd_per_hour(self) -> float:
        """Verifier cost: per-token price plus batched verifiers' replicas."""
        return self.value(Metric.cost)

    @property
    def min_goodput_tok_s(self) -> float:
        """The slowest device in use."""
        return self.value(Metric.min_goodput)

    @property
    def energy_j_per_tok(self) -> float | None:
        """Drafting energy per accepted token (None: unknown power)."""
        return self.values[Metric.energy]

    @property
    def power_w(self) -> float | None:
        """Edge power of every device (None: unknown power)."""
        return self.values[Metric.power]

    def value(self, metric: Metric) -> float:
        """The metric's value; an error where it cannot be computed (never a silent 0)."""
        value = self.values[metric]
        if value is None:
            raise ValueError(f"{metric.value} is not available (no power data)")
        return value

    def to_dict(self) -> dict[str, object]:
        """The JSON answer's `fleet`: every metric under its registered key, in order."""
        return {**{d.key: self.values[d.metric] for d in REGISTRY},
                "devices": self.devices,
                "verifier_load_by_target": dict(self.verifier_load_by_target)}


def _per(num: float, den: float) -> float | None:
    """num/den, or None where den is zero or the quotient would not be finite.

    A fleet that costs nothing has infinite tokens per dollar (report.fleet_dict
    shows it as null); no quotient here raises or leaks a NaN.
    """
    if not den > 0.0:
        return None
    try:
        value = num / den
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


class _Sums:
    """Sums over an assignment of n * attribute, each attribute summed once."""

    def __init__(self, used: Assignment) -> None:
        self.used = used
        self.done: dict[str, float] = {}

    def __call__(self, attr: str) -> float:
        if attr not in self.done:
            get = attrgetter(attr)
            self.done[attr] = sum(n * get(c) for c, n in self.used)
        return self.done[attr]


def _aggregate(d: MetricDef, used: Assignment, sums: _Sums, has_power: bool,
               replica_cost: float) -> float | None:
    """One metric over the fleet, as `metric_registry` declares its aggregation."""
    if d.needs_power and not has_power:
        return None
    if d.aggregation == "min":
        get = attrgetter(d.num)
        return min((get(c) for c, _ in used), default=0.0)
    total = sums(d.num)
    if d.replica_price == "num":
        total += replica_cost
    if d.aggregation == "sum":
        return total
    den = float(sum(n for _, n in used)) if d.den is None else sums(d.den)
    if d.replica_price == "den":
        den += replica_cost
    value = _per(total, den / d.den_divisor if d.den_divisor != 1.0 else den)
    return d.zero_den if value is None else value


def fleet_metrics(assignment: Assignment, replica_cost_usd_per_hour: float = 0.0
                  ) -> FleetMetrics:
    """Fleet figures; batched verifiers add their replicas' cost (they bill per replica)."""
    used = [(c, n) for c, n in assignment if n > 0]
    by_target: dict[str, float] = {}
    for c, n in used:
        by_target[c.target] = by_target.get(c.target, 0.0) + n * c.verifier_load_tok_s
    has_power = all(c.power_w is not None for c, _ in used)
    sums = _Sums(used)
    return FleetMetrics(
        {d.metric: _aggregate(d, used, sums, has_power, replica_cost_usd_per_hour)
         for d in REGISTRY},
        devices=sum(n for _, n in used), verifier_load_by_target=by_target)


def metric_value(fm: FleetMetrics, metric: Metric) -> float:
    """`fm.value(metric)`: kept as a function for the solvers' and tests' call sites."""
    return fm.value(metric)


def objective_key(fm: FleetMetrics, objective: Objective) -> tuple[float, ...]:
    """Larger is better: a weighted sum as one number, lexicographic as a tuple."""
    terms = objective.terms()
    signed = [(1.0 if t.sense == "maximize" else -1.0) * metric_value(fm, t.metric)
              for t in terms]
    if objective.mode == "weighted":
        return (sum(t.weight * v for t, v in zip(terms, signed)),)
    return tuple(signed)


def violated_constraints(
    problem: Problem, assignment: Assignment, rel_tol: float = REL_TOL,
    replicas: Mapping[str, int] | None = None,
) -> list[str]:
    """Fleet constraints the assignment breaks (empty when feasible).

    Load-level rows are the model's, not the user's: a settled assignment is
    checked at its true load instead (`configspec_opt.verifiers.settle`).
    """
    return [k for f in problem.families for k in f.broken(problem, assignment, replicas,
                                                            rel_tol)]


@dataclass
class Settled:
    """An assignment as the fleet really runs it (batched verifiers at their true load)."""

    key: tuple[float, ...]  # objective_key: larger is better
    assignment: list[tuple[Candidate, int]]
    states: list[VerifierState]
    fleet: FleetMetrics
    broken: list[str]  # fleet constraints it breaks


def evaluate_settled(problem: Problem, objective: Objective, assignment: Assignment,
                     replicas: Mapping[str, int]) -> Settled | None:
    """Settle batched verifiers (if any) with these replicas, then evaluate; None if no load.

    One evaluation for the solver's answers and for the explanations' what-ifs.
    """
    used = [(c, n) for c, n in assignment if n > 0]
    states: list[VerifierState] = []
    if problem.verifiers:
        out = settle(used, problem.verifiers, replicas)
        if out is None:
            return None
        used, states = out
    fm = fleet_metrics(used, replica_cost_usd_per_hour(states))
    try:
        key = objective_key(fm, objective)
    except ValueError:
        return None
    return Settled(key, used, states, fm,
                   violated_constraints(problem, used, replicas=replicas))


__all__ = ["Assignment", "FleetMetrics", "Settled", "evaluate_settled",
           "fleet_metrics", "metric_value",
           "objective_key", "violated_constraints"]
