"""Random public result ids; the token fingerprint that wrote each profile.

Results were addressed by their sequential primary key, so anyone could
read every result by counting.  They keep that key (jobs refer to it) and
gain `public_id`, 32 random hex digits, which is all clients see; rows from
before this revision get one each here and stay readable under it (a job's
`result_url` shows it).  Profiles gain `token_fingerprint` (the first 12 hex
digits of SHA-256 of the bearer token that wrote them); older rows have
none.

Making `public_id` NOT NULL rebuilds the results table on SQLite (batch
mode) while `jobs.result_id` points at it; `migrate.upgrade` turns foreign
keys off for that and checks every reference before it commits.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

results = sa.table("results", sa.column("id", sa.Integer()),
                   sa.column("public_id", sa.String(32)))


def upgrade() -> None:
    """Give every result, old ones included, a random public id; add the writer's fingerprint."""
    conn = op.get_bind()
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("public_id", sa.String(32), nullable=True))
    ids = conn.execute(sa.select(results.c.id).where(results.c.public_id.is_(None))).scalars()
    for rid in list(ids):
        conn.execute(results.update().where(results.c.id == rid)
                     .values(public_id=secrets.token_hex(16)))
    with op.batch_alter_table("results") as batch:
        batch.alter_column("public_id", existing_type=sa.String(32), nullable=False)
        batch.create_index("ix_results_public_id", ["public_id"], unique=True)
    with op.batch_alter_table("profiles") as batch:
        batch.add_column(sa.Column("token_fingerprint", sa.String(12), nullable=True))


def downgrade() -> None:
    """Drop public ids and fingerprints; result URLs handed out since then stop working."""
    with op.batch_alter_table("profiles") as batch:
        batch.drop_column("token_fingerprint")
    with op.batch_alter_table("results") as batch:
        batch.drop_index("ix_results_public_id")
        batch.drop_column("public_id")
