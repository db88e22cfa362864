"""Observations of a running fleet: reporters' last counters, totals, a window of recent buckets.

`observed_series` holds each reporter's last cumulative counters per
configuration (to count what a report adds), `observed_totals` what every
configuration added since the store began (read by /metrics), and
`observed_window` the same per time bucket, pruned to the drift window
(store/observations.py), on which drift is judged.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = ("device", "target", "draft", "quant", "k")


def _key() -> list[sa.Column[Any]]:
    return [sa.Column(name, sa.String(200), nullable=False) if name != "k"
            else sa.Column("k", sa.Integer(), nullable=False) for name in KEY]


def _sums() -> list[sa.Column[Any]]:
    big = ("reports", "drafts", "draft_tokens", "accepted_tokens")
    return [*(sa.Column(n, sa.BigInteger(), nullable=False) for n in big),
            *(c for r in ("draft_tok_s", "rtt_s", "verify_step_s")
              for c in (sa.Column(f"{r}_sum", sa.Float(), nullable=False),
                        sa.Column(f"{r}_n", sa.BigInteger(), nullable=False)))]


def upgrade() -> None:
    """Create the three observation tables."""
    op.create_table(
        "observed_series",
        sa.Column("source", sa.String(200), nullable=False), *_key(),
        sa.Column("drafts", sa.BigInteger(), nullable=False),
        sa.Column("draft_tokens", sa.BigInteger(), nullable=False),
        sa.Column("accepted_tokens", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", *KEY),
    )
    op.create_table(
        "observed_totals", *_key(), *_sums(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*KEY),
    )
    op.create_table(
        "observed_window", *_key(), *_sums(),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*KEY, "bucket"),
    )
    op.create_index("ix_observed_window_bucket", "observed_window", ["bucket"])


def downgrade() -> None:
    """Drop the observation tables; stored observations are lost."""
    op.drop_index("ix_observed_window_bucket", table_name="observed_window")
    op.drop_table("observed_window")
    op.drop_table("observed_totals")
    op.drop_table("observed_series")
