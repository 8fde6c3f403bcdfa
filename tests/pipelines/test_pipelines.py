"""The Dagster layer: generated definitions, in-process runs, checks, sensor, pool."""

from __future__ import annotations

import os
import shutil
import time

import dagster as dg
import pytest

from catalog.sharing.audit import AuditQuery, search
from catalog.state.db import StateStore
from catalog.store.lake import Lake
from catalog.store.versions import latest_version, list_versions, recent_runs
from pipelines.definitions import build_definitions
from pipelines.ingest.assets import (
    LAKE_POOL,
    LAYER_TAG,
    QUARANTINE_RATE_CHECK,
    published_key,
    quarantine_key,
    staging_key,
)
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


def _checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def _materialized(result) -> set[dg.AssetKey]:
    return {e.asset_key for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}


def _step_failure(result):
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.step_failure_data


def _assert_no_traceback_of_ours(error) -> None:
    """A Failure raised on purpose: no exception of the core chained to it, no frame of it."""
    assert error.cls_name == "Failure"
    assert error.cause is None and error.context is None
    assert not [frame for frame in error.stack if "/catalog/" in frame]


def _audit(settings) -> list:
    store = StateStore(settings)
    with store.reading() as session:
        entries = search(session, AuditQuery(action="ingest"), limit=20, offset=0)
    store.close()
    return list(reversed(entries))


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
        # A published delivery with a quarantined row: warnings with counts, never an error.
        failing = [c for c in _checks(result).values() if not c.passed]
        assert failing and {c.severity for c in failing} == {dg.AssetCheckSeverity.WARN}
        rule = _checks(result)["region_code__region_code"]
        assert rule.metadata["rows_failing"].value == 1
        assert "1 of 40 rows" in rule.description
        rate = _checks(result)[QUARANTINE_RATE_CHECK]
        assert rate.asset_key == published_key("population")
        assert (rate.passed, rate.severity) == (False, dg.AssetCheckSeverity.WARN)
        assert rate.metadata["rows_quarantined"].value == 1
        assert "version 1 published" in rate.description
        # The run id whole, and the rate under its name.
        assert publish_meta["run_id"].value == result.run_id
        assert rate.metadata["run_id"].value == result.run_id
        assert "quarantine_rate" in publish_meta and "failure_rate" not in publish_meta
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
    # A clear failure: the reason, the version still live, the whole run id; no traceback.
    failure = _step_failure(failed)
    _assert_no_traceback_of_ours(failure.error)
    data = failure.user_failure_data
    assert "delivery rejected" in data.description
    assert "20 of 20 rows failed" in data.description and "quarantine rate" in data.description
    assert "version 1 stays live" in data.description
    assert failed.run_id in data.description
    assert data.metadata["run_id"].value == failed.run_id
    assert data.metadata["live_version"].value == 1
    assert data.metadata["rows_quarantined"].value == 20
    # Only the rejection is an error; the rows went to quarantine, nothing was published.
    rate = _checks(failed)[QUARANTINE_RATE_CHECK]
    assert (rate.passed, rate.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert "delivery rejected" in rate.description and "version 1 stays live" in rate.description
    rules = [c for name, c in _checks(failed).items() if name != QUARANTINE_RATE_CHECK]
    assert {c.severity for c in rules} == {dg.AssetCheckSeverity.WARN}
    assert _materialized(failed) == {staging_key("population"), quarantine_key("population")}


def test_unreadable_file_fails_the_run_with_its_reason(defs, settings):
    landing = settings.folder("landing", "population")
    landing.mkdir(parents=True)
    (landing / "empty.csv").write_bytes(b"")
    with dg.DagsterInstance.ephemeral() as instance:
        result = _run(defs, "population", [str(landing / "empty.csv")], instance)
    assert not result.success
    reasons = list(settings.folder("rejected", "population").rglob("reason.txt"))
    assert "empty.csv" in reasons[0].read_text(encoding="utf-8")
    failure = _step_failure(result)
    _assert_no_traceback_of_ours(failure.error)  # not the reader's IngestError traceback
    assert "delivery refused" in failure.user_failure_data.description
    assert "empty.csv" in failure.user_failure_data.description
    assert "no version is published yet" in failure.user_failure_data.description
    assert f"rejected/population/{result.run_id}/" in failure.user_failure_data.description


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


def test_staging_published_and_quarantine_assets_are_told_apart(defs):
    layers = {}
    for key in (staging_key("population"), published_key("population")):
        for spec_key, spec in defs.resolve_assets_def(key).specs_by_key.items():
            layers[spec_key] = spec
    staging, published, quarantine = (
        layers[staging_key("population")],
        layers[published_key("population")],
        layers[quarantine_key("population")],
    )
    assert [s.tags[LAYER_TAG] for s in (staging, published, quarantine)] == [
        "staging",
        "published",
        "quarantine",
    ]
    assert staging.kinds == {"duckdb"} and published.kinds == quarantine.kinds == {"ducklake"}
    assert staging.description.startswith("Staging")
    assert published.description.startswith("Published")
    assert quarantine.description.startswith("Quarantine")
    assert "API serves" in published.description and "Never served" in quarantine.description


def _tick(sensor, platform, cursor: str | None):
    with dg.build_sensor_context(resources={"platform": platform}, cursor=cursor) as context:
        return sensor(context), context.cursor


def _settle(path) -> None:
    old = time.time() - 60
    os.utime(path, (old, old))


def test_a_redelivered_file_with_its_old_mtime_is_reported_not_skipped(defs, settings, contracts):
    """`cp -p`, `rsync -a` and unzip keep a file's modification time: a re-delivery can look
    exactly like the earlier file. It is still handed to a run, which files it away as an
    identical re-delivery (archive, note, run record, audit entry) instead of leaving it in
    the landing folder for ever."""
    sensor = defs.resolve_sensor_def("landing_population")
    platform = PlatformResource(home=str(settings.home))
    landing = settings.folder("landing", "population")
    path = write_delivery(contracts["population"], population_rows(10), landing / "n.csv")
    _settle(path)
    mtime = path.stat().st_mtime_ns
    with dg.DagsterInstance.ephemeral() as instance:
        first, cursor = _tick(sensor, platform, None)
        assert isinstance(first, dg.RunRequest)
        again, cursor = _tick(sensor, platform, cursor)  # still queued: not asked for twice
        assert isinstance(again, dg.SkipReason)
        published = _run(defs, "population", [str(path)], instance)
        assert published.success and not path.exists()
        idle, cursor = _tick(sensor, platform, cursor)
        assert isinstance(idle, dg.SkipReason)

        (archived,) = settings.folder("archive", "population").rglob("n.csv")
        shutil.copy2(archived, path)  # what `cp -p` does
        assert path.stat().st_mtime_ns == mtime
        second, cursor = _tick(sensor, platform, cursor)
        assert isinstance(second, dg.RunRequest)
        assert second.run_key != first.run_key  # or Dagster would never run it
        redelivered = _run(defs, "population", [str(path)], instance)
        assert redelivered.success
        logged = [e.user_message for e in instance.all_logs(redelivered.run_id)]
    assert not path.exists()
    folder = settings.folder("archive", "population") / redelivered.run_id
    assert (folder / "n.csv").exists()
    note = (folder / "note.txt").read_text(encoding="utf-8")
    assert "identical re-delivery" in note and "n.csv already published in version 1" in note
    assert [m for m in logged if "identical re-delivery" in m]
    with Lake(settings).reader() as con:
        assert [v.version for v in list_versions(con, "population")] == [1]
        runs = {r.run_id: r for r in recent_runs(con)}
    assert runs[redelivered.run_id].status == "unchanged"
    assert [(e.result, e.detail["run_id"]) for e in _audit(settings)] == [
        ("published", published.run_id),
        ("unchanged", redelivered.run_id),
    ]


def test_a_file_arriving_later_gets_a_run_of_its_own(defs, settings, contracts):
    sensor = defs.resolve_sensor_def("landing_population")
    platform = PlatformResource(home=str(settings.home))
    landing = settings.folder("landing", "population")
    first = write_delivery(contracts["population"], population_rows(3), landing / "a.csv")
    _settle(first)
    request, cursor = _tick(sensor, platform, None)
    assert request.run_config["ops"]["stage_population"]["config"]["files"] == [str(first)]
    later = write_delivery(contracts["population"], population_rows(3, seed=2), landing / "b.csv")
    _settle(later)
    request, cursor = _tick(sensor, platform, cursor)
    assert request.run_config["ops"]["stage_population"]["config"]["files"] == [str(later)]
    assert isinstance(_tick(sensor, platform, cursor)[0], dg.SkipReason)


def test_runs_print_what_matters_and_the_daemon_stays_quiet(
    defs, settings, contracts, monkeypatch, capfd
):
    """The console of `govshare demo`: a run prints our INFO lines, not Dagster's DEBUG step
    events (those stay in the UI), and the daemon's per-tick INFO lines are off."""
    from pipelines.instance import dagster_dev_command, instance_for

    monkeypatch.setenv("DAGSTER_HOME", "")  # instance_for sets it; monkeypatch restores it
    path = write_delivery(
        contracts["population"],
        population_rows(10),
        settings.folder("landing", "population") / "p.csv",
    )
    with instance_for(settings) as instance:
        assert instance.python_log_level == "INFO"
        capfd.readouterr()
        assert _run(defs, "population", [str(path)], instance).success
    console = capfd.readouterr().err
    assert "population: published version 1" in console
    assert "STEP_START" not in console and "ASSET_MATERIALIZATION" not in console
    command = dagster_dev_command(settings)
    assert command[command.index("--log-level") + 1] == "warning"
