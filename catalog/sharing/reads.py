"""Read-side queries over published data, within a caller's scope.

Readers always address a version's snapshot (``AT (VERSION => n)``), so a page never mixes
two versions even while a new one is being published. Only the scope's items are selected,
sensitive ones masked (or pseudonymised) unless the scope names them, and the scope's row
filter is a WHERE clause: all of it runs inside DuckDB. JSON is produced by DuckDB itself
too: building Python dicts per row is ten times slower.

Rows come ordered by key when the key is shown in clear. When it is not, the order of the
raw key would tell what the mask hides (identity numbers sort by region and birth date), so
rows come ordered by the key's keyed pseudonym instead: stable for the scope, unrelated to
the hidden digits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import duckdb

from catalog.contracts import Contract, DataItem
from catalog.sharing.access import Scope, filter_sql
from catalog.sharing.masking import item_value_sql
from catalog.sharing.pseudonyms import hmac_sql
from catalog.sql import quote_ident
from catalog.store.versions import Version, version_relation

ExportFormat = Literal["csv", "parquet"]
# Cells a spreadsheet would read as a formula (OWASP "CSV injection"), including the
# full-width forms a Chinese input method produces.
_FORMULA_START = "^[=+\\-@\\t\\r\\n＝＋－＠]"


def _values(contract: Contract, scope: Scope, key: bytes) -> list[tuple[DataItem, str]]:
    """Each item of the scope, in contract order, with the SQL of the value it shows."""
    chosen = [item for item in contract.items if item.name in scope.items]
    return [
        (
            item,
            item_value_sql(
                item,
                unmasked=item.name in scope.unmasked,
                pseudonym_key=key if item.name in scope.pseudonymised else None,
                redacted=item.name in scope.redacted,
            ),
        )
        for item in chosen
    ]


def _select_list(values: list[tuple[DataItem, str]]) -> str:
    return ", ".join(f"{value} AS {quote_ident(item.name)}" for item, value in values)


def order_sql(contract: Contract, scope: Scope, key: bytes) -> str:
    """The ORDER BY list of a scope: the key in clear, or its pseudonym (see module doc)."""
    hidden = [k for k in contract.key if k in contract.sensitive_items and k not in scope.unmasked]
    if not hidden:
        return ", ".join(quote_ident(k) for k in contract.key)
    parts = " || chr(31) || ".join(f"CAST({quote_ident(k)} AS VARCHAR)" for k in contract.key)
    return hmac_sql(key, parts)


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
    pseudonym_key: bytes,
) -> tuple[str, int]:
    """A JSON array of one page of rows in the scope's order, and how many rows it holds.

    The page is chosen first and masked after: masking every row before the top-N sort
    made a page of 1,000 out of 1M rows take twice as long."""
    columns = _select_list(_values(contract, scope, pseudonym_key))
    order = order_sql(contract, scope, pseudonym_key)
    row = con.execute(
        f"SELECT coalesce(to_json(list(t)), '[]'), count(*) FROM ("
        f"  SELECT {columns} FROM ("
        f"    SELECT *, {order} AS _order FROM {version_relation(version)}"
        f"    WHERE {filter_sql(scope.row_filter)} ORDER BY _order LIMIT ? OFFSET ?"
        f"  ) ORDER BY _order"
        f") t",
        [limit, offset],
    ).fetchone()
    return str(row[0]), int(row[1])


def _neutralised(item: DataItem, value: str) -> str:
    """A CSV cell that cannot start a formula: text starting with one gets a leading quote
    (OWASP). Only text items can hold one; numbers and dates are left alone."""
    if item.type not in ("string", "geojson"):
        return value
    text = f"CAST({value} AS VARCHAR)"
    test = f"regexp_matches({text}, '{_FORMULA_START}')"
    return f"CASE WHEN {test} THEN '''' || {text} ELSE {text} END"


def export_file(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    version: Version,
    scope: Scope,
    path: Path,
    fmt: ExportFormat,
    *,
    pseudonym_key: bytes,
) -> int:
    """Write the scope's rows of the version to a file; returns the number of rows.
    CSV cells that a spreadsheet would run as formulas are neutralised; the stored data
    and the Parquet export keep the values as they are."""
    values = _values(contract, scope, pseudonym_key)
    if fmt == "csv":
        values = [(item, _neutralised(item, value)) for item, value in values]
    columns = _select_list(values)
    options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet, COMPRESSION zstd"
    query = (
        f"SELECT {columns} FROM {version_relation(version)} "
        f"WHERE {filter_sql(scope.row_filter)} ORDER BY {order_sql(contract, scope, pseudonym_key)}"
    )
    target = str(path).replace("'", "''")
    row = con.execute(f"COPY ({query}) TO '{target}' ({options})").fetchone()
    return int(row[0]) if row else 0
