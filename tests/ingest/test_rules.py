"""Rule SQL agrees with python-stdnum and catches each defect kind; clean rows pass."""

from __future__ import annotations

import random
import string

import duckdb
import pytest
from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidComponent, ValidationError

from catalog.ingest.rules import compile_rules, ric_valid_sql, uscc_valid_sql
from tests.conftest import make_ric, population_rows

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


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


def _staged(contract, rows):
    """A staging-shaped in-memory table of text rows, with the reference tables."""
    from catalog.regions import region_codes

    con = duckdb.connect()
    cols = ", ".join(f'"{i.name}" VARCHAR' for i in contract.items)
    con.execute(f"CREATE TABLE staging (_rid BIGINT, _row BIGINT, {cols})")
    con.execute("CREATE TABLE ref_superseded (_rid BIGINT)")
    for n, row in enumerate(rows, start=1):
        values = [n, n, *[row.get(i.name) for i in contract.items]]
        con.execute(f"INSERT INTO staging VALUES ({', '.join('?' * len(values))})", values)
        if row.get("_superseded"):
            con.execute("INSERT INTO ref_superseded VALUES (?)", [n])
    con.execute("CREATE TABLE ref_regions (code VARCHAR)")
    con.executemany("INSERT INTO ref_regions VALUES (?)", [(c,) for c in region_codes()])
    return con


def _failures(contract, rows) -> dict[int, set[str]]:
    con = _staged(contract, rows)
    result: dict[int, set[str]] = {}
    for rule in compile_rules(contract):
        for (row,) in con.execute(
            f"SELECT _row FROM staging WHERE coalesce(({rule.failing_sql}), false)"
        ).fetchall():
            result.setdefault(row, set()).add(rule.name)
    return result


def test_clean_rows_pass_every_rule(contracts):
    assert _failures(contracts["population"], population_rows(200)) == {}


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
    "empty required": (lambda r: r.update(name=None), "name.required"),
    "not allowed": (lambda r: r.update(status="失踪"), "status.allowed"),
    "bad phone": (lambda r: r.update(phone="12345"), "phone.phone"),
    "bad date": (lambda r: r.update(updated_at="yesterday"), "updated_at.type"),
    "too early": (lambda r: r.update(birth_date="1850-01-01"), "birth_date.min"),
    "duplicate": (lambda r: r.update(_superseded=True), "key.unique"),
}  # fmt: skip


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_defect_kind_is_caught_by_its_rule(contracts, defect):
    edit, rule = DEFECTS[defect]
    rows = population_rows(20)
    edit(rows[7])
    failures = _failures(contracts["population"], rows)
    assert set(failures) == {8}
    assert rule in failures[8]


def test_not_before_rule(contracts):
    licences = contracts["licences"]
    row = {i.name: None for i in licences.items}
    row.update(issue_date="2024-05-01", valid_until="2024-04-30")
    failures = _failures(licences, [row])
    assert "valid_until.not_before_issue_date" in failures[1]
