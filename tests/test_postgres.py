"""The multi-machine configuration against the local PostgreSQL server: the lake's catalog and
the platform-state database (migrations, a request cycle, the audit chain) on PostgreSQL.
Skipped where no PostgreSQL answers on 127.0.0.1:5432."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from catalog.ingest.delivery import run_ingest
from catalog.settings import Settings
from catalog.store.lake import Lake
from catalog.store.snapshots import SnapshotProbe
from tests.conftest import (
    approve_request,
    bearer,
    population_rows,
    seed_identities,
    write_delivery,
)

pytestmark = pytest.mark.postgres
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"]


def _psql(sql: str) -> bool:
    if shutil.which("psql") is None:
        return False
    return subprocess.run([*PSQL, sql], capture_output=True).returncode == 0


def _database() -> str:
    name = f"govshare_test_{uuid.uuid4().hex[:8]}"
    if not _psql(f"CREATE DATABASE {name}"):
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    return name


@pytest.fixture
def postgres_catalog():
    name = _database()
    yield f"postgres:dbname={name} host=127.0.0.1 user=postgres"
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgres_state():
    name = _database()
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_ingest_and_read_with_postgresql(tmp_path, contracts, postgres_catalog, postgres_state):
    settings = Settings(
        home=tmp_path / "runtime", lake_catalog=postgres_catalog, state_db=postgres_state
    )
    population = contracts["population"]
    path = write_delivery(population, population_rows(40), tmp_path / "p.csv")
    lake = Lake(settings)
    assert run_ingest(population, [path], lake).status == "published"
    assert run_ingest(population, [path], lake).status == "unchanged"
    with lake.reader() as con:
        newest = con.execute("SELECT max(snapshot_id) FROM lake.snapshots()").fetchone()[0]
    lake.close()
    assert not (settings.home / "lake" / "catalog.sqlite").exists()
    # Readers key their version cache on the catalog's newest snapshot, read without DuckDB.
    probe = SnapshotProbe(settings.lake_catalog_uri)
    try:
        assert probe.current() == newest
    finally:
        probe.close()
    tokens = seed_identities(settings, contracts)  # runs the Alembic migrations on PostgreSQL
    with TestClient(create_app(settings)) as client:
        assert client.get("/datasets/population/rows").status_code == 401
        assert (
            client.get(
                "/datasets/population/rows", headers=bearer(tokens["consumer_a"])
            ).status_code
            == 403
        )
        approve_request(
            client,
            tokens,
            {
                "dataset": "population",
                "items": ["id_number", "status"],
                "purpose": "集成测试",
                "legal_basis": "测试",
                "period_start": "2026-01-01",
                "period_end": "2030-12-31",
            },
        )
        body = client.get(
            "/datasets/population/rows?limit=5", headers=bearer(tokens["consumer_a"])
        ).json()
        assert (body["version"], body["total"], len(body["rows"])) == (1, 40, 5)
        assert list(body["rows"][0]) == ["id_number", "status"]
        # A revocation by another client reaches this process's kept grants (triggers).
        revoked = _run_in(postgres_state, "UPDATE grants SET revoked_at = now()")
        assert revoked.returncode == 0, revoked.stderr
        again = client.get("/datasets/population/rows", headers=bearer(tokens["consumer_a"]))
        assert again.status_code == 403 and "revoked" in again.text
        chain = client.get("/audit/verify", headers=bearer(tokens["office"])).json()
        assert chain["intact"] and chain["entries"] >= 6
    assert not (settings.home / "state.sqlite").exists()
    edit = _run_in(postgres_state, "UPDATE audit_entries SET result = 'x'")
    assert edit.returncode != 0 and "append-only" in edit.stderr


def _run_in(url: str, sql: str) -> subprocess.CompletedProcess:
    """``sql`` run by psql in the database of a SQLAlchemy URL (another client)."""
    command = [*PSQL[:-3], "-d", url.rsplit("/", 1)[1], "-qc", sql]
    return subprocess.run(command, capture_output=True, text=True)
