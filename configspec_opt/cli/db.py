"""`configspec db prune`: the service's retention policy, applied once by hand.

The server applies the same policy at start-up and hourly (`serve
--keep-days/--keep-results`); this command is for a server that runs with
retention off, for a one-off clean-up with a shorter horizon, or for a
database no server is using.  It migrates the database first (a no-op when
up to date), as the server does, so it never meets a schema it does not
know.  SQLAlchemy is imported inside the command: the CLI stays fast and an
install without the server extra gets exit 3 with the pip command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from configspec_opt.cli.app import (
    app,
    emit_json,
    out,
    require_db_driver,
    require_extra,
    user_errors,
)
from configspec_opt.cli.options import MAX_DAYS, Bounds, DbOpt, JsonOpt
from configspec_opt.errors import ServerUnavailableError, UsageError

db_app = typer.Typer(name="db", help="The HTTP service's database (retention).",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command()
def prune(
    older_than: Annotated[float, typer.Option(
        "--older-than", parser=Bounds(min=0, max=MAX_DAYS, unit="days"),
        help="Delete finished jobs and results older than this many days (0: all of them).")]
    = 30.0,
    keep: Annotated[int | None, typer.Option(
        "--keep", min=0, help="Besides, keep at most this many results and finished jobs "
        "(the newest).")] = None,
    db: DbOpt = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Count what would go, delete nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete old results, finished jobs and the specs only they used (never profiles)."""
    with user_errors(as_json):
        require_extra(ServerUnavailableError, "`configspec db`", "sqlalchemy", "alembic",
                      "platformdirs")
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import SQLAlchemyError

        from configspec_opt.store.database import Database
        from configspec_opt.store.engine import describe_url, resolve_db_url
        from configspec_opt.store.retention import prune as prune_store

        url = resolve_db_url(db)
        require_db_driver(url, "`configspec db prune`")
        shown = describe_url(url)
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database and \
                not parsed.database.startswith("file:") and parsed.database != ":memory:" \
                and not Path(parsed.database).expanduser().is_file():
            raise UsageError(f"no database at {parsed.database} (nothing to prune)")
        try:
            database = Database(url)
        except (ValueError, SQLAlchemyError, OSError) as exc:
            raise UsageError(f"cannot open database {shown}: {exc}") from None
        try:
            database.migrate()
            pruned = database.call(lambda s: prune_store(
                s, older_than_days=older_than, keep=keep, dry_run=dry_run))
        except (SQLAlchemyError, OSError) as exc:
            raise UsageError(f"cannot prune database {shown}: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        finally:
            database.close()
    if as_json:
        emit_json({"database": shown, "dry_run": dry_run, "older_than_days": older_than,
                   "keep": keep, **pruned.to_dict()})
        return
    verb = "would delete" if dry_run else "deleted"
    out.print(f"{shown}: {verb} {pruned.results} result(s), {pruned.jobs} finished job(s), "
              f"{pruned.specs} spec(s)", markup=False)
