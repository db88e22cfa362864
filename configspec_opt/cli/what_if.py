"""what-if: a lock or plan re-evaluated under changed parameters, without solving again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from configspec_opt.cli.app import app, emit_json, err, out, progress, user_errors
from configspec_opt.cli.options import JsonOpt, time_limit_option
from configspec_opt.errors import UsageError
from configspec_opt.loader import LoadedSpec, load_spec
from configspec_opt.spec_files import PROFILES_ROOT_HELP
from configspec_opt.vcs.lock import changed_sources, lock_path, read_lock
from configspec_opt.what_if import PARAMETERS, Change, Plan
from configspec_opt.what_if_report import print_what_if, what_if_report

_PARAMS = "; ".join(f"{p.name}: {p.what}" for p in PARAMETERS.values())


def _plan(loaded: LoadedSpec, spec: Path, lock: Path | None,
          time_limit: float | None) -> tuple[Plan, list[str]]:
    """The lock named, else SPEC.lock when there is one, else the spec's own solve."""
    notes: list[str] = []
    where = lock if lock is not None else lock_path(spec)
    if lock is not None or where.is_file():
        data = read_lock(where, spec=loaded.spec)
        if changed_sources(data, loaded, spec.name):
            notes.append(f"{where} was written for another version of the spec: its plan "
                         "is evaluated as it stands")
        return Plan.from_result(data, str(where)), notes
    from configspec_opt.operations import solve_report  # lazy: the solver

    with progress.status("solving the spec for its plan ..."):
        result: dict[str, Any] = dict(solve_report(loaded, time_limit=time_limit,
                                                   explain=False))
    if result["status"] not in ("optimal", "feasible"):
        raise UsageError(f"the spec has no plan to re-evaluate (solve: {result['status']})")
    notes.append(f"no lock: the plan is the spec's own solve ({result['status']})")
    return Plan.from_result(result, "solve"), notes


@app.command("what-if")
def what_if(
    spec: Annotated[Path, typer.Argument(
        help=f"Deployment spec (YAML or JSON). {PROFILES_ROOT_HELP}", show_default=False)],
    change: Annotated[list[str] | None, typer.Option(
        "--set", help=f"A change, PARAMETER*FACTOR or PARAMETER+AMOUNT (repeatable), e.g. "
        f"rtt_s*1.5 acceptance*0.9. Parameters: {_PARAMS}.")] = None,
    lock: Annotated[Path | None, typer.Option(
        "--lock", help="The plan to re-evaluate (default: SPEC.lock beside the spec, "
        "else the spec's own solve).", show_default=False)] = None,
    breaking: Annotated[bool, typer.Option(
        "--breaking-points/--no-breaking-points",
        help="Also each parameter's breaking point and the objective's elasticity to it.")]
    = True,
    time_limit: Annotated[float | None, time_limit_option(
        "Seconds for the solve when there is no lock.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-evaluate a plan under changed numbers: figures, SLOs and fleet limits, no re-solve.

    Exit 0 when every constraint holds under the changes, 1 when one breaks.
    """
    with user_errors(as_json):
        changes = [Change.parse(c) for c in change or []]
        loaded = load_spec(spec)
        plan, notes = _plan(loaded, spec, lock, time_limit)
        with progress.status("evaluating ..."):
            data = what_if_report(loaded.spec, plan, changes, breaking=breaking)
        data["notes"] = notes
        if as_json:
            emit_json(data)
        else:
            for n in notes:
                err.print(f"note: {n}", markup=False)
            print_what_if(out, data)
        if not data["holds"]:
            raise typer.Exit(1)
