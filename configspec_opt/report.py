"""Results as JSON-ready dicts (CLI --json, HTTP) and as rich tables for people.

One dict per result kind, shared by every front end, so the CLI and the
HTTP API can never disagree on a number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from configspec_opt import tails
from configspec_opt.candidates import Candidate
from configspec_opt.fleet import FleetMetrics
from configspec_opt.metric_registry import POOL_COLUMNS, REGISTRY, TAILS, metric_def
from configspec_opt.metrics import mean_acceptance_length
from configspec_opt.results import (
    ConstraintJSON,
    ObjectiveJSON,
    ParetoJSON,
    SimulatedJSON,
    SolveJSON,
    SolverJSON,
    TermJSON,
    VerifierJSON,
    explanation_summary,
)
from configspec_opt.spec import Metric, Objective, Term
from configspec_opt.verifier_check import SimulatedVerifier
from configspec_opt.verifiers import VerifierState

if TYPE_CHECKING:
    from configspec_opt.explain import PoolExplanation
    from solvers.pareto import ParetoFront
    from solvers.solve import Solution


def _num(x: float | None) -> float | None:
    if x is None or math.isnan(x) or math.isinf(x):
        return None
    return float(x)


def candidate_dict(c: Candidate) -> dict[str, Any]:
    """One configuration of one pool as a JSON row (ratios that cannot be computed are null)."""
    return {
        "device": c.device, "target": c.target, "draft": c.draft, "quant": c.quant, "k": c.k,
        "alpha": c.alpha, "draft_tok_s": c.draft_tok_s, "round_time_s": c.round_time_s,
        "goodput_tok_s": c.goodput_tok_s,
        "cost_tok_per_usd": _num(c.cost_efficiency_tok_per_usd),
        "energy_j_per_tok": _num(c.energy_j_per_tok),
        "verifier_load_tok_s": c.verifier_load_tok_s,
        "cost_usd_per_hour": c.cost_usd_per_hour,
        "power_w": _num(c.power_w),
        "mean_acceptance_length": mean_acceptance_length(c.k, c.alpha),
        **({"verify_latency_s": c.verify_latency_s} if c.replica_priced else {}),
    }


def fleet_dict(fm: FleetMetrics | None, verifiers: Sequence[VerifierState] = (),
               simulated: Sequence[SimulatedVerifier] = ()) -> dict[str, Any] | None:
    """Fleet figures; batched verifiers as they settle (replicas, load, latency per K), and
    as the step simulation plays them where it was asked for."""
    if fm is None:
        return None
    out = {k: (_num(v) if isinstance(v, float) else v) for k, v in fm.to_dict().items()}
    sims = {s.target: s for s in simulated}
    if verifiers:
        rows: list[VerifierJSON] = []
        for v in verifiers:
            row: VerifierJSON = {
                "target": v.target, "replicas": v.replicas,
                "in_flight_per_replica": v.in_flight_per_replica,
                "latency_s_by_k": {str(k): t for k, t in v.latency_s_by_k.items()},
                "cost_usd_per_hour": v.cost_usd_per_hour}
            if v.target in sims:
                row["simulated"] = simulated_dict(sims[v.target])
            rows.append(row)
        out["verifiers"] = rows
    return out


def simulated_dict(s: SimulatedVerifier) -> SimulatedJSON:
    """One verifier's step simulation: goodput of its devices (sum) and what it assumed."""
    return {"devices": s.devices, "goodput_tok_s": s.simulated_goodput_tok_s,
            "goodput_range_tok_s": [s.low_tok_s, s.high_tok_s],
            "model_goodput_tok_s": s.model_goodput_tok_s, "model_error": s.model_error,
            "mean_step": s.mean_step, "jitter": s.jitter, "seeds": s.seeds,
            "rounds": s.rounds}


def objective_dict(objective: Objective, value: float | None) -> ObjectiveJSON:
    """The objective as asked and the value reached."""
    first = objective.terms()[0]
    out: ObjectiveJSON = {"sense": first.sense, "metric": first.metric.value,
                           "value": _num(value)}
    if objective.mode != "single":
        out["mode"] = objective.mode
        out["terms"] = [_term(t, objective.mode) for t in objective.terms()]
    return out


def _term(t: Term, mode: str) -> TermJSON:
    out: TermJSON = {"sense": t.sense, "metric": t.metric.value}
    if mode == "weighted":
        out["weight"] = t.weight
    else:
        out["tolerance"] = t.tolerance
    return out


def solution_dict(
    sol: Solution,
    *,
    spec_sha256: str | None = None,
    explanations: list[PoolExplanation] | None = None,
    warnings: Iterable[str] = (),
    simulated: Sequence[SimulatedVerifier] = (),
) -> SolveJSON:
    """The whole `solve --json` answer of a solution (the CLI, HTTP and locks read it)."""
    by_pool: dict[str, int] = {}
    for c, _ in sol.assignment:
        by_pool[c.device] = by_pool.get(c.device, 0) + 1
    pct = tails.percentiles([c for c, _ in sol.assignment])
    assignments = [{"device": c.device, "count": n, **candidate_dict(c), **p,
                    "split": by_pool[c.device] > 1}
                   for (c, n), p in zip(sol.assignment, pct, strict=True)]
    fleet = fleet_dict(sol.fleet, sol.verifiers, simulated)
    if fleet is not None and sol.assignment:
        fleet.update(fleet_tails(sol.assignment))
    out: SolveJSON = {
        "status": sol.status.value,
        "objective": objective_dict(sol.objective, sol.objective_value),
        "assignments": assignments,
        "fleet": fleet,
        "solver": _solver_dict(sol),
    }
    if sol.assignment:
        out["constraints"] = constraint_usage(sol)
    split = sorted(d for d, n in by_pool.items() if n > 1)
    if split:
        out["split_pools"] = split
    if sol.message:
        out["message"] = sol.message
    if sol.diagnosis is not None:
        out["diagnosis"] = sol.diagnosis.to_dict()
    if explanations is not None:
        out["explain"] = [e.to_dict() for e in explanations]
    if spec_sha256:
        out["spec_sha256"] = spec_sha256
    warnings = list(warnings)
    if warnings:
        out["warnings"] = warnings
    return out


def fleet_tails(assignment: Sequence[tuple[Candidate, int]]) -> dict[str, float | None]:
    """Percentiles over every request of the fleet (devices mixed by request rate)."""
    return tails.fleet_percentiles(assignment)


def _solver_dict(sol: Solution) -> SolverJSON:
    out: SolverJSON = {
        "name": "highs",
        "time_s": sol.time_s,
        "build_s": sol.build_s,
        "gap": _num(sol.gap),
        "proven_optimal": sol.proven_optimal,
        "proven_within": sol.proven_within,
        "tie_break": sol.tie_break,
        "candidates": len(sol.problem.candidates),
        "pruned_dominated": sol.problem.pruned,
        "stages": [{"what": s.what, "termination": s.termination, "time_s": s.time_s,
                    "gap": s.gap} for s in sol.stages],
    }
    if sol.load_levels:
        out["load_levels"] = sol.load_levels
    return out


def constraint_usage(sol: Solution) -> list[ConstraintJSON]:
    """Each fleet constraint: its limit, the value reached, and whether it binds."""
    replicas = {v.target: v.replicas for v in sol.verifiers}
    return [u.to_dict() for fam in sol.problem.families
            for u in fam.usage(sol.problem, sol.assignment, replicas)]


def pareto_dict(front: ParetoFront) -> ParetoJSON:
    """The `pareto --json` answer: every non-dominated point with its assignment."""
    out: ParetoJSON = {
        "x": {"sense": front.x.sense, "metric": front.x.metric.value},
        "y": {"sense": front.y.sense, "metric": front.y.metric.value},
        "complete": front.complete,
        "time_s": front.time_s,
        "points": [{"x": p.x, "y": p.y, "fleet": fleet_dict(p.fleet),
                    "assignments": [{"device": c.device, "count": n, "target": c.target,
                                     "draft": c.draft, "quant": c.quant, "k": c.k}
                                    for c, n in p.assignment]}
                   for p in front.points],
    }
    if front.message:
        out["message"] = front.message
    return out


# --- tables -------------------------------------------------------------


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if abs(x) >= 1e5:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def print_solution(console: Console, data: SolveJSON) -> None:
    """The answer for people: assignment table, why, fleet figures, binding constraints."""
    status = data["status"]
    obj = data["objective"]
    what = ", ".join(f"{t['sense']} {t['metric']}" for t in obj.get("terms", [obj]))
    head = f"[bold]{status}[/bold]  " + (f"{obj['mode']}: " if "mode" in obj else "") + what
    if obj.get("value") is not None:
        head += f" = {_fmt(obj['value'], 6)}"
    console.print(head, markup=True)
    rob = data.get("robust")
    if rob is not None:
        box_ = ", ".join([f"{k} ±{v:.0%}" for k, v in rob["margins"].items()] + (
            [f"{rob['measured_intervals']} measured alpha intervals at {rob['level']:.0%}"]
            if rob.get("level") is not None else []))
        price = "n/a" if rob["price"] is None else f"{rob['price']:.2%}"
        console.print(f"robust over {box_}: nominal optimum {_fmt(rob['nominal_optimum'], 6)} "
                      f"({rob['nominal_status']}), price of robustness {price}; constraint "
                      "values below are their worst over the box", markup=False)
    if data["assignments"]:
        multi_target = len({a["target"] for a in data["assignments"]}) > 1
        t = Table()
        cols = ["device", "count", "draft", "quant", "K"] + (["target"] if multi_target else [])
        for col in [*cols, *(d.column for d in POOL_COLUMNS)]:
            text = col in cols[:4] or col == "target"
            # names fold at 80 columns; numbers never wrap or lose digits
            t.add_column(col, justify="left" if text else "right", overflow="fold",
                         no_wrap=not text)
        for a in data["assignments"]:
            t.add_row(a["device"] + (" (split)" if a["split"] else ""), str(a["count"]),
                      a["draft"], a["quant"], str(a["k"]),
                      *([a["target"]] if multi_target else []),
                      *(_fmt(a[str(d.candidate_key)]) for d in POOL_COLUMNS))
        console.print(t)
        if not multi_target:
            console.print(f"target: {data['assignments'][0]['target']}")
    for e in data.get("explain", []):
        console.print(f"why {e['device']}: {explanation_summary(e)}", markup=False)
    fleet = data.get("fleet")
    if fleet:
        console.print("fleet: " + ", ".join(
            f"{d.label} {_fmt(fleet[d.key], 6 if d.metric is Metric.goodput else 4)} {d.unit}"
            for d in REGISTRY), markup=False)
    if fleet and fleet.get("tpot_p95_s") is not None:
        parts = [f"{kind.upper()} p50/p95/p99 " + "/".join(
            f"{fleet[d.key] * 1e3:.1f}" for d in TAILS if d.kind == kind) + " ms"
            for kind in ("tpot", "ttft")]
        console.print("fleet over requests: " + ", ".join(parts), markup=False)
    for v in (fleet or {}).get("verifiers", []):
        lat = ", ".join(f"K={k} {t * 1e3:.0f} ms" for k, t in v["latency_s_by_k"].items())
        console.print(f"verifier {v['target']}: {v['replicas']} replicas, "
                      f"{v['in_flight_per_replica']:.2f} requests in flight per replica, "
                      f"{lat}, {_fmt(v['cost_usd_per_hour'])} $/h", markup=False)
        sim = v.get("simulated")
        if sim:
            lo, hi = sim["goodput_range_tok_s"]
            console.print(
                f"  simulated step by step ({sim['devices']} devices, drafting "
                f"+-{sim['jitter']:.0%}, {sim['seeds']} start phases): "
                f"{_fmt(sim['goodput_tok_s'], 6)} tok/s ({_fmt(lo, 6)}-{_fmt(hi, 6)}), "
                f"mean step {sim['mean_step']:.1f}; the model says "
                f"{_fmt(sim['model_goodput_tok_s'], 6)} tok/s ({sim['model_error']:+.1%})",
                markup=False)
    binding = [c["constraint"] for c in data.get("constraints", []) if c["binding"]]
    if binding:
        console.print("binding: " + ", ".join(binding), markup=False)
    if data.get("split_pools"):
        console.print("[yellow]pools split across configurations:[/yellow] "
                      + escape(", ".join(data["split_pools"])), markup=True)
    s = data["solver"]
    console.print(f"solver: highs, {s['time_s']:.3f} s, gap {_fmt(s['gap'])}, "
                  f"proven optimal (gap <= {s['proven_within']:g}): {s['proven_optimal']}, "
                  f"candidates {s['candidates']} ({s['pruned_dominated']} dominated removed)")
    diag = data.get("diagnosis")
    if diag:
        console.print(f"[red]{escape(diag['message'])}[/red]", markup=True)
        for st in diag["structural"]:
            console.print(f"  pool {st['device']}: " + "; ".join(st["reasons"]), markup=False)
        for r in diag["relaxations"]:
            console.print(f"  relax {r['constraint']}: {r['limit']:g} -> {r['relax_to']:.6g} "
                          f"{r['unit']}", markup=False)
    if data.get("message"):
        console.print(data["message"], markup=False)
    for w in data.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", markup=True)


def print_candidates(console: Console, rows: list[dict[str, Any]], title: str) -> None:
    """Readable at 80 columns: light borders, short headers, one target column only if
    there are several targets; names fold, numbers never lose a digit."""
    multi_target = len({r["target"] for r in rows}) > 1
    t = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False,
              collapse_padding=True)
    cols = [("device", "device"), ("target", "target"), ("draft", "draft"), ("quant", "quant"),
            ("K", "k"), ("α", "alpha"),
            *((d.column, str(d.candidate_key)) for d in (*POOL_COLUMNS, metric_def(Metric.cost))),
            ("SLO", "slo")]
    if not multi_target:
        cols.remove(("target", "target"))
    numeric = {"k", "alpha", *(str(d.candidate_key) for d in (*POOL_COLUMNS,
                                                              metric_def(Metric.cost)))}
    for name, key in cols:
        t.add_column(name, justify="right" if key in numeric else "left",
                     no_wrap=key in numeric, overflow="fold")
    for r in rows:
        t.add_row(*[(_fmt(r[k]) if isinstance(r[k], float) or r[k] is None else str(r[k]))
                    for _, k in cols])
    console.print(t)
    if rows and not multi_target:
        console.print(f"target: {rows[0]['target']}", markup=False)
    measured = [r for r in rows if r.get("alpha_ci95")]
    if measured:
        widest = max(measured, key=lambda r: r["alpha_ci95"][1] - r["alpha_ci95"][0])
        console.print(f"α measured with a 95% interval on {len(measured)} of {len(rows)} rows "
                      f"(alpha_ci95 in --json); widest: {widest['device']} {widest['draft']} "
                      f"{widest['quant']} K={widest['k']} {widest['alpha_ci95'][0]:.3f}-"
                      f"{widest['alpha_ci95'][1]:.3f}", markup=False)


def print_pareto(console: Console, data: ParetoJSON) -> None:
    """The front as a table, with each point's assignment."""
    t = Table(title=f"Pareto front: {data['x']['sense']} {data['x']['metric']} vs "
                    f"{data['y']['sense']} {data['y']['metric']}")
    for axis in ("x", "y"):
        name = data[axis]["metric"]
        t.add_column(f"{name} {metric_def(Metric(name)).unit}", justify="right", no_wrap=True)
    t.add_column("assignment (pool x devices: draft quant K)", overflow="fold")
    for p in data["points"]:
        t.add_row(_fmt(p["x"], 6), _fmt(p["y"], 6), "; ".join(
            f"{a['device']} x {a['count']}: {a['draft']} {a['quant']} K={a['k']}"
            for a in p["assignments"]))
    console.print(t)
    if data.get("message"):
        console.print(data["message"], style="yellow", markup=False)
    elif not data["complete"]:
        console.print("[yellow]the front has more points than --points: "
                      "sampled evenly between its two ends[/yellow]", markup=True)
