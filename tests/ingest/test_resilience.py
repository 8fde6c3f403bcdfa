"""Readers during a write, and a writer killed with SIGKILL mid-publish.

Both run a real second process against the same runtime folder, as in production where
the API and Dagster are separate processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from catalog.ingest.delivery import run_ingest
from catalog.settings import REPO_ROOT
from catalog.store.lake import Lake, published_table, quarantine_table
from catalog.store.versions import latest_version
from tests.conftest import bearer, population_rows, seed_identities, write_delivery

pytestmark = pytest.mark.e2e
BIG = 100_000


@pytest.fixture(scope="module")
def big_delivery(tmp_path_factory, contracts) -> Path:
    rows = population_rows(BIG, seed=11)
    return write_delivery(contracts["population"], rows, tmp_path_factory.mktemp("big") / "big.csv")


def _publish_first_version(settings, population, tmp_path) -> None:
    """Version 1: 50 rows, published in this process before the second process starts."""
    small = write_delivery(population, population_rows(50), tmp_path / "v1.csv")
    lake = Lake(settings)
    assert run_ingest(population, [small], lake).status == "published"
    lake.close()


def _python(code: str, home: Path, *args: str) -> subprocess.Popen:
    """Run code in a second process on the same runtime folder; its log goes to a file."""
    log = (home.parent / "subprocess.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO_ROOT, env={**os.environ, "GOVSHARE_HOME": str(home)}, stdout=log, stderr=log,
    )  # fmt: skip


DAGSTER_RUN = """
    import sys
    import dagster as dg
    from catalog.contracts import load_contracts
    from catalog.settings import Settings
    from pipelines.definitions import build_definitions
    settings = Settings()
    defs = build_definitions(load_contracts(settings.schemas_dir), str(settings.home))
    result = defs.resolve_job_def("ingest_population").execute_in_process(
        run_config={"ops": {"stage_population": {"config": {"files": [sys.argv[1]]}}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    sys.exit(0 if result.success else 1)
"""


def test_api_keeps_answering_while_a_dagster_run_writes(
    tmp_path, settings, contracts, big_delivery
):
    population = contracts["population"]
    _publish_first_version(settings, population, tmp_path)
    landing = settings.folder("landing", "population")
    landing.mkdir(parents=True)
    delivery = landing / "big.csv"
    delivery.write_bytes(big_delivery.read_bytes())

    writer = _python(DAGSTER_RUN, settings.home, str(delivery))
    seen: list[tuple[int, int]] = []
    token = seed_identities(settings, contracts)["population_provider"]
    with TestClient(create_app(settings), headers=bearer(token)) as client:
        deadline = time.time() + 240
        while writer.poll() is None and time.time() < deadline:
            response = client.get("/datasets/population/rows?limit=20")
            assert response.status_code == 200, response.text
            body = response.json()
            assert len(body["rows"]) == 20
            seen.append((body["version"], body["total"]))
            assert client.get("/health").status_code == 200
        assert writer.wait(timeout=60) == 0
        final = client.get("/datasets/population/rows?limit=20").json()
    assert len(seen) >= 5, "the write finished before the API was exercised"
    assert seen[0] == (1, 50)
    assert set(seen) <= {(1, 50), (2, 50 + BIG)}
    assert (final["version"], final["total"]) == (2, 50 + BIG)


KILLABLE_INGEST = """
    import sys
    import time
    from pathlib import Path
    import catalog.ingest.publish as publish
    from catalog.contracts import load_contracts
    from catalog.ingest.delivery import run_ingest
    from catalog.store.lake import Lake
    from catalog.settings import Settings

    real_upsert = publish._upsert

    def signalling_upsert(*args, **kwargs):
        # Harness only: do the real upsert (data files written), then tell the test and wait
        # inside the still uncommitted transaction for the SIGKILL.
        rows = real_upsert(*args, **kwargs)
        Path(sys.argv[2]).write_text("in transaction")
        time.sleep(120)
        return rows

    publish._upsert = signalling_upsert
    settings = Settings()
    population = load_contracts(settings.schemas_dir)["population"]
    run_ingest(population, [Path(sys.argv[1])], Lake(settings))
"""


def test_kill_9_mid_publish_leaves_the_previous_version_intact(
    tmp_path, settings, contracts, big_delivery
):
    population = contracts["population"]
    _publish_first_version(settings, population, tmp_path)
    marker = tmp_path / "marker"
    victim = _python(KILLABLE_INGEST, settings.home, str(big_delivery), str(marker))
    deadline = time.time() + 120
    while not marker.exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert marker.exists(), "the ingest never reached its lake transaction"
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL

    lake = Lake(settings)
    with lake.reader() as con:
        version = latest_version(con, "population")
        assert (version.version, version.row_count) == (1, 50)
        count = f"SELECT count(*) FROM {published_table('population')}"
        assert con.execute(count).fetchone()[0] == 50
        quarantined = f"SELECT count(*) FROM {quarantine_table('population')}"
        assert con.execute(quarantined).fetchone()[0] == 0
    # The lake is still writable: the same delivery now publishes.
    outcome = run_ingest(population, [big_delivery], lake)
    assert outcome.status == "published", outcome.message
    assert outcome.version.version == 2
    assert outcome.version.row_count == 50 + BIG
