"""Synthetic department drops: formats, determinism, defect rates, cross-references, memory.

Defects are recounted from the written files with python-stdnum and the regions table, never
taken from the generator's report alone; the readers here are deliberately independent of the
pipeline's (csv, openpyxl, json only).
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from zipfile import ZipFile

import openpyxl
import pytest
from stdnum.cn import ric, uscc

from catalog.contracts import Contract
from catalog.regions import regions
from catalog.samples import DEFECT_KINDS, MAX_DEFECT_RATE, SampleReport, generate
from catalog.settings import REPO_ROOT

ROWS = 2000
RATE = 0.02
TABLES = ("population", "legal_persons", "licences", "credit_records")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
Row = dict[str, str]


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleReport]:
    out = tmp_path_factory.mktemp("drop")
    return out, generate(out, rows=ROWS, seed=7, defect_rate=RATE)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleReport]:
    out = tmp_path_factory.mktemp("clean")
    return out, generate(out, rows=ROWS, seed=3, defect_rate=0)


# --------------------------------------------------------------------------- reading


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value)


def _raw_records(path: Path) -> list[dict[str, str]]:
    """Rows keyed by the file's own headers, every value as text ("" when missing)."""
    if path.suffix == ".csv":
        data = path.read_bytes()
        text = data.decode("utf-8-sig") if data.startswith(b"\xef\xbb\xbf") else data.decode("gbk")
        return list(csv.DictReader(io.StringIO(text, newline="")))
    if path.suffix == ".xlsx":
        book = openpyxl.load_workbook(path, read_only=True)
        header, *rows = book.worksheets[0].iter_rows(values_only=True)
        padding = (None,) * len(header)  # trailing empty cells are not stored
        return [
            dict(zip(header, map(_cell_text, (r + padding)[: len(header)]), strict=True))
            for r in rows
        ]
    lines = path.read_text(encoding="utf-8").splitlines()
    return [{k: _cell_text(v) for k, v in json.loads(line).items()} for line in lines]


def read_table(contract: Contract, path: Path) -> list[Row]:
    """Rows keyed by data item name, mapping headers through the contract."""
    return [{contract.header_map[h]: v for h, v in record.items()} for record in _raw_records(path)]


def table(out: Path, report: SampleReport, contract: Contract) -> list[Row]:
    (file,) = report.datasets[contract.dataset].files
    return read_table(contract, out / file)


# --------------------------------------------------------------------------- checking values


def half_width(value: str) -> str:
    return unicodedata.normalize("NFKC", value)


def is_full_width(value: str) -> bool:
    """Full-width digits or Latin letters (full-width brackets in Chinese text are normal)."""
    return any(
        half_width(c).isascii() and half_width(c).isalnum() and not c.isascii() for c in value
    )


def canonical_id(value: str) -> str:
    return half_width(value).strip().upper()


def ric_ok(value: str) -> bool:
    """Check character per python-stdnum (it computes over the 18 characters)."""
    return bool(re.fullmatch(r"\d{17}[\dX]", value)) and ric.calc_check_digit(value) == value[-1]


def id_ok(value: str, fmt: str | None) -> bool:
    value = canonical_id(value)
    if fmt == "resident_id":
        return ric_ok(value)
    if fmt == "uscc":
        return uscc.is_valid(value)
    return ric_ok(value) or uscc.is_valid(value)


def parse_date(value: str) -> date | None:
    for fmt in ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y年%m月%d日"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


def id_birth(value: str) -> date:
    return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))


def recount(contract: Contract, rows: list[Row]) -> dict[str, int]:
    """Defects per kind, found in the data alone with stdnum and the regions table."""
    items = contract.items
    ids = [i for i in items if i.format in ("resident_id", "uscc", "subject_id")]
    dates = [i.name for i in items if i.type == "date"]
    regional = [i.name for i in items if i.format == "region_code"]
    sex = next((i for i in items if i.agrees_with and i.agrees_with.part == "sex"), None)
    birth = next((i for i in items if i.agrees_with and i.agrees_with.part == "birth_date"), None)
    counts: Counter[str] = Counter()
    seen: set[tuple[str, ...]] = set()
    for row in rows:
        key = tuple(canonical_id(row[k]) for k in contract.key)
        counts["duplicate_key"] += key in seen
        seen.add(key)
        counts["empty_required"] += any(not row[n] for n in contract.required_items)
        counts["full_width"] += any(is_full_width(v) for v in row.values())
        counts["lower_x"] += any(row[i.name].endswith("x") for i in ids)
        counts["mixed_dates"] += any(row[n] and not ISO_DATE.fullmatch(row[n]) for n in dates)
        counts["unknown_region"] += any(row[n] and row[n] not in regions() for n in regional)
        counts["bad_check_char"] += any(
            row[i.name] and not id_ok(row[i.name], i.format) for i in ids
        )
        if sex and birth:
            person = canonical_id(row[sex.agrees_with.field])
            if ric_ok(person) and row[sex.name]:
                counts["sex_mismatch"] += row[sex.name] != ("男" if int(person[16]) % 2 else "女")
            if ric_ok(person) and row[birth.name]:
                counts["birth_mismatch"] += parse_date(row[birth.name]) != id_birth(person)
    return {kind: counts[kind] for kind in DEFECT_KINDS}


# --------------------------------------------------------------------------- tests


def test_same_arguments_give_the_same_bytes(drop: tuple[Path, SampleReport], tmp_path: Path):
    out, report = drop
    calls: list[tuple[str, int, int]] = []
    again = generate(
        tmp_path, rows=ROWS, seed=7, defect_rate=RATE, progress=lambda *a: calls.append(a)
    )
    assert again == report
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert [f.suffix for f in files].count(".xlsx") == 1
    for file in files:  # CSV, JSONL, GeoJSON, manifest and the workbook alike
        assert (tmp_path / file).read_bytes() == (out / file).read_bytes(), file
    finished = {name: (done, total) for name, done, total in calls}
    assert finished == {name: (s.rows, s.rows) for name, s in report.datasets.items()}


def test_another_seed_gives_other_data(drop: tuple[Path, SampleReport], tmp_path: Path):
    out, _ = drop
    generate(tmp_path, rows=ROWS, seed=8, defect_rate=RATE)
    file = "population/population.csv"
    assert (tmp_path / file).read_bytes() != (out / file).read_bytes()


def test_writing_one_dataset_gives_the_same_file(drop: tuple[Path, SampleReport], tmp_path: Path):
    out, report = drop
    only = generate(tmp_path, rows=ROWS, seed=7, defect_rate=RATE, datasets=["licences"])
    assert only.datasets == {"licences": report.datasets["licences"]}
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.*"))
    assert written == ["licences/licences.xlsx", "manifest.json"]
    file = "licences/licences.xlsx"
    assert (tmp_path / file).read_bytes() == (out / file).read_bytes()


def test_manifest_matches_report_and_files(drop: tuple[Path, SampleReport]):
    out, report = drop
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest == json.loads(json.dumps(report.to_dict()))
    sizes = {"population": ROWS, "legal_persons": ROWS // 10, "licences": ROWS // 10}
    for name, expected in {**sizes, "credit_records": ROWS // 20}.items():
        assert report.datasets[name].rows == expected
    for sample in report.datasets.values():
        assert all((out / f).is_file() for f in sample.files)


def test_population_is_gbk_without_bom_and_crlf(drop: tuple[Path, SampleReport]):
    out, _ = drop
    data = (out / "population/population.csv").read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    text = data.decode("gbk")
    assert text.count("\r\n") == ROWS + 1


def test_legal_persons_is_utf8_with_bom(drop: tuple[Path, SampleReport]):
    out, _ = drop
    data = (out / "legal_persons/legal_persons.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    data.decode("utf-8")


@pytest.mark.parametrize("name", ["population", "legal_persons", "licences"])
def test_headers_follow_the_contract(drop: tuple[Path, SampleReport], contracts, name: str):
    out, report = drop
    contract = contracts[name]
    headers = list(_raw_records(out / report.datasets[name].files[0])[0])
    assert len(headers) == len(contract.items)
    for header, item in zip(headers, contract.items, strict=True):
        assert header in item.source_headers
    assert any(h != item.label for h, item in zip(headers, contract.items, strict=True))


@pytest.mark.parametrize("name", TABLES)
def test_defects_recounted_from_the_files(drop: tuple[Path, SampleReport], contracts, name: str):
    out, report = drop
    contract = contracts[name]
    rows = table(out, report, contract)
    found = recount(contract, rows)
    injected = report.datasets[name].defects
    assert {k: v for k, v in found.items() if v} == {k: v for k, v in injected.items() if v}
    target = RATE * len(rows)
    for kind, count in injected.items():
        if kind == "lower_x":  # limited by how many numbers happen to end in X
            assert 0 < count <= target
        else:
            assert count == pytest.approx(target, abs=max(1, 0.25 * target)), kind


def test_population_hits_every_defect_kind(drop: tuple[Path, SampleReport]):
    _, report = drop
    assert set(report.datasets["population"].defects) == set(DEFECT_KINDS)
    assert min(report.datasets["population"].defects.values()) == RATE * ROWS
    assert report.datasets["geography"].defects == {}


@pytest.mark.parametrize("name", TABLES)
def test_no_defects_at_rate_zero(clean: tuple[Path, SampleReport], contracts, name: str):
    out, report = clean
    rows = table(out, report, contracts[name])
    assert set(recount(contracts[name], rows).values()) == {0}
    assert set(report.datasets[name].defects.values()) == {0}


def test_clean_identifiers_are_valid(clean: tuple[Path, SampleReport], contracts):
    out, report = clean
    people = table(out, report, contracts["population"])
    assert all(
        ric_ok(r["id_number"]) and id_birth(r["id_number"]) < date(2025, 6, 30) for r in people
    )
    companies = table(out, report, contracts["legal_persons"])
    assert all(uscc.is_valid(r["uscc"]) and r["uscc"][:2] in ("91", "92", "93") for r in companies)
    assert all(r["uscc"][2:8] in regions() for r in companies)


def _registers(out: Path, report: SampleReport, contracts) -> dict[str, str]:
    """Canonical id → name over the population and legal persons drops."""
    names: dict[str, str] = {}
    for name, key in (("population", "id_number"), ("legal_persons", "uscc")):
        for row in table(out, report, contracts[name]):
            names.setdefault(canonical_id(row[key]), row["name"])
    return names


def test_references_resolve(drop: tuple[Path, SampleReport], contracts):
    out, report = drop
    registers = _registers(out, report, contracts)
    people = {k for k in registers if ric_ok(k)}
    checked = 0
    for name, id_item, name_item in (
        ("legal_persons", "legal_rep_id", "legal_rep_name"),
        ("licences", "holder_id", "holder_name"),
        ("credit_records", "subject_id", "subject_name"),
    ):
        for row in table(out, report, contracts[name]):
            ref = canonical_id(row[id_item])
            if not id_ok(ref, "subject_id"):
                continue  # an injected defect: blank or a wrong check character
            assert ref in registers, (name, ref)
            assert row[name_item] in ("", registers[ref]), (name, ref)
            checked += 1
    assert checked > 0.9 * (ROWS // 10 * 2 + ROWS // 20)
    holders = [canonical_id(r["holder_id"]) for r in table(out, report, contracts["licences"])]
    assert 0.1 < sum(h in people for h in holders) / len(holders) < 0.35


def test_population_looks_real(clean: tuple[Path, SampleReport], contracts):
    out, report = clean
    rows = table(out, report, contracts["population"])
    assert len({r["id_number"] for r in rows}) == ROWS
    assert all(re.fullmatch(r"[\u4e00-\u9fff]{2,4}", r["name"]) for r in rows)
    assert all(re.fullmatch(r"1[3-9]\d{9}", r["phone"]) for r in rows if r["phone"])
    assert Counter(r["status"] for r in rows)["正常"] > 0.85 * ROWS
    assert sum(r["region_code"].startswith("33") for r in rows) > 0.7 * ROWS
    assert 0.4 < sum(r["sex"] == "男" for r in rows) / ROWS < 0.6
    assert all(r["updated_at"] > r["birth_date"] for r in rows)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r["updated_at"]) for r in rows)


def test_licences_workbook(clean: tuple[Path, SampleReport], contracts):
    out, report = clean
    contract = contracts["licences"]
    path = out / report.datasets["licences"].files[0]
    with ZipFile(path) as archive:  # nothing clock-dependent, so reruns match byte for byte
        assert {i.date_time for i in archive.infolist()} == {(2025, 6, 30, 8, 0, 0)}
        assert b"2025-06-30T08:00:00Z</dcterms:modified>" in archive.read("docProps/core.xml")
    book = openpyxl.load_workbook(path, read_only=True)
    assert len(book.worksheets) == 1
    first = next(book.worksheets[0].iter_rows(min_row=2, max_row=2, values_only=True))
    assert isinstance(first[[i.name for i in contract.items].index("issue_date")], datetime)
    pattern = re.compile(contract.item("licence_no").pattern or "")
    for row in read_table(contract, path):
        assert pattern.fullmatch(row["licence_no"])
        assert row["valid_until"] >= row["issue_date"]
        assert (
            row["status"] == "有效" or row["status"] == "撤销" or row["valid_until"] < "2025-06-30"
        )


def test_credit_records_jsonl(clean: tuple[Path, SampleReport], contracts):
    out, report = clean
    contract = contracts["credit_records"]
    lines = (out / report.datasets["credit_records"].files[0]).read_text("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert all(list(r) == [i.label for i in contract.items] for r in records)
    pattern = re.compile(contract.item("record_id").pattern or "")
    assert all(pattern.fullmatch(r["记录编号"]) for r in records)
    assert all(r["有效期至"] is None or r["有效期至"] >= r["认定日期"] for r in records)


def test_geography_covers_zhejiang(drop: tuple[Path, SampleReport], contracts):
    out, report = drop
    contract = contracts["geography"]
    document = json.loads((out / report.datasets["geography"].files[0]).read_text("utf-8"))
    features = document["features"]
    zhejiang = {code: r for code, r in regions().items() if code.startswith("33")}
    labels = [i.label for i in contract.items if i.name != contract.source.geometry_field]
    assert document["type"] == "FeatureCollection"
    assert sorted(f["properties"]["行政区划代码"] for f in features) == sorted(zhejiang)
    for feature in features:
        props = feature["properties"]
        assert list(props) == labels
        region = zhejiang[props["行政区划代码"]]
        if region.longitude is None:
            assert feature["geometry"] is None and props["中心点经度"] is None
            continue
        (ring,) = feature["geometry"]["coordinates"]
        assert ring[0] == ring[-1] and len(ring) == 5
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        assert min(xs) < region.longitude < max(xs) and min(ys) < region.latitude < max(ys)
    assert sum(f["geometry"] is None for f in features) > 0


def test_rejects_impossible_arguments(tmp_path: Path):
    with pytest.raises(ValueError, match="defect_rate"):
        generate(tmp_path, rows=100, defect_rate=MAX_DEFECT_RATE + 0.01)
    with pytest.raises(ValueError, match="rows"):
        generate(tmp_path, rows=0)
    with pytest.raises(ValueError, match="unknown datasets"):
        generate(tmp_path, rows=100, datasets=["people"])


MEMORY_PROBE = """
import resource, sys, tempfile
from pathlib import Path
from catalog.samples import generate
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with tempfile.TemporaryDirectory() as out:
    generate(Path(out), rows=int(sys.argv[1]), seed=1, datasets=["population"])
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.e2e
def test_peak_memory_does_not_grow_with_rows():
    """Peak RSS growth (MB) of fresh processes, run side by side: 300k population rows
    (three chunks) must need about what 100k rows (one chunk) need."""
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", MEMORY_PROBE, str(rows)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for rows in (100_000, 300_000)
    ]
    small, large = (int(run.communicate(timeout=300)[0].split()[-1]) for run in runs)
    assert all(run.returncode == 0 for run in runs)
    assert large < 400
    assert large - small < 40, (small, large)
