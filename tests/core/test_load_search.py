"""The search over boxes of load (`solvers.load_search`) against brute force and the level model.

The box search is what large fleets with batched verifiers get; here it is forced on
small random fleets (`LEVEL_MODEL_MAX_COPIES = 0`) so that brute force can check it:
the same assertions as the level model's (feasible at the true load, worth what it
says, the optimum within the certified gap), plus its own: every bound it reports is
a box's MILP bound, never the incumbent, and is at least the true optimum.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import solvers.solve as solve_module
from configspec_opt import verifier_load as vl
from configspec_opt.candidates import enumerate_candidates
from configspec_opt.loader import load_spec
from configspec_opt.problem import build_problem
from configspec_opt.spec import Spec
from configspec_opt.verifiers import VerifierPlan, plans_for
from solvers.adapter import SolverOptions
from solvers.load_arrays import BoxArrays
from solvers.load_boxes import ArrayBoxes
from solvers.load_search import LoadSearch
from tests.core.brute_load import brute_force_load
from tests.core.test_verifier_load import (
    EXAMPLE,
    LOOSE,
    OBJECTIVES,
    SMOKE,
    TABLE,
    _check_against_brute_force,
    verifier_fleets,
)


@pytest.fixture
def boxes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every spec with a batched verifier goes to the box search."""
    monkeypatch.setattr(solve_module, "LEVEL_MODEL_MAX_COPIES", 0)


def test_many_latencies_equal_one_at_a_time() -> None:
    rng = random.Random(5)
    ks = [rng.choice([2, 4, 8]) for _ in range(400)]
    busy = [rng.uniform(0.02, 3.0) for _ in ks]
    for b in [0.0, 0.4, 1.0, 3.3, 9.0, 15.5, 16.0, 17.0]:
        many = vl.batch_latency_many(TABLE, 16, b, ks, busy)
        loads = [b] * len(ks)
        per_element = vl.batch_latency_many(TABLE, 16, loads, ks, busy)
        for k, s, x, y in zip(ks, busy, many, per_element, strict=True):
            one = vl.batch_latency(TABLE, 16, b, k, s)
            assert (x is None) == (one is None) == (y is None), (b, k, s, x, one)
            if one is not None:
                assert x is not None and y is not None
                assert abs(x - one) <= 1e-9 * one and abs(y - one) <= 1e-9 * one


def test_vectorised_fixed_point_equals_the_scalar_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(9)
    for _ in range(30):
        riders = [vl.Rider(rng.randint(1, 8), rng.choice([2, 4, 8]), rng.uniform(0.05, 1.5))
                  for _ in range(rng.choice([12, 30]))]
        replicas = rng.randint(1, 10)
        fast = vl.least_fixed_point(TABLE, 16, riders, replicas)
        monkeypatch.setattr(vl, "_VECTOR_FROM", 10**9)
        slow = vl.least_fixed_point(TABLE, 16, riders, replicas)
        monkeypatch.undo()
        assert (fast is None) == (slow is None)
        if fast is not None and slow is not None:
            assert abs(fast - slow) <= 1e-9 * max(1.0, slow)


@pytest.mark.parametrize("objective", OBJECTIVES, ids=lambda o: "-".join(*o.items()))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_box_search_matches_brute_force(boxes: None, objective: dict[str, Any],
                                        data: st.DataObject) -> None:
    spec = data.draw(verifier_fleets(objective))
    note(spec.model_dump_json(exclude_none=True, exclude_defaults=True))
    event(_check_against_brute_force(spec))


@pytest.mark.parametrize("objective", OBJECTIVES, ids=lambda o: "-".join(*o.items()))
def test_box_search_on_the_smoke_fleet(boxes: None, objective: dict[str, Any]) -> None:
    data = {**SMOKE, "objective": objective}
    data["devices"] = [{**SMOKE["devices"][0], "count": 4}, {**SMOKE["devices"][1], "count": 2}]
    _check_against_brute_force(Spec.model_validate(data))


def _search(spec: Spec, arrays: bool) -> tuple[LoadSearch, Any]:
    options = SolverOptions(method="auto" if arrays else "milp")
    solver = solve_module._box_solver(spec, spec.objective, None, options, True,
                                      plans_for(spec), enumerate_candidates(spec), arrays)
    assert isinstance(solver, ArrayBoxes) == arrays
    search = LoadSearch(plans_for(spec), solver)
    return search, search.run()


@pytest.mark.parametrize("arrays", [True, False], ids=["arrays", "milp"])
@pytest.mark.parametrize("budget", [0.4, 4.5, 9.0])
def test_the_bound_is_a_box_bound_and_holds_the_optimum(budget: float, arrays: bool) -> None:
    data = {**SMOKE, "constraints": {"fleet": {"max_cost_usd_per_hour": budget},
                                     "per_device": {"min_goodput_tok_s": 2.0}}}
    data["devices"] = [{**SMOKE["devices"][0], "count": 3}, {**SMOKE["devices"][1], "count": 2}]
    spec = Spec.model_validate(data)
    search, found = _search(spec, arrays)
    best = brute_force_load(spec, rel_tol=LOOSE)
    if best is None:
        assert found.best is None
        return
    assert found.best is not None and found.bound is not None
    # the bound is one a box's model proved, never the incumbent's own value
    assert found.bound in search.box_bounds
    assert found.bound >= best.value - 1e-9 * max(1.0, abs(best.value))
    assert found.best.key[0] <= best.value + 1e-9 * max(1.0, abs(best.value))


@pytest.mark.parametrize("load", [0.5, 1.0, 2.5, 6.0])
def test_box_arrays_equal_the_candidate_copies(load: float) -> None:
    """Objective, rows, latencies and SLO filter on arrays equal the copies' own figures."""
    data = {**SMOKE, "constraints": {"fleet": {"max_cost_usd_per_hour": 4.5},
                                     "per_device": {"min_goodput_tok_s": 2.0}}}
    spec = Spec.model_validate(data)
    plans = plans_for(spec)
    structural = enumerate_candidates(spec)
    arrays = BoxArrays(spec, spec.objective, structural, plans)
    box = [VerifierPlan(p.target, p.verifier, [load], only_level=1) for p in plans]
    pb = build_problem(spec, plans=box, mode="conservative", prune=False)
    d = arrays.data([0.0] * len(plans), [load] * len(plans), "conservative")
    where = {(c.pool, c.config): i for i, c in enumerate(arrays.flat)}
    u = 1.0 / (arrays.busy + d.t)
    seen = set()
    for c in pb.candidates:
        i = where[(c.pool, c.config)]
        seen.add(i)
        assert d.valid[i]
        assert d.t[i] == pytest.approx(c.verify_latency_s, rel=1e-9)
        assert d.c[i] == pytest.approx(c.goodput_tok_s, rel=1e-9)
        for row, fit in zip(arrays.rows, arrays.row_fit, strict=True):
            assert fit.at(d.t, u)[i] == pytest.approx(row.coef(c), rel=1e-9, abs=1e-12)
    # what the copies filtered out (SLO, no latency) is not valid on the arrays either
    assert not d.valid[:arrays.n][[i for i in range(arrays.n) if i not in seen]].any()


def test_the_example_spec_through_both_paths_agrees_within_the_gap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_spec(EXAMPLE).spec
    if not plans_for(spec):
        spec = load_spec(EXAMPLE.parent / "fleet-verifier" / "shared-verifier.yaml").spec
    levels = solve_module.solve(spec, diagnose=False)
    monkeypatch.setattr(solve_module, "LEVEL_MODEL_MAX_COPIES", 0)
    searched = solve_module.solve(spec, diagnose=False)
    assert levels.objective_value is not None and searched.objective_value is not None
    assert levels.gap is not None and searched.gap is not None
    # each certifies its own bound: neither answer may beat the other's bound
    a, b = levels.objective_value, searched.objective_value
    assert a <= b / (1.0 - searched.gap) + 1e-9 * abs(b)
    assert b <= a / (1.0 - levels.gap) + 1e-9 * abs(a)


# Drawn by a fresh clone's run: verifier v0's latency is flat below its first row (b = 2),
# so the search only ever split v1's load, ever closer around one point, and gave up after
# MAX_BOXES boxes with no plan; brute force finds one at 5.37 $/h.
FLAT_BELOW_FIRST_ROW = json.loads(
    '{"name":"random-verifier","targets":[{"name":"v0","family":"f","price_usd_per_mtok":1.0,"verify_latency_s":0.3092,"verifier":{"replicas":{"max":3},"price_usd_per_replica_hour":1.25,"max_batch":4,"latency_s":{"2":{"3":0.3092},"3":{"3":0.6184},"4":{"3":0.8811},"6":{"3":1.7622}}}},{"name":"v1","family":"f","price_usd_per_mtok":1.0,"verify_latency_s":0.3212,"verifier":{"replicas":{"min":0,"max":4},"price_usd_per_replica_hour":0.81,"max_batch":5,"latency_s":{"1":{"2":0.3212,"3":0.3212},"4":{"2":0.4096,"3":0.3212}}}},{"name":"api","family":"f","price_usd_per_mtok":2.07,"verify_latency_s":0.276,"verify_latency_per_token_s":0.01}],"drafts":[{"name":"d0","family":"f","quants":{"q0":{"size_gb":0.5}}}],"devices":[{"name":"dev0","count":3,"memory_gb":8.0,"rtt_s":0.03},{"name":"dev1","count":2,"memory_gb":8.0,"rtt_s":0.03,"round_overhead_s":0.01},{"name":"dev2","count":1,"memory_gb":8.0}],"profiles":[{"device":"dev0","draft":"d0","quant":"q0","draft_tok_s":42.38,"power_w":5.0,"acceptance":{"v0":{"per_token":0.48}}},{"device":"dev1","draft":"d0","quant":"q0","draft_tok_s":52.61,"power_w":5.0,"acceptance":{"api":{"2":0.696,"3":0.296},"v0":{"2":0.874,"3":0.63},"v1":{"per_token":0.887}},"full_accept":{"v1":{"2":0.15,"3":0.234}}},{"device":"dev2","draft":"d0","quant":"q0","draft_tok_s":80.12,"power_w":5.0,"acceptance":{"v0":{"per_token":0.769}}}],"search":{"k":{"min":2,"max":3}},"objective":{"minimize":"cost"},"constraints":{"per_device":{"min_goodput_tok_s":3.553},"fleet":{"min_goodput_tok_s":34.554}}}')


def test_a_box_search_splits_a_flat_verifier_before_splitting_hairs(boxes: None) -> None:
    _check_against_brute_force(Spec.model_validate(FLAT_BELOW_FIRST_ROW))
