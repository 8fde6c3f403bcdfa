"""Read-side queries over published data, within a caller's scope.

Readers always address a version's snapshot (``AT (VERSION => n)``), so a page never mixes
two versions even while a new one is being published. Only the scope's items are selected,
sensitive ones masked unless the scope names them, and the scope's row filter is a WHERE
clause: all of it runs inside DuckDB. JSON is produced by DuckDB itself too: building
Python dicts per row is ten times slower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import duckdb

from catalog.access import Scope, filter_sql
from catalog.contracts import Contract
from catalog.masking import select_item_sql
from catalog.publish import published_table
from catalog.rules import quote_ident
from catalog.versions import Version

ExportFormat = Literal["csv", "parquet"]


def version_relation(version: Version) -> str:
    return f"{published_table(version.dataset)} AT (VERSION => {int(version.snapshot_id)})"


def _columns(contract: Contract, scope: Scope) -> str:
    chosen = [item for item in contract.items if item.name in scope.items]
    return ", ".join(select_item_sql(item, unmasked=item.name in scope.unmasked) for item in chosen)


def count_rows(con: duckdb.DuckDBPyConnection, version: Version, scope: Scope) -> int:
    """Rows of the version the scope can see (the version's count when unfiltered)."""
    if not scope.row_filter:
        return version.row_count
    where = filter_sql(scope.row_filter)
    sql = f"SELECT count(*) FROM {version_relation(version)} WHERE {where}"
    return int(con.execute(sql).fetchone()[0])


def rows_json(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    version: Version,
    scope: Scope,
    *,
    limit: int,
    offset: int,
) -> tuple[str, int]:
    """A JSON array of one page of rows ordered by key, and how many rows it holds.

    The page is chosen first and masked after: masking every row before the top-N sort
    made a page of 1,000 out of 1M rows take twice as long."""
    order = ", ".join(quote_ident(k) for k in contract.key)
    row = con.execute(
        f"SELECT coalesce(to_json(list(t)), '[]'), count(*) FROM ("
        f"  SELECT {_columns(contract, scope)} FROM ("
        f"    SELECT * FROM {version_relation(version)} WHERE {filter_sql(scope.row_filter)}"
        f"    ORDER BY {order} LIMIT ? OFFSET ?"
        f"  ) ORDER BY {order}"
        f") t",
        [limit, offset],
    ).fetchone()
    return str(row[0]), int(row[1])


def export_file(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    version: Version,
    scope: Scope,
    path: Path,
    fmt: ExportFormat,
) -> int:
    """Write the scope's rows of the version to a file; returns the number of rows."""
    order = ", ".join(quote_ident(k) for k in contract.key)
    options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet, COMPRESSION zstd"
    query = (
        f"SELECT {_columns(contract, scope)} FROM {version_relation(version)} "
        f"WHERE {filter_sql(scope.row_filter)} ORDER BY {order}"
    )
    target = str(path).replace("'", "''")
    row = con.execute(f"COPY ({query}) TO '{target}' ({options})").fetchone()
    return int(row[0]) if row else 0
