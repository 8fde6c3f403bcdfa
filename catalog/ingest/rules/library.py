"""The rules of the library, in the order a data item's rules are listed.

Staging columns are normalised text (see :mod:`catalog.ingest.normalise`: half-width,
upper-case ``X``, ISO dates); NULL means "absent", and every rule but ``required`` and
``region_parent`` passes on NULL. ``failing_sql`` must never raise on any row (DuckDB does
not promise to short-circuit ``AND``): conversions use ``TRY_CAST`` and ``try_strptime``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from catalog.contracts import IDENTIFIER
from catalog.ingest.rules.expressions import (
    SQL_TYPES,
    TODAY_SQL,
    USCC_SHAPE,
    ric_birth_sql,
    ric_ok_sql,
    ric_region_known_sql,
    ric_sex_sql,
    typed_sql,
    uscc_region_known_sql,
    uscc_valid_sql,
)
from catalog.ingest.rules.reference import REGIONS_TABLE, STAGING_TABLE, SUPERSEDED_TABLE
from catalog.ingest.rules.registry import NoParams, Params, Rule, register
from catalog.sql import quote_ident, sql_literal

if TYPE_CHECKING:
    from catalog.contracts import Contract, DataItem

DATES = ("date", "timestamp")
NUMBERS = ("integer", "decimal")


def _label(item: DataItem) -> str:
    return f"{item.label} ({item.name})"


def _col(item: DataItem) -> str:
    return quote_ident(item.name)


def _rule(
    kind: str,
    item: DataItem,
    failing_sql: str,
    description: str,
    *,
    suffix: str = "",
    others: tuple[str, ...] = (),
    params: Params | None = None,
) -> Rule:
    return Rule(
        f"{item.name}.{kind}{suffix}", kind, item.name, (item.name, *others), failing_sql,
        description, params.model_dump() if params is not None else {},
    )  # fmt: skip


def _other_item(
    contract: Contract, item: DataItem, name: str, types: tuple[str, ...]
) -> str | None:
    """The fault of a parameter naming another item, or None."""
    if name not in contract.item_names:
        return f"unknown item {name!r}"
    if name == item.name:
        return "names the item itself"
    if contract.item(name).type not in types:
        return f"item {name!r} is not a {'/'.join(types)} item"
    return None


# --------------------------------------------------------------------------- completeness


@register(
    "required",
    "The item has a value in every row: a record without it cannot be used or matched.",
    trigger="`required: true`",
    dimension="completeness",
    infer=lambda c, item: NoParams() if item.required else None,
)
def _required(contract: Contract, item: DataItem, params: NoParams) -> Rule:
    return _rule("required", item, f"{_col(item)} IS NULL", f"{_label(item)} is empty")


# --------------------------------------------------------------------------- formats


@register(
    "type",
    "The value converts to the item's type (integer, decimal, date, timestamp, boolean; "
    "GeoJSON parses as JSON) after normalisation, so it can be stored typed and compared.",
    trigger="`type:` other than `string`",
    infer=lambda c, item: NoParams() if item.type != "string" else None,
)
def _type(contract: Contract, item: DataItem, params: NoParams) -> Rule:
    col = _col(item)
    if item.type == "geojson":
        failing = f"{col} IS NOT NULL AND NOT coalesce(json_valid({col}), false)"
    else:
        failing = f"{col} IS NOT NULL AND {typed_sql(item, col)} IS NULL"
    return _rule("type", item, failing, f"{_label(item)} is not a valid {item.type}")


class LengthParams(Params):
    max_length: int = Field(gt=0, description="Most characters a value may have")


@register(
    "length",
    "A text value has at most the declared number of characters (the catalog's item length), "
    "so it fits the receiving systems.",
    trigger="`length:` on a string item",
    params=LengthParams,
    infer=lambda c, item: (
        LengthParams(max_length=item.length)
        if item.length is not None and item.type == "string"
        else None
    ),
)
def _length(contract: Contract, item: DataItem, params: LengthParams) -> Rule:
    return _rule(
        "length", item, f"length({_col(item)}) > {params.max_length}",
        f"{_label(item)} is longer than {params.max_length} characters", params=params,
    )  # fmt: skip


class AllowedParams(Params):
    values: list[str] = Field(min_length=1, description="The values allowed (a code list)")


@register(
    "allowed",
    "The value is one of the declared code list (sex, status, list type...), so consumers can "
    "rely on a closed set.",
    trigger="`allowed: [...]`",
    params=AllowedParams,
    infer=lambda c, item: AllowedParams(values=item.allowed) if item.allowed is not None else None,
)
def _allowed(contract: Contract, item: DataItem, params: AllowedParams) -> Rule:
    values = ", ".join(sql_literal(v) for v in params.values)
    return _rule(
        "allowed", item, f"{_col(item)} NOT IN ({values})",
        f"{_label(item)} is not one of {', '.join(params.values)}", params=params,
    )  # fmt: skip


class PatternParams(Params):
    pattern: str = Field(description="Regular expression (RE2) the whole value must match")


@register(
    "pattern",
    "The whole value matches the declared regular expression: the department's numbering "
    "scheme (licence and record numbers, region codes).",
    trigger="`pattern:`",
    params=PatternParams,
    infer=lambda c, item: PatternParams(pattern=item.pattern) if item.pattern is not None else None,
)
def _pattern(contract: Contract, item: DataItem, params: PatternParams) -> Rule:
    return _rule(
        "pattern", item, f"NOT regexp_full_match({_col(item)}, {sql_literal(params.pattern)})",
        f"{_label(item)} does not match {params.pattern}", params=params,
    )  # fmt: skip


class BoundParams(Params):
    bound: float | str = Field(description="The bound, a number or an ISO date")


def _bound_rule(kind: Literal["min", "max"], item: DataItem, params: BoundParams) -> Rule:
    op, word = ("<", "before") if kind == "min" else (">", "after")
    if item.type not in DATES:
        word = "below" if kind == "min" else "above"
    limit = f"CAST({sql_literal(params.bound)} AS {SQL_TYPES[item.type]})"
    return _rule(
        kind, item, f"{typed_sql(item, _col(item))} {op} {limit}",
        f"{_label(item)} is {word} {params.bound}", params=params,
    )  # fmt: skip


@register(
    "min",
    "The value is not below the declared minimum; on a date, a sane earliest day (1900-01-01 "
    "for a birth, 1949-10-01 for an establishment) that catches mistyped years.",
    trigger="`min:` on a number or date item",
    params=BoundParams,
    infer=lambda c, item: BoundParams(bound=item.min) if item.min is not None else None,
)
def _min(contract: Contract, item: DataItem, params: BoundParams) -> Rule:
    return _bound_rule("min", item, params)


@register(
    "max",
    "The value is not above the declared maximum (a coordinate within China's extent...).",
    trigger="`max:` on a number or date item",
    params=BoundParams,
    infer=lambda c, item: BoundParams(bound=item.max) if item.max is not None else None,
)
def _max(contract: Contract, item: DataItem, params: BoundParams) -> Rule:
    return _bound_rule("max", item, params)


@register(
    "not_in_future",
    "The date is not after today in the office's time zone (`GOVSHARE_TIMEZONE`, read once "
    "per run): a birth, establishment, issue or decision cannot lie ahead.",
    trigger="`rules: [not_in_future]` on a date or timestamp item",
    nameable=True,
    types=DATES,
)
def _not_in_future(contract: Contract, item: DataItem, params: NoParams) -> Rule:
    day = typed_sql(item, _col(item))
    if item.type == "timestamp":
        day = f"CAST({day} AS DATE)"
    return _rule("not_in_future", item, f"{day} > {TODAY_SQL}", f"{_label(item)} is in the future")


# --------------------------------------------------------------------------- identifiers


def _format(fmt: str):
    return lambda contract, item: NoParams() if item.format == fmt else None


def _ric_words(legacy: bool) -> str:
    return " (18 characters or the 15-digit form)" if legacy else ""


@register(
    "resident_id",
    "A resident identity number (GB 11643): 18 characters, a real birth date not in the future "
    "and the ISO 7064 MOD 11-2 check character (`x` is upper-cased first); the 15-digit form "
    "of GB 11643-1989 (no check character) only with `legacy_15_digit: true`.",
    trigger="`format: resident_id`",
    infer=_format("resident_id"),
)
def _resident_id(contract: Contract, item: DataItem, params: NoParams) -> Rule:
    col, legacy = _col(item), item.legacy_15_digit
    return _rule(
        "resident_id", item, f"{col} IS NOT NULL AND NOT {ric_ok_sql(col, legacy)}",
        f"{_label(item)} is not a valid resident identity number{_ric_words(legacy)}",
    )  # fmt: skip


@register(
    "resident_id_region",
    "Digits 1-6 of a resident identity number are a GB/T 2260 code in use in or after the "
    "birth year: a number keeps the code of its first issue for life, so a code retired since "
    "is valid, one never assigned or retired before the birth is not.",
    trigger="`format: resident_id`",
    infer=_format("resident_id"),
)
def _resident_id_region(contract: Contract, item: DataItem, params: NoParams) -> Rule:
    # Any well-formed number: a wrong check character is the number's own rule
    # (docs/decisions.md, 16).
    col, legacy = _col(item), item.legacy_15_digit
    failing = f"{col} IS NOT NULL AND NOT {ric_region_known_sql(col, legacy)}"
    return _rule(
        "resident_id_region", item, failing,
        f"{_label(item)} has a region code (digits 1-6) that GB/T 2260 did not hold in or after "
        "the birth year",
    )  # fmt: skip


@register(
    "uscc",
    "A unified social credit code (GB 32100): 18 characters of its alphabet (no I, O, S, V, "
    "Z) with the right check character.",
    trigger="`format: uscc`",
    infer=_format("uscc"),
)
def _uscc(contract: Contract, item: DataItem, params: NoParams) -> Rule:
    col = _col(item)
    return _rule(
        "uscc", item, f"{col} IS NOT NULL AND NOT {uscc_valid_sql(col)}",
        f"{_label(item)} is not a valid unified social credit code",
    )  # fmt: skip


@register(
    "uscc_region",
    "Digits 3-8 of a unified social credit code are its registering region: a GB/T 2260 code "
    "in use since GB 32100 took effect (2015; retired codes included) or 100000, the central "
    "level.",
    trigger="`format: uscc`",
    infer=_format("uscc"),
)
def _uscc_region(contract: Contract, item: DataItem, params: NoParams) -> Rule:
    col = _col(item)
    failing = (
        f"{col} IS NOT NULL AND regexp_full_match({col}, '{USCC_SHAPE}')"
        f" AND NOT {uscc_region_known_sql(col)}"
    )
    return _rule(
        "uscc_region", item, failing,
        f"{_label(item)} has a registering region (digits 3-8) that GB/T 2260 has not held "
        "since 2015",
    )  # fmt: skip


@register(
    "subject_id",
    "A subject is a company or a person: the value is a valid unified social credit code or "
    "a valid resident identity number (as `uscc` and `resident_id`).",
    trigger="`format: subject_id`",
    infer=_format("subject_id"),
)
def _subject_id(contract: Contract, item: DataItem, params: NoParams) -> Rule:
    col, legacy = _col(item), item.legacy_15_digit
    return _rule(
        "subject_id", item,
        f"{col} IS NOT NULL AND NOT ({ric_ok_sql(col, legacy)} OR {uscc_valid_sql(col)})",
        f"{_label(item)} is neither a valid unified social credit code nor a resident identity "
        f"number{_ric_words(legacy)}",
    )  # fmt: skip


@register(
    "subject_id_region",
    "The region code inside a subject's code is known, read as the valid code it is (as "
    "`resident_id_region` or `uscc_region`).",
    trigger="`format: subject_id`",
    infer=_format("subject_id"),
)
def _subject_id_region(contract: Contract, item: DataItem, params: NoParams) -> Rule:
    col, legacy = _col(item), item.legacy_15_digit
    # An 18-digit value can have the shape of both; its check character tells which it is.
    ric, uscc = ric_ok_sql(col, legacy), f"coalesce({uscc_valid_sql(col)}, false)"
    ric_known = f"coalesce({ric_region_known_sql(col, legacy)}, true)"
    failing = (
        f"{col} IS NOT NULL AND ({ric} OR {uscc})"
        f" AND NOT (({ric} AND {ric_known}) OR ({uscc} AND {uscc_region_known_sql(col)}))"
    )
    return _rule(
        "subject_id_region", item, failing,
        f"{_label(item)} has a region code that GB/T 2260 did not hold when it was issued",
    )  # fmt: skip


@register(
    "region_code",
    "A region given as current data (household, registered address) is a code of today's "
    "GB/T 2260 table; unlike codes inside identifiers, a retired one must be updated.",
    trigger="`format: region_code`",
    infer=_format("region_code"),
)
def _region_code(contract: Contract, item: DataItem, params: NoParams) -> Rule:
    col = _col(item)
    failing = f"{col} IS NOT NULL AND {col} NOT IN (SELECT code FROM {REGIONS_TABLE})"
    return _rule("region_code", item, failing, f"{_label(item)} is not a region code of GB/T 2260")


@register(
    "phone",
    "A mainland mobile number: 11 digits starting 13-19 (a `+86`/`86` prefix, blanks and "
    "dashes are removed first).",
    trigger="`format: phone`",
    infer=_format("phone"),
)
def _phone(contract: Contract, item: DataItem, params: NoParams) -> Rule:
    col = _col(item)
    return _rule(
        "phone", item, f"{col} IS NOT NULL AND NOT regexp_full_match({col}, '1[3-9][0-9]{{9}}')",
        f"{_label(item)} is not a mobile number",
    )  # fmt: skip


# --------------------------------------------------------------------------- consistency


class OtherItemParams(Params):
    item: str = Field(pattern=IDENTIFIER, description="The other data item")


def _agreement(part: str):
    def infer(contract: Contract, item: DataItem) -> OtherItemParams | None:
        agrees = item.agrees_with
        if agrees is None or agrees.part != part:
            return None
        return OtherItemParams(item=agrees.field)

    return infer


def _agreement_rule(
    kind: str, contract: Contract, item: DataItem, params: OtherItemParams, expected: str
) -> Rule:
    col = _col(item)
    value = col if kind == "agrees_sex" else typed_sql(item, col)
    # A well-formed number is enough to read the part from; a wrong check character is the
    # number's own rule, and recomputing it here would triple the cost of validation.
    return Rule(
        f"{item.name}.agrees_with_{params.item}", kind, item.name, (item.name, params.item),
        f"{col} IS NOT NULL AND {value} <> {expected}",
        f"{_label(item)} disagrees with {_label(contract.item(params.item))}",
        params.model_dump(),
    )  # fmt: skip


@register(
    "agrees_sex",
    "The sex agrees with the identity number's sequence digit (the 17th, odd for men; the "
    "15th in the 15-digit form): one of them was mistyped.",
    trigger="`agrees_with: {field: <id item>, part: sex}`",
    params=OtherItemParams,
    infer=_agreement("sex"),
)
def _agrees_sex(contract: Contract, item: DataItem, params: OtherItemParams) -> Rule:
    other = contract.item(params.item)
    expected = ric_sex_sql(quote_ident(other.name), other.legacy_15_digit)
    return _agreement_rule("agrees_sex", contract, item, params, expected)


@register(
    "agrees_birth",
    "The birth date agrees with the identity number's digits 7-14 (YYMMDD after 19 in the "
    "15-digit form): one of them was mistyped.",
    trigger="`agrees_with: {field: <id item>, part: birth_date}`",
    params=OtherItemParams,
    infer=_agreement("birth_date"),
)
def _agrees_birth(contract: Contract, item: DataItem, params: OtherItemParams) -> Rule:
    other = contract.item(params.item)
    expected = ric_birth_sql(quote_ident(other.name), other.legacy_15_digit)
    return _agreement_rule("agrees_birth", contract, item, params, expected)


def _check_order(contract: Contract, item: DataItem, params: OtherItemParams) -> str | None:
    family = DATES if item.type in DATES else NUMBERS
    return _other_item(contract, item, params.item, family)


@register(
    "not_before",
    "The value is not earlier than another item of the same record, e.g. `valid_until` >= "
    "`issue_date`: a validity cannot end before it starts.",
    trigger="`not_before: <item>`, or `rules: [{not_before: {item: <item>}}]`",
    params=OtherItemParams,
    infer=lambda c, item: OtherItemParams(item=item.not_before) if item.not_before else None,
    nameable=True,
    types=DATES + NUMBERS,
    check=_check_order,
)
def _not_before(contract: Contract, item: DataItem, params: OtherItemParams) -> Rule:
    other = contract.item(params.item)
    failing = f"{typed_sql(item, _col(item))} < {typed_sql(other, quote_ident(other.name))}"
    return _rule(
        "not_before", item, failing, f"{_label(item)} is before {_label(other)}",
        suffix=f"_{other.name}", others=(other.name,), params=params,
    )  # fmt: skip


# --------------------------------------------------------------------------- geography

Level = Literal["province", "city", "county", "township"]
LEVELS: tuple[Level, ...] = ("province", "city", "county", "township")


class RegionLevelParams(Params):
    code: str = Field(pattern=IDENTIFIER, description="The item holding the region's own code")
    names: dict[Level, str] = Field(
        default={level: level for level in LEVELS},
        description="The item's value for each level, if not the English level names",
    )

    @field_validator("names")
    @classmethod
    def _every_level(cls, names: dict[str, str]) -> dict[str, str]:
        missing = [level for level in LEVELS if level not in names]
        if missing:
            raise ValueError(f"names lacks {', '.join(missing)}")
        return names


def _check_code_item(contract: Contract, item: DataItem, params: Params) -> str | None:
    return _other_item(contract, item, params.code, ("string",))  # type: ignore[attr-defined]


def _code_level_sql(code: str) -> dict[Level, str]:
    """Conditions on a code's shape (GB/T 2260: province XX0000, city XXXX00, else county;
    GB/T 10114: a township adds 3 digits, 12 in the statistical division codes)."""
    return {
        "province": f"regexp_full_match({code}, '[0-9]{{2}}0000')",
        "city": f"regexp_full_match({code}, '[0-9]{{4}}00')",
        "county": f"regexp_full_match({code}, '[0-9]{{6}}')",
        "township": f"regexp_full_match({code}, '[0-9]{{9}}|[0-9]{{12}}')",
    }


@register(
    "region_level",
    "A division's level matches its code: province XX0000, city XXXX00, county any other six "
    "digits, township nine (or twelve) digits (GB/T 2260, GB/T 10114).",
    trigger="`rules: [{region_level: {code: <code item>}}]` on the level item",
    params=RegionLevelParams,
    nameable=True,
    types=("string",),
    check=_check_code_item,
)
def _region_level(contract: Contract, item: DataItem, params: RegionLevelParams) -> Rule:
    code = quote_ident(params.code)
    cases = " ".join(
        f"WHEN {shape} THEN {sql_literal(params.names[level])}"
        for level, shape in _code_level_sql(code).items()
    )
    return _rule(
        "region_level", item, f"{_col(item)} <> CASE {cases} END",
        f"{_label(item)} is not the level its code {_label(contract.item(params.code))} has",
        others=(params.code,), params=params,
    )  # fmt: skip


class RegionParentParams(Params):
    code: str = Field(pattern=IDENTIFIER, description="The item holding the region's own code")


@register(
    "region_parent",
    "A division's parent exists (in GB/T 2260 or the same delivery) and is one level up: none "
    "for a province, its province for a city, its city for a county (its province where it "
    "has no city: 419001, Hong Kong's districts), its county for a township.",
    trigger="`rules: [{region_parent: {code: <code item>}}]` on the parent item",
    params=RegionParentParams,
    nameable=True,
    types=("string",),
    check=_check_code_item,
)
def _region_parent(contract: Contract, item: DataItem, params: RegionParentParams) -> Rule:
    code, parent = quote_ident(params.code), _col(item)
    known = (
        f"(SELECT code FROM {REGIONS_TABLE} UNION "
        f"SELECT {code} FROM {STAGING_TABLE} WHERE {code} IS NOT NULL)"
    )
    city, province = f"substr({code}, 1, 4) || '00'", f"substr({code}, 1, 2) || '0000'"
    shape = _code_level_sql(code)
    expected = (
        f"CASE WHEN {shape['city']} THEN {province}"
        f" WHEN {shape['county']} THEN CASE WHEN {city} IN {known} THEN {city} ELSE {province} END"
        f" WHEN {shape['township']} THEN substr({code}, 1, 6) END"
    )
    wrong = (
        f"CASE WHEN {shape['province']} THEN {parent} IS NOT NULL"
        f" ELSE {parent} IS NULL OR {parent} <> {expected} OR {parent} NOT IN {known} END"
    )
    failing = f"{code} IS NOT NULL AND ({shape['county']} OR {shape['township']}) AND {wrong}"
    return _rule(
        "region_parent", item, failing,
        f"{_label(item)} is not the existing division one level above "
        f"{_label(contract.item(params.code))}",
        others=(params.code,), params=params,
    )  # fmt: skip


# --------------------------------------------------------------------------- uniqueness


class UniqueParams(Params):
    together_with: list[str] = Field(
        default=[], description="Further items: the combination must be unique"
    )


def _check_unique(contract: Contract, item: DataItem, params: UniqueParams) -> str | None:
    for name in params.together_with:
        if name not in contract.item_names or name == item.name:
            return f"together_with names {name!r}, not another data item"
    return None


@register(
    "unique_value",
    "No two rows of a delivery share the value (or the combination with `together_with`), "
    "rows replaced by a later correction aside: an identifier other than the key.",
    trigger="`rules: [unique_value]`, or `rules: [{unique_value: {together_with: [<item>]}}]`",
    dimension="uniqueness",
    params=UniqueParams,
    nameable=True,
    check=_check_unique,
)
def _unique_value(contract: Contract, item: DataItem, params: UniqueParams) -> Rule:
    cols = [_col(item), *(quote_ident(n) for n in params.together_with)]
    listed = ", ".join(cols)
    present = " AND ".join(f"{c} IS NOT NULL" for c in cols)
    live = f"_rid NOT IN (SELECT _rid FROM {SUPERSEDED_TABLE})"
    failing = (
        f"{present} AND {live} AND ({listed}) IN (SELECT {listed} FROM {STAGING_TABLE} "
        f"WHERE {present} AND {live} GROUP BY ALL HAVING count(*) > 1)"
    )
    together = params.together_with
    suffix = f"_with_{'_'.join(together)}" if together else ""
    what = " with " + ", ".join(together) if together else ""
    return _rule(
        "unique_value", item, failing,
        f"{_label(item)}{what} is not unique: another row of the delivery has the same",
        suffix=suffix, others=tuple(together), params=params,
    )  # fmt: skip


@register(
    "unique_key",
    "The key identifies one record: of rows with the same key, a newer (`source.updated_at`) "
    "or later one replaces the others, which are quarantined.",
    trigger="`key:` (every contract)",
    dimension="uniqueness",
    scope="dataset",
)
def _unique_key(contract: Contract, item: DataItem | None, params: NoParams) -> Rule:
    # Staging lists the superseded rows, so the rule is a cheap probe of a small table.
    return Rule(
        "key.unique", "unique_key", None, tuple(contract.key),
        f"_rid IN (SELECT _rid FROM {SUPERSEDED_TABLE})",
        f"duplicate key ({', '.join(contract.key)}): a newer or later row of the delivery "
        "replaces this one",
    )  # fmt: skip
