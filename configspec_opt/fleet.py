"""Fleet figures of an assignment, computed directly (no solver).

Used to report a solution, to check it, to explain it (what if this pool
switched?) and by brute force in the tests: one definition of every number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from configspec_opt.candidates import Candidate
from configspec_opt.metrics import SECONDS_PER_HOUR
from configspec_opt.problem import METRICS, Problem, Row
from configspec_opt.spec import Metric, Objective
from configspec_opt.verifiers import VerifierState, replica_cost_usd_per_hour, settle

Assignment = Sequence[tuple[Candidate, int]]

# Constraints hold to HiGHS's MIP feasibility tolerance (1e-6) on rows that
# solvers.formulation scales to unit size when their numbers are small; checks
# here allow a little more so that no solver answer is rejected.
REL_TOL = 1.5e-6


@dataclass
class FleetMetrics:
    goodput_tok_s: float
    cost_usd_per_hour: float
    verifier_load_tok_s: float
    power_w: float | None
    drafting_power_w: float | None
    cost_efficiency_tok_per_usd: float
    energy_j_per_tok: float | None
    min_goodput_tok_s: float
    devices: int
    verifier_load_by_target: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "goodput_tok_s": self.goodput_tok_s,
            "cost_usd_per_hour": self.cost_usd_per_hour,
            "verifier_load_tok_s": self.verifier_load_tok_s,
            "power_w": self.power_w,
            "cost_efficiency_tok_per_usd": self.cost_efficiency_tok_per_usd,
            "energy_j_per_tok": self.energy_j_per_tok,
            "min_goodput_tok_s": self.min_goodput_tok_s,
            "devices": self.devices,
            "verifier_load_by_target": dict(self.verifier_load_by_target),
        }


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


def fleet_metrics(assignment: Assignment, replica_cost_usd_per_hour: float = 0.0
                  ) -> FleetMetrics:
    """Fleet figures; batched verifiers add their replicas' cost (they bill per replica)."""
    used = [(c, n) for c, n in assignment if n > 0]
    g = sum(n * c.goodput_tok_s for c, n in used)
    cost = sum(n * c.cost_usd_per_hour for c, n in used) + replica_cost_usd_per_hour
    load = sum(n * c.verifier_load_tok_s for c, n in used)
    by_target: dict[str, float] = {}
    for c, n in used:
        by_target[c.target] = by_target.get(c.target, 0.0) + n * c.verifier_load_tok_s
    has_power = all(c.power_w is not None for c, _ in used)
    power = sum(n * (c.power_w or 0.0) for c, n in used) if has_power else None
    dpow = sum(n * (c.drafting_power_w or 0.0) for c, n in used) if has_power else None
    per_usd = _per(g, cost / SECONDS_PER_HOUR)
    return FleetMetrics(
        goodput_tok_s=g,
        cost_usd_per_hour=cost,
        verifier_load_tok_s=load,
        power_w=power,
        drafting_power_w=dpow,
        cost_efficiency_tok_per_usd=math.inf if per_usd is None else per_usd,
        energy_j_per_tok=None if dpow is None else _per(dpow, g),
        min_goodput_tok_s=min((c.goodput_tok_s for c, _ in used), default=0.0),
        devices=sum(n for _, n in used),
        verifier_load_by_target=by_target,
    )


def metric_value(fm: FleetMetrics, metric: Metric) -> float:
    value = {
        Metric.goodput: fm.goodput_tok_s,
        Metric.cost: fm.cost_usd_per_hour,
        Metric.power: fm.power_w,
        Metric.verifier_load: fm.verifier_load_tok_s,
        Metric.min_goodput: fm.min_goodput_tok_s,
        Metric.cost_efficiency: fm.cost_efficiency_tok_per_usd,
        Metric.energy: fm.energy_j_per_tok,
    }[metric]
    if value is None:
        raise ValueError(f"{metric.value} is not available (no power data)")
    return value


def objective_key(fm: FleetMetrics, objective: Objective) -> tuple[float, ...]:
    """Larger is better: a weighted sum as one number, lexicographic as a tuple."""
    terms = objective.terms()
    signed = [(1.0 if t.sense == "maximize" else -1.0) * metric_value(fm, t.metric)
              for t in terms]
    if objective.mode == "weighted":
        return (sum(t.weight * v for t, v in zip(terms, signed)),)
    return tuple(signed)


def row_activity(row: Row, assignment: Assignment,
                 replicas: Mapping[str, int] | None = None) -> float:
    act = sum(n * row.coef(c) for c, n in assignment if n > 0)
    if row.replica_coef:
        act += sum(a * (replicas or {}).get(t, 0) for t, a in row.replica_coef.items())
    if row.t_coef:
        act += row.t_coef * min((c.goodput_tok_s for c, n in assignment if n > 0), default=0.0)
    return act


def row_violation(row: Row, activity: float, rel_tol: float = REL_TOL,
                  size: float | None = None) -> float:
    """How far `activity` is on the wrong side of the row (0 when satisfied).

    Mirrors the solver: rows whose numbers are below 1 are scaled to unit size
    (so the tolerance is relative to their size), larger rows keep an absolute
    tolerance.  A ratio bound is checked on its linear form N - v*D, like HiGHS.
    """
    size = abs(row.rhs) if size is None else size
    tol = rel_tol * (size if 0.0 < size < 1.0 else 1.0)
    miss = activity - row.rhs if row.sense == "<=" else row.rhs - activity
    return miss if miss > tol else 0.0


def violated_constraints(
    problem: Problem, assignment: Assignment, rel_tol: float = REL_TOL,
    replicas: Mapping[str, int] | None = None,
) -> list[str]:
    """Fleet constraints the assignment breaks (empty when feasible).

    Load-level rows are the model's, not the user's: a settled assignment is
    checked at its true load instead (`configspec_opt.verifiers.settle`).
    """
    out = [r.key for r in problem.rows if not r.internal
           and row_violation(r, row_activity(r, assignment, replicas), rel_tol,
                             problem.row_size(r)) > 0]
    if problem.max_variants is not None:
        variants = {c.variant for c, n in assignment if n > 0}
        if len(variants) > problem.max_variants:
            out.append("constraints.fleet.max_distinct_variants")
    return out


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


__all__ = ["METRICS", "Assignment", "FleetMetrics", "Settled", "evaluate_settled",
           "fleet_metrics", "metric_value",
           "objective_key", "row_activity", "row_violation", "violated_constraints"]
