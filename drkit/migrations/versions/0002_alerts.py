"""Alert incidents: one row per (schedule, kind, resource), open until the next success.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02

Lets the scheduler alert once per incident even across restarts (drkit/catalog/alerts.py).
The APScheduler job store (drkit_apscheduler_jobs) is not created here: APScheduler owns
that table's shape and creates it itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alert_incidents",
        sa.Column("id", sa.String(800), nullable=False),
        sa.Column("schedule", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        _ts("opened_at", nullable=False),
        _ts("updated_at", nullable=False),
        _ts("resolved_at", nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_incidents"),
    )


def downgrade() -> None:
    op.drop_table("alert_incidents")
