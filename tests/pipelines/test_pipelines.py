"""The Dagster layer: generated definitions, in-process runs, checks, sensor, pool."""

from __future__ import annotations

import os
import time

import dagster as dg
import pytest

from catalog.sharing.audit import AuditQuery, search
from catalog.state.db import StateStore
from catalog.store.lake import Lake
from catalog.store.versions import latest_version
from pipelines.definitions import build_definitions
from pipelines.ingest.assets import LAKE_POOL, published_key, staging_key
from pipelines.resources import PlatformResource
from tests.conftest import population_rows, write_delivery


@pytest.fixture
def defs(contracts, settings):
    return build_definitions(contracts, str(settings.home))


def _run(defs, dataset: str, files: list[str], instance: dg.DagsterInstance):
    return defs.resolve_job_def(f"ingest_{dataset}").execute_in_process(
        run_config={"ops": {f"stage_{dataset}": {"config": {"files": files}}}},
        instance=instance,
        raise_on_error=False,
    )


def test_definitions_cover_every_contract(defs, contracts):
    graph = defs.resolve_asset_graph()
    for dataset in contracts:
        assert graph.has(staging_key(dataset)) and graph.has(published_key(dataset))
        assert defs.resolve_job_def(f"ingest_{dataset}")
        assert defs.resolve_sensor_def(f"landing_{dataset}")
    publish = defs.resolve_assets_def(published_key("population"))
    assert publish.op.pool == LAKE_POOL


def test_job_stages_checks_and_publishes(defs, settings, contracts):
    population = contracts["population"]
    rows = population_rows(40)
    rows[5]["region_code"] = "339999"
    landing = settings.folder("landing", "population")
    path = write_delivery(population, rows, landing / "drop.csv", "gbk")
    with dg.DagsterInstance.ephemeral() as instance:
        result = _run(defs, "population", [str(path)], instance)
        assert result.success
        checks = {
            e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        }
        assert checks["region_code__region_code"].passed is False
        assert checks["region_code__region_code"].metadata["unexpected_count"].value == 1
        assert checks["id_number__resident_id"].passed is True
        publish_meta = result.asset_materializations_for_node("publish_population")[0].metadata
        assert publish_meta["version"].value == 1
    with Lake(settings).reader() as con:
        version = latest_version(con, "population")
    assert (version.version, version.row_count) == (1, 39)
    assert not path.exists()  # moved out of landing into the archive
    assert list(settings.folder("archive", "population").rglob("drop.csv"))
    # The checks ran before the publish step removed the run's staging files.
    assert not list(settings.folder("staging", "population").iterdir())
    store = StateStore(settings)
    with store.reading() as session:
        entries = search(session, AuditQuery(action="ingest"), limit=10, offset=0)
    store.close()
    assert [(e.username, e.result, e.version) for e in entries] == [("dagster", "published", 1)]


def test_rejected_delivery_fails_the_run_and_keeps_the_version(defs, settings, contracts):
    population = contracts["population"]
    landing = settings.folder("landing", "population")
    good = write_delivery(population, population_rows(20), landing / "good.csv")
    bad_rows = [dict(r, region_code="000000") for r in population_rows(20, seed=4)]
    bad = write_delivery(population, bad_rows, landing / "bad.csv")
    with dg.DagsterInstance.ephemeral() as instance:
        assert _run(defs, "population", [str(good)], instance).success
        failed = _run(defs, "population", [str(bad)], instance)
        assert not failed.success
    with Lake(settings).reader() as con:
        assert latest_version(con, "population").version == 1
    assert list(settings.folder("rejected", "population").rglob("bad.csv"))


def test_unreadable_file_fails_the_run_with_its_reason(defs, settings):
    landing = settings.folder("landing", "population")
    landing.mkdir(parents=True)
    (landing / "empty.csv").write_bytes(b"")
    with dg.DagsterInstance.ephemeral() as instance:
        result = _run(defs, "population", [str(landing / "empty.csv")], instance)
    assert not result.success
    reasons = list(settings.folder("rejected", "population").rglob("reason.txt"))
    assert "empty.csv" in reasons[0].read_text(encoding="utf-8")


def test_sensor_fires_on_a_settled_file(defs, settings, contracts):
    sensor = defs.resolve_sensor_def("landing_population")
    platform = PlatformResource(home=str(settings.home))
    with dg.build_sensor_context(resources={"platform": platform}) as context:
        assert isinstance(sensor(context), dg.SkipReason)
    path = write_delivery(
        contracts["population"],
        population_rows(3),
        settings.folder("landing", "population") / "n.csv",
    )
    old = time.time() - 60
    os.utime(path, (old, old))
    with dg.build_sensor_context(resources={"platform": platform}) as context:
        request = sensor(context)
    assert isinstance(request, dg.RunRequest)
    assert request.run_config["ops"]["stage_population"]["config"]["files"] == [str(path)]
    assert request.run_key.startswith("population:")


def test_sensor_waits_for_a_file_still_being_written(defs, settings, contracts):
    sensor = defs.resolve_sensor_def("landing_population")
    write_delivery(
        contracts["population"],
        population_rows(3),
        settings.folder("landing", "population") / "n.csv",
    )
    platform = PlatformResource(home=str(settings.home))
    with dg.build_sensor_context(resources={"platform": platform}) as context:
        assert isinstance(sensor(context), dg.SkipReason)


def test_the_whole_asset_graph_materialises_on_the_sample_drops(defs, settings, contracts):
    """Every dataset's staging, checks, published and quarantine assets in one run, on the
    committed department drops (every format: GBK and BOM CSV, xlsx, JSONL, GeoJSON)."""
    import shutil

    from catalog.settings import REPO_ROOT

    for dataset in contracts:
        landing = settings.folder("landing", dataset)
        shutil.copytree(REPO_ROOT / "data" / dataset, landing)
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert result.success
        checked = {
            e.asset_check_evaluation_data.asset_key.path[-1]
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        }
    assert checked == set(contracts)
    with Lake(settings).reader() as con:
        for dataset in contracts:
            version = latest_version(con, dataset)
            assert version is not None and version.version == 1, dataset
            assert version.row_count > 0
            assert not list(settings.folder("landing", dataset).iterdir())
