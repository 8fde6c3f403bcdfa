"""What the API holds for its lifetime: settings, contracts and one read-only lake connection.

DuckDB connections are not shared across threads; each request takes its own cursor of the
long-lived connection (opening a lake connection costs ~0.3 s: extension loads and attach).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb

from catalog.contracts import Contract, load_contracts
from catalog.lake import Lake
from catalog.settings import Settings


@dataclass
class AppState:
    settings: Settings
    contracts: dict[str, Contract]
    lake: Lake
    _con: duckdb.DuckDBPyConnection | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, settings: Settings) -> AppState:
        return cls(settings, load_contracts(settings.schemas_dir), Lake(settings))

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

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
