"""Notifications (run failures, rejected deliveries, quarantine rates, stale datasets,
overdue requests) and department scorecards.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import catalog.state.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_UTC = catalog.state.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("dataset", sa.String(length=63), nullable=True),
        sa.Column("department_code", sa.String(length=18), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", _UTC(), nullable=False),
        sa.Column("webhook_status", sa.String(length=12), nullable=False),
        sa.Column("webhook_attempts", sa.Integer(), nullable=False),
        sa.Column("webhook_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", _UTC(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('run_failed', 'delivery_rejected', 'quarantine_rate', 'dataset_stale', "
            "'request_overdue')",
            name="ck_notifications_kind",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_department_created",
            ["department_code", "created_at"],
            unique=False,
        )
    op.create_table(
        "scorecards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("department_code", sa.String(length=18), nullable=False),
        sa.Column("department_name", sa.String(length=200), nullable=False),
        sa.Column("measures", sa.JSON(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("weights", sa.JSON(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("computed_at", _UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("scorecards", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scorecards_month_department", ["month", "department_code"], unique=False
        )


def downgrade() -> None:
    op.drop_table("scorecards")
    op.drop_table("notifications")
