"""What the API holds for its lifetime: settings, contracts, one read-only lake connection,
the versions of every dataset as of the lake's newest snapshot, the read-optimised copies of
versions, the platform-state store, what was read of its access tables (tokens, grants) while
they are unchanged, and the clock.

DuckDB connections are not shared across threads; each request takes its own cursor of the
long-lived connection (opening a lake connection costs ~0.3 s: extension loads and attach).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import duckdb

from catalog.contracts import Contract, load_contracts
from catalog.discovery.search import SearchIndex
from catalog.quality.freshness import Freshness
from catalog.quality.freshness import freshness as dataset_freshness
from catalog.settings import Settings
from catalog.sharing.pseudonyms import Pseudonymiser
from catalog.sharing.reads import key_order_copy
from catalog.sharing.requests import local_day
from catalog.state.db import StateStore
from catalog.state.memo import AccessMemo
from catalog.store.changes import VersionChanges, version_changes
from catalog.store.copies import ReadCopies
from catalog.store.lake import Lake, LakeBusy
from catalog.store.releases import Release, sync
from catalog.store.snapshots import SnapshotProbe
from catalog.store.versions import Version, VersionIndex, VersionsAt

_log = logging.getLogger(__name__)
DIFFS_KEPT = 64
START_LOCK_SECONDS = 5.0
"""How long the API's start waits for the lake's write lock to record a release."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppState:
    settings: Settings
    contracts: dict[str, Contract]
    lake: Lake
    store: StateStore
    pseudonyms: Pseudonymiser
    index: VersionIndex
    clock: Callable[[], datetime] = utc_now
    copies: ReadCopies = field(init=False)
    access: AccessMemo = field(init=False)
    warmed: int | None = None
    """The snapshot whose latest versions' key-order copies were queued."""
    _con: duckdb.DuckDBPyConnection | None = None
    _index: SearchIndex | None = None
    _diffs: OrderedDict[tuple, VersionChanges] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.access = AccessMemo(self.store)
        self.copies = ReadCopies(
            self.settings.folder("copies"),
            lambda: self.connection().cursor(),
            self.settings.read_copies_mb * 1024 * 1024,
        )

    @classmethod
    def create(cls, settings: Settings) -> AppState:
        return cls(
            settings,
            load_contracts(settings.schemas_dir),
            Lake(settings),
            StateStore(settings),
            Pseudonymiser.from_settings(settings),
            VersionIndex(SnapshotProbe(settings.lake_catalog_uri)),
        )

    def versions(self) -> VersionsAt:
        """Every dataset's versions as of the lake's newest snapshot (read from the lake only
        when a commit made a new one, in this process or another). A new snapshot queues the
        key-order copy of each dataset's latest version."""
        current = self.index.current(self.reader)
        if current.snapshot != self.warmed:
            self.warmed = current.snapshot
            for name, version in current.latest_all().items():
                if name in self.contracts:
                    self.copies.prepare(key_order_copy(self.contracts[name], version))
        return current

    def sync_release(self) -> Release | None:
        """Record a catalog release if the contracts changed since the latest (at start-up).
        A busy lake is left to the publish holding it or the Dagster sensor; a contract that
        changed a published resource code stops the start (:class:`ResourceCodeChanged`)."""
        try:
            return sync(self.lake, self.contracts, timeout=START_LOCK_SECONDS)
        except LakeBusy as busy:
            _log.warning("catalog release not recorded at start: %s", busy)
            return None

    def version_changes(
        self, contract: Contract, older: Version | None, newer: Version
    ) -> VersionChanges:
        """What changed between two versions (the public diff), kept for the last
        :data:`DIFFS_KEPT` pairs asked: versions never change, and a wide diff of a large
        dataset reads every key it touched."""
        key = (
            contract.dataset, tuple(contract.item_names), tuple(contract.key),
            older.snapshot_id if older else None, newer.snapshot_id,
        )  # fmt: skip
        with self._lock:
            if key in self._diffs:
                self._diffs.move_to_end(key)
                return self._diffs[key]
        with self.reader() as con:
            found = version_changes(con, contract, older, newer)
        with self._lock:
            self._diffs[key] = found
            while len(self._diffs) > DIFFS_KEPT:
                self._diffs.popitem(last=False)
        return found

    def search_index(self) -> SearchIndex:
        """The catalog's search index, built on first use (segmenting loads a dictionary)."""
        with self._lock:
            if self._index is None:
                self._index = SearchIndex(self.contracts.values())
            return self._index

    def freshness(self, contract: Contract, latest: Version | None) -> Freshness:
        """The dataset's freshness against its update cycle, now."""
        return dataset_freshness(contract, latest, self.now(), self.settings.freshness_grace_ratio)

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        return local_day(self.clock(), self.settings.timezone)

    def provided_by(self, department_code: str) -> list[str]:
        """Datasets whose contract names this department as provider."""
        return [
            name for name, c in self.contracts.items() if c.catalog.provider.code == department_code
        ]

    def connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                self.lake.initialise()
                self._con = self.lake.connect(read_only=True)
            return self._con

    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cursor = self.connection().cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    reader = contextmanager(cursor)

    def close(self) -> None:
        self.copies.close()
        self.index.close()
        if self._con is not None:
            self._con.close()
            self._con = None
        self.store.close()
