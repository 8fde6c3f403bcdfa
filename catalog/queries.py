"""Read-side queries over published data: pages of rows of a dataset version, as JSON.

Readers always address a version's snapshot (``AT (VERSION => n)``), so a page never mixes
two versions even while a new one is being published. JSON is produced by DuckDB itself:
building Python dicts per row is ten times slower.
"""

from __future__ import annotations

import duckdb

from catalog.contracts import Contract
from catalog.masking import select_item_sql
from catalog.publish import published_table
from catalog.rules import quote_ident
from catalog.versions import Version


def version_relation(version: Version) -> str:
    return f"{published_table(version.dataset)} AT (VERSION => {int(version.snapshot_id)})"


def rows_json(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    version: Version,
    *,
    limit: int,
    offset: int,
) -> str:
    """A JSON array of one page of rows, ordered by key, sensitive items masked.

    The page is chosen first and masked after: masking every row before the top-N sort
    made a page of 1,000 out of 1M rows take twice as long."""
    columns = ", ".join(select_item_sql(item) for item in contract.items)
    order = ", ".join(quote_ident(k) for k in contract.key)
    row = con.execute(
        f"SELECT coalesce(to_json(list(t)), '[]') FROM ("
        f"  SELECT {columns} FROM ("
        f"    SELECT * FROM {version_relation(version)} ORDER BY {order} LIMIT ? OFFSET ?"
        f"  ) ORDER BY {order}"
        f") t",
        [limit, offset],
    ).fetchone()
    return str(row[0])
