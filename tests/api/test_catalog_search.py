"""Catalog search in Chinese and English (issue 11 §3): the dataset a word names comes
first, facets count what the query and the other facets select, filters, sorts and pages
agree with each other. Relevance expectations are the issue's own cases."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import world_settings


@pytest.fixture(scope="module")
def client(world, tmp_path_factory):
    with TestClient(create_app(world_settings(world, tmp_path_factory.mktemp("s")))) as client:
        yield client


def _search(client, **params) -> dict:
    answer = client.get("/catalog/search", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("人口", "population"),  # a word inside a name (人口基础信息)
        ("身份证", "population"),  # a keyword
        ("身份证号", "population"),  # not 身份 and 证号, which others have
        ("户口", "population"),  # everyday word for 户籍
        ("地图", "geography"),
        ("map", "geography"),
        ("ＧＥＯＧＲＡＰＨＹ", "geography"),  # full-width letters, as a Chinese keyboard types
        ("营业执照", "licences"),  # everyday word for the catalog's 证照
        ("行政许可", "licences"),
        ("红名单", "credit_records"),
        ("统一社会信用代码", "legal_persons"),
        ("行政区划", "geography"),
        ("licences", "licences"),  # English, stemmed: licences → licence
        ("licence", "licences"),
        ("license", "licences"),  # American spelling
        ("population register", "population"),
        ("blacklists", "credit_records"),
        ("companies", "legal_persons"),
    ],
)
def test_the_dataset_a_word_names_comes_first(client, query, first):
    results = _search(client, q=query)["results"]
    assert results and results[0]["dataset"] == first, [r["dataset"] for r in results]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)


@pytest.mark.parametrize("query", ["火星探测", "🙂", "!@#$", "\u200b", "the", "and or not"])
def test_a_query_without_a_matching_word_finds_nothing(client, query):
    page = _search(client, q=query)
    assert page["total"] == 0 and page["results"] == []


def test_facets_count_what_the_other_filters_select(client):
    everything = _search(client)
    assert everything["total"] == 5
    for name, counts in everything["facets"].items():
        assert sum(counts.values()) == 5, name  # every dataset has one value per facet
    conditional = _search(client, sharing_type="conditional")
    assert {r["sharing_type"] for r in conditional["results"]} == {"conditional"}
    assert conditional["total"] == everything["facets"]["sharing_type"]["conditional"]
    # The facet filtered on keeps its other values' counts (drill-down); the others narrow.
    assert conditional["facets"]["sharing_type"] == everything["facets"]["sharing_type"]
    assert sum(conditional["facets"]["update_cycle"].values()) == conditional["total"]
    both = _search(client, sharing_type="conditional", update_cycle="daily")
    assert all(r["update_cycle"] == "daily" for r in both["results"])
    assert both["total"] == conditional["facets"]["update_cycle"].get("daily", 0)
    bands = everything["facets"]["quality_band"]
    assert set(bands) <= {"A", "B", "C", "D", "none"}
    for band, count in bands.items():
        assert _search(client, quality_band=band)["total"] == count


def test_sorts_and_pages_agree(client):
    by_name = _search(client, sort="name", limit=100)["results"]
    names = [r["name"] for r in by_name]
    assert names == sorted(names)
    paged = [
        r["dataset"]
        for o in range(0, 5, 2)
        for r in _search(client, sort="name", limit=2, offset=o)["results"]
    ]
    assert paged == [r["dataset"] for r in by_name]
    updated = _search(client, sort="updated")["results"]
    times = [r["published_at"] for r in updated]
    assert times == sorted(times, reverse=True)


@pytest.mark.parametrize(
    "query",
    [
        "sharing_type=public",
        "quality_band=E",
        "sort=score",
        "limit=0",
        "limit=101",
        "offset=-1",
        "colour=red",
    ],
)
def test_bad_parameters_are_422_naming_them(client, query):
    answer = client.get(f"/catalog/search?{query}")
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][-1] == query.split("=")[0]
