"""Deliveries as departments really send them (issue 8 §3): increments upsert by key, a row
can mark its key deleted, a full snapshot deletes the keys it no longer carries, deleted
rows leave the latest version and stay in the older ones (time travel), a re-export of the
same rows in other bytes publishes nothing new, and a full delivery that would erase most
of the register is refused with the reason."""

from __future__ import annotations

import random

import pytest

from catalog.contracts import DeletionMarker
from catalog.ingest.delivery import run_ingest
from catalog.store.lake import Lake
from catalog.store.versions import get_version, latest_version, version_relation
from tests.conftest import population_rows, write_delivery


def _with_source(contract, **changes):
    return contract.model_copy(update={"source": contract.source.model_copy(update=changes)})


def _keys(lake: Lake, dataset: str, number: int | None = None) -> set[str]:
    with lake.reader() as con:
        version = get_version(con, dataset, number) if number else latest_version(con, dataset)
        rows = con.execute(f"SELECT id_number FROM {version_relation(version)}").fetchall()
    return {r[0] for r in rows}


def _ingest(lake, contract, rows, path, encoding="utf-8"):
    return run_ingest(contract, [write_delivery(contract, rows, path, encoding)], lake)


@pytest.fixture
def lake(settings):
    lake = Lake(settings)
    yield lake
    lake.close()


def test_full_snapshots_delete_absent_keys_and_history_keeps_them(tmp_path, lake, contracts):
    full = _with_source(contracts["population"], delivery="full")
    rows = population_rows(30, seed=21)
    first = _ingest(lake, full, rows, tmp_path / "d1.csv")
    # The second snapshot drops five people and adds three.
    newcomers = population_rows(33, seed=21)[30:]
    second = _ingest(lake, full, rows[5:] + newcomers, tmp_path / "d2.csv")
    # The third drops two more.
    third = _ingest(lake, full, rows[7:] + newcomers, tmp_path / "d3.csv")
    assert [o.status for o in (first, second, third)] == ["published"] * 3
    assert second.version.quality["rows_deleted"] == 5 and "5 row(s) deleted" in second.message
    everyone = {r["id_number"] for r in rows}
    new = {r["id_number"] for r in newcomers}
    assert _keys(lake, "population", 1) == everyone
    assert _keys(lake, "population", 2) == everyone - {r["id_number"] for r in rows[:5]} | new
    assert _keys(lake, "population", 3) == {r["id_number"] for r in rows[7:]} | new
    assert _keys(lake, "population") == _keys(lake, "population", 3)


def test_a_marker_row_deletes_its_key_from_the_latest_version_only(tmp_path, lake, contracts):
    marked = _with_source(
        contracts["population"], deleted_when=DeletionMarker(item="status", values=["迁出"])
    )
    rows = population_rows(20, seed=22)
    assert _ingest(lake, marked, rows, tmp_path / "d1.csv").status == "published"
    gone = [dict(rows[0], status="迁出"), dict(rows[1], status="迁出")]
    outcome = _ingest(lake, marked, gone, tmp_path / "d2.csv")
    assert outcome.status == "published" and outcome.version.quality["rows_deleted"] == 2
    assert outcome.rows_published == 0
    removed = {rows[0]["id_number"], rows[1]["id_number"]}
    assert not removed & _keys(lake, "population")
    assert removed <= _keys(lake, "population", 1)  # older versions still show them


def test_a_re_export_in_other_bytes_publishes_nothing_new(tmp_path, lake, contracts):
    population = contracts["population"]
    rows = population_rows(25, seed=23)
    assert _ingest(lake, population, rows, tmp_path / "d1.csv").status == "published"
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    again = _ingest(lake, population, shuffled, tmp_path / "export.csv", encoding="gbk")
    assert again.status == "unchanged" and again.version is None
    assert "nothing new" in again.message
    with lake.reader() as con:
        assert latest_version(con, "population").version == 1
    # A real change in one row publishes.
    changed = [dict(rows[0], address="杭州市西湖区文二路1号"), *rows[1:]]
    assert _ingest(lake, population, changed, tmp_path / "d3.csv").status == "published"


def test_a_truncated_full_export_is_refused_and_loses_nothing(tmp_path, lake, contracts):
    full = _with_source(contracts["population"], delivery="full", max_deletion_rate=0.5)
    rows = population_rows(40, seed=24)
    assert _ingest(lake, full, rows, tmp_path / "d1.csv").status == "published"
    truncated = _ingest(lake, full, rows[:10], tmp_path / "d2.csv")
    assert truncated.status == "rejected"
    assert "delete 30 of 40" in truncated.message and "max_deletion_rate" in truncated.message
    assert _keys(lake, "population") == {r["id_number"] for r in rows}


def test_an_older_re_delivery_publishes_nothing_and_keeps_its_rows(tmp_path, lake, contracts):
    """Every row older than the published one with its key: nothing changes, and the stale
    rows are still kept in quarantine with their reason (nothing is lost)."""
    from catalog.quality.quarantine import QuarantineQuery, list_rows

    population = contracts["population"]
    rows = population_rows(12, seed=25)
    assert _ingest(lake, population, rows, tmp_path / "d1.csv").status == "published"
    older = [dict(r, updated_at="1999-01-01 00:00:00") for r in rows]
    outcome = _ingest(lake, population, older, tmp_path / "d2.csv")
    assert outcome.status == "unchanged" and outcome.rows_quarantined == len(rows)
    with lake.reader() as con:
        total, kept = list_rows(con, population, QuarantineQuery(), "owner")
    assert total == len(rows) and {r["status"] for r in kept} == {"superseded"}


def test_halving_a_full_register_delivery_after_delivery_is_refused(tmp_path, lake, contracts):
    """Each step deletes no more than half of what is published, but the register is
    measured against its largest size of the past year, so erosion stops at the limit."""
    full = _with_source(contracts["population"], delivery="full", max_deletion_rate=0.5)
    rows = population_rows(40, seed=26)
    assert _ingest(lake, full, rows, tmp_path / "d1.csv").status == "published"
    assert _ingest(lake, full, rows[:20], tmp_path / "d2.csv").status == "published"
    eroded = _ingest(lake, full, rows[:10], tmp_path / "d3.csv")
    assert eroded.status == "rejected" and "of the 40" in eroded.message
    assert len(_keys(lake, "population")) == 20


def test_the_whole_file_sent_again_restores_a_full_register(tmp_path, lake, contracts):
    """After a bad full delivery, the department's earlier complete file (byte for byte)
    publishes again: for a full delivery only the latest version's files are 'the same'."""
    full = _with_source(contracts["population"], delivery="full", max_deletion_rate=0.5)
    rows = population_rows(30, seed=27)
    whole = write_delivery(full, rows, tmp_path / "whole.csv")
    copy = tmp_path / "again" / "whole.csv"
    copy.parent.mkdir()
    copy.write_bytes(whole.read_bytes())
    assert run_ingest(full, [whole], lake).status == "published"
    assert _ingest(lake, full, rows[:20], tmp_path / "cut.csv").status == "published"
    restored = run_ingest(full, [copy], lake)
    assert restored.status == "published", restored.message
    assert _keys(lake, "population") == {r["id_number"] for r in rows}
