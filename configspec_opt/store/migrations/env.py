"""Alembic environment: always driven by `configspec_opt.store.migrate` with a connection.

There is no alembic.ini: the server migrates itself at start-up, and a
developer adding a revision runs `python -m configspec_opt.store.migrate
revision -m "..." --db URL`, which fills in the same configuration.
"""

from __future__ import annotations

from alembic import context

from configspec_opt.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through configspec_opt.store.migrate")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
