"""Initial tables: specs, profiles, results, jobs.

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the four tables of the first release."""
    op.create_table(
        "specs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
    )
    op.create_table(
        "profiles",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("device", sa.String(200), nullable=False),
        sa.Column("draft", sa.String(200), nullable=False),
        sa.Column("quant", sa.String(200), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
    )
    op.create_index("ix_profiles_key", "profiles", ["device", "draft", "quant", "id"])
    op.create_table(
        "results",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("spec_sha256", sa.String(64), sa.ForeignKey("specs.sha256"), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_results_spec_sha256", "results", ["spec_sha256"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("spec_sha256", sa.String(64), sa.ForeignKey("specs.sha256"), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("stored_profiles", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), sa.ForeignKey("results.id"), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
    )
    op.create_index("ix_jobs_state_created", "jobs", ["state", "created_at"])


def downgrade() -> None:
    """Drop every table: all stored specs, profiles, results and jobs are lost."""
    op.drop_table("jobs")
    op.drop_table("results")
    op.drop_table("profiles")
    op.drop_table("specs")
