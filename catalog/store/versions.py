"""Version records and run records: the platform's lineage, kept inside the lake itself.

A version row is written in the same lake transaction as the data it describes, so a
version exists exactly when its snapshot does. Readers address a dataset through its
latest version's snapshot, so what they see never moves under them mid-page.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from catalog.contracts import SQL_TYPES, Contract
from catalog.sql import quote_ident
from catalog.store.lake import LAKE, META_SCHEMA, published_table
from catalog.store.snapshots import SnapshotProbe

VERSIONS = f"{LAKE}.{META_SCHEMA}.versions"
RUNS = f"{LAKE}.{META_SCHEMA}.runs"
_VERSION_COLUMNS = (
    "dataset, version, snapshot_id, row_count, schema_hash, quality, source_files, run_id, "
    "published_at, items"
)


@dataclass(frozen=True)
class Version:
    dataset: str
    version: int
    snapshot_id: int
    row_count: int
    schema_hash: str
    quality: dict
    source_files: list[dict]
    run_id: str
    published_at: datetime
    items: tuple[str, ...] | None = None
    """The items its rows have (the contract's when it was published); None in versions
    recorded before items were, which have every item of the contract."""

    @classmethod
    def from_row(cls, row: tuple) -> Version:
        values = list(row)
        quality = json.loads(values[5])
        # The share of rows quarantined, under its name; ``failure_rate`` (the same value,
        # as versions record it) stays for readers of the old name.
        if "failure_rate" in quality:
            quality.setdefault("quarantine_rate", quality["failure_rate"])
        values[5] = quality
        values[6] = json.loads(values[6])
        values[9] = tuple(json.loads(values[9])) if values[9] else None
        return cls(*values)

    def as_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "snapshot_id": self.snapshot_id,
            "row_count": self.row_count,
            "schema_hash": self.schema_hash,
            "quality": self.quality,
            "source_files": self.source_files,
            "run_id": self.run_id,
            "published_at": self.published_at.isoformat(),
            "items": list(self.items) if self.items is not None else None,
        }


def list_versions(con: duckdb.DuckDBPyConnection, dataset: str) -> list[Version]:
    rows = con.execute(
        f"SELECT {_VERSION_COLUMNS} FROM {VERSIONS} WHERE dataset = ? ORDER BY version DESC",
        [dataset],
    ).fetchall()
    return [Version.from_row(r) for r in rows]


def get_version(con: duckdb.DuckDBPyConnection, dataset: str, number: int) -> Version | None:
    row = con.execute(
        f"SELECT {_VERSION_COLUMNS} FROM {VERSIONS} WHERE dataset = ? AND version = ?",
        [dataset, number],
    ).fetchone()
    return Version.from_row(row) if row else None


def latest_versions(con: duckdb.DuckDBPyConnection) -> dict[str, Version]:
    rows = con.execute(
        f"SELECT {_VERSION_COLUMNS} FROM {VERSIONS} "
        f"QUALIFY row_number() OVER (PARTITION BY dataset ORDER BY version DESC) = 1"
    ).fetchall()
    return {r[0]: Version.from_row(r) for r in rows}


def latest_version(con: duckdb.DuckDBPyConnection, dataset: str) -> Version | None:
    versions = list_versions(con, dataset)
    return versions[0] if versions else None


def published_checksums(con: duckdb.DuckDBPyConnection, dataset: str) -> set[str]:
    """Checksums of every source file any version of the dataset was built from."""
    return set(checksum_versions(con, dataset))


def checksum_versions(con: duckdb.DuckDBPyConnection, dataset: str) -> dict[str, Version]:
    """Each source-file checksum of the dataset and the newest version built from it: what
    an identical re-delivery is reported against."""
    found: dict[str, Version] = {}
    for version in list_versions(con, dataset):  # newest first
        for source in version.source_files:
            found.setdefault(source["sha256"], version)
    return found


def next_version_number(con: duckdb.DuckDBPyConnection, dataset: str) -> int:
    row = con.execute(
        f"SELECT coalesce(max(version), 0) + 1 FROM {VERSIONS} WHERE dataset = ?", [dataset]
    ).fetchone()
    return int(row[0])


def next_snapshot_id(con: duckdb.DuckDBPyConnection) -> int:
    """The id the open transaction's commit will get (writes are serialised by the lock)."""
    return int(con.execute(f"SELECT max(snapshot_id) + 1 FROM {LAKE}.snapshots()").fetchone()[0])


def insert_version(con: duckdb.DuckDBPyConnection, version: Version) -> None:
    con.execute(
        f"INSERT INTO {VERSIONS} ({_VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            version.dataset, version.version, version.snapshot_id, version.row_count,
            version.schema_hash, json.dumps(version.quality, ensure_ascii=False),
            json.dumps(version.source_files, ensure_ascii=False), version.run_id,
            version.published_at,
            json.dumps(list(version.items)) if version.items is not None else None,
        ],
    )  # fmt: skip


_RUN_COLUMNS = (
    "run_id, dataset, started_at, finished_at, status, files, rows_read, rows_valid, "
    "rows_quarantined, version, message, rows_stale, stale_keys"
)


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    dataset: str
    started_at: datetime
    finished_at: datetime
    status: str
    files: list[dict]
    """Source files by name, checksum, size and rows (never a server path)."""
    rows_read: int
    rows_valid: int
    rows_quarantined: int
    version: int | None
    message: str
    rows_stale: int = 0
    """Rows not applied because the published row with their key is newer."""
    stale_keys: list[str] = field(default_factory=list)
    """A few of their keys, masked."""

    def as_dict(self) -> dict:
        data = self.__dict__.copy()
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> RunRecord:
        """The inverse of :meth:`as_dict` (a run record kept in a file while the lake was busy)."""
        return cls(
            **{
                **data,
                "started_at": datetime.fromisoformat(data["started_at"]),
                "finished_at": datetime.fromisoformat(data["finished_at"]),
            }
        )

    @classmethod
    def from_row(cls, row: tuple) -> RunRecord:
        values = list(row)
        values[5] = json.loads(values[5])
        values[11] = values[11] or 0  # runs recorded before stale rows were counted
        values[12] = json.loads(values[12]) if values[12] else []
        return cls(*values)


def insert_run(con: duckdb.DuckDBPyConnection, run: RunRecord) -> None:
    con.execute(
        f"INSERT INTO {RUNS} ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run.run_id, run.dataset, run.started_at, run.finished_at, run.status,
            json.dumps(run.files, ensure_ascii=False), run.rows_read, run.rows_valid,
            run.rows_quarantined, run.version, run.message, run.rows_stale,
            json.dumps(run.stale_keys, ensure_ascii=False),
        ],
    )  # fmt: skip


def run_exists(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    return con.execute(f"SELECT count(*) FROM {RUNS} WHERE run_id = ?", [run_id]).fetchone()[0] > 0


def recent_runs(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[RunRecord]:
    rows = con.execute(
        f"SELECT {_RUN_COLUMNS} FROM {RUNS} ORDER BY finished_at DESC LIMIT ?", [limit]
    ).fetchall()
    return [RunRecord.from_row(r) for r in rows]


def dataset_relation(contract: Contract, version: Version) -> str:
    """The version's rows with every item of the contract (those added since read NULL)."""
    if version.items is None:
        return version_relation(version)
    absent = {
        item.name: SQL_TYPES[item.type] for item in contract.items if item.name not in version.items
    }
    return version_relation(version, absent)


def version_relation(version: Version, absent: Mapping[str, str] | None = None) -> str:
    """The version's rows: the published table as of the snapshot its publish created.
    ``absent``: items (name -> SQL type) a later contract added, which the version's rows
    lack; they read as NULL (the table's columns at that snapshot are the version's)."""
    relation = f"{published_table(version.dataset)} AT (VERSION => {int(version.snapshot_id)})"
    if not absent:
        return relation
    nulls = ", ".join(f"NULL::{kind} AS {quote_ident(name)}" for name, kind in absent.items())
    return f"(SELECT *, {nulls} FROM {relation})"


@dataclass(frozen=True)
class VersionsAt:
    """Every dataset's versions (newest first) as of one lake snapshot."""

    snapshot: int | None
    by_dataset: dict[str, list[Version]]

    def of(self, dataset: str) -> list[Version]:
        return self.by_dataset.get(dataset, [])

    def latest(self, dataset: str) -> Version | None:
        versions = self.of(dataset)
        return versions[0] if versions else None

    def get(self, dataset: str, number: int) -> Version | None:
        return next((v for v in self.of(dataset) if v.version == number), None)

    def latest_all(self) -> dict[str, Version]:
        return {dataset: versions[0] for dataset, versions in self.by_dataset.items()}


def versions_at(con: duckdb.DuckDBPyConnection, snapshot: int | None) -> VersionsAt:
    """Read every version row as of ``snapshot`` (None: the latest commit)."""
    at = "" if snapshot is None else f" AT (VERSION => {int(snapshot)})"
    rows = con.execute(
        f"SELECT {_VERSION_COLUMNS} FROM {VERSIONS}{at} ORDER BY dataset, version DESC"
    ).fetchall()
    by_dataset: dict[str, list[Version]] = {}
    for row in rows:
        by_dataset.setdefault(row[0], []).append(Version.from_row(row))
    return VersionsAt(snapshot, by_dataset)


class VersionIndex:
    """The versions of every dataset, read from the lake once per lake snapshot.

    ``current()`` asks the catalog for its newest snapshot (no DuckDB query); only when that
    changed since the last call are the version rows read again, as of exactly that
    snapshot. A publish committed before a call is therefore seen by it, in whichever
    process it was made, and a call never mixes two snapshots' versions."""

    def __init__(self, probe: SnapshotProbe) -> None:
        self._probe = probe
        self._at: VersionsAt | None = None
        self._lock = threading.Lock()

    def known(self) -> VersionsAt | None:
        """The versions as of the newest snapshot if already read (no lake query), else None."""
        snapshot = self._probe.current()
        at = self._at
        return at if at is not None and snapshot is not None and at.snapshot == snapshot else None

    def current(
        self, reader: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
    ) -> VersionsAt:
        snapshot = self._probe.current()
        at = self._at
        if at is not None and snapshot is not None and at.snapshot == snapshot:
            return at
        with self._lock:
            at = self._at
            if at is not None and snapshot is not None and at.snapshot == snapshot:
                return at
            with reader() as con:
                try:
                    at = versions_at(con, snapshot)
                except duckdb.CatalogException:
                    # The probe ran before this process's reader created the lake's tables
                    # (or another process did meanwhile): read the latest, keep nothing.
                    return versions_at(con, None)
            if self._at is None or (self._at.snapshot or 0) <= (snapshot or 0):
                self._at = at
            return at

    def close(self) -> None:
        self._probe.close()
