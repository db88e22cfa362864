"""Robust plans: feasible at every corner of the box, by brute force over the corners."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from configspec_opt.cli import app
from configspec_opt.errors import UsageError
from configspec_opt.fleet import objective_key
from configspec_opt.problem import build_problem
from configspec_opt.robust import corner_specs, is_robust
from configspec_opt.spec import Spec, alpha_at
from configspec_opt.spec_changes import Change, changed_spec
from configspec_opt.what_if import Plan, PlanRow, evaluate
from solvers.solve import solve
from tests.core.strategies import OBJECTIVES, fleet_specs

ROOT = Path(__file__).resolve().parents[2]
EDGE = ROOT / "examples" / "llama70b-edge.yaml"
SHARED = ROOT / "examples" / "fleet-verifier" / "shared-verifier.yaml"
PARAMS = ("acceptance", "draft_tok_s", "rtt_s", "verify_latency", "power_w")


def _plan(sol: Any) -> Plan:
    return Plan(tuple(PlanRow(c.device, n, *c.config) for c, n in sol.assignment if n > 0))


def _every_corner(spec: Spec, margins: dict[str, float]) -> list[Spec]:
    """The whole box's corners, every parameter at both ends (power too), shared by the
    fleet: the robust model's 8 corners per candidate must cover each of them."""
    sides = [[Change(p, "*", 1.0 - m), Change(p, "*", 1.0 + m)]
             for p, m in margins.items() if m > 0]
    return [changed_spec(spec, list(combo)) for combo in itertools.product(*sides)]


margins_st = st.fixed_dictionaries({p: st.sampled_from([0.0, 0.05, 0.15]) for p in PARAMS})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=fleet_specs(), margins=margins_st)
def test_a_robust_plan_holds_at_every_corner_of_the_box(spec: Spec,
                                                        margins: dict[str, float]) -> None:
    robust = spec.model_copy(update={"robust": Spec.model_validate(
        {**spec.model_dump(), "robust": margins}).robust})
    sol = solve(robust, diagnose=False)
    event("robust solved" if sol.assignment else "robust infeasible")
    if not sol.assignment:
        return
    plan = _plan(sol)
    corners = _every_corner(spec, margins)
    event(f"{len(corners)} corners")
    for corner in corners:
        out = evaluate(corner, plan)
        assert out.holds, (margins, out.broken)
    nominal = solve(spec, diagnose=False)
    # the box contains the measured numbers: the robust answer is feasible nominally,
    # so the nominal optimum is at least as good
    assert nominal.assignment
    assert sol.fleet is not None and nominal.fleet is not None
    if spec.objective.mode == "single":
        ours = objective_key(evaluate(spec, plan).fleet, spec.objective)  # type: ignore[arg-type]
        best = objective_key(nominal.fleet, spec.objective)
        assert ours[0] <= best[0] + 1e-6 * max(1.0, abs(best[0]))


def test_no_margin_is_no_box() -> None:
    spec = Spec.model_validate({**Spec.model_validate_json(json.dumps(_edge())).model_dump(),
                                "robust": {}})
    assert not is_robust(spec) and corner_specs(spec) == []


def _edge() -> dict[str, Any]:
    from configspec_opt.loader import load_spec

    return load_spec(EDGE).spec.model_dump(mode="json")


def test_the_corners_are_the_eight_of_alpha_speed_and_latency_with_power_at_its_top() -> None:
    data = _edge()
    data["robust"] = {"acceptance": 0.1, "draft_tok_s": 0.1, "rtt_s": 0.5,
                      "verify_latency": 0.2, "power_w": 0.1}
    spec = Spec.model_validate(data)
    corners = corner_specs(spec)
    assert len(corners) == 8
    base_power = {(p.device, p.draft, p.quant): p.power_w for p in spec.profiles}
    for c in corners:
        for p in c.profiles:
            base = base_power[(p.device, p.draft, p.quant)]
            assert base is not None and p.power_w == pytest.approx(1.1 * base)
    rtt = spec.devices[0].rtt_s
    assert rtt > 0
    assert sorted({round(c.devices[0].rtt_s / rtt, 9) for c in corners}) == [0.5, 1.5]
    # rtt and verifier latency move together: 2 latency sides, not 4
    ratios = {(round(c.devices[0].rtt_s / rtt, 9),
               round(c.targets[0].verify_latency_s / spec.targets[0].verify_latency_s, 9))
              for c in corners}
    assert ratios == {(0.5, 0.8), (1.5, 1.2)}


def test_a_robust_problem_keeps_only_candidates_that_meet_the_slos_at_every_corner() -> None:
    data = _edge()
    data["robust"] = {"acceptance": 0.3}
    spec = Spec.model_validate(data)
    nominal = build_problem(spec.model_copy(update={"robust": None}))
    robust = build_problem(spec)
    assert len(robust.candidates) < len(nominal.candidates)
    low = changed_spec(spec.model_copy(update={"robust": None}),
                       [Change("acceptance", "*", 0.7)])
    for c in robust.candidates:  # each survivor meets the SLOs with alpha 30 % lower
        got = evaluate(low, Plan((PlanRow(c.device, 1, *c.config),)))
        assert not [b for b in got.broken if b.startswith("slo.")], (c.label(), got.broken)


def test_robust_solve_reports_its_price_against_the_nominal_optimum(tmp_path: Path) -> None:
    text = EDGE.read_text() + "robust:\n  acceptance: 0.45\n  rtt_s: 0.5\n  verify_latency: 0.2\n"
    spec = tmp_path / "robust.yaml"
    spec.write_text(text)
    res = CliRunner().invoke(app, ["solve", str(spec), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    rob = data["robust"]
    assert rob["margins"] == {"acceptance": 0.45, "rtt_s": 0.5, "verify_latency": 0.2}
    assert rob["objective"] == data["objective"]["value"]
    assert rob["nominal_optimum"] >= rob["objective"] - 1e-6
    assert rob["price"] == pytest.approx(
        (rob["nominal_optimum"] - rob["objective"]) / rob["nominal_optimum"])
    assert rob["price"] > 0  # alpha 45 % lower breaks the nominal plan's orin SLO
    text_out = CliRunner().invoke(app, ["solve", str(spec)])
    assert "price of robustness" in text_out.output


def test_an_infeasible_robust_spec_names_the_slo_to_relax(tmp_path: Path) -> None:
    spec = tmp_path / "robust.yaml"
    spec.write_text(EDGE.read_text() + "robust:\n  acceptance: 0.9\n")
    res = CliRunner().invoke(app, ["solve", str(spec), "--json"])
    assert res.exit_code == 1, res.output
    diag = json.loads(res.stdout)["diagnosis"]
    assert diag["relaxations"], diag
    assert all(r["constraint"] for r in diag["relaxations"])


def test_robust_with_a_batched_verifier_is_a_usage_error() -> None:
    from configspec_opt.loader import load_spec

    data = load_spec(SHARED).spec.model_dump(mode="json")
    data["robust"] = {"acceptance": 0.1}
    with pytest.raises(UsageError, match="not available with batched verifiers"):
        build_problem(Spec.model_validate(data))


@pytest.mark.parametrize("objective", OBJECTIVES[:1])
def test_robust_at_zero_width_is_the_nominal_answer(objective: dict[str, Any]) -> None:
    data = _edge()
    data["robust"] = {"acceptance": 0.0, "rtt_s": 0.0}
    spec = Spec.model_validate(data)
    a, b = solve(spec, diagnose=False), solve(spec.model_copy(update={"robust": None}),
                                               diagnose=False)
    assert a.objective_value == pytest.approx(b.objective_value)


CIs = dict[tuple[str, str, str, int], tuple[float, float]]


def _with_intervals(level: float | None, margin: float = 0.0) -> tuple[Spec, CIs]:
    """The example with a measured 95 % interval of alpha on every table entry, as
    `configspec profile` keeps it (provenance.acceptance[target].per_k[K].ci95)."""
    data = _edge()
    cis: CIs = {}
    for prof in data["profiles"]:
        per_target = {}
        for target, acc in prof["acceptance"].items():
            if "per_token" in acc:
                continue
            per_k = {}
            for k, a in acc.items():
                ci = (round(a * 0.9, 4), round(min(1.0, a * 1.05), 4))
                per_k[k] = {"alpha": a, "ci95": list(ci)}
                cis[(prof["device"], prof["draft"], prof["quant"], int(k))] = ci
            per_target[target] = {"per_k": per_k}
        prof["provenance"] = {"tool": "configspec profile", "acceptance": per_target}
    data["robust"] = {"level": level, "acceptance": margin}
    assert cis  # the example's acceptance is tables
    return Spec.model_validate(data), cis


def test_measured_intervals_are_the_corners_of_alpha_rescaled_to_the_level() -> None:
    from statistics import NormalDist

    for level in (0.95, 0.99):
        spec, cis = _with_intervals(level)
        corners = corner_specs(spec)
        assert len(corners) == 2
        scale = NormalDist().inv_cdf(0.5 + level / 2) / NormalDist().inv_cdf(0.975)
        base = {(p.device, p.draft, p.quant): p for p in spec.profiles}
        for side, corner in zip(("low", "high"), corners, strict=True):
            for p in corner.profiles:
                nominal = base[(p.device, p.draft, p.quant)]
                for target, acc in p.acceptance.items():
                    assert isinstance(acc, dict)
                    for k, a in acc.items():
                        ci = cis.get((p.device, p.draft, p.quant, k))
                        if ci is None:
                            continue
                        a0 = nominal.acceptance[target][k]  # type: ignore[index]
                        want = a0 - scale * (a0 - ci[0]) if side == "low" \
                            else min(1.0, a0 + scale * (ci[1] - a0))
                        assert a == pytest.approx(max(0.0, want))


def test_a_plan_robust_at_a_level_holds_with_every_alpha_at_its_interval_bound() -> None:
    from configspec_opt.spec_changes import edit_acceptance, edited_spec

    spec, cis = _with_intervals(0.95)
    sol = solve(spec, diagnose=False)
    assert sol.assignment
    plan = _plan(sol)
    nominal = spec.model_copy(update={"robust": None})

    def at_low(data: dict[str, Any]) -> None:
        edit_acceptance(data, lambda prof, target, k, a: cis.get(
            (prof["device"], prof["draft"], prof["quant"], k), (a, a))[0])

    assert evaluate(edited_spec(nominal, at_low, "ci low"), plan).holds
    # a margin wider than the interval wins where it is wider: 20 % below, not 10 %
    wide, _ = _with_intervals(0.95, margin=0.2)
    base = {(p.device, p.draft, p.quant): p for p in wide.profiles}
    for p in corner_specs(wide)[0].profiles:
        for target, acc in p.acceptance.items():
            measured = base[(p.device, p.draft, p.quant)].acceptance[target]
            assert isinstance(acc, dict)
            for k, a in acc.items():
                a0 = alpha_at(measured, k)
                assert a0 is not None and a == pytest.approx(0.8 * a0)


def test_solve_robust_level_reads_the_measured_intervals(tmp_path: Path) -> None:
    spec, _ = _with_intervals(None)
    path = tmp_path / "measured.json"
    path.write_text(spec.model_dump_json(exclude={"robust"}))
    res = CliRunner().invoke(app, ["solve", str(path), "--robust", "0.99", "--json"])
    assert res.exit_code == 0, res.output
    rob = json.loads(res.stdout)["robust"]
    assert rob["level"] == 0.99 and rob["measured_intervals"] > 0
    plain = CliRunner().invoke(app, ["solve", str(EDGE), "--robust", "0.95", "--json"])
    data = json.loads(plain.stdout)
    assert data["robust"]["measured_intervals"] == 0
    assert any("no profile carries a measured interval" in w for w in data["warnings"])


def test_evaluate_shows_each_measured_interval_of_alpha(tmp_path: Path) -> None:
    spec, cis = _with_intervals(None)
    path = tmp_path / "measured.json"
    path.write_text(spec.model_dump_json(exclude={"robust"}))
    res = CliRunner().invoke(app, ["evaluate", str(path), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["candidates"]
    shown = [r for r in rows if "alpha_ci95" in r]
    assert shown
    for r in shown:
        assert r["alpha_ci95"] == list(cis[(r["device"], r["draft"], r["quant"], r["k"])])
    text = CliRunner().invoke(app, ["evaluate", str(path)])
    assert "with a 95% interval on" in text.output


def test_explanations_judge_alternatives_on_the_whole_box(tmp_path: Path) -> None:
    """Under robust: the nominal optimum's orin K=10 misses the energy SLO at a corner, so
    it is a better configuration that a constraint blocks, never a runner-up that gains."""
    spec = tmp_path / "robust.yaml"
    spec.write_text(EDGE.read_text() + "robust:\n  acceptance: 0.45\n  rtt_s: 0.5\n"
                    "  verify_latency: 0.2\n")
    res = CliRunner().invoke(app, ["solve", str(spec), "--json", "--explain"])
    assert res.exit_code == 0, res.output
    orin = next(e for e in json.loads(res.stdout)["explain"] if e["device"] == "orin")
    assert orin["runner_up"]["loss"] >= 0
    blocked = {b["k"]: b["constraints"] for b in orin["blocked_by"]}
    assert "slo.max_energy_j_per_tok" in blocked[10]
