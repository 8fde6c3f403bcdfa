"""Ingest runs end to end against a throw-away lake: publish, quarantine, versions, files."""

from __future__ import annotations

import json

import pytest

from catalog.ingest.delivery import run_ingest
from catalog.ingest.publish import schema_hash
from catalog.ingest.staging import file_checksum
from catalog.store.lake import published_table, quarantine_table
from catalog.store.versions import get_version, latest_version, list_versions
from tests.conftest import population_rows, write_delivery


@pytest.fixture
def population(contracts):
    return contracts["population"]


def _count(lake, sql: str) -> int:
    with lake.reader() as con:
        return con.execute(sql).fetchone()[0]


def test_first_delivery_publishes_version_one(tmp_path, lake, population):
    path = write_delivery(population, population_rows(50), tmp_path / "p.csv", "gbk")
    outcome = run_ingest(population, [path], lake)
    assert outcome.status == "published", outcome.message
    assert (outcome.rows_read, outcome.rows_published, outcome.rows_quarantined) == (50, 50, 0)
    with lake.reader() as con:
        version = latest_version(con, "population")
        assert version.version == 1 and version.row_count == 50
        assert version.schema_hash == schema_hash(population)
        assert version.source_files[0]["sha256"] == file_checksum(path)
        assert version.quality["rows_failed"] == 0
        assert version.run_id == outcome.run_id
        snapshot = con.execute(
            "SELECT commit_message FROM lake.snapshots() WHERE snapshot_id = ?",
            [version.snapshot_id],
        ).fetchone()
        assert snapshot == ("publish population v1",)
        typed = con.execute(
            f"SELECT typeof(birth_date), typeof(updated_at) FROM {published_table('population')}"
        ).fetchone()
        assert typed == ("DATE", "TIMESTAMP")
    archived = lake.settings.folder("archive", "population") / outcome.run_id / "p.csv"
    assert archived.exists() and path.exists()  # CLI hand-over copies


def test_identical_file_publishes_nothing_new(tmp_path, lake, population):
    path = write_delivery(population, population_rows(20), tmp_path / "p.csv")
    assert run_ingest(population, [path], lake).status == "published"
    again = run_ingest(population, [path], lake)
    assert again.status == "unchanged"
    with lake.reader() as con:
        assert [v.version for v in list_versions(con, "population")] == [1]


def test_failing_rows_are_quarantined_with_rule_and_reason(tmp_path, lake, population):
    rows = population_rows(40)
    rows[3]["region_code"] = "339999"
    rows[9]["sex"] = "女" if rows[9]["sex"] == "男" else "男"
    rows.append(dict(rows[0], phone="13900000000"))  # a later correction of row 1
    path = write_delivery(population, rows, tmp_path / "p.csv")
    outcome = run_ingest(population, [path], lake)
    assert outcome.status == "published"
    assert (outcome.rows_read, outcome.rows_published, outcome.rows_quarantined) == (41, 38, 3)
    with lake.reader() as con:
        quarantined = con.execute(
            f"SELECT _row, _rules, _reasons FROM {quarantine_table('population')} ORDER BY _row"
        ).fetchall()
        phone = con.execute(
            f"SELECT phone FROM {published_table('population')} WHERE id_number = ?",
            [rows[0]["id_number"]],
        ).fetchone()[0]
    assert [(r[0], r[1]) for r in quarantined] == [
        (1, ["key.unique"]),
        (4, ["region_code.region_code"]),
        (10, ["sex.agrees_with_id_number"]),
    ]
    assert "GB/T 2260" in quarantined[1][2]
    assert phone == "13900000000"


def test_over_threshold_publishes_nothing_and_keeps_previous_version(tmp_path, lake, population):
    good = write_delivery(population, population_rows(30), tmp_path / "good.csv")
    assert run_ingest(population, [good], lake).status == "published"
    rows = population_rows(30, seed=2)
    for row in rows[:10]:
        row["region_code"] = "000000"
    bad = write_delivery(population, rows, tmp_path / "bad.csv")
    outcome = run_ingest(population, [bad], lake)
    assert outcome.status == "rejected"
    assert "10 of 30 rows failed" in outcome.message
    with lake.reader() as con:
        assert latest_version(con, "population").version == 1
        assert (
            con.execute(f"SELECT count(*) FROM {published_table('population')}").fetchone()[0] == 30
        )
        assert (
            con.execute(f"SELECT count(*) FROM {quarantine_table('population')}").fetchone()[0]
            == 10
        )
    rejected = lake.settings.folder("rejected", "population") / outcome.run_id
    assert (rejected / "bad.csv").exists()
    assert "10 of 30 rows failed" in (rejected / "reason.txt").read_text(encoding="utf-8")


def test_unreadable_file_is_rejected_with_reason(tmp_path, lake, population):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    outcome = run_ingest(population, [path], lake, handover="move")
    assert outcome.status == "failed"
    assert "empty.csv" in outcome.message
    rejected = lake.settings.folder("rejected", "population") / outcome.run_id
    assert (rejected / "empty.csv").exists() and not path.exists()
    assert "empty" in (rejected / "reason.txt").read_text(encoding="utf-8")


def test_redelivery_upserts_by_key_and_old_version_stays_queryable(tmp_path, lake, population):
    first = population_rows(20)
    run_ingest(population, [write_delivery(population, first, tmp_path / "a.csv")], lake)
    changed = [dict(first[0], status="迁出"), *population_rows(5, seed=9)]
    second = run_ingest(population, [write_delivery(population, changed, tmp_path / "b.csv")], lake)
    assert second.version.version == 2
    assert second.version.row_count == 25
    table = published_table("population")
    with lake.reader() as con:
        v1 = get_version(con, "population", 1)
        old = con.execute(
            f"SELECT status FROM {table} AT (VERSION => {v1.snapshot_id}) WHERE id_number = ?",
            [first[0]["id_number"]],
        ).fetchone()[0]
        new = con.execute(
            f"SELECT status FROM {table} WHERE id_number = ?", [first[0]["id_number"]]
        ).fetchone()[0]
    assert (old, new) == ("正常", "迁出")


def test_run_records_are_kept(tmp_path, lake, population):
    path = write_delivery(population, population_rows(10), tmp_path / "p.csv")
    outcome = run_ingest(population, [path], lake)
    with lake.reader() as con:
        run = con.execute(
            "SELECT status, rows_read, files FROM lake.govshare.runs WHERE run_id = ?",
            [outcome.run_id],
        ).fetchone()
    assert run[:2] == ("published", 10)
    assert json.loads(run[2])[0]["name"] == "p.csv"


def test_a_delivery_of_several_files(tmp_path, lake, population):
    first, second = population_rows(10), population_rows(10, seed=8)
    second[2]["region_code"] = "339999"
    second[5] = dict(first[4], status="死亡")  # the later file corrects a row of the first
    paths = [
        write_delivery(population, first, tmp_path / "a.csv"),
        write_delivery(population, second, tmp_path / "b.csv", "gbk"),
    ]
    outcome = run_ingest(population, paths, lake)
    assert (outcome.rows_read, outcome.rows_published, outcome.rows_quarantined) == (20, 18, 2)
    assert [f.rows for f in outcome.files] == [10, 10]
    with lake.reader() as con:
        quarantined = con.execute(
            f"SELECT _file, _row, _rules FROM {quarantine_table('population')} ORDER BY _file"
        ).fetchall()
        status = con.execute(
            f"SELECT status FROM {published_table('population')} WHERE id_number = ?",
            [first[4]["id_number"]],
        ).fetchone()[0]
    assert quarantined == [("a.csv", 5, ["key.unique"]), ("b.csv", 3, ["region_code.region_code"])]
    assert status == "死亡"
