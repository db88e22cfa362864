"""Devices grouped into pools (configspec_opt.grouping): every real device at least as
good as its pool, spreads within the tolerance, and the bound on what grouping costs
holding against the optimum of the ungrouped fleet (every device its own pool)."""

from __future__ import annotations

import csv
import io
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configspec_opt.candidates import Candidate, enumerate_candidates
from configspec_opt.device_profiles import DevicesInputError, read_devices
from configspec_opt.fleet import fleet_metrics, metric_value, violated_constraints
from configspec_opt.group_bound import grouping_bound
from configspec_opt.grouping import (
    ALPHA_FLOOR,
    Grouping,
    adjusted,
    device_spec,
    factors,
    fleet_text,
    group_devices,
    member_plan,
    members_csv,
    pooled_spec,
    real_value,
    uncertified,
)
from configspec_opt.loader import parse_spec
from configspec_opt.problem import build_problem
from configspec_opt.spec import Spec
from solvers.solve import solve
from solvers.status import Status
from tests.cli_helpers import invoke
from tests.fuzz.strategies import value_paths

REL = 1e-9  # one float computation against another of the same formula
SOLVER = 2e-6  # what HiGHS's feasibility tolerance lets an optimum move

# --- random fleets ------------------------------------------------------------

OBJECTIVES = [{"maximize": "goodput"}, {"maximize": "min_goodput"},
              {"minimize": "power"}, {"minimize": "round_time"}]


def base_spec(rng: random.Random, objective: dict[str, str] | None = None) -> Spec:
    """Two kinds, two drafts of one family (one with two quants), K 2..4, and a random
    choice of the constraints the grouping has to keep true."""
    fleet: dict[str, Any] = {}
    per_device: dict[str, Any] = {}
    capacity = None
    if rng.random() < 0.4:
        fleet["max_cost_usd_per_hour"] = rng.uniform(0.05, 0.6)
    if rng.random() < 0.3:
        capacity = rng.uniform(20.0, 120.0)
    if rng.random() < 0.3:
        fleet["max_energy_j_per_tok"] = rng.uniform(0.3, 1.5)
    if rng.random() < 0.3:
        fleet["min_cost_efficiency_tok_per_usd"] = rng.uniform(5e5, 1.5e6)
    if rng.random() < 0.3:
        fleet["max_power_w"] = rng.uniform(30.0, 90.0)
    if rng.random() < 0.3:
        fleet["max_distinct_variants"] = 1
    if rng.random() < 0.3:
        fleet["min_goodput_tok_s"] = rng.uniform(10.0, 40.0)
    if rng.random() < 0.3:
        per_device["min_goodput_tok_s"] = rng.uniform(2.0, 6.0)
    target: dict[str, Any] = {"name": "big", "family": "f", "price_usd_per_mtok": 0.9,
                              "verify_latency_s": rng.uniform(0.05, 0.3),
                              "verify_latency_per_token_s": 0.01}
    if capacity is not None:
        target["capacity_tok_s"] = capacity
    data = {
        "version": 1, "name": "random-fleet", "targets": [target],
        "drafts": [{"name": "d1", "family": "f",
                    "quants": {"q4": {"size_gb": 1.0}, "q8": {"size_gb": 2.0}}},
                   {"name": "d2", "family": "f", "quants": {"q4": {"size_gb": 3.0}}}],
        "devices": [{"name": "small", "count": 1, "memory_gb": 2.5, "power_w": 6.0},
                    {"name": "large", "count": 1, "memory_gb": 8.0}],
        "search": {"k": {"min": 2, "max": 4}},
        "objective": objective or rng.choice(OBJECTIVES),
        "constraints": {"fleet": fleet, "per_device": per_device},
    }
    return Spec.model_validate(data)


def pushes(rng: random.Random, n: int, *, per_token: bool = False) -> list[dict[str, Any]]:
    """n devices, each measuring every variant its kind ships, around a kind's means
    (speed and power +-15 % by device, acceptance within 8 % of the variant's)."""
    means = {v: rng.uniform(0.5, 0.85) for v in ("d1q4", "d1q8", "d2q4")}
    out = []
    for i in range(n):
        kind = rng.choice(["small", "large"])
        clock = rng.uniform(0.85, 1.15)
        profiles = []
        variants = [("d1", "q4"), ("d1", "q8")] + ([("d2", "q4")] if kind == "large" else [])
        for draft, quant in variants:
            p: dict[str, Any] = {"draft": draft, "quant": quant,
                                 "draft_tok_s": round(20.0 * clock * rng.uniform(0.97, 1.03)
                                                      / (1 + (quant == "q8")), 3)}
            if kind == "large":
                p["power_w"] = round(15.0 * clock * rng.uniform(0.97, 1.03), 3)
            a = means[draft + quant] * rng.uniform(0.92, 1.0)
            p["acceptance"] = {"big": {"per_token": round(a, 4)}} if per_token else {
                "big": {str(k): round(a ** (k / 2) * rng.uniform(0.97, 1.0), 4)
                        for k in (2, 3, 4)}}
            profiles.append(p)
        out.append({"device": f"dev{i:03d}", "kind": kind,
                    "rtt_s": round(rng.uniform(0.0, 0.08), 4), "profiles": profiles})
    return out


def jsonl(lines: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(x) + "\n" for x in lines)


def grouped(base: Spec, lines: list[dict[str, Any]], tolerance: float) -> Grouping:
    return group_devices(read_devices(jsonl(lines), "devices.jsonl", base), base, tolerance)


def both_sides(base: Spec, g: Grouping) -> tuple[Spec, Spec]:
    f = factors(base, g)
    return (Spec.model_validate(pooled_spec(base, g, "conservative", f)),
            Spec.model_validate(pooled_spec(base, g, "optimistic", f)))


def by_config(spec: Spec) -> dict[str, dict[tuple[str, str, str, int], Candidate]]:
    return {pc.device.name: {c.config: c for c in pc.candidates}
            for pc in enumerate_candidates(spec)}


# --- every real device is at least as good as its pool --------------------------


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), tolerance=st.sampled_from([0.0, 0.02, 0.1, 0.3, 1.0]),
       per_token=st.booleans())
def test_every_device_is_at_least_as_good_as_its_pool(seed: int, tolerance: float,
                                                      per_token: bool) -> None:
    rng = random.Random(seed)
    base = base_spec(rng)
    g = grouped(base, pushes(rng, rng.randint(3, 30), per_token=per_token), tolerance)
    f = factors(base, g)
    cons, opt = both_sides(base, g)
    real = by_config(Spec.model_validate(device_spec(base, g.devices)))
    pool_c, pool_o = by_config(cons), by_config(opt)
    ratios = {"round_time": 1.0, "goodput": 1.0, "energy": 1.0}
    for group in g.groups:
        assert set(pool_c[group.name]) == set(pool_o[group.name])
        for device in group.members:
            assert set(real[device]) == set(pool_c[group.name])
            for config, r in real[device].items():
                c, o = pool_c[group.name][config], pool_o[group.name][config]
                for lo, x, hi in ((c.goodput_tok_s, r.goodput_tok_s, o.goodput_tok_s),
                                  (c.cost_efficiency_tok_per_usd,
                                   r.cost_efficiency_tok_per_usd,
                                   o.cost_efficiency_tok_per_usd),
                                  (o.round_time_s, r.round_time_s, c.round_time_s),
                                  (o.power_w, r.power_w, c.power_w),
                                  (o.energy_j_per_tok, r.energy_j_per_tok,
                                   c.energy_j_per_tok)):
                    if x is None:
                        assert lo is None and hi is None
                        continue
                    assert lo is not None and hi is not None
                    assert lo <= x * (1 + REL) and x <= hi * (1 + REL), (config, lo, x, hi)
                # rows that grow with speed: within the factor of the pool's
                assert r.verifier_load_tok_s <= c.verifier_load_tok_s * f.round_time * (1 + REL)
                assert r.cost_usd_per_hour <= c.cost_usd_per_hour * f.round_time * (1 + REL)
            for config, c in pool_c[group.name].items():
                o = pool_o[group.name][config]
                ratios["round_time"] = max(ratios["round_time"], c.round_time_s / o.round_time_s)
                ratios["goodput"] = max(ratios["goodput"], o.goodput_tok_s / c.goodput_tok_s)
                if c.energy_j_per_tok is not None and o.energy_j_per_tok is not None:
                    ratios["energy"] = max(ratios["energy"],
                                           c.energy_j_per_tok / o.energy_j_per_tok)
    # the vectorised factors are the candidates' own ratios
    for name, value in ratios.items():
        assert math.isclose(getattr(f, name), value, rel_tol=1e-12), (name, f, ratios)


# --- the spread respects the tolerance ------------------------------------------


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), tolerance=st.sampled_from([0.0, 0.01, 0.05, 0.2]))
def test_spread_within_tolerance_and_every_device_in_one_pool(seed: int,
                                                              tolerance: float) -> None:
    rng = random.Random(seed)
    base = base_spec(rng)
    lines = pushes(rng, rng.randint(1, 60))
    g = grouped(base, lines, tolerance)
    members = [m for group in g.groups for m in group.members]
    assert sorted(members) == sorted(x["device"] for x in lines)
    real = {pc.device.name: pc.candidates
            for pc in enumerate_candidates(Spec.model_validate(device_spec(base, g.devices)))}
    for group in g.groups:
        rows = g.values[group.layout][group.rows]
        assert (rows.min(axis=0) == group.lo).all() and (rows.max(axis=0) == group.hi).all()
        for kind, lo, hi in zip(group.layout.columns(), group.lo, group.hi):
            if kind == "speed" or kind == "power":
                assert hi <= lo * (1 + tolerance) * (1 + 1e-15)
            elif kind == "alpha":
                assert hi + ALPHA_FLOOR <= (lo + ALPHA_FLOOR) * (1 + tolerance) * (1 + 1e-15)
        # rtt: within the tolerance of the shortest round without rtt of any member
        shortest = min(c.round_time_s - rtt for m in group.members for c in real[m]
                       for rtt in [c.round_time_s - c.verify_latency_s
                                   - c.k / c.draft_tok_s])
        assert group.hi[0] - group.lo[0] <= tolerance * shortest * (1 + 1e-12)
        assert group.spread() <= tolerance * (1 + 1e-9)


def test_grouping_does_not_depend_on_the_order_of_the_file() -> None:
    rng = random.Random(7)
    base = base_spec(rng)
    lines = pushes(rng, 80)
    shuffled = lines[:]
    random.Random(1).shuffle(shuffled)
    a, b = grouped(base, lines, 0.6), grouped(base, shuffled, 0.6)
    assert [(x.name, x.members) for x in a.groups] == [(x.name, x.members) for x in b.groups]
    assert 1 < len(a.groups) < 80


def test_identical_devices_share_one_pool_at_tolerance_zero() -> None:
    rng = random.Random(3)
    base = base_spec(rng)
    one = pushes(rng, 1)[0]
    lines = [{**one, "device": f"copy{i}"} for i in range(25)]
    g = grouped(base, lines, 0.0)
    assert len(g.groups) == 1 and g.groups[0].count == 25


# --- the bound holds against the ungrouped fleet ---------------------------------


def _better(sense: str, a: float, b: float, tol: float) -> bool:
    """a is at least as good as b, up to tol relative."""
    slack = tol * max(1.0, abs(a), abs(b))
    return a >= b - slack if sense == "maximize" else a <= b + slack


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), tolerance=st.sampled_from([0.05, 0.2, 0.5]),
       objective=st.sampled_from(OBJECTIVES))
def test_the_ungrouped_optimum_lies_between_the_two_grouped_ones(
        seed: int, tolerance: float, objective: dict[str, str]) -> None:
    rng = random.Random(seed)
    base = base_spec(rng, objective)
    g = grouped(base, pushes(rng, rng.randint(3, 9)), tolerance)
    assert not uncertified(base)
    devices = Spec.model_validate(device_spec(base, g.devices))
    cons, opt = both_sides(base, g)
    metric = base.objective.terms()[0].metric
    sense = base.objective.terms()[0].sense
    b = grouping_bound(cons, opt, real=lambda plan: real_value(base, g, plan, metric))
    truth = solve(devices, diagnose=False)
    if b.status["optimistic"] == "infeasible":
        assert truth.status is Status.infeasible  # the relaxation admits every real plan
        return
    assert b.status["optimistic"] == "optimal"
    if truth.status is Status.infeasible:
        assert b.status["conservative"] == "infeasible"  # its plans are real plans
        return
    assert truth.status is Status.optimal and truth.objective_value is not None
    best = truth.objective_value
    assert b.optimistic is not None
    assert _better(sense, b.optimistic, best, SOLVER), (b, best)
    if b.status["conservative"] == "infeasible":
        return
    assert b.plan is not None and b.conservative is not None and b.devices is not None
    assert b.loss is not None
    # the plan of the pools, given to the real devices: feasible, and valued on their
    # own numbers between what the pools promised and the real optimum
    plan = member_plan(g, b.plan)
    problem = build_problem(devices, prune=False)
    cands = {(problem.pools[c.pool].name, c.config): c for c in problem.candidates}
    assignment = [(cands[(device, config)], 1) for device, config in plan.items()]
    assert len(assignment) == sum(x.count for x in g.groups)
    assert not violated_constraints(problem, assignment, SOLVER)
    on_devices = metric_value(fleet_metrics(assignment), metric)
    assert math.isclose(on_devices, b.devices, rel_tol=1e-9, abs_tol=1e-12)
    assert _better(sense, b.devices, b.conservative, REL)
    assert _better(sense, best, b.devices, SOLVER)
    real_loss = (1 - b.devices / best) if sense == "maximize" else (b.devices / best - 1)
    assert real_loss <= b.loss + SOLVER


def test_the_bound_refuses_what_it_cannot_certify() -> None:
    rng = random.Random(11)
    base = base_spec(rng, {"minimize": "cost"})
    assert uncertified(base)
    g = grouped(base, pushes(rng, 5), 0.1)
    cons, opt = both_sides(base, g)
    with pytest.raises(ValueError, match="minimize cost"):
        grouping_bound(cons, opt)


def test_limits_that_grow_with_speed_are_tightened_and_loosened_by_the_factor() -> None:
    rng = random.Random(5)
    base = base_spec(rng)
    data = base.model_dump(mode="json", exclude_none=True)
    data["constraints"]["fleet"] = {"max_cost_usd_per_hour": 10.0, "max_power_w": 50.0,
                                    "max_energy_j_per_tok": 1.0,
                                    "min_cost_efficiency_tok_per_usd": 1e6}
    data["targets"][0]["capacity_tok_s"] = 100.0
    g = grouped(Spec.model_validate(data), pushes(rng, 20), 0.2)
    f = factors(base, g)
    assert f.round_time > 1 and f.goodput > 1
    cons = json.loads(json.dumps(data))
    adjusted(cons, f, "conservative")
    fleet = cons["constraints"]["fleet"]
    assert math.isclose(fleet["max_cost_usd_per_hour"], 10.0 / f.round_time)
    assert math.isclose(fleet["max_energy_j_per_tok"], 1.0 / f.goodput)
    assert math.isclose(fleet["min_cost_efficiency_tok_per_usd"], 1e6 * f.round_time)
    assert math.isclose(cons["targets"][0]["capacity_tok_s"], 100.0 / f.round_time)
    assert fleet["max_power_w"] == 50.0  # monotone: no change
    opt = json.loads(json.dumps(data))
    adjusted(opt, f, "optimistic")
    assert math.isclose(opt["constraints"]["fleet"]["max_cost_usd_per_hour"],
                        10.0 * f.round_time)


# --- reading the devices file -----------------------------------------------------


def test_csv_and_jsonl_of_the_same_devices_group_alike() -> None:
    rng = random.Random(2)
    base = base_spec(rng)
    lines = pushes(rng, 40)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["device", "kind", "rtt_s", "draft", "quant", "draft_tok_s", "power_w",
                "target", "k2", "k3", "k4"])
    for d in lines:
        for p in d["profiles"]:
            t = p["acceptance"]["big"]
            w.writerow([d["device"], d["kind"], d["rtt_s"], p["draft"], p["quant"],
                        p["draft_tok_s"], p.get("power_w", ""), "big", t["2"], t["3"], t["4"]])
    a = grouped(base, lines, 0.05)
    b = group_devices(read_devices(buf.getvalue(), "devices.csv", base), base, 0.05)
    assert [(x.name, x.members, list(x.lo)) for x in a.groups] == \
        [(x.name, x.members, list(x.lo)) for x in b.groups]


def test_a_device_that_pushes_again_replaces_what_it_pushed_before() -> None:
    rng = random.Random(4)
    base = base_spec(rng)
    first = pushes(rng, 1)[0]
    newer = json.loads(json.dumps(first))
    newer["rtt_s"] = 0.5
    newer["profiles"] = newer["profiles"][:1]
    newer["profiles"][0]["draft_tok_s"] = 99.0
    devices = read_devices(jsonl([first, pushes(rng, 1)[0] | {"device": "other"}, newer]),
                           "d.jsonl", base)
    assert devices.devices == 2
    g = group_devices(devices, base, 0.0)
    mine = next(x for x in g.groups if x.members == (first["device"],))
    assert mine.lo[0] == 0.5
    assert mine.lo[1] == 99.0  # the newer speed of the variant it pushed again
    assert len(mine.layout.variants) == len(first["profiles"])  # the others kept


def test_a_bad_push_replaced_by_a_later_one_is_still_refused_at_its_line() -> None:
    rng = random.Random(10)
    base = base_spec(rng)
    first, other = pushes(rng, 2)
    newer = json.loads(json.dumps(first))
    first["profiles"][0]["draft_tok_s"] = -3.0
    with pytest.raises(DevicesInputError) as exc:
        read_devices(jsonl([first, other, newer]), "d.jsonl", base)
    assert [(i.line, i.path) for i in exc.value.issues] == [
        (1, ("profiles", 0, "draft_tok_s"))]


def test_what_the_base_spec_cannot_use_is_left_out_and_counted() -> None:
    rng = random.Random(6)
    base = base_spec(rng)
    line = pushes(rng, 1)[0]
    line["profiles"].append({"draft": "unknown", "quant": "q4", "draft_tok_s": 3.0,
                             "acceptance": {"big": {"2": 0.5}}})
    line["profiles"][0]["acceptance"]["other-target"] = {"2": 0.5}
    line["profiles"][0]["acceptance"]["big"]["9"] = 0.1  # outside search.k: dropped
    devices = read_devices(jsonl([line]), "d.jsonl", base)
    assert devices.ignored == {"draft 'unknown', which the base spec lacks": 1,
                               "acceptance for target 'other-target', which the base spec "
                               "lacks": 1}
    layout = next(iter(devices.blocks))
    assert all(ks == (2, 3, 4) for v in layout.variants for _, ks in v.acceptance)


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d["profiles"][0].update(draft_tok_s=True), "draft_tok_s: expected a number"),
    (lambda d: d["profiles"][0].update(draft_tok_s=-1.0), "draft_tok_s: -1.0 is outside"),
    (lambda d: d["profiles"][1]["acceptance"]["big"].update({"2": 1.5}), "1.5 is outside"),
    (lambda d: d["profiles"][0]["acceptance"]["big"].update({"two": 0.5}), "K must be"),
    (lambda d: d.update(colour="red"), "unknown key 'colour'"),
    (lambda d: d.update(kind="phone"), "memory_gb is missing"),
    (lambda d: d.update(rtt_s="fast"), "rtt_s: expected a number, got str"),
    (lambda d: d["profiles"].append(d["profiles"][0]), "given twice in one push"),
    (lambda d: d.update(device="a\x1bb"), "control character"),
])
def test_a_bad_push_is_located(edit: Any, expected: str) -> None:
    rng = random.Random(8)
    base = base_spec(rng)
    lines = pushes(rng, 3)
    edit(lines[1])
    with pytest.raises(DevicesInputError) as exc:
        read_devices(jsonl(lines), "fleet.jsonl", base)
    assert exc.value.exit_code == 4
    issue = exc.value.issues[0]
    assert (issue.file, issue.line) == ("fleet.jsonl", 2)
    assert expected in issue.format()




JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                 st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5),
                 st.lists(st.integers(), max_size=2), st.dictionaries(
                     st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_change_to_a_push_is_read_or_refused_at_its_line(data: st.DataObject) -> None:
    """Whatever one value of a push becomes (or a key it gains), the file is read or
    refused with the push's line: never another exception; and what the fast path
    takes, the value-by-value check finds nothing wrong with."""
    from configspec_opt.device_profiles import _Base, _explain

    rng = random.Random(data.draw(st.integers(0, 100)))
    base = base_spec(rng)
    lines = pushes(rng, 3)
    push = lines[1]
    where = data.draw(st.sampled_from(value_paths(push)[1:]))
    holder: Any = push
    for part in where[:-1]:
        holder = holder[part]
    if data.draw(st.booleans()) or not isinstance(holder, dict):
        holder[where[-1]] = data.draw(JUNK)
    else:
        holder[data.draw(st.text(min_size=1, max_size=4))] = data.draw(JUNK)
    try:
        read_devices(jsonl(lines), "f.jsonl", base)
    except DevicesInputError as exc:
        assert {i.line for i in exc.issues} == {2}, exc.issues
        return
    _explain(json.loads(json.dumps(push)), _Base(base))  # raises nothing


def test_not_json_is_located_with_its_column() -> None:
    base = base_spec(random.Random(1))
    with pytest.raises(DevicesInputError) as exc:
        read_devices('{"device": "a", "kind": NaN}\n', "f.jsonl", base)
    issue = exc.value.issues[0]
    assert (issue.line, issue.column) == (1, 25) and "not JSON" in issue.message


# --- the command --------------------------------------------------------------------


def test_group_writes_a_fleet_that_loads_with_its_spread(tmp_path: Path) -> None:
    rng = random.Random(9)
    base = base_spec(rng, {"maximize": "goodput"})
    (tmp_path / "base.yaml").write_text(fleet_text(
        base.model_dump(mode="json", exclude_none=True), ["base"]))
    lines = pushes(rng, 50)
    (tmp_path / "devices.jsonl").write_text(jsonl(lines))
    r = invoke("group", tmp_path / "devices.jsonl", "--spec", tmp_path / "base.yaml",
               "--out", tmp_path / "fleet.yaml", "--members", tmp_path / "members.csv", "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    text = (tmp_path / "fleet.yaml").read_text()
    fleet = parse_spec(text, name="fleet.yaml").spec
    assert len(fleet.devices) == report["pools"]
    assert sum(d.count for d in fleet.devices) == 50
    for p in fleet.profiles:
        assert p.provenance is not None
        spread = p.provenance["grouped"]
        assert spread["optimistic"]["draft_tok_s"] >= p.draft_tok_s
    rows = list(csv.reader(io.StringIO((tmp_path / "members.csv").read_text())))
    assert rows[0] == ["device", "pool"]
    assert sorted(r[0] for r in rows[1:]) == sorted(x["device"] for x in lines)
    assert {r[1] for r in rows[1:]} == {d.name for d in fleet.devices}
    bound = report["bound"]
    if bound["loss"] is not None:
        assert 0.0 <= bound["loss"] <= report["factors"]["goodput"] - 1 + SOLVER


def test_members_file_lists_every_device_once() -> None:
    rng = random.Random(12)
    base = base_spec(rng)
    g = grouped(base, pushes(rng, 30), 0.1)
    rows = list(csv.reader(io.StringIO(members_csv(g))))[1:]
    assert len(rows) == 30 and len({r[0] for r in rows}) == 30


def test_group_refuses_a_missing_file_and_a_bad_tolerance(tmp_path: Path) -> None:
    base = base_spec(random.Random(1))
    (tmp_path / "base.yaml").write_text(fleet_text(
        base.model_dump(mode="json", exclude_none=True), ["base"]))
    r = invoke("group", tmp_path / "none.jsonl", "--spec", tmp_path / "base.yaml",
               "--no-bound")
    assert r.exit_code == 4 and "no such file" in r.stderr
    r = invoke("group", tmp_path / "none.jsonl", "--spec", tmp_path / "base.yaml",
               "--tolerance", "2")
    assert r.exit_code == 2 and "--tolerance" in r.stderr
