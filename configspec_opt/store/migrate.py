"""Schema migrations, run in-process: the server upgrades its database at start-up.

Alembic is configured in code (no alembic.ini to ship or to find): the
script location is this package's `migrations/` folder, so an installed
wheel and an editable checkout migrate the same way.  Migrating an
up-to-date database is a no-op, so every start may call `upgrade`.

    python -m configspec_opt.store.migrate revision -m "add x" --db URL
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    """Alembic's configuration built in code, pointing at this package's migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


MIGRATION_LOCK = 0x636F6E66  # PostgreSQL advisory lock key ("conf")
LOCKED_RETRY_S = 60.0


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate in one transaction, one process at a time.

    Replicas starting together queue on a lock taken before Alembic reads
    the current revision, so the first migrates and the others find the
    database at head: PostgreSQL's `pg_advisory_xact_lock` (released with
    the transaction), SQLite's write lock (`BEGIN IMMEDIATE`, engine.py,
    waiting up to its busy timeout).

    On SQLite, foreign keys are off while it runs (batch mode rebuilds a table
    by dropping it, which they would refuse while other rows point at it) and
    checked before the commit: a migration that broke a reference rolls back.
    The pragma only works outside a transaction, hence on the raw connection.

    SQLite can answer "database is locked" at once, without waiting, while
    several connections open a new file together (setting WAL mode, or a
    read lock that cannot become a write lock); those are retried for up to
    `LOCKED_RETRY_S`.
    """
    deadline = time.monotonic() + LOCKED_RETRY_S
    pause = 0.05
    while True:
        try:
            _upgrade(engine, revision)
            return
        except OperationalError as exc:
            if engine.dialect.name != "sqlite" or "locked" not in str(exc) or \
                    time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(1.0, pause * 2)


def _upgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        raw = conn.connection.dbapi_connection
        if sqlite and raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration left {len(broken)} broken references "
                                           f"(first: {tuple(broken[0])}); rolled back")
        finally:
            if sqlite and raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this installation knows; a database past it is from a newer version."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def main() -> None:  # pragma: no cover - developer tool
    """Developer tool for migrations (see the module docstring); not part of the CLI."""
    from configspec_opt.store.engine import make_engine, resolve_db_url

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("action", choices=["upgrade", "revision", "current"])
    ap.add_argument("-m", "--message", default="")
    ap.add_argument("--db", default=None)
    ap.add_argument("--autogenerate", action="store_true")
    args = ap.parse_args()
    engine = make_engine(resolve_db_url(args.db))
    if args.action == "upgrade":
        upgrade(engine)
    elif args.action == "current":
        print(current_revision(engine))
    else:
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.revision(cfg, message=args.message, autogenerate=args.autogenerate)


if __name__ == "__main__":  # pragma: no cover
    main()
