"""The access generation: a value that every change to departments, users, tokens,
requests or grants replaces by a new random one (database triggers, so a change by any
process or tool counts). API processes keep token and grant lookups while it stands still.

Revision ID: 0004
Revises: 0003

Later migrations that rebuild one of these tables (SQLite batch mode copies it) must
create its triggers again: :data:`catalog.state.models.GENERATION_TABLES`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from catalog.state.generation import create_triggers

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# As this revision made them (catalog.state.models.GENERATION_TABLES may grow later).
GENERATION_TABLES = ("departments", "users", "tokens", "access_requests", "grants")


def upgrade() -> None:
    op.create_table(
        "state_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO state_generation (id, value) VALUES (1, 0)")
    create_triggers(op.get_bind(), GENERATION_TABLES)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in GENERATION_TABLES:
        if postgresql:
            op.execute(f"DROP TRIGGER generation_{table} ON {table}")
        for event in () if postgresql else ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER generation_{table}_{event}")
    if postgresql:
        op.execute("DROP FUNCTION govshare_bump_generation()")
    op.drop_table("state_generation")
