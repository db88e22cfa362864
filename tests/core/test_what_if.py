"""What-if: a fixed plan under changed numbers, against the formulas written out here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from configspec_opt.candidates import enumerate_candidates
from configspec_opt.cli import app
from configspec_opt.errors import UsageError
from configspec_opt.loader import load_spec
from configspec_opt.spec import Spec, alpha_at
from configspec_opt.vcs.lock import read_lock
from configspec_opt.what_if import (
    BISECT_TO,
    PARAMETERS,
    Change,
    Plan,
    PlanRow,
    breaking_point,
    changed_spec,
    elasticity,
    evaluate,
)
from tests.core.strategies import fleet_specs

ROOT = Path(__file__).resolve().parents[2]
EDGE = ROOT / "examples" / "llama70b-edge.yaml"
SHARED = ROOT / "examples" / "fleet-verifier" / "shared-verifier.yaml"
RETAIL = ROOT / "specs" / "retail-fleet.yaml"


def _locked(path: Path) -> tuple[Spec, Plan, dict[str, object]]:
    loaded = load_spec(path)
    lock = read_lock(Path(f"{path}.lock"), spec=loaded.spec)
    return loaded.spec, Plan.from_result(lock, "lock"), lock


def _goodput(spec: Spec, row: PlanRow, a: float, d: float, r: float, c: float) -> float:
    """Eq. 1 written out: (K alpha + 1) / ((K + f)/v_d + T + rtt + overhead), each input
    changed as acceptance*a, draft_tok_s*d, rtt_s*r, verify_latency*c say."""
    dev = next(x for x in spec.devices if x.name == row.device)
    prof = next(p for p in spec.profiles if (p.device, p.draft, p.quant)
                == (row.device, row.draft, row.quant))
    target = next(t for t in spec.targets if t.name == row.target)
    alpha0 = alpha_at(prof.acceptance[row.target], row.k)
    assert alpha0 is not None
    alpha = min(1.0, alpha0 * a)
    f = prof.full_accept.get(row.target, {}).get(row.k, 0.0)
    t = c * (target.verify_latency_s + row.k * target.verify_latency_per_token_s)
    rt = (row.k + f) / (prof.draft_tok_s * d) + t + dev.rtt_s * r + dev.round_overhead_s
    return (row.k * alpha + 1.0) / rt


@settings(max_examples=40, deadline=None)
@given(spec=fleet_specs(), data=st.data(),
       a=st.floats(0.5, 1.3), d=st.floats(0.5, 2.0), r=st.floats(0.5, 3.0),
       c=st.floats(0.5, 2.0))
def test_changed_figures_are_eq1_on_the_changed_numbers(
        spec: Spec, data: st.DataObject, a: float, d: float, r: float, c: float) -> None:
    rows = []
    for pc in enumerate_candidates(spec):
        if pc.candidates:
            cand = data.draw(st.sampled_from(pc.candidates))
            rows.append(PlanRow(pc.device.name, pc.device.count, *cand.config))
    if not rows:
        return
    plan = Plan(tuple(rows))
    changes = [Change("acceptance", "*", a), Change("draft_tok_s", "*", d),
               Change("rtt_s", "*", r), Change("verify_latency", "*", c)]
    out = evaluate(changed_spec(spec, changes), plan)
    assert out.fleet is not None
    total = 0.0
    for pool in out.pools:
        want = _goodput(spec, pool.row, a, d, r, c)
        assert pool.goodput_tok_s == pytest.approx(want, rel=1e-9)
        total += pool.row.count * want
    assert out.fleet.goodput_tok_s == pytest.approx(total, rel=1e-9)
    # no change: the spec's own figures
    same = evaluate(spec, plan)
    for pool in same.pools:
        assert pool.goodput_tok_s == pytest.approx(_goodput(spec, pool.row, 1, 1, 1, 1),
                                                   rel=1e-9)


@pytest.mark.parametrize("path", [EDGE, SHARED, RETAIL], ids=lambda p: p.name)
def test_a_lock_evaluates_to_its_own_figures(path: Path) -> None:
    spec, plan, lock = _locked(path)
    out = evaluate(spec, plan)
    assert out.holds, out.broken
    assert out.fleet is not None
    fleet = lock["fleet"]
    assert isinstance(fleet, dict)
    assert out.fleet.goodput_tok_s == pytest.approx(fleet["goodput_tok_s"], rel=1e-6)
    assert out.fleet.cost_usd_per_hour == pytest.approx(fleet["cost_usd_per_hour"], rel=1e-6)


def test_a_slower_batched_verifier_settles_slower_with_the_locks_replicas() -> None:
    spec, plan, _ = _locked(SHARED)
    assert plan.replicas  # the lock's replicas are the plan's
    base = evaluate(spec, plan)
    slow = evaluate(changed_spec(spec, [Change("verify_latency", "*", 1.2)]), plan)
    assert slow.fleet is not None and base.fleet is not None
    for b, s in zip(base.pools, slow.pools, strict=True):
        assert s.goodput_tok_s < b.goodput_tok_s
        assert s.round_time_s > b.round_time_s
    # replicas are billed per hour whatever the load: the cost does not move
    assert slow.fleet.cost_usd_per_hour == pytest.approx(base.fleet.cost_usd_per_hour)


@pytest.mark.parametrize("path", [EDGE, RETAIL], ids=lambda p: p.name)
@pytest.mark.parametrize("name", list(PARAMETERS))
def test_breaking_points_hold_at_the_factor_and_break_just_past_it(path: Path,
                                                                   name: str) -> None:
    spec, plan, _ = _locked(path)
    bp = breaking_point(spec, plan, name)
    if bp.factor is None:
        assert evaluate(changed_spec(spec, [Change(name, "*", bp.scanned_to)]), plan).holds
        return
    assert evaluate(changed_spec(spec, [Change(name, "*", bp.factor)]), plan).holds
    step = 1.0 + 2 * BISECT_TO if bp.direction == "up" else 1.0 - 2 * BISECT_TO
    past = evaluate(changed_spec(spec, [Change(name, "*", bp.factor * step)]), plan)
    assert not past.holds
    assert set(bp.broken) <= set(past.broken)


def test_elasticities_have_the_signs_eq1_gives() -> None:
    spec, plan, _ = _locked(EDGE)  # maximises goodput
    assert (elasticity(spec, plan, "acceptance") or 0) > 0
    assert (elasticity(spec, plan, "draft_tok_s") or 0) > 0
    assert (elasticity(spec, plan, "verify_latency") or 0) < 0
    assert elasticity(spec, plan, "power_w") == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("text, message", [
    ("rtt", "cannot read the change"),
    ("latency*2", "unknown parameter 'latency'"),
    ("rtt_s*-1", "at least 0"),
    ("rtt_s*nan", "cannot read the change"),
])
def test_changes_that_cannot_be_read_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Change.parse(text)


def test_a_change_that_makes_a_number_invalid_says_which() -> None:
    spec, _, _ = _locked(EDGE)
    with pytest.raises(UsageError, match=r"rtt_s\+-5 makes the spec invalid: devices\.0\.rtt_s"):
        changed_spec(spec, [Change.parse("rtt_s+-5")])


def test_acceptance_never_exceeds_one() -> None:
    spec, _, _ = _locked(EDGE)
    up = changed_spec(spec, [Change("acceptance", "*", 5.0)])
    for p in up.profiles:
        for acc in p.acceptance.values():
            for k in range(spec.search.k.min, spec.search.k.max + 1):
                a = alpha_at(acc, k)
                assert a is None or 0.0 <= a <= 1.0


def test_cli_exit_code_says_whether_the_plan_holds() -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["what-if", str(EDGE), "--set", "rtt_s*1.5", "--json",
                             "--no-breaking-points"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["holds"] and data["changes"] == ["rtt_s*1.5"]
    assert data["plan"].endswith("llama70b-edge.yaml.lock")
    assert data["objective"]["changed"] < data["objective"]["nominal"]
    bad = runner.invoke(app, ["what-if", str(EDGE), "--set", "power_w*2", "--json"])
    assert bad.exit_code == 1, bad.output
    data = json.loads(bad.stdout)
    assert "constraints.fleet.max_power_w" in data["broken"]
    sens = data["sensitivity"]
    assert {b["parameter"] for b in sens["breaking_points"]} == set(PARAMETERS)
    sizes = [abs(e["elasticity"] or 0.0) for e in sens["elasticities"]]
    assert len(sizes) == len(PARAMETERS) and sizes == sorted(sizes, reverse=True)


def test_cli_without_a_lock_solves_for_the_plan(tmp_path: Path) -> None:
    spec = tmp_path / "edge.yaml"
    spec.write_text(EDGE.read_text())
    res = CliRunner().invoke(app, ["what-if", str(spec), "--set", "acceptance*0.95",
                                   "--no-breaking-points", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["plan"] == "solve" and any("no lock" in n for n in data["notes"])


def test_cli_refuses_an_unknown_parameter_with_exit_2() -> None:
    res = CliRunner().invoke(app, ["what-if", str(EDGE), "--set", "speed*2"])
    assert res.exit_code == 2
    assert "unknown parameter 'speed'" in res.output


def test_solve_with_sensitivity_reports_what_what_if_finds() -> None:
    res = CliRunner().invoke(app, ["solve", str(EDGE), "--sensitivity", "--json"])
    assert res.exit_code == 0, res.output
    sens = json.loads(res.stdout)["sensitivity"]
    spec, plan, _ = _locked(EDGE)  # the lock holds this spec's answer
    for b in sens["breaking_points"]:
        assert b == breaking_point(spec, plan, b["parameter"]).to_dict()


def test_the_html_report_has_the_sensitivity_table(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    res = CliRunner().invoke(app, ["report", str(EDGE), "-o", str(out), "--no-pareto"])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert "Sensitivity: how far the numbers may drift" in html
    assert "constraints.fleet.max_power_w" in html


def test_a_scan_that_leaves_a_numbers_range_ends_there_instead_of_failing() -> None:
    spec, plan, _ = _locked(EDGE)
    data = spec.model_dump(mode="python")
    data["profiles_from"] = []
    data["constraints"] = {}
    for p in data["profiles"]:
        p["draft_tok_s"] = 0.015  # x0.05 would be below the schema's 0.001 tok/s
    slow = Spec.model_validate(data)
    bp = breaking_point(slow, plan, "draft_tok_s")
    assert bp.factor is None and bp.broken == []
    assert 0.05 < bp.scanned_to < 1.0
    assert evaluate(changed_spec(slow, [Change("draft_tok_s", "*", bp.scanned_to)]), plan).holds
