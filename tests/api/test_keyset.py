"""Keyset paging of rows (`after=` and `next`), issue 9: pages by key and by offset return the
same rows in the same order, a walk stays on its version, and a bad cursor is a 422 naming it.
"""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from catalog.ingest.delivery import run_ingest
from catalog.store.lake import Lake
from tests.conftest import approve_request, bearer, population_rows, seed_identities, write_delivery

ROWS = 45
LONE_SURROGATE = chr(0xD800)  # JSON can carry it ("\\ud800"), UTF-8 cannot


@pytest.fixture
def walk(tmp_path, settings, contracts):
    """population published once (45 rows); consumer_a granted three items (the identity
    number, the key, then a pseudonym); the provider reads its own rows in clear."""
    population = contracts["population"]
    lake = Lake(settings)
    run_ingest(
        population, [write_delivery(population, population_rows(ROWS), tmp_path / "a.csv")], lake
    )
    lake.close()
    tokens = seed_identities(settings, contracts)
    with TestClient(create_app(settings)) as client:
        approve_request(
            client,
            tokens,
            {
                "dataset": "population",
                "items": ["id_number", "name", "status"],
                "purpose": "分页测试",
                "legal_basis": "测试",
                "period_start": "2026-01-01",
                "period_end": "2030-12-31",
            },
        )
        yield client, tokens


def _keyset_walk(client, headers, limit: int, first: str | None = None) -> list[dict]:
    pages, url = [], first or f"/datasets/population/rows?limit={limit}"
    while url:
        page = client.get(url, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        pages.append(body)
        url = body["next_url"]
    return pages


def _offset_rows(client, headers, limit: int) -> list[dict]:
    rows, offset = [], 0
    while True:
        body = client.get(
            f"/datasets/population/rows?limit={limit}&offset={offset}", headers=headers
        ).json()
        rows += body["rows"]
        if len(body["rows"]) < limit:
            return rows
        offset += limit


@pytest.mark.parametrize("reader", ["consumer_a", "population_provider"])
def test_pages_by_key_and_by_offset_are_the_same_rows_in_the_same_order(walk, reader):
    client, tokens = walk
    headers = bearer(tokens[reader])
    pages = _keyset_walk(client, headers, limit=10)
    by_key = [row for page in pages for row in page["rows"]]
    assert by_key == _offset_rows(client, headers, limit=10)
    assert len(by_key) == ROWS
    assert [len(p["rows"]) for p in pages] == [10, 10, 10, 10, 5]
    assert pages[-1]["next"] is None


def test_a_walk_stays_on_its_version_while_a_new_one_is_published(
    walk, tmp_path, settings, contracts
):
    client, tokens = walk
    headers = bearer(tokens["consumer_a"])
    first = client.get("/datasets/population/rows?limit=20", headers=headers).json()
    assert first["version"] == 1
    population = contracts["population"]
    more = write_delivery(population, population_rows(8, seed=7), tmp_path / "b.csv")
    assert run_ingest(population, [more], Lake(settings)).version.version == 2

    rest = _keyset_walk(client, headers, limit=20, first=first["next_url"])
    assert {page["version"] for page in rest} == {1}
    walked = first["rows"] + [row for page in rest for row in page["rows"]]
    assert len(walked) == ROWS == len({row["id_number"] for row in walked})
    fresh = client.get("/datasets/population/rows?limit=20", headers=headers).json()
    assert (fresh["version"], fresh["total"]) == (2, ROWS + 8)


def _cursor(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("after=not-a-cursor", "after"),
        (f"after={_cursor([1, 2])}", "after"),
        (f"after={_cursor({'v': True, 'o': 10})}", "after"),
        (f"after={_cursor({'v': 2**60, 'o': 10})}", "after"),
        (f"after={_cursor({'v': 1, 'o': -1})}", "after"),
        (f"after={_cursor({'v': 1, 'o': 10, 'a': ['x']})}", "after"),
        (f"after={_cursor({'v': 1, 'a': [{'nested': 1}]})}", "after"),
        (f"after={_cursor({'v': 1, 'a': [2**128]})}", "after"),
        ("after=" + _cursor({"v": 1, "a": [LONE_SURROGATE]}), "after"),
        ("after=" + _cursor({"v": 1, "a": ["\x00"]}), "after"),  # DuckLake's SQL ends at NUL
        (f"after={_cursor({'v': 1, 'o': 10})}&version=2", "version"),
        (f"after={_cursor({'v': 1, 'o': 10})}&offset=5", "offset"),
        ("after=" + "A" * 1001, "after"),
    ],
)
@pytest.mark.parametrize("reader", ["consumer_a", "population_provider"])
def test_a_bad_cursor_is_a_422_naming_the_parameter(walk, query, field, reader):
    client, tokens = walk
    answer = client.get(f"/datasets/population/rows?{query}", headers=bearer(tokens[reader]))
    assert answer.status_code == 422, answer.text
    assert ["query", field] in [error["loc"] for error in answer.json()["detail"]]


def _decoded(cursor: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def test_a_cursor_carries_the_key_only_where_the_page_shows_it(walk):
    """A grant that leaves the identity number out (or shows it as a pseudonym) gets cursors
    holding a row number of the version, never the number nor a pseudonym of it; key bounds
    are refused there (they would let a caller search for the hidden values)."""
    client, tokens = walk
    narrowed = approve_request(
        client,
        tokens,
        {
            "dataset": "population",
            "items": ["name", "status"],
            "purpose": "分页测试",
            "legal_basis": "测试",
            "period_start": "2026-01-01",
            "period_end": "2030-12-31",
        },
        requester="consumer_b",
    )
    assert narrowed["status"] == "approved"
    for reader in ("consumer_a", "consumer_b"):
        headers = bearer(tokens[reader])
        pages = _keyset_walk(client, headers, limit=10)
        assert [row for page in pages for row in page["rows"]] == _offset_rows(client, headers, 10)
        for page in pages[:-1]:
            assert set(_decoded(page["next"])) == {"v", "o"}
        forged = _cursor({"v": 1, "a": ["330106"]})
        refused = client.get(f"/datasets/population/rows?after={forged}", headers=headers)
        assert refused.status_code == 422
    provider = bearer(tokens["population_provider"])
    first = client.get("/datasets/population/rows?limit=10", headers=provider).json()
    assert _decoded(first["next"])["a"] == [first["rows"][-1]["id_number"]]
