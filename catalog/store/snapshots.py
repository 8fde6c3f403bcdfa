"""The lake's newest snapshot id, read from its catalog database without DuckDB.

Every DuckLake commit adds a row to the catalog's ``ducklake_snapshot`` table, in the same
catalog transaction as the data it describes. So the newest snapshot id changes exactly when
something in the lake may have changed, and readers keep what they derive from the lake
(the versions of every dataset) per snapshot: reading one indexed row from SQLite or
PostgreSQL costs ~0.1 ms, a DuckLake query through DuckDB ~15 ms.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import psycopg

_NEWEST = "SELECT max(snapshot_id) FROM ducklake_snapshot"
_SETTLED_NS = 50_000_000  # well above the file system clock's tick (a jiffy, <= 10 ms)


def _files_state(path: str) -> tuple | None:
    """What changes when a commit of the catalog becomes visible: the database file's and
    its WAL's (inode, size, time written), the database header (its change counter) and the
    WAL index header in ``-shm`` (SQLite updates it only once the commit is durable: a
    commit's frames are written, and the WAL's time changed, before a slow fsync ends, and a
    reader in between sees the old snapshot). None when the database is missing."""
    states: list = []
    # The shm's first 96 bytes: the index header, twice (after it, readers write marks).
    for suffix, header in (("", 100), ("-wal", 0), ("-shm", 96)):
        file = path + suffix  # plain strings: this runs on every call of the API
        try:
            stat = os.stat(file)
            with open(file, "rb") as handle:
                head = handle.read(header) if header else b""
        except FileNotFoundError:
            if not suffix:
                return None
            states.append(None)
            continue
        # Not the change time (a reader closing the database touches its WAL's), nor the
        # shm's time written (a reader writes its read mark there).
        written = 0 if suffix == "-shm" else stat.st_mtime_ns
        states.append((stat.st_ino, stat.st_size, written, head))
    return tuple(states)


class SnapshotProbe:
    """``current()``: the newest snapshot id of the lake whose catalog is ``catalog_uri``
    (``sqlite:<path>`` or ``postgres:<libpq string>``, as in ``Settings.lake_catalog_uri``),
    or None while the lake has no catalog yet."""

    def __init__(self, catalog_uri: str) -> None:
        self._uri = catalog_uri
        self._postgres: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self._known: tuple[tuple, int] | None = None  # (files' state, newest id)

    def current(self) -> int | None:
        if self._uri.startswith("postgres:"):
            return self._from_postgres()
        return self._from_sqlite(self._uri.removeprefix("sqlite:"))

    def _from_sqlite(self, path: str) -> int | None:
        """The newest id, read again only when the catalog's files changed. Opening the
        catalog costs ~0.8 ms (the query 10 µs), and a connection kept open saw no commits
        of DuckDB's own SQLite; what a commit changes (:func:`_files_state`) costs ~20 µs to
        read."""
        seen = _files_state(path)
        known = self._known
        if known is not None and known[0] == seen:
            return known[1]
        value = self._query_sqlite(Path(path))
        # A write within the same tick of the file system's clock as the state seen would
        # leave it unchanged: an id is kept only once its files are older than any tick.
        written = max(f[2] for f in seen if f is not None) if seen is not None else 0
        settled = seen is not None and time.time_ns() - written > _SETTLED_NS
        self._known = (seen, value) if value is not None and settled else None
        return value

    @staticmethod
    def _query_sqlite(path: Path) -> int | None:
        """None also when the catalog cannot be read now (busy, unreadable): the caller then
        reads through DuckDB, which waits or says what is wrong."""
        if not path.exists():
            return None
        try:
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
