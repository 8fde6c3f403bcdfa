"""The central store: DuckDB over a DuckLake (Parquet files + a catalog database).

Every connection is an in-memory DuckDB with the lake attached, so any number of processes
read while one writes. Writes are serialised by a file lock (two writers on a SQLite catalog
fail with "database is locked"); the Dagster pool of one does the same inside Dagster.
Extensions are loaded from their ``duckdb-extension-*`` packages: nothing is downloaded.
"""

from __future__ import annotations

import fcntl
import importlib.util
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import duckdb

from catalog.settings import Settings

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
        published_at TIMESTAMP WITH TIME ZONE""",
    "runs": """
        run_id VARCHAR, dataset VARCHAR, started_at TIMESTAMP WITH TIME ZONE,
        finished_at TIMESTAMP WITH TIME ZONE, status VARCHAR, files VARCHAR,
        rows_read BIGINT, rows_valid BIGINT, rows_quarantined BIGINT, version INTEGER,
        message VARCHAR""",
}


class LakeError(RuntimeError):
    """The central store cannot be opened or written."""


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
                with self._write_lock():
                    self._create_meta(root)
                self._root = root
            return self._root

    def _create_meta(self, con: duckdb.DuckDBPyConnection) -> None:
        present = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ?",
            [LAKE, META_SCHEMA],
        ).fetchone()[0]
        if present == len(META_TABLES):  # an existing lake: no catalog writes at start-up
            return
        for schema in ("published", "quarantine", META_SCHEMA):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {LAKE}.{schema}")
        for table, columns in META_TABLES.items():
            con.execute(f"CREATE TABLE IF NOT EXISTS {LAKE}.{META_SCHEMA}.{table} ({columns})")

    def initialise(self) -> None:
        """Create the lake and its metadata tables if they do not exist yet."""
        self._connection()

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        lock_path = self.settings.folder("lake") / "write.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The one write path: a cursor held under the lake's write lock (across processes)."""
        root = self._connection()
        with self._write_lock():
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
