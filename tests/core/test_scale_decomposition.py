"""The decomposition for large plain fleets (`solvers.decompose`) against the monolithic MILP.

On small random fleets, where the monolithic MILP finishes in a blink: the same
optimum when the decomposition is asked for the same (default) gap; with a loose
gap, a bound that is at least the monolithic optimum, which is at least the
decomposition's plan.  A hand-built fleet whose LP bound, MILP optimum and rounded
plan all differ shows that the bound is never the incumbent.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configspec_opt.candidates import Candidate, enumerate_candidates
from configspec_opt.fleet import fleet_metrics, objective_key, violated_constraints
from configspec_opt.problem import METRICS, Pool, Problem, Row, build_problem
from configspec_opt.spec import Metric, Spec
from solvers.adapter import SolverOptions
from solvers.backend import LinearObjective
from solvers.decompose import DecomposedModel, decomposable
from solvers.highs_model import HighsModel
from solvers.solve import PROVEN_REL_GAP, solve
from solvers.status import Status, Termination
from tests.core.strategies import OBJECTIVES, fleet_specs

REL = 1e-6
# every objective the decomposition takes (the minimum goodput keeps the monolithic MILP)
PLAIN = [o for o in OBJECTIVES if "min_goodput" not in str(o)]
DECOMPOSE = SolverOptions(method="decompose")
MILP = SolverOptions(method="milp")


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(abs(x - y) <= REL * max(1.0, abs(x), abs(y)) for x, y in zip(a, b))


def _linear(problem: Problem, metric: Metric, sense: str) -> LinearObjective:
    form = METRICS[metric]
    return LinearObjective([form.num(c) for c in problem.candidates],
                           "maximize" if sense == "maximize" else "minimize")


def _monolithic(problem: Problem, obj: LinearObjective) -> float | None:
    model = HighsModel(problem, fairness=False)
    model.set_objective(obj)
    r = model.solve()
    if not r.has_solution:
        return None
    assert r.proven_optimal and r.objective is not None
    return r.objective


TERMS = [(Metric.goodput, "maximize"), (Metric.cost, "minimize"), (Metric.energy, "minimize")]


@st.composite
def plain_fleets(draw: st.DrawFn, objective: dict[str, Any] | None = None) -> Spec:
    """2-12 pools of 1-6 devices, 2 drafts x 2 quants, K 2-5, and fleet rows that may bind
    (capacity, $/hour, power, a goodput floor, a variant limit): LPs that split pools."""
    n = draw(st.integers(2, 12))
    devices = [{"name": f"dev{i}", "count": draw(st.integers(1, 6)), "memory_gb": 8.0,
                "rtt_s": draw(st.sampled_from([0.0, 0.02, 0.05]))} for i in range(n)]
    profiles = [{"device": f"dev{i}", "draft": f"d{d}", "quant": f"q{q}",
                 "draft_tok_s": round(draw(st.floats(5.0, 120.0)), 2),
                 "power_w": round(draw(st.floats(3.0, 40.0)), 2),
                 "acceptance": {"t": {"per_token": round(draw(st.floats(0.4, 0.9)), 3)}}}
                for i in range(n) for d in range(2) for q in range(2)]
    base: dict[str, Any] = {
        "version": 1, "name": "plain",
        "targets": [{"name": "t", "family": "f", "price_usd_per_mtok": 0.9,
                     "verify_latency_s": round(draw(st.floats(0.05, 0.6)), 3)}],
        "drafts": [{"name": f"d{d}", "family": "f",
                    "quants": {f"q{q}": {"size_gb": 1.0 + d + q} for q in range(2)}}
                   for d in range(2)],
        "devices": devices, "profiles": profiles, "search": {"k": {"min": 2, "max": 5}},
        "objective": {"maximize": "goodput"}}
    pools = enumerate_candidates(Spec.model_validate(base))

    def level(attr: str) -> float:
        u = draw(st.floats(0.05, 0.95))
        lo = sum(p.device.count * min(getattr(c, attr) for c in p.candidates) for p in pools)
        hi = sum(p.device.count * max(getattr(c, attr) for c in p.candidates) for p in pools)
        return round(float(lo + u * (hi - lo)), 4)

    fleet: dict[str, Any] = {}
    if draw(st.booleans()):
        base["targets"][0]["capacity_tok_s"] = level("verifier_load_tok_s")
    if draw(st.booleans()):
        fleet["max_cost_usd_per_hour"] = level("cost_usd_per_hour")
    if draw(st.booleans()):
        fleet["max_power_w"] = level("power_w")
    if draw(st.integers(0, 3)) == 0:
        fleet["min_goodput_tok_s"] = level("goodput_tok_s")
    if draw(st.integers(0, 2)) == 0:
        fleet["max_distinct_variants"] = draw(st.integers(1, 3))
    return Spec.model_validate({**base, "constraints": {"fleet": fleet},
                                "objective": objective or base["objective"]})


@pytest.mark.parametrize("objective", PLAIN, ids=lambda o: str(o)[:60])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_same_optimum_as_the_monolithic_milp(objective: dict[str, Any],
                                             data: st.DataObject) -> None:
    spec = data.draw(st.one_of(plain_fleets(objective), fleet_specs(objective)))
    ref = solve(spec, options=MILP, diagnose=False)
    got = solve(spec, options=DECOMPOSE, diagnose=False)
    if ref.status is Status.infeasible:
        assert got.status is Status.infeasible, got.message
        return
    assert ref.status is Status.optimal
    assert got.status is Status.optimal, got.message
    assert got.gap is not None and got.gap <= PROVEN_REL_GAP
    assert not violated_constraints(got.problem, got.assignment)
    assert sum(n for _, n in got.assignment) == sum(d.count for d in spec.devices)
    a = objective_key(fleet_metrics(got.assignment), spec.objective)
    b = objective_key(fleet_metrics(ref.assignment), spec.objective)
    assert _close(a, b), (a, b)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=st.one_of(plain_fleets(), fleet_specs()), term=st.sampled_from(TERMS),
       gap=st.sampled_from([0.001, 0.3]), repair_pools=st.sampled_from([0, 200]))
def test_the_bound_brackets_the_monolithic_optimum(spec: Spec, term: tuple[Metric, str],
                                                   gap: float, repair_pools: int) -> None:
    """bound >= optimum >= plan (maximising; the other way round minimising), whatever
    the gap asked and however weak the repair (0: only the split pools are re-solved)."""
    problem = build_problem(spec)
    if decomposable(problem, fairness=False) is not None:
        return
    obj = _linear(problem, *term)
    best = _monolithic(problem, obj)
    model = DecomposedModel(problem, SolverOptions(rel_gap=gap))
    model.repair_pools = repair_pools
    model.set_objective(obj)
    r = model.solve()
    if best is None:
        assert r.termination is Termination.infeasible
        return
    assert r.has_solution and r.objective is not None and r.bound is not None
    tol = REL * max(1.0, abs(best))
    sign = 1.0 if obj.sense == "maximize" else -1.0
    assert sign * r.bound >= sign * best - tol, (r.bound, best)
    assert sign * best >= sign * r.objective - tol, (best, r.objective)
    assert abs(r.bound - r.objective) <= gap * max(abs(r.bound), abs(r.objective)) + tol \
        or r.termination is not Termination.optimal


def _candidate(pool: int, k: int, goodput: float, load: float) -> Candidate:
    return Candidate(pool=pool, device=f"p{pool}", target="t", draft="d", quant="q", k=k,
                     alpha=0.5, draft_tok_s=10.0, round_time_s=1.0, goodput_tok_s=goodput,
                     verifier_load_tok_s=load, cost_usd_per_hour=0.0,
                     cost_efficiency_tok_per_usd=float("nan"), power_w=None,
                     drafting_power_w=None, energy_j_per_tok=None)


def _knapsack() -> Problem:
    """Three one-device pools and a capacity of 10: run (6.6, load 6), (5, 5), (5, 5), or idle.

    LP bound 10.6 (pool 0 whole, pool 1 at 0.8); optimum 10 (pools 1 and 2); the LP's
    split pool re-solved alone gives 6.6 (pool 1 cannot fit into the 4 left).
    """
    cands: list[Candidate] = []
    by_pool: list[list[int]] = []
    for p, (g, load) in enumerate([(6.6, 6.0), (5.0, 5.0), (5.0, 5.0)]):
        by_pool.append([len(cands), len(cands) + 1])
        cands += [_candidate(p, 2, g, load), _candidate(p, 3, 0.0, 0.0)]
    cap = Row("targets[t].capacity_tok_s", "capacity", lambda c: c.verifier_load_tok_s, "<=",
              10.0)
    pools = [Pool(p, f"p{p}", 1) for p in range(3)]
    return Problem(_fleet(1, None, None), pools, cands, by_pool, [cap], [], [])


def test_the_bound_is_never_the_incumbent() -> None:
    """Re-solving only the LP's split pool misses the optimum here; the bound reported is
    the LP's 10.6, not the plan's 6.6 (which is below the optimum, 10)."""
    problem = _knapsack()
    obj = LinearObjective([c.goodput_tok_s for c in problem.candidates], "maximize")
    assert _monolithic(problem, obj) == pytest.approx(10.0)
    model = DecomposedModel(problem, SolverOptions(rel_gap=0.5))
    model.repair_pools = 0
    model.set_objective(obj)
    r = model.solve()
    assert r.objective == pytest.approx(6.6)
    assert r.bound == pytest.approx(10.6)
    assert r.gap is not None and r.gap > 0.3
    # asked for the exact optimum, the reduced-cost fixing finds it and proves it
    model = DecomposedModel(problem, SolverOptions())
    model.repair_pools = 0
    model.set_objective(obj)
    r = model.solve()
    assert r.proven_optimal
    assert r.objective == pytest.approx(10.0)
    assert r.bound is not None and r.objective is not None
    assert r.bound - r.objective <= 1e-9 * 10.0


def test_binding_budget_and_variant_limit() -> None:
    """A $/hour cap and a variant limit that both bind: the monolithic optimum, proven."""
    spec = _fleet(pools=12, max_cost=1.0, variants=1)
    ref = solve(spec, options=MILP, diagnose=False)
    got = solve(spec, options=DECOMPOSE, diagnose=False)
    assert ref.status is Status.optimal and got.status is Status.optimal
    assert got.fleet is not None and ref.fleet is not None
    assert got.fleet.goodput_tok_s == pytest.approx(ref.fleet.goodput_tok_s, rel=REL)
    assert got.fleet.cost_usd_per_hour <= 1.0 * (1 + REL)
    assert len({c.variant for c, _ in got.assignment}) == 1
    unbound = solve(_fleet(pools=12, max_cost=None, variants=None), options=DECOMPOSE,
                    diagnose=False)
    assert unbound.fleet is not None
    assert unbound.fleet.goodput_tok_s > got.fleet.goodput_tok_s * (1 + 1e-3)  # they bind


def test_infeasible_spec_stays_infeasible_with_its_diagnosis() -> None:
    spec = _fleet(pools=6, max_cost=0.01, variants=None)
    got = solve(spec, options=DECOMPOSE)
    assert got.status is Status.infeasible
    assert got.diagnosis is not None and got.diagnosis.relaxations
    assert any("max_cost_usd_per_hour" in r.constraint for r in got.diagnosis.relaxations)


def test_auto_decomposes_only_large_fleets() -> None:
    from solvers.solve import Optimizer

    spec = _fleet(pools=3, max_cost=None, variants=None)
    problem = build_problem(spec)
    assert Optimizer(problem, spec.objective, SolverOptions()).method == "milp"
    assert Optimizer(problem, spec.objective, DECOMPOSE).method == "decomposition"
    fair = spec.model_copy(update={"objective": spec.objective.model_validate(
        {"maximize": "min_goodput"})})
    assert Optimizer(build_problem(fair), fair.objective, DECOMPOSE).method == "milp"


def _fleet(pools: int, max_cost: float | None, variants: int | None) -> Spec:
    """A fleet of `pools` pools with 2 drafts x 2 quants, K 2-6 (deterministic numbers)."""
    devices = [{"name": f"dev{i}", "count": 1 + (i * 7) % 5, "memory_gb": 8.0,
                "rtt_s": 0.01 * (i % 4)} for i in range(pools)]
    profiles = [{"device": f"dev{i}", "draft": f"d{d}", "quant": f"q{q}",
                 "draft_tok_s": round(20.0 + 13.0 * ((i * 3 + d * 5 + q * 11) % 7), 2),
                 "power_w": 5.0 + i % 3,
                 "acceptance": {"t": {"per_token": round(0.55 + 0.07 * d + 0.03 * q
                                                         + 0.01 * (i % 5), 3)}}}
                for i in range(pools) for d in range(2) for q in range(2)]
    fleet: dict[str, Any] = {}
    if max_cost is not None:
        fleet["max_cost_usd_per_hour"] = max_cost
    if variants is not None:
        fleet["max_distinct_variants"] = variants
    return Spec.model_validate({
        "version": 1, "name": "scale",
        "targets": [{"name": "t", "family": "f", "price_usd_per_mtok": 0.9,
                     "verify_latency_s": 0.3}],
        "drafts": [{"name": f"d{d}", "family": "f",
                    "quants": {f"q{q}": {"size_gb": 1.0 + d + q} for q in range(2)}}
                   for d in range(2)],
        "devices": devices, "profiles": profiles, "search": {"k": {"min": 2, "max": 6}},
        "objective": {"maximize": "goodput"}, "constraints": {"fleet": fleet}})


@settings(max_examples=200, deadline=None)
@given(k=st.integers(1, 64), alpha=st.floats(0.0, 1.0), v_d=st.floats(1e-300, 1e6),
       t_verify=st.floats(0.0, 100.0), rtt=st.floats(0.0, 10.0),
       overhead=st.floats(0.0, 10.0), power=st.none() | st.floats(0.0, 1e4),
       full_accept=st.floats(0.0, 1.0), price=st.floats(1e-12, 1e3),
       replica_priced=st.booleans())
def test_fast_candidate_figures_are_the_metrics_functions(
        k: int, alpha: float, v_d: float, t_verify: float, rtt: float, overhead: float,
        power: float | None, full_accept: float, price: float, replica_priced: bool) -> None:
    """A million candidates are made inline (`candidates._fast_candidate`); their figures
    are `metrics`' to the last bit or two, and where `metrics` refuses an input the
    inline path declines it (the checked path then raises its NumericError)."""
    from configspec_opt import metrics as m
    from configspec_opt.candidates import _fast_candidate
    from configspec_opt.errors import NumericError
    from configspec_opt.spec import Device

    device = Device.model_validate({"name": "d", "count": 1, "memory_gb": 8.0,
                                    "rtt_s": rtt, "round_overhead_s": overhead})
    got = _fast_candidate(0, device, "t", price, t_verify, "dr", "q", k, alpha, v_d, power,
                          full_accept, replica_priced)
    try:
        r = m.round_time_s(k, v_d, t_verify, rtt, full_accept, overhead)
        want = [r, m.goodput_tok_s(k, alpha, r), m.verifier_load_tok_s(k, r),
                0.0 if replica_priced else m.cost_usd_per_hour(k, r, price),
                None if replica_priced else m.cost_efficiency_tok_per_usd(k, alpha, price),
                None if power is None else m.drafting_power_w(power, k, v_d, r, full_accept),
                None if power is None else m.energy_j_per_tok(power, k, v_d, alpha,
                                                              full_accept)]
    except NumericError:
        assert got is None
        return
    if got is None:  # declined only where a sum of the figures overflows
        return
    fast = [got.round_time_s, got.goodput_tok_s, got.verifier_load_tok_s,
            got.cost_usd_per_hour, None if replica_priced else got.cost_efficiency_tok_per_usd,
            got.drafting_power_w, got.energy_j_per_tok]
    for a, b in zip(fast, want):
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert abs(a - b) <= 4.5e-16 * abs(b), (fast, want)
    assert (got.k, got.alpha, got.draft_tok_s, got.power_w, got.verify_latency_s,
            got.replica_priced, got.level) == (k, alpha, v_d, power, t_verify, replica_priced, -1)
