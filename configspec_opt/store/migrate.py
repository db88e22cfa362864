"""Schema migrations, run in-process: the server upgrades its database at start-up.

Alembic is configured in code (no alembic.ini to ship or to find): the
script location is this package's `migrations/` folder, so an installed
wheel and an editable checkout migrate the same way.  Migrating an
up-to-date database is a no-op, so every start may call `upgrade`.

    python -m configspec_opt.store.migrate revision -m "add x" --db URL
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def main() -> None:  # pragma: no cover - developer tool
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
