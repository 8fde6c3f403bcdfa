"""Quarantine and publish: the one step that writes a dataset's rows to the lake.

In one lake transaction: failing rows go to ``quarantine.<dataset>`` with their rules and
reasons; if the failure rate is within the contract's threshold, passing rows are upserted
by key into ``published.<dataset>`` and a version row is added. A crash before COMMIT
leaves the previous version untouched (DuckLake commits are atomic).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from catalog.contracts import Contract
from catalog.lake import LAKE, Lake
from catalog.rules import SQL_TYPES, quote_ident, sql_literal, typed_sql
from catalog.staging import STAGING_TABLE, SourceFile, staging_path
from catalog.validation import VERDICTS_TABLE, QualitySummary, reasons_relation
from catalog.versions import Version, insert_version, next_snapshot_id, next_version_number

LINEAGE_COLUMNS = {"_source_file": "VARCHAR", "_source_row": "BIGINT", "_run_id": "VARCHAR"}
QUARANTINE_COLUMNS = {
    "_file": "VARCHAR",
    "_row": "BIGINT",
    "_rules": "VARCHAR[]",
    "_reasons": "VARCHAR",
    "_run_id": "VARCHAR",
    "_quarantined_at": "TIMESTAMP WITH TIME ZONE",
}


@dataclass(frozen=True)
class PublishResult:
    status: str  # published | rejected
    version: Version | None
    rows_published: int
    rows_quarantined: int


def published_table(dataset: str) -> str:
    return f"{LAKE}.published.{quote_ident(dataset)}"


def quarantine_table(dataset: str) -> str:
    return f"{LAKE}.quarantine.{quote_ident(dataset)}"


def schema_hash(contract: Contract) -> str:
    shape = [(item.name, SQL_TYPES[item.type]) for item in contract.items]
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


def _ensure_tables(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    items = ", ".join(f"{quote_ident(i.name)} {SQL_TYPES[i.type]}" for i in contract.items)
    lineage = ", ".join(f"{name} {kind}" for name, kind in LINEAGE_COLUMNS.items())
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {published_table(contract.dataset)} ({items}, {lineage})"
    )
    text_items = ", ".join(f"{quote_ident(i.name)} VARCHAR" for i in contract.items)
    extra = ", ".join(f"{name} {kind}" for name, kind in QUARANTINE_COLUMNS.items())
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {quarantine_table(contract.dataset)} ({text_items}, {extra})"
    )


def _quarantine(
    con: duckdb.DuckDBPyConnection, contract: Contract, run_id: str, now: datetime
) -> int:
    items = ", ".join(f"s.{quote_ident(i.name)}" for i in contract.items)
    con.execute(
        f"INSERT INTO {quarantine_table(contract.dataset)} "
        f"SELECT {items}, s._file, s._row, v._rules, r._reasons, ?, ? "
        f"FROM stg.{STAGING_TABLE} s JOIN stg.{VERDICTS_TABLE} v USING (_rid) "
        f"JOIN {reasons_relation('stg')} r USING (_rid)",
        [run_id, now],
    )
    return int(con.execute(f"SELECT count(*) FROM stg.{VERDICTS_TABLE}").fetchone()[0])


def _upsert(con: duckdb.DuckDBPyConnection, contract: Contract, run_id: str) -> None:
    """Replace rows with the same key, then insert the passing rows, typed."""
    table = published_table(contract.dataset)
    passing = f"stg.{STAGING_TABLE} s ANTI JOIN stg.{VERDICTS_TABLE} v USING (_rid)"
    keys = ", ".join(quote_ident(k) for k in contract.key)
    if con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]:
        typed_keys = ", ".join(
            f"{typed_sql(contract.item(k), 's.' + quote_ident(k))} AS {quote_ident(k)}"
            for k in contract.key
        )
        con.execute(
            f"DELETE FROM {table} WHERE ({keys}) IN (SELECT ({typed_keys}) FROM {passing})"
            if len(contract.key) > 1
            else f"DELETE FROM {table} WHERE {keys} IN (SELECT {typed_keys} FROM {passing})"
        )
    typed = ", ".join(
        f"{typed_sql(item, 's.' + quote_ident(item.name))} AS {quote_ident(item.name)}"
        for item in contract.items
    )
    con.execute(
        f"INSERT INTO {table} SELECT {typed}, s._file, s._row, {sql_literal(run_id)} FROM {passing}"
    )


@dataclass(frozen=True)
class Delivery:
    """What one publish works on: the staged, validated delivery of a dataset."""

    contract: Contract
    quality: QualitySummary
    sources: list[SourceFile]
    run_id: str
    at: datetime


def publish(
    lake: Lake,
    contract: Contract,
    quality: QualitySummary,
    sources: list[SourceFile],
    run_id: str,
) -> PublishResult:
    """Quarantine failing rows and, if the delivery passes its threshold, publish a version."""
    delivery = Delivery(contract, quality, sources, run_id, datetime.now(UTC))
    with lake.writer() as con:
        _ensure_tables(con, contract)
        staging = sql_literal(str(staging_path(lake.settings, contract.dataset)))
        con.execute(f"ATTACH {staging} AS stg (READ_ONLY)")
        try:
            return _publish_attached(con, delivery)
        finally:
            con.execute("DETACH stg")


def _new_version(con: duckdb.DuckDBPyConnection, delivery: Delivery) -> Version:
    dataset = delivery.contract.dataset
    table = published_table(dataset)
    return Version(
        dataset=dataset,
        version=next_version_number(con, dataset),
        snapshot_id=next_snapshot_id(con),
        row_count=int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]),
        schema_hash=schema_hash(delivery.contract),
        quality=delivery.quality.as_dict(),
        source_files=[s.as_dict() for s in delivery.sources],
        run_id=delivery.run_id,
        published_at=delivery.at,
    )


def _publish_attached(con: duckdb.DuckDBPyConnection, delivery: Delivery) -> PublishResult:
    contract, quality = delivery.contract, delivery.quality
    con.execute("BEGIN")
    try:
        quarantined = _quarantine(con, contract, delivery.run_id, delivery.at)
        if not quality.publishable:
            con.execute("COMMIT")
            return PublishResult("rejected", None, 0, quarantined)
        _upsert(con, contract, delivery.run_id)
        version = _new_version(con, delivery)
        insert_version(con, version)
        message = f"publish {contract.dataset} v{version.version}"
        info = json.dumps({"dataset": contract.dataset, "version": version.version})
        con.execute(
            f"CALL {LAKE}.set_commit_message('govshare', ?, extra_info => ?)", [message, info]
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    _check_snapshot(con, version)
    published = quality.rows_read - quality.rows_failed
    return PublishResult("published", version, published, quarantined)


def _check_snapshot(con: duckdb.DuckDBPyConnection, version: Version) -> None:
    """The version row must name the snapshot its own commit created."""
    row = con.execute(
        f"SELECT commit_extra_info FROM {LAKE}.snapshots() WHERE snapshot_id = ?",
        [version.snapshot_id],
    ).fetchone()
    info = json.loads(row[0]) if row and row[0] else {}
    if info.get("dataset") != version.dataset or info.get("version") != version.version:
        raise RuntimeError(
            f"version {version.dataset} v{version.version} recorded snapshot "
            f"{version.snapshot_id}, but that snapshot is {info or 'missing'}"
        )
