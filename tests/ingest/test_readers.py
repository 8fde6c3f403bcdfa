"""Every department format reads to text columns; unreadable input says file, row, column."""

from __future__ import annotations

import json

import duckdb
import pytest

from catalog.ingest.readers import IngestError, open_source
from catalog.ingest.staging import stage
from tests.conftest import population_rows, write_delivery


def _rows_of(con, path, geometry=None):
    source = open_source(con, path, path.parent / "scratch", geometry)
    return source.headers, con.execute(source.sql).fetchall()


@pytest.fixture
def con():
    from catalog.settings import Settings
    from catalog.store.lake import new_connection

    connection = new_connection(Settings())
    yield connection
    connection.close()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_in_every_encoding_reads_the_same(tmp_path, con, contracts, encoding):
    population = contracts["population"]
    path = write_delivery(population, population_rows(5), tmp_path / "p.csv", encoding)
    headers, rows = _rows_of(con, path)
    assert headers[0].lstrip("\ufeff") == "公民身份号码"
    assert [r[1] for r in rows] == [r["name"] for r in population_rows(5)]  # file order
    expected = "utf-8" if encoding.startswith("utf") else "gb18030"
    assert open_source(con, path, path.parent / "scratch").encoding == expected


def test_leading_zeros_and_long_digits_stay_text(tmp_path, con):
    path = tmp_path / "z.csv"
    path.write_text("code,phone\n010101,013800001111\n", encoding="utf-8")
    _, rows = _rows_of(con, path)
    assert rows[0][:2] == ("010101", "013800001111")


def test_xlsx_jsonl_parquet_geojson(tmp_path, con):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["许可证编号", "发证日期"])
    sheet.append(["SP3301-00000001", "2024-03-01"])
    book.save(tmp_path / "l.xlsx")
    assert _rows_of(con, tmp_path / "l.xlsx")[1][0][:2] == ("SP3301-00000001", "2024-03-01")

    (tmp_path / "c.jsonl").write_text(
        json.dumps({"记录编号": "XY0000000001", "金额": 12}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    assert _rows_of(con, tmp_path / "c.jsonl")[1][0][:2] == ("XY0000000001", "12")

    duckdb.execute(f"COPY (SELECT '010101' AS code) TO '{tmp_path / 'x.parquet'}'")
    assert _rows_of(con, tmp_path / "x.parquet")[1][0][0] == "010101"

    feature = {"type": "Feature", "properties": {"行政区划代码": "330106"},
               "geometry": {"type": "Point", "coordinates": [120.1, 30.2]}}  # fmt: skip
    (tmp_path / "g.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [feature]}), encoding="utf-8"
    )
    headers, rows = _rows_of(con, tmp_path / "g.geojson", "边界")
    assert headers == ["行政区划代码", "边界"]
    assert json.loads(rows[0][1]) == feature["geometry"]


def _stage_error(contracts, settings, path) -> IngestError:
    with pytest.raises(IngestError) as raised:
        stage(contracts["population"], [path], settings)
    return raised.value


def test_empty_file(tmp_path, contracts, settings):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    error = _stage_error(contracts, settings, path)
    assert error.file.endswith("empty.csv") and "empty" in error.reason


def test_header_without_rows(tmp_path, contracts, settings):
    path = write_delivery(contracts["population"], [], tmp_path / "header.csv")
    error = _stage_error(contracts, settings, path)
    assert "no data rows" in error.reason


def test_missing_required_columns_are_named(tmp_path, contracts, settings):
    path = tmp_path / "cols.csv"
    path.write_text("公民身份号码,姓名\n33010619900101123X,张三\n", encoding="utf-8")
    error = _stage_error(contracts, settings, path)
    assert "性别 (sex)" in str(error) and "出生日期 (birth_date)" in str(error)
    assert "cols.csv" in str(error)


def test_broken_workbook(tmp_path, contracts, settings):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 this is not really a workbook")
    error = _stage_error(contracts, settings, path)
    assert error.file.endswith("broken.xlsx")


def test_wrong_encoding_names_the_row(tmp_path, contracts, settings):
    rows = population_rows(30)
    path = write_delivery(contracts["population"], rows, tmp_path / "enc.csv", "gbk")
    data = path.read_bytes().split(b"\n")
    data[20] = data[20] + b"\xff\xfe\xff"  # bytes no Chinese encoding allows
    path.write_bytes(b"\n".join(data))
    error = _stage_error(contracts, settings, path)
    assert error.file.endswith("enc.csv")
    assert error.row == 20


def test_ragged_row_names_the_row(tmp_path, contracts, settings):
    rows = population_rows(10)
    path = write_delivery(contracts["population"], rows, tmp_path / "ragged.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[6] += ",extra,columns"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    error = _stage_error(contracts, settings, path)
    assert error.row == 6
    assert "row 6" in str(error) and "Expected Number of Columns" in str(error)
    # The reason goes to the run record, the audit log and notifications: it names the row,
    # never quotes its values (names, identity numbers).
    for value in (rows[5]["id_number"], rows[5]["name"], rows[5]["address"]):
        assert value not in str(error)


def _latin_header_delivery(contracts, path, encoding: str, rows):
    """A delivery whose header row is the items' names (ASCII), its rows in ``encoding``."""
    population = contracts["population"]
    header = ",".join(item.name for item in population.items) + "\n"
    body = "".join(
        ",".join(row.get(item.name, "") for item in population.items) + "\n" for row in rows
    )
    path.write_bytes(header.encode("ascii") + body.encode(encoding))
    return path


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8"])
def test_latin_header_over_chinese_rows_reads_in_their_encoding(
    tmp_path, contracts, settings, encoding
):
    """The header alone cannot tell GBK from UTF-8: rows DuckDB refuses as UTF-8 are read
    again as GB18030, and the names come out as the department wrote them."""
    from catalog.ingest.staging import open_staging

    rows = population_rows(40)
    path = _latin_header_delivery(contracts, tmp_path / "latin.csv", encoding, rows)
    report = stage(contracts["population"], [path], settings, run_id="latin")
    con = open_staging(settings, "population", "latin")
    try:
        names = [r[0] for r in con.execute("SELECT name FROM staging ORDER BY _row").fetchall()]
    finally:
        con.close()
    assert report.rows_read == 40
    assert names == [row["name"] for row in rows]


@pytest.mark.parametrize(
    ("header", "encoding"),
    [("latin", "utf-8"), ("latin", "gbk"), ("chinese", "utf-8"), ("chinese", "gbk")],
)
def test_bad_bytes_deep_in_a_file_name_their_row(tmp_path, contracts, settings, header, encoding):
    """The file is in the encoding that reads furthest; the damage is where that one stops,
    whatever the header's encoding suggested, and no bytes of the value are quoted."""
    rows = population_rows(30)
    path = tmp_path / "late.csv"
    if header == "latin":
        _latin_header_delivery(contracts, path, encoding, rows)
    else:
        write_delivery(contracts["population"], rows, path, encoding)
    data = path.read_bytes().split(b"\n")
    data[25] = data[25] + b"\xff\xfe\xff"  # valid in neither UTF-8 nor GB18030
    path.write_bytes(b"\n".join(data))
    error = _stage_error(contracts, settings, path)
    assert error.file.endswith("late.csv")
    assert error.row == 25
    assert "\\x" not in str(error)


def test_an_unterminated_quote_is_named_not_quoted(tmp_path, contracts, settings):
    rows = population_rows(10)
    path = write_delivery(contracts["population"], rows, tmp_path / "quote.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[5] = '"' + lines[5]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    error = _stage_error(contracts, settings, path)
    assert "unterminated quote" in str(error)
    for row in rows[4:]:
        for value in (row["id_number"], row["name"], row["address"], row["phone"]):
            assert value not in str(error)
