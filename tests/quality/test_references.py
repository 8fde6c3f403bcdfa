"""Cross-dataset references declared in contracts (issue 8 §2): each checked per published
version against the target's latest version, with counts and masked examples stored;
unresolved rows reported, never dropped, and not blocking unless the contract says so."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from catalog.contracts import Reference
from catalog.ingest.delivery import run_ingest
from catalog.quality.quarantine import QuarantineQuery, list_rows
from catalog.quality.references import check_latest, latest_results
from catalog.store.lake import Lake
from catalog.store.versions import latest_version
from tests.conftest import bearer, population_rows, seed_identities, write_delivery

# A geography register of Hangzhou with three of its districts (GB/T 2260 codes).
DIVISIONS = [
    ("330000", "浙江省", "province", ""),
    ("330100", "杭州市", "city", "330000"),
    ("330102", "上城区", "county", "330100"),
    ("330105", "拱墅区", "county", "330100"),
    ("330106", "西湖区", "county", "330100"),
]
# population_rows draws regions from 330102/330105/330106/330108: 330108 (滨江区) is a real
# district the geography above does not carry.


def _geography_rows():
    return [
        {"region_code": c, "name": n, "level": lv, "parent_code": p, "boundary": ""}
        for c, n, lv, p in DIVISIONS
    ]


@pytest.fixture
def published(tmp_path, settings, contracts):
    lake = Lake(settings)
    geo = contracts["geography"]
    path = write_delivery(geo, _geography_rows(), tmp_path / "geo.csv")
    assert run_ingest(geo, [path], lake).status == "published"
    rows = population_rows(60, seed=31)
    population = contracts["population"]
    outcome = run_ingest(population, [write_delivery(population, rows, tmp_path / "p.csv")], lake)
    assert outcome.status == "published", outcome.message
    yield lake, rows
    lake.close()


def test_unresolved_region_codes_are_counted_and_shown_masked(published, contracts):
    lake, rows = published
    expected = sum(1 for r in rows if r["region_code"] == "330108")
    assert 0 < expected < len(rows)
    with lake.reader() as con:
        results = latest_results(con, "population")
        version = latest_version(con, "population")
    (result,) = results  # stored by the ingest itself
    assert result.reference == "region_in_geography" and result.target == "geography"
    assert (result.checked, result.unresolved) == (len(rows), expected)
    assert result.resolved == len(rows) - expected
    assert result.version == version.version and result.target_version == 1
    # Examples say where, never what: no identity number, not even partially masked.
    assert result.examples and all(e.startswith("p.csv:") for e in result.examples)
    wrong_rows = {str(i + 1) for i, r in enumerate(rows) if r["region_code"] == "330108"}
    assert {e.split(":")[1] for e in result.examples} <= wrong_rows
    assert not any(r["id_number"][:4] in "".join(result.examples) for r in rows)
    # Reported, not dropped: every row is published.
    assert version.row_count == len(rows)


def test_when_format_checks_only_values_of_that_format(published, contracts):
    lake, _rows = published
    holders = contracts["population"].model_copy(
        update={
            "references": [
                Reference(
                    name="self_by_credit_code",
                    description="only credit codes are looked up",
                    items=["id_number"],
                    dataset="population",
                    target_items=["id_number"],
                    when_format="uscc",
                )
            ]
        }
    )
    (result,) = check_latest(lake, holders)
    assert result.checked == 0  # identity numbers are not credit codes (GB 32100)


def test_results_are_for_the_office_and_the_provider_only(published, settings, contracts):
    lake, _ = published
    lake.close()
    tokens = seed_identities(settings, contracts)
    with TestClient(create_app(settings)) as client:
        office = client.get("/quality/references", headers=bearer(tokens["office"]))
        own = client.get("/quality/references", headers=bearer(tokens["population_provider"]))
        other = client.get("/quality/references", headers=bearer(tokens["legal_persons_provider"]))
        consumer = client.get("/quality/references", headers=bearer(tokens["consumer_a"]))
    assert [r["dataset"] for r in office.json()] == ["population"]
    assert [r["dataset"] for r in own.json()] == ["population"]
    assert other.json() == [] and consumer.status_code == 403


def test_a_blocking_reference_quarantines_its_unresolved_rows(tmp_path, settings, contracts):
    lake = Lake(settings)
    geo = contracts["geography"]
    assert run_ingest(geo, [write_delivery(geo, _geography_rows(), tmp_path / "g.csv")], lake)
    population = contracts["population"]
    blocking = population.model_copy(
        update={"references": [population.references[0].model_copy(update={"blocking": True})]}
    )
    rows = population_rows(60, seed=32)
    expected = sum(1 for r in rows if r["region_code"] == "330108")
    outcome = run_ingest(blocking, [write_delivery(blocking, rows, tmp_path / "p.csv")], lake)
    assert outcome.status == "published", outcome.message
    assert outcome.rows_published == len(rows) - expected
    assert outcome.rows_quarantined == expected
    with lake.reader() as con:
        assert latest_version(con, "population").row_count == len(rows) - expected
        total, quarantined = list_rows(con, blocking, QuarantineQuery(status="open"), "owner")
    lake.close()
    assert total == expected
    assert all(r["rules"] == ["reference.region_in_geography"] for r in quarantined)
    assert {r["values"]["region_code"] for r in quarantined} == {"330108"}


def test_generated_samples_resolve_what_the_declarations_draw_from(world):
    """The sample generator draws holders, subjects and representatives from the registers
    the contracts' references name, so on clean samples those references all resolve; the
    regions of people from outside the city are reported as unresolved, not hidden."""
    from catalog.contracts import load_contracts
    from catalog.samples.generator import POOLS, refers_to

    contracts = load_contracts(world.schemas_dir)
    assert refers_to(contracts)["licences"] == ("legal_persons", "population")
    lake = Lake(world)
    results = [r for c in contracts.values() for r in check_latest(lake, c)]
    lake.close()
    pooled = [r for r in results if r.target in POOLS]
    assert len(pooled) == 5 and all(r.checked > 0 for r in pooled)
    assert [r for r in pooled if r.unresolved] == []
    region = next(r for r in results if r.dataset == "population")
    assert region.target == "geography" and region.checked == 400


def _population_result(lake):
    with lake.reader() as con:
        return latest_results(con, "population")[0]


def test_a_new_target_version_rechecks_the_datasets_that_refer_to_it(tmp_path, settings, contracts):
    lake = Lake(settings)
    population, geo = contracts["population"], contracts["geography"]
    rows = population_rows(30, seed=33)
    assert run_ingest(population, [write_delivery(population, rows, tmp_path / "p.csv")], lake)
    assert _population_result(lake).target_version is None  # geography not published yet
    assert run_ingest(geo, [write_delivery(geo, _geography_rows(), tmp_path / "g.csv")], lake)
    result = _population_result(lake)
    lake.close()
    assert result.target_version == 1 and result.checked == len(rows)
    assert result.unresolved == sum(1 for r in rows if r["region_code"] == "330108")


def test_the_dagster_job_of_a_target_runs_the_referring_checks(tmp_path, settings, contracts):
    import dagster as dg

    from pipelines.definitions import build_definitions

    defs = build_definitions(contracts, str(settings.home))
    population, geo = contracts["population"], contracts["geography"]
    files = {
        "population": write_delivery(population, population_rows(30, seed=34), tmp_path / "p.csv"),
        "geography": write_delivery(geo, _geography_rows(), tmp_path / "g.csv"),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        for name in ("population", "geography"):
            result = defs.resolve_job_def(f"ingest_{name}").execute_in_process(
                run_config={"ops": {f"stage_{name}": {"config": {"files": [str(files[name])]}}}},
                instance=instance,
                raise_on_error=False,
            )
            assert result.success, name
        checks = {
            e.asset_check_evaluation_data.check_name
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        }
    assert "reference_region_in_geography" in checks  # population's, in geography's run
    lake = Lake(settings)
    assert _population_result(lake).target_version == 1
    lake.close()
