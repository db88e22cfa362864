"""Opening the database: URL resolution and the SQLite settings that make 2xx durable.

SQLite runs in WAL mode with `synchronous=FULL`: a commit is on disk (WAL
fsynced) before the API answers, so neither a killed process nor a power
cut loses an acknowledged write.  Every transaction starts with
`BEGIN IMMEDIATE`, taking the write lock up front, because a deferred
transaction that upgrades from read to write can fail with "database is
locked" without waiting for `busy_timeout`.  Other databases (PostgreSQL)
get none of this and need none of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

APP_NAME = "configspec-opt"
DB_FILENAME = "configspec.sqlite3"
BUSY_TIMEOUT_MS = 30_000


def default_db_url() -> str:
    """A SQLite file in the user's data directory (created on first use)."""
    from platformdirs import user_data_path

    return f"sqlite:///{user_data_path(APP_NAME, appauthor=False) / DB_FILENAME}"


def resolve_db_url(value: str | None) -> str:
    """`--db` takes a SQLAlchemy URL or, for convenience, a plain file path (SQLite)."""
    if not value:
        return default_db_url()
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def describe_url(url: str) -> str:
    """The URL with any password hidden, for logs and /healthz."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """An engine for `url`; on SQLite, with the durability settings of the module docstring.

    Raises ValueError for an in-memory SQLite database; creates the file's
    directory when missing.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        raise ValueError("an in-memory SQLite database would lose every job on restart; "
                         "give a file")
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False,
                                              "timeout": BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    finally:
        cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit, for routes that answer after it."""
    return sessionmaker(engine, expire_on_commit=False)
