"""The MILP's optimum equals brute-force enumeration, for every objective."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from configspec_opt.fleet import fleet_metrics, objective_key, violated_constraints
from solvers.solve import solve
from solvers.status import Status
from tests.core.brute import assignment_count, brute_force
from tests.core.strategies import OBJECTIVES, fleet_specs

REL = 1e-6
# Brute force enumerates at most this many assignments per drawn fleet: a draw beyond it
# (one ran for more than 12 minutes in a fresh clone's suite) is replaced by another.
MAX_ASSIGNMENTS = 200_000
STRICT, LOOSE = 0.5e-6, 2e-6


def _lex_geq(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """a is at least as good as b, lexicographically, up to rounding."""
    for x, y in zip(a, b):
        tol = REL * max(1.0, abs(x), abs(y))
        if abs(x - y) <= tol:
            continue
        return x > y
    return True


@pytest.mark.parametrize("objective", OBJECTIVES, ids=lambda o: str(o)[:60])
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_milp_matches_brute_force(objective: dict[str, Any], data: st.DataObject) -> None:
    spec = data.draw(fleet_specs(objective))
    assume(assignment_count(spec) <= MAX_ASSIGNMENTS)
    strict = brute_force(spec, rel_tol=STRICT)  # feasible for HiGHS too
    loose = brute_force(spec, rel_tol=LOOSE)  # everything HiGHS could accept
    sol = solve(spec, diagnose=False)
    if loose is None:
        assert sol.status is Status.infeasible
        return
    if strict is None and sol.status is Status.infeasible:
        return  # feasible only within the solver's tolerance band
    assert sol.status is Status.optimal, sol.message
    assert not violated_constraints(sol.problem, sol.assignment, LOOSE)
    assert sum(n for _, n in sol.assignment) == sum(d.count for d in spec.devices)
    got = objective_key(fleet_metrics(sol.assignment), spec.objective)
    terms = spec.objective.terms() if spec.objective.mode == "lexicographic" else \
        [spec.objective.terms()[0]]
    for i, term in enumerate(terms[:-1]):  # earlier stages: within their tolerance
        ref = (strict or loose)[0][i]
        allowed = term.tolerance * abs(ref) + REL * max(1.0, abs(ref))
        assert got[i] >= ref - allowed, (i, got, ref)
    last = len(terms) - 1
    low = strict[0][last] if strict else -float("inf")
    high = loose[0][last]
    tol = REL * max(1.0, abs(high))
    # optimal: no worse than the best strictly feasible assignment, and no better than
    # the best assignment within the solver's tolerance
    assert low - tol <= got[last] <= high + tol, (got, low, high)


@settings(max_examples=25, deadline=None)
@given(spec=fleet_specs())
def test_pruning_does_not_change_the_optimum(spec: Any) -> None:
    a = solve(spec, prune=True, diagnose=False)
    b = solve(spec, prune=False, diagnose=False)
    assert a.status == b.status
    if a.status is Status.optimal:
        ka = objective_key(fleet_metrics(a.assignment), spec.objective)
        kb = objective_key(fleet_metrics(b.assignment), spec.objective)
        assert _lex_geq(ka, kb) and _lex_geq(kb, ka)


@settings(max_examples=20, deadline=None)
@given(spec=fleet_specs())
def test_same_spec_same_assignment(spec: Any) -> None:
    a = solve(spec, diagnose=False)
    b = solve(spec, diagnose=False)
    assert [(c.config, c.device, n) for c, n in a.assignment] == \
        [(c.config, c.device, n) for c, n in b.assignment]
