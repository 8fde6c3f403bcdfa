"""Quarantine and publish: the one step that writes a dataset's rows to the lake.

In one lake transaction: failing rows go to ``quarantine.<dataset>`` with their rules and
reasons; if the failure rate is within the contract's threshold, passing rows are upserted
by key into ``published.<dataset>`` and a version row is added. A crash before COMMIT
leaves the previous version untouched (DuckLake commits are atomic).

Two guards keep a delivery from erasing newer data. A row older than the published row with
its key (by the contract's ``source.updated_at``) is stale: it is not applied, but kept in
quarantine with the reason and counted in the result with its key masked. And where the
contract takes partial updates, an item a file did not carry keeps its published value.
Both are worked out under the lake's write lock, before the transaction, so nothing can
publish in between.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from catalog.contracts import Contract
from catalog.ingest.rules import SQL_TYPES, typed_sql
from catalog.ingest.staging import FILES_TABLE, STAGING_TABLE, SourceFile, staging_path
from catalog.ingest.validation import VERDICTS_TABLE, QualitySummary, reasons_relation
from catalog.sharing.masking import mask_sql
from catalog.sql import quote_ident, sql_literal
from catalog.store.lake import LAKE, Lake, published_table, quarantine_table
from catalog.store.versions import Version, insert_version, next_snapshot_id, next_version_number

LINEAGE_COLUMNS = {"_source_file": "VARCHAR", "_source_row": "BIGINT", "_run_id": "VARCHAR"}
QUARANTINE_COLUMNS = {
    "_file": "VARCHAR",
    "_row": "BIGINT",
    "_rules": "VARCHAR[]",
    "_reasons": "VARCHAR",
    "_run_id": "VARCHAR",
    "_quarantined_at": "TIMESTAMP WITH TIME ZONE",
}
STALE_RULE = "stale"
STALE_SAMPLE = 10  # masked keys of stale rows kept in a run's result
_STALE = "stale_rows"  # temporary tables of the publishing connection
_PRIOR = "prior_rows"


@dataclass(frozen=True)
class PublishResult:
    status: str  # published | rejected
    version: Version | None
    rows_published: int
    rows_quarantined: int
    """Rows that failed a rule, and stale rows (both kept in quarantine)."""
    rows_stale: int = 0
    stale_keys: tuple[str, ...] = ()
    """A few keys of stale rows, masked as the key item's mask says."""


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


def _passing(stale: bool) -> str:
    """The rows to apply: staged, passing every rule, and (when any) not stale."""
    rows = f"stg.{STAGING_TABLE} s ANTI JOIN stg.{VERDICTS_TABLE} v USING (_rid)"
    return f"{rows} ANTI JOIN {_STALE} x USING (_rid)" if stale else rows


def _key_match(contract: Contract, staged: str, published: str) -> str:
    """Join condition of staged (text) keys with typed ones."""
    return " AND ".join(
        f"{typed_sql(contract.item(k), f'{staged}.{quote_ident(k)}')} = "
        f"{published}.{quote_ident(k)}"
        for k in contract.key
    )


def _find_stale(con: duckdb.DuckDBPyConnection, contract: Contract) -> int:
    """List the passing rows older than the published row with their key (temp table)."""
    stamp = contract.item(contract.source.updated_at)
    column = quote_ident(stamp.name)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_STALE} AS "
        f"SELECT s._rid, {typed_sql(stamp, 's.' + column)} AS _new, p.{column} AS _old "
        f"FROM {_passing(False)} JOIN {published_table(contract.dataset)} p "
        f"ON {_key_match(contract, 's', 'p')} "
        f"WHERE {typed_sql(stamp, 's.' + column)} < p.{column}"
    )
    return int(con.execute(f"SELECT count(*) FROM {_STALE}").fetchone()[0])


def _quarantine_stale(
    con: duckdb.DuckDBPyConnection, contract: Contract, run_id: str, now: datetime
) -> None:
    stamp = contract.item(contract.source.updated_at)
    items = ", ".join(f"s.{quote_ident(i.name)}" for i in contract.items)
    reason = (
        f"'stale: {stamp.label} ' || CAST(x._new AS VARCHAR) || ' is older than the published "
        f"record''s ' || CAST(x._old AS VARCHAR) || '; not applied'"
    )
    con.execute(
        f"INSERT INTO {quarantine_table(contract.dataset)} "
        f"SELECT {items}, s._file, s._row, [{sql_literal(STALE_RULE)}], {reason}, ?, ? "
        f"FROM stg.{STAGING_TABLE} s JOIN {_STALE} x USING (_rid)",
        [run_id, now],
    )


def _stale_keys(con: duckdb.DuckDBPyConnection, contract: Contract) -> tuple[str, ...]:
    """A few stale rows' keys, each key item masked as its contract says."""
    shown = " || '/' || ".join(
        f"coalesce({mask_sql(contract.item(k), 's.' + quote_ident(k))}, '')" for k in contract.key
    )
    rows = con.execute(
        f"SELECT {shown} FROM stg.{STAGING_TABLE} s JOIN {_STALE} x USING (_rid) "
        f"ORDER BY s._rid LIMIT {STALE_SAMPLE}"
    ).fetchall()
    return tuple(row[0] for row in rows)


def _keep_prior(con: duckdb.DuckDBPyConnection, contract: Contract, stale: bool) -> None:
    """Partial updates: the published rows the delivery touches, whose values stand for
    the items a file did not carry (temp table, before they are replaced)."""
    keys = ", ".join(quote_ident(k) for k in contract.key)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_PRIOR} AS SELECT p.* "
        f"FROM {published_table(contract.dataset)} p SEMI JOIN ("
        f"SELECT {keys} FROM {_passing(stale)}) s ON {_key_match(contract, 's', 'p')}"
    )


def _upsert(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    run_id: str,
    *,
    has_rows: bool,
    stale: bool,
    prior: bool,
) -> None:
    """Replace rows with the same key (``has_rows``: there are any), then insert the passing
    rows, typed. With ``prior`` (partial updates), an item the row's file did not carry keeps
    its published value."""
    table = published_table(contract.dataset)
    passing = _passing(stale)
    keys = ", ".join(quote_ident(k) for k in contract.key)
    if has_rows:
        typed_keys = ", ".join(
            f"{typed_sql(contract.item(k), 's.' + quote_ident(k))} AS {quote_ident(k)}"
            for k in contract.key
        )
        con.execute(
            f"DELETE FROM {table} WHERE ({keys}) IN (SELECT ({typed_keys}) FROM {passing})"
            if len(contract.key) > 1
            else f"DELETE FROM {table} WHERE {keys} IN (SELECT {typed_keys} FROM {passing})"
        )
    values = []
    for item in contract.items:
        value = typed_sql(item, "s." + quote_ident(item.name))
        if prior and item.name not in contract.key:
            carried = f"list_contains(f._items, {sql_literal(item.name)})"
            value = f"CASE WHEN {carried} THEN {value} ELSE o.{quote_ident(item.name)} END"
        values.append(f"{value} AS {quote_ident(item.name)}")
    source = passing
    if prior:
        source = (
            f"{passing} JOIN stg.{FILES_TABLE} f USING (_file_seq) "
            f"LEFT JOIN {_PRIOR} o ON {_key_match(contract, 's', 'o')}"
        )
    con.execute(
        f"INSERT INTO {table} "
        f"SELECT {', '.join(values)}, s._file, s._row, {sql_literal(run_id)} FROM {source}"
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
    """Quarantine failing rows and, if the delivery passes its threshold, publish a version.
    Waits for the lake's write lock at most ``lake_lock_timeout_seconds`` (else LakeBusy)."""
    delivery = Delivery(contract, quality, sources, run_id, datetime.now(UTC))
    with lake.writer() as con:
        _ensure_tables(con, contract)
        staging = sql_literal(str(staging_path(lake.settings, contract.dataset, run_id)))
        con.execute(f"ATTACH {staging} AS stg (READ_ONLY)")
        try:
            return _publish_attached(con, delivery)
        finally:
            con.execute(f"DROP TABLE IF EXISTS {_STALE}")
            con.execute(f"DROP TABLE IF EXISTS {_PRIOR}")
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
        source_files=[s.public_dict() for s in delivery.sources],
        run_id=delivery.run_id,
        published_at=delivery.at,
    )


def _publish_attached(con: duckdb.DuckDBPyConnection, delivery: Delivery) -> PublishResult:
    contract, quality = delivery.contract, delivery.quality
    has_rows = bool(
        con.execute(f"SELECT count(*) FROM {published_table(contract.dataset)}").fetchone()[0]
    )
    # Under the write lock and before the transaction: the published rows cannot change
    # meanwhile, and the temp tables stay out of the lake's commit.
    rows_stale = 0
    if quality.publishable and has_rows and contract.source.updated_at is not None:
        rows_stale = _find_stale(con, contract)
    stale = rows_stale > 0
    prior = quality.publishable and has_rows and contract.source.partial_updates
    if prior:
        _keep_prior(con, contract, stale)
    con.execute("BEGIN")
    try:
        quarantined = _quarantine(con, contract, delivery.run_id, delivery.at)
        if not quality.publishable:
            con.execute("COMMIT")
            return PublishResult("rejected", None, 0, quarantined)
        if stale:
            _quarantine_stale(con, contract, delivery.run_id, delivery.at)
        _upsert(con, contract, delivery.run_id, has_rows=has_rows, stale=stale, prior=prior)
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
    published = quality.rows_read - quality.rows_failed - rows_stale
    stale_keys = _stale_keys(con, contract) if stale else ()
    return PublishResult(
        "published", version, published, quarantined + rows_stale, rows_stale, stale_keys
    )


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
