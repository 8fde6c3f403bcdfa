"""Quarantine you can work with: the rows a delivery could not publish, their rules and
reasons, and whether a later delivery has corrected them.

Every failing or stale row of every run is kept in ``quarantine.<dataset>`` (written by
:mod:`catalog.ingest.publish`). A row is

- ``resolved`` once a later published delivery carries a row with the same key: the
  publish transaction stamps it with that run, version and time (:func:`resolve_sql`);
- ``superseded`` when its only rule is ``stale`` (the published record was newer: there is
  nothing for the department to correct);
- ``open`` otherwise.

Who sees the values: the providing department sees its own rows in clear (it must find and
correct them); the office sees no values at all — it needs the rule, the reason, the file
and the row, not the person. Nobody else reads quarantine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import duckdb

from catalog.contracts import Contract
from catalog.sql import key_in, quote_ident
from catalog.store.lake import quarantine_table, table_exists

RESOLUTION_COLUMNS = {
    "_resolved_run_id": "VARCHAR",
    "_resolved_version": "BIGINT",
    "_resolved_at": "TIMESTAMP WITH TIME ZONE",
}
STATUSES = ("open", "resolved", "superseded")
Status = Literal["open", "resolved", "superseded"]
Viewer = Literal["owner", "office"]

_STATUS_SQL = (
    "CASE WHEN _resolved_at IS NOT NULL THEN 'resolved' "
    "WHEN _rules = ['stale'] THEN 'superseded' ELSE 'open' END"
)


def add_resolution_columns(con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    """Quarantine tables made before resolution was kept get its columns (once)."""
    table = quarantine_table(dataset)
    have = {d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description}
    for name, kind in RESOLUTION_COLUMNS.items():
        if name not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def resolve_sql(contract: Contract, published: str) -> str:
    """UPDATE marking the open rows of earlier runs whose key now publishes: ``published`` is
    the relation (alias ``s``) of the rows the delivery applies, keys as staged text.
    Parameters: run id, version, time, run id. Keys compare as normalised text, the form both
    quarantine and staging hold."""
    match = key_in(contract.key, [f"s.{quote_ident(k)}" for k in contract.key], published)
    return (
        f"UPDATE {quarantine_table(contract.dataset)} SET _resolved_run_id = ?, "
        f"_resolved_version = ?, _resolved_at = ? "
        f"WHERE _resolved_at IS NULL AND _run_id <> ? AND {match}"
    )


@dataclass(frozen=True)
class QuarantineQuery:
    """Which quarantined rows to list; ``run_id`` narrows to one delivery."""

    status: Status | None = None
    rule: str | None = None
    run_id: str | None = None
    limit: int = 100
    offset: int = 0


def _where(query: QuarantineQuery) -> tuple[str, list[object]]:
    parts, params = ["TRUE"], []
    if query.status:
        parts.append(f"{_STATUS_SQL} = ?")
        params.append(query.status)
    if query.rule:
        parts.append("list_contains(_rules, ?)")
        params.append(query.rule)
    if query.run_id:
        parts.append("_run_id = ?")
        params.append(query.run_id)
    return " AND ".join(parts), params


def _values(contract: Contract) -> str:
    """The row's items as one struct (a value lands under its own item's name even when the
    row was misaligned; the quarantine's own fields cannot shadow an item)."""
    fields = ", ".join(f"{quote_ident(i.name)}: {quote_ident(i.name)}" for i in contract.items)
    return "{" + fields + "}"


def list_rows(
    con: duckdb.DuckDBPyConnection, contract: Contract, query: QuarantineQuery, viewer: Viewer
) -> tuple[int, list[dict]]:
    """The total matching ``query`` and one page of rows, oldest first: file, row, rules,
    reason, run, status and what resolved it, and for the owner the row's ``values``. The
    office gets no values at all: a row is in quarantine because it is malformed, and a
    misaligned row carries an address in its region column, so redacting by column would
    not hold."""
    if not table_exists(con, "quarantine", contract.dataset):
        return 0, []
    where, params = _where(query)
    table = quarantine_table(contract.dataset)
    total = int(con.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()[0])
    values = f"{_values(contract)} AS values, " if viewer == "owner" else ""
    cursor = con.execute(
        f"SELECT {values}_file AS file, _row AS row, _rules AS rules, "
        f"_reasons AS reason, _run_id AS run_id, _quarantined_at AS quarantined_at, "
        f"{_STATUS_SQL} AS status, _resolved_run_id AS resolved_run_id, "
        f"_resolved_version AS resolved_version, _resolved_at AS resolved_at "
        f"FROM {table} WHERE {where} ORDER BY _quarantined_at, _file, _row "
        f"LIMIT {int(query.limit)} OFFSET {int(query.offset)}",
        params,
    )
    names = [d[0] for d in cursor.description]
    return total, [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass(frozen=True)
class QuarantineCounts:
    """Quarantined rows of one dataset by status, and the open ones by rule."""

    dataset: str
    provider_code: str
    provider_name: str
    open: int
    resolved: int
    superseded: int
    open_by_rule: dict[str, int]

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def counts(con: duckdb.DuckDBPyConnection, contracts: Iterable[Contract]) -> list[QuarantineCounts]:
    """Counts per dataset (every dataset, zero where nothing was ever quarantined)."""
    result = []
    for contract in contracts:
        by_status: Mapping[str, int] = {}
        by_rule: dict[str, int] = {}
        if table_exists(con, "quarantine", contract.dataset):
            table = quarantine_table(contract.dataset)
            by_status = dict(
                con.execute(f"SELECT {_STATUS_SQL}, count(*) FROM {table} GROUP BY ALL").fetchall()
            )
            by_rule = dict(
                con.execute(
                    f"SELECT r, count(*) FROM (SELECT unnest(_rules) AS r FROM {table} "
                    f"WHERE {_STATUS_SQL} = 'open') GROUP BY r ORDER BY r"
                ).fetchall()
            )
        provider = contract.catalog.provider
        result.append(
            QuarantineCounts(
                contract.dataset,
                provider.code,
                provider.name,
                int(by_status.get("open", 0)),
                int(by_status.get("resolved", 0)),
                int(by_status.get("superseded", 0)),
                {str(k): int(v) for k, v in by_rule.items()},
            )
        )
    return result


def by_department(rows: Iterable[QuarantineCounts]) -> dict[str, dict[str, int]]:
    """Open, resolved and superseded rows summed per providing department (by code)."""
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        dept = totals.setdefault(
            row.provider_code, {"open": 0, "resolved": 0, "superseded": 0, "datasets": 0}
        )
        dept["open"] += row.open
        dept["resolved"] += row.resolved
        dept["superseded"] += row.superseded
        dept["datasets"] += 1
    return totals
