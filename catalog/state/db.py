"""The platform-state database: engine, migrations and transactions.

SQLite (a file under the runtime folder) by default, any SQLAlchemy URL by setting; the
schema comes from Alembic migrations only, applied with ``migrate`` when a process starts.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from catalog.runtime import secure_home
from catalog.settings import Settings
from catalog.state.generation import ensure_triggers
from catalog.state.models import GENERATION_TABLES, StateGeneration

MIGRATIONS = Path(__file__).with_name("migrations")
_GENERATION = f"SELECT value FROM {StateGeneration.__tablename__} WHERE id = 1"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Autocommit at the driver level; SQLAlchemy's "begin" hook opens the transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection) -> None:
    # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY) when
    # another process wrote meanwhile; taking the write lock up front makes it wait instead.
    # Read-only sessions (token checks, listings) need no lock.
    reading = connection.get_execution_options().get("govshare_read", False)
    connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def create_state_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is there already)."""
    command.upgrade(alembic_config(engine), "head")


class StateStore:
    """Engine and session factory of the platform state, migrated on creation."""

    def __init__(self, settings: Settings) -> None:
        secure_home(settings)
        self.settings = settings
        if settings.state_url.startswith("sqlite:///"):
            Path(settings.state_url.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        self.engine = create_state_engine(settings.state_url)
        migrate(self.engine)
        with self.engine.begin() as connection:
            ensure_triggers(connection, GENERATION_TABLES)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(
            self.engine.execution_options(govshare_read=True), expire_on_commit=False
        )
        sqlite = settings.state_url.startswith("sqlite")
        self._writers: AbstractContextManager = threading.RLock() if sqlite else nullcontext()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed when the block ends, rolled back if it raises.

        On SQLite the writers of this process queue on a lock first: SQLite's own wait for
        its write lock sleeps in steps of up to 100 ms, which under 8 concurrent API calls
        (each appends an audit entry) made the slowest calls 10x the median."""
        with self._writers, self._sessions.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only unit of work (SQLite: no write lock taken)."""
        with self._readers.begin() as session:
            yield session

    def generation(self) -> int:
        """The access generation (migration 0004): it moves on every change to the tables
        authentication and grants are read from. Read on the driver's connection: it runs
        on every call, and a SQLAlchemy connection and transaction cost 4x the query."""
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(_GENERATION)
            (value,) = cursor.fetchone()
            cursor.close()
            return value
        finally:
            connection.close()  # back to the pool, which ends any transaction it began

    @contextmanager
    def appending(self) -> Iterator[Connection]:
        """A write transaction on a plain connection (no ORM session): for statements built
        once and run on every call, like the audit append. Queued like :meth:`transaction`."""
        with self._writers, self.engine.begin() as connection:
            yield connection

    @property
    def sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def sqlite_appending(self) -> Iterator[sqlite3.Cursor]:
        """SQLite only: a write transaction on the driver's own connection, for the statements
        every call runs (the audit append): SQLAlchemy's connection and transaction cost more
        than they do. Queued like :meth:`transaction`; rolled back if the block raises."""
        with self._writers:
            connection = self.engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    yield cursor
                except BaseException:
                    # SQLite may have rolled back itself (a full disk): keep the first error.
                    if connection.driver_connection.in_transaction:
                        with suppress(sqlite3.Error):
                            cursor.execute("ROLLBACK")
                    raise
                cursor.execute("COMMIT")
            finally:
                connection.close()  # back to the pool

    def close(self) -> None:
        self.engine.dispose()
