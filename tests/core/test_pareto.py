"""The Pareto front on one reused HiGHS model: same front as fresh solves, non-dominated.

`solvers.pareto` keeps one problem and one loaded model for every point and
moves two rows in place.  These tests hold it to what a fresh solve per point
gives (the construction it replaced), and to brute force on a fleet small
enough to enumerate.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from configspec_opt.fleet import fleet_metrics, metric_value, violated_constraints
from configspec_opt.problem import build_problem
from configspec_opt.spec import Metric, Objective, Spec, Term
from solvers.adapter import SolverOptions
from solvers.backend import LinearObjective
from solvers.highs_model import HighsModel
from solvers.pareto import MIN_STEP, pareto
from solvers.solve import solve
from tests.core.brute import compositions

MAX_G = Term(maximize=Metric.goodput)
MIN_COST = Term(minimize=Metric.cost)
MIN_ENERGY = Term(minimize=Metric.energy)
MIN_POWER = Term(minimize=Metric.power)


def _fleet(counts: tuple[int, ...], budget: float | None = None) -> Spec:
    """A few small pools with real acceptance rates: fronts of a handful of points."""
    devices = [{"name": f"pool-{i}", "count": n, "memory_gb": 8, "rtt_s": 0.01 * i}
               for i, n in enumerate(counts)]
    profiles = []
    for i in range(len(counts)):
        for d, (draft, speed) in enumerate((("d-small", 40.0), ("d-large", 18.0))):
            profiles.append({"device": f"pool-{i}", "draft": draft, "quant": "Q4_K_M",
                             "draft_tok_s": speed * (1.0 + 0.3 * i),
                             "power_w": 6.0 + 2.0 * d + i,
                             "acceptance": {"big": {"per_token": 0.70 + 0.12 * d}}})
    fleet: dict[str, object] = {"max_distinct_variants": 2}
    if budget is not None:
        fleet["max_cost_usd_per_hour"] = budget
    return Spec.model_validate({
        "version": 1, "name": "tiny-front",
        "targets": [{"name": "big", "family": "llama", "price_usd_per_mtok": 0.9,
                     "verify_latency_s": 0.4}],
        "drafts": [{"name": "d-small", "family": "llama", "quants": {"Q4_K_M": {"size_gb": 1}}},
                   {"name": "d-large", "family": "llama", "quants": {"Q4_K_M": {"size_gb": 3}}}],
        "devices": devices, "profiles": profiles,
        "search": {"k": {"min": 2, "max": 4}},
        "objective": {"maximize": "goodput"},
        "constraints": {"fleet": fleet},
    })


def _fresh_front(spec: Spec, x: Term, y: Term, max_points: int) -> list[tuple[float, float]]:
    """The epsilon-constraint walk with a fresh `solve` (new problem, model, HiGHS) per point."""
    def point(bound: float | None) -> tuple[float, float] | None:
        s = spec
        if bound is not None:
            field = {Metric.power: "max_power_w",
                     Metric.energy: "max_energy_j_per_tok"}[y.metric]
            fleet = spec.constraints.fleet.model_copy(update={field: bound})
            s = spec.model_copy(update={"constraints": spec.constraints.model_copy(
                update={"fleet": fleet})})
        sol = solve(s, objective=Objective(lexicographic=[x, y]), tie_break=False,
                    diagnose=False)
        if sol.fleet is None:
            return None
        return metric_value(sol.fleet, x.metric), metric_value(sol.fleet, y.metric)

    pts: list[tuple[float, float]] = []
    last = point(None)
    while last is not None and len(pts) < max_points:
        pts.append(last)
        last = point(last[1] - max(MIN_STEP * abs(last[1]), 1e-9))
    return pts


@pytest.mark.parametrize("y", [MIN_POWER, MIN_ENERGY], ids=["power", "energy (Dinkelbach)"])
def test_reused_model_front_equals_fresh_solves(y: Term) -> None:
    spec = _fleet((2, 1, 2))
    front = pareto(spec, MAX_G, y, max_points=40)
    assert front.complete, front.message
    fresh = _fresh_front(spec, MAX_G, y, 40)
    assert len(front.points) == len(fresh) >= 3
    for p, (fx, fy) in zip(front.points, fresh):
        assert p.x == pytest.approx(fx, rel=1e-7) and p.y == pytest.approx(fy, rel=1e-7)


def test_every_point_is_non_dominated_and_none_is_missed() -> None:
    """Brute force over every assignment of a tiny fleet: the front is exactly its own."""
    spec = _fleet((2, 1, 2))
    front = pareto(spec, MAX_G, MIN_POWER, max_points=50)
    assert front.complete
    problem = build_problem(spec, objective=Objective(lexicographic=[MAX_G, MIN_POWER]),
                            prune=False)
    per_pool = [[problem.candidates[i] for i in idx] for idx in problem.by_pool]
    feasible: list[tuple[float, float]] = []
    for parts in itertools.product(*[list(compositions(c, problem.pools[d].count))
                                     for d, c in enumerate(per_pool)]):
        assignment = [a for part in parts for a in part]
        if not violated_constraints(problem, assignment):
            fm = fleet_metrics(assignment)
            assert fm.power_w is not None
            feasible.append((fm.goodput_tok_s, fm.power_w))
    assert len(feasible) > 20

    def dominated(g: float, c: float) -> bool:
        return any(g2 >= g - 1e-9 * g and c2 <= c + 1e-9 * c and (g2 > g + 1e-9 * g
                                                                  or c2 < c - 1e-9 * c)
                   for g2, c2 in feasible)

    truth = sorted({(round(g, 6), round(c, 9)) for g, c in feasible if not dominated(g, c)},
                   reverse=True)
    got = [(p.x, p.y) for p in front.points]
    assert all(not dominated(g, c) for g, c in got)
    assert len(got) == len(truth)
    for (g, c), (tg, tc) in zip(got, truth):
        assert g == pytest.approx(tg, rel=1e-6) and c == pytest.approx(tc, rel=1e-6)


def test_sampled_front_matches_per_point_model_and_spans_the_range() -> None:
    spec = _fleet((2, 2), budget=0.6)
    front = pareto(spec, MAX_G, MIN_COST, max_points=4)
    assert not front.complete and 2 <= len(front.points) <= 4
    cheapest = solve(spec, objective=Objective(lexicographic=[MIN_COST, MAX_G]),
                     tie_break=False, diagnose=False)
    assert cheapest.fleet is not None
    assert front.points[-1].y == pytest.approx(cheapest.fleet.cost_usd_per_hour, rel=1e-7)
    pyomo = pareto(spec, MAX_G, MIN_COST, max_points=4, options=SolverOptions(backend="pyomo"))
    assert [v for p in pyomo.points for v in (p.x, p.y)] == pytest.approx(
        [v for p in front.points for v in (p.x, p.y)], rel=1e-7)


def test_rows_changed_in_place_leave_no_trace() -> None:
    """A free row set, moved, then cleared solves as if it had never been there."""
    spec = _fleet((3, 2, 4))
    problem = build_problem(spec)
    model = HighsModel(problem, fairness=False)
    cost = [c.cost_usd_per_hour for c in problem.candidates]
    model.set_objective(LinearObjective(cost, "minimize"))
    assert model.solve().has_solution
    base = float(np.dot(cost, model.counts()))
    rows_before = model.h.getNumRow()
    row = model.add_free_row()
    from solvers.solve import Optimizer

    opt = Optimizer(problem, Objective(lexicographic=[MAX_G, MIN_COST]), SolverOptions())
    model.set_row(row, opt.bound_row(MAX_G, 0.9 * 1e9, 0.0))
    assert not model.solve().has_solution  # an impossible goodput floor: infeasible
    model.set_row(row, opt.bound_row(MIN_ENERGY, 1e-3, 0.0))  # every coefficient moves
    model.set_row(row, None)
    assert model.h.getNumRow() == rows_before + 1
    assert model.solve().has_solution
    assert float(np.dot(cost, model.counts())) == pytest.approx(base, rel=1e-9)
