"""Pins, per-pool SLOs, split pools, explanations and constraint usage on real solves."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

from configspec_opt.explain import explain
from configspec_opt.loader import load_spec
from configspec_opt.report import solution_dict
from configspec_opt.spec import Spec
from solvers.solve import solve
from solvers.status import Status

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llama70b-edge.yaml"


def _spec(**changes: object) -> Spec:
    data = YAML(typ="safe").load(EXAMPLE.read_text())
    for path, value in changes.items():
        node = data
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if k.isdigit() else node[k]
        node[keys[-1]] = value
    return Spec.model_validate(data)


def test_pin_forces_the_pool() -> None:
    free = solve(_spec())
    assert {c.quant for c, _ in free.assignment if c.device == "orin"} == {"Q4_K_M"}
    pinned = solve(_spec(constraints__pinned=[{"device": "orin", "quant": "Q8_0", "k": 3}]))
    assert pinned.status is Status.optimal
    assert {(c.quant, c.k) for c, _ in pinned.assignment if c.device == "orin"} == {("Q8_0", 3)}
    assert pinned.objective_value is not None and free.objective_value is not None
    assert pinned.objective_value < free.objective_value


def test_per_pool_slo_overrides_the_fleet_wide_one() -> None:
    sol = solve(_spec(devices__1__slo={"min_goodput_tok_s": 7.5}))
    orin = [c for c, _ in sol.assignment if c.device == "orin"]
    assert orin and all(c.goodput_tok_s >= 7.5 for c in orin)
    rpi = [c for c, _ in sol.assignment if c.device == "rpi5"]
    assert all(c.goodput_tok_s >= 2.0 for c in rpi)


def test_budget_splits_a_pool_and_the_output_says_so() -> None:
    sol = solve(_spec(constraints__fleet__max_cost_usd_per_hour=2))
    assert sol.status is Status.optimal and sol.fleet is not None
    assert sol.fleet.cost_usd_per_hour <= 2 * (1 + 1e-6)
    data = solution_dict(sol, explanations=explain(sol.problem, sol.objective, sol.assignment))
    assert data["split_pools"] == ["rpi5"]
    usage = {c["constraint"]: c for c in data["constraints"]}
    cost = usage["constraints.fleet.max_cost_usd_per_hour"]
    assert cost["binding"] and abs(cost["value"] - sol.fleet.cost_usd_per_hour) < 1e-9
    # a better configuration for a pool exists but the budget blocks it
    blocked = {e["device"]: e["blocked_by"] for e in data["explain"]}
    assert any("constraints.fleet.max_cost_usd_per_hour" in b["constraints"]
               for b in blocked["orin"])


def test_runner_up_loss_is_the_objective_difference() -> None:
    spec = load_spec(EXAMPLE).spec
    sol = solve(spec)
    [ex_rpi, _] = explain(sol.problem, sol.objective, sol.assignment)
    assert ex_rpi.runner_up is not None
    best = ex_rpi.runner_up
    switched = [(c, n) for c, n in sol.assignment if c.device != "rpi5"]
    cand = next(c for c in sol.problem.structural[0].candidates
                if (c.draft, c.quant, c.k) == (best["draft"], best["quant"], best["k"]))
    switched.append((cand, 200))
    total = sum(n * c.goodput_tok_s for c, n in switched)
    assert sol.objective_value is not None
    assert abs((sol.objective_value - total) - best["loss"]) < 1e-9
    assert best["loss"] > 0
