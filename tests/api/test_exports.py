"""Export formats (issue: a new user's report). CSV from the export opened as mojibake in
Excel on Chinese Windows (Excel reads a CSV without a byte-order mark in the system code
page, GBK), and geography boundaries came out as a JSON string inside a cell. So the export
also offers ``csv_excel`` (UTF-8 with a byte-order mark) and ``xlsx``, both with the items'
Chinese labels as headers, and ``geojson`` (a FeatureCollection whose geometries are the
boundaries themselves). Whatever the format, a caller gets exactly the rows and values of
the CSV export: the same items, masks, row filter and audit entry."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from catalog.contracts import Contract, load_contracts
from tests.conftest import approve_request, audit_entries, bearer

BOM = b"\xef\xbb\xbf"
GRANTED = ["uscc", "name", "legal_rep_name", "registered_capital", "established_date"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module")
def env(access_world):
    return access_world


@pytest.fixture(scope="module")
def contracts(env) -> dict[str, Contract]:
    return load_contracts(env[3].schemas_dir)


@pytest.fixture(scope="module")
def legal_grant(env) -> int:
    """Department B's grant on legal persons: four items, the representative's name in
    clear, one legal form only (a row filter)."""
    client, tokens, _, _ = env
    request = approve_request(
        client,
        tokens,
        {
            "dataset": "legal_persons",
            "items": GRANTED,
            "unmasked_items": ["legal_rep_name"],
            "row_filter": [{"item": "status", "op": "eq", "values": ["存续"]}],
            "purpose": "导出测试",
            "legal_basis": "测试依据",
            "period_start": "2026-01-01",
            "period_end": "2030-12-31",
        },
        requester="consumer_b",
    )
    return request["grant"]["id"]


def _canonical(item, value):
    """A cell as a comparable value, whatever the file held it as (text in CSV, typed in
    Parquet and xlsx)."""
    if value is None or value == "":
        return None
    if item.type in ("decimal", "integer"):
        return Decimal(str(value)).normalize()
    if item.type == "date":
        if isinstance(value, datetime):
            return value.date()
        return value if isinstance(value, date) else date.fromisoformat(value)
    return str(value)


def _csv_rows(content: bytes, encoding: str = "utf-8") -> tuple[list[str], list[list[str]]]:
    table = list(csv.reader(io.StringIO(content.decode(encoding), newline="")))
    return table[0], table[1:]


def _export(client, token: str, dataset: str, fmt: str, grant: int | None = None):
    params: dict[str, str | int] = {"format": fmt}
    if grant is not None:
        params["grant"] = grant
    return client.get(f"/datasets/{dataset}/export", params=params, headers=bearer(token))


def _read(fmt: str, content: bytes) -> tuple[list[str], list[list]]:
    """(headers, rows) of an exported file."""
    if fmt == "csv":
        return _csv_rows(content)
    if fmt == "csv_excel":
        assert content.startswith(BOM)  # what makes Excel read it as UTF-8
        return _csv_rows(content[len(BOM) :])
    if fmt == "xlsx":
        sheet = load_workbook(io.BytesIO(content), read_only=True).worksheets[0]
        table = [list(row) for row in sheet.iter_rows(values_only=True)]
        return [str(h) for h in table[0]], table[1:]
    table = pq.read_table(io.BytesIO(content))
    return table.column_names, [list(r.values()) for r in table.to_pylist()]


@pytest.mark.parametrize("fmt", ["csv_excel", "xlsx", "parquet"])
@pytest.mark.parametrize("under_grant", [False, True], ids=["unconditional", "grant"])
def test_every_format_holds_the_rows_and_masks_of_the_csv_export(
    env, contracts, legal_grant, fmt, under_grant
):
    client, tokens, _, _ = env
    contract = contracts["legal_persons"]
    grant = legal_grant if under_grant else None
    reference = _export(client, tokens["analyst_b"], "legal_persons", "csv", grant)
    assert reference.status_code == 200, reference.text
    assert not reference.content.startswith(BOM)  # the plain CSV is unchanged
    names, expected = _csv_rows(reference.content)
    items = [contract.item(name) for name in names]

    response = _export(client, tokens["analyst_b"], "legal_persons", fmt, grant)
    assert response.status_code == 200, response.text
    headers, rows = _read(fmt, response.content)
    if fmt == "parquet":
        assert headers == names
    else:  # the spreadsheet formats: the Chinese labels, in the same order
        assert headers == [item.label for item in items]
    assert [[_canonical(i, v) for i, v in zip(items, row, strict=True)] for row in rows] == [
        [_canonical(i, v) for i, v in zip(items, row, strict=True)] for row in expected
    ]
    if under_grant:  # the grant's scope: its items, its filter, the name in clear
        assert names == GRANTED
        assert 0 < len(rows) < _row_count(env, "legal_persons")
    else:  # unconditional: every row, the representative's number redacted (decision 55)
        column = names.index("legal_rep_id")
        assert all(str(row[column]) == "****" for row in rows if row[column])


def _row_count(env, dataset: str) -> int:
    client = env[0]
    return client.get(f"/catalog/{dataset}").json()["versions"][0]["row_count"]


def test_the_excel_csv_is_utf8_with_a_bom_and_chinese_labels(env, contracts):
    client, tokens, _, _ = env
    response = _export(client, tokens["consumer_a"], "legal_persons", "csv_excel")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(BOM)
    text = response.content.decode("utf-8-sig")  # strict: the whole file is UTF-8
    header = next(csv.reader(io.StringIO(text)))
    assert header == [item.label for item in contracts["legal_persons"].items]
    assert "统一社会信用代码" in header and "法定代表人" in header
    assert 'filename="legal_persons-v1.csv"' in response.headers["content-disposition"]


def test_the_xlsx_export_is_a_workbook_with_typed_cells(env, contracts):
    client, tokens, _, _ = env
    response = _export(client, tokens["consumer_a"], "legal_persons", "xlsx")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX
    assert ".xlsx" in response.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(response.content)).worksheets[0]
    header = [cell.value for cell in sheet[1]]
    assert header == [item.label for item in contracts["legal_persons"].items]
    assert all(cell.font.b for cell in sheet[1])
    capital = header.index("注册资本（万元）")
    established = header.index("成立日期")
    values = [row for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert any(isinstance(row[capital], int | float) for row in values)  # numbers, not text
    assert any(isinstance(row[established], datetime) for row in values)  # dates, not text


def test_each_export_is_audited_with_its_format_and_rows(env, legal_grant):
    client, tokens, _, settings = env
    for fmt in ("csv", "csv_excel", "xlsx", "parquet"):
        response = _export(client, tokens["consumer_b"], "legal_persons", fmt, legal_grant)
        assert response.status_code == 200, response.text
        [latest, *_] = audit_entries(settings, action="export", username="consumer_b")
        assert latest.detail["format"] == fmt
        assert latest.detail["grant_id"] == legal_grant
        assert latest.row_count == len(_read(fmt, response.content)[1])
        assert latest.items == GRANTED


def test_a_refused_export_is_refused_in_every_format(env):
    """Credit records are not shared by bulk download: no format changes that."""
    client, tokens, _, _ = env
    for fmt in ("csv", "csv_excel", "xlsx", "parquet"):
        response = _export(client, tokens["consumer_a"], "credit_records", fmt)
        assert response.status_code == 403, (fmt, response.text)


# --- GeoJSON -----------------------------------------------------------------------------


def test_the_geojson_export_is_a_feature_collection_of_real_geometries(env, contracts):
    client, tokens, _, _ = env
    contract = contracts["geography"]
    reference = _export(client, tokens["consumer_a"], "geography", "csv")
    names, rows = _csv_rows(reference.content)
    response = _export(client, tokens["consumer_a"], "geography", "geojson")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    assert ".geojson" in response.headers["content-disposition"]
    document = json.loads(response.content)
    assert document["type"] == "FeatureCollection"
    features = document["features"]
    assert len(features) == len(rows) > 0
    boundary = names.index("boundary")
    located = 0
    for feature, row in zip(features, rows, strict=True):
        assert feature["type"] == "Feature"
        if row[boundary]:
            # The boundary itself, an object: not a string holding JSON.
            assert feature["geometry"] == json.loads(row[boundary])
            assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
            located += 1
        else:
            assert feature["geometry"] is None
        properties = feature["properties"]
        assert list(properties) == [n for n in names if n != "boundary"]
        for name, value in zip(names, row, strict=True):
            if name != "boundary":
                item = contract.item(name)
                assert _canonical(item, properties[name]) == _canonical(item, value), name
    assert located > 0


def test_geojson_needs_a_geojson_item(env):
    client, tokens, _, settings = env
    before = len(audit_entries(settings, username="consumer_a"))
    response = _export(client, tokens["consumer_a"], "legal_persons", "geojson")
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "format"]
    assert "geojson" in error["msg"] and "legal_persons" in error["msg"]
    assert len(audit_entries(settings, username="consumer_a")) == before  # nothing exported


def test_geojson_under_a_grant_without_the_boundary_is_422(env):
    client, tokens, _, _ = env
    request = approve_request(
        client,
        tokens,
        {
            "dataset": "geography",
            "items": ["region_code", "name"],
            "purpose": "区划名称核对",
            "legal_basis": "测试依据",
            "period_start": "2026-01-01",
            "period_end": "2030-12-31",
        },
        requester="analyst_a",
    )
    grant = request["grant"]["id"]
    response = _export(client, tokens["analyst_a"], "geography", "geojson", grant)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "format"] and "boundary" in error["msg"]
    # The same grant exports its two items in the other formats.
    csv_export = _export(client, tokens["analyst_a"], "geography", "csv", grant)
    assert _csv_rows(csv_export.content)[0] == ["region_code", "name"]


def test_an_unknown_format_is_422_listing_the_formats(env):
    client, tokens, _, _ = env
    response = _export(client, tokens["consumer_a"], "geography", "xls")
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "format"]
    for fmt in ("csv", "csv_excel", "xlsx", "parquet", "geojson"):
        assert f"'{fmt}'" in error["msg"]


def test_more_rows_than_a_sheet_holds_is_422(env, monkeypatch):
    from catalog.sharing import reads

    client, tokens, _, _ = env
    monkeypatch.setattr(reads, "XLSX_MAX_ROWS", 5)
    response = _export(client, tokens["consumer_a"], "geography", "xlsx")
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "format"] and "rows" in error["msg"]


# --- values a spreadsheet would misread, values Excel cannot hold -------------------------

FORMULAS = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://example.invalid","x")', "+1+1", "@SUM(1)"]
SQUARE = {"type": "Polygon", "coordinates": [[[120, 30], [120.1, 30], [120.1, 30.1], [120, 30]]]}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """Geography published twice: v1 with names that read as formulas, v2 adding a division
    whose boundary is longer than an Excel cell holds. (client, token, settings)"""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from catalog.ingest.delivery import run_ingest
    from catalog.settings import REPO_ROOT, Settings
    from catalog.store.lake import Lake
    from tests.conftest import seed_identities, write_delivery

    root = tmp_path_factory.mktemp("exports")
    settings = Settings(home=root / "runtime")
    contracts = load_contracts(REPO_ROOT / "schemas")
    contract = contracts["geography"]
    base = {"level": "county", "parent_code": "330100", "centroid_lon": "120.1"}
    rows = [
        {**base, "region_code": f"3301{n:02d}", "name": name, "centroid_lat": "30.2",
         "boundary": json.dumps(SQUARE) if n == 1 else ""}
        for n, name in enumerate(FORMULAS, start=1)
    ]  # fmt: skip
    ring = [[120 + i / 10**5, 30.0] for i in range(3000)]
    huge = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    assert len(json.dumps(huge)) > 32_767
    extra = {**base, "region_code": "330199", "name": "大区", "centroid_lat": "30.3"}
    lake = Lake(settings)
    for name, delivery in (
        ("a.csv", rows),
        ("b.csv", [*rows, {**extra, "boundary": json.dumps(huge)}]),
    ):
        outcome = run_ingest(contract, [write_delivery(contract, delivery, root / name)], lake)
        assert outcome.status == "published", outcome.message
    lake.close()
    tokens = seed_identities(settings, contracts)
    with TestClient(create_app(settings)) as client:
        yield client, tokens["consumer_a"], settings


def test_xlsx_cells_are_text_never_formulas_and_keep_the_value(small_world):
    client, token, _ = small_world
    response = client.get("/datasets/geography/export?format=xlsx&version=1", headers=bearer(token))
    assert response.status_code == 200, response.text
    sheet = load_workbook(io.BytesIO(response.content)).worksheets[0]
    names = [row[1] for row in sheet.iter_rows(min_row=2)]
    assert sorted(cell.value for cell in names) == sorted(FORMULAS)  # as delivered
    assert {cell.data_type for cell in names} == {"s"}  # text: Excel runs no formula


def test_the_excel_csv_neutralises_formulas_as_the_csv_does(small_world):
    client, token, _ = small_world
    plain = client.get("/datasets/geography/export?format=csv&version=1", headers=bearer(token))
    excel = client.get(
        "/datasets/geography/export?format=csv_excel&version=1", headers=bearer(token)
    )
    assert _csv_rows(excel.content[len(BOM) :])[1] == _csv_rows(plain.content)[1]
    assert all(row[1].startswith("'") for row in _csv_rows(plain.content)[1])


def test_a_value_longer_than_an_excel_cell_is_422_not_cut(small_world):
    client, token, _ = small_world
    response = client.get("/datasets/geography/export?format=xlsx", headers=bearer(token))
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "format"]
    assert "boundary" in error["msg"] and "32,767" in error["msg"]
    # The other formats carry it whole.
    document = client.get("/datasets/geography/export?format=geojson", headers=bearer(token))
    geometries = {
        f["properties"]["region_code"]: f["geometry"]
        for f in json.loads(document.content)["features"]
    }
    ring = geometries["330199"]["coordinates"][0]
    assert len(ring) == 3001 and ring[:2] == [[120.0, 30.0], [120.00001, 30.0]]
    assert geometries["330101"] == SQUARE
    assert geometries["330102"] is None  # no boundary delivered


def test_a_failed_export_leaves_no_file_behind(small_world):
    client, token, settings = small_world
    client.get("/datasets/geography/export?format=xlsx", headers=bearer(token))  # the 422
    assert not any(settings.folder("tmp").glob("export-*"))


@pytest.mark.parametrize("under_grant", [False, True], ids=["unconditional", "grant"])
def test_the_data_package_validates_and_holds_the_csv_exports_rows(
    env, contracts, legal_grant, tmp_path, under_grant
):
    """A Frictionless data package (issue 11 §7): ``datapackage.json`` with a Table Schema
    of the items as the scope shows them, the rows as the CSV export has them; the
    ``frictionless`` package finds no error in it (types, constraints, primary key)."""
    import zipfile

    from frictionless import Package, system

    client, tokens, _, _ = env
    grant = legal_grant if under_grant else None
    reference = _export(client, tokens["analyst_b"], "legal_persons", "csv", grant)
    names, expected = _csv_rows(reference.content)
    response = _export(client, tokens["analyst_b"], "legal_persons", "datapackage", grant)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == ["data.csv", "datapackage.json"]
        archive.extractall(tmp_path)
    descriptor = json.loads((tmp_path / "datapackage.json").read_text(encoding="utf-8"))
    schema = descriptor["resources"][0]["schema"]
    assert [f["name"] for f in schema["fields"]] == names
    header, rows = _csv_rows((tmp_path / "data.csv").read_bytes())
    assert header == names and len(rows) == len(expected)
    contract = contracts["legal_persons"]
    fields = {f["name"]: f for f in schema["fields"]}
    if under_grant:  # uscc in clear: typed, constrained, the primary key
        assert schema["primaryKey"] == ["uscc"] and fields["uscc"]["type"] == "string"
    else:  # the representative's identity number is redacted: no constraints on it
        assert "constraints" not in fields["legal_rep_id"]
        assert "redacted" in fields["legal_rep_id"]["description"]
    typed = {item.name for item in contract.items if item.type == "date"} & set(names)
    assert all(fields[name]["type"] == "date" for name in typed)
    with system.use_context(trusted=True):
        report = Package(str(tmp_path / "datapackage.json")).validate()
    assert report.valid, report.flatten(["type", "note", "fieldName", "rowNumber"])[:5]
