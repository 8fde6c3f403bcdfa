"""catalog.ingest.expectations: GX counts the same failing rows as the rules' own SQL.

One 10k-row DuckDB file, shaped like staging (normalised text columns, helper columns,
``ref_regions`` beside it), validated once for all rule kinds; GX is imported once.
"""

from __future__ import annotations

import random
import socket
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from stdnum.cn import ric, uscc

from catalog.ingest.expectations import ExpectationRunError, RuleOutcome, run_suite
from catalog.ingest.rules import Rule, ric_valid_sql, uscc_valid_sql

ROWS = 10_000
REGIONS = [f"{110100 + i}" for i in range(40)]
# The product's own check-character SQL (tests/ingest/test_rules.py checks it against stdnum).
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
ric_valid = ric_valid_sql
uscc_valid = uscc_valid_sql


SEX_FROM_ID = (
    """CASE WHEN (ascii(substr("id_number", 17, 1)) - 48) % 2 = 1 THEN '男' ELSE '女' END"""
)


def rule(name, kind, field, failing_sql, columns=None, **params) -> Rule:
    cols = columns or ((field,) if field else ())
    return Rule(name, kind, field, cols, failing_sql, description=name, params=params)


# failing_sql in the rule compiler's style; for the native kinds it is the SQL equivalent of
# GX's own check (it is what the test counts with).
RULES = [
    rule("id_number.required", "required", "id_number", '"id_number" IS NULL'),
    rule("sex.allowed", "allowed", "sex", """"sex" NOT IN ('男', '女')""", values=["男", "女"]),
    rule(
        "status.allowed",
        "allowed",
        "status",
        """"status" NOT IN ('active', 'closed')""",
        values=["active", "closed"],
    ),
    rule(
        "id_number.unique",
        "unique",
        "id_number",
        '"id_number" IN (SELECT "id_number" FROM people GROUP BY 1 HAVING count(*) > 1)',
    ),
    rule(
        "dept_seq.unique",
        "unique",
        None,
        '"dept" IS NOT NULL AND "seq" IS NOT NULL AND ("dept", "seq") IN ('
        'SELECT "dept", "seq" FROM people GROUP BY ALL HAVING count(*) > 1)',
        columns=("dept", "seq"),
    ),
    rule("key.unique", "duplicate", None, '"_occurrence" > 1', columns=("dept", "seq")),
    rule("dept.pattern", "pattern", "dept", """NOT regexp_full_match("dept", '[A-J]{1}')"""),
    rule("name.length", "length", "name", 'length("name") > 8', max_length=8),
    rule("age.max", "range", "age", 'TRY_CAST("age" AS BIGINT) > CAST(120 AS BIGINT)'),
    rule("age.type", "type", "age", '"age" IS NOT NULL AND TRY_CAST("age" AS BIGINT) IS NULL'),
    rule(
        "birth_date.type",
        "type",
        "birth_date",
        '"birth_date" IS NOT NULL AND TRY_CAST("birth_date" AS DATE) IS NULL',
    ),
    rule(
        "id_number.resident_id",
        "resident_id",
        "id_number",
        f'"id_number" IS NOT NULL AND NOT {ric_valid(chr(34) + "id_number" + chr(34))}',
    ),
    rule(
        "org_code.uscc",
        "uscc",
        "org_code",
        f'"org_code" IS NOT NULL AND NOT {uscc_valid(chr(34) + "org_code" + chr(34))}',
    ),
    rule(
        "region_code.region_code",
        "region_code",
        "region_code",
        '"region_code" IS NOT NULL AND "region_code" NOT IN (SELECT code FROM ref_regions)',
    ),
    rule(
        "phone.phone",
        "phone",
        "phone",
        """"phone" IS NOT NULL AND NOT regexp_full_match("phone", '1[3-9][0-9]{9}')""",
    ),
    rule(
        "sex.agrees_with_id_number",
        "agrees_sex",
        "sex",
        f'"sex" IS NOT NULL AND {ric_valid(chr(34) + "id_number" + chr(34))}'
        f' AND "sex" <> {SEX_FROM_ID}',
        columns=("sex", "id_number"),
    ),
    rule(
        "birth_date.agrees_with_id_number",
        "agrees_birth",
        "birth_date",
        f'"birth_date" IS NOT NULL AND {ric_valid(chr(34) + "id_number" + chr(34))}'
        ' AND TRY_CAST("birth_date" AS DATE)'
        """ <> CAST(try_strptime(substr("id_number", 7, 8), '%Y%m%d') AS DATE)""",
        columns=("birth_date", "id_number"),
    ),
    rule(
        "registered_on.not_before_birth_date",
        "not_before",
        "registered_on",
        'TRY_CAST("registered_on" AS DATE) < TRY_CAST("birth_date" AS DATE)',
        columns=("registered_on", "birth_date"),
    ),
]
NATIVE = {
    "required": "expect_column_values_to_not_be_null",
    "allowed": "expect_column_values_to_be_in_set",
}


def make_rows(seed: int = 7) -> list[tuple]:
    rnd = random.Random(seed)
    rows, ids, occurrences = [], [], {}
    for i in range(ROWS):
        region = rnd.choice(REGIONS)
        birth = date(1940, 1, 1) + timedelta(days=rnd.randrange(30_000))
        body = f"{region}{birth:%Y%m%d}{rnd.randrange(1000):03d}"
        id_number = body + ric.calc_check_digit(body + "0")
        roll = rnd.random()
        if roll < 0.01:
            id_number = None
        elif roll < 0.03:  # wrong check character
            id_number = body + ("0" if id_number[-1] != "0" else "1")
        elif roll < 0.04:
            id_number = body[:10]
        elif roll < 0.06 and ids:
            id_number = rnd.choice(ids)
        ids.append(id_number)
        valid = (
            id_number is not None
            and len(id_number) == 18
            and ric.calc_check_digit(id_number) == id_number[-1]
        )
        sex = "男" if valid and int(id_number[16]) % 2 else "女"
        sex = rnd.choices([sex, "男", "女", "未知", None], [90, 4, 4, 1, 1])[0]
        birth_text = f"{birth:%Y-%m-%d}"
        birth_text = rnd.choices(
            [birth_text, f"{birth + timedelta(days=1):%Y-%m-%d}", "not a date"], [96, 3, 1]
        )[0]
        registered = birth + timedelta(days=rnd.randrange(-200, 20_000))
        org_body = f"{rnd.randrange(10**8):08d}" + "".join(
            rnd.choice(USCC_ALPHABET) for _ in range(9)
        )
        org_code = org_body + uscc.calc_check_digit(org_body)
        org_code = rnd.choices([org_code, org_body + "I", None], [95, 3, 2])[0]
        dept = rnd.choices(["ABCDEFGHIJ"[i % 10], "a1", None], [97, 2, 1])[0]
        seq = i // 10 if rnd.random() > 0.02 else (i // 10) - 1
        key = (dept, seq)
        occurrences[key] = occurrences.get(key, 0) + 1
        rows.append(
            (
                i + 1,
                f"delivery_{i % 3}.csv",
                occurrences[key],
                id_number,
                sex,
                birth_text,
                f"{registered:%Y-%m-%d}",
                rnd.choices([region, "999999", None], [95, 4, 1])[0],
                rnd.choices(
                    [f"1{rnd.randrange(3, 10)}{rnd.randrange(10**9):09d}", "12345"], [97, 3]
                )[0],
                org_code,
                rnd.choices([str(rnd.randrange(100)), "abc", "150", None], [96, 1, 2, 1])[0],
                rnd.choices([f"n{i}", f"long_name_{i}"], [97, 3])[0],
                rnd.choices(["active", "closed", "other", None], [60, 35, 3, 2])[0],
                dept,
                seq,
            )
        )
    return rows


COLUMNS = {
    "_row": pa.int64(),
    "_file": pa.string(),
    "_occurrence": pa.int32(),
    **dict.fromkeys(
        [
            "id_number",
            "sex",
            "birth_date",
            "registered_on",
            "region_code",
            "phone",
            "org_code",
            "age",
            "name",
            "status",
            "dept",
        ],
        pa.string(),
    ),
    "seq": pa.int64(),
}


def build_db(path: Path, table: str = "people", rows: list[tuple] | None = None) -> None:
    rows = make_rows() if rows is None else rows
    data = pa.Table.from_pylist(
        [dict(zip(COLUMNS, row, strict=True)) for row in rows], schema=pa.schema(COLUMNS)
    )
    with duckdb.connect(str(path)) as con:
        con.register("data", data)
        con.execute("CREATE TABLE ref_regions AS SELECT unnest(?::VARCHAR[]) AS code", [REGIONS])
        if "." in table:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM data")


def count_failing(path: Path, table: str, failing_sql: str) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT count(*) FROM {table} WHERE {failing_sql}").fetchone()[0]


def by_rule(outcomes: list[RuleOutcome]) -> dict[str, RuleOutcome]:
    return {outcome.rule: outcome for outcome in outcomes}


@pytest.fixture(scope="module")
def rows() -> list[tuple]:
    return make_rows()


@pytest.fixture(scope="module")
def people_db(tmp_path_factory, rows) -> Path:
    path = tmp_path_factory.mktemp("gx") / "people.duckdb"
    build_db(path, rows=rows)
    return path


def _no_network(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args}")


@pytest.fixture(scope="module")
def outcomes(people_db, tmp_path_factory) -> list[RuleOutcome]:
    """One run over all rules, with the network cut off and an empty working directory."""
    workdir = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _no_network)
        patch.setattr(socket, "create_connection", _no_network)
        patch.chdir(workdir)
        result = run_suite(people_db, "people", RULES, "people_suite")
    assert list(workdir.iterdir()) == []  # GX wrote nothing
    return result


def test_one_outcome_per_rule_in_order(outcomes):
    assert [o.rule for o in outcomes] == [r.name for r in RULES]
    assert all(o.element_count == ROWS for o in outcomes)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_rule_counts_the_rows_its_sql_fails(rule, outcomes, people_db):
    outcome = by_rule(outcomes)[rule.name]
    expected = count_failing(people_db, "people", rule.failing_sql)
    assert expected > 0, "test data must exercise every rule"
    assert outcome.unexpected_count == expected
    assert outcome.success is False


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_native_expectations_where_they_match(rule, outcomes):
    expectation = by_rule(outcomes)[rule.name].expectation_type
    if rule.kind == "unique":
        single = len(rule.columns) == 1
        assert expectation == (
            "expect_column_values_to_be_unique"
            if single
            else "expect_compound_columns_to_be_unique"
        )
    else:
        assert expectation == NATIVE.get(rule.kind, "unexpected_rows_expectation")


def test_null_cells_count_as_missing_not_unexpected(outcomes, rows):
    status = by_rule(outcomes)["status.allowed"]
    nulls = sum(1 for row in rows if row[12] is None)
    assert nulls > 0
    assert status.details["missing_count"] == nulls
    assert status.element_count == ROWS  # all rows, nulls included


def test_clean_table_passes_every_rule(people_db, tmp_path):
    clean = tmp_path / "clean.duckdb"
    any_failing = " OR ".join(f"coalesce(({r.failing_sql}), false)" for r in RULES)
    with duckdb.connect(str(people_db), read_only=True) as con:
        kept = con.execute(f"SELECT * FROM people WHERE NOT ({any_failing})").fetchall()
    assert len(kept) > ROWS // 2
    build_db(clean, rows=kept)

    result = run_suite(clean, "people", RULES, "clean_suite")

    assert all(o.success for o in result), [o for o in result if not o.success]
    assert {o.unexpected_count for o in result} == {0}
    assert {o.element_count for o in result} == {len(kept)}


def test_table_in_a_schema(tmp_path, rows):
    path = tmp_path / "schemas.duckdb"
    build_db(path, table="staging.people", rows=rows)
    with duckdb.connect(str(path)) as con:  # a different table of the same name in main
        con.execute("CREATE TABLE main.people AS SELECT 1 AS other_column")
    rules = [r for r in RULES if r.kind not in ("unique",)]

    result = by_rule(run_suite(path, "staging.people", rules, "staging_suite"))

    for r in rules:
        assert result[r.name].element_count == ROWS
        assert result[r.name].unexpected_count == count_failing(
            path, "staging.people", r.failing_sql
        ), r.name


def test_unique_rules_on_a_table_in_a_schema(tmp_path, rows):
    path = tmp_path / "schemas.duckdb"
    build_db(path, table="staging.people", rows=rows)
    rules = [r for r in RULES if r.kind == "unique"]

    result = by_rule(run_suite(path, '"staging"."people"', rules, "staging_suite"))

    for r in rules:
        expected = count_failing(
            path, "staging.people", r.failing_sql.replace("FROM people", "FROM staging.people")
        )
        assert result[r.name].unexpected_count == expected > 0


def test_empty_table_passes_with_zero_counts(tmp_path):
    path = tmp_path / "empty.duckdb"
    build_db(path, rows=[])

    result = run_suite(path, "people", RULES, "empty")

    assert [(o.success, o.unexpected_count, o.element_count) for o in result] == [
        (True, 0, 0)
    ] * len(RULES)


def test_rules_compiling_to_equal_expectations_are_both_reported(people_db):
    twice = [
        rule("a.required", "required", "id_number", '"id_number" IS NULL'),
        rule("b.required", "required", "id_number", '"id_number" IS NULL'),
    ]
    result = run_suite(people_db, "people", twice, "twice")
    assert [o.rule for o in result] == ["a.required", "b.required"]
    assert result[0].unexpected_count == result[1].unexpected_count > 0


def test_a_broken_rule_is_named_and_does_not_break_the_others(people_db):
    rules = [
        rule("good.first", "range", "age", 'TRY_CAST("age" AS BIGINT) > 120'),
        rule("bad.cast", "type", "age", 'CAST("age" AS BIGINT) > 120'),  # 'abc' fails the cast
        rule("good.second", "phone", "phone", """NOT regexp_full_match("phone", '1[3-9]\\d{9}')"""),
        rule("good.third", "required", "sex", '"sex" IS NULL'),
    ]
    with pytest.raises(ExpectationRunError, match=r"bad\.cast") as error:
        run_suite(people_db, "people", rules, "broken")
    assert "good." not in str(error.value)


def test_the_file_is_released_and_never_created(people_db, tmp_path):
    run_suite(people_db, "people", RULES[:1], "release")
    with duckdb.connect(str(people_db)) as con:  # fails while another connection is open
        con.execute("CREATE TABLE written_after AS SELECT 1")
        con.execute("DROP TABLE written_after")

    missing = tmp_path / "missing.duckdb"
    with pytest.raises(ExpectationRunError, match="does not exist"):
        run_suite(missing, "people", RULES[:1], "missing")
    assert not missing.exists()


def test_bad_arguments(people_db):
    with pytest.raises(ValueError, match="duplicate rule names"):
        run_suite(people_db, "people", [RULES[0], RULES[0]], "dupes")
    with pytest.raises(ValueError, match="table must be"):
        run_suite(people_db, "people; DROP TABLE people", RULES[:1], "injection")
    with pytest.raises(ExpectationRunError, match="nope"):
        run_suite(people_db, "nope", RULES[:1], "no_table")


def test_suite_fed_by_the_verdicts_counts_what_each_predicate_fails(tmp_path, contracts):
    """The pipeline's checks count the verdicts validation wrote instead of evaluating the
    predicates again: on a generated delivery with every kind of defect, each rule's count
    is still the number of staged rows its own SQL fails, rule by rule."""
    from catalog.ingest.rules import STAGING_TABLE, compile_rules
    from catalog.ingest.staging import open_staging, stage, staging_path
    from catalog.ingest.validation import VERDICTS_TABLE, evaluate
    from catalog.samples import generate
    from catalog.settings import Settings

    settings = Settings(home=tmp_path / "runtime")
    population = contracts["population"]
    drop = generate(
        tmp_path / "drops", rows=3000, seed=5, defect_rate=0.02, datasets=["population"]
    )
    path = tmp_path / "drops" / drop.datasets["population"].files[0]
    stage(population, [path], settings, run_id="fed")
    rules = compile_rules(population)
    con = open_staging(settings, "population", "fed")
    try:
        evaluate(con, population)
        expected = {
            r.name: con.execute(
                f"SELECT count(*) FROM {STAGING_TABLE} WHERE {r.failing_sql}"
            ).fetchone()[0]
            for r in rules
        }
    finally:
        con.close()
    outcomes = run_suite(
        staging_path(settings, "population", "fed"), STAGING_TABLE, rules, "fed",
        verdicts=VERDICTS_TABLE,
    )  # fmt: skip
    assert {o.rule: o.unexpected_count for o in outcomes} == expected
    assert sum(1 for count in expected.values() if count) >= 5  # defects of several kinds
    assert all(o.element_count == 3000 for o in outcomes)
