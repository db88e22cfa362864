"""`configspec observe FILE`: store what the fleet reports and check it against a lock.

The same reports, rules and store as `POST /v1/observations` (docs/drift.md):
FILE holds `{"observations": [...]}` (JSON or YAML), stored in the database
`configspec serve` uses (`--db`).  With `--lock`, the observations of the
drift window are checked against that lock's profiles; with `--replan`, the
drifted pools are re-planned and the answer shown as `configspec diff` shows
it.  Nothing but the observations is written: a proposal is for review.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from configspec_opt.cli.app import (
    app,
    emit_json,
    out,
    require_db_driver,
    require_extra,
    user_errors,
)
from configspec_opt.cli.options import Bounds, DbOpt, JsonOpt, time_limit_option
from configspec_opt.errors import ServerUnavailableError, SpecIssue, UsageError

STORE_MODULES = ("sqlalchemy", "alembic", "platformdirs")


def _read(path: Path) -> Any:
    from configspec_opt.drift.observations import ObservationsError, parse_observations
    from configspec_opt.spec_files import FileRefused, read_text_file

    try:
        text = read_text_file(path)
    except FileRefused as exc:
        raise ObservationsError([SpecIssue(f"cannot read: {exc}", file=str(path))]) from None
    return parse_observations(text, str(path))


def _store(url: str, batch: Any, window_s: float) -> tuple[Any, Any]:
    """Store the batch; the window's observations afterwards."""
    from sqlalchemy.exc import SQLAlchemyError

    from configspec_opt.drift.observations import CounterRefused, ObservationsError
    from configspec_opt.store import observations as stored
    from configspec_opt.store.database import Database
    from configspec_opt.store.engine import describe_url

    try:
        database = Database(url)
    except (ValueError, SQLAlchemyError, OSError) as exc:
        raise UsageError(f"cannot open database {describe_url(url)}: {exc}") from None
    try:
        database.migrate()
        done = database.call(lambda s: stored.ingest(
            s, batch.observations, bucket_s=max(1, int(window_s // 60))))
        observed = database.call(lambda s: stored.window(s, window_s=window_s))
    except CounterRefused as exc:
        raise exc.error(batch.source) from None
    except stored.Full as exc:
        raise ObservationsError([SpecIssue(str(exc), file=str(batch.source.name))]) from None
    except (SQLAlchemyError, OSError) as exc:
        raise UsageError(f"cannot store in database {describe_url(url)}: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    finally:
        database.close()
    return done, observed


def _show_check(c: Any) -> str:
    if c.observed is None:
        return f"{c.metric} not observed"
    seen = f"{c.observed:.4g}"
    if c.interval is not None:
        seen += f" [{c.interval[0]:.4g}, {c.interval[1]:.4g}]"
    return (f"{c.metric} {seen} vs {c.expected:.4g} (band {c.band[0]:.4g}-{c.band[1]:.4g}, "
            f"n {c.n}): {c.verdict}")


def _print_report(report: Any, watched: Any) -> None:
    if watched.stale:
        out.print(f"note: {', '.join(watched.stale)} changed since the lock was written; the "
                  "lock's numbers are the expectation", markup=False, soft_wrap=True)
    t = Table(title=f"drift against {watched.lock_path.name}")
    for col in ("pool", "configuration", "status", "checks"):
        t.add_column(col)
    for p in report.pools:
        checks = [_show_check(c) for c in p.checks if c.verdict != "not observed"]
        if p.note:
            checks.insert(0, p.note)
        t.add_row(p.device, f"{p.draft} {p.quant} K={p.k}", p.status,
                  "\n".join(checks) or "-")
    out.print(t)
    out.print("drifted: " + (", ".join(report.drifted) or "none"), markup=False)


@app.command()
def observe(
    file: Annotated[Path, typer.Argument(
        help="Reports as JSON or YAML: {\"observations\": [...]} (docs/drift.md).",
        show_default=False)],
    db: DbOpt = None,
    lock: Annotated[Path | None, typer.Option(
        "--lock", help="Check the stored observations against this lock (its spec beside "
        "it).")] = None,
    replan: Annotated[bool, typer.Option(
        "--replan", help="With --lock: propose a re-plan of the drifted pools, shown as "
        "`configspec diff` shows it (nothing is written).")] = False,
    window: Annotated[float, typer.Option(
        parser=Bounds(min=60, max=30 * 86_400, unit="seconds"),
        help="Judge drift on the observations of this many seconds.")] = 3600.0,
    time_limit: Annotated[float | None, time_limit_option(
        "Solver seconds of the re-plan.")] = None,
    exit_code: Annotated[bool, typer.Option(
        "--exit-code", help="Exit 1 when a pool drifted (like diff --exit-code).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Store observations of the running fleet; with --lock, say which pools drifted."""
    with user_errors(as_json):
        require_extra(ServerUnavailableError, "`configspec observe`", *STORE_MODULES)
        if replan and lock is None:
            raise UsageError("--replan needs --lock: the lock to re-plan against")
        if replan:
            from solvers.adapter import require_solver

            require_solver()
        from configspec_opt.store.engine import describe_url, resolve_db_url

        url = resolve_db_url(db)
        require_db_driver(url, "`configspec observe`")
        batch = _read(file)
        watched = None
        if lock is not None:  # before storing: a lock that cannot be read stores nothing
            from configspec_opt.drift.watch import load_watched

            watched = load_watched(lock)
        done, observed = _store(url, batch, window)
        report = proposal = None
        if watched is not None:
            from configspec_opt.drift.compare import Tolerances
            from configspec_opt.drift.watch import check_watched

            report = check_watched(watched, observed, Tolerances())
            if replan:
                from configspec_opt.drift.replan import propose

                proposal = propose(watched, report, time_limit=time_limit)
    stored_text = (f"stored {done.observations} observation(s) of {done.configurations} "
                   f"configuration(s) in {describe_url(url)}")
    if as_json:
        emit_json({"stored": done.observations, "configurations": done.configurations,
                   "series": done.series, "database": describe_url(url),
                   "lock": watched.describe() if watched is not None else None,
                   "drift": report.to_dict() if report is not None else None,
                   "proposal": proposal.to_dict() if proposal is not None else None})
    else:
        out.print(stored_text, markup=False, soft_wrap=True)
        if report is not None and watched is not None:
            _print_report(report, watched)
        if proposal is not None:
            from configspec_opt.cli.vcs import _print_diff

            out.print("[bold]proposed re-plan (not applied):[/bold]", markup=True)
            for line in proposal.changes:
                out.print(f"  {line}", markup=False, soft_wrap=True)
            _print_diff(proposal.diff)
        elif replan and report is not None:
            out.print("no pool drifted: nothing to re-plan", markup=False)
    if exit_code and report is not None and report.drifted:
        raise typer.Exit(1)
