"""Pareto front of two fleet metrics by the epsilon-constraint method.

Start from the assignment best in x (ties broken by y: lexicographic, so the
point is non-dominated), then demand that y be strictly better than the last
point's y and optimise x again, until nothing is left.  Every point is
non-dominated and, when the walk ends by infeasibility, the list is the
whole front (for integer fleets it is finite).  When the front has more points
than asked for, it is sampled evenly between its two ends instead, and says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from configspec_opt.candidates import Candidate
from configspec_opt.errors import UsageError
from configspec_opt.fleet import FleetMetrics, fleet_metrics, metric_value
from configspec_opt.problem import Problem, build_problem
from configspec_opt.spec import Metric, Objective, Spec, Term
from configspec_opt.verifiers import plans_for
from solvers import deadline
from solvers.adapter import SolverOptions
from solvers.solve import Optimizer, StageStopped, solve
from solvers.status import Status, Termination

MIN_STEP = 1e-6


@dataclass
class ParetoPoint:
    """One non-dominated fleet assignment: its two metrics and every fleet figure."""

    x: float
    y: float
    fleet: FleetMetrics
    assignment: list[tuple[Candidate, int]]


@dataclass
class ParetoFront:
    """The front of `pareto`: `complete` false when cut short or sampled (`message` says which)."""

    x: Term
    y: Term
    points: list[ParetoPoint] = field(default_factory=list)
    complete: bool = True
    time_s: float = 0.0
    message: str = ""  # why the front is incomplete, when it stopped early


class _OutOfTime(Exception):
    """A point's MILPs stopped at the time limit: it is not proven non-dominated."""


def _stopped_early(front: ParetoFront) -> None:
    front.complete = False
    front.message = (f"stopped at the time limit after {len(front.points)} point"
                     f"{'s' if len(front.points) != 1 else ''}: the front is incomplete "
                     "(every point listed is non-dominated)")


class _FrontModel:
    """One problem and one loaded HiGHS model for every point of a front.

    Rebuilding the model and HiGHS per point costs the build once per MILP
    (a second or more at a thousand pools); here each point only changes two
    rows kept for the purpose, in place, and the objective: the epsilon row
    (y at least as good as the point's bound) and the row that holds the
    first term at its optimum while the second is optimised.  A point is the
    same lexicographic pair of MILPs (`Optimizer.optimize_term`, so ratio
    metrics go through Dinkelbach) as a fresh `Optimizer.solve` would run.

    No MIP start is offered: with highspy 1.16, a start on a model whose
    presolve removes columns is valued without presolve's objective offset,
    so a minimising run can return the start itself as "optimal" below the
    true optimum; measured on the 1,000-pool benchmark, starts did not
    shorten the runs either, whose time goes to proving the bound.
    The Pyomo backend has no rows to change in place: it gets a fresh model
    per point, as before.
    """

    def __init__(self, problem: Problem, x: Term, y: Term, options: SolverOptions) -> None:
        from solvers.highs_model import HighsModel

        self.problem, self.x, self.y, self.options = problem, x, y, options
        self.objective = Objective(lexicographic=[x, y])
        self.opt = Optimizer(problem, self.objective, options)
        self.model = self.opt.f if isinstance(self.opt.f, HighsModel) else None
        if self.model is not None:
            self.eps_row = self.model.add_free_row()
            self.hold_row = self.model.add_free_row()

    def _fresh(self, y_bound: float | None) -> Optimizer:
        """An optimizer for one point, on the shared model (cleared) or a new Pyomo one."""
        if self.model is None:
            opt = Optimizer(self.problem, self.objective, self.options)
            if y_bound is not None:
                opt.f.add_row(opt.bound_row(self.y, y_bound, 0.0))
            return opt
        opt = self.opt
        opt.stages, opt.bounds, opt.stage_values = [], [], []
        opt.complete, opt.stopped = True, None
        self.model.set_row(self.hold_row, None)
        self.model.set_row(self.eps_row, None if y_bound is None
                           else opt.bound_row(self.y, y_bound, 0.0))
        return opt

    def point(self, y_bound: float | None = None, *, y_first: bool = False) -> ParetoPoint | None:
        """Optimise x then y (y then x with `y_first`), y at least as good as `y_bound`.

        None when no assignment reaches `y_bound` (the front ends there); raises
        `_OutOfTime` when the time limit cut the search short.
        """
        if deadline.expired():
            raise _OutOfTime()
        opt = self._fresh(y_bound)
        first, second = (self.y, self.x) if y_first else (self.x, self.y)
        try:
            value = opt.optimize_term(first)
            if deadline.expired():  # as `Optimizer.solve` between lexicographic stages
                raise _OutOfTime()
            hold = opt.bound_row(first, value, first.tolerance)
            if self.model is None:
                opt.f.add_row(hold)
            else:
                self.model.set_row(self.hold_row, hold)
            opt.optimize_term(second)
        except StageStopped as stop:
            if stop.result.termination is Termination.time_limit:
                raise _OutOfTime() from None
            return None
        if not opt.complete and opt.stopped is Termination.time_limit:
            raise _OutOfTime()
        assignment = opt.assignment(opt.last)
        fm = fleet_metrics(assignment)
        return ParetoPoint(metric_value(fm, self.x.metric), metric_value(fm, self.y.metric), fm,
                           assignment)


def pareto(
    spec: Spec, x: Term, y: Term, *, only: set[str] | None = None, max_points: int = 50,
    options: SolverOptions | None = None, step: float = MIN_STEP,
) -> ParetoFront:
    """The front of (x, y); exact when it has at most `max_points` points.

    A larger front (fleets mix configurations in many integer ways) is sampled
    instead: `max_points` epsilon levels spread evenly between the best-x and the
    best-y ends, each solved to a non-dominated point (`complete` is then False).
    """
    t0 = time.perf_counter()
    options = options or SolverOptions()
    if plans_for(spec):
        front = _pareto_under_load(spec, x, y, only, min(max_points, LOAD_MAX_POINTS), options)
        front.time_s = time.perf_counter() - t0
        return front
    deadline.step("building the candidates")
    # Pruning keeps what may be best for either metric, in either order: one
    # problem serves both ends of the front.
    problem = build_problem(spec, only=only, objective=Objective(lexicographic=[x, y]))
    front = ParetoFront(x, y)
    if problem.empty_pools():
        front.time_s = time.perf_counter() - t0
        return front

    def better(v: float, delta: float) -> float:
        return v + delta if y.sense == "maximize" else v - delta

    try:
        if deadline.expired():
            raise _OutOfTime()
        deadline.step("building the model")
        model = _FrontModel(problem, x, y, options)
        _walk(front, model, max_points, step, better)
    except _OutOfTime:
        _stopped_early(front)
    front.time_s = time.perf_counter() - t0
    return front


def _walk(front: ParetoFront, model: _FrontModel, max_points: int, step: float,
          better: Callable[[float, float], float]) -> None:
    """The epsilon-constraint walk of `pareto`, adding points to `front` as they are proven."""
    deadline.step("computing the Pareto front")
    last = model.point()
    while last is not None and len(front.points) < max_points:
        front.points.append(last)
        last = model.point(better(last.y, max(step * abs(last.y), 1e-9)))
    if last is not None:  # more points than asked for: sample the range evenly
        front.complete = False
        far = model.point(y_first=True)
        first = front.points[0]
        front.points = [first]
        if far is not None and max_points > 1:
            for i in range(1, max_points):
                target = first.y + (far.y - first.y) * i / (max_points - 1)
                p = model.point(target)
                if p is not None and all(abs(p.y - q.y) > 1e-12 * max(1.0, abs(p.y))
                                         for q in front.points):
                    front.points.append(p)


# Batched verifiers: each point is a whole load-model solve (several MILPs).
LOAD_MAX_POINTS = 12
# Under load, a bound the last point already meets is moved just past it (relative):
# the same point would come back, and a replica-priced front is a staircase.
_NEXT_REL = 1e-5
# The fleet constraint that bounds a metric from its better side.
_BOUND_FIELD: dict[tuple[Metric, str], str] = {
    (Metric.cost, "minimize"): "max_cost_usd_per_hour",
    (Metric.goodput, "maximize"): "min_goodput_tok_s",
    (Metric.power, "minimize"): "max_power_w",
    (Metric.energy, "minimize"): "max_energy_j_per_tok",
    (Metric.cost_efficiency, "maximize"): "min_cost_efficiency_tok_per_usd",
}


def _pareto_under_load(spec: Spec, x: Term, y: Term, only: set[str] | None,
                       max_points: int, options: SolverOptions) -> ParetoFront:
    """The front with replicas as decisions: y bounded through the spec's own fleet constraint.

    Each point is `solve` of the load model with y held by a fleet
    constraint, so every point is settled at its true load; the front is
    sampled between the best-x and the best-y ends (`complete` False): evenly,
    except that a bound the last point already meets moves just past it, so
    every solve finds a new point (a replica-priced front is a staircase).
    """
    key = (y.metric, y.sense)
    if key not in _BOUND_FIELD:
        raise UsageError(
            f"under a batched verifier the y axis must be one of "
            f"{', '.join(f'{s}:{m.value}' for m, s in _BOUND_FIELD)}")
    field_name = _BOUND_FIELD[key]

    def point(objective: Objective, bound: float | None) -> ParetoPoint | None:
        s = spec
        if bound is not None:
            fleet = spec.constraints.fleet
            old = getattr(fleet, field_name)
            tighter = bound if old is None else (
                min(old, bound) if field_name.startswith("max") else max(old, bound))
            s = spec.model_copy(update={"constraints": spec.constraints.model_copy(
                update={"fleet": fleet.model_copy(update={field_name: tighter})})})
        sol = solve(s, objective=objective, only=only, options=options, diagnose=False,
                    tie_break=False)  # a point is its values; ties need no rank rule here
        if sol.fleet is None or sol.status not in (Status.optimal, Status.feasible):
            return None
        return ParetoPoint(metric_value(sol.fleet, x.metric), metric_value(sol.fleet, y.metric),
                           sol.fleet, sol.assignment)

    front = ParetoFront(x, y, complete=False, message=(
        "under a batched verifier the front is sampled: each point is a solve settled at its "
        f"true load with {y.metric.value} bounded, from the best-{x.metric.value} end to the "
        f"best-{y.metric.value} end (at most {max_points} points); points between two listed "
        "ones may be missing"))
    deadline.step("computing the Pareto front")
    first = point(Objective(lexicographic=[x, y]), None)
    if first is None or deadline.expired():
        if deadline.expired():
            _stopped_early(front)
        if first is not None:
            front.points.append(first)
        return front
    far = point(Objective(lexicographic=[y, x]), None)
    front.points.append(first)
    if far is None or max_points < 2 or abs(far.y - first.y) <= 1e-9 * max(1.0, abs(first.y)):
        return front
    toward = 1.0 if y.sense == "minimize" else -1.0  # toward * y falls from first to far
    last = first
    for i in range(1, max_points):
        if deadline.expired():
            _stopped_early(front)
            break
        target = first.y + (far.y - first.y) * i / (max_points - 1)
        if toward * target >= toward * last.y:
            # the last point meets this bound, so it would come back: ask just past it
            target = last.y - toward * _NEXT_REL * max(1.0, abs(last.y))
        if toward * target < toward * far.y - 1e-9 * max(1.0, abs(far.y)):
            break  # past the best-y end: nothing lies beyond it
        p = point(Objective(lexicographic=[x, y]), target)
        if p is not None and all(abs(p.y - q.y) > 1e-9 * max(1.0, abs(p.y))
                                 for q in front.points):
            front.points.append(p)
            last = p
    if all(abs(far.y - q.y) > 1e-9 * max(1.0, abs(far.y)) for q in front.points):
        front.points.append(far)
    return front
