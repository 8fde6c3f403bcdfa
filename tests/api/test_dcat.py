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
