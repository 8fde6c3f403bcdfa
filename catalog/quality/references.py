"""Cross-dataset consistency: the references contracts declare, checked per published version.

For each reference of a dataset's version, the rows whose referring items are present (and,
with ``when_format``, well-formed of that format) are looked up in the latest version of the
target dataset: counts of resolved and unresolved rows and a few examples of unresolved ones
(the file and row that delivered them, no values) are stored in ``meta.reference_results``. A
reference whose target has no version yet is stored as ``checked = 0`` with a note. Unresolved
rows are reported, never dropped; a ``blocking`` reference also quarantines them at publish
(:mod:`catalog.ingest.publish`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import duckdb

from catalog.contracts import Contract, Reference
from catalog.ingest.rules.expressions import ric_valid_sql, uscc_valid_sql
from catalog.sql import quote_ident
from catalog.store.lake import LAKE, META_SCHEMA, Lake
from catalog.store.versions import Version, dataset_relation, latest_version, version_relation

RESULTS = f"{LAKE}.{META_SCHEMA}.reference_results"
EXAMPLES = 5


@dataclass(frozen=True)
class ReferenceResult:
    dataset: str
    version: int
    reference: str
    target: str
    target_version: int | None
    checked: int
    resolved: int
    unresolved: int
    examples: list[str]
    """A few unresolved rows as ``file:row`` of the delivery that carried them."""
    checked_at: datetime

    def as_dict(self) -> dict:
        return {**asdict(self), "checked_at": self.checked_at.isoformat()}


def applies_sql(ref: Reference, alias: str) -> str:
    """Rows a reference checks: its items present, and well-formed when it names a format."""
    present = " AND ".join(f"{alias}.{quote_ident(i)} IS NOT NULL" for i in ref.items)
    if ref.when_format is None:
        return present
    first = f"CAST({alias}.{quote_ident(ref.items[0])} AS VARCHAR)"
    if ref.when_format == "uscc":
        # An 18-digit identity number passes the GB 32100 check one time in 31: a value
        # that is a well-formed identity number (check, birth date) is a person's.
        return f"{present} AND {uscc_valid_sql(first)} AND NOT {ric_valid_sql(first)}"
    return f"{present} AND {ric_valid_sql(first)}"


def match_sql(ref: Reference, source: str, target: str) -> str:
    return " AND ".join(
        f"CAST({source}.{quote_ident(a)} AS VARCHAR) = CAST({target}.{quote_ident(b)} AS VARCHAR)"
        for a, b in zip(ref.items, ref.target_items, strict=True)
    )


def _where_shown(alias: str) -> str:
    """Where an unresolved row came from (its delivered file and row), never a value from
    it: a partial mask of an identity number can be rebuilt (docs/access.md), and the office
    reads no row values."""
    return f"{alias}._source_file || ':' || CAST({alias}._source_row AS VARCHAR)"


def check(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    ref: Reference,
    version: Version,
    target: Version | None,
) -> ReferenceResult:
    now = datetime.now(UTC)
    if target is None:
        return ReferenceResult(
            contract.dataset, version.version, ref.name, ref.dataset, None, 0, 0, 0, [], now
        )
    # A time-travel relation takes no alias: select from it in a subquery.
    source_rel = f"(SELECT * FROM {dataset_relation(contract, version)})"
    target_rel = f"(SELECT * FROM {version_relation(target)})"
    unresolved = (
        f"FROM {source_rel} s WHERE {applies_sql(ref, 's')} AND NOT EXISTS ("
        f"SELECT 1 FROM {target_rel} t WHERE {match_sql(ref, 's', 't')})"
    )
    checked = con.execute(
        f"SELECT count(*) FROM {source_rel} s WHERE {applies_sql(ref, 's')}"
    ).fetchone()[0]
    missing = con.execute(f"SELECT count(*) {unresolved}").fetchone()[0]
    examples = [
        row[0]
        for row in con.execute(
            f"SELECT {_where_shown('s')} {unresolved} ORDER BY 1 LIMIT {EXAMPLES}"
        ).fetchall()
    ]
    return ReferenceResult(
        contract.dataset,
        version.version,
        ref.name,
        ref.dataset,
        target.version,
        int(checked),
        int(checked - missing),
        int(missing),
        examples,
        now,
    )


def check_latest(lake: Lake, contract: Contract) -> list[ReferenceResult]:
    """Check every reference of the dataset's latest version and store the results."""
    if not contract.references:
        return []
    with lake.reader() as con:
        version = latest_version(con, contract.dataset)
        if version is None:
            return []
        results = [
            check(con, contract, ref, version, latest_version(con, ref.dataset))
            for ref in contract.references
        ]
    store(lake, results)
    return results


def store(lake: Lake, results: list[ReferenceResult]) -> None:
    if not results:
        return
    with lake.writer() as con:
        con.execute("BEGIN")
        try:
            for r in results:
                con.execute(
                    f"INSERT INTO {RESULTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        r.dataset, r.version, r.reference, r.target, r.target_version,
                        r.checked, r.resolved, r.unresolved,
                        json.dumps(r.examples, ensure_ascii=False), r.checked_at,
                    ],
                )  # fmt: skip
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def latest_results(
    con: duckdb.DuckDBPyConnection, dataset: str | None = None, version: int | None = None
) -> list[ReferenceResult]:
    """The newest result of each (dataset, version, reference), newest version first."""
    where, params = ["TRUE"], []
    if dataset:
        where.append("dataset = ?")
        params.append(dataset)
    if version:
        where.append("version = ?")
        params.append(version)
    rows = con.execute(
        f"SELECT dataset, version, reference, target, target_version, checked, resolved, "
        f"unresolved, examples, checked_at FROM {RESULTS} WHERE {' AND '.join(where)} "
        f"QUALIFY row_number() OVER (PARTITION BY dataset, version, reference "
        f"ORDER BY checked_at DESC) = 1 ORDER BY dataset, version DESC, reference",
        params,
    ).fetchall()
    return [ReferenceResult(*r[:8], json.loads(r[8]) if r[8] else [], r[9]) for r in rows]


def check_affected(
    lake: Lake, contract: Contract, contracts: Mapping[str, Contract]
) -> list[ReferenceResult]:
    """After a publish of ``contract``'s dataset: its own references, and those of every
    dataset referring to it (their target just changed)."""
    results = check_latest(lake, contract)
    for other in contracts.values():
        if other.dataset != contract.dataset and any(
            ref.dataset == contract.dataset for ref in other.references
        ):
            results += check_latest(lake, other)
    return results
