"""The access generation's triggers (``catalog.state.models.StateGeneration``).

Each change to an access table sets the generation to a new random 64-bit value: a value
never comes back (a counter would, after a restore from a backup or a schema reset, and a
process that kept rows under the old number would serve them again). Created by migration
0004; :func:`ensure_triggers` re-creates any that went missing (a table rebuilt, a restore
without triggers) every time a process opens the state database.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, text

log = logging.getLogger(__name__)

_SQLITE_BUMP = "UPDATE state_generation SET value = random() WHERE id = 1"
# 53 random bits: what PostgreSQL's random() gives (a double); the chance that two values of
# one database ever meet is negligible.
_POSTGRES_BUMP = (
    "UPDATE state_generation SET value = floor(random() * 9007199254740991)::bigint WHERE id = 1"
)
_POSTGRES_FUNCTION = (
    "CREATE OR REPLACE FUNCTION govshare_bump_generation() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN {_POSTGRES_BUMP}; RETURN NULL; END $$"
)
_EVENTS = ("insert", "update", "delete")


def trigger_names(dialect: str, table: str) -> list[str]:
    if dialect == "postgresql":
        return [f"generation_{table}"]
    return [f"generation_{table}_{event}" for event in _EVENTS]


def _create(connection: Connection, table: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text(_POSTGRES_FUNCTION))
        connection.execute(
            text(
                f"CREATE OR REPLACE TRIGGER generation_{table} "
                f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION govshare_bump_generation()"
            )
        )
        return
    for event in _EVENTS:
        connection.execute(
            text(
                f"CREATE TRIGGER IF NOT EXISTS generation_{table}_{event} "
                f"AFTER {event.upper()} ON {table} BEGIN {_SQLITE_BUMP}; END"
            )
        )


def create_triggers(connection: Connection, tables: tuple[str, ...]) -> None:
    for table in tables:
        _create(connection, table)


def _present(connection: Connection) -> set[str]:
    if connection.dialect.name == "postgresql":
        query = "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'generation_%'"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'generation_%'"
    return {name for (name,) in connection.execute(text(query))}


def ensure_triggers(connection: Connection, tables: tuple[str, ...]) -> list[str]:
    """Re-create the triggers of ``tables`` that are missing; the tables whose were."""
    present = _present(connection)
    missing = [
        table
        for table in tables
        if not set(trigger_names(connection.dialect.name, table)) <= present
    ]
    if missing:
        log.warning("access generation triggers were missing on %s: re-created", missing)
        create_triggers(connection, tuple(missing))
        # Anything may have changed while they were missing: what processes kept is dropped.
        postgresql = connection.dialect.name == "postgresql"
        connection.execute(text(_POSTGRES_BUMP if postgresql else _SQLITE_BUMP))
    return missing
