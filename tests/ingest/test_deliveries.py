"""Deliveries that must not erase or overwrite newer data, and runs that must not be lost
(SPEC §4: re-deliveries upsert by key, a failed run leaves the previous version live; the
developers' guide: bad input loses nothing, no delivery silently erases newer data).

- a file without a column for every data item is refused, unless the contract takes
  partial updates, and then an omitted item keeps its published value;
- a row older than the published row with its key (``source.updated_at``) is not applied:
  it is kept in quarantine with the reason and reported with its key masked;
- two ingests of one dataset at once both land, one after the other; one that cannot get
  the lake in time fails with the reason and is still recorded;
- every run is in the hash-chained audit log; records name files, never server paths.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from catalog.ingest.delivery import pending_runs_dir, run_ingest
from catalog.settings import REPO_ROOT, Settings
from catalog.sharing.audit import AuditQuery, search, verify
from catalog.state.db import StateStore
from catalog.store.lake import Lake, published_table, quarantine_table
from catalog.store.versions import latest_version, list_versions, recent_runs
from tests.conftest import population_rows, write_delivery

OLD, NEW, NEWER = "1999-01-01 00:00:00", "2024-06-01 08:00:00", "2025-03-01 09:30:00"
OMITTED = ("ethnicity", "address", "phone")  # optional items of the population contract


@pytest.fixture
def population(contracts):
    return contracts["population"]


@pytest.fixture
def partial(population):
    """The population contract as a department that sends changed items only would have it."""
    source = population.source.model_copy(update={"partial_updates": True})
    return population.model_copy(update={"source": source})


def _published(lake, key: str, columns: str = "*") -> tuple | None:
    with lake.reader() as con:
        return con.execute(
            f"SELECT {columns} FROM {published_table('population')} WHERE id_number = ?", [key]
        ).fetchone()


def _rows(n: int, stamp: str = NEW, seed: int = 1) -> list[dict[str, str]]:
    return [dict(row, updated_at=stamp) for row in population_rows(n, seed=seed)]


def _without(rows: list[dict[str, str]], items: tuple[str, ...]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k not in items} for row in rows]


def _write(contract, rows, path, items: tuple[str, ...] = ()):
    """A delivery whose header lacks the given items entirely (not just empty cells)."""
    kept = contract.model_copy(update={"items": [i for i in contract.items if i.name not in items]})
    return write_delivery(kept, _without(rows, items), path)


# --- Every item, or partial updates -----------------------------------------------------


def test_a_file_without_a_column_for_every_item_is_refused_and_erases_nothing(
    tmp_path, lake, population
):
    people = _rows(30)
    assert run_ingest(population, [_write(population, people, tmp_path / "a.csv")], lake).version
    before = _published(lake, people[0]["id_number"], "ethnicity, address, phone")
    assert all(before)
    changed = [dict(row, status="迁出") for row in people[:5]]
    outcome = run_ingest(
        population, [_write(population, changed, tmp_path / "b.csv", OMITTED)], lake
    )
    assert outcome.status == "failed" and outcome.version is None
    for item in OMITTED:  # the message names every missing item
        assert item in outcome.message
    assert "b.csv" in outcome.message
    assert _published(lake, people[0]["id_number"], "ethnicity, address, phone") == before
    with lake.reader() as con:
        assert [v.version for v in list_versions(con, "population")] == [1]
    rejected = lake.settings.folder("rejected", "population") / outcome.run_id
    assert (rejected / "b.csv").exists()
    assert "address" in (rejected / "reason.txt").read_text(encoding="utf-8")


def test_partial_updates_keep_the_published_values_of_omitted_items(tmp_path, lake, partial):
    people = _rows(30)
    run_ingest(partial, [_write(partial, people, tmp_path / "a.csv")], lake)
    newcomer = _rows(1, NEWER, seed=5)[0]
    changed = [dict(people[0], status="死亡", updated_at=NEWER), newcomer]
    outcome = run_ingest(partial, [_write(partial, changed, tmp_path / "b.csv", OMITTED)], lake)
    assert outcome.status == "published", outcome.message
    got = _published(lake, people[0]["id_number"], "status, ethnicity, address, phone")
    assert got == ("死亡", people[0]["ethnicity"], people[0]["address"], people[0]["phone"])
    # A new key has nothing to keep: its omitted items are empty.
    assert _published(lake, newcomer["id_number"], "ethnicity, address, phone") == (None,) * 3
    assert outcome.version.row_count == 31


def test_partial_updates_still_need_the_required_items(tmp_path, lake, partial):
    people = _rows(5)
    path = _write(partial, people, tmp_path / "a.csv", ("status",))
    outcome = run_ingest(partial, [path], lake)
    assert outcome.status == "failed"
    assert "missing required column" in outcome.message and "status" in outcome.message


# --- Stale rows ------------------------------------------------------------------------


def test_a_row_older_than_the_published_one_is_not_applied_and_is_reported_masked(
    tmp_path, lake, population
):
    people = _rows(20)
    run_ingest(population, [write_delivery(population, people, tmp_path / "a.csv")], lake)
    stale = dict(people[0], status="死亡", updated_at=OLD)  # a 1999 record of a living person
    fresh = dict(people[1], status="迁出", updated_at=NEWER)
    same = dict(people[2], address="杭州市更正路1号")  # the same time: a correction, applied
    delivery = write_delivery(population, [stale, fresh, same], tmp_path / "b.csv")
    outcome = run_ingest(population, [delivery], lake)
    assert outcome.status == "published", outcome.message
    assert _published(lake, people[0]["id_number"], "status") == ("正常",)
    assert _published(lake, people[1]["id_number"], "status") == ("迁出",)
    assert _published(lake, people[2]["id_number"], "address") == ("杭州市更正路1号",)
    assert (outcome.rows_read, outcome.rows_published, outcome.rows_stale) == (3, 2, 1)
    # Reported with the key masked as the contract masks identity numbers.
    key = people[0]["id_number"]
    assert outcome.stale_keys == (key[:4] + "*" * 10 + key[-4:],)
    assert key not in outcome.message and "stale" in outcome.message
    with lake.reader() as con:
        kept = con.execute(
            f"SELECT status, updated_at, _rules, _reasons FROM {quarantine_table('population')} "
            "WHERE id_number = ?",
            [key],
        ).fetchone()
        run = next(r for r in recent_runs(con) if r.run_id == outcome.run_id)
    assert kept[:3] == ("死亡", OLD, ["stale"])  # the rejected row is kept, with its reason
    assert "older than the published" in kept[3] and "2024-06-01" in kept[3]
    assert (run.rows_stale, run.stale_keys) == (1, list(outcome.stale_keys))


def test_within_one_delivery_the_newest_row_of_a_key_wins(tmp_path, lake, population):
    others = _rows(20, seed=4)
    person = _rows(1)[0]
    newer = dict(person, status="迁出", updated_at=NEWER)
    older = dict(person, status="死亡", updated_at=NEW)  # later in the file, but older
    delivery = write_delivery(population, [newer, older, *others], tmp_path / "a.csv")
    outcome = run_ingest(population, [delivery], lake)
    assert outcome.status == "published"
    assert _published(lake, person["id_number"], "status") == ("迁出",)
    with lake.reader() as con:
        rules = con.execute(f"SELECT _row, _rules FROM {quarantine_table('population')}").fetchall()
    assert rules == [(2, ["key.unique"])]


# --- Concurrent ingests -----------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from catalog.contracts import load_contracts
    from catalog.ingest.delivery import run_ingest
    from catalog.store.lake import Lake
    from catalog.settings import Settings
    settings = Settings(home={home!r})
    contract = load_contracts(settings.schemas_dir)["population"]
    outcome = run_ingest(contract, [Path({path!r})], Lake(settings))
    print(outcome.status, outcome.version.version if outcome.version else "-", outcome.message)
    """
)


def test_two_ingests_of_one_dataset_at_once_both_publish_one_after_the_other(
    tmp_path, settings, population
):
    Lake(settings).initialise()
    paths = [
        write_delivery(population, _rows(300, seed=seed), tmp_path / f"{seed}.csv")
        for seed in (1, 2)
    ]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD.format(root=str(REPO_ROOT), home=str(settings.home), path=str(path)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in paths
    ]
    results = [child.communicate(timeout=300) for child in children]
    for (out, err), child in zip(results, children, strict=True):
        assert child.returncode == 0, err
        assert out.startswith("published"), out
    lake = Lake(settings)
    with lake.reader() as con:
        assert [v.version for v in list_versions(con, "population")] == [2, 1]
        assert latest_version(con, "population").row_count == 600
        assert {r.status for r in recent_runs(con)} == {"published"}
    assert not list(settings.folder("staging", "population").iterdir())


def test_an_ingest_that_cannot_get_the_lake_in_time_fails_with_the_reason_and_is_recorded(
    tmp_path, tmp_path_factory, population
):
    settings = Settings(home=tmp_path / "runtime", lake_lock_timeout_seconds=0.3)
    lake = Lake(settings)
    lake.initialise()
    path = write_delivery(population, _rows(10), tmp_path / "a.csv")
    holder = Lake(settings)
    with holder.writer():  # another run is writing
        outcome = run_ingest(population, [path], lake)
    assert outcome.status == "failed"
    assert outcome.message.startswith("the lake is busy")
    rejected = settings.folder("rejected", "population") / outcome.run_id
    assert (rejected / "a.csv").exists()
    assert "busy" in (rejected / "reason.txt").read_text(encoding="utf-8")
    pending = list(pending_runs_dir(settings).glob("*.json"))
    assert [p.stem for p in pending] == [outcome.run_id]
    # The next run that gets the lake records both.
    later = run_ingest(population, [path], lake)
    assert later.status == "published"
    with lake.reader() as con:
        runs = {r.run_id: r for r in recent_runs(con)}
    assert runs[outcome.run_id].status == "failed" and "busy" in runs[outcome.run_id].message
    assert not list(pending_runs_dir(settings).glob("*.json"))
    holder.close()


# --- Runs on record --------------------------------------------------------------------


def test_every_run_is_in_the_audit_chain_and_names_files_not_server_paths(
    tmp_path, settings, lake, population
):
    good = write_delivery(population, _rows(10), tmp_path / "good.csv")
    published = run_ingest(population, [good], lake, operator="cli:clerk")
    unchanged = run_ingest(population, [good], lake, operator="cli:clerk")
    broken = tmp_path / "broken.csv"
    broken.write_text("", encoding="utf-8")
    failed = run_ingest(population, [broken], lake, operator="cli:clerk")
    store = StateStore(settings)
    with store.reading() as session:
        entries = search(session, AuditQuery(action="ingest"), limit=10, offset=0)
        chain = verify(session)
    store.close()
    assert chain.intact
    assert [(e.result, e.version) for e in reversed(entries)] == [
        ("published", 1),
        ("unchanged", None),
        ("failed", None),
    ]
    for entry, outcome in zip(reversed(entries), (published, unchanged, failed), strict=True):
        assert entry.username == "cli:clerk" and entry.dataset == "population"
        assert entry.detail["run_id"] == outcome.run_id
    assert entries[-1].detail["files"] == [
        {"name": "good.csv", "sha256": published.files[0].sha256}
    ]
    with lake.reader() as con:
        recorded = json.dumps(
            [v.source_files for v in list_versions(con, "population")]
            + [r.files for r in recent_runs(con)]
        )
    assert str(tmp_path) not in recorded and "good.csv" in recorded


def test_a_redelivery_is_known_by_its_content_and_reported_with_a_note(
    tmp_path, settings, lake, population
):
    """The same content under another name and with another modification time is still the
    published file: reported (archive with a note, run record, audit entry), not ingested."""
    first = write_delivery(population, _rows(10), tmp_path / "may.csv")
    assert run_ingest(population, [first], lake).status == "published"
    renamed = tmp_path / "again" / "june.csv"
    renamed.parent.mkdir()
    renamed.write_bytes(first.read_bytes())
    os.utime(renamed, (0, 0))
    outcome = run_ingest(population, [renamed], lake)
    assert outcome.status == "unchanged" and outcome.version is None
    assert "june.csv (same content as may.csv) already published in version 1" in outcome.message
    archived = settings.folder("archive", "population") / outcome.run_id
    assert (archived / "june.csv").exists()
    assert (archived / "note.txt").read_text(encoding="utf-8").strip() == outcome.message
    assert not list(settings.folder("rejected").rglob("june.csv"))
    with lake.reader() as con:
        assert [v.version for v in list_versions(con, "population")] == [1]
        assert {r.run_id: r.status for r in recent_runs(con)}[outcome.run_id] == "unchanged"
    store = StateStore(settings)
    with store.reading() as session:
        entries = search(session, AuditQuery(action="ingest"), limit=10, offset=0)
    store.close()
    (entry,) = [e for e in entries if e.result == "unchanged"]
    assert entry.detail["run_id"] == outcome.run_id and "identical" in entry.detail["message"]


# --- The runtime folder ------------------------------------------------------------------


def test_the_runtime_folder_and_everything_in_it_is_owner_only(tmp_path, population):
    home = tmp_path / "runtime"
    home.mkdir(mode=0o755)
    previous = os.umask(0o022)  # as a login shell would have it
    try:
        settings = Settings(home=home)
        lake = Lake(settings)
        path = write_delivery(population, _rows(10), tmp_path / "a.csv")
        path.chmod(0o644)  # as a department's export tool leaves it
        assert run_ingest(population, [path], lake).status == "published"
        lake.close()
    finally:
        os.umask(previous)
    found = [home, *home.rglob("*")]
    assert len(found) > 10  # lake, Parquet, state, archive
    assert list(home.glob("archive/population/*/a.csv"))
    loose = [p for p in found if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert not loose, loose
