"""Separation of duties (activation, confirmation, disabling), grant start, token ids in the
audit log, atomic rate limits and aggregated refusals.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import catalog.state.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_UTC = catalog.state.models.UTCDateTime


def upgrade() -> None:
    for name, kind in (
        ("created_by", sa.String(length=80)),
        ("confirmed_at", _UTC()),
        ("confirmed_by", sa.String(length=80)),
        ("reset_by", sa.String(length=80)),
        ("flag", sa.Text()),
        ("activation_hash", sa.String(length=64)),
        ("activation_expires_at", _UTC()),
        ("disabled_at", _UTC()),
        ("disabled_reason", sa.Text()),
    ):
        op.add_column("users", sa.Column(name, kind, nullable=True))
    # Users registered before this revision keep working: they count as confirmed.
    op.execute("UPDATE users SET confirmed_at = created_at, confirmed_by = 'migration 0002'")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_users_activation_hash", ["activation_hash"])

    op.add_column("grants", sa.Column("starts_at", _UTC(), nullable=True))
    op.execute("UPDATE grants SET starts_at = granted_at")
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.alter_column("starts_at", existing_type=_UTC(), nullable=False)

    # A plain ADD COLUMN: the append-only triggers on audit_entries stay in place.
    op.add_column("audit_entries", sa.Column("token_id", sa.Integer(), nullable=True))

    op.create_table(
        "rate_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=63), nullable=False),
        sa.Column("at", _UTC(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rate_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rate_events_user_service_at", ["user_id", "service", "at"], unique=False
        )
    op.create_table(
        "refusal_counters",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_started_at", _UTC(), nullable=False),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("refusal_counters")
    op.drop_table("rate_events")
    op.drop_column("audit_entries", "token_id")
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_column("starts_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_users_activation_hash", type_="unique")
        for name in (
            "created_by", "confirmed_at", "confirmed_by", "reset_by", "flag", "activation_hash",
            "activation_expires_at", "disabled_at", "disabled_reason",
        ):  # fmt: skip
            batch_op.drop_column(name)
