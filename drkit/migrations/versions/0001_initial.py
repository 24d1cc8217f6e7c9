"""The catalog's first schema: recovery points, job runs, drill runs, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Timestamps are `timestamptz` on PostgreSQL; on SQLite they are UTC text written by
drkit.catalog.models.UTCDateTime. Do not import drkit.catalog.models here: a migration
describes the schema as it was on the day it was written.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "recovery_points",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("resource", sa.String(255), nullable=False),
        sa.Column("schedule", sa.String(255), nullable=False),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        _ts("created_at", nullable=False),
        sa.Column("region", sa.String(64), nullable=True),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        _ts("watermark_at", nullable=True),
        _json("manifest"),
        _ts("deleted_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_points"),
    )
    op.create_index("ix_recovery_points_resource_created_at", "recovery_points", ["resource", "created_at"])
    op.create_index("ix_recovery_points_schedule_created_at", "recovery_points", ["schedule", "created_at"])

    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("schedule", sa.String(255), nullable=True),
        sa.Column("resource", sa.String(255), nullable=True),
        _ts("started_at", nullable=False),
        _ts("finished_at", nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_job_runs"),
    )
    op.create_index("ix_job_runs_job_started_at", "job_runs", ["job", "started_at"])
    op.create_index("ix_job_runs_resource_started_at", "job_runs", ["resource", "started_at"])

    op.create_table(
        "drill_runs",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("drill", sa.String(255), nullable=False),
        sa.Column("environment", sa.String(255), nullable=False),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("scenario", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        _ts("started_at", nullable=False),
        _ts("finished_at", nullable=True),
        _ts("incident_at", nullable=True),
        sa.Column("rto_target_s", sa.Float(), nullable=True),
        sa.Column("rto_achieved_s", sa.Float(), nullable=True),
        sa.Column("rpo_target_s", sa.Float(), nullable=True),
        sa.Column("rpo_achieved_s", sa.Float(), nullable=True),
        sa.Column("rpo_method", sa.String(32), nullable=True),
        sa.Column("report_path", sa.Text(), nullable=True),
        _json("report"),
        sa.PrimaryKeyConstraint("id", name="pk_drill_runs"),
    )
    op.create_index("ix_drill_runs_drill_started_at", "drill_runs", ["drill", "started_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _ts("at", nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        _json("detail"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    # Drops the whole ledger. drkit never runs downgrades; this is for developers iterating
    # on a migration against a throwaway catalog.
    for table in ("audit_log", "drill_runs", "job_runs", "recovery_points"):
        op.drop_table(table)
