"""The lake's newest snapshot id, read from its catalog database without DuckDB.

Every DuckLake commit adds a row to the catalog's ``ducklake_snapshot`` table, in the same
catalog transaction as the data it describes. So the newest snapshot id changes exactly when
something in the lake may have changed, and readers keep what they derive from the lake
(the versions of every dataset) per snapshot: reading one indexed row from SQLite or
PostgreSQL costs ~0.1 ms, a DuckLake query through DuckDB ~15 ms.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg

_NEWEST = "SELECT max(snapshot_id) FROM ducklake_snapshot"


class SnapshotProbe:
    """``current()``: the newest snapshot id of the lake whose catalog is ``catalog_uri``
    (``sqlite:<path>`` or ``postgres:<libpq string>``, as in ``Settings.lake_catalog_uri``),
    or None while the lake has no catalog yet."""

    def __init__(self, catalog_uri: str) -> None:
        self._uri = catalog_uri
        self._postgres: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def current(self) -> int | None:
        if self._uri.startswith("postgres:"):
            return self._from_postgres()
        return self._from_sqlite(Path(self._uri.removeprefix("sqlite:")))

    @staticmethod
    def _from_sqlite(path: Path) -> int | None:
        """None also when the catalog cannot be read now (busy, unreadable): the caller then
        reads through DuckDB, which waits or says what is wrong."""
        if not path.exists():
            return None
        try:
            # A connection per call (~50 µs): sqlite3 connections stay in their thread.
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
        except sqlite3.Error:
            return None
        try:
            return db.execute(_NEWEST).fetchone()[0]
        except sqlite3.Error:  # no DuckLake tables yet, or busy
            return None
        finally:
            db.close()

    def _from_postgres(self) -> int | None:
        with self._lock:
            try:
                return self._query_postgres()
            except psycopg.errors.UndefinedTable:  # no DuckLake tables yet
                return None
            except psycopg.OperationalError:  # a dropped connection is opened again, once
                self._disconnect()
                return self._query_postgres()

    def _query_postgres(self) -> int | None:
        if self._postgres is None or self._postgres.closed:
            conninfo = self._uri.removeprefix("postgres:")
            self._postgres = psycopg.connect(conninfo, autocommit=True)
        return self._postgres.execute(_NEWEST).fetchone()[0]

    def _disconnect(self) -> None:
        if self._postgres is not None:
            self._postgres.close()
            self._postgres = None

    def close(self) -> None:
        with self._lock:
            self._disconnect()
