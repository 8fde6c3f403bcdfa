"""Catalog releases and diffs (issue 11 §1, SPEC §3) over a scripted sequence of publishes:
rows changed, added and deleted (a full delivery), a metadata change, a schema change (an
item added), and resource codes that must stay with their dataset."""

from __future__ import annotations

import shutil
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
from catalog.store.releases import (
    ResourceCodeChanged,
    check_resource_codes,
    latest_release,
    sync,
)
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


def _other_name(name: str) -> str:
    """Another given name under the same surname: a name mask (张**) shows no change."""
    return name[0] + ("伟" if name[1:] != "伟" else "强")


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    """v1: 40 people. v2: in one district, one address, one phone, one name (same surname)
    and one status changed, one person moved out and another moved in; outside it one
    status changed; one person gone, two new. Then the summary is reworded (a release
    without a publish). v3: an item ``note`` added, one more address changed. Returns
    (settings, the rows and the district's row numbers)."""
    root = tmp_path_factory.mktemp("releases")
    schemas = root / "schemas"
    schemas.mkdir()
    for name in ("population", "geography"):  # geography: the target of a reference
        shutil.copy(REPO_ROOT / "schemas" / f"{name}.yaml", schemas)
    _edit(schemas, _full)
    settings = Settings(home=root / "runtime", schemas_dir=schemas)
    v1 = population_rows(40)
    _publish(settings, v1, "v1")

    district = v1[0]["region_code"]
    inside = [i for i in range(39) if v1[i]["region_code"] == district]
    outside = [i for i in range(39) if v1[i]["region_code"] != district]
    assert len(inside) >= 5 and len(outside) >= 3
    v2 = [dict(row) for row in population_rows(42)]
    address, phone, name, status, leaves = inside[:5]
    other_status, arrives, later = outside[:3]
    v2[address]["address"] = "杭州市上城区解放路1号"
    v2[phone]["phone"] = "13900000001"
    v2[name]["name"] = _other_name(v2[name]["name"])
    v2[status]["status"] = "迁出"
    v2[other_status]["status"] = "迁出"
    v2[leaves]["region_code"] = v1[outside[0]]["region_code"]
    v2[arrives]["region_code"] = district
    gone = v2.pop(39)
    _publish(settings, v2, "v2")

    _edit(schemas, _new_summary)
    lake = Lake(settings)
    made = sync(lake, load_contracts(schemas))
    lake.close()
    assert made is not None

    _edit(schemas, _add_note)
    v3 = [dict(row, note="") for row in v2]
    v3[later]["address"] = "杭州市拱墅区湖墅南路2号"
    v3[address]["note"] = "迁入"
    _publish(settings, v3, "v3")
    rows = {"v1": v1, "v2": v2, "v3": v3, "gone": gone, "district": district}
    changed = {"address": address, "phone": phone, "name": name, "status": status}
    return settings, {**rows, "changed": changed, "leaves": leaves, "arrives": arrives}


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
    # geography is listed, never published
    assert reasons[1] == "geography added; population added v1"
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
    """Counts of the whole dataset; changed rows per item only for public items (a count
    of one changed phone number singles out a person)."""
    v1_v2 = client.get("/catalog/population/diff?from=1&to=2").json()
    assert client.get("/catalog/population/diff?from=1&to=2").json() == v1_v2  # kept, alike
    # address, phone, name, two statuses, a move out of and one into the district
    assert v1_v2["rows"] == {"added": 2, "deleted": 1, "changed": 7}
    assert v1_v2["items_changed"] == {"region_code": 2, "status": 2}
    assert v1_v2["row_count"] == {"from": 40, "to": 41, "change": 1}
    assert v1_v2["schema"] == {"added": [], "removed": [], "type_changed": []}

    v2_v3 = client.get("/catalog/population/diff").json()
    assert (v2_v3["from_version"], v2_v3["to_version"]) == (2, 3)
    # note is new: not compared (v2 has none); only the changed address counts.
    assert v2_v3["rows"] == {"added": 0, "deleted": 0, "changed": 1}
    assert v2_v3["schema"]["added"] == ["note"]

    assert v2_v3["items_changed"] == {}  # an address: sensitive
    across = client.get("/catalog/population/diff?from=1&to=3").json()
    assert across["rows"] == {"added": 2, "deleted": 1, "changed": 8}

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


def test_changes_show_only_what_the_scope_sees(scripted, client, tokens):
    """A consumer's grant: five items, the address in clear, the name and the number
    masked, one district. Its diff is that of its own rows: a change of an item outside
    the grant (phone) or hidden by the mask (a given name) is no change, a row moving out
    of the district is deleted for it and one moving in added, as its rows show them."""
    _, script = scripted
    district, changed = script["district"], script["changed"]
    approve_request(
        client,
        tokens,
        {
            "dataset": "population",
            "items": ["id_number", "name", "address", "region_code", "status"],
            "unmasked_items": ["address"],
            "row_filter": [{"item": "region_code", "op": "eq", "values": [district]}],
            "purpose": "变更核查",
            "legal_basis": "测试依据",
            "period_start": "2026-01-01",
            "period_end": "2030-12-31",
        },
    )
    headers = bearer(tokens["consumer_a"])
    answer = client.get("/datasets/population/changes?from=1&to=2&limit=100", headers=headers)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    v2 = script["v2"]
    new_here = [r for r in v2[-2:] if r["region_code"] == district] + [v2[script["arrives"]]]
    gone_here = [script["gone"]] if script["gone"]["region_code"] == district else []
    expected = {
        "added": {r["address"] for r in new_here},
        "deleted": {r["address"] for r in [*gone_here, v2[script["leaves"]]]},
        "changed": {v2[changed["address"]]["address"], v2[changed["status"]]["address"]},
    }
    sample = found["sample"]
    assert {
        kind: {r["address"] for r in rows} for kind, rows in sample.items() if kind != "changed"
    } == {"added": expected["added"], "deleted": expected["deleted"]}
    assert {c["row"]["address"] for c in sample["changed"]} == expected["changed"]
    assert found["rows"] == {kind: len(rows) for kind, rows in expected.items()}
    assert found["items_changed"] == {"address": 1, "status": 1}
    assert sorted(c["items"] for c in sample["changed"]) == [["address"], ["status"]]
    raw = {r["id_number"] for r in script["v1"] + v2} | {r["name"] for r in script["v1"] + v2}
    rows_seen = sample["added"] + sample["deleted"] + [c["row"] for c in sample["changed"]]
    for row in rows_seen:
        assert set(row) == {"id_number", "name", "address", "region_code", "status"}
        assert row["id_number"] not in raw and row["name"] not in raw
    # What the rows API shows the same caller, version by version, agrees.
    pages = {
        v: client.get(f"/datasets/population/rows?version={v}&limit=100", headers=headers).json()
        for v in (1, 2)
    }
    addresses = {v: {r["address"] for r in page["rows"]} for v, page in pages.items()}
    assert expected["added"] == addresses[2] - addresses[1] - expected["changed"]
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
            sync(lake, moved)
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
        with (
            lake.reader() as con,
            pytest.raises(ResourceCodeChanged, match="population's in earlier releases"),
        ):
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


def test_an_item_removed_then_added_again_starts_empty(tmp_path):
    """Removed: earlier versions keep its values; added again: no old value comes back."""
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    for name in ("population", "geography"):
        shutil.copy(REPO_ROOT / "schemas" / f"{name}.yaml", schemas)
    _edit(schemas, _add_note)
    settings = Settings(home=tmp_path / "runtime", schemas_dir=schemas)
    rows = [dict(row, note=f"old{i}") for i, row in enumerate(population_rows(10))]
    _publish(settings, rows, "v1")
    _edit(schemas, lambda raw: raw["items"].pop())  # note removed
    _publish(settings, [{**rows[0], "address": "杭州市滨江区江南大道5号"}], "v2")
    _edit(schemas, _add_note)  # and added again
    _publish(settings, [{**rows[1], "address": "杭州市滨江区江南大道6号", "note": "new"}], "v3")
    tokens = seed_identities(settings, load_contracts(schemas))
    headers = bearer(tokens["population_provider"])
    with TestClient(create_app(settings)) as client:
        notes = {
            v: sorted(
                str(r["note"])
                for r in client.get(
                    f"/datasets/population/rows?version={v}&limit=100", headers=headers
                ).json()["rows"]
            )
            for v in (1, 2, 3)
        }
        assert notes[1] == sorted(f"old{i}" for i in range(10))
        assert notes[2] == ["None"] * 10  # v2's rows have no note
        assert notes[3] == ["None"] * 9 + ["new"]
        v1_v2 = client.get("/catalog/population/diff?from=1&to=2").json()
        assert v1_v2["schema"]["removed"] == ["note"]
        assert client.get("/catalog/population/diff").json()["schema"]["added"] == ["note"]


def test_one_datasets_code_change_does_not_stop_another_publish(scripted, tmp_path):
    settings, _ = scripted
    schemas = tmp_path / "schemas"
    shutil.copytree(settings.schemas_dir, schemas)
    _edit(schemas, lambda raw: raw["catalog"].update(sequence_code="000002"))
    moved = Settings(home=settings.home, schemas_dir=schemas)
    geography = load_contracts(schemas)["geography"]
    drops = sorted((REPO_ROOT / "data" / "geography").glob("*"))
    lake = Lake(moved)
    try:
        outcome = run_ingest(geography, drops, lake)
        assert outcome.status == "published", outcome.message
        with lake.reader() as con:
            release = latest_release(con)
    finally:
        lake.close()
    assert release.datasets["geography"]["version"] == 1
    # population stays as its releases had it, under its code.
    assert release.datasets["population"]["resource_code"] == "101001/000001"


def test_a_sequence_code_is_a_number(scripted):
    """000001 and 1 number the same resource: a new dataset cannot take population's."""
    settings, _ = scripted
    geography = load_contracts(REPO_ROOT / "schemas")["geography"]
    meta = geography.catalog.model_copy(
        update={"classification_code": "101001", "sequence_code": "1"}
    )
    taker = geography.model_copy(update={"dataset": "parks", "catalog": meta})
    lake = Lake(settings)
    try:
        with lake.reader() as con, pytest.raises(ResourceCodeChanged, match="population's"):
            check_resource_codes(con, [taker])
    finally:
        lake.close()
