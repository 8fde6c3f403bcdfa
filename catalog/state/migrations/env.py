"""Alembic environment: runs on the engine handed over by ``catalog.state.db.migrate``, or on
``GOVSHARE_STATE_DB`` / the default SQLite file when called from the ``alembic`` command."""

from __future__ import annotations

from alembic import context

from catalog.settings import Settings
from catalog.state.db import create_state_engine
from catalog.state.models import Base

engine = context.config.attributes.get("engine") or create_state_engine(Settings().state_url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
