"""The rule library: each rule passes valid and fails invalid examples, staged as departments
send them (normalised in SQL first), with a frozen "today". Verdicts on identifiers come from
python-stdnum and the GB/T 2260 table, never from the SQL under test."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import duckdb
import pytest
import yaml
from stdnum import numdb
from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidComponent, ValidationError

from catalog.contracts import Contract
from catalog.ingest.normalise import normalise_sql
from catalog.ingest.rules import (
    REGISTRY,
    compile_rules,
    office_today,
    ric_valid_sql,
    uscc_valid_sql,
    write_reference_tables,
)
from catalog.regions import regions
from catalog.settings import REPO_ROOT
from catalog.sql import quote_ident
from tests.conftest import make_ric, population_rows

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
TODAY = date(2026, 3, 1)  # the frozen clock of these tests
FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")


# --------------------------------------------------------------------------- oracles


def ric_oracle(value: str) -> bool:
    """stdnum's verdict on format, birth date and check char. Its extra test, that the region
    code existed in the holder's birth year, is left out on purpose: real numbers keep
    codes that were later retired (region codes are checked separately)."""
    try:
        ric.validate(value)
        return True
    except InvalidComponent:
        try:
            ric.get_birth_date(value)
        except ValidationError:
            return False
        return True
    except ValidationError:
        return False


def region_in_use_from(code: str, year: int) -> bool:
    """GB/T 2260: was ``code`` in use in ``year`` or later (up to today)? python-stdnum knows
    the years of each code (``get_birth_place`` of a number born that year), today's table
    the codes newer than its data."""
    if code in regions():
        return True
    for in_year in range(year, TODAY.year + 1):
        try:
            ric.get_birth_place(make_ric(code, f"{in_year}0101", 0, True))
            return True
        except (ValidationError, KeyError):  # stdnum 2.2: KeyError for an unknown county
            continue
    return False


def legacy_ric(region: str, birth: str, seq: int, male: bool) -> str:
    """A 15-digit number of GB 11643-1989: region, YYMMDD (1900s), three sequence digits whose
    last is odd for a man. No check character."""
    last = (seq % 5) * 2 + (1 if male else 0)
    return f"{region}{birth[2:]}{seq // 5 % 100:02d}{last}"


def stdnum_codes() -> dict[str, str]:
    """Six-digit codes of python-stdnum's GB/T 2260 table with their names (years in brackets)."""
    codes: dict[str, str] = {}

    def walk(prefixes: list, head: str) -> None:
        for _length, low, _high, props, children in prefixes:
            if len(head + low) == 6:
                codes[head + low] = props.get("county", "")
            walk(children, head + low)

    walk(numdb.get("cn/loc").prefixes, "")
    return codes


# --------------------------------------------------------------------------- staging


def contract_of(items: list[dict], key: list[str] | None = None) -> Contract:
    """A contract with these items (catalog metadata borrowed from population)."""
    raw = yaml.safe_load((REPO_ROOT / "schemas" / "population.yaml").read_text(encoding="utf-8"))
    return Contract.model_validate(
        {
            "dataset": "specimen",
            "title": "Specimen",
            "catalog": raw["catalog"],
            "items": items,
            "key": key or [items[0]["name"]],
            "quality": {"max_failure_rate": 0.1},
            "source": {"formats": ["csv"]},
        }
    )


def staged(
    contract: Contract, rows: list[dict], today: date = TODAY, database: str = ":memory:"
) -> duckdb.DuckDBPyConnection:
    """A staging-shaped table of the raw rows normalised as staging does, with the
    reference tables staging writes (``_superseded: True`` marks a row a later one replaces)."""
    con = duckdb.connect(database)
    names = contract.item_names
    con.execute(
        f"CREATE TABLE raw (_rid BIGINT, {', '.join(f'{quote_ident(n)} VARCHAR' for n in names)})"
    )
    for n, row in enumerate(rows, start=1):
        values = [n, *[row.get(name) for name in names]]
        con.execute(f"INSERT INTO raw VALUES ({', '.join('?' * len(values))})", values)
    normalised = ", ".join(
        f"{normalise_sql(item, quote_ident(item.name))} AS {quote_ident(item.name)}"
        for item in contract.items
    )
    con.execute(f"CREATE TABLE staging AS SELECT _rid, _rid AS _row, {normalised} FROM raw")
    superseded = [(n,) for n, row in enumerate(rows, start=1) if row.get("_superseded")]
    con.execute("CREATE TABLE ref_superseded (_rid BIGINT)")
    if superseded:
        con.executemany("INSERT INTO ref_superseded VALUES (?)", superseded)
    write_reference_tables(con, today)
    return con


def failures(contract: Contract, rows: list[dict], today: date = TODAY) -> dict[int, set[str]]:
    """Row number (1-based) → names of the rules it fails."""
    con = staged(contract, rows, today)
    result: dict[int, set[str]] = {}
    for rule in compile_rules(contract):
        for (row,) in con.execute(
            f"SELECT _row FROM staging WHERE coalesce(({rule.failing_sql}), false)"
        ).fetchall():
            result.setdefault(row, set()).add(rule.name)
    return result


def verdicts(contract: Contract, rule: str, rows: list[dict], today: date = TODAY) -> list[bool]:
    """Per row: does it fail ``rule``?"""
    assert rule in {r.name for r in compile_rules(contract)}, rule
    failed = failures(contract, rows, today)
    return [rule in failed.get(n, set()) for n in range(1, len(rows) + 1)]


# --------------------------------------------------------------------------- check characters


def _random_ric(rng: random.Random) -> str:
    value = make_ric("330106", f"{rng.randint(1950, 2010)}0{rng.randint(1, 9)}1{rng.randint(0, 9)}",
                     rng.randint(0, 99), rng.random() < 0.5)  # fmt: skip
    roll = rng.random()
    if roll < 0.3:  # wrong check char
        return value[:17] + rng.choice([c for c in "0123456789X" if c != value[17]])
    if roll < 0.4:  # a digit changed
        i = rng.randint(0, 16)
        return value[:i] + str((int(value[i]) + 1) % 10) + value[i + 1 :]
    if roll < 0.45:
        return "".join(rng.choice(string.digits + "X") for _ in range(rng.randint(15, 19)))
    return value


def _random_uscc(rng: random.Random) -> str:
    body = "91" + "330106" + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    value = body + uscc.calc_check_digit(body)
    if rng.random() < 0.3:
        return value[:17] + rng.choice([c for c in USCC_ALPHABET if c != value[17]])
    if rng.random() < 0.1:
        return value.replace(value[5], "I", 1)
    return value


@pytest.mark.parametrize(
    ("maker", "sql", "oracle"),
    [(_random_ric, ric_valid_sql, ric_oracle), (_random_uscc, uscc_valid_sql, uscc.is_valid)],
)
def test_check_character_sql_agrees_with_python_stdnum(maker, sql, oracle):
    rng = random.Random(42)
    values = [maker(rng) for _ in range(3000)]
    con = duckdb.connect()
    con.execute("CREATE TABLE v (x VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?)", [(v,) for v in values])
    got = dict(con.execute(f"SELECT x, coalesce({sql('x')}, false) FROM v").fetchall())
    disagreements = [v for v in values if got[v] != oracle(v)]
    assert not disagreements, disagreements[:5]
    assert 0.3 < sum(got.values()) / len(values) < 0.8  # both verdicts were exercised


# --------------------------------------------------------------------------- the library


@dataclass
class Example:
    """Items of a contract, rows that must pass ``rule`` and rows that must fail it, staged
    together (a uniqueness rule needs both)."""

    items: list[dict]
    rule: str
    valid: list[dict]
    invalid: list[dict]
    key: list[str] | None = None
    extra: list[dict] = field(default_factory=list)


def item(name: str, type_: str = "string", **more) -> dict:
    return {"name": name, "label": name.upper(), "type": type_, "description": name, **more}


ID = item("id_number", format="resident_id")
LEGACY_ID = item("id_number", format="resident_id", legacy_15_digit=True)
# A woman born 1980-05-17 in 330106 whose check character is X.
X_ID = next(
    v for v in (make_ric("330106", "19800517", s, False) for s in range(100)) if v[-1] == "X"
)


def _uscc(region: str, kind: str = "91") -> str:
    body = f"{kind}{region}MA2B3C4D5"
    return body + uscc.calc_check_digit(body)


GEO = [
    item("code"),
    item("level", rules=[{"region_level": {"code": "code"}}]),
    item("parent", rules=[{"region_parent": {"code": "code"}}]),
]


def g(code: str, level: str | None = None, parent: str | None = None) -> dict:
    return {"code": code, "level": level, "parent": parent}


EXAMPLES: dict[str, Example] = {
    "required": Example(
        [item("name", required=True)], "name.required", [{"name": "张三"}, {"name": "　李四 "}],
        [{"name": None}, {"name": ""}, {"name": " \u3000"}],
    ),
    "type": Example(
        [item("k"), item("n", "integer"), item("d", "date")], "d.type",
        [{"k": "1", "d": "2024-03-01"}, {"k": "2", "d": "2024/3/1"},
         {"k": "3", "d": "2024年3月1日"}, {"k": "4", "d": "20240301"}, {"k": "5", "d": "45352"},
         {"k": "6", "d": "２０２４-０３-０１"}],
        [{"k": "7", "d": "2024-02-30"}, {"k": "8", "d": "yesterday"}],
    ),
    "length": Example(
        [item("name", length=4)], "name.length", [{"name": "张三丰"}, {"name": "abcd"}],
        [{"name": "abcde"}, {"name": "欧阳东方明"}],
    ),
    "allowed": Example(
        [item("status", allowed=["正常", "死亡"])], "status.allowed",
        [{"status": "正常"}, {"status": " 死亡 "}], [{"status": "失踪"}, {"status": "normal"}],
    ),
    "pattern": Example(
        [item("no", pattern="^XY[0-9]{4}$")], "no.pattern",
        [{"no": "XY0001"}, {"no": "ＸＹ０００２"}],
        [{"no": "xy0003"}, {"no": "XY00041"}],
    ),
    "min": Example(
        [item("k"), item("born", "date", min="1900-01-01")], "born.min",
        [{"k": "1", "born": "1900-01-01"}, {"k": "2", "born": "1985-06-01"}],
        [{"k": "3", "born": "1899-12-31"}, {"k": "4", "born": "0198-06-01"}],
    ),
    "max": Example(
        [item("k"), item("lat", "decimal", max=54)], "lat.max",
        [{"k": "1", "lat": "54"}, {"k": "2", "lat": "30.25"}], [{"k": "3", "lat": "54.01"}],
    ),
    "not_in_future": Example(
        [item("k"), item("born", "date", rules=["not_in_future"])], "born.not_in_future",
        [{"k": "1", "born": "2026-03-01"}, {"k": "2", "born": "2026/2/28"}],
        [{"k": "3", "born": "2026-03-02"}, {"k": "4", "born": "2026年3月2日"},
         {"k": "5", "born": "2126-01-01"}],
    ),
    "resident_id": Example(
        [ID], "id_number.resident_id",
        [{"id_number": make_ric("330106", "19800517", 1, True)},
         {"id_number": X_ID.lower()},  # lower-case x: upper-cased by normalisation
         {"id_number": make_ric("330106", "19900101", 2, True).translate(FULL_WIDTH)},
         {"id_number": make_ric("330106", "20260301", 3, False)}],  # born today
        [{"id_number": X_ID[:17] + "0"},  # wrong check character
         {"id_number": make_ric("330106", "20260302", 4, True)},  # born tomorrow
         {"id_number": legacy_ric("330106", "19800517", 5, True)}],  # 15 digits, not allowed
    ),
    "resident_id_region": Example(
        [ID], "id_number.resident_id_region",
        [{"id_number": make_ric("330103", "19800101", 1, True)},  # 下城区, retired 2021
         {"id_number": make_ric("330113", "20220101", 2, True)}],  # 临平区, created 2021
        [{"id_number": make_ric("339999", "19800101", 3, True)},  # never assigned
         {"id_number": make_ric("330103", "20220101", 4, True)}],  # retired before the birth
    ),
    "uscc": Example(
        [item("code", format="uscc")], "code.uscc",
        [{"code": _uscc("330106")}, {"code": _uscc("330106").lower()}],
        [{"code": _uscc("330106")[:17] + "0"}, {"code": "91330106MA2B3C4D5I"}],
    ),
    "uscc_region": Example(
        [item("code", format="uscc")], "code.uscc_region",
        [{"code": _uscc("330106")}, {"code": _uscc("330103")}, {"code": _uscc("100000", "11")}],
        [{"code": _uscc("999999")}, {"code": _uscc("330107")}],  # 半山区: retired 1990
    ),
    "subject_id": Example(
        [item("subject", format="subject_id")], "subject.subject_id",
        [{"subject": _uscc("330106")}, {"subject": X_ID.lower()}],
        [{"subject": _uscc("330106")[:17] + "0"}, {"subject": "12345"}],
    ),
    "subject_id_region": Example(
        [item("subject", format="subject_id")], "subject.subject_id_region",
        [{"subject": _uscc("330103")}, {"subject": make_ric("330103", "19700101", 1, True)}],
        [{"subject": _uscc("999999")}, {"subject": make_ric("339999", "19700101", 2, True)}],
    ),
    "region_code": Example(
        [item("region", format="region_code")], "region.region_code",
        [{"region": "330106"}, {"region": "３３０１１３"}],
        [{"region": "330103"}, {"region": "339999"}],  # retired; never assigned
    ),
    "phone": Example(
        [item("phone", format="phone")], "phone.phone",
        [{"phone": "13812345678"}, {"phone": "+86 138-1234-5678"},
         {"phone": "１３９１２３４５６７８"}],
        [{"phone": "12345678901"}, {"phone": "0571-88888888"}],
    ),
    "agrees_sex": Example(
        [ID, item("sex", agrees_with={"field": "id_number", "part": "sex"})],
        "sex.agrees_with_id_number",
        [{"id_number": make_ric("330106", "19800517", 1, True), "sex": "男"},
         {"id_number": X_ID, "sex": "女"}],
        [{"id_number": make_ric("330106", "19800517", 2, True), "sex": "女"}],
    ),
    "agrees_birth": Example(
        [ID, item("birth", "date", agrees_with={"field": "id_number", "part": "birth_date"})],
        "birth.agrees_with_id_number",
        [{"id_number": X_ID, "birth": "1980/5/17"}],
        [{"id_number": make_ric("330106", "19800517", 1, True), "birth": "1980-05-18"}],
    ),
    "not_before": Example(
        [item("k"), item("issued", "date"), item("valid_until", "date", not_before="issued")],
        "valid_until.not_before_issued",
        [{"k": "1", "issued": "2024-05-01", "valid_until": "2024-05-01"},
         {"k": "2", "issued": "2024-05-01", "valid_until": "2029-04-30"}],
        [{"k": "3", "issued": "2024-05-01", "valid_until": "2024-04-30"}],
    ),
    "region_level": Example(
        GEO, "level.region_level",
        [g("330000", "province"), g("330100", "city"), g("330106", "county"), g("419001", "county"),
         g("330106001", "township")],
        [g("330101", "city"), g("330200", "province"), g("330000", "city")],
    ),
    "region_parent": Example(
        GEO, "parent.region_parent",
        [g("330000"), g("330100", parent="330000"), g("330106", parent="330100"),
         g("419001", parent="410000"),  # 济源: a county under its province
         g("810101", parent="810000"),  # 中西区: Hong Kong has no city level
         g("339900", parent="330000"), g("339901", parent="339900")],  # a city new to GB/T 2260
        [g("330106", parent="330000"),  # two levels up
         g("330100", parent="330106"),  # one level down
         g("330108"),  # no parent
         g("330000", parent="100000"),  # a province under something
         g("330109", parent="330200"),  # another city
         g("338801", parent="338800")],  # a city that does not exist
        key=["code"],
    ),
    "unique_value": Example(
        [item("k"), item("serial", rules=["unique_value"])], "serial.unique_value",
        [{"k": "1", "serial": "A"}, {"k": "2", "serial": "B"},
         {"k": "3", "serial": "C", "_superseded": True}, {"k": "3", "serial": "C"},
         {"k": "5", "serial": None}, {"k": "6", "serial": None}],
        [{"k": "7", "serial": "D"}, {"k": "8", "serial": "D"}],
    ),
    "unique_key": Example(
        [item("k")], "key.unique", [{"k": "1"}, {"k": "2"}],
        [{"k": "3", "_superseded": True}],
    ),
}  # fmt: skip


def test_every_rule_of_the_library_has_examples():
    assert set(EXAMPLES) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_rule_passes_valid_and_fails_invalid_examples(name):
    example = EXAMPLES[name]
    contract = contract_of(example.items, example.key)
    rules = {r.name: r for r in compile_rules(contract)}
    assert rules[example.rule].kind == name
    rows = example.valid + example.invalid
    got = verdicts(contract, example.rule, rows)
    assert got == [False] * len(example.valid) + [True] * len(example.invalid), rows


# --------------------------------------------------------------------------- dates and clock


def test_today_is_the_office_day_and_read_once_per_run():
    assert office_today("Asia/Shanghai", datetime(2026, 3, 1, 16, 30, tzinfo=UTC)) == date(
        2026, 3, 2
    )
    assert office_today("UTC", datetime(2026, 3, 1, 16, 30, tzinfo=UTC)) == date(2026, 3, 1)
    contract = contract_of([item("k"), item("born", "date", rules=["not_in_future"])])
    rows = [{"k": "1", "born": "2026-03-02"}]
    assert verdicts(contract, "born.not_in_future", rows, today=date(2026, 3, 1)) == [True]
    assert verdicts(contract, "born.not_in_future", rows, today=date(2026, 3, 2)) == [False]
    # The rules read the run's day from its reference table, never the clock per row.
    for rule in compile_rules(contract):
        assert not any(f in rule.failing_sql.lower() for f in ("current_date", "now()", "today()"))


def test_timestamps_in_the_future():
    contract = contract_of([item("k"), item("at", "timestamp", rules=["not_in_future"])])
    rows = [{"k": "1", "at": "2026-03-01 23:59:59"}, {"k": "2", "at": "2026-03-02 00:00:00"}]
    assert verdicts(contract, "at.not_in_future", rows) == [False, True]


# --------------------------------------------------------------------------- resident identity


def test_region_of_identity_numbers_agrees_with_the_gbt2260_years():
    """Retired codes are valid for numbers of people born while (or before) they were in use;
    the verdicts come from python-stdnum's table of codes by year."""
    rng = random.Random(5)
    codes = stdnum_codes()
    retired = [c for c, names in codes.items() if names.startswith("[") and "-]" not in names]
    current = sorted(regions())
    never = [c for c in (f"{rng.randint(110000, 829999)}" for _ in range(400)) if c not in codes][
        :40
    ]
    sample = rng.sample(retired, 120) + rng.sample(current, 40) + never
    numbers = [make_ric(c, f"{rng.randint(1930, 2025)}0{rng.randint(1, 9)}15", i % 100, True)
               for i, c in enumerate(sample)]  # fmt: skip
    expected = [not region_in_use_from(n[:6], int(n[6:10])) for n in numbers]
    got = verdicts(
        contract_of([ID]), "id_number.resident_id_region", [{"id_number": n} for n in numbers]
    )
    wrong = [n for n, e, v in zip(numbers, expected, got, strict=True) if e != v]
    assert not wrong, wrong[:5]
    assert 20 < sum(expected) < len(numbers) - 20  # both verdicts were exercised


def test_uscc_region_agrees_with_the_gbt2260_years():
    rng = random.Random(6)
    codes = stdnum_codes()
    sample = [*rng.sample(sorted(codes), 200), "100000", "339999", "330113"]
    values = [_uscc(c) for c in sample]
    expected = [not (c == "100000" or region_in_use_from(c, 2015)) for c in sample]
    assert all(uscc.is_valid(v) for v in values)
    got = verdicts(
        contract_of([item("code", format="uscc")]),
        "code.uscc_region",
        [{"code": v} for v in values],
    )
    assert got == expected
    assert 10 < sum(expected) < len(values) - 10


def test_fifteen_digit_numbers_only_where_the_contract_allows_them():
    old_man = legacy_ric("330106", "19650317", 7, True)
    old_woman = legacy_ric("330103", "19700101", 8, False)  # 下城区: in use until 2021
    bad_date = legacy_ric("330106", "19651317", 9, True)
    unknown_region = legacy_ric("339999", "19650317", 7, True)
    modern = make_ric("330106", "19650317", 7, True)
    rows = [{"id_number": v} for v in (old_man, old_woman, bad_date, unknown_region, modern)]
    assert verdicts(contract_of([ID]), "id_number.resident_id", rows) == [
        True,
        True,
        True,
        True,
        False,
    ]
    allowed = contract_of([LEGACY_ID])
    assert verdicts(allowed, "id_number.resident_id", rows) == [False, False, True, False, False]
    assert verdicts(allowed, "id_number.resident_id_region", rows) == [
        False,
        False,
        False,
        True,
        False,
    ]


def test_fifteen_digit_numbers_agree_with_sex_and_birth_when_allowed():
    items = [
        LEGACY_ID,
        item("sex", agrees_with={"field": "id_number", "part": "sex"}),
        item("birth", "date", agrees_with={"field": "id_number", "part": "birth_date"}),
    ]
    man = legacy_ric("330106", "19650317", 7, True)
    rows = [{"id_number": man, "sex": "男", "birth": "1965-03-17"},
            {"id_number": man[:14] + "2", "sex": "男", "birth": "1965-03-18"}]  # fmt: skip
    contract = contract_of(items)
    assert verdicts(contract, "sex.agrees_with_id_number", rows) == [False, True]
    assert verdicts(contract, "birth.agrees_with_id_number", rows) == [False, True]


def test_an_identity_number_born_in_the_future_fails_however_valid_its_check_character():
    number = make_ric("330106", "20260302", 1, True)
    assert ric.is_valid(number) and ric.get_birth_date(number) > TODAY  # stdnum: fine
    row = [{"id_number": number}]
    assert verdicts(contract_of([ID]), "id_number.resident_id", row) == [True]
    assert verdicts(contract_of([ID]), "id_number.resident_id", row, today=date(2026, 3, 2)) == [
        False
    ]


# --------------------------------------------------------------------------- the base contracts


def test_clean_rows_pass_every_rule(contracts):
    assert failures(contracts["population"], population_rows(200)) == {}


def _other_check_char(value: str) -> str:
    return value[:17] + ("1" if value[17] == "0" else "0")


DEFECTS = {
    "wrong check char": (lambda r: r.update(id_number=_other_check_char(r["id_number"])),
                         "id_number.resident_id"),
    "sex disagrees": (lambda r: r.update(sex="女" if r["sex"] == "男" else "男"),
                      "sex.agrees_with_id_number"),
    "birth disagrees": (lambda r: r.update(birth_date="1999-12-31"),
                        "birth_date.agrees_with_id_number"),
    "unknown region": (lambda r: r.update(region_code="339999"), "region_code.region_code"),
    "retired region": (lambda r: r.update(region_code="330103"), "region_code.region_code"),
    "empty required": (lambda r: r.update(name=None), "name.required"),
    "not allowed": (lambda r: r.update(status="失踪"), "status.allowed"),
    "bad phone": (lambda r: r.update(phone="12345"), "phone.phone"),
    "bad date": (lambda r: r.update(updated_at="yesterday"), "updated_at.type"),
    "too early": (lambda r: r.update(birth_date="1850-01-01"), "birth_date.min"),
    "born tomorrow": (lambda r: r.update(birth_date="2026-03-02"), "birth_date.not_in_future"),
    "duplicate": (lambda r: r.update(_superseded=True), "key.unique"),
}  # fmt: skip


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_defect_kind_is_caught_by_its_rule(contracts, defect):
    edit, rule = DEFECTS[defect]
    rows = population_rows(20)
    edit(rows[7])
    found = failures(contracts["population"], rows)
    assert set(found) == {8}
    assert rule in found[8]


def test_base_contracts_name_the_rules_the_spec_asks_for(contracts):
    names = {n: {r.name for r in compile_rules(c)} for n, c in contracts.items()}
    assert {"birth_date.not_in_future", "id_number.resident_id_region"} <= names["population"]
    assert {"established_date.not_in_future", "uscc.uscc_region"} <= names["legal_persons"]
    assert {"issue_date.not_in_future", "valid_until.not_before_issue_date"} <= names["licences"]
    assert {"decision_date.not_in_future", "subject_id.subject_id_region"} <= names[
        "credit_records"
    ]
    assert {"level.region_level", "parent_code.region_parent"} <= names["geography"]


def test_licence_valid_until_not_before_issue_date(contracts):
    licences = contracts["licences"]
    rows = [{i.name: None for i in licences.items} for _ in range(2)]
    rows[0].update(issue_date="2024-05-01", valid_until="2024-04-30")
    rows[1].update(issue_date="2024-05-01", valid_until="2024-05-01")
    assert verdicts(licences, "valid_until.not_before_issue_date", rows) == [True, False]


def test_geography_divisions_of_gbt2260_pass(contracts):
    """Every division of today's table is consistent with its level and parent."""
    geography = contracts["geography"]
    rows = [
        {"region_code": r.code, "name": r.name, "level": r.level, "parent_code": r.parent_code}
        for r in regions().values()
        if r.code[:2] in ("33", "41", "81", "11")
    ]
    found = failures(geography, rows)
    assert not [
        (rows[n - 1]["region_code"], rules) for n, rules in found.items()
        if rules & {"level.region_level", "parent_code.region_parent"}
    ]  # fmt: skip


def test_rule_dimensions():
    assert REGISTRY["required"].dimension == "completeness"
    assert {n for n, s in REGISTRY.items() if s.dimension == "uniqueness"} == {
        "unique_key",
        "unique_value",
    }


# --------------------------------------------------------------------------- consumers


def test_great_expectations_counts_what_the_rules_fail(tmp_path, contracts):
    """The compiled rules (subqueries on the reference tables included) run as the Dagster
    asset checks do, and count the rows their SQL fails."""
    from catalog.ingest.expectations import run_suite

    rows = population_rows(30)
    for n, (edit, _rule) in enumerate(DEFECTS.values()):
        edit(rows[n])
    parent = EXAMPLES["region_parent"]
    unique = EXAMPLES["unique_value"]
    cases = [
        (contracts["population"], rows),
        (contract_of(parent.items, parent.key), parent.valid + parent.invalid),
        (contract_of(unique.items), unique.valid + unique.invalid),
        (contract_of([LEGACY_ID]), [{"id_number": legacy_ric("339999", "19650317", 1, True)}]),
    ]
    for n, (contract, case_rows) in enumerate(cases):
        path = tmp_path / f"case{n}.duckdb"
        staged(contract, case_rows, database=str(path)).close()
        rules = compile_rules(contract)
        outcomes = run_suite(path, "staging", rules, f"case{n}")
        con = duckdb.connect(str(path), read_only=True)
        for rule, outcome in zip(rules, outcomes, strict=True):
            (expected,) = con.execute(
                f"SELECT count(*) FROM staging WHERE coalesce(({rule.failing_sql}), false)"
            ).fetchone()
            assert outcome.unexpected_count == expected, rule.name
        con.close()
        assert any(o.unexpected_count for o in outcomes)


def test_staging_fixes_today_once_and_validation_quarantines_the_future(tmp_path, contracts):
    from catalog.ingest.staging import open_staging, stage
    from catalog.ingest.validation import evaluate
    from catalog.settings import Settings
    from tests.conftest import write_delivery

    settings = Settings(home=tmp_path / "runtime")
    population = contracts["population"]
    rows = population_rows(5)
    rows[2]["birth_date"] = "2026-03-02"
    path = write_delivery(population, rows, tmp_path / "p.csv")
    report = stage(population, [path], settings, run_id="frozen", today=TODAY)
    con = open_staging(settings, "population", report.run_id)
    try:
        assert con.execute("SELECT today FROM ref_clock").fetchall() == [(TODAY,)]
        summary = evaluate(con, population)
    finally:
        con.close()
    assert summary.rows_failed == 1
    assert summary.rules["birth_date.not_in_future"] == 1
