"""Job leases, results keyed by their job, idempotency keys for uploads.

Several servers and workers share one database: a job claimed by a worker
carries `lease_until` (renewed by the worker's heartbeat) and `worker`; a
job is taken again only once its lease has run out.  Jobs left `running`
by an older version have no lease, which counts as expired.
`results.job_id` (unique) makes a job's result impossible to write twice.
`idempotency_keys` holds the first answer to an upload sent with an
`Idempotency-Key` header.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add job leases, the one-result-per-job key and the idempotency key table."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("worker", sa.String(100), nullable=True))
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("job_id", sa.String(32), nullable=True))
        batch.create_index("ix_results_job_id", ["job_id"], unique=True)
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(12), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )


def downgrade() -> None:
    """Remove leases and idempotency keys; stored upload answers are lost."""
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("results") as batch:
        batch.drop_index("ix_results_job_id")
        batch.drop_column("job_id")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("worker")
        batch.drop_column("lease_until")
