"""Infeasible specs: the named relaxation fixes the spec, and a smaller one does not."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from configspec_opt.spec import Spec
from solvers.diagnose import Diagnosis, diagnose_infeasible, relaxed_spec
from solvers.solve import solve
from solvers.status import Status
from tests.core.shrunk import shrunk
from tests.core.strategies import fleet_specs

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llama70b-edge.yaml"


def _edit(text: str, edits: dict[str, str]) -> dict:  # type: ignore[type-arg]
    from ruamel.yaml import YAML

    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    return YAML(typ="safe").load(text)  # type: ignore[no-any-return]


def test_slo_conflict_is_named_and_minimal() -> None:
    spec = Spec.model_validate(_edit(EXAMPLE.read_text(),
                                     {"min_goodput_tok_s: 2.0": "min_goodput_tok_s: 5.0"}))
    sol = solve(spec)
    assert sol.status is Status.infeasible
    diag = sol.diagnosis
    assert isinstance(diag, Diagnosis)
    [r] = diag.relaxations
    assert r.constraint == "constraints.per_device.min_goodput_tok_s"
    assert r.limit == 5.0 and r.relax_to < 5.0
    assert solve(relaxed_spec(spec, diag)).status is Status.optimal
    assert solve(shrunk(spec, diag, 0.99), diagnose=False).status is Status.infeasible


def test_budget_conflict_with_slo() -> None:
    spec = Spec.model_validate(_edit(EXAMPLE.read_text(), {
        "max_cost_usd_per_hour: 40": "max_cost_usd_per_hour: 0.5"}))
    diag = solve(spec).diagnosis
    assert isinstance(diag, Diagnosis)
    keys = {r.constraint for r in diag.relaxations}
    assert len(keys) == 1  # the fewest constraints first
    assert solve(relaxed_spec(spec, diag)).status is Status.optimal
    assert solve(shrunk(spec, diag, 0.98), diagnose=False).status is Status.infeasible
    assert "smallest fix" in diag.message


def test_structural_infeasibility_says_why() -> None:
    spec = Spec.model_validate(_edit(EXAMPLE.read_text(), {"memory_gb: 64": "memory_gb: 0.5"}))
    diag = diagnose_infeasible(spec)
    [entry] = diag.structural
    assert entry["device"] == "orin"
    assert any("needs 0.81 GB, device has 0.5 GB" in r for r in entry["reasons"])
    assert diag.relaxations == []


@pytest.mark.parametrize("seed", [0])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.filter_too_much])
@given(spec=fleet_specs({"maximize": "goodput"}))
def test_any_diagnosis_restores_feasibility(seed: int, spec: Spec) -> None:
    sol = solve(spec)
    if sol.status is not Status.infeasible:
        return
    diag = sol.diagnosis
    assert isinstance(diag, Diagnosis)
    if diag.structural:
        return
    assert diag.relaxations, diag.message
    fixed = solve(relaxed_spec(spec, diag), diagnose=False)
    assert fixed.status is Status.optimal
