"""Read-side queries over published data, within a caller's scope.

Readers always address a version's snapshot (``AT (VERSION => n)``), so a page never mixes
two versions even while a new one is being published. Only the scope's items are selected,
sensitive ones masked (or pseudonymised) unless the scope names them, and the scope's row
filter is a WHERE clause: all of it runs inside DuckDB. JSON is produced by DuckDB itself
too: building Python dicts per row is ten times slower.

Rows come ordered by key when the scope shows the key in clear. When it does not (masked,
pseudonymised or not granted), the order of the raw key would tell what the scope hides
(identity numbers sort by region and birth date), so rows come ordered by the key's keyed
pseudonym instead: stable for the scope, unrelated to the hidden digits. Pages go on by
offset or by cursor (:func:`next_cursor`, decision 49).

Exports (:data:`EXPORT_FORMATS`) all read one selection (:func:`_selection`: the scope's
items, masks, row filter and order), so a format changes how the rows are written, never
which rows or values a caller gets. DuckDB writes CSV and Parquet itself; the xlsx and
GeoJSON files are written from batches of rows, never all of them in memory.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import json
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from catalog.contracts import Contract, DataItem
from catalog.exchange.datapackage import DATA_FILE, datapackage
from catalog.ingest.rules import SQL_TYPES
from catalog.sharing.access import Scope, filter_sql
from catalog.sharing.masking import item_value_sql
from catalog.sharing.pseudonyms import hmac_sql
from catalog.sharing.views import RowView, shown_in_clear
from catalog.sql import quote_ident, sql_literal
from catalog.store.changes import CHANGES_TABLE
from catalog.store.copies import COPY_TABLE, ORDINAL, CopySpec, ReadCopies
from catalog.store.versions import Version, dataset_relation
from catalog.text import InputError

ExportFormat = Literal["csv", "csv_excel", "xlsx", "parquet", "geojson", "datapackage"]
EXPORT_FORMATS: dict[str, str] = {
    "csv": "CSV in UTF-8, data item names as headers (for programs)",
    "csv_excel": "CSV in UTF-8 with a byte-order mark, the items' Chinese labels as headers "
    "(opens as text in Excel on Chinese Windows)",
    "xlsx": "Excel workbook, the items' Chinese labels as headers",
    "parquet": "Parquet (zstd), data item names as columns",
    "geojson": "GeoJSON FeatureCollection: the geojson item as each feature's geometry, the "
    "other items as its properties (datasets with a geojson item)",
    "datapackage": "Frictionless data package (zip): datapackage.json with a Table Schema of "
    "the items as this scope shows them, and the rows as data.csv",
}
"""Export formats and what each file holds."""
XLSX_MAX_ROWS = 1_048_575
"""Rows an xlsx sheet holds below its header (Excel's limit is 1,048,576 rows)."""
XLSX_CELL_MAX = 32_767
"""Characters Excel holds in one cell."""
_DEFAULT = RowView()
# What a copy whose file was damaged, cut short or replaced raises (it is dropped, the page
# read from the lake); anything else (a forged cursor, a memory limit) is the page's error.
_DAMAGED = (
    duckdb.IOException,
    duckdb.InternalException,
    duckdb.CatalogException,
    duckdb.BinderException,
    duckdb.SerializationException,
)
_BATCH = 10_000  # rows fetched at a time when Python writes the file (xlsx, GeoJSON)
_BOM = "\ufeff".encode()
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


def key_shown(contract: Contract, scope: Scope) -> bool:
    """Whether the scope shows every key item in clear: only then may rows come ordered by
    the key and a cursor carry it (the order of a key not granted, or masked, would tell
    what the scope hides)."""
    return all(shown_in_clear(contract, scope, k) for k in contract.key)


def _hidden_key(contract: Contract, scope: Scope) -> bool:
    return not key_shown(contract, scope)


def order_sql(contract: Contract, scope: Scope, key: bytes) -> str:
    """The sort value of a scope's rows: the key in clear (a struct of its items where it
    has several), or its pseudonym (see module doc). Also what a keyset cursor holds."""
    if _hidden_key(contract, scope):
        parts = " || chr(31) || ".join(f"CAST({quote_ident(k)} AS VARCHAR)" for k in contract.key)
        return hmac_sql(key, parts)
    return _key_sql(contract)


def _key_sql(contract: Contract) -> str:
    if len(contract.key) == 1:
        return quote_ident(contract.key[0])
    return "{" + ", ".join(f"{sql_literal(k)}: {quote_ident(k)}" for k in contract.key) + "}"


def order_by_sql(contract: Contract, scope: Scope, key: bytes, view: RowView) -> str:
    """The ORDER BY of a scope's rows in a view: the view's sort, then :func:`order_sql`
    (so the order is total: pages never overlap or skip a row)."""
    return ", ".join([*(s.sql for s in view.sort), f"{order_sql(contract, scope, key)} ASC"])


def uses_key_cursor(contract: Contract, scope: Scope, view: RowView) -> bool:
    """Whether a walk goes on after a key (the key shown in clear and the rows in its order)
    or from a row number."""
    return key_shown(contract, scope) and not view.sort


def _after_sql(contract: Contract, scope: Scope) -> str:
    """The sort value a cursor names, from one parameter per key item (or the pseudonym)."""
    if _hidden_key(contract, scope):
        return "CAST(? AS VARCHAR)"
    typed = {k: f"CAST(? AS {SQL_TYPES[contract.item(k).type]})" for k in contract.key}
    if len(contract.key) == 1:
        return typed[contract.key[0]]
    return "{" + ", ".join(f"{sql_literal(k)}: {v}" for k, v in typed.items()) + "}"


def cursor_values(contract: Contract, last: object) -> list:
    """The parameters of :func:`_after_sql` from a page's ``last`` sort value (decoded JSON)."""
    if isinstance(last, dict):
        return [last.get(k) for k in contract.key]
    return [last]


def count_rows(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    version: Version,
    scope: Scope,
    view: RowView = _DEFAULT,
) -> int:
    """Rows of the version the scope can see in the view (the version's count unfiltered)."""
    relation = dataset_relation(contract, version)
    return _count(con, version, relation, filter_sql((*scope.row_filter, *view.filters)))


def _count(con: duckdb.DuckDBPyConnection, version: Version, relation: str, where: str) -> int:
    if where == "TRUE":
        return version.row_count
    sql = f"SELECT count(*) FROM {relation} WHERE {where}"
    return int(con.execute(sql).fetchone()[0])


@dataclass(frozen=True)
class Page:
    rows: str
    """A JSON array of the page's rows."""
    served: int
    last: str | None
    """The key of the page's last row, as JSON (what ``after`` continues from), or None for
    an empty page and where a walk goes on by row number."""
    total: int
    """Rows of the version in the scope and view."""
    last_ordinal: int | None = None
    """Where the last row lies in the copy it was read from, when that copy holds the rows
    in key order and unfiltered: the next page's cursor carries it as a hint."""


@dataclass(frozen=True)
class _Query:
    """What a page of the version selects, however it is read: each row as a JSON record,
    the key (or its pseudonym) and ``bound``, the SQL of a cursor's key value (a parameter
    per key item), the order and the filter; ``last``, the SQL of what the page reports as
    its last row's key (NULL where a walk goes on by row number)."""

    version: Version
    relation: str
    record: str
    key: str
    bound: str
    single_key: bool
    order_by: str
    where: str
    last: str


def copy_spec(contract: Contract, version: Version, order_by: str) -> CopySpec:
    """The copy of the version whose rows are in this order (every item: one copy serves
    every scope reading in that order)."""
    return CopySpec(
        version, tuple(item.name for item in contract.items), order_by,
        dataset_relation(contract, version),
    )  # fmt: skip


def key_order_copy(contract: Contract, version: Version) -> CopySpec:
    """The copy that every scope showing the key in clear reads in the default order: worth
    building as soon as a version is published."""
    return copy_spec(contract, version, f"{_key_sql(contract)} ASC")


def rows_json(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    version: Version,
    scope: Scope,
    *,
    limit: int,
    offset: int,
    pseudonym_key: bytes,
    after: list | None = None,
    hint: int | None = None,
    view: RowView = _DEFAULT,
    copies: ReadCopies | None = None,
    columns: tuple[str, ...] | None = None,
) -> Page:
    """One page of rows in the scope's order: from ``offset``, or (keyset) right after the
    row whose key is ``after`` (the ``last`` of the page before, decoded from JSON): the
    walk is stable while other versions are published. ``hint``: where that row lay in the
    copy, if the page before said so (checked against ``after`` before it is used).

    Read from the version's copy in this order where it is built (decision 50), else from
    the lake: same rows, same order. The page is chosen first and masked after: masking
    every row before choosing made a page of 1,000 out of 1M rows take twice as long.

    ``columns``: the scope's items each record holds, in this order (all by default). Only
    the record is cut down: the masks are the scope's, whichever items are asked for."""
    values = _values(contract, scope, pseudonym_key)
    if columns is not None:
        shown = {item.name: (item, value) for item, value in values}
        values = [shown[name] for name in columns]
    key = order_sql(contract, scope, pseudonym_key)
    query = _Query(
        version=version,
        relation=dataset_relation(contract, version),
        record="{" + ", ".join(f"{sql_literal(item.name)}: {v}" for item, v in values) + "}",
        key=key,
        bound=_after_sql(contract, scope),
        single_key=len(contract.key) == 1,
        order_by=order_by_sql(contract, scope, pseudonym_key, view),
        where=filter_sql((*scope.row_filter, *view.filters)),
        last=key if uses_key_cursor(contract, scope, view) else "NULL",
    )
    try:
        # No copy for a sort of several items: the combinations are too many to keep a copy
        # of each (decision 50).
        if copies is not None and len(view.sort) <= 1:
            spec = copy_spec(contract, version, query.order_by)
            with copies.use(spec) as alias:
                if alias is not None:
                    try:
                        return _copy_page(con, copies, alias, query, limit, offset, after, hint)
                    except _DAMAGED as error:  # the file is not the copy: read the lake
                        copies.discard(spec, error)
        return _lake_page(con, query, limit, offset, after)
    except duckdb.ConversionException as error:  # a forged cursor's value, not the key's type
        raise InputError("the cursor's value is not of the key's type", _AFTER) from error


def _rows(
    con: duckdb.DuckDBPyConnection, chosen: str, position: str, parameters: list
) -> list[tuple[str, str | None, int]]:
    """The rows ``chosen`` selects (``_record``, ``_key`` and ``position``), in order: each
    row's JSON and key's JSON from DuckDB (DuckDB's list aggregate and its JSON cost a third
    of a page of 100) and its position."""
    return con.execute(
        f"SELECT CAST(to_json(_record) AS VARCHAR), CAST(to_json(_key) AS VARCHAR), {position} "
        f"FROM ({chosen}) ORDER BY {position}",
        parameters,
    ).fetchall()


def _page(rows: list[tuple[str, str | None, int]], total: int, ordinals: bool = False) -> Page:
    """A page of :func:`_rows`; ``ordinals``: their positions are a copy's in key order."""
    last = rows[-1] if rows else (None, None, None)
    return Page(
        "[" + ",".join(row[0] for row in rows) + "]",
        len(rows),
        last[1],
        total,
        last[2] if ordinals else None,
    )


def _lake_page(
    con: duckdb.DuckDBPyConnection, query: _Query, limit: int, offset: int, after: list | None
) -> Page:
    where, parameters = query.where, []
    if after is not None:
        where = f"({where}) AND {query.key} > {query.bound}"
        parameters = list(after)
    chosen = (
        f"SELECT {query.record} AS _record, _key, "
        f"row_number() OVER (ORDER BY {query.order_by}) AS _n FROM ("
        f"  SELECT *, {query.last} AS _key FROM {query.relation}"
        f"  WHERE {where} ORDER BY {query.order_by} LIMIT ? OFFSET ?"
        f")"
    )
    total = _count(con, query.version, query.relation, query.where)
    return _page(_rows(con, chosen, "_n", [*parameters, limit, offset]), total)


_STRIDE = 256  # a copy's marks: the position of every 256th row in the view


@dataclass(frozen=True)
class _Marks:
    """Where a filtered view's rows lie in a copy: their count, and the ``_ord`` of its rows
    0, 256, 512... (None when every row is in the view: then rank and ``_ord`` agree).
    Computed once per copy and filter: they turn a page's rank into a range of ``_ord``."""

    count: int
    every: list[int] | None

    def from_rank(self, rank: int, limit: int) -> tuple[int, int | None, int]:
        """``_ord`` bounds [low, high) and rows to skip within them for ranks from ``rank``."""
        if self.every is None:
            return rank, rank + limit, 0
        first, last = rank // _STRIDE, (rank + limit - 1) // _STRIDE + 1
        high = self.every[last] if last < len(self.every) else None
        return self.every[first], high, rank - first * _STRIDE

    def after(self, ordinal: int, limit: int) -> tuple[int, int | None, int]:
        """The same for the rows after ``_ord`` ``ordinal``."""
        if self.every is None:
            return ordinal + 1, ordinal + 1 + limit, 0
        last = bisect.bisect_right(self.every, ordinal) + -(-limit // _STRIDE)
        high = self.every[last] if last < len(self.every) else None
        return ordinal + 1, high, 0


def _marks(con: duckdb.DuckDBPyConnection, table: str, where: str, rows: int) -> _Marks:
    if where == "TRUE":
        return _Marks(rows, None)
    count, every = con.execute(
        f"SELECT count(*), coalesce(list({ORDINAL} ORDER BY {ORDINAL}) "
        f"FILTER (WHERE _r % {_STRIDE} = 0), []) FROM ("
        f"  SELECT {ORDINAL}, row_number() OVER (ORDER BY {ORDINAL}) - 1 AS _r "
        f"  FROM {table} WHERE {where})"
    ).fetchone()
    return _Marks(int(count), list(every))


def _copy_page(
    con: duckdb.DuckDBPyConnection,
    copies: ReadCopies,
    alias: str,
    query: _Query,
    limit: int,
    offset: int,
    after: list | None,
    hint: int | None = None,
) -> Page:
    table = f"{alias}.{COPY_TABLE}"
    marks = copies.memo(
        (alias, query.where), lambda: _marks(con, table, query.where, query.version.row_count)
    )
    assert isinstance(marks, _Marks)
    key_order = marks.every is None and query.last != "NULL"  # rows in key order, unfiltered
    if after is not None and hint is not None and key_order and query.single_key:
        hinted = _hinted_page(con, query, table, limit, after[0], hint)
        if hinted is not None:
            return _page(hinted, marks.count, ordinals=True)
    if after is None:
        if offset >= marks.count:
            return Page("[]", 0, None, marks.count)
        low, high, skip = marks.from_rank(offset, limit)
    else:
        low, high, skip = marks.after(_ordinal_of(con, copies, alias, query, after), limit)
    bounds = f"{ORDINAL} >= {low}" + (f" AND {ORDINAL} < {high}" if high is not None else "")
    chosen = (
        f"SELECT {query.record} AS _record, {query.last} AS _key, {ORDINAL} FROM ("
        f"  SELECT * FROM {table} WHERE {bounds} AND ({query.where})"
        f"  ORDER BY {ORDINAL} LIMIT ? OFFSET ?"
        f")"
    )
    return _page(_rows(con, chosen, ORDINAL, [limit, skip]), marks.count, key_order)


def _hinted_page(
    con: duckdb.DuckDBPyConnection, query: _Query, table: str, limit: int, after: object, hint: int
) -> list[tuple[str, str | None, int]] | None:
    """The rows after the cursor's key read from the row its hint names, if that row holds
    the key: one range of ``_ord`` and no lookup of the key (a forged hint finds another
    key, and the page is chosen by key instead)."""
    chosen = (
        f"SELECT {query.record} AS _record, {query.last} AS _key, {ORDINAL} "
        f"FROM {table} WHERE {ORDINAL} >= {hint} AND {ORDINAL} <= {hint + limit}"
    )
    rows = _rows(con, chosen, ORDINAL, [])
    if not rows or rows[0][2] != hint or rows[0][1] is None or json.loads(rows[0][1]) != after:
        return None
    return rows[1:]


def _ordinal_of(
    con: duckdb.DuckDBPyConnection, copies: ReadCopies, alias: str, query: _Query, after: list
) -> int:
    """The ``_ord`` of the last row whose key is at most ``after`` (-1 if none) in a copy in
    key order. Text keys share long prefixes (identity numbers: region and birth year), which
    DuckDB's zone maps do not tell apart, so a lookup by key scanned the whole copy (4 ms at
    1M rows): the key of every 256th row, kept per copy, narrows it to one stretch first."""
    table = f"{alias}.{COPY_TABLE}"
    if query.single_key:
        with contextlib.suppress(TypeError):  # a forged cursor's value of another type
            return _ordinal_by_sample(con, copies, alias, query.key, after[0])
    below = f"SELECT count(*) FROM {table} WHERE {query.key} <= {query.bound}"
    return int(con.execute(below, list(after)).fetchone()[0]) - 1


def _ordinal_by_sample(
    con: duckdb.DuckDBPyConnection, copies: ReadCopies, alias: str, key: str, after: object
) -> int:
    """:func:`_ordinal_of` for a key of one item, by bisection in Python: first in the keys
    of every 256th row (kept per copy), then in the 256 keys of that stretch. (A WHERE on
    the key within the stretch was slower than the stretch itself: DuckDB evaluated it
    beyond the stretch.) Python orders text by code point, as DuckDB orders UTF-8 bytes."""
    table = f"{alias}.{COPY_TABLE}"

    def sample() -> list:
        every = f"SELECT {key} FROM {table} WHERE {ORDINAL} % {_STRIDE} = 0 ORDER BY {ORDINAL}"
        return [v for (v,) in con.execute(every).fetchall()]

    keys = copies.memo((alias, "keys"), sample)
    assert isinstance(keys, list)
    low = max(bisect.bisect_right(keys, after) - 1, 0) * _STRIDE
    stretch = con.execute(
        f"SELECT {key} FROM {table} WHERE {ORDINAL} >= {low} AND {ORDINAL} < {low + _STRIDE} "
        f"ORDER BY {ORDINAL}"
    ).fetchall()
    return low + bisect.bisect_right([v for (v,) in stretch], after) - 1


_AFTER = ("query", "after")
_NOT_A_CURSOR = "not a cursor of this API: pass the `next` of a page"
_LARGEST = 2**53  # versions, positions: exact in JSON and JavaScript
_KEY_INT = 2**63  # a BIGINT key's bound


@dataclass(frozen=True)
class Cursor:
    """Where a keyset walk goes on: its version, and after the sort value ``after`` (the key,
    where the scope shows it in clear and rows come in its order) or from row ``position``
    of the view (otherwise: the version is immutable, so the position names the same row on
    every call); ``view``, the signature of the order and filters it walks."""

    version: int
    after: list | None = None
    position: int | None = None
    view: str = ""
    hint: int | None = None
    """With ``after``: the row number in the key-order copy of the row whose key it is."""


def encode_cursor(cursor: Cursor) -> str:
    """URL-safe text of a cursor. Not a secret: it holds a key the caller sees in clear, or a
    row number."""
    document: dict = {"v": cursor.version}
    if cursor.after is not None:
        document["a"] = cursor.after
        if cursor.hint is not None:
            document["h"] = cursor.hint
    else:
        document["o"] = cursor.position
    if cursor.view:
        document["w"] = cursor.view
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def next_cursor(
    contract: Contract,
    scope: Scope,
    version: int,
    page: Page,
    start: int,
    limit: int,
    view: RowView = _DEFAULT,
) -> Cursor | None:
    """The cursor of the page after ``page`` (which began at row ``start``), or None when it
    was the last one."""
    if page.served < limit:
        return None
    if uses_key_cursor(contract, scope, view) and page.last is not None:
        last = cursor_values(contract, json.loads(page.last))
        return Cursor(version, after=last, view=view.signature, hint=page.last_ordinal)
    return Cursor(version, position=start + page.served, view=view.signature)


def decode_cursor(contract: Contract, scope: Scope, text: str, view: RowView = _DEFAULT) -> Cursor:
    """A cursor from the text of :func:`encode_cursor`; :class:`InputError` (422 on
    ``after``) for anything else, for a cursor of another order or filters than ``view``,
    and for a key bound where the scope does not show the key in clear or the rows are in
    another order (bounds would let a caller search for the values it hides)."""
    try:
        padded = text + "=" * (-len(text) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        version = document["v"]
        after, position = document.get("a"), document.get("o")
        walked, hint = document.get("w", ""), document.get("h")
    except (ValueError, TypeError, KeyError, UnicodeError, AttributeError) as error:
        raise InputError(_NOT_A_CURSOR, _AFTER) from error
    if not _whole(version, 1, _LARGEST) or (after is None) == (position is None):
        raise InputError(_NOT_A_CURSOR, _AFTER)
    if walked != view.signature:
        raise InputError(
            "this cursor walks another sort or other filters: pass the same ones as the page "
            "it came from (its `next_url` has them)",
            _AFTER,
        )
    if position is not None:
        if not _whole(position, 0, _LARGEST):
            raise InputError(_NOT_A_CURSOR, _AFTER)
        return Cursor(version, position=position, view=walked)
    if not uses_key_cursor(contract, scope, view):
        raise InputError("this cursor is not one of your pages: pass their `next`", _AFTER)
    if not isinstance(after, list) or len(after) != len(contract.key):
        raise InputError(_NOT_A_CURSOR, _AFTER)
    if not all(_whole(v, -_KEY_INT, _KEY_INT - 1) or _text(v) for v in after):
        raise InputError(_NOT_A_CURSOR, _AFTER)
    if hint is not None and not _whole(hint, 0, _LARGEST):
        raise InputError(_NOT_A_CURSOR, _AFTER)
    return Cursor(version, after=after, view=walked, hint=hint)


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _text(value: object) -> bool:
    # NUL: DuckLake writes a key bound into its catalog's SQL, where NUL ends the text.
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from JSON's \ud800
        return False
    return True


def _neutralised(item: DataItem, value: str) -> str:
    """A CSV cell that cannot start a formula: text starting with one gets a leading quote
    (OWASP). Only text items can hold one; numbers and dates are left alone."""
    if item.type not in ("string", "geojson"):
        return value
    text = f"CAST({value} AS VARCHAR)"
    test = f"regexp_matches({text}, '{_FORMULA_START}')"
    return f"CASE WHEN {test} THEN '''' || {text} ELSE {text} END"


class ExportError(InputError):
    """An export format the dataset, the scope or the data cannot be written in; a 422 on
    the ``format`` parameter saying why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ("query", "format"))


def geometry_item(contract: Contract) -> DataItem | None:
    """The dataset's geojson item (its features' geometry), if it has one."""
    return next((item for item in contract.items if item.type == "geojson"), None)


def check_export_format(contract: Contract, fmt: ExportFormat) -> None:
    """ExportError if the dataset cannot be exported in ``fmt`` whatever the scope."""
    if fmt == "geojson" and geometry_item(contract) is None:
        raise ExportError(
            f"{contract.dataset} has no geojson data item: export it as csv, csv_excel, xlsx "
            "or parquet"
        )


def _headers(items: list[DataItem]) -> list[str]:
    """Column headers of a spreadsheet export: each item's Chinese label (with its name
    where two items share a label)."""
    labels = [item.label for item in items]
    return [
        label if labels.count(label) == 1 else f"{label}（{item.name}）"
        for label, item in zip(labels, items, strict=True)
    ]


def _selection(
    contract: Contract,
    version: Version,
    scope: Scope,
    pseudonym_key: bytes,
    *,
    neutralise: bool,
    headers: list[str] | None = None,
) -> tuple[str, list[DataItem]]:
    """The query every export format reads: the scope's items, masked as the scope says, its
    row filter, its order; CSV cells neutralised when ``neutralise``. Columns are named by
    item, or by ``headers``."""
    values = _values(contract, scope, pseudonym_key)
    if neutralise:
        values = [(item, _neutralised(item, value)) for item, value in values]
    items = [item for item, _ in values]
    names = headers or [item.name for item in items]
    columns = ", ".join(
        f"{value} AS {quote_ident(name)}" for (_, value), name in zip(values, names, strict=True)
    )
    query = (
        f"SELECT {columns} FROM {dataset_relation(contract, version)} "
        f"WHERE {filter_sql(scope.row_filter)} ORDER BY {order_sql(contract, scope, pseudonym_key)}"
    )
    return query, items


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path, options: str) -> int:
    target = str(path).replace("'", "''")
    row = con.execute(f"COPY ({query}) TO '{target}' ({options})").fetchone()
    return int(row[0]) if row else 0


def _batches(con: duckdb.DuckDBPyConnection, query: str) -> Iterator[list[tuple]]:
    cursor = con.execute(query)
    while batch := cursor.fetchmany(_BATCH):
        yield batch


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
    """Write the scope's rows of the version to a file in ``fmt``; returns the number of
    rows. Every format reads the same selection (:func:`_selection`): the scope's items,
    masks, row filter and order. CSV cells that a spreadsheet would run as formulas are
    neutralised; xlsx cells are typed text, never formulas; the stored data and the Parquet
    and GeoJSON exports keep the values as they are. ExportError (422) for a format the
    dataset, the scope or the data does not fit."""
    check_export_format(contract, fmt)
    if fmt == "csv":
        query, _ = _selection(contract, version, scope, pseudonym_key, neutralise=True)
        return _copy(con, query, path, "FORMAT csv, HEADER true")
    if fmt == "parquet":
        query, _ = _selection(contract, version, scope, pseudonym_key, neutralise=False)
        return _copy(con, query, path, "FORMAT parquet, COMPRESSION zstd")
    if fmt == "csv_excel":
        return _export_csv_excel(con, contract, version, scope, path, pseudonym_key)
    if fmt == "datapackage":
        return _export_datapackage(con, contract, version, scope, path, pseudonym_key)
    if fmt == "xlsx":
        return _export_xlsx(con, contract, version, scope, path, pseudonym_key)
    return _export_geojson(con, contract, version, scope, path, pseudonym_key)


def _export_datapackage(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    version: Version,
    scope: Scope,
    path: Path,
    pseudonym_key: bytes,
) -> int:
    """A zip of ``datapackage.json`` and ``data.csv``. The CSV keeps values as they are (no
    formula guard: a data package is read by programs against its schema, and a leading
    quote would break the patterns it declares)."""
    query, _ = _selection(contract, version, scope, pseudonym_key, neutralise=False)
    data = path.with_suffix(".data.csv")
    rows = _copy(con, query, data, "FORMAT csv, HEADER true")
    descriptor = json.dumps(datapackage(contract, version, scope), ensure_ascii=False, indent=2)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("datapackage.json", descriptor)
        archive.write(data, DATA_FILE)
    data.unlink()
    return rows


def _export_csv_excel(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    version: Version,
    scope: Scope,
    path: Path,
    key: bytes,
) -> int:
    """UTF-8 with a byte-order mark (Excel reads a CSV without one in the system code page,
    GBK on Chinese Windows) and the labels as headers; DuckDB writes the rows, the mark is
    put in front of them."""
    chosen = [item for item in contract.items if item.name in scope.items]
    query, _ = _selection(contract, version, scope, key, neutralise=True, headers=_headers(chosen))
    body = path.with_name(path.name + ".body")
    try:
        rows = _copy(con, query, body, "FORMAT csv, HEADER true")
        with path.open("wb") as target, body.open("rb") as source:
            target.write(_BOM)
            shutil.copyfileobj(source, target, 1 << 20)
    finally:
        body.unlink(missing_ok=True)
    return rows


def _xlsx_cell(sheet, item: DataItem, value: object) -> object:
    """A value as an xlsx cell. Text always stays text: openpyxl would store ``=…`` as a
    formula and ``#N/A`` as an error, so those become cells typed as strings. Text Excel
    cannot hold (over 32,767 characters, control characters) is an ExportError: cutting or
    changing it would hand out a value that is not the data."""
    if not isinstance(value, str):
        return value
    if len(value) > XLSX_CELL_MAX:
        raise ExportError(
            f"{item.name} ({item.label}) has values longer than the {XLSX_CELL_MAX:,} "
            "characters an Excel cell holds: export as csv_excel"
            + (" or geojson" if item.type == "geojson" else "")
        )
    if ILLEGAL_CHARACTERS_RE.search(value):
        raise ExportError(
            f"{item.name} ({item.label}) has values with control characters an xlsx file "
            "cannot hold: export as csv_excel"
        )
    cell = WriteOnlyCell(sheet, value=value)
    if cell.data_type != "s":  # a formula or an error code
        cell.data_type = "s"
    return cell


def _export_xlsx(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    version: Version,
    scope: Scope,
    path: Path,
    key: bytes,
) -> int:
    """One sheet, the labels in bold as headers, written row by row (openpyxl's write-only
    workbook keeps no sheet in memory: it streams the sheet to a temporary file, owner-only,
    until the workbook is saved)."""
    if count_rows(con, contract, version, scope) > XLSX_MAX_ROWS:
        raise ExportError(
            f"more than the {XLSX_MAX_ROWS:,} rows an Excel sheet holds: export as csv_excel"
        )
    query, items = _selection(contract, version, scope, key, neutralise=False)
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=contract.dataset[:31])
    bold = Font(bold=True)
    header = []
    for label in _headers(items):
        cell = WriteOnlyCell(sheet, value=label)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    rows = 0
    try:
        for batch in _batches(con, query):
            for row in batch:
                sheet.append(
                    [_xlsx_cell(sheet, item, value) for item, value in zip(items, row, strict=True)]
                )
            rows += len(batch)
    except BaseException:
        # Saving is what removes openpyxl's temporary file of the sheet; the partial
        # workbook goes at once.
        with contextlib.suppress(Exception):
            book.save(path)
        path.unlink(missing_ok=True)
        raise
    book.save(path)
    return rows


def _export_geojson(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    version: Version,
    scope: Scope,
    path: Path,
    key: bytes,
) -> int:
    """A FeatureCollection, one feature per row: the geojson item (stored as GeoJSON text)
    parsed as its geometry (null where empty), the scope's other items as its properties.
    DuckDB builds each feature's JSON; Python writes them out in batches."""
    geometry = geometry_item(contract)
    assert geometry is not None  # check_export_format
    if geometry.name not in scope.items:
        raise ExportError(
            f"the geojson export takes its geometry from {geometry.name} ({geometry.label}), "
            "which your scope does not include"
        )
    query, items = _selection(contract, version, scope, key, neutralise=False)
    properties = ", ".join(
        f"{sql_literal(item.name)}, q.{quote_ident(item.name)}"
        for item in items
        if item.name != geometry.name
    )
    feature = (
        "json_object('type', 'Feature', "
        f"'geometry', TRY_CAST(q.{quote_ident(geometry.name)} AS JSON), "
        f"'properties', json_object({properties}))"
    )
    # The selection's ORDER BY holds: a projection keeps the order of its input.
    features = f"SELECT CAST({feature} AS VARCHAR) FROM ({query}) q"
    rows = 0
    with path.open("w", encoding="utf-8") as out:
        out.write('{"type": "FeatureCollection", "features": [')
        for batch in _batches(con, features):
            out.write((",\n" if rows else "\n") + ",\n".join(text for (text,) in batch))
            rows += len(batch)
        out.write("\n]}\n")
    return rows


@dataclass(frozen=True)
class ScopeChanges:
    """A diff between two versions as one scope sees it (:func:`scope_changes`)."""

    counts: dict[str, int]
    items_changed: dict[str, int]
    sample: dict[str, list]


_SCOPE_CHANGES = "scope_changes"  # temp table of the connection computing them


def _shown_rows(
    contract: Contract, version: Version | None, scope: Scope, record: str, order: str
) -> str:
    """The touched keys' rows of a version as the scope shows them (its row filter)."""
    keys = ", ".join(quote_ident(k) for k in contract.key)
    if version is None:  # before the first version: no rows
        return f"SELECT {keys}, NULL AS _r, NULL AS _o FROM {CHANGES_TABLE} WHERE FALSE"
    return (
        f"SELECT {keys}, {record} AS _r, {order} AS _o "
        f"FROM (SELECT * FROM {dataset_relation(contract, version)}) "
        f"SEMI JOIN {CHANGES_TABLE} USING ({keys}) WHERE {filter_sql(scope.row_filter)}"
    )


def scope_changes(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    older: Version | None,
    newer: Version,
    scope: Scope,
    pseudonym_key: bytes,
    limit: int,
) -> ScopeChanges:
    """The change between two versions as the scope's rows show it, over the keys
    :func:`~catalog.store.changes.build_changes` left on this connection: a row the scope
    sees in ``newer`` only is added (it may have moved into the row filter), in ``older``
    only deleted, in both with a shown value that differs changed, naming those items. A
    change the scope cannot see (an item outside it, one masked alike before and after, a
    row outside its filter) is no change here. Up to ``limit`` rows of each kind, masked as
    in the scope's rows (added and changed as ``newer`` shows them, deleted as ``older``)."""
    values = _values(contract, scope, pseudonym_key)
    record = "{" + ", ".join(f"{sql_literal(item.name)}: {v}" for item, v in values) + "}"
    order = order_sql(contract, scope, pseudonym_key)
    match = " AND ".join(f"o.{quote_ident(k)} = n.{quote_ident(k)}" for k in contract.key)
    differs = ", ".join(
        f"CASE WHEN o._r[{sql_literal(item.name)}] IS DISTINCT FROM n._r[{sql_literal(item.name)}]"
        f" THEN {sql_literal(item.name)} END"
        for item, _ in values
    )
    first_key = quote_ident(contract.key[0])
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_SCOPE_CHANGES} AS "
        f"WITH o AS ({_shown_rows(contract, older, scope, record, order)}), "
        f"n AS ({_shown_rows(contract, newer, scope, record, order)}) "
        f"SELECT CASE WHEN o.{first_key} IS NULL THEN 'added' "
        f"WHEN n.{first_key} IS NULL THEN 'deleted' ELSE 'changed' END AS _kind, "
        f"coalesce(n._r, o._r) AS _r, coalesce(n._o, o._o) AS _o, "
        f"list_filter([{differs}], x -> x IS NOT NULL) AS _items "
        f"FROM o FULL JOIN n ON {match} "
        f"WHERE o.{first_key} IS NULL OR n.{first_key} IS NULL OR o._r IS DISTINCT FROM n._r"
    )
    counts = dict.fromkeys(("added", "deleted", "changed"), 0)
    counted = con.execute(f"SELECT _kind, count(*) FROM {_SCOPE_CHANGES} GROUP BY _kind")
    counts.update({kind: int(n) for kind, n in counted.fetchall()})
    items = con.execute(
        f"SELECT item, count(*) FROM (SELECT unnest(_items) AS item FROM {_SCOPE_CHANGES} "
        "WHERE _kind = 'changed') GROUP BY item ORDER BY count(*) DESC, item"
    ).fetchall()
    sample: dict[str, list] = {}
    for kind in counts:
        rows = con.execute(
            f"SELECT CAST(to_json(_r) AS VARCHAR), _items FROM {_SCOPE_CHANGES} "
            f"WHERE _kind = ? ORDER BY _o LIMIT ?",
            [kind, limit],
        ).fetchall()
        sample[kind] = [
            {"row": json.loads(row), "items": list(changed)}
            if kind == "changed"
            else json.loads(row)
            for row, changed in rows
        ]
    con.execute(f"DROP TABLE {_SCOPE_CHANGES}")
    return ScopeChanges(counts, {name: int(n) for name, n in items}, sample)
