"""Pareto front of two fleet metrics by the epsilon-constraint method.

Start from the assignment best in x (ties broken by y: lexicographic, so the
point is non-dominated), then demand that y be strictly better than the last
point's y and optimise x again, until nothing is left.  Every point is
non-dominated and, when the walk ends by infeasibility, the list is the
whole front (for integer fleets it is finite).  A cap on points stops early
and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from configspec_opt.candidates import Candidate
from configspec_opt.fleet import FleetMetrics, fleet_metrics, metric_value
from configspec_opt.problem import build_problem
from configspec_opt.spec import Objective, Spec, Term
from solvers.adapter import SolverOptions
from solvers.solve import Optimizer, _Stop

MIN_STEP = 1e-6


@dataclass
class ParetoPoint:
    x: float
    y: float
    fleet: FleetMetrics
    assignment: list[tuple[Candidate, int]]


@dataclass
class ParetoFront:
    x: Term
    y: Term
    points: list[ParetoPoint] = field(default_factory=list)
    complete: bool = True
    time_s: float = 0.0


def pareto(
    spec: Spec, x: Term, y: Term, *, only: set[str] | None = None, max_points: int = 50,
    options: SolverOptions | None = None, step: float = MIN_STEP,
) -> ParetoFront:
    import time

    t0 = time.perf_counter()
    options = options or SolverOptions()
    objective = Objective(lexicographic=[x, y])
    problem = build_problem(spec, only=only, objective=objective)
    front = ParetoFront(x, y)
    if problem.empty_pools():
        front.time_s = time.perf_counter() - t0
        return front
    last_y: float | None = None
    while True:
        if len(front.points) >= max_points:
            front.complete = False
            break
        opt = Optimizer(problem, objective, options)
        if last_y is not None:
            delta = max(step * abs(last_y), 1e-9)
            target = last_y + delta if y.sense == "maximize" else last_y - delta
            opt.f.add_row(opt.bound_row(y, target, 0.0))
        try:
            counts = opt.solve(tie_break=False)
        except _Stop:
            break
        assignment = opt.assignment(counts)
        fm = fleet_metrics(assignment)
        point = ParetoPoint(metric_value(fm, x.metric), metric_value(fm, y.metric), fm,
                            assignment)
        front.points.append(point)
        last_y = point.y
    front.time_s = time.perf_counter() - t0
    return front
