"""The direct HiGHS backend (`solvers.highs_model`) against brute force and the Pyomo backend.

Random small fleets whose verifier capacity, budget and variant limit are set
just below what the unconstrained optimum uses, so that they bind; every
objective kind (sums, ratios by Dinkelbach, the minimum goodput, weighted and
lexicographic) and batched verifiers.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from math import comb
from pathlib import Path
from typing import Any

import highspy
import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st

from configspec_opt.candidates import Candidate, enumerate_candidates
from configspec_opt.fleet import fleet_metrics, objective_key, violated_constraints
from configspec_opt.loader import load_spec
from configspec_opt.problem import Problem, Row, build_problem
from configspec_opt.spec import Spec
from configspec_opt.verifiers import Mode, plans_for
from solvers.adapter import SolverOptions
from solvers.backend import LinearObjective
from solvers.formulation import Formulation, build
from solvers.highs_model import INF, HighsModel
from solvers.solve import Solution, solve
from solvers.status import TERMINATION_FROM_HIGHS, Status, Termination
from tests.core.brute import brute_force
from tests.core.strategies import OBJECTIVES, fleet_specs
from tests.core.test_verifier_load import _check_against_brute_force, verifier_fleets

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llama70b-edge.yaml"
REL = 1e-6
STRICT, LOOSE = 0.5e-6, 2e-6
SEARCH_LIMIT = 4000  # assignments brute force enumerates, at most
HIGHS, PYOMO = SolverOptions(backend="highs"), SolverOptions(backend="pyomo")


def _search_size(spec: Spec) -> int:
    size = 1
    for pc in enumerate_candidates(spec):
        size *= comb(len(pc.candidates) + pc.device.count - 1, pc.device.count)
    return size


def _total(assignment: list[tuple[Candidate, int]], attr: str, target: str | None = None,
           ) -> float:
    return float(sum(n * getattr(c, attr) for c, n in assignment
               if target is None or c.target == target))


@st.composite
def binding_specs(draw: st.DrawFn, objective: dict[str, Any]) -> tuple[Spec, list[str]]:
    """A random fleet whose capacity, budget and variant limit sit below the free optimum.

    Each limit lies between the least the fleet can use and what the optimum
    without fleet constraints uses, so that optimum breaks all of them.
    Returns the spec and the constraints that bind.
    """
    base = draw(fleet_specs(objective))
    assume(_search_size(base) <= SEARCH_LIMIT)
    data = base.model_dump(mode="json", exclude_none=True, by_alias=True)
    data["constraints"]["fleet"] = {}
    for t in data["targets"]:
        t.pop("capacity_tok_s", None)
    free = Spec.model_validate(data)
    best = brute_force(free, rel_tol=STRICT)
    assume(best is not None)
    assert best is not None
    chosen = best[1]
    pools = [pc for pc in enumerate_candidates(free) if pc.candidates]
    u = draw(st.floats(0.2, 0.8))
    binding: list[str] = []
    target = data["targets"][0]["name"]

    def least(attr: str, only: str | None = None) -> float:
        return sum(pc.device.count * min(getattr(c, attr) if only in (None, c.target) else 0.0
                                         for c in pc.candidates) for pc in pools)

    load, low = _total(chosen, "verifier_load_tok_s", target), least("verifier_load_tok_s",
                                                                     target)
    if load > low * (1 + 1e-3):
        data["targets"][0]["capacity_tok_s"] = round(low + u * (load - low), 4)
        binding.append("capacity")
    cost, low = _total(chosen, "cost_usd_per_hour"), least("cost_usd_per_hour")
    if cost > low * (1 + 1e-3):
        data["constraints"]["fleet"]["max_cost_usd_per_hour"] = round(low + u * (cost - low), 6)
        binding.append("budget")
    variants = {c.variant for c, _ in chosen}
    if len(variants) > 1:
        data["constraints"]["fleet"]["max_distinct_variants"] = len(variants) - 1
        binding.append("variants")
    assume(binding)
    return Spec.model_validate(data), binding


def _key(spec: Spec, sol: Solution) -> tuple[float, ...]:
    return objective_key(fleet_metrics(sol.assignment), spec.objective)


def _check_brute(spec: Spec, sol: Solution) -> bool:
    """The answer lies between the strict and loose brute-force optima (as test_milp_vs_brute).

    Returns whether brute force finds a strictly feasible assignment.
    """
    strict = brute_force(spec, rel_tol=STRICT)
    loose = brute_force(spec, rel_tol=LOOSE)
    if loose is None:
        assert sol.status is Status.infeasible, sol.message
        return False
    if strict is None and sol.status is Status.infeasible:
        return False
    assert sol.status is Status.optimal, sol.message
    assert not violated_constraints(sol.problem, sol.assignment, LOOSE)
    got = _key(spec, sol)
    terms = spec.objective.terms() if spec.objective.mode == "lexicographic" else \
        [spec.objective.terms()[0]]
    for i, term in enumerate(terms[:-1]):
        ref = (strict or loose)[0][i]
        assert got[i] >= ref - term.tolerance * abs(ref) - REL * max(1.0, abs(ref)), (i, got)
    last = len(terms) - 1
    low = strict[0][last] if strict else -float("inf")
    high = loose[0][last]
    tol = REL * max(1.0, abs(high))
    assert low - tol <= got[last] <= high + tol, (got, low, high)
    return strict is not None


def _same_optimum(spec: Spec, a: Solution, b: Solution) -> None:
    """Both backends' optima: equal up to the solver's tolerances.

    A lexicographic objective is compared on its last term (the earlier ones may
    spend their declared tolerance differently), a weighted one on its sum.
    """
    ka, kb = _key(spec, a), _key(spec, b)
    i = len(ka) - 1 if spec.objective.mode == "lexicographic" else 0
    assert abs(ka[i] - kb[i]) <= REL * max(1.0, abs(ka[i]), abs(kb[i])), (ka, kb)


@pytest.mark.parametrize("objective", OBJECTIVES, ids=lambda o: str(o)[:60])
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_both_backends_reach_the_brute_force_optimum_with_binding_limits(
        objective: dict[str, Any], data: st.DataObject) -> None:
    spec, binding = data.draw(binding_specs(objective))
    note(spec.model_dump_json(exclude_none=True, exclude_defaults=True))
    a = solve(spec, options=HIGHS, diagnose=False)
    b = solve(spec, options=PYOMO, diagnose=False)
    strictly_feasible = _check_brute(spec, a)
    event(f"binding: {'+'.join(binding)}; {a.status.value}")
    if not strictly_feasible and a.status is not b.status:
        return  # feasible only within the solver's tolerance band: either answer is right
    assert a.status is b.status, (a.message, b.message)
    if a.status is Status.optimal:
        _same_optimum(spec, a, b)
        assert a.proven_optimal and b.proven_optimal


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(spec=fleet_specs())
def test_both_backends_agree_on_random_fleets(spec: Spec) -> None:
    """Any constraints (energy, power, goodput floors, ratio bounds), pruning on and off."""
    assume(_search_size(spec) <= SEARCH_LIMIT)
    for prune in (True, False):
        a = solve(spec, options=HIGHS, diagnose=False, prune=prune)
        b = solve(spec, options=PYOMO, diagnose=False, prune=prune)
        strictly_feasible = _check_brute(spec, a)
        if not strictly_feasible and a.status is not b.status:
            continue
        assert a.status is b.status, (a.message, b.message)
        if a.status is Status.optimal:
            _same_optimum(spec, a, b)


def _bounds(sol: Solution, maximize: bool) -> tuple[float, float]:
    """(value, what the certified gap says no assignment beats), for positive values."""
    assert sol.objective_value is not None and sol.gap is not None
    v = sol.objective_value
    if sol.gap >= 1.0:
        return v, float("inf") if maximize else 0.0
    return v, v / (1.0 - sol.gap) if maximize else v * (1.0 - sol.gap)


@pytest.mark.parametrize("objective", [{"maximize": "goodput"}, {"minimize": "cost"}],
                         ids=lambda o: "-".join(*o.items()))
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_both_backends_under_load(objective: dict[str, Any], data: st.DataObject) -> None:
    """Batched verifiers: the default (highs) backend against the settled brute force, and
    each backend's answer within the other's certified bound."""
    spec = data.draw(verifier_fleets(objective))
    note(spec.model_dump_json(exclude_none=True, exclude_defaults=True))
    event(_check_against_brute_force(spec))  # solve() with the default backend: highs
    a = solve(spec, options=HIGHS, diagnose=False)
    b = solve(spec, options=PYOMO, diagnose=False)
    assert bool(a.assignment) == bool(b.assignment), (a.message, b.message)
    if not a.assignment:
        assert a.status is b.status
        return
    maximize = "maximize" in objective
    (va, ba), (vb, bb) = _bounds(a, maximize), _bounds(b, maximize)
    tol = 1e-9 * max(1.0, abs(va), abs(vb))
    if maximize:
        assert va <= bb + tol and vb <= ba + tol, (va, ba, vb, bb)
    else:
        assert va >= bb - tol and vb >= ba - tol, (va, ba, vb, bb)


Entries = dict[str, float]


def _pyomo_model(f: Formulation) -> tuple[list[tuple[float, float, Entries]],
                                          dict[str, tuple[float, float, bool]], Entries, str]:
    """Rows (lower, upper, coefficients by variable name), columns, objective and sense."""
    from pyomo.environ import Constraint, Objective, Var, maximize, value
    from pyomo.repn import generate_standard_repn

    rows = []
    for con in f.model.component_data_objects(Constraint, active=True):
        repn = generate_standard_repn(con.body, compute_values=True)
        const = float(value(repn.constant))
        lo = -INF if con.lower is None else float(value(con.lower)) - const
        up = INF if con.upper is None else float(value(con.upper)) - const
        rows.append((lo, up, {v.name: float(value(a)) for v, a in
                              zip(repn.linear_vars, repn.linear_coefs) if value(a) != 0.0}))
    cols = {v.name: (-INF if v.lb is None else float(v.lb), INF if v.ub is None else
                     float(v.ub), bool(v.is_integer()))
            for v in f.model.component_data_objects(Var)}
    [obj] = f.model.component_data_objects(Objective, active=True)
    repn = generate_standard_repn(obj.expr, compute_values=True)
    cost = {v.name: float(value(a)) for v, a in zip(repn.linear_vars, repn.linear_coefs)
            if value(a) != 0.0}
    return rows, cols, cost, "maximize" if obj.sense == maximize else "minimize"


def _highs_model(m: HighsModel) -> tuple[list[tuple[float, float, Entries]],
                                         dict[str, tuple[float, float, bool]], Entries, str]:
    """The same four, read back from HiGHS (`getLp`)."""
    lp = m.h.getLp()
    names = m.column_names()
    assert len(names) == lp.num_col_
    a = lp.a_matrix_
    entries: list[Entries] = [{} for _ in range(lp.num_row_)]
    rowwise = a.format_ == highspy.MatrixFormat.kRowwise
    for outer in range(len(a.start_) - 1):
        for k in range(a.start_[outer], a.start_[outer + 1]):
            r, c = (outer, a.index_[k]) if rowwise else (a.index_[k], outer)
            entries[r][names[c]] = a.value_[k]
    rows = [(lo, up, e) for lo, up, e in zip(lp.row_lower_, lp.row_upper_, entries)]
    integer = [t == highspy.HighsVarType.kInteger for t in lp.integrality_] or \
        [False] * lp.num_col_
    cols = {n: (lo, up, i) for n, lo, up, i in
            zip(names, lp.col_lower_, lp.col_upper_, integer)}
    cost = {n: a for n, a in zip(names, lp.col_cost_) if a != 0.0}
    sense = "maximize" if lp.sense_ == highspy.ObjSense.kMaximize else "minimize"
    return rows, cols, cost, sense


def _close(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def _same_entries(a: Entries, b: Entries) -> bool:
    """Equal rows; a coefficient HiGHS drops as zero (below its small_matrix_value, 1e-9: a
    ratio row's residue like 1.4/R - 1.4/R) counts as absent on either side."""
    a = {k: v for k, v in a.items() if abs(v) > 1e-9}
    b = {k: v for k, v in b.items() if abs(v) > 1e-9}
    return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)


def _assert_same_model(f: Formulation, m: HighsModel) -> None:
    (prows, pcols, pcost, psense), (hrows, hcols, hcost, hsense) = _pyomo_model(f), \
        _highs_model(m)
    assert hcols == pcols
    assert len(hrows) == len(prows)
    for r, ((plo, pup, pe), (hlo, hup, he)) in enumerate(zip(prows, hrows)):
        assert _close(plo, hlo) and _close(pup, hup), (r, (plo, pup), (hlo, hup))
        assert _same_entries(pe, he), (r, pe, he)
    assert psense == hsense
    assert _same_entries(pcost, hcost), (pcost, hcost)


def _extra_rows(problem: Problem, fairness: bool) -> list[Row]:
    """Rows like the ones `solvers.solve` adds: an objective bound (on t, on replicas) and
    a row of small numbers (scaled to unit size)."""
    rows = [Row("objective.goodput", "goodput bound", lambda c: c.goodput_tok_s, ">=", 1.0,
                replica_coef={p.target: -0.5 for p in problem.verifiers}),
            Row("tiny", "small numbers", lambda c: c.cost_usd_per_hour * 1e-3, "<=", 3e-5,
                replica_coef={p.target: 2e-4 for p in problem.verifiers})]
    if fairness:
        rows.append(Row("objective.min_goodput", "min goodput bound", lambda c: 0.0, ">=",
                        0.5, t_coef=1.0))
    return rows


def _objective(problem: Problem, fairness: bool) -> LinearObjective:
    return LinearObjective([c.goodput_tok_s - 0.1 * c.cost_usd_per_hour
                            for c in problem.candidates], "maximize",
                           t_coef=2.0 if fairness else 0.0,
                           replica_coef={p.target: -1.5 for p in problem.verifiers})


def _check_same_model(problem: Problem, fairness: bool) -> None:
    f = build(problem, fairness=fairness)
    m = HighsModel(problem, fairness=fairness)
    for row in _extra_rows(problem, fairness):
        f.add_row(row)
        m.add_row(row)
    obj = _objective(problem, fairness)
    f.set_objective(obj)
    m.set_objective(obj)
    _assert_same_model(f, m)


@settings(max_examples=30, deadline=None)
@given(spec=fleet_specs(), fairness=st.booleans())
def test_the_same_model_as_the_pyomo_formulation(spec: Spec, fairness: bool) -> None:
    """Row by row, column by column: bounds, integrality, coefficients, scaling, objective."""
    problem = build_problem(spec)
    assume(problem.candidates and not problem.empty_pools())
    _check_same_model(problem, fairness)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), mode=st.sampled_from(["conservative", "optimistic"]))
def test_the_same_model_with_batched_verifiers(data: st.DataObject, mode: Mode) -> None:
    spec = data.draw(verifier_fleets({"maximize": "goodput"}))
    problem = build_problem(spec, plans=plans_for(spec), mode=mode)
    assume(problem.candidates and not problem.empty_pools())
    assert problem.verifiers
    _check_same_model(problem, fairness=data.draw(st.booleans()))


def test_every_highs_model_status_has_a_termination() -> None:
    """The lookup table covers what this highspy can answer (a contract with highspy)."""
    names = {s.name for s in highspy.HighsModelStatus.__members__.values()}
    assert names <= set(TERMINATION_FROM_HIGHS), names - set(TERMINATION_FROM_HIGHS)
    assert TERMINATION_FROM_HIGHS["kOptimal"] is Termination.optimal
    assert TERMINATION_FROM_HIGHS["kTimeLimit"] is Termination.time_limit
    assert TERMINATION_FROM_HIGHS["kInfeasible"] is Termination.infeasible


def _example_model() -> tuple[Problem, HighsModel]:
    spec = load_spec(EXAMPLE).spec
    problem = build_problem(spec)
    return problem, HighsModel(problem, fairness=True)


def test_the_model_stays_loaded_between_stages() -> None:
    """Objective changes and added rows act on the loaded model; a run without a solution
    says so and leaves the last solution's values loaded."""
    problem, m = _example_model()
    goodput = [c.goodput_tok_s for c in problem.candidates]
    m.set_objective(LinearObjective(goodput, "maximize"))
    best = m.solve()
    assert best.termination is Termination.optimal and best.proven_optimal
    assert best.objective is not None and best.bound is not None
    assert best.gap is not None and best.gap <= 1e-9
    counts = m.counts()
    assert [sum(counts[i] for i in idx) for idx in problem.by_pool] == \
        [p.count for p in problem.pools]
    assert abs(sum(k * g for k, g in zip(counts, goodput)) - best.objective) <= 1e-6 * \
        best.objective
    m.set_objective(LinearObjective([0.0] * len(goodput), "maximize", t_coef=1.0))
    fair = m.solve()
    assert fair.proven_optimal and fair.objective is not None
    fair_counts = m.counts()
    used = [goodput[i] for i, k in enumerate(fair_counts) if k > 0]
    assert abs(min(used) - fair.objective) <= 1e-6 * fair.objective
    m.add_row(Row("test", "goodput above the optimum", lambda c: c.goodput_tok_s, ">=",
                  best.objective * 1.01))
    gone = m.solve()
    assert gone.termination is Termination.infeasible and not gone.has_solution
    assert not gone.proven_optimal and gone.objective is None
    assert m.counts() == fair_counts


def test_a_warm_start_is_used_and_options_are_per_run() -> None:
    """The tie-break's MIP start: with no node allowed, HiGHS has a solution only when the
    loaded one is offered back; the node cap of one run does not stay for the next."""
    problem, m = _example_model()
    goodput = [c.goodput_tok_s for c in problem.candidates]
    m.set_objective(LinearObjective(goodput, "maximize"))
    first = m.solve()
    assert first.objective is not None
    rank = [float(len(idx) - r) for idx in problem.by_pool for r in range(len(idx))]
    start = sum(a * k for a, k in zip(rank, m.counts()))
    m.add_row(Row("test", "goodput at its optimum", lambda c: c.goodput_tok_s, ">=",
                  first.objective * (1 - 1e-9)))
    m.set_objective(LinearObjective(rank, "maximize"))
    cold = m.solve(mip_max_nodes=0)
    assert cold.termination is Termination.iteration_limit and not cold.has_solution
    m.warm_start()
    warm = m.solve(mip_max_nodes=0)
    assert warm.termination is Termination.iteration_limit and not warm.proven_optimal
    assert warm.has_solution and warm.objective == pytest.approx(start, rel=1e-12)
    again = m.solve()
    assert again.proven_optimal and again.objective is not None
    assert again.objective >= start - 1e-9


def test_starting_highs_prints_nothing_on_stdout() -> None:
    """highspy prints a banner when it starts; `solve --json` output must stay JSON."""
    code = ("from solvers.highs_model import new_highs\n"
            "h = new_highs()\nh.addVars(1, [0.0], [1.0])\nh.run()\nprint('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "ok\n"


def test_solve_json_is_json_on_a_fresh_process() -> None:
    res = subprocess.run([sys.executable, "-m", "configspec_opt", "solve", str(EXAMPLE),
                          "--json", "--no-explain"], capture_output=True, text=True, cwd=ROOT,
                         timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["status"] == "optimal"


def _bench_spec(pools: int, seed: int) -> Spec:
    """The fleet generator of benchmarks/bench_solve.py (deterministic for a seed)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_solve.py"
    mod_spec = importlib.util.spec_from_file_location("bench_solve_for_tests", path)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return Spec.model_validate(module.make_spec(pools, seed))


@pytest.mark.parametrize("pools,seed", [(5, 7), (8, 11)])
def test_a_mip_start_never_yields_a_false_optimum(pools: int, seed: int) -> None:
    """HiGHS 1.16 returned a MIP start as "optimal" with a wrong objective after presolve.

    From the goodput optimum as a start, minimising cost must give what a cold run
    gives, and the reported objective must be the returned assignment's own.
    """
    problem = build_problem(_bench_spec(pools, seed))
    goodput = LinearObjective([c.goodput_tok_s for c in problem.candidates], "maximize")
    cost = [c.cost_usd_per_hour for c in problem.candidates]
    got = []
    for warm in (False, True):
        m = HighsModel(problem, fairness=False)
        m.set_objective(goodput)
        assert m.solve().proven_optimal
        m.set_objective(LinearObjective(cost, "minimize"))
        if warm:
            m.warm_start()
        r = m.solve()
        assert r.proven_optimal and r.objective is not None
        own = sum(a * n for a, n in zip(cost, m.counts()))
        assert math.isclose(r.objective, own, rel_tol=1e-9, abs_tol=1e-9)
        got.append(r.objective)
    assert math.isclose(got[0], got[1], rel_tol=1e-7)


HIGHSPY_METHODS = ("addRow", "addRows", "addVars", "changeCoeff", "changeColsCost",
                   "changeColsIntegrality", "changeObjectiveSense", "changeRowBounds",
                   "clearSolver", "getInfo", "getLp", "getModelStatus", "getNumRow",
                   "getSolution", "run", "setOptionValue", "setSolution")


def test_the_highspy_api_the_backend_relies_on() -> None:
    """A contract with highspy: every public call `solvers.highs_model` makes, and what it
    reads back, on a two-variable MIP whose answer is known (max x + 2y, x + y <= 3.5,
    y <= 2.5, integers: x = 1, y = 2, objective 5; LP bound 6)."""
    import numpy as np

    from solvers.highs_model import new_highs

    h = new_highs()
    for name in HIGHSPY_METHODS:
        assert callable(getattr(h, name)), name
    assert h.addVars(2, np.zeros(2), np.full(2, 10.0)) == highspy.HighsStatus.kOk
    assert h.changeColsIntegrality(2, np.arange(2, dtype=np.int32), np.full(
        2, highspy.HighsVarType.kInteger.value, dtype=np.uint8)) == highspy.HighsStatus.kOk
    assert h.addRows(2, np.full(2, -highspy.kHighsInf), np.array([3.5, 2.5]), 3,
                     np.array([0, 2], dtype=np.int32), np.array([0, 1, 1], dtype=np.int32),
                     np.array([1.0, 1.0, 1.0])) == highspy.HighsStatus.kOk
    h.changeColsCost(2, np.arange(2, dtype=np.int32), np.array([1.0, 2.0]))
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    h.setOptionValue("mip_rel_gap", 1e-9)
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    info = h.getInfo()
    assert info.primal_solution_status == 2  # feasible
    assert math.isclose(info.objective_function_value, 5.0)
    assert info.mip_node_count >= 0 and info.mip_dual_bound >= 5.0 - 1e-9
    assert [round(v) for v in h.getSolution().col_value] == [1, 2]
    lp = h.getLp()
    assert list(lp.col_cost_) == [1.0, 2.0] and lp.offset_ == 0.0
    assert h.getNumRow() == 2
    h.changeRowBounds(0, -highspy.kHighsInf, 2.5)  # x + y <= 2.5: x = 0, y = 2
    h.changeCoeff(1, 0, 0.0)
    h.clearSolver()
    h.run()
    assert math.isclose(h.getInfo().objective_function_value, 4.0)
