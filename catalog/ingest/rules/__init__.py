"""Quality rules: a library of named rules, compiled from a contract into SQL predicates.

Each :class:`Rule` carries ``failing_sql``: a DuckDB boolean expression that is TRUE for a
row breaking the rule. The same predicates feed the Great Expectations suite (reported as
Dagster asset checks) and the quarantine split, so the two always agree.

The library (:data:`REGISTRY`, one :class:`RuleSpec` per rule name, documented in
``docs/rules.md``, which :mod:`catalog.ingest.rules_reference` generates) is applied by a
contract's item metadata or by naming rules in an item's ``rules:``. The rules read
reference tables that staging writes beside the rows (:func:`write_reference_tables`):
today's and past GB/T 2260 codes and the run's "today" in the office's time zone.
"""

from __future__ import annotations

from catalog.ingest.rules import library as _library  # noqa: F401  (registers the rules)
from catalog.ingest.rules.expressions import (
    SQL_TYPES,
    ric_valid_sql,
    typed_sql,
    uscc_valid_sql,
)
from catalog.ingest.rules.reference import (
    CLOCK_TABLE,
    REGION_YEARS_TABLE,
    REGIONS_TABLE,
    STAGING_TABLE,
    SUPERSEDED_TABLE,
    office_today,
    write_reference_tables,
)
from catalog.ingest.rules.registry import (
    REGISTRY,
    Rule,
    RuleSpec,
    compile_rules,
    item_rules,
    rule_ref_faults,
)

__all__ = [
    "CLOCK_TABLE",
    "REGIONS_TABLE",
    "REGION_YEARS_TABLE",
    "REGISTRY",
    "SQL_TYPES",
    "STAGING_TABLE",
    "SUPERSEDED_TABLE",
    "Rule",
    "RuleSpec",
    "compile_rules",
    "item_rules",
    "office_today",
    "ric_valid_sql",
    "rule_ref_faults",
    "typed_sql",
    "uscc_valid_sql",
    "write_reference_tables",
]
