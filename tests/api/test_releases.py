"""Catalog releases and diffs (issue 11 §1, SPEC §3) over a scripted sequence of publishes:
rows changed, added and deleted (a full delivery), a metadata change, a schema change (an
item added), and resource codes that must stay with their dataset."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from catalog.contracts import load_contracts
from catalog.ingest.delivery import run_ingest
from catalog.settings import Settings
from catalog.store.lake import Lake
from catalog.store.releases import ResourceCodeChanged, check_resource_codes, sync
from govshare.cli import app as cli
from tests.conftest import (
    REPO_ROOT,
    approve_request,
    bearer,
    population_rows,
    seed_identities,
    write_delivery,
)

NEW_SUMMARY = "本市户籍人口的身份、户籍地、联系方式和状态信息。"


def _edit(schemas: Path, change) -> None:
    path = schemas / "population.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(raw)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _full(raw: dict) -> None:
    raw["source"]["delivery"] = "full"  # a key absent from a delivery is deleted


def _new_summary(raw: dict) -> None:
    raw["catalog"]["summary"] = NEW_SUMMARY


def _add_note(raw: dict) -> None:
    raw["items"].append(
        {"name": "note", "label": "备注", "type": "string", "length": 200, "description": "A note"}
    )


def _publish(settings: Settings, rows: list[dict], name: str) -> None:
    contract = load_contracts(settings.schemas_dir)["population"]
    path = write_delivery(contract, rows, settings.home.parent / "drops" / f"{name}.csv")
    lake = Lake(settings)
    try:
        outcome = run_ingest(contract, [path], lake)
    finally:
        lake.close()
    assert outcome.status == "published", outcome.message


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    """v1: 40 people. v2: two of them changed (address, phone), one gone, two new. Then the
    summary is reworded (a release without a publish). v3: an item ``note`` added, one
    address changed. Returns (settings, the rows of each version)."""
    root = tmp_path_factory.mktemp("releases")
    schemas = root / "schemas"
    schemas.mkdir()
    for name in ("population", "geography"):  # geography: the target of a reference
        shutil.copy(REPO_ROOT / "schemas" / f"{name}.yaml", schemas)
    _edit(schemas, _full)
    settings = Settings(home=root / "runtime", schemas_dir=schemas)
    v1 = population_rows(40)
    _publish(settings, v1, "v1")

    v2 = [dict(row) for row in population_rows(42)]
    v2[0]["address"] = "杭州市上城区解放路1号"
    v2[1]["phone"] = "13900000001"
    gone = v2.pop(39)
    _publish(settings, v2, "v2")

    _edit(schemas, _new_summary)
    lake = Lake(settings)
    made = sync(lake, load_contracts(schemas), datetime.now(UTC))
    lake.close()
    assert made is not None

    _edit(schemas, _add_note)
    v3 = [dict(row, note="") for row in v2]
    v3[2]["address"] = "杭州市拱墅区湖墅南路2号"
    v3[3]["note"] = "迁入"
    _publish(settings, v3, "v3")
    return settings, {"v1": v1, "v2": v2, "v3": v3, "gone": gone}


@pytest.fixture(scope="module")
def client(scripted):
    settings, _ = scripted
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def tokens(scripted):
    settings, _ = scripted
    return seed_identities(settings, load_contracts(settings.schemas_dir))


def test_each_publish_and_metadata_change_makes_a_release(scripted, client):
    listed = client.get("/catalog/releases").json()
    assert listed["total"] == 4
    numbers = [r["release"] for r in listed["releases"]]
    assert numbers == [4, 3, 2, 1]
    reasons = {r["release"]: r["reason"] for r in listed["releases"]}
    assert reasons[1] == "geography added; population added"  # listed, never published
    assert reasons[2] == "population v2"
    assert reasons[3] == "population metadata"
    assert "population v3" in reasons[4] and "population metadata" in reasons[4]
    # Nothing changed since: starting the API again records no release.
    with TestClient(create_app(scripted[0])) as again:
        assert again.get("/catalog/releases").json()["total"] == 4


def test_a_release_lists_each_dataset_with_code_and_version(client):
    shown = client.get("/catalog/releases/2").json()
    entries = {e["dataset"]: e for e in shown["datasets"]}
    assert entries["geography"]["version"] is None
    entry = entries["population"]
    assert entry["resource_code"] == "101001/000001"  # 类 1 base, 项 01 人口 (schemas/)
    assert entry["version"] == 2 and entry["row_count"] == 41


def test_release_diff_rows_metadata_and_schema(client):
    rows = client.get("/catalog/releases/diff?from=1&to=2").json()
    (change,) = rows["changed"]
    assert change["version"] == {"from": 1, "to": 2}
    assert change["row_count"] == {"from": 40, "to": 41, "change": 1}
    assert change["metadata"] == [] and change["items"]["added"] == []

    metadata = client.get("/catalog/releases/diff?from=2&to=3").json()
    (change,) = metadata["changed"]
    assert change["version"] == {"from": 2, "to": 2}
    assert [f["field"] for f in change["metadata"]] == ["summary"]
    assert change["metadata"][0]["to"] == NEW_SUMMARY

    schema = client.get("/catalog/releases/diff").json()  # the latest against the one before
    assert (schema["from_release"], schema["to_release"]) == (3, 4)
    (change,) = schema["changed"]
    assert change["items"]["added"] == ["note"] and change["schema_changed"] is True
    assert schema["added"] == [] and schema["removed"] == []


def test_dataset_diff_counts_rows_by_key(client):
    v1_v2 = client.get("/catalog/population/diff?from=1&to=2").json()
    assert v1_v2["rows"] == {"added": 2, "deleted": 1, "changed": 2}
    assert v1_v2["items_changed"] == {"address": 1, "phone": 1}
    assert v1_v2["row_count"] == {"from": 40, "to": 41, "change": 1}
    assert v1_v2["schema"] == {"added": [], "removed": [], "type_changed": []}

    v2_v3 = client.get("/catalog/population/diff").json()
    assert (v2_v3["from_version"], v2_v3["to_version"]) == (2, 3)
    # note is new: not compared (v2 has none); only the changed address counts.
    assert v2_v3["rows"] == {"added": 0, "deleted": 0, "changed": 1}
    assert v2_v3["schema"]["added"] == ["note"]

    across = client.get("/catalog/population/diff?from=1&to=3").json()
    assert across["rows"] == {"added": 2, "deleted": 1, "changed": 3}

    first = client.get("/catalog/population/diff?to=1").json()  # before v1: all added
    assert first["from_version"] is None
    assert first["rows"] == {"added": 40, "deleted": 0, "changed": 0}
    assert "id_number" in first["schema"]["added"]


@pytest.mark.parametrize(
    ("url", "status", "field"),
    [
        ("/catalog/releases/9", 404, None),
        ("/catalog/releases/0", 422, "release"),
        ("/catalog/releases/diff?from=3&to=2", 422, "from"),
        ("/catalog/releases/diff?from=1&to=9", 404, None),
        ("/catalog/releases/diff?to=x", 422, "to"),
        ("/catalog/population/diff?from=3&to=1", 422, "from"),
        ("/catalog/population/diff?from=1&to=7", 404, None),
        ("/catalog/nothing/diff", 404, None),
        ("/catalog/releases?limit=0", 422, "limit"),
    ],
)
def test_bad_release_and_version_numbers(client, url, status, field):
    answer = client.get(url)
    assert answer.status_code == status, answer.text
    if field:
        assert field in [e["loc"][-1] for e in answer.json()["detail"]]


def test_an_old_version_reads_with_the_item_added_since_as_null(scripted, client, tokens):
    _, script = scripted
    headers = bearer(tokens["population_provider"])
    old = client.get("/datasets/population/rows?version=2&limit=100", headers=headers)
    assert old.status_code == 200, old.text
    rows = old.json()["rows"]
    assert len(rows) == len(script["v2"]) and all(row["note"] is None for row in rows)
    new = client.get("/datasets/population/rows?version=3&limit=100", headers=headers).json()
    assert "迁入" in [row["note"] for row in new["rows"]]


def test_changes_sample_holds_the_grant_narrowing_and_masking(scripted, client, tokens):
    """A consumer whose grant has three items, the identity number masked and one district:
    the sample shows only those items, masked, and only rows of that district."""
    _, script = scripted
    district = script["v2"][0]["region_code"]
    approve_request(
        client,
        tokens,
        {
            "dataset": "population",
            "items": ["id_number", "address", "region_code"],
            "row_filter": [{"item": "region_code", "op": "eq", "values": [district]}],
            "purpose": "变更核查",
            "legal_basis": "测试依据",
            "period_start": "2026-01-01",
            "period_end": "2030-12-31",
        },
    )
    answer = client.get(
        "/datasets/population/changes?from=1&to=2", headers=bearer(tokens["consumer_a"])
    )
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["rows"] == {"added": 2, "deleted": 1, "changed": 2}  # counts: as the catalog
    raw_ids = {row["id_number"] for row in script["v1"] + script["v2"]}
    sample = found["sample"]
    shown = sample["added"] + sample["deleted"] + [c["row"] for c in sample["changed"]]
    expected = [
        row
        for row in [*script["v2"][-2:], script["gone"], script["v2"][0], script["v2"][1]]
        if row["region_code"] == district
    ]
    assert len(shown) == len(expected) >= 1
    for row in shown:
        assert set(row) == {"id_number", "address", "region_code"}
        assert row["region_code"] == district
        assert row["id_number"] not in raw_ids
    for change in sample["changed"]:
        assert set(change["items"]) <= {"address"}  # phone is outside the grant
    # Department B has no grant: refused, as for rows.
    refused = client.get("/datasets/population/changes", headers=bearer(tokens["consumer_b"]))
    assert refused.status_code == 403


def test_a_resource_code_stays_with_its_dataset(scripted, tmp_path):
    settings, script = scripted
    schemas = tmp_path / "schemas"
    shutil.copytree(settings.schemas_dir, schemas)
    _edit(schemas, lambda raw: raw["catalog"].update(sequence_code="000002"))
    moved = load_contracts(schemas)
    lake = Lake(settings)
    try:
        with pytest.raises(ResourceCodeChanged, match="differs from '101001/000001'"):
            sync(lake, moved, datetime.now(UTC))
        # A publish under the changed code is refused too; the last version stays live.
        v4 = [dict(row) for row in script["v3"]]
        v4[5]["address"] = "杭州市滨江区江南大道5号"
        path = write_delivery(moved["population"], v4, tmp_path / "v4.csv")
        outcome = run_ingest(moved["population"], [path], lake)
        assert outcome.status != "published"
        assert "101001/000001" in outcome.message
        # A new dataset may not take the code population holds.
        geography = load_contracts(REPO_ROOT / "schemas")["geography"]
        meta = geography.catalog.model_copy(
            update={"classification_code": "101001", "sequence_code": "000001"}
        )
        taker = geography.model_copy(update={"dataset": "parks", "catalog": meta})
        with lake.reader() as con, pytest.raises(ResourceCodeChanged, match="belonged to"):
            check_resource_codes(con, [taker])
    finally:
        lake.close()


def test_cli_lists_shows_and_diffs_releases(scripted, monkeypatch):
    settings, _ = scripted
    monkeypatch.setenv("GOVSHARE_HOME", str(settings.home))
    monkeypatch.setenv("GOVSHARE_SCHEMAS_DIR", str(settings.schemas_dir))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    listed = runner.invoke(cli, ["catalog", "releases"])
    assert listed.exit_code == 0, listed.output
    assert "4 releases" in listed.output and "population v2" in listed.output
    shown = runner.invoke(cli, ["catalog", "show", "2"])
    assert "101001/000001" in shown.output and "41" in shown.output
    diffed = runner.invoke(cli, ["catalog", "diff", "3", "4"])
    assert diffed.exit_code == 0, diffed.output
    assert "items added: note" in diffed.output
    changes = runner.invoke(cli, ["catalog", "changes", "population", "--from", "1", "--to", "2"])
    assert "'added': 2" in changes.output and "'deleted': 1" in changes.output
