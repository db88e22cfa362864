"""The database as the service holds it: an engine, a session factory, migrations.

`transaction()` is the only way in: one transaction, committed when the
block ends, so a route that returns 2xx has already committed.  `run`
executes such a block in a worker thread, for async routes: SQLite's fsync
on commit must not stall the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from configspec_opt.store.engine import describe_url, make_engine, session_factory

T = TypeVar("T")


class Database:
    """One database for the service: its engine and the only way to open a transaction.

    Building it opens no connection, but refuses an in-memory SQLite URL
    (ValueError), which would lose every job on restart.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        self._sessions: sessionmaker[Session] = session_factory(self.engine)

    def migrate(self) -> None:
        """Bring the schema to the newest revision; safe to call on every start (see `upgrade`)."""
        from configspec_opt.store.migrate import upgrade

        upgrade(self.engine)

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, for logs."""
        return describe_url(self.url)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions() as s, s.begin():
            yield s

    def call(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` in its own transaction and return what it returns."""
        with self.transaction() as s:
            return fn(s)

    async def run(self, fn: Callable[[Session], T]) -> T:
        """`call` in a worker thread, so async routes never wait on a commit's fsync."""
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.call, fn)

    def close(self) -> None:
        """Close the pooled connections; the object must not be used afterwards."""
        self.engine.dispose()
