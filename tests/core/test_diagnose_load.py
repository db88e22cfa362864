"""The relaxation diagnosis with batched verifiers: bracketed like the solve.

The optimistic load levels bound how small a fix can be; the conservative ones
give a fix that is checked by solving the relaxed spec at the fleet's true load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configspec_opt.spec import Spec
from solvers.diagnose import relaxed_spec
from solvers.solve import solve
from solvers.status import Status
from tests.core.shrunk import shrunk
from tests.core.test_verifier_load import verifier_fleets

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet-verifier" / \
    "shared-verifier.yaml"
SOLVED = (Status.optimal, Status.feasible)


def _with(spec: Spec, **fleet: Any) -> Spec:
    data = spec.model_dump(exclude_none=True)
    data.setdefault("constraints", {}).setdefault("fleet", {}).update(fleet)
    return Spec.model_validate(data)


def test_a_budget_below_the_replicas_is_relaxed_to_a_fix_that_solves() -> None:
    from configspec_opt.loader import load_spec

    spec = _with(load_spec(EXAMPLE).spec, max_cost_usd_per_hour=2.0)  # one replica: 4.10 $/h
    sol = solve(spec)
    assert sol.status is Status.infeasible
    diag = sol.diagnosis
    assert diag is not None and diag.relaxations, diag
    [r] = diag.relaxations
    assert r.constraint == "constraints.fleet.max_cost_usd_per_hour"
    assert r.relax_to >= 4.10
    assert solve(relaxed_spec(spec, diag), diagnose=False).status in SOLVED
    if "smallest fix" in diag.message:
        assert solve(shrunk(spec, diag, 0.98), diagnose=False).status is Status.infeasible


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.filter_too_much])
@given(data=st.data())
def test_any_fix_named_under_load_solves(data: st.DataObject) -> None:
    spec = data.draw(verifier_fleets({"maximize": "goodput"}))
    tight = data.draw(st.sampled_from([
        {"max_cost_usd_per_hour": 0.3}, {"min_goodput_tok_s": 1e4},
        {"max_distinct_variants": 1, "min_goodput_tok_s": 60.0}]))
    spec = _with(spec, **tight)
    sol = solve(spec)
    if sol.status is not Status.infeasible:
        return
    diag = sol.diagnosis
    assert diag is not None
    if diag.structural or diag.message.startswith("not diagnosed"):
        return
    if diag.message.startswith("even with every constraint relaxed"):
        bare = spec.model_dump(exclude_none=True)
        bare.pop("constraints", None)
        assert solve(Spec.model_validate(bare), diagnose=False).status not in SOLVED
        return
    assert diag.relaxations, diag.message
    fixed = solve(relaxed_spec(spec, diag), diagnose=False)
    if "at least" in diag.message:  # only a lower bound: the fix was not confirmed
        return
    assert fixed.status in SOLVED, diag.message
    if "smallest fix" in diag.message:
        assert solve(shrunk(spec, diag, 0.98), diagnose=False).status is Status.infeasible
