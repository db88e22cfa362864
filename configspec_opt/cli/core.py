"""validate, evaluate, solve, pareto, schema."""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from configspec_opt.candidates import slo_violations
from configspec_opt.cli.app import app, emit_json, out, user_errors
from configspec_opt.errors import UsageError
from configspec_opt.loader import LoadedSpec, load_spec
from configspec_opt.problem import build_problem
from configspec_opt.report import (
    candidate_dict,
    print_candidates,
    print_pareto,
    print_solution,
)
from configspec_opt.spec import Metric, Objective, Spec, Term

SpecArg = Annotated[Path, typer.Argument(help="Deployment spec (YAML or JSON).",
                                         show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
DeviceOpt = Annotated[list[str] | None, typer.Option(
    "--device", "-d", help="Only these pools (repeatable).")]

DEFAULT_SENSE = {Metric.goodput: "maximize", Metric.cost_efficiency: "maximize",
                 Metric.min_goodput: "maximize", Metric.energy: "minimize",
                 Metric.cost: "minimize", Metric.power: "minimize",
                 Metric.verifier_load: "minimize"}
SENSE_ALIASES = {"max": "maximize", "maximize": "maximize", "maximise": "maximize",
                 "min": "minimize", "minimize": "minimize", "minimise": "minimize"}


def parse_term(text: str) -> Term:
    """`goodput`, `max:goodput` or `minimize:energy`."""
    sense, _, name = text.rpartition(":")
    try:
        metric = Metric(name.strip())
    except ValueError:
        raise UsageError(f"unknown metric '{name}' (one of: "
                         f"{', '.join(m.value for m in Metric)})") from None
    if sense:
        if sense.strip().lower() not in SENSE_ALIASES:
            raise UsageError(f"unknown direction '{sense}' (max or min)")
        direction = SENSE_ALIASES[sense.strip().lower()]
    else:
        direction = DEFAULT_SENSE[metric]
    return Term.model_validate({direction: metric})


def _load(path: Path) -> LoadedSpec:
    return load_spec(path)


def _only(spec: Spec, devices: list[str] | None) -> set[str] | None:
    if not devices:
        return None
    known = {d.name for d in spec.devices}
    unknown = [d for d in devices if d not in known]
    if unknown:
        raise UsageError(f"unknown device {', '.join(unknown)} (known: {', '.join(known)})")
    return set(devices)


@app.command()
def validate(spec: SpecArg, as_json: JsonOpt = False) -> None:
    """Check a spec: syntax, types, unknown keys, references. Exit 2 when invalid."""
    with user_errors(as_json):
        loaded = _load(spec)
        problem = build_problem(loaded.spec, prune=False)
        summary = {
            "status": "valid", "name": loaded.spec.name, "spec_sha256": loaded.sha256,
            "pools": len(problem.pools), "devices": sum(p.count for p in problem.pools),
            "candidates": sum(len(pc.candidates) for pc in problem.structural),
            "candidates_meeting_slo": len(problem.candidates),
            "warnings": loaded.warnings,
        }
        if as_json:
            emit_json(summary)
            return
        out.print(f"{spec}: valid ({summary['pools']} pools, {summary['devices']} devices, "
                  f"{summary['candidates']} candidates, {summary['candidates_meeting_slo']} "
                  "meet the per-device SLOs)")
        for w in loaded.warnings:
            out.print(f"warning: {w}", markup=False)


class SortKey(str, Enum):
    goodput = "goodput"
    cost_efficiency = "cost_efficiency"
    energy = "energy"
    k = "k"


SORT_FIELDS = {SortKey.goodput: ("goodput_tok_s", True),
               SortKey.cost_efficiency: ("cost_tok_per_usd", True),
               SortKey.energy: ("energy_j_per_tok", False), SortKey.k: ("k", False)}


@app.command()
def evaluate(
    spec: SpecArg,
    sort: Annotated[SortKey, typer.Option(help="Order of the rows.")] = SortKey.goodput,
    device: DeviceOpt = None,
    top: Annotated[int | None, typer.Option(help="Only the best N rows per device.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Metrics (Eq. 1-3) of every candidate configuration, per device."""
    with user_errors(as_json):
        loaded = _load(spec)
        only = _only(loaded.spec, device)
        problem = build_problem(loaded.spec, only=only, prune=False, apply_slo=False)
        field, desc = SORT_FIELDS[sort]
        rows: list[dict[str, Any]] = []
        for pc in problem.structural:
            slo = loaded.spec.slo_for(pc.device)
            pool_rows = []
            for c in pc.candidates:
                d = candidate_dict(c)
                miss = slo_violations(c, slo)
                d["meets_slo"] = not miss
                d["slo"] = "ok" if not miss else "misses " + ",".join(miss)
                pool_rows.append(d)
            pool_rows.sort(key=lambda r: (r[field] is None,
                                          -(r[field] or 0) if desc else (r[field] or 0)))
            rows.extend(pool_rows[:top] if top else pool_rows)
        if as_json:
            emit_json({"candidates": rows})
        else:
            print_candidates(out, rows, f"{loaded.spec.name}: candidates by {sort.value}")


@app.command()
def solve(
    spec: SpecArg,
    as_json: JsonOpt = False,
    objective: Annotated[str | None, typer.Option(
        "--objective", "-o",
        help="Override the spec's objective, e.g. max:goodput, min:energy, cost_efficiency.")]
    = None,
    device: DeviceOpt = None,
    time_limit: Annotated[float | None, typer.Option(help="Seconds for the whole solve.")]
    = None,
    gap: Annotated[float, typer.Option(help="Relative MIP gap (default proves optimality).")]
    = 1e-9,
    explain: Annotated[bool | None, typer.Option(
        "--explain/--no-explain",
        help="Runner-up and binding constraint per pool (default: on for small fleets).")]
    = None,
    tie_break: Annotated[bool, typer.Option(
        "--tie-break/--no-tie-break", help="Resolve equal optima in the documented order.")]
    = True,
    prune: Annotated[bool, typer.Option(
        "--prune/--no-prune", help="Remove provably dominated candidates first.")] = True,
) -> None:
    """Choose (draft, quant, K, target) for every pool. Exit 0 solved, 1 infeasible, 2 invalid."""
    with user_errors(as_json):
        from configspec_opt.explain import explain as explain_pools
        from configspec_opt.report import solution_dict
        from solvers.adapter import SolverOptions, require_solver
        from solvers.solve import solve as run_solve
        from solvers.status import Status

        require_solver()
        loaded = _load(spec)
        obj = None
        if objective:
            t = parse_term(objective)
            obj = Objective.model_validate({t.sense: t.metric})
        only = _only(loaded.spec, device)
        _check_energy(loaded.spec, obj, only)
        options = SolverOptions(time_limit=time_limit, rel_gap=gap)
        sol = run_solve(loaded.spec, objective=obj, only=only,
                        options=options, tie_break=tie_break, prune=prune)
        if explain is None:
            explain = sum(len(pc.candidates) for pc in sol.problem.structural) <= 5000
        explanations = explain_pools(sol.problem, sol.objective, sol.assignment) \
            if explain and sol.assignment else None
        data = solution_dict(sol, spec_sha256=loaded.sha256, explanations=explanations,
                             warnings=loaded.warnings)
        if as_json:
            emit_json(data)
        else:
            print_solution(out, data)
        if sol.status in (Status.infeasible, Status.time_limit, Status.error):
            raise typer.Exit(1)


def _check_energy(spec: Spec, obj: Objective | None, only: set[str] | None) -> None:
    from configspec_opt.consistency import devices_without_power

    if obj is None or all(t.metric is not Metric.energy for t in obj.terms()):
        return
    missing = devices_without_power(spec, only)
    if missing:
        raise UsageError(f"energy is not available for {', '.join(missing)}: no power data "
                         "(use --device to leave those pools out, or add power_w)")


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command()
def pareto(
    spec: SpecArg,
    x: Annotated[str, typer.Option(help="First metric, e.g. goodput or max:goodput.")]
    = "goodput",
    y: Annotated[str, typer.Option(help="Second metric, e.g. energy or min:energy.")]
    = "energy",
    device: DeviceOpt = None,
    points: Annotated[int, typer.Option(help="At most this many points.")] = 50,
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")]
    = Format.table,
    as_json: JsonOpt = False,
) -> None:
    """Non-dominated trade-offs between two fleet metrics (epsilon-constraint)."""
    if as_json:
        fmt = Format.json
    with user_errors(fmt is Format.json):
        from configspec_opt.report import pareto_dict
        from solvers.adapter import require_solver
        from solvers.pareto import pareto as run_pareto

        require_solver()
        loaded = _load(spec)
        tx, ty = parse_term(x), parse_term(y)
        only = _only(loaded.spec, device)
        _check_energy(loaded.spec, Objective(lexicographic=[tx, ty]), only)
        front = run_pareto(loaded.spec, tx, ty, only=only,
                           max_points=points)
        data = pareto_dict(front)
        if fmt is Format.json:
            emit_json(data)
        elif fmt is Format.csv:
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow([tx.metric.value, ty.metric.value, "assignment"])
            for p in data["points"]:
                w.writerow([p["x"], p["y"], "; ".join(
                    f"{a['device']}x{a['count']}:{a['draft']}/{a['quant']}/K={a['k']}"
                    for a in p["assignments"])])
            sys.stdout.write(buf.getvalue())
        else:
            print_pareto(out, data)


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
) -> None:
    """JSON Schema of the spec, for editors (yaml-language-server) and tools."""
    text = json.dumps(spec_schema(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        from configspec_opt.files import atomic_write_text

        atomic_write_text(output, text)


def spec_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "configspec-opt deployment spec"
    return schema
