"""What changed in a dataset between two of its versions: the schema, and rows added,
deleted and changed by key.

The keys to look at come from DuckLake's change feed between the two snapshots
(``ducklake_table_changes``), so a small delivery into a large dataset reads only the
files it wrote. A publish replaces a row by deleting and re-inserting it, and versions in
between may add and remove the same key; so each touched key is then compared as the two
versions hold it: absent before = added, absent after = deleted, a value of an item both
versions have differs = changed (a row re-delivered with the same values is unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from catalog.contracts import Contract
from catalog.sql import quote_ident, sql_literal
from catalog.store.lake import LAKE
from catalog.store.versions import Version, dataset_relation, version_relation

KINDS = ("added", "deleted", "changed")
CHANGES_TABLE = "version_changes"  # temp table of the connection computing a diff


@dataclass(frozen=True)
class VersionChanges:
    counts: dict[str, int]
    """Rows added, deleted and changed."""
    items_changed: dict[str, int]
    """Changed rows per item whose value changed."""
    schema: dict
    """Items added and removed, and items whose stored type changed."""


def _columns(con: duckdb.DuckDBPyConnection, version: Version) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {version_relation(version)}").fetchall()
    return {name: kind for name, kind, *_ in rows if not name.startswith("_")}


def schema_changes(con: duckdb.DuckDBPyConnection, a: Version | None, b: Version) -> dict:
    """The items each version's rows have (the lake's columns at its snapshot), compared."""
    old, new = (_columns(con, a) if a else {}), _columns(con, b)
    return {
        "added": [name for name in new if name not in old],
        "removed": [name for name in old if name not in new],
        "type_changed": [
            {"item": name, "from": old[name], "to": new[name]}
            for name in new
            if name in old and old[name] != new[name]
        ],
    }


def _compared(contract: Contract, a: Version, b: Version) -> list[str]:
    """Items whose values are compared: the contract's that both versions have."""
    held = [set(v.items) if v.items is not None else None for v in (a, b)]
    return [
        item.name
        for item in contract.items
        if item.name not in contract.key and all(h is None or item.name in h for h in held)
    ]


def build_changes(
    con: duckdb.DuckDBPyConnection, contract: Contract, a: Version | None, b: Version
) -> str:
    """Fill a temp table (returned) with one row per key that differs between the versions:
    its key items, ``_kind`` and ``_items`` (the items whose value changed). ``a`` must be
    the older version; None before the first, where every row of ``b`` is added."""
    keys = [quote_ident(k) for k in contract.key]
    if a is None:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {CHANGES_TABLE} AS SELECT {', '.join(keys)}, "
            f"'added' AS _kind, []::VARCHAR[] AS _items FROM {dataset_relation(contract, b)}"
        )
        return CHANGES_TABLE
    compared = _compared(contract, a, b)
    feed = (
        f"ducklake_table_changes({sql_literal(LAKE)}, 'published', "
        f"{sql_literal(contract.dataset)}, {int(a.snapshot_id) + 1}, {int(b.snapshot_id)})"
    )
    key_list = ", ".join(keys)
    match = " AND ".join(f"o.{k} = n.{k}" for k in keys)
    changed_items = ", ".join(
        f"CASE WHEN o.{quote_ident(n)} IS DISTINCT FROM n.{quote_ident(n)} "
        f"THEN {sql_literal(n)} END"
        for n in compared
    )
    items = f"list_filter([{changed_items}], x -> x IS NOT NULL)" if compared else "[]"
    key_out = ", ".join(f"coalesce(n.{k}, o.{k}) AS {k}" for k in keys)
    old, new = (
        f"SELECT * FROM {dataset_relation(contract, v)} SEMI JOIN touched USING ({key_list})"
        for v in (a, b)
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {CHANGES_TABLE} AS "
        f"WITH touched AS (SELECT DISTINCT {key_list} FROM {feed}), "
        f"o AS ({old}), n AS ({new}) "
        f"SELECT {key_out}, "
        f"CASE WHEN o.{keys[0]} IS NULL THEN 'added' WHEN n.{keys[0]} IS NULL THEN 'deleted' "
        f"ELSE 'changed' END AS _kind, "
        f"CASE WHEN o.{keys[0]} IS NULL OR n.{keys[0]} IS NULL THEN [] ELSE {items} END AS _items "
        f"FROM o FULL JOIN n ON {match}"
    )
    con.execute(f"DELETE FROM {CHANGES_TABLE} WHERE _kind = 'changed' AND len(_items) = 0")
    return CHANGES_TABLE


def version_changes(
    con: duckdb.DuckDBPyConnection, contract: Contract, a: Version | None, b: Version
) -> VersionChanges:
    """Counts of rows added, deleted and changed from ``a`` to ``b`` (the older first), per
    item changed, and the schema diff. Leaves the keys in the temp table :data:`CHANGES_TABLE`
    for a sample (:func:`build_changes`)."""
    table = build_changes(con, contract, a, b)
    counts = dict.fromkeys(KINDS, 0)
    for kind, count in con.execute(
        f"SELECT _kind, count(*) FROM {table} GROUP BY _kind"
    ).fetchall():
        counts[kind] = int(count)
    items = dict(
        con.execute(
            f"SELECT item, count(*) FROM (SELECT unnest(_items) AS item FROM {table}) "
            "GROUP BY item ORDER BY count(*) DESC, item"
        ).fetchall()
    )
    return VersionChanges(counts, {k: int(v) for k, v in items.items()}, schema_changes(con, a, b))
