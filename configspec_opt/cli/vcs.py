"""lock, check, diff, fmt, plot: specs kept in version control, and their figures."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from configspec_opt.cli.app import app, emit_json, err, out, progress, user_errors, write_shown
from configspec_opt.cli.options import JsonOpt, PointsOpt
from configspec_opt.errors import (
    ConfigspecError,
    OutputError,
    PlotUnavailableError,
    SpecError,
    UsageError,
)
from configspec_opt.plots.data import Kind


def _report_error(path: Path, exc: ConfigspecError) -> None:
    text = str(exc) if isinstance(exc, SpecError) else f"{path}: {exc}"
    err.print(f"[red]error:[/red] {escape(text)}", markup=True)


@app.command()
def lock(
    specs: Annotated[list[Path], typer.Argument(help="Specs to lock.", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Solve each spec for its own objective and write SPEC.lock beside it.

    The lock holds the assignments with their metrics, the objective, the solver
    status and the SHA-256 of the spec's files: the same spec always gives the
    same bytes. Exit 0 locked, 1 not solvable (no lock written), 2 invalid spec,
    4 the lock cannot be written (read-only directory, full disk).

    profiles_from files must lie in the spec's git work tree (or its directory);
    CONFIGSPEC_PROFILES_ROOT=DIR[:DIR...] allows more directories.
    """
    from configspec_opt.loader import load_spec
    from configspec_opt.vcs.lock import SOLVED, write_lock
    from solvers.adapter import require_solver  # lazy: start-up

    with user_errors(as_json):
        require_solver()
    results: list[dict[str, Any]] = []
    code = 0
    for spec in specs:
        try:
            written = write_lock(load_spec(spec), spec)
        except ConfigspecError as exc:
            code = max(code, exc.exit_code)
            results.append({"spec": str(spec), "status": "error", "error": str(exc)})
            if not as_json:
                _report_error(spec, exc)
            continue
        status = written.data["status"]
        solved = status in SOLVED
        results.append({"spec": str(spec), "lock": str(written.path), "status": status,
                        "written": solved, "changed": written.changed})
        if not solved:
            code = max(code, 1)
            if not as_json:
                err.print(f"[red]error:[/red] {escape(str(spec))}: {status}, no lock written "
                          f"(`configspec solve {escape(str(spec))}` says why)", markup=True)
        elif not as_json:
            pools = len({a["device"] for a in written.data["assignments"]})
            what = "wrote" if written.changed else "unchanged:"
            out.print(f"{what} {written.path} ({status}, {pools} pools, "
                      f"{written.data['objective']['sense']} "
                      f"{written.data['objective']['metric']})", markup=False, soft_wrap=True)
    if as_json:
        emit_json({"locks": results})
    if code:
        raise typer.Exit(code)


@app.command()
def check(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Specs, locks or directories (searched recursively). Default: the current "
        "directory.", show_default=False)] = None,
    resolve: Annotated[bool, typer.Option(
        "--resolve", help="Also solve every spec again and compare with its lock "
        "(needs the solver; default: compare hashes only).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Every spec valid and its lock present and up to date. Exit 1 with one line per failure.

    Specs are validated as `configspec validate --strict` does (a pool without
    candidates is an invalid spec). Without --resolve a lock is up to date when the
    SHA-256 of the spec and of its profiles_from files equals the one in the lock (no
    solver needed). A YAML spec with the line `# configspec: template` is validated,
    needs no lock or candidates, and is reported as skipped.

    Only regular files are read (a FIFO or a device in a directory is not a spec), and
    profiles_from files must lie in the spec's git work tree (or its directory):
    CONFIGSPEC_PROFILES_ROOT=DIR[:DIR...] allows more directories.
    """
    from configspec_opt.vcs.check import check_spec, discover

    with user_errors(as_json):
        if resolve:
            from solvers.adapter import require_solver  # lazy: start-up

            require_solver()
        specs, empty = discover(paths or [Path(".")])
        results = [check_spec(s, resolve=resolve) for s in specs]
    failures = [r for r in results if not r.ok]
    empty_lines = [f"{d}: no specs found" for d in empty if paths]
    if as_json:
        emit_json({"ok": not failures and not empty_lines, "resolve": resolve,
                   "results": [r.to_dict() for r in results],
                   "errors": empty_lines})
    else:
        for r in results:
            if r.ok:
                out.print(r.line(), markup=False, soft_wrap=True)
        for line in [*(r.line() for r in failures), *empty_lines]:
            err.print(line, markup=False, soft_wrap=True)
        if not results and not paths:
            err.print("no specs found under the current directory")
        mode = "re-solved" if resolve else "hash"
        summary = f"{len(results)} spec{'s' if len(results) != 1 else ''} checked ({mode})"
        skipped = sum(r.status == "skipped" for r in results)
        if skipped:
            summary += f", {skipped} template{'s' if skipped != 1 else ''} skipped"
        if failures:
            summary += f", {len(failures)} failed"
        (err if failures or empty_lines else out).print(summary, markup=False, soft_wrap=True)
    if failures or empty_lines:
        raise typer.Exit(1)


def _fmt_num(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 1000 or isinstance(x, int) else f"{x:.4g}"


def _fmt_delta(d: float | None, rel: float | None) -> str:
    if d is None:
        return ""
    text = ("+" if d >= 0 else "-") + _fmt_num(abs(d))
    return text + (f" ({rel:+.1%})" if rel is not None else "")


@app.command()
def diff(
    old: Annotated[str, typer.Argument(
        help="Spec, lock, or either at a git revision: specs/fleet.yaml@HEAD~1.",
        show_default=False)],
    new: Annotated[str, typer.Argument(
        help="Spec, lock, or either at a git revision.", show_default=False)],
    as_json: JsonOpt = False,
    exit_code: Annotated[bool, typer.Option(
        "--exit-code", help="Exit 1 when any pool's assignment changed (like git diff).")]
    = False,
    as_html: Annotated[bool, typer.Option(
        "--html", help="A self-contained HTML page on stdout, the two sides side by side.")]
    = False,
) -> None:
    """What changes in the assignments and fleet metrics between two specs or revisions.

    Specs are solved for their own objective; .lock files are read as written.
    """
    from configspec_opt.vcs.diff import diff_decisions, load_side

    with user_errors(as_json):
        if as_json and as_html:
            raise UsageError("--json and --html both choose the output: give one")
        from solvers.adapter import require_solver  # lazy: start-up

        sides = []
        for text in (old, new):
            if not text.partition("@")[0].endswith(".lock"):
                require_solver()
            sides.append(load_side(text))
        result = diff_decisions(*sides)
    if as_json:
        emit_json(result.to_dict())
    elif as_html:
        from configspec_opt.report_html import diff_html

        sys.stdout.write(diff_html(result))
    else:
        _print_diff(result)
    if exit_code and result.assignments_changed:
        raise typer.Exit(1)


def _pair(entries: list[dict[str, Any]], key: str) -> str:
    return "+".join(_fmt_num(e[key]) for e in entries) or "-"


def _print_diff(d: Any) -> None:
    from configspec_opt.vcs.diff import describe_change

    for tag, side in (("old", d.old), ("new", d.new)):
        obj = side.data.get("objective") or {}
        value = obj.get("value")
        out.print(f"{tag}: {side.label}: {side.data.get('status')}, {obj.get('sense')} "
                  f"{obj.get('metric')}" + (f" = {_fmt_num(value)}" if value is not None
                                             else ""), markup=False, soft_wrap=True)
    if d.objective_changed:
        out.print("[yellow]the objective changed[/yellow]", markup=True)
    shown = [p for p in d.pools if p.change != "unchanged"]
    colour = {"configuration": "yellow", "metrics": "cyan", "added": "green", "removed": "red"}
    for p in shown:
        out.print(f"[{colour[p.change]}]{p.change:>13}[/]  {escape(describe_change(p))}",
                  soft_wrap=True, markup=True)
        numbers = [f"{label} {_pair(p.old, key)} -> {_pair(p.new, key)} {unit}"
                   for key, label, unit in (("goodput_tok_s", "goodput", "tok/s"),
                                            ("energy_j_per_tok", "energy", "J/tok"))]
        out.print(" " * 15 + ", ".join(numbers), markup=False, soft_wrap=True)
    unchanged = len(d.pools) - len(shown)
    if unchanged:
        out.print(f"{unchanged} pool{'s' if unchanged != 1 else ''} unchanged")
    changed_metrics = [m for m in d.fleet if m.changed]
    if changed_metrics:
        t = Table(title="fleet")
        for col in ("metric", "before", "after", "change"):
            t.add_column(col, justify="left" if col == "metric" else "right")
        for m in changed_metrics:
            label = m.label + (f" ({m.unit})" if m.unit else "")
            t.add_row(label, _fmt_num(m.old), _fmt_num(m.new),
                      _fmt_delta(m.delta, m.relative))
        out.print(t)
    if not d.changed:
        out.print("no change in assignments or fleet metrics")


@app.command()
def fmt(
    files: Annotated[list[Path], typer.Argument(
        help="Specs to format in place, or directories (searched recursively, as `check` "
        "does).", show_default=False)],
    check: Annotated[bool, typer.Option(
        "--check", help="Change nothing; exit 1 if any file would be reformatted.")] = False,
    show_diff: Annotated[bool, typer.Option(
        "--diff", help="Change nothing; print what would change as a unified diff and "
        "exit 1 if any file would be reformatted.")] = False,
) -> None:
    """Canonical layout for specs, comments kept (ruamel.yaml round trip).

    Exit 0 when every file is (now) formatted; 1 with --check or --diff when a file
    would be reformatted (nothing is written); 2 for a file that cannot be read or parsed;
    4 for one that cannot be written. A symlinked spec stays a link: its target is
    rewritten (atomically).
    """
    from configspec_opt.vcs.check import discover
    from configspec_opt.vcs.fmt import format_file

    if any(f.is_dir() for f in files):
        found, empty = discover(files)
        for d in empty:
            err.print(f"{d}: no specs found", markup=False)
        files = [f for f in files if not f.is_dir()] + [
            f for f in found if not any(f == g for g in files)]
    dry_run = check or show_diff
    failed = 0
    changed: list[Path] = []
    for path in files:
        try:
            result = format_file(path, write=not dry_run)
        except ConfigspecError as exc:
            _report_error(path, exc)
            failed = max(failed, exc.exit_code)
            continue
        if result.changed:
            changed.append(path)
            if show_diff:
                write_shown("".join(difflib.unified_diff(
                    result.original.splitlines(keepends=True),
                    result.formatted.splitlines(keepends=True),
                    f"{path} (before)", f"{path} (formatted)")))
            verb = "would reformat" if dry_run else "reformatted"
            (err if dry_run else out).print(f"{verb} {path}", markup=False, soft_wrap=True)
    if not changed and not failed:
        n = len(files)
        out.print(f"{n} file{'s' if n != 1 else ''} already formatted")
    if failed:
        raise typer.Exit(failed)
    if dry_run and changed:
        raise typer.Exit(1)


KIND_HELP = ("goodput-k: goodput vs K per device and draft (paper Fig. 2); goodput: goodput "
             "per draft and device (Fig. 3); cost: cost efficiency per draft (Fig. 4); energy: "
             "energy per token (Fig. 5); pareto: speed-energy trade-off of single configurations "
             "with iso-power curves (Fig. 6); front: the fleet front of `configspec pareto` "
             "(--x, --y), each point a whole fleet assignment.")


def _iso_levels(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        levels = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--iso-power takes watts separated by commas, e.g. 15,20,40 "
                         f"(got '{text}')") from None
    if not levels or any(not v > 0 for v in levels):
        raise UsageError("--iso-power levels must be positive watts")
    return levels


def _render_front(loaded: Any, x: str, y: str, device: list[str] | None, points: int,
                  outputs: list[Path]) -> Any:
    from configspec_opt.metric_registry import metric_def
    from configspec_opt.operations import pareto_report
    from configspec_opt.plots.draw import render_front
    from configspec_opt.spec import Metric

    with progress.status(f"computing the {x} / {y} front ..."):
        front = pareto_report(loaded, x=x, y=y, devices=device, points=points)
    units = (metric_def(Metric(front["x"]["metric"])).unit,
             metric_def(Metric(front["y"]["metric"])).unit)
    return render_front(front, units, outputs)


@app.command()
def plot(
    spec: Annotated[Path, typer.Argument(help="Deployment spec (YAML or JSON).",
                                         show_default=False)],
    kind: Annotated[Kind, typer.Option("--kind", help=KIND_HELP, show_default=False)],
    output: Annotated[list[Path] | None, typer.Option(
        "--output", "-o", help="Image to write, .png or .svg (repeatable). "
        "Default: SPEC-KIND.png in the current directory.")] = None,
    k: Annotated[int | None, typer.Option(
        "--at-k", min=1, help="Bars (goodput, cost, energy) at this K, as the paper's K=5; "
        "default: each bar at its best K.")] = None,
    objective: Annotated[list[str] | None, typer.Option(
        "--objective", help="Mark the solver's choice for this objective "
        "(repeatable, e.g. --objective max:goodput --objective min:energy). "
        "Default: the spec's objective.")]
    = None,
    device: Annotated[list[str] | None, typer.Option(
        "--device", "-d", help="Only these pools (repeatable).")] = None,
    iso_power: Annotated[str | None, typer.Option(
        help="pareto: iso-power curves at these watts, e.g. 15,20,40,60 "
        "(default: 1-2-5 steps across the data).")] = None,
    x: Annotated[str, typer.Option(help="front: first metric, as `configspec pareto --x`.")]
    = "goodput",
    y: Annotated[str, typer.Option(help="front: second metric, as `configspec pareto --y`.")]
    = "cost",
    points: PointsOpt = 20,
) -> None:
    """Draw one of the ConfigSpec paper's figures for a spec, the solver's choices marked."""
    with user_errors():
        from configspec_opt.loader import load_spec
        from configspec_opt.operations import parse_term, select_pools
        from configspec_opt.plots.data import collect
        from configspec_opt.spec import Objective

        levels = _iso_levels(iso_power)
        try:
            from configspec_opt.plots.draw import render
        except ImportError as exc:
            raise PlotUnavailableError(f"`configspec plot` needs the 'plot' extra "
                                       f"({exc.name or exc} is not installed)") from None
        loaded = load_spec(spec)
        only = select_pools(loaded.spec, device)
        objectives: list[Objective | None] = [None]
        if objective:
            terms = [parse_term(o) for o in objective]
            objectives = [Objective.model_validate({t.sense: t.metric}) for t in terms]
        outputs = output or [Path(f"{spec.stem}-{kind.value}.png")]
        data = None if kind is Kind.front else collect(loaded.spec, objectives, only=only)
        try:
            if data is None:
                rendered = _render_front(loaded, x, y, device, points, outputs)
            else:
                rendered = render(data, kind, outputs, k=k, iso_power=levels)
        except OSError as exc:
            raise OutputError(f"cannot write {', '.join(map(str, outputs))}: "
                              f"{exc.strerror or type(exc).__name__}") from None
        for choice in data.choices if data is not None else []:
            if not choice.candidates:
                err.print(f"note: nothing marked for {choice.label}: {choice.note}",
                          markup=False, soft_wrap=True)
        for p in rendered.paths:
            out.print(f"wrote {p}", markup=False, soft_wrap=True)
