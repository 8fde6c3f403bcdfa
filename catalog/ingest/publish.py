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

from catalog.contracts import Contract, ContractError, load_contracts
from catalog.ingest.rules import SQL_TYPES, typed_sql
from catalog.ingest.staging import FILES_TABLE, STAGING_TABLE, SourceFile, staging_path
from catalog.ingest.validation import VERDICTS_TABLE, QualitySummary, reasons_relation
from catalog.quality.quarantine import RESOLUTION_COLUMNS, add_resolution_columns, resolve_sql
from catalog.quality.references import applies_sql, match_sql
from catalog.sharing.masking import mask_sql
from catalog.sql import key_in, quote_ident, sql_literal
from catalog.store.lake import LAKE, Lake, published_table, quarantine_table, table_exists
from catalog.store.releases import record_for_publish
from catalog.store.versions import (
    VERSIONS,
    Version,
    insert_version,
    next_snapshot_id,
    next_version_number,
)

LINEAGE_COLUMNS = {"_source_file": "VARCHAR", "_source_row": "BIGINT", "_run_id": "VARCHAR"}
QUARANTINE_COLUMNS = {
    "_file": "VARCHAR",
    "_row": "BIGINT",
    "_rules": "VARCHAR[]",
    "_reasons": "VARCHAR",
    "_run_id": "VARCHAR",
    "_quarantined_at": "TIMESTAMP WITH TIME ZONE",
    **RESOLUTION_COLUMNS,
}
STALE_RULE = "stale"
STALE_SAMPLE = 10  # masked keys of stale rows kept in a run's result
_STALE = "stale_rows"  # temporary tables of the publishing connection
_PRIOR = "prior_rows"
_ABSENT = "absent_keys"
_UNRESOLVED = "unresolved_rows"  # rows a blocking reference finds no target for
_EXCLUDED = "excluded_rows"  # stale and unresolved rows: quarantined, not applied


@dataclass(frozen=True)
class PublishResult:
    status: str  # published | rejected | unchanged
    version: Version | None
    rows_published: int
    rows_quarantined: int
    """Rows that failed a rule, and stale rows (both kept in quarantine)."""
    rows_stale: int = 0
    stale_keys: tuple[str, ...] = ()
    """A few keys of stale rows, masked as the key item's mask says."""
    rows_deleted: int = 0
    """Published rows the delivery deleted (deletion markers; keys absent from a full one)."""
    message: str = ""
    """Why nothing was published, when the reason is not the quality threshold."""


def schema_hash(contract: Contract) -> str:
    shape = [(item.name, SQL_TYPES[item.type]) for item in contract.items]
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


class SchemaChangeRefused(ValueError):
    """A contract changed a published item in a way its history cannot follow."""


def _ensure_tables(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """Create the dataset's tables, or add the items a contract added since (a column
    added to a DuckLake table is absent from its earlier snapshots: the versions before
    read it as NULL). An item removed from the contract is dropped from the published
    table: earlier versions keep it in their snapshots, and an item added again later
    starts empty rather than bringing back the values of before. The quarantine keeps every
    column (its rows are what was delivered). A published item's type cannot change."""
    items = ", ".join(f"{quote_ident(i.name)} {SQL_TYPES[i.type]}" for i in contract.items)
    lineage = ", ".join(f"{name} {kind}" for name, kind in LINEAGE_COLUMNS.items())
    published = published_table(contract.dataset)
    con.execute(f"CREATE TABLE IF NOT EXISTS {published} ({items}, {lineage})")
    text_items = ", ".join(f"{quote_ident(i.name)} VARCHAR" for i in contract.items)
    extra = ", ".join(f"{name} {kind}" for name, kind in QUARANTINE_COLUMNS.items())
    quarantine = quarantine_table(contract.dataset)
    con.execute(f"CREATE TABLE IF NOT EXISTS {quarantine} ({text_items}, {extra})")
    add_resolution_columns(con, contract.dataset)
    _add_items(con, contract, published, {i.name: SQL_TYPES[i.type] for i in contract.items})
    _drop_removed(con, contract, published)
    _add_items(con, contract, quarantine, {i.name: "VARCHAR" for i in contract.items})


def _drop_removed(con: duckdb.DuckDBPyConnection, contract: Contract, table: str) -> None:
    have = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()]
    for name in have:
        if name not in contract.item_names and name not in LINEAGE_COLUMNS:
            con.execute(f"ALTER TABLE {table} DROP COLUMN {quote_ident(name)}")


def _add_items(
    con: duckdb.DuckDBPyConnection, contract: Contract, table: str, wanted: dict[str, str]
) -> None:
    have = {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()}
    for name, kind in wanted.items():
        if name not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {quote_ident(name)} {kind}")
        elif have[name] != kind:
            raise SchemaChangeRefused(
                f"{contract.dataset}: item {name!r} was published as {have[name]} and the "
                f"contract now makes it {kind}; a published item keeps its type (earlier "
                f"versions hold it): add an item under a new name instead"
            )


def _columns(contract: Contract, extra: dict[str, str]) -> str:
    """The column list of an insert: a table whose contract gained or lost items has its
    columns in another order than the contract's items."""
    return ", ".join([*(quote_ident(i.name) for i in contract.items), *extra])


def _quarantine_target(contract: Contract) -> str:
    return f"{quarantine_table(contract.dataset)} ({_columns(contract, QUARANTINE_COLUMNS)})"


def _quarantine(
    con: duckdb.DuckDBPyConnection, contract: Contract, run_id: str, now: datetime
) -> int:
    items = ", ".join(f"s.{quote_ident(i.name)}" for i in contract.items)
    con.execute(
        f"INSERT INTO {_quarantine_target(contract)} "
        f"SELECT {items}, s._file, s._row, v._rules, r._reasons, ?, ?, NULL, NULL, NULL "
        f"FROM stg.{STAGING_TABLE} s JOIN stg.{VERDICTS_TABLE} v USING (_rid) "
        f"JOIN {reasons_relation('stg')} r USING (_rid)",
        [run_id, now],
    )
    return int(con.execute(f"SELECT count(*) FROM stg.{VERDICTS_TABLE}").fetchone()[0])


def _passing(excluded: bool) -> str:
    """The rows to apply: staged, passing every rule, and (``excluded``) neither stale nor
    unresolved by a blocking reference."""
    rows = f"stg.{STAGING_TABLE} s ANTI JOIN stg.{VERDICTS_TABLE} v USING (_rid)"
    return f"{rows} ANTI JOIN {_EXCLUDED} x USING (_rid)" if excluded else rows


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
        f"INSERT INTO {_quarantine_target(contract)} "
        f"SELECT {items}, s._file, s._row, [{sql_literal(STALE_RULE)}], {reason}, ?, ?, "
        f"NULL, NULL, NULL "
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
    if has_rows:
        typed = [typed_sql(contract.item(k), "s." + quote_ident(k)) for k in contract.key]
        con.execute(f"DELETE FROM {table} WHERE {key_in(contract.key, typed, passing)}")
    values = []
    for item in contract.items:
        value = typed_sql(item, "s." + quote_ident(item.name))
        if prior and item.name not in contract.key:
            carried = f"list_contains(f._items, {sql_literal(item.name)})"
            value = f"CASE WHEN {carried} THEN {value} ELSE o.{quote_ident(item.name)} END"
        values.append(f"{value} AS {quote_ident(item.name)}")
    source = passing
    marker = _marker_sql(contract, "s")
    if prior:
        source = (
            f"{passing} JOIN stg.{FILES_TABLE} f USING (_file_seq) "
            f"LEFT JOIN {_PRIOR} o ON {_key_match(contract, 's', 'o')}"
        )
    con.execute(
        f"INSERT INTO {table} ({_columns(contract, LINEAGE_COLUMNS)}) "
        f"SELECT {', '.join(values)}, s._file, s._row, {sql_literal(run_id)} FROM {source} "
        f"WHERE NOT ({marker})"
    )


def _marker_sql(contract: Contract, alias: str) -> str:
    """TRUE for a staged row that marks its key deleted (``source.deleted_when``)."""
    marker = contract.source.deleted_when
    if marker is None:
        return "FALSE"
    values = ", ".join(sql_literal(v) for v in marker.values)
    return f"coalesce({alias}.{quote_ident(marker.item)} IN ({values}), FALSE)"


def _typed_keys(contract: Contract, alias: str) -> str:
    return ", ".join(
        f"{typed_sql(contract.item(k), f'{alias}.{quote_ident(k)}')} AS {quote_ident(k)}"
        for k in contract.key
    )


def _count_absent(con: duckdb.DuckDBPyConnection, contract: Contract) -> int:
    """Published keys a full delivery does not carry at all (in no row, failing or not)."""
    keys = ", ".join(quote_ident(k) for k in contract.key)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_ABSENT} AS SELECT {keys} "
        f"FROM {published_table(contract.dataset)} EXCEPT "
        f"SELECT {_typed_keys(contract, 's')} FROM stg.{STAGING_TABLE} s"
    )
    return int(con.execute(f"SELECT count(*) FROM {_ABSENT}").fetchone()[0])


def _count_marked(con: duckdb.DuckDBPyConnection, contract: Contract, stale: bool) -> int:
    """Published rows whose key a passing deletion-marker row deletes."""
    if contract.source.deleted_when is None:
        return 0
    keys = ", ".join(quote_ident(k) for k in contract.key)
    return int(
        con.execute(
            f"SELECT count(*) FROM {published_table(contract.dataset)} p SEMI JOIN ("
            f"SELECT {keys} FROM {_passing(stale)} WHERE {_marker_sql(contract, 's')}) s "
            f"ON {_key_match(contract, 's', 'p')}"
        ).fetchone()[0]
    )


def _count_changes(con: duckdb.DuckDBPyConnection, contract: Contract, stale: bool) -> int:
    """Passing rows that are not already published exactly as they are (new keys and changed
    values); 0 for a re-export of what is published, whatever its bytes."""
    names = ", ".join(quote_ident(i.name) for i in contract.items)
    typed = ", ".join(
        f"{typed_sql(i, 's.' + quote_ident(i.name))} AS {quote_ident(i.name)}"
        for i in contract.items
    )
    return int(
        con.execute(
            f"SELECT count(*) FROM (SELECT {typed} FROM {_passing(stale)} "
            f"WHERE NOT ({_marker_sql(contract, 's')}) "
            f"EXCEPT SELECT {names} FROM {published_table(contract.dataset)})"
        ).fetchone()[0]
    )


@dataclass(frozen=True)
class Delivery:
    """What one publish works on: the staged, validated delivery of a dataset."""

    contract: Contract
    quality: QualitySummary
    sources: list[SourceFile]
    run_id: str
    at: datetime
    contracts: dict[str, Contract] | None = None
    """The contract folder's, for the catalog release the publish records (None: unreadable)."""


def _folder_contracts(lake: Lake) -> dict[str, Contract] | None:
    try:
        return load_contracts(lake.settings.schemas_dir)
    except ContractError:
        return None


def publish(
    lake: Lake,
    contract: Contract,
    quality: QualitySummary,
    sources: list[SourceFile],
    run_id: str,
) -> PublishResult:
    """Quarantine failing rows and, if the delivery passes its threshold, publish a version.
    Waits for the lake's write lock at most ``lake_lock_timeout_seconds`` (else LakeBusy)."""
    with lake.writer() as con:
        # Under the lock: the time and the folder's contracts are those of the release this
        # publish records, after any release recorded while it waited.
        delivery = Delivery(
            contract, quality, sources, run_id, datetime.now(UTC), _folder_contracts(lake)
        )
        _ensure_tables(con, contract)
        staging = sql_literal(str(staging_path(lake.settings, contract.dataset, run_id)))
        con.execute(f"ATTACH {staging} AS stg (READ_ONLY)")
        try:
            return _publish_attached(con, delivery)
        finally:
            con.execute(f"DROP TABLE IF EXISTS {_STALE}")
            con.execute(f"DROP TABLE IF EXISTS {_PRIOR}")
            for table in (_ABSENT, _UNRESOLVED, _EXCLUDED):
                con.execute(f"DROP TABLE IF EXISTS {table}")
            con.execute("DETACH stg")


def _new_version(
    con: duckdb.DuckDBPyConnection, delivery: Delivery, *, rows_deleted: int = 0
) -> Version:
    dataset = delivery.contract.dataset
    table = published_table(dataset)
    return Version(
        dataset=dataset,
        version=next_version_number(con, dataset),
        snapshot_id=next_snapshot_id(con),
        row_count=int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]),
        schema_hash=schema_hash(delivery.contract),
        quality={**delivery.quality.as_dict(), "rows_deleted": rows_deleted},
        source_files=[s.public_dict() for s in delivery.sources],
        run_id=delivery.run_id,
        published_at=delivery.at,
        items=tuple(item.name for item in delivery.contract.items),
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
    unresolved = _find_unresolved(con, contract) if quality.publishable else 0
    excluded = _exclude(con, stale, unresolved > 0)
    prior = quality.publishable and has_rows and contract.source.partial_updates
    if prior:
        _keep_prior(con, contract, excluded)
    refusal, absent, marked, unchanged = "", 0, 0, False
    if quality.publishable and has_rows:
        absent = _count_absent(con, contract) if contract.source.delivery == "full" else 0
        marked = _count_marked(con, contract, excluded)
        refusal = _deletion_refusal(con, contract, absent)
        changes = _count_changes(con, contract, excluded)
        unchanged = not (prior or absent or marked or unresolved or changes)
    con.execute("BEGIN")
    try:
        quarantined = _quarantine(con, contract, delivery.run_id, delivery.at)
        # Stale and unresolved rows (found only for a publishable delivery) are kept even
        # when nothing else changes or a full delivery is refused.
        if stale:
            _quarantine_stale(con, contract, delivery.run_id, delivery.at)
        if unresolved:
            _quarantine_unresolved(con, contract, delivery.run_id, delivery.at)
        if not quality.publishable or refusal or unchanged:
            con.execute("COMMIT")
            status = "unchanged" if unchanged and not refusal else "rejected"
            kept = quarantined + rows_stale + unresolved
            return PublishResult(status, None, 0, kept, rows_stale, message=refusal)
        _upsert(con, contract, delivery.run_id, has_rows=has_rows, stale=excluded, prior=prior)
        if absent:
            keys = [quote_ident(k) for k in contract.key]
            con.execute(
                f"DELETE FROM {published_table(contract.dataset)} "
                f"WHERE {key_in(contract.key, keys, _ABSENT)}"
            )
        version = _new_version(con, delivery, rows_deleted=absent + marked)
        con.execute(
            resolve_sql(contract, _passing(excluded)),
            [delivery.run_id, version.version, delivery.at, delivery.run_id],
        )
        insert_version(con, version)
        record_for_publish(con, contract, delivery.contracts, delivery.at)
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
    published = quality.rows_read - quality.rows_failed - rows_stale - unresolved
    stale_keys = _stale_keys(con, contract) if stale else ()
    published -= _marker_rows(con, contract, excluded)
    return PublishResult(
        "published",
        version,
        published,
        quarantined + rows_stale + unresolved,
        rows_stale,
        stale_keys,
        rows_deleted=absent + marked,
    )


def _find_unresolved(con: duckdb.DuckDBPyConnection, contract: Contract) -> int:
    """Passing rows a blocking reference finds no row for in its target's published table
    (temp table of _rid, rule, reason). A target never published is not checked."""
    parts = []
    for ref in contract.references:
        if not ref.blocking or not table_exists(con, "published", ref.dataset):
            continue
        rule = sql_literal(f"reference.{ref.name}")
        reason = sql_literal(f"{ref.description} (not found in {ref.dataset})")
        parts.append(
            f"SELECT s._rid, {rule} AS _rule, {reason} AS _reason FROM {_passing(False)} "
            f"WHERE {applies_sql(ref, 's')} AND NOT EXISTS (SELECT 1 FROM "
            f"{published_table(ref.dataset)} t WHERE {match_sql(ref, 's', 't')})"
        )
    if not parts:
        return 0
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_UNRESOLVED} AS "
        f"SELECT _rid, list(_rule) AS _rules, string_agg(_reason, '; ') AS _reasons "
        f"FROM ({' UNION ALL '.join(parts)}) GROUP BY _rid"
    )
    return int(con.execute(f"SELECT count(*) FROM {_UNRESOLVED}").fetchone()[0])


def _exclude(con: duckdb.DuckDBPyConnection, stale: bool, unresolved: bool) -> bool:
    """Gather the rows not to apply (stale, unresolved) into one temp table; True if any."""
    sources = [f"SELECT _rid FROM {_STALE}"] if stale else []
    sources += [f"SELECT _rid FROM {_UNRESOLVED}"] if unresolved else []
    if not sources:
        return False
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_EXCLUDED} AS {' UNION '.join(sources)}")
    return True


def _quarantine_unresolved(
    con: duckdb.DuckDBPyConnection, contract: Contract, run_id: str, now: datetime
) -> None:
    items = ", ".join(f"s.{quote_ident(i.name)}" for i in contract.items)
    con.execute(
        f"INSERT INTO {_quarantine_target(contract)} "
        f"SELECT {items}, s._file, s._row, u._rules, u._reasons, ?, ?, NULL, NULL, NULL "
        f"FROM stg.{STAGING_TABLE} s JOIN {_UNRESOLVED} u USING (_rid)",
        [run_id, now],
    )


def _marker_rows(con: duckdb.DuckDBPyConnection, contract: Contract, stale: bool) -> int:
    """Passing rows that were deletion markers (deleted their key, published nothing)."""
    if contract.source.deleted_when is None:
        return 0
    return int(
        con.execute(
            f"SELECT count(*) FROM {_passing(stale)} WHERE {_marker_sql(contract, 's')}"
        ).fetchone()[0]
    )


def _deletion_refusal(con: duckdb.DuckDBPyConnection, contract: Contract, absent: int) -> str:
    """Why a full delivery deleting too much of the register is refused ('' when it is not).
    Measured against the largest the register was over the past year, not only its size
    now, so that halving it delivery after delivery is refused as soon as the drop in all
    exceeds the limit."""
    if not absent:
        return ""
    table = published_table(contract.dataset)
    total = int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    largest = con.execute(
        f"SELECT max(row_count) FROM {VERSIONS} WHERE dataset = ? "
        f"AND published_at > now() - INTERVAL 365 DAY",
        [contract.dataset],
    ).fetchone()[0]
    baseline = max(total, int(largest or 0))
    kept = total - absent
    limit = contract.source.max_deletion_rate
    if (baseline - kept) / baseline <= limit:
        return ""
    return (
        f"a full delivery would delete {absent} of {total} published rows, leaving {kept} "
        f"of the {baseline} the register held at most in the past year "
        f"({(baseline - kept) / baseline:.1%} fewer > source.max_deletion_rate {limit:.1%}): "
        "refused as a likely truncated export; nothing published. Send the whole dataset, "
        "or raise max_deletion_rate in the contract if the register really shrank"
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
