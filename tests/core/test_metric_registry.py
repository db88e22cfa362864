"""The metric registry and the constraint families: one declaration, checked everywhere.

The registry must cover the spec's vocabulary (every metric, SLO field and
fleet bound), and its generic aggregation must equal an explicit loop over
the devices.  The two extensions made through them — the round time R with
its per-device SLO and Pareto axis, and the `max_devices_per_target` family —
must give what brute-force enumeration gives.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configspec_opt import metrics as m
from configspec_opt.candidates import Candidate
from configspec_opt.constraint_families import families_for
from configspec_opt.fleet import fleet_metrics, metric_value, violated_constraints
from configspec_opt.metric_registry import (
    BY_FLEET_BOUND,
    BY_SLO,
    BY_TAIL_SLO,
    REGISTRY,
    metric_def,
)
from configspec_opt.problem import build_problem
from configspec_opt.spec import DeviceSLO, FleetConstraints, Metric, Objective, Spec, Term
from solvers.diagnose import relaxed_spec
from solvers.pareto import pareto
from solvers.solve import solve
from solvers.status import Status
from tests.core.brute import compositions
from tests.core.strategies import fleet_specs

REL = 1e-6


def test_every_metric_slo_and_fleet_bound_is_declared_once() -> None:
    assert {d.metric for d in REGISTRY} == set(Metric)
    assert len({d.key for d in REGISTRY}) == len(REGISTRY)
    assert set(BY_SLO) | set(BY_TAIL_SLO) == set(DeviceSLO.model_fields)
    assert not set(BY_SLO) & set(BY_TAIL_SLO)
    for name in FleetConstraints.model_fields:
        assert name in BY_FLEET_BOUND or name in BY_TAIL_SLO or name in (
            "max_distinct_variants", "max_devices_per_target")
    for d in REGISTRY:
        if d.slo is not None:
            assert d.slo.startswith("min_" if d.better == "maximize" else "max_"), d
            assert d.per_device is not None and d.per_device in Candidate.__dataclass_fields__


def _spec(fleet: dict[str, Any] | None = None, per_device: dict[str, Any] | None = None,
          counts: tuple[int, ...] = (2, 1), objective: dict[str, Any] | None = None) -> Spec:
    """Two pools, two targets, two drafts: small enough to enumerate every assignment."""
    devices = [{"name": f"pool-{i}", "count": n, "memory_gb": 8, "rtt_s": 0.02 * i,
                "power_w": 7.0 + i} for i, n in enumerate(counts)]
    profiles = [{"device": f"pool-{i}", "draft": draft, "quant": "Q4_K_M",
                 "draft_tok_s": speed * (1.0 + 0.4 * i),
                 "acceptance": {"big": {"per_token": 0.62 + 0.1 * j},
                                "small": {"per_token": 0.55 + 0.1 * j}}}
                for i in range(len(counts))
                for j, (draft, speed) in enumerate((("d-fast", 45.0), ("d-good", 16.0)))]
    return Spec.model_validate({
        "version": 1, "name": "registry",
        "targets": [{"name": "big", "family": "llama", "price_usd_per_mtok": 0.9,
                     "verify_latency_s": 0.45},
                    {"name": "small", "family": "llama", "price_usd_per_mtok": 0.2,
                     "verify_latency_s": 0.15}],
        "drafts": [{"name": "d-fast", "family": "llama", "quants": {"Q4_K_M": {"size_gb": 1}}},
                   {"name": "d-good", "family": "llama", "quants": {"Q4_K_M": {"size_gb": 3}}}],
        "devices": devices, "profiles": profiles, "search": {"k": {"min": 2, "max": 4}},
        "objective": objective or {"maximize": "goodput"},
        "constraints": {"fleet": fleet or {}, "per_device": per_device or {}}})


def _assignments(spec: Spec) -> list[list[tuple[Candidate, int]]]:
    """Every assignment of the SLO-feasible candidates (the brute-force reference)."""
    problem = build_problem(spec, prune=False)
    per_pool = [[problem.candidates[i] for i in idx] for idx in problem.by_pool]
    return [[x for part in parts for x in part] for parts in itertools.product(*[
        list(compositions(cands, problem.pools[d].count)) for d, cands in enumerate(per_pool)])]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fleet_metrics_equal_an_explicit_loop(data: st.DataObject) -> None:
    spec = data.draw(fleet_specs({"maximize": "goodput"}))
    problem = build_problem(spec, prune=False)
    if not problem.candidates:
        return
    chosen = data.draw(st.lists(st.sampled_from(problem.candidates), min_size=1, max_size=4))
    assignment = [(c, data.draw(st.integers(1, 5))) for c in chosen]
    fm = fleet_metrics(assignment)
    g = sum(k * c.goodput_tok_s for c, k in assignment)
    cost = sum(k * c.cost_usd_per_hour for c, k in assignment)
    explicit = {
        Metric.goodput: g, Metric.cost: cost,
        Metric.verifier_load: sum(k * c.verifier_load_tok_s for c, k in assignment),
        Metric.power: sum(k * (c.power_w or 0.0) for c, k in assignment),
        Metric.cost_efficiency: g / (cost / 3600.0),
        Metric.energy: sum(k * (c.drafting_power_w or 0.0) for c, k in assignment) / g,
        Metric.min_goodput: min(c.goodput_tok_s for c, _ in assignment),
        Metric.round_time: sum(k * c.round_time_s for c, k in assignment)
        / sum(k for _, k in assignment),
    }
    for metric, value in explicit.items():
        assert math.isclose(metric_value(fm, metric), value, rel_tol=1e-12), metric
    assert list(fm.to_dict())[:len(REGISTRY)] == [d.key for d in REGISTRY]


def test_round_time_slo_removes_exactly_the_slow_configurations() -> None:
    free = build_problem(_spec(), prune=False)
    times = sorted(c.round_time_s for c in free.candidates)
    bound = times[len(times) // 2]
    spec = _spec(per_device={"max_round_time_s": bound})
    kept = build_problem(spec, prune=False).candidates
    # R recomputed from the paper's formula, not read from the candidate
    expect = [c for c in free.candidates
              if m.round_time_s(c.k, c.draft_tok_s, c.verify_latency_s,
                                0.02 * c.pool) <= bound + 1e-12]
    assert sorted((*c.config, c.device) for c in kept) == \
        sorted((*c.config, c.device) for c in expect)
    sol = solve(spec, diagnose=False)
    assert sol.status is Status.optimal
    assert all(c.round_time_s <= bound for c, _ in sol.assignment)


def test_min_mean_round_time_matches_brute_force() -> None:
    spec = _spec(objective={"minimize": "round_time"}, fleet={"min_goodput_tok_s": 12.0})
    sol = solve(spec, diagnose=False)
    assert sol.status is Status.optimal
    best = min(metric_value(fleet_metrics(a), Metric.round_time) for a in _assignments(spec)
               if not violated_constraints(build_problem(spec, prune=False), a))
    got = metric_value(sol.fleet, Metric.round_time) if sol.fleet else math.nan
    assert math.isclose(got, best, rel_tol=REL), (got, best)


def test_round_time_is_a_pareto_axis_with_non_dominated_points() -> None:
    spec = _spec(counts=(2, 2))
    front = pareto(spec, Term(maximize=Metric.goodput), Term(minimize=Metric.round_time))
    assert front.complete and len(front.points) >= 2
    every = [(metric_value(f, Metric.goodput), metric_value(f, Metric.round_time))
             for f in (fleet_metrics(a) for a in _assignments(spec))]
    for p in front.points:
        tol = REL * max(1.0, abs(p.x))
        assert not any(g > p.x + tol and r < p.y - REL * p.y for g, r in every), (p.x, p.y)
        assert not any(g >= p.x - tol and r < p.y - REL * p.y for g, r in every), (p.x, p.y)
    assert metric_def(Metric.round_time).unit == "s"


def _per_target(assignment: list[tuple[Candidate, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c, n in assignment:
        out[c.target] = out.get(c.target, 0) + n
    return out


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_max_devices_per_target_matches_brute_force(limit: int) -> None:
    spec = _spec(fleet={"max_devices_per_target": limit}, counts=(2, 2))
    feasible = [a for a in _assignments(spec)
                if all(n <= limit for n in _per_target(a).values())]
    sol = solve(spec, diagnose=False)
    if not feasible:
        assert sol.status is Status.infeasible
        return
    best = max(metric_value(fleet_metrics(a), Metric.goodput) for a in feasible)
    assert sol.status is Status.optimal
    assert all(n <= limit for n in _per_target(sol.assignment).values())
    assert sol.fleet is not None
    assert math.isclose(sol.fleet.goodput_tok_s, best, rel_tol=REL)


def test_max_devices_per_target_is_diagnosed_and_relaxed_to_a_whole_number() -> None:
    spec = _spec(fleet={"max_devices_per_target": 1}, counts=(2, 2))
    sol = solve(spec)
    assert sol.status is Status.infeasible and sol.diagnosis is not None
    relax = {r.constraint: r for r in sol.diagnosis.relaxations}
    r = relax["constraints.fleet.max_devices_per_target"]
    assert r.limit == 1 and r.relax_to == round(r.relax_to) and r.relax_to >= 2
    fixed = relaxed_spec(spec, sol.diagnosis)
    assert fixed.constraints.fleet.max_devices_per_target == round(r.relax_to)
    assert solve(fixed, diagnose=False).status is Status.optimal
    usage = {u.constraint for f in families_for(spec) for u in f.usage(
        build_problem(spec), [], {})}
    assert usage == {"constraints.fleet.max_devices_per_target[big]",
                     "constraints.fleet.max_devices_per_target[small]"}


def test_every_fleet_field_becomes_a_family() -> None:
    spec = _spec(fleet={"max_cost_usd_per_hour": 10.0, "max_power_w": 100.0,
                        "max_distinct_variants": 2, "min_goodput_tok_s": 1.0,
                        "max_energy_j_per_tok": 5.0, "min_cost_efficiency_tok_per_usd": 1.0,
                        "max_devices_per_target": 3,
                        **{name: 60.0 for name in BY_TAIL_SLO}})
    keys = {f.key.rsplit(".", 1)[1] for f in families_for(spec)}
    assert keys == set(FleetConstraints.model_fields)
    assert solve(spec, objective=Objective(maximize=Metric.goodput),
                 diagnose=False).status is Status.optimal
