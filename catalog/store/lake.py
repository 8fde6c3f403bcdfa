"""The central store: DuckDB over a DuckLake (Parquet files + a catalog database).

Every connection is an in-memory DuckDB with the lake attached, so any number of processes
read while one writes. Writes are serialised by a file lock (two writers on a SQLite catalog
fail with "database is locked"); the Dagster pool of one does the same inside Dagster. A
writer waits for the lock at most ``lake_lock_timeout_seconds``, then :class:`LakeBusy`.
Extensions are loaded from their ``duckdb-extension-*`` packages: nothing is downloaded.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import duckdb

from catalog.runtime import secure_home
from catalog.settings import Settings
from catalog.sql import quote_ident

LAKE = "lake"
# Extension name -> (PyPI package module, file name DuckDB expects the extension to have).
EXTENSIONS = {
    "ducklake": ("duckdb_extension_ducklake", "ducklake.duckdb_extension"),
    "sqlite": ("duckdb_extension_sqlite_scanner", "sqlite_scanner.duckdb_extension"),
    "postgres": ("duckdb_extension_postgres", "postgres_scanner.duckdb_extension"),
    "excel": ("duckdb_extension_excel", "excel.duckdb_extension"),
}
META_SCHEMA = "govshare"
META_TABLES = {
    "versions": """
        dataset VARCHAR, version INTEGER, snapshot_id BIGINT, row_count BIGINT,
        schema_hash VARCHAR, quality VARCHAR, source_files VARCHAR, run_id VARCHAR,
        published_at TIMESTAMP WITH TIME ZONE, items VARCHAR""",
    "runs": """
        run_id VARCHAR, dataset VARCHAR, started_at TIMESTAMP WITH TIME ZONE,
        finished_at TIMESTAMP WITH TIME ZONE, status VARCHAR, files VARCHAR,
        rows_read BIGINT, rows_valid BIGINT, rows_quarantined BIGINT, version INTEGER,
        message VARCHAR, rows_stale BIGINT, stale_keys VARCHAR""",
    "reference_results": """
        dataset VARCHAR, version INTEGER, reference VARCHAR, target VARCHAR,
        target_version INTEGER, checked BIGINT, resolved BIGINT, unresolved BIGINT,
        examples VARCHAR, checked_at TIMESTAMP WITH TIME ZONE""",
    "releases": """
        release INTEGER, created_at TIMESTAMP WITH TIME ZONE, reason VARCHAR,
        datasets VARCHAR""",
    "release_metadata": "digest VARCHAR, document VARCHAR",
}
# Columns added to meta tables after their first release: lakes created before get them
# when they are opened (ALTER TABLE ... ADD COLUMN IF NOT EXISTS).
META_ADDED_COLUMNS = {
    "runs": {"rows_stale": "BIGINT", "stale_keys": "VARCHAR"},
    "versions": {"items": "VARCHAR"},
}


class LakeError(RuntimeError):
    """The central store cannot be opened or written."""


class LakeBusy(LakeError):
    """Another process held the lake's write lock for longer than this one would wait."""

    PREFIX = "the lake is busy"

    def __init__(self, waited: float, held_for: float | None) -> None:
        self.waited = waited
        self.held_for = held_for
        held = f"for {held_for:.0f} s" if held_for is not None else "for an unknown time"
        super().__init__(
            f"{self.PREFIX}: another run has been writing {held}; waited {waited:.0f} s"
        )


@cache
def extension_file(name: str) -> Path:
    """Path of an extension's binary inside its installed PyPI package."""
    module, file_name = EXTENSIONS[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise LakeError(f"DuckDB extension package for {name!r} is not installed ({module})")
    root = Path(spec.submodule_search_locations[0])
    stem = f"{name}.duckdb_extension"
    found = next(root.rglob(file_name), None) or next(root.rglob(stem), None)
    if found is None:
        raise LakeError(f"no {stem} inside {root}")
    return found


def _loadable(name: str, settings: Settings | None) -> Path:
    """DuckDB derives an extension's init symbol from its file name, so a package whose file
    is named differently (postgres -> postgres_scanner) is loaded from a renamed copy."""
    source = extension_file(name)
    wanted = EXTENSIONS[name][1]
    if source.name == wanted:
        return source
    if settings is None:
        raise LakeError(f"extension {name!r} needs a runtime folder for its renamed copy")
    target = settings.folder("extensions") / wanted
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return target


def new_connection(
    settings: Settings, extensions: tuple[str, ...] = ()
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that never downloads or auto-loads anything."""
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": settings.duckdb_memory_limit,
            "threads": settings.duckdb_threads,
        }
    )
    for name in extensions:
        load_extension(con, name, settings)
    return con


def load_extension(
    con: duckdb.DuckDBPyConnection, name: str, settings: Settings | None = None
) -> None:
    """Load an extension from its package (DuckDB checks its signature). Loading one that
    is already loaded is a no-op, so readers simply load theirs (``excel``) when needed."""
    con.execute(f"LOAD '{_loadable(name, settings)}'")


class Lake:
    """The lake of one runtime folder. A process keeps one connection (extension loads and
    the attach cost ~0.2 s) and hands out cursors; each query sees the latest commit."""

    def __init__(self, settings: Settings) -> None:
        secure_home(settings)
        self.settings = settings
        self._root: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    @property
    def _is_postgres(self) -> bool:
        return self.settings.lake_catalog_uri.startswith("postgres")

    def _prepare_catalog(self) -> None:
        """Create runtime folders; a new SQLite catalog is put in WAL mode (readers do not
        block the writer, about 10x faster under concurrent use)."""
        data = self.settings.lake_data_uri
        if "://" not in data:
            Path(data).mkdir(parents=True, exist_ok=True)
        if self._is_postgres:
            return
        path = Path(self.settings.lake_catalog_uri.removeprefix("sqlite:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            with sqlite3.connect(path) as db:
                db.execute("PRAGMA journal_mode=WAL")

    def connect(self, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """A new connection with the lake attached as ``lake`` (the caller closes it)."""
        self._prepare_catalog()
        catalog_ext = "postgres" if self._is_postgres else "sqlite"
        con = new_connection(self.settings, ("ducklake", catalog_ext))
        options = [f"DATA_PATH '{self.settings.lake_data_uri}'"]
        if read_only:
            options.append("READ_ONLY")
        con.execute(
            f"ATTACH 'ducklake:{self.settings.lake_catalog_uri}' AS {LAKE} ({', '.join(options)})"
        )
        # Readers order what they return (by key); bulk writes need not keep input order.
        con.execute("SET preserve_insertion_order = false")
        return con

    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._root is None:
                root = self.connect()
                try:
                    # An existing, current lake: no catalog writes (and no lock) at start-up.
                    if not self._meta_current(root):
                        with self._write_lock():
                            self._create_meta(root)
                except BaseException:
                    root.close()
                    raise
                self._root = root
            return self._root

    @staticmethod
    def _meta_current(con: duckdb.DuckDBPyConnection) -> bool:
        """True when every meta table exists with every column added since."""
        tables = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = ?",
            [LAKE, META_SCHEMA],
        ).fetchall()
        if {t[0] for t in tables} != set(META_TABLES):
            return False
        columns = set(
            con.execute(
                "SELECT table_name, column_name FROM duckdb_columns() "
                "WHERE database_name = ? AND schema_name = ?",
                [LAKE, META_SCHEMA],
            ).fetchall()
        )
        return all(
            (table, column) in columns
            for table, added in META_ADDED_COLUMNS.items()
            for column in added
        )

    def _create_meta(self, con: duckdb.DuckDBPyConnection) -> None:
        for schema in ("published", "quarantine", META_SCHEMA):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {LAKE}.{schema}")
        for table, columns in META_TABLES.items():
            con.execute(f"CREATE TABLE IF NOT EXISTS {LAKE}.{META_SCHEMA}.{table} ({columns})")
        for table, added in META_ADDED_COLUMNS.items():
            for column, kind in added.items():
                con.execute(
                    f"ALTER TABLE {LAKE}.{META_SCHEMA}.{table} "
                    f"ADD COLUMN IF NOT EXISTS {column} {kind}"
                )

    def initialise(self) -> None:
        """Create the lake and its metadata tables if they do not exist yet."""
        self._connection()

    @property
    def _lock_path(self) -> Path:
        return self.settings.folder("lake") / "write.lock"

    @contextmanager
    def _write_lock(self, timeout: float | None = None) -> Iterator[None]:
        """The lake's write lock (fcntl, across processes), waited for at most ``timeout``
        seconds (default: the setting), else :class:`LakeBusy`. The holder writes its pid and
        start time into the lock file, so a waiter can say how long the lake has been busy."""
        limit = self.settings.lake_lock_timeout_seconds if timeout is None else timeout
        lock_path = self._lock_path
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        # Opened without truncating: the holder's note must survive a waiter's open.
        with os.fdopen(os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600), "r+") as lock:
            start, pause = time.monotonic(), 0.01
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - start
                    if waited >= limit:
                        raise LakeBusy(waited, self._held_for()) from None
                    time.sleep(min(pause, limit - waited))
                    pause = min(pause * 2, 0.25)
            try:
                lock.seek(0)
                lock.truncate()
                lock.write(json.dumps({"pid": os.getpid(), "since": time.time()}))
                lock.flush()
                yield
            finally:
                lock.seek(0)
                lock.truncate()
                lock.flush()
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _held_for(self) -> float | None:
        """Seconds the current holder of the write lock has held it, if it said."""
        try:
            note = json.loads(self._lock_path.read_text(encoding="utf-8"))
            return max(time.time() - float(note["since"]), 0.0)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @contextmanager
    def writer(self, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """The one write path: a cursor held under the lake's write lock (across processes).
        Waits at most ``timeout`` seconds for another writer (default: the setting)."""
        root = self._connection()
        with self._write_lock(timeout):
            cursor = root.cursor()
            try:
                yield cursor
            finally:
                cursor.close()

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cursor = self._connection().cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def close(self) -> None:
        with self._lock:
            if self._root is not None:
                self._root.close()
                self._root = None


def published_table(dataset: str) -> str:
    return f"{LAKE}.published.{quote_ident(dataset)}"


def quarantine_table(dataset: str) -> str:
    return f"{LAKE}.quarantine.{quote_ident(dataset)}"


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether the lake holds ``schema.table`` (a dataset never published has none)."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
        "AND table_name = ?",
        [LAKE, schema, table],
    ).fetchone()
    return bool(row and row[0])
