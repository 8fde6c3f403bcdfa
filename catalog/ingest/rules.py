"""Quality rules compiled from a contract into SQL predicates over the staging table.

Each :class:`Rule` carries ``failing_sql``: a DuckDB boolean expression that is TRUE for a
row breaking the rule. The same predicates feed the Great Expectations suite (reported as
Dagster asset checks) and the quarantine split, so the two always agree.

Staging columns are normalised text (see :mod:`catalog.ingest.normalise`); NULL means "absent", and
every rule except ``required`` passes on NULL. Check characters are computed in SQL for bulk
speed; python-stdnum is the reference they are tested against (tests/ingest/test_rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from catalog.contracts import Contract, DataItem
from catalog.sql import quote_ident, sql_literal

# GB 11643 weights and check characters (ISO 7064 MOD 11-2).
_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RIC_CHECK = "10X98765432"
# GB 32100 alphabet (no I, O, Z, S, V) and weights.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

SQL_TYPES = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "decimal": "DECIMAL(20,4)",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "boolean": "BOOLEAN",
    "geojson": "VARCHAR",
}
REGIONS_TABLE = "ref_regions"
# Row ids (``_rid``) of staged rows that a later row with the same key replaces.
SUPERSEDED_TABLE = "ref_superseded"


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    field: str | None
    columns: tuple[str, ...]
    failing_sql: str
    description: str
    params: dict = field(default_factory=dict, hash=False, compare=False)


def ric_valid_sql(col: str) -> str:
    """TRUE when ``col`` is a well-formed resident identity number with a correct check char."""
    total = " + ".join(
        f"(ascii(substr({col}, {i + 1}, 1)) - 48) * {w}" for i, w in enumerate(_RIC_WEIGHTS)
    )
    return (
        f"(regexp_full_match({col}, '[0-9]{{17}}[0-9X]')"
        f" AND try_strptime(substr({col}, 7, 8), '%Y%m%d') IS NOT NULL"
        f" AND substr('{_RIC_CHECK}', (({total}) % 11) + 1, 1) = substr({col}, 18, 1))"
    )


def uscc_valid_sql(col: str) -> str:
    """TRUE when ``col`` is a well-formed unified social credit code with a correct check char."""
    total = " + ".join(
        f"(strpos('{_USCC_ALPHABET}', substr({col}, {i + 1}, 1)) - 1) * {w}"
        for i, w in enumerate(_USCC_WEIGHTS)
    )
    return (
        f"(regexp_full_match({col}, '[0-9]{{8}}[{_USCC_ALPHABET}]{{10}}')"
        f" AND substr('{_USCC_ALPHABET}', ((31 - ({total}) % 31) % 31) + 1, 1)"
        f" = substr({col}, 18, 1))"
    )


def typed_sql(item: DataItem, col: str) -> str:
    """Expression converting the normalised text column to the item's type (NULL if it fails)."""
    if item.type in ("string", "geojson"):
        return col
    return f"TRY_CAST({col} AS {SQL_TYPES[item.type]})"


def _label(item: DataItem) -> str:
    return f"{item.label} ({item.name})"


def _type_rule(item: DataItem, col: str) -> Rule | None:
    if item.type == "string":
        return None
    if item.type == "geojson":
        failing = f"{col} IS NOT NULL AND NOT coalesce(json_valid({col}), false)"
    else:
        failing = f"{col} IS NOT NULL AND {typed_sql(item, col)} IS NULL"
    return Rule(
        f"{item.name}.type", "type", item.name, (item.name,), failing,
        f"{_label(item)} is not a valid {item.type}",
    )  # fmt: skip


def _range_rules(item: DataItem, col: str) -> list[Rule]:
    rules = []
    typed = typed_sql(item, col)
    cast = SQL_TYPES[item.type]
    for bound, op, word in ((item.min, "<", "before/below"), (item.max, ">", "after/above")):
        if bound is None:
            continue
        limit = f"CAST({sql_literal(bound)} AS {cast})"
        rules.append(
            Rule(
                f"{item.name}.{'min' if op == '<' else 'max'}", "range", item.name, (item.name,),
                f"{typed} {op} {limit}", f"{_label(item)} is {word} {bound}",
                {"bound": bound},
            )
        )  # fmt: skip
    return rules


def _format_rule(item: DataItem, col: str) -> Rule | None:
    fmt = item.format
    if fmt is None:
        return None
    checks = {
        "resident_id": (f"NOT {ric_valid_sql(col)}", "is not a valid resident identity number"),
        "uscc": (f"NOT {uscc_valid_sql(col)}", "is not a valid unified social credit code"),
        "subject_id": (
            f"NOT ({ric_valid_sql(col)} OR {uscc_valid_sql(col)})",
            "is neither a valid unified social credit code nor a resident identity number",
        ),
        "region_code": (
            f"{col} NOT IN (SELECT code FROM {REGIONS_TABLE})",
            "is not a region code of GB/T 2260",
        ),
        "phone": (f"NOT regexp_full_match({col}, '1[3-9][0-9]{{9}}')", "is not a mobile number"),
    }
    failing, text = checks[fmt]
    return Rule(
        f"{item.name}.{fmt}", fmt, item.name, (item.name,),
        f"{col} IS NOT NULL AND {failing}", f"{_label(item)} {text}",
    )  # fmt: skip


def _agreement_rule(contract: Contract, item: DataItem, col: str) -> Rule | None:
    if item.agrees_with is None:
        return None
    other = quote_ident(item.agrees_with.field)
    label = _label(contract.item(item.agrees_with.field))
    if item.agrees_with.part == "sex":
        # The 17th digit of a resident identity number is odd for men, even for women.
        expected = f"CASE WHEN (ascii(substr({other}, 17, 1)) - 48) % 2 = 1 THEN '男' ELSE '女' END"
        mismatch = f"{col} <> {expected}"
        kind = "agrees_sex"
    else:
        expected = f"CAST(try_strptime(substr({other}, 7, 8), '%Y%m%d') AS DATE)"
        mismatch = f"{typed_sql(item, col)} <> {expected}"
        kind = "agrees_birth"
    # A well-formed number is enough to read the part from; a wrong check character is the
    # number's own rule, and recomputing it here would triple the cost of validation.
    well_formed = f"regexp_full_match({other}, '[0-9]{{17}}[0-9X]')"
    failing = f"{col} IS NOT NULL AND {well_formed} AND {mismatch}"
    return Rule(
        f"{item.name}.agrees_with_{item.agrees_with.field}", kind, item.name,
        (item.name, item.agrees_with.field), failing,
        f"{_label(item)} disagrees with {label}",
    )  # fmt: skip


def item_rules(contract: Contract, item: DataItem) -> list[Rule]:
    """All rules of one data item, in a stable order."""
    col = quote_ident(item.name)
    rules: list[Rule] = []
    if item.required:
        rules.append(
            Rule(f"{item.name}.required", "required", item.name, (item.name,),
                 f"{col} IS NULL", f"{_label(item)} is empty")
        )  # fmt: skip
    if (rule := _type_rule(item, col)) is not None:
        rules.append(rule)
    if item.length is not None and item.type == "string":
        rules.append(
            Rule(f"{item.name}.length", "length", item.name, (item.name,),
                 f"length({col}) > {item.length}",
                 f"{_label(item)} is longer than {item.length} characters",
                 {"max_length": item.length})
        )  # fmt: skip
    if item.allowed is not None:
        values = ", ".join(sql_literal(v) for v in item.allowed)
        rules.append(
            Rule(f"{item.name}.allowed", "allowed", item.name, (item.name,),
                 f"{col} NOT IN ({values})",
                 f"{_label(item)} is not one of {', '.join(item.allowed)}",
                 {"values": list(item.allowed)})
        )  # fmt: skip
    if item.pattern is not None:
        rules.append(
            Rule(f"{item.name}.pattern", "pattern", item.name, (item.name,),
                 f"NOT regexp_full_match({col}, {sql_literal(item.pattern)})",
                 f"{_label(item)} does not match {item.pattern}", {"pattern": item.pattern})
        )  # fmt: skip
    rules.extend(_range_rules(item, col))
    for rule in (_format_rule(item, col), _agreement_rule(contract, item, col)):
        if rule is not None:
            rules.append(rule)
    if item.not_before is not None:
        other = contract.item(item.not_before)
        rules.append(
            Rule(f"{item.name}.not_before_{other.name}", "not_before", item.name,
                 (item.name, other.name),
                 f"{typed_sql(item, col)} < {typed_sql(other, quote_ident(other.name))}",
                 f"{_label(item)} is before {_label(other)}")
        )  # fmt: skip
    return rules


def key_rule(contract: Contract) -> Rule:
    """Duplicate keys: every occurrence but the last delivered one fails.

    Staging lists the superseded rows (a newer row, by the contract's ``updated_at``, or else
    a later row in a delivery is taken as a correction of an earlier one), so the rule is a
    cheap probe of a small table.
    """
    return Rule(
        "key.unique",
        "duplicate",
        None,
        tuple(contract.key),
        f"_rid IN (SELECT _rid FROM {SUPERSEDED_TABLE})",
        f"duplicate key ({', '.join(contract.key)}): a newer or later row of the delivery "
        "replaces this one",
    )


def compile_rules(contract: Contract) -> list[Rule]:
    """Every quality rule of a contract, item rules first, then the key rule."""
    rules = [rule for item in contract.items for rule in item_rules(contract, item)]
    rules.append(key_rule(contract))
    return rules
