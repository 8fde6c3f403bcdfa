"""Version metadata is read from the lake once per lake snapshot (issue: the read path).

The SPEC's readers always see the newest published version: a publish, made by any process,
is seen on the next call, and no call mixes two snapshots' versions.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from contextlib import contextmanager

from fastapi.testclient import TestClient

from api.app import create_app
from catalog.ingest.delivery import run_ingest
from catalog.settings import REPO_ROOT
from catalog.store.lake import Lake
from catalog.store.snapshots import SnapshotProbe
from catalog.store.versions import VersionIndex, versions_at
from tests.conftest import population_rows, write_delivery

_PUBLISH = textwrap.dedent(
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
    print(run_ingest(contract, [Path({path!r})], Lake(settings)).status)
    """
)


def _publish_in_another_process(settings, path) -> None:
    script = _PUBLISH.format(root=str(REPO_ROOT), home=str(settings.home), path=str(path))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "published"


def test_a_publish_by_another_process_is_seen_on_the_next_call(tmp_path, settings, contracts):
    population = contracts["population"]
    lake = Lake(settings)
    run_ingest(
        population, [write_delivery(population, population_rows(20), tmp_path / "a.csv")], lake
    )
    lake.close()
    with TestClient(create_app(settings)) as client:
        entry = client.get("/catalog/population").json()
        assert [v["version"] for v in entry["versions"]] == [1]
        assert client.get("/health").json()["published"] == 1

        more = write_delivery(population, population_rows(7, seed=9), tmp_path / "b.csv")
        _publish_in_another_process(settings, more)

        entry = client.get("/catalog/population").json()
        assert [v["version"] for v in entry["versions"]] == [2, 1]
        assert entry["versions"][0]["row_count"] == 27
        listed = {e["dataset"]: e for e in client.get("/catalog").json()}
        assert listed["population"]["latest_version"] == 2
        assert client.get("/catalog/population/versions/2").status_code == 200


def test_versions_are_read_once_per_snapshot_and_as_of_it(tmp_path, settings, contracts):
    population = contracts["population"]
    lake = Lake(settings)
    run_ingest(
        population, [write_delivery(population, population_rows(20), tmp_path / "a.csv")], lake
    )
    reads = []

    @contextmanager
    def reader():
        reads.append(1)
        with lake.reader() as con:
            yield con

    index = VersionIndex(SnapshotProbe(settings.lake_catalog_uri))
    first = index.current(reader)
    assert index.current(reader) is first and len(reads) == 1  # no commit, no lake read
    assert [v.version for v in first.of("population")] == [1]

    run_ingest(
        population,
        [write_delivery(population, population_rows(7, seed=9), tmp_path / "b.csv")],
        lake,
    )
    second = index.current(reader)
    assert len(reads) == 2
    assert second.snapshot > first.snapshot
    assert [v.version for v in second.of("population")] == [2, 1]
    assert second.latest("population").row_count == 27
    with lake.reader() as con:  # as of the first snapshot: only what was published then
        assert [v.version for v in versions_at(con, first.snapshot).of("population")] == [1]
    index.close()
    lake.close()


def test_a_lake_created_but_not_yet_set_up_answers(settings):
    """The catalog holds a snapshot older than the platform's own tables (another process
    is setting the lake up): the first call reads the latest, it does not fail."""
    Lake(settings).connect().close()  # DuckLake's first snapshot, no meta tables yet
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/catalog").status_code == 200


def test_a_catalog_path_with_uri_characters_is_probed_as_that_file(tmp_path, contracts):
    from catalog.settings import Settings

    folder = tmp_path / "odd%41#dir?x"
    settings = Settings(home=tmp_path / "runtime", lake_catalog=f"sqlite:{folder}/catalog.sqlite")
    population = contracts["population"]
    lake = Lake(settings)
    run_ingest(
        population, [write_delivery(population, population_rows(5), tmp_path / "a.csv")], lake
    )
    with lake.reader() as con:
        newest = con.execute("SELECT max(snapshot_id) FROM lake.snapshots()").fetchone()[0]
    lake.close()
    probe = SnapshotProbe(settings.lake_catalog_uri)
    assert probe.current() == newest
    # Nothing stray beside the catalog (its WAL files aside), nor where the name would be cut.
    assert all(p.name.startswith("catalog.sqlite") for p in folder.iterdir())
    assert not (tmp_path / "odd%41").exists()
