"""The lake's catalog on PostgreSQL (the multi-machine configuration), against the local
server. Skipped where no PostgreSQL answers on 127.0.0.1:5432."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from catalog.ingest import run_ingest
from catalog.lake import Lake
from catalog.settings import Settings
from tests.conftest import population_rows, write_delivery

pytestmark = pytest.mark.postgres
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"]


def _psql(sql: str) -> bool:
    if shutil.which("psql") is None:
        return False
    return subprocess.run([*PSQL, sql], capture_output=True).returncode == 0


@pytest.fixture
def postgres_catalog():
    name = f"govshare_test_{uuid.uuid4().hex[:8]}"
    if not _psql(f"CREATE DATABASE {name}"):
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    yield f"postgres:dbname={name} host=127.0.0.1 user=postgres"
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_ingest_and_read_with_a_postgresql_catalog(tmp_path, contracts, postgres_catalog):
    settings = Settings(home=tmp_path / "runtime", lake_catalog=postgres_catalog)
    population = contracts["population"]
    path = write_delivery(population, population_rows(40), tmp_path / "p.csv")
    lake = Lake(settings)
    assert run_ingest(population, [path], lake).status == "published"
    assert run_ingest(population, [path], lake).status == "unchanged"
    lake.close()
    assert not (settings.home / "lake" / "catalog.sqlite").exists()
    with TestClient(create_app(settings)) as client:
        body = client.get("/datasets/population/rows?limit=5").json()
    assert (body["version"], body["total"], len(body["rows"])) == (1, 40, 5)
