"""Row verdicts: which rules each staged row breaks, in one SQL pass over staging.

The verdicts table drives the quarantine split and the quality summary of a version; the
Great Expectations suite (:mod:`catalog.expectations`) runs the same rule predicates and is
what Dagster shows as asset checks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import duckdb

from catalog.contracts import Contract
from catalog.rules import Rule, compile_rules, sql_literal
from catalog.staging import STAGING_TABLE

VERDICTS_TABLE = "verdicts"


@dataclass(frozen=True)
class QualitySummary:
    rows_read: int
    rows_failed: int
    failure_rate: float
    max_failure_rate: float
    rules: dict[str, int]

    @property
    def publishable(self) -> bool:
        return self.rows_read > 0 and self.failure_rate <= self.max_failure_rate

    def as_dict(self) -> dict:
        return {**asdict(self), "publishable": self.publishable}


def _verdict_sql(rules: list[Rule]) -> str:
    flags = ", ".join(
        f"CASE WHEN coalesce(({rule.failing_sql}), false) THEN {sql_literal(rule.name)} END"
        for rule in rules
    )
    return f"list_filter([{flags}], r -> r IS NOT NULL)"


def evaluate(con: duckdb.DuckDBPyConnection, contract: Contract) -> QualitySummary:
    """Write the verdicts table (failing rows only) next to staging and summarise it."""
    rules = compile_rules(contract)
    # Most rows pass: a plain OR filter first, the list of rule names only for the rest.
    any_failure = " OR ".join(f"coalesce(({rule.failing_sql}), false)" for rule in rules)
    con.execute(
        f"CREATE OR REPLACE TABLE {VERDICTS_TABLE} AS "
        f"SELECT _rid, {_verdict_sql(rules)} AS _rules FROM {STAGING_TABLE} WHERE {any_failure}"
    )
    rows_read = con.execute(f"SELECT count(*) FROM {STAGING_TABLE}").fetchone()[0]
    rows_failed = con.execute(f"SELECT count(*) FROM {VERDICTS_TABLE}").fetchone()[0]
    counts = dict(
        con.execute(
            f"SELECT r, count(*) FROM (SELECT unnest(_rules) AS r FROM {VERDICTS_TABLE}) GROUP BY r"
        ).fetchall()
    )
    return QualitySummary(
        rows_read=rows_read,
        rows_failed=rows_failed,
        failure_rate=rows_failed / rows_read if rows_read else 0.0,
        max_failure_rate=contract.quality.max_failure_rate,
        rules={rule.name: counts.get(rule.name, 0) for rule in rules},
    )


def reasons_sql(contract: Contract, rules_column: str) -> str:
    """SQL turning a list of rule names into the human reasons, joined by '; '."""
    pairs = ", ".join(
        f"{sql_literal(rule.name)}: {sql_literal(rule.description)}"
        for rule in compile_rules(contract)
    )
    return f"array_to_string(list_transform({rules_column}, r -> MAP {{{pairs}}}[r]), '; ')"
