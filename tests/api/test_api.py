"""The read API through an in-process ASGI client."""

from __future__ import annotations

import shutil

import pytest
import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from catalog.contracts import load_contracts
from catalog.ingest.delivery import run_ingest
from catalog.settings import REPO_ROOT, Settings
from catalog.store.lake import Lake
from tests.conftest import approve_request, bearer, population_rows, seed_identities, write_delivery


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("api")


@pytest.fixture(scope="module")
def schemas(workdir):
    """The real contracts, with legal_persons switched to "not shared" in a copy."""
    folder = workdir / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", folder)
    raw = yaml.safe_load((folder / "legal_persons.yaml").read_text(encoding="utf-8"))
    raw["catalog"]["sharing"] = {
        "type": "not_shared",
        "method": ["verification"],
        "legal_basis": "《测试法》第一条",
    }
    (folder / "legal_persons.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    return folder


@pytest.fixture(scope="module")
def published(workdir, schemas):
    """A runtime with population published twice (v1: 30 rows, v2: +5 rows)."""
    settings = Settings(home=workdir / "runtime", schemas_dir=schemas)
    population = load_contracts(schemas)["population"]
    lake = Lake(settings)
    rows = population_rows(30)
    for name, delivery in (("a.csv", rows), ("b.csv", population_rows(5, seed=5))):
        run_ingest(population, [write_delivery(population, delivery, workdir / name)], lake)
    lake.close()
    return settings, rows


@pytest.fixture(scope="module")
def client(published, schemas):
    """A client whose requests carry the token of a consumer granted all population items."""
    settings = published[0]
    tokens = seed_identities(settings, load_contracts(schemas))
    with TestClient(create_app(settings)) as test_client:
        items = [i.name for i in load_contracts(schemas)["population"].items]
        approve_request(
            test_client,
            tokens,
            {
                "dataset": "population",
                "items": items,
                "purpose": "接口测试",
                "legal_basis": "测试",
                "period_start": "2026-01-01",
                "period_end": "2030-12-31",
            },
        )
        test_client.headers.update(bearer(tokens["consumer_a"]))
        yield test_client


def test_health(client):
    health = client.get("/health").json()
    pending = health.pop("read_copies_pending")  # the new version's copy may be building
    assert health == {"status": "ok", "datasets": 5, "published": 1}
    assert pending in (0, 1)
    client.app.state.govshare.copies.wait()
    assert client.get("/health").json()["read_copies_pending"] == 0


def test_openapi_document_and_docs(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/health",
        "/catalog",
        "/catalog/{dataset}",
        "/catalog/{dataset}/versions/{number}",
        "/datasets/{dataset}/rows",
    } <= set(paths)
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"population", "legal_persons", "geography", "licences", "credit_records"}),
        ("?q=人口", {"population"}),
        ("?q=blacklist", {"credit_records"}),
        ("?sharing_type=conditional", {"population", "credit_records"}),
        ("?sharing_type=not_shared", {"legal_persons"}),
        ("?open=true", {"geography"}),
        ("?classification=theme", {"licences", "credit_records"}),
        ("?update_cycle=weekly", {"credit_records"}),
        ("?provider_code=11330100002482111E", {"population"}),
    ],
)
def test_catalog_filters(client, query, expected):
    response = client.get(f"/catalog{query}")
    assert response.status_code == 200
    assert {entry["dataset"] for entry in response.json()} == expected


def test_catalog_entry_has_items_and_versions(client):
    entry = client.get("/catalog/population").json()
    meta = entry["catalog"]
    # The guide's code: classification code "/" sequence code, 类 1 (base), 项 01 (人口).
    assert meta["resource_code"] == f"{meta['classification_code']}/{meta['sequence_code']}"
    assert meta["resource_code"].startswith("101")
    assert entry["catalog"]["sharing"]["legal_basis"]
    items = {item["name"]: item for item in entry["items"]}
    assert items["id_number"]["label"] == "公民身份号码"
    assert items["id_number"]["sensitivity"] == "sensitive"
    assert [v["version"] for v in entry["versions"]] == [2, 1]
    assert entry["versions"][0]["row_count"] == 35


def test_one_version(client):
    version = client.get("/catalog/population/versions/1").json()
    assert version["row_count"] == 30
    assert version["source_files"][0]["name"] == "a.csv"
    assert client.get("/catalog/population/versions/9").status_code == 404
    assert client.get("/catalog/nothing").status_code == 404


def test_rows_are_paged_and_masked(client, published):
    _, rows = published
    first = client.get("/datasets/population/rows?limit=10").json()
    second = client.get("/datasets/population/rows?limit=10&offset=10").json()
    assert (first["version"], first["total"], len(first["rows"])) == (2, 35, 10)
    ids = [r["id_number"] for r in first["rows"] + second["rows"]]
    assert len(set(ids)) == 20
    real_ids = {r["id_number"] for r in rows}
    # The grant shows birth date and region in clear, which are the digits a partial mask of
    # the identity number hides (GB 11643): so the number is a keyed pseudonym.
    assert first["pseudonymised"] == ["id_number"]
    for row in first["rows"]:
        assert row["id_number"] not in real_ids
        assert row["id_number"].startswith("ps_") and len(row["id_number"]) == 23
        assert row["phone"][3:7] == "****"
        assert row["name"][1:] == "**"  # the length of a name is not shown
        assert row["sex"] in ("男", "女")  # not sensitive: shown as is


def test_rows_of_an_old_version(client):
    old = client.get("/datasets/population/rows?version=1&limit=1000").json()
    assert (old["version"], old["total"], len(old["rows"])) == (1, 30, 30)


def test_not_shared_dataset_never_returns_rows(client):
    response = client.get("/datasets/legal_persons/rows")
    assert response.status_code == 403
    assert "《测试法》第一条" in response.json()["detail"]


def test_unpublished_and_unknown(client):
    assert client.get("/datasets/licences/rows").status_code == 404
    assert client.get("/datasets/nothing/rows").status_code == 404
    assert client.get("/datasets/population/rows?limit=0").status_code == 422


def test_page_size_is_capped(client, published):
    settings, _ = published
    body = client.get("/datasets/population/rows?limit=100000").json()
    assert body["limit"] == settings.page_size_max
