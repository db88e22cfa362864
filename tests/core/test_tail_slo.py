"""Tail-latency SLOs in the solve: the MILP's answer against brute force on a tiny fleet.

A per-device tail SLO removes the candidates whose percentile (computed here by the
percentile search, `tails.percentiles`) is above the bound; a fleet tail bound is one
linear row on the CDFs, and the brute force checks it instead with the fleet's
percentile itself (`tails.fleet_quantile`, a search over the mixture).  The answer,
`solve --json`, the report and the lock carry the percentiles of every pool.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from configspec_opt import tails
from configspec_opt.candidates import Candidate
from configspec_opt.fleet import fleet_metrics, objective_key, violated_constraints
from configspec_opt.metric_registry import BY_TAIL_SLO, TAILS
from configspec_opt.problem import build_problem
from configspec_opt.report import solution_dict
from configspec_opt.spec import Metric, Objective, Spec
from configspec_opt.vcs.lock_schema import LockFile
from solvers.diagnose import relaxed_spec
from solvers.solve import Solution, solve
from solvers.status import Status
from tests.cli_helpers import HIDE, invoke, run_process
from tests.core.brute import compositions

REL = 1e-6
BASE: dict[str, Any] = {
    "version": 1, "name": "tails",
    "targets": [{"name": "big", "family": "llama", "price_usd_per_mtok": 0.9,
                 "verify_latency_s": 0.35, "prefill_latency_s": 0.4},
                {"name": "small", "family": "llama", "price_usd_per_mtok": 0.2,
                 "verify_latency_s": 0.12, "verify_latency_per_token_s": 0.01}],
    "drafts": [{"name": "d-fast", "family": "llama", "quants": {"Q4": {"size_gb": 1}}},
               {"name": "d-good", "family": "llama", "quants": {"Q4": {"size_gb": 2}}}],
    "devices": [{"name": "a", "count": 2, "memory_gb": 8, "rtt_s": 0.03,
                 "rtt_jitter_s": 0.01},
                {"name": "b", "count": 1, "memory_gb": 8, "rtt_s": 0.08,
                 "rtt_jitter_s": 0.03}],
    "profiles": [
        {"device": d, "draft": draft, "quant": "Q4", "draft_tok_s": speed * f,
         "draft_time_cv": 0.1,
         "acceptance": {"big": {"per_token": acc + 0.05}, "small": {"per_token": acc}},
         "full_accept": {"big": {2: 0.5, 3: 0.4}}}
        for d, f in (("a", 1.0), ("b", 1.6))
        for draft, speed, acc in (("d-fast", 40.0, 0.55), ("d-good", 15.0, 0.75))],
    "search": {"k": {"min": 2, "max": 3}},
    "workload": {"output_tokens": [{"tokens": 24, "weight": 2}, {"tokens": 96, "weight": 1}]},
}


def _spec(per_device: dict[str, float] | None = None, fleet: dict[str, float] | None = None,
          pool_b: dict[str, float] | None = None) -> Spec:
    data = copy.deepcopy(BASE)
    data["constraints"] = {"per_device": per_device or {}, "fleet": fleet or {}}
    if pool_b:
        data["devices"][1]["slo"] = pool_b
    return Spec.model_validate(data)


def _all_candidates(spec: Spec) -> list[Candidate]:
    return build_problem(spec, prune=False, apply_slo=False).candidates


def _pct(c: Candidate, key: str) -> float:
    return tails.percentiles([c])[0][key]


def _brute(spec: Spec) -> tuple[float, list[tuple[Candidate, int]]] | None:
    """Best objective key (larger is better) over every assignment of every candidate
    that meets the spec's tail SLOs and bounds, each percentile found by search; None if
    none does."""
    problem = build_problem(spec, prune=False, apply_slo=False)
    best: tuple[float, list[tuple[Candidate, int]]] | None = None
    per_pool = []
    for pc in problem.structural:
        slo = spec.slo_for(pc.device)
        per_pool.append([c for c in problem.candidates if c.pool == pc.index and all(
            _pct(c, d.key) <= getattr(slo, d.slo) for d in TAILS
            if getattr(slo, d.slo) is not None)])
    for parts in itertools.product(*[list(compositions(cands, problem.pools[i].count))
                                     for i, cands in enumerate(per_pool)]):
        assignment = [x for part in parts for x in part]
        ok = all(tails.fleet_quantile(assignment, d) <= getattr(
            spec.constraints.fleet, d.slo) * (1 + REL) for d in TAILS
            if getattr(spec.constraints.fleet, d.slo) is not None)
        others = [k for k in violated_constraints(problem, assignment, REL)
                  if k.rsplit(".", 1)[1] not in BY_TAIL_SLO]
        if ok and not others:
            value = objective_key(fleet_metrics(assignment), spec.objective)[0]
            if best is None or value > best[0]:
                best = (value, assignment)
    return best


def _key(sol: Solution, objective: Objective) -> float:
    assert sol.fleet is not None
    return objective_key(sol.fleet, objective)[0]


def _median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2]


def _binding_bound(key: str, objective: Objective, pools: str = "ab") -> float:
    """Halfway between the least bound every pool can meet and the answer's worst."""
    cands = _all_candidates(_spec())
    feasible = max(min(_pct(c, key) for c in cands if c.device == d) for d in pools)
    used = max(_pct(c, key) for c, _ in solve(_spec(), objective=objective).assignment
               if c.device in pools)
    assert used > feasible * (1 + 1e-6)
    return 0.5 * (feasible + used)


@pytest.mark.parametrize(("key", "objective"), [
    ("tpot_p95_s", Objective(maximize=Metric.goodput)),
    ("ttft_p99_s", Objective(maximize=Metric.goodput)),
    ("tpot_p50_s", Objective(minimize=Metric.cost))])
def test_a_per_device_tail_slo_filters_and_the_milp_matches_brute_force(
        key: str, objective: Objective) -> None:
    bound = _binding_bound(key, objective)
    spec = _spec(per_device={f"max_{key}": bound}).model_copy(update={"objective": objective})
    sol = solve(spec)
    assert sol.status is Status.optimal
    assert all(_pct(c, key) <= bound * (1 + 1e-9) for c, _ in sol.assignment)
    best = _brute(spec)
    assert best is not None
    assert _key(sol, objective) == pytest.approx(best[0], rel=REL)
    # the SLO binds: without it the objective is better
    free = _key(solve(_spec(), objective=objective), objective)
    assert free > best[0] + 1e-9 * abs(best[0])


def test_a_pool_s_own_tail_slo_overrides_the_fleet_wide_one() -> None:
    goodput = Objective(maximize=Metric.goodput)
    bound = _binding_bound("ttft_p95_s", goodput, pools="b")
    spec = _spec(pool_b={"max_ttft_p95_s": bound})
    sol = solve(spec)
    assert sol.status is Status.optimal
    assert all(_pct(c, "ttft_p95_s") <= bound * (1 + 1e-9)
               for c, _ in sol.assignment if c.device == "b")
    best = _brute(spec)
    assert best is not None
    assert _key(sol, goodput) == pytest.approx(best[0], rel=REL)


@pytest.mark.parametrize("key", ["tpot_p95_s", "ttft_p50_s"])
def test_a_fleet_tail_bound_is_met_exactly_as_brute_force_finds(key: str) -> None:
    d = next(t for t in TAILS if t.key == key)
    free = solve(_spec())
    assert free.fleet is not None
    unbounded = tails.fleet_quantile(free.assignment, d)
    assert unbounded is not None
    cands = _all_candidates(_spec())
    pool_best = [(min((c for c in cands if c.device == dev.name), key=lambda c: _pct(c, key)),
                  dev.count) for dev in _spec().devices]
    lowest = tails.fleet_quantile(pool_best, d)
    assert lowest is not None and lowest < unbounded * (1 - 1e-6)
    limit = lowest + 0.5 * (unbounded - lowest)  # binds, and something meets it
    spec = _spec(fleet={d.slo: limit})
    sol = solve(spec)
    assert sol.status is Status.optimal
    reached = tails.fleet_quantile(sol.assignment, d)
    assert reached is not None and reached <= limit * (1 + REL)
    best = _brute(spec)
    assert best is not None
    assert _key(sol, spec.objective) == pytest.approx(best[0], rel=REL)
    usage = {u["constraint"]: u for u in solution_dict(sol)["constraints"]}
    row = usage[f"constraints.fleet.{d.slo}"]
    assert row["limit"] == limit and row["value"] == pytest.approx(reached, rel=1e-9)


def test_an_impossible_tail_slo_is_diagnosed_and_relaxed() -> None:
    lowest = min(_pct(c, "tpot_p95_s") for c in _all_candidates(_spec()) if c.device == "a")
    spec = _spec(per_device={"max_tpot_p95_s": lowest * 0.8})
    sol = solve(spec)
    assert sol.status is Status.infeasible and sol.diagnosis is not None
    relax = {r.constraint: r for r in sol.diagnosis.relaxations}
    r = relax["constraints.per_device.max_tpot_p95_s"]
    assert r.relax_to >= lowest * (1 - 1e-9)
    assert solve(relaxed_spec(spec, sol.diagnosis)).status is Status.optimal


def test_a_batched_verifier_s_settled_answer_meets_the_tail_slo() -> None:
    """The filter reads each load level's latency; the answer, settled at its true load
    (with the wait for the step in progress), meets the SLO, which the unconstrained
    answer breaks."""
    data = copy.deepcopy(BASE)
    data["targets"][1]["verifier"] = {
        "replicas": {"min": 1, "max": 2}, "price_usd_per_replica_hour": 0.5, "max_batch": 8,
        "latency_s": {1: {2: 0.10, 3: 0.12}, 4: {2: 0.16, 3: 0.19}, 8: {2: 0.3, 3: 0.36}}}
    bound = 0.14
    free = solve(Spec.model_validate(data))
    assert free.status in (Status.optimal, Status.feasible)
    assert max(_pct(c, "tpot_p95_s") for c, _ in free.assignment) > bound
    data["constraints"] = {"per_device": {"max_tpot_p95_s": bound}}
    sol = solve(Spec.model_validate(data))
    assert sol.status in (Status.optimal, Status.feasible), sol.message
    assert all(_pct(c, "tpot_p95_s") <= bound * (1 + 1e-9) for c, _ in sol.assignment)


def _write(tmp_path: Path, spec: Spec | dict[str, Any]) -> Path:
    data = spec if isinstance(spec, dict) else json.loads(spec.model_dump_json(
        exclude_defaults=True))
    path = tmp_path / "tails.yaml"
    with path.open("w") as f:
        YAML().dump(data, f)
    return path


def test_solve_json_report_and_lock_carry_every_pool_s_percentiles(tmp_path: Path) -> None:
    path = _write(tmp_path, copy.deepcopy(BASE) | {"constraints": {
        "fleet": {"max_tpot_p99_s": 5.0}}})
    run = invoke("solve", path, "--json")
    assert run.exit_code == 0, run.stderr
    data = json.loads(run.stdout)
    keys = {d.key for d in TAILS}
    for row in data["assignments"]:
        assert keys <= set(row)
        assert row["tpot_p50_s"] <= row["tpot_p95_s"] <= row["tpot_p99_s"]
        assert row["ttft_p50_s"] <= row["ttft_p95_s"] <= row["ttft_p99_s"]
    assert keys <= set(data["fleet"])
    assert "constraints.fleet.max_tpot_p99_s" in {c["constraint"] for c in data["constraints"]}
    assert invoke("lock", path).exit_code == 0
    lock = YAML(typ="safe").load(path.with_name(path.name + ".lock").read_text())
    LockFile.model_validate(lock)
    for locked, row in zip(lock["assignments"], data["assignments"], strict=True):
        assert locked["tpot_p95_s"] == pytest.approx(row["tpot_p95_s"], rel=1e-9)
    assert lock["fleet"]["ttft_p99_s"] == pytest.approx(data["fleet"]["ttft_p99_s"], rel=1e-9)
    report = tmp_path / "r.html"
    assert invoke("report", path, "-o", report, "--no-pareto").exit_code == 0
    html = report.read_text()
    assert "TPOT p95 s" in html and "p95 time per output token" in html
    text = invoke("solve", path)
    assert "fleet over requests: TPOT p50/p95/p99" in text.stdout


def test_a_bad_workload_is_refused_where_it_is_written(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["workload"] = {"output_tokens": 1}
    run = invoke("validate", _write(tmp_path, data))
    assert run.exit_code == 2
    assert "workload.output_tokens" in run.stdout + run.stderr
    assert "tails.yaml:" in run.stdout + run.stderr


def test_tail_bounds_without_numpy_exit_3_with_the_install_command(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["constraints"] = {"per_device": {"max_tpot_p95_s": 0.2}}
    run = run_process("validate", _write(tmp_path, data), prelude=HIDE.format(name="numpy"))
    assert run.exit_code == 3
    assert "tail-latency" in run.stderr and 'pip install "configspec-opt[solver]"' in run.stderr
    assert "Traceback" not in run.stderr
    # a spec without tail bounds still validates on the base install
    plain = run_process("validate", _write(tmp_path, BASE), prelude=HIDE.format(name="numpy"))
    assert plain.exit_code == 0, plain.stderr
