"""validate, evaluate, solve, pareto, schema: thin wrappers over configspec_opt.operations."""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from configspec_opt.cli.app import app, emit_json, hard_stop, out, progress, user_errors
from configspec_opt.cli.options import (
    Bounds,
    GapOpt,
    JitterOpt,
    JsonOpt,
    PointsOpt,
    TopOpt,
    time_limit_option,
)
from configspec_opt.errors import UsageError
from configspec_opt.loader import load_spec
from configspec_opt.operations import (
    SortKey,
    evaluate_report,
    pareto_report,
    solve_report,
    spec_schema,
    validate_report,
)
from configspec_opt.report import print_candidates, print_pareto, print_solution
from configspec_opt.spec_files import PROFILES_ROOT_HELP, write_through
from configspec_opt.vcs.check import template_note
from configspec_opt.what_if_report import print_sensitivity

SpecArg = Annotated[Path, typer.Argument(
    help=f"Deployment spec (YAML or JSON, a regular file). {PROFILES_ROOT_HELP}",
    show_default=False)]
DeviceOpt = Annotated[list[str] | None, typer.Option(
    "--device", "-d", help="Only these pools (repeatable).")]


@app.command()
def validate(
    spec: SpecArg,
    as_json: JsonOpt = False,
    strict: Annotated[bool, typer.Option(
        "--strict", help="A pool without candidates makes the spec invalid (exit 2), "
        "as in `configspec check`.")] = False,
) -> None:
    """Check a spec: syntax, types, unknown keys, references. Exit 2 when invalid.

    Also warns, with file:line, about every pool without candidates and every
    profile that can never be used (draft too big for memory_gb, no target of its
    family, no acceptance for any K in search.k), saying why.
    """
    with user_errors(as_json):
        loaded = load_spec(spec)
        note = template_note(loaded, str(spec))
        if note and not as_json:
            _print_template(note)
        summary = validate_report(loaded, strict=strict)
        if as_json:
            emit_json({**summary, "warnings": [*([note] if note else []),
                                               *summary["warnings"]]})
            return
        out.print(f"{spec}: valid ({summary['pools']} pools, {summary['devices']} devices, "
                  f"{summary['candidates']} candidates, {summary['candidates_meeting_slo']} "
                  "meet the per-device SLOs)", markup=False, soft_wrap=True)
        _print_warnings(summary["warnings"])


def _print_template(note: str) -> None:
    """A template's note, first: what it lacks is expected, not a mistake."""
    out.print(f"note: {note}", markup=False, soft_wrap=True)


def _print_warnings(warnings: list[str]) -> None:
    for w in warnings:
        out.print(f"warning: {w}", markup=False, soft_wrap=True)


@app.command()
def evaluate(
    spec: SpecArg,
    sort: Annotated[SortKey, typer.Option(help="Order of the rows.")] = SortKey.goodput,
    device: DeviceOpt = None,
    top: TopOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Metrics (Eq. 1-3) of every candidate configuration, per device."""
    with user_errors(as_json):
        loaded = load_spec(spec)
        data = evaluate_report(loaded, sort=sort, devices=device, top=top)
        if as_json:
            emit_json(data)
        else:
            print_candidates(out, data["candidates"],
                             f"{loaded.spec.name}: candidates by {sort.value}")
            _print_warnings(data["warnings"])


@app.command()
def solve(
    spec: SpecArg,
    as_json: JsonOpt = False,
    objective: Annotated[str | None, typer.Option(
        "--objective",
        help="Override the spec's objective, e.g. max:goodput, min:energy, cost_efficiency.")]
    = None,
    device: DeviceOpt = None,
    time_limit: Annotated[float | None, time_limit_option("Seconds for the whole solve.")]
    = None,
    gap: GapOpt = 1e-9,
    explain: Annotated[bool | None, typer.Option(
        "--explain/--no-explain",
        help="Runner-up and binding constraint per pool (default: on for small fleets).")]
    = None,
    tie_break: Annotated[bool, typer.Option(
        "--tie-break/--no-tie-break", help="Resolve equal optima in the documented order.")]
    = True,
    prune: Annotated[bool, typer.Option(
        "--prune/--no-prune", help="Remove provably dominated candidates first.")] = True,
    load_blind: Annotated[bool, typer.Option(
        "--load-blind", help="Ignore batched verifiers' load: fixed verify_latency_s and "
        "per-token price, as a model without load would pick.")] = False,
    simulate: Annotated[bool, typer.Option(
        "--simulate", help="Also play each batched verifier of the answer forward step by "
        "step (the devices, the measured T(n, K), replicas): goodput next to the model's.")]
    = False,
    jitter: JitterOpt = 0.2,
    sensitivity: Annotated[bool, typer.Option(
        "--sensitivity", help="Also each parameter's breaking point (how far acceptance, "
        "draft speed, rtt, verifier latency, power, price may move before the plan breaks "
        "a constraint) and the objective's elasticity to it (docs/robust.md).")] = False,
    robust: Annotated[float | None, typer.Option(
        "--robust", help="A plan that holds for every alpha(K) within its measured interval "
        "at this confidence level, e.g. 0.95 (sets robust.level; docs/robust.md).",
        parser=Bounds(min=0.5, max=0.999), show_default=False)] = None,
) -> None:
    """Choose (draft, quant, K, target) for every pool. Exit 0 solved, 1 infeasible, 2 invalid."""
    with user_errors(as_json):
        loaded = load_spec(spec)
        note = template_note(loaded, str(spec))
        if note and not as_json:
            _print_template(note)
        with progress.status("solving ..."), hard_stop(time_limit, as_json):
            data = solve_report(loaded, objective=objective, devices=device,
                                time_limit=time_limit, gap=gap, explain=explain,
                                tie_break=tie_break, prune=prune, load_blind=load_blind,
                                simulate=jitter if simulate else None,
                                sensitivity=sensitivity, robust=robust)
        if as_json:
            if note:
                data["warnings"] = [note, *data.get("warnings", [])]
            emit_json(data)
        else:
            print_solution(out, data)
            if "sensitivity" in data:
                print_sensitivity(out, data["sensitivity"])
        if data["status"] not in ("optimal", "feasible"):
            raise typer.Exit(1)


class Format(str, Enum):
    """Output formats of `configspec pareto`."""

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
    points: PointsOpt = 50,
    fmt: Annotated[Format | None, typer.Option("--format", help="table (default), json or csv.")]
    = None,
    as_json: JsonOpt = False,
    time_limit: Annotated[float | None, time_limit_option(
        "Seconds for the whole front (a front cut short says so).")] = None,
) -> None:
    """Non-dominated trade-offs between two fleet metrics (epsilon-constraint)."""
    if as_json and fmt not in (None, Format.json):
        with user_errors():
            raise UsageError(f"--json and --format {fmt.value} ask for two outputs: give one")
    fmt = Format.json if as_json else (fmt or Format.table)
    with user_errors(fmt is Format.json):
        with progress.status(f"computing the {x} / {y} front ..."), \
                hard_stop(time_limit, fmt is Format.json):
            data = pareto_report(load_spec(spec), x=x, y=y, devices=device, points=points,
                                 time_limit=time_limit)
        if fmt is Format.json:
            emit_json(data)
        elif fmt is Format.csv:
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow([data["x"]["metric"], data["y"]["metric"], "assignment"])
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
    lock: Annotated[bool, typer.Option(
        "--lock", help="The schema of a .lock file instead (schema/configspec-lock.schema.json)."
    )] = False,
) -> None:
    """JSON Schema of the spec, for editors (yaml-language-server) and tools."""
    if lock:
        from configspec_opt.vcs.lock_schema import lock_json_schema

        text = json.dumps(lock_json_schema(), indent=2) + "\n"
    else:
        text = json.dumps(spec_schema(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        with user_errors():
            write_through(output, text)
