"""Run a Great Expectations suite built from validation rules against a DuckDB table.

:func:`run_suite` turns each :class:`Rule` into one GX expectation, validates the whole table
as one batch with GX's SQL datasource (SQLAlchemy + duckdb-engine, read-only; the pandas path
is ~15x slower on a million rows) and returns one :class:`RuleOutcome` per rule, in rule order.

Mapping of rules to expectations:

* ``required`` -> ``ExpectColumnValuesToNotBeNull``
* ``allowed`` -> ``ExpectColumnValuesToBeInSet`` (``params["values"]``; nulls pass)
* ``unique`` on one column -> ``ExpectColumnValuesToBeUnique``; on several ->
  ``ExpectCompoundColumnsToBeUnique``. Every row of a duplicated key is unexpected (not only
  the second and later ones). Nulls never make duplicates: the single-column form ignores
  them; in the compound form a key with any null is never a duplicate, and rows whose key
  columns are all null count as missing.
* every other kind (including the compiler's ``unique_key``, which fails all but one row of a
  key) -> ``UnexpectedRowsExpectation`` with ``SELECT * FROM {batch} WHERE <failing_sql>``,
  or, given the run's verdicts, the rows they list for the rule: validation has evaluated
  the predicates once already, and the pipeline's checks count its result (a second
  evaluation doubled the cost of checking a delivery).
  ``failing_sql`` may read other tables of the same file
  (``region_code NOT IN (SELECT code FROM ref_regions)``); unqualified names resolve in the
  database's default schema (``main``), also when the validated table is in another schema.

Contract with the rule compiler: for the native kinds ``failing_sql`` must mean exactly GX's
check (``col IS NULL``; ``col NOT IN (...)``; duplicated non-null key). ``failing_sql`` must not
raise on any row (``TRY_CAST``, ``try_strptime``: DuckDB does not promise to short-circuit
``AND``); a rule that raises is reported by :class:`ExpectationRunError`. Braces are escaped
here (GX substitutes ``{batch}`` with ``str.format``), so regex quantifiers like ``{17}`` work.

``RuleOutcome.element_count`` is the number of rows of the table (GX's ``table.row_count``),
the same for every rule, null cells included. GX's column expectations leave nulls out of the
*unexpected* side only: ``unexpected_count`` of an ``allowed`` rule does not count nulls (their
number is in ``details["missing_count"]``), ``details["unexpected_percent"]`` is relative to
the non-null cells, ``details["unexpected_percent_total"]`` to all rows.

DuckDB through GX 1.24 needs one tweak, applied once on first use (see
:func:`_keep_one_duckdb_connection`): ``SqlAlchemyExecutionEngine.execute_query`` returns the
cursor result from inside ``with engine.connect()``, and callers fetch the rows *after* the
connection was closed. duckdb-engine's cursor is the DuckDB connection itself and the close
rolls back the transaction duckdb-engine began, which discards the pending result: every
metric came back empty ("list index out of range", "'NoneType' object is not subscriptable").
GX already keeps one connection open for dialects whose state lives in the connection
(sqlite, mssql, bigquery, databricks); ``duckdb`` is added to that list. Two consequences are
handled here too: a failing query leaves DuckDB's transaction aborted for every later query
(:func:`_recover_from_failed_queries`), and the kept connection would hold the file open
until garbage collection (:func:`_close`).

The file is opened with its own DuckDB connection: a process that holds the same file open
(``duckdb.connect`` or ``ATTACH``) must close it before calling :func:`run_suite` (DuckDB
refuses a second instance with a different configuration in one process).

Great Expectations is imported lazily (it takes seconds); importing this module is cheap.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from catalog.ingest.rules import Rule
from catalog.sql import sql_literal

__all__ = ["ExpectationRunError", "Rule", "RuleOutcome", "run_suite"]

RESULT_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 0}
"""BASIC keeps GX's counts; ``partial_unexpected_count=0`` skips listing unexpected values."""

_ROW_COUNT_META = "__table_row_count__"


@dataclass(frozen=True)
class RuleOutcome:
    rule: str
    """``Rule.name``."""
    success: bool
    unexpected_count: int
    """Rows failing the rule, as counted by GX (a null cell fails no native rule but
    ``required``)."""
    element_count: int
    """Rows in the table (GX's ``table.row_count``), nulls included; the same for every rule."""
    expectation_type: str
    """GX expectation type, e.g. ``expect_column_values_to_be_in_set``."""
    details: dict
    """The rest of GX's result: ``missing_count``, ``unexpected_percent`` (of non-null cells),
    ``unexpected_percent_total``... for native column rules, ``unexpected_rows_query`` for
    query rules."""


class ExpectationRunError(RuntimeError):
    """GX could not evaluate some rules (bad SQL, missing column or table...)."""


def run_suite(
    db_path: Path,
    table: str,
    rules: Sequence[Rule],
    suite_name: str,
    verdicts: str | None = None,
) -> list[RuleOutcome]:
    """Validate ``table`` of the DuckDB file ``db_path`` against ``rules``.

    ``table`` is ``name``, ``schema.name`` or ``catalog.schema.name`` (parts may be
    double-quoted); it is used verbatim in SQL. The whole table is one batch and all rules run
    in one validation. ``verdicts``: a table of the same file with ``_rid`` and ``_rules``
    (the rule names each failing row breaks, :func:`catalog.ingest.validation.evaluate`);
    query rules then count the batch's rows it lists for them instead of evaluating their
    predicates again, while GX computes the native checks itself.

    Raises :class:`ExpectationRunError` for a missing file or table and naming the rules GX
    could not evaluate; ``ValueError`` for duplicate rule names or a
    malformed table name.
    """
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate rule names in {suite_name}: {_dupes(names)}")
    table_ref = _table_reference(table)
    gx = _gx()
    from great_expectations.datasource.fluent import TestConnectionError

    context = gx.get_context(mode="ephemeral", project_config=_project_config())
    try:
        datasource = context.data_sources.add_sql(
            name="duckdb",
            # Read-only: validation writes nothing, other processes may read meanwhile, and a
            # wrong path fails instead of creating an empty database.
            connection_string=f"duckdb:///{Path(db_path).resolve()}?access_mode=read_only",
        )
    except TestConnectionError as error:  # missing or locked file
        raise ExpectationRunError(f"cannot open {db_path}: {error}") from error
    try:
        _recover_from_failed_queries(datasource.get_execution_engine().engine)
        try:
            asset = datasource.add_table_asset(name="table", table_name=table_ref)
        except TestConnectionError as error:  # missing table
            raise ExpectationRunError(f"cannot read {table} in {db_path}: {error}") from error
        batch = asset.add_batch_definition_whole_table("whole table").get_batch()

        suite = gx.ExpectationSuite(name=suite_name)
        for rule in rules:
            suite.add_expectation(_expectation(gx, rule, verdicts))
        # Gives element_count for query rules; table.row_count is computed anyway, so it is free.
        suite.add_expectation(
            gx.expectations.ExpectTableRowCountToBeBetween(
                min_value=0,
                max_value=None,
                meta={"rule": _ROW_COUNT_META},
                description=_ROW_COUNT_META,
            )
        )
        result = batch.validate(suite, result_format=RESULT_FORMAT)
    finally:
        _close(datasource)

    by_rule = {r.expectation_config.meta["rule"]: r for r in result.results}
    failed = {
        name: r.exception_info.get("exception_message") or _first_exception(r.exception_info)
        for name, r in by_rule.items()
        if _raised(r.exception_info)
    }
    if failed:
        listing = "; ".join(f"{name}: {message}" for name, message in failed.items())
        raise ExpectationRunError(f"GX could not evaluate rules of {suite_name}: {listing}")
    row_count = int(by_rule[_ROW_COUNT_META].result["observed_value"])
    return [_outcome(rule, by_rule[rule.name], row_count) for rule in rules]


def _expectation(gx: Any, rule: Rule, verdicts: str | None = None) -> Any:
    meta = {"rule": rule.name, "kind": rule.kind}
    # A suite silently drops an expectation equal to one it holds, meta aside; the description
    # keeps two rules that compile to the same expectation apart.
    description = rule.name
    if rule.kind == "required" and rule.field:
        return gx.expectations.ExpectColumnValuesToNotBeNull(
            column=rule.field, meta=meta, description=description
        )
    if rule.kind == "allowed" and rule.field and "values" in rule.params:
        return gx.expectations.ExpectColumnValuesToBeInSet(
            column=rule.field,
            value_set=list(rule.params["values"]),
            meta=meta,
            description=description,
        )
    if rule.kind == "unique":
        columns = rule.columns or ((rule.field,) if rule.field else ())
        if len(columns) == 1:
            return gx.expectations.ExpectColumnValuesToBeUnique(
                column=columns[0], meta=meta, description=description
            )
        if len(columns) > 1:
            return gx.expectations.ExpectCompoundColumnsToBeUnique(
                column_list=list(columns), meta=meta, description=description
            )
    failing = rule.failing_sql
    if verdicts is not None:
        failing = (
            f"_rid IN (SELECT _rid FROM {verdicts} "
            f"WHERE list_contains(_rules, {sql_literal(rule.name)}))"
        )
    return gx.expectations.UnexpectedRowsExpectation(
        unexpected_rows_query=f"SELECT * FROM {{batch}} WHERE {_escape_braces(failing)}",
        meta=meta,
        description=description,
    )


def _outcome(rule: Rule, validation: Any, row_count: int) -> RuleOutcome:
    result = dict(validation.result)
    expectation_type = validation.expectation_config.type
    if expectation_type == "unexpected_rows_expectation":
        unexpected = int(result.pop("observed_value"))
        details = {
            "unexpected_rows_query": validation.expectation_config.kwargs["unexpected_rows_query"]
        }
    else:
        # None on an empty table (GX sums over no rows)
        unexpected = int(result.pop("unexpected_count") or 0)
        result.pop("element_count", None)  # GX's table.row_count, i.e. row_count
        result.pop("partial_unexpected_list", None)
        details = result
    return RuleOutcome(
        rule=rule.name,
        success=bool(validation.success),
        unexpected_count=unexpected,
        element_count=row_count,
        expectation_type=expectation_type,
        details=details,
    )


def _escape_braces(sql: str) -> str:
    # GX fills {batch} with str.format-like substitution; literal braces must be doubled.
    return sql.replace("{", "{{").replace("}", "}}")


_NAME_PART = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_TABLE_REFERENCE = re.compile(rf"{_NAME_PART}(?:\.{_NAME_PART}){{0,2}}")


def _table_reference(table: str) -> Any:
    """``table`` as one SQL name that GX renders verbatim.

    GX's ``schema_name`` does not work on DuckDB: column reflection (duckdb-engine's
    ``get_columns`` fails on SQLAlchemy 2.1) falls back to ``SELECT * FROM <table> LIMIT 1``
    *without* the schema, so GX checks columns against ``main.<table>`` or finds none.
    A ``quoted_name(..., quote=False)`` is used as is everywhere, fallback included.
    """
    from sqlalchemy.sql.elements import quoted_name

    if not _TABLE_REFERENCE.fullmatch(table):
        raise ValueError(f"table must be [catalog.][schema.]name, got {table!r}")
    return quoted_name(table, quote=False)


def _dupes(names: list[str]) -> list[str]:
    return sorted(name for name, count in Counter(names).items() if count > 1)


def _raised(exception_info: Any) -> bool:
    if not exception_info:
        return False
    if "raised_exception" in exception_info:
        return bool(exception_info["raised_exception"])
    return any(info.get("raised_exception") for info in exception_info.values())


def _first_exception(exception_info: dict) -> str:
    return next(
        (info.get("exception_message", "") for info in exception_info.values() if info),
        "unknown error",
    )


def _recover_from_failed_queries(engine: Any) -> None:
    """Roll back DuckDB's aborted transaction after a failing query (e.g. a bad cast).

    On the one kept connection (see :func:`_keep_one_duckdb_connection`) DuckDB refuses every
    later statement after an error ("Current transaction is aborted (please ROLLBACK)"), so one
    broken rule would fail all rules evaluated after it. GX only recovers from SQLAlchemy's
    ``PendingRollbackError``. This listener rolls the DuckDB transaction back and opens a new
    one, so the connection's state stays what SQLAlchemy believes it is.
    """
    from sqlalchemy import event

    if event.contains(engine, "handle_error", _rollback_aborted_transaction):
        return
    event.listen(engine, "handle_error", _rollback_aborted_transaction)


def _rollback_aborted_transaction(context: Any) -> None:
    connection = context.connection
    if connection is None or connection.closed or not connection.in_transaction():
        return
    duckdb_connection = connection.connection.dbapi_connection
    try:
        duckdb_connection.rollback()
        duckdb_connection.begin()
    except Exception:  # best effort; SQLAlchemy re-raises the original error anyway
        pass


def _close(datasource: Any) -> None:
    """Release the DuckDB file: GX would otherwise keep it open until garbage collection."""
    engine = datasource.get_execution_engine()
    if engine._connection is not None:  # the connection kept for duckdb, see module docstring
        engine._connection.close()
        engine._connection = None
    engine.close()
    datasource.get_engine().dispose()


def _project_config() -> Any:
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    return DataContextConfig(
        # No temporary data docs site: the default ephemeral context creates a temp directory.
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        # GX 1.24.1 ships no usage-statistics client (GX_ANALYTICS_ENABLED is read nowhere);
        # the config flag is set anyway so an upgrade that brings one back stays silent.
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )


@cache
def _gx() -> Any:
    import great_expectations as gx

    _keep_one_duckdb_connection()
    return gx


class _DuckDBDialect(str):
    """``"duckdb"`` shaped like a ``GXSqlDialect`` member (GX reads ``.value`` of each entry)."""

    @property
    def value(self) -> str:
        return str(self)


def _keep_one_duckdb_connection() -> None:
    """Make GX treat duckdb like sqlite: keep one connection for the execution engine's life.

    Without it GX fetches query results after closing the connection, whose ``ROLLBACK``
    discards DuckDB's pending result (see the module docstring). With
    duckdb in ``_PERSISTED_CONNECTION_DIALECTS`` GX builds the execution engine with a
    ``StaticPool`` and ``get_connection()`` hands out one connection that stays open; only
    duckdb engines are affected. :func:`_close` closes that connection after the run.
    """
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine_module

    dialects = engine_module._PERSISTED_CONNECTION_DIALECTS
    if "duckdb" not in dialects:
        engine_module._PERSISTED_CONNECTION_DIALECTS = (*dialects, _DuckDBDialect("duckdb"))
