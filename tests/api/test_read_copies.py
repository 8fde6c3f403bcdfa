"""Read-optimised copies, sorts and item filters (issue 9, decision 50): a page read from a
version's copy is the page the lake gives, in every order and view; sorts and filters take
only items the scope shows in clear, and never widen the grant's row filter."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from catalog.ingest.delivery import run_ingest
from catalog.sharing.reads import key_order_copy
from catalog.store.copies import ASKS_BEFORE_BUILD
from catalog.store.lake import Lake
from tests.conftest import approve_request, bearer, population_rows, seed_identities, write_delivery

ROWS = 5000  # a filtered view spans many strides of the copies' marks
GRANTED_REGIONS = ["330102", "330105"]
SOURCE = population_rows(ROWS, seed=5)


@pytest.fixture(scope="module")
def apps(tmp_path_factory, contracts):
    """population published once; consumer_a granted five items (the identity number masked)
    in two regions. One API reads the lake only, one reads copies once built."""
    from catalog.settings import Settings

    root = tmp_path_factory.mktemp("copies")
    settings = Settings(home=root / "runtime")
    population = contracts["population"]
    lake = Lake(settings)
    run_ingest(population, [write_delivery(population, SOURCE, root / "a.csv")], lake)
    lake.close()
    tokens = seed_identities(settings, contracts)
    lake_only = settings.model_copy(update={"read_copies_mb": 0})
    with TestClient(create_app(lake_only)) as plain, TestClient(create_app(settings)) as copied:
        approve_request(
            plain,
            tokens,
            {
                "dataset": "population",
                "items": ["id_number", "name", "birth_date", "region_code", "status"],
                "row_filter": [{"item": "region_code", "op": "in", "values": GRANTED_REGIONS}],
                "purpose": "副本测试",
                "legal_basis": "测试",
                "period_start": "2026-01-01",
                "period_end": "2030-12-31",
            },
        )
        yield plain, copied, tokens


def _by_offset(client, headers, query: str, limit: int) -> list[dict]:
    rows, offset = [], 0
    while True:
        url = f"/datasets/population/rows?limit={limit}&offset={offset}&{query}"
        page = client.get(url, headers=headers)
        assert page.status_code == 200, page.text
        rows += page.json()["rows"]
        if len(page.json()["rows"]) < limit:
            return rows
        offset += limit


def _by_cursor(client, headers, query: str, limit: int) -> list[dict]:
    rows, url = [], f"/datasets/population/rows?limit={limit}&{query}"
    while url:
        page = client.get(url, headers=headers)
        assert page.status_code == 200, page.text
        rows += page.json()["rows"]
        url = page.json()["next_url"]
    return rows


def _walks(client, headers, query: str) -> list[list[dict]]:
    return [_by_offset(client, headers, query, 700), _by_cursor(client, headers, query, 130)]


VIEWS = [
    "",
    "sort=-birth_date",
    "region_code=330105",
    "sort=birth_date,-region_code&region_code=330105&region_code=330102",
]


@pytest.mark.parametrize("query", VIEWS)
@pytest.mark.parametrize("reader", ["population_provider", "consumer_a"])
def test_pages_from_a_copy_are_the_lakes_pages(apps, reader, query):
    plain, copied, tokens = apps
    headers = bearer(tokens[reader])
    from_lake = _walks(plain, headers, query)
    state = copied.app.state.govshare
    for _ in range(ASKS_BEFORE_BUILD):  # an order asked for again gets its copy
        copied.get(f"/datasets/population/rows?limit=1&{query}", headers=headers)
    state.copies.wait()
    assert not state.copies.failures
    served = state.copies.pages_served
    from_copy = _walks(copied, headers, query)

    # A sort on several items reads the lake (no copy per combination: decision 50).
    several = "," in dict(_pairs(query)).get("sort", "")
    assert (state.copies.pages_served > served) is not several
    assert plain.app.state.govshare.copies.pages_served == 0
    assert from_lake[0] == from_lake[1] == from_copy[0] == from_copy[1]
    _check_view(from_copy[0], reader, query)


def _check_view(rows: list[dict], reader: str, query: str) -> None:
    """The rows are the source rows the reader may see in the view, in its order."""
    regions = [v for k, v in _pairs(query) if k == "region_code"] or None
    allowed = GRANTED_REGIONS if reader == "consumer_a" else None
    expected = [
        r
        for r in SOURCE
        if (regions is None or r["region_code"] in regions)
        and (allowed is None or r["region_code"] in allowed)
    ]
    assert len(rows) == len(expected) > 1000
    sort = dict(_pairs(query)).get("sort")
    if reader == "population_provider":
        by_key = sorted(expected, key=lambda r: r["id_number"])
        if sort == "-birth_date":
            by_key.sort(key=lambda r: r["birth_date"], reverse=True)  # stable: key order ties
        if sort is None:
            assert [r["id_number"] for r in rows] == [r["id_number"] for r in by_key]
        if sort == "-birth_date":
            assert [r["id_number"] for r in rows] == [r["id_number"] for r in by_key]
    else:  # the identity number masked: not its order, and never in clear
        assert all(r["id_number"] not in {s["id_number"] for s in SOURCE} for r in rows[:50])
        assert {r["region_code"] for r in rows} <= set(GRANTED_REGIONS)
    if sort == "-birth_date":
        assert [r["birth_date"] for r in rows] == sorted(
            (r["birth_date"] for r in rows), reverse=True
        )
    if sort and sort.startswith("birth_date,"):
        pairs = [(r["birth_date"], r["region_code"]) for r in rows]
        assert pairs == sorted(pairs, key=lambda p: (p[0], -int(p[1])))


def _pairs(query: str) -> list[tuple[str, str]]:
    return [tuple(part.split("=", 1)) for part in query.split("&") if part]


def test_an_item_filter_never_widens_the_grants_row_filter(apps):
    _, copied, tokens = apps
    page = copied.get(
        "/datasets/population/rows?region_code=330106&region_code=330108",
        headers=bearer(tokens["consumer_a"]),
    )
    assert page.status_code == 200, page.text
    assert (page.json()["total"], page.json()["rows"]) == (0, [])


def test_an_offset_past_the_end_is_an_empty_page(apps):
    _, copied, tokens = apps
    headers = bearer(tokens["population_provider"])
    last = copied.get(f"/datasets/population/rows?offset={ROWS - 1}", headers=headers).json()
    past = copied.get(f"/datasets/population/rows?offset={ROWS}", headers=headers).json()
    assert (len(last["rows"]), last["total"], last["next"]) == (1, ROWS, None)
    assert (past["rows"], past["total"]) == ([], ROWS)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "id_number"}, "sort"),  # masked for consumer_a
        ({"sort": "-name"}, "sort"),  # masked
        ({"sort": "phone"}, "sort"),  # not granted
        ({"sort": "birth_date,-birth_date"}, "sort"),
        ({"sort": "birth_date,region_code,status,name"}, "sort"),
        ({"sort": "birth_date,"}, "sort"),
        ({"sort": "no_such_item"}, "sort"),
        ({"id_number": "330106199001010011"}, "id_number"),  # confirming a hidden value
        ({"name": "张伟"}, "name"),
        ({"phone": "13800000000"}, "phone"),
        ({"regoin_code": "330102"}, "regoin_code"),
        ({"birth_date": "2020-13-01"}, "birth_date"),
        ({"birth_date": "20200101"}, "birth_date"),
        ({"region_code": "33\x00"}, "region_code"),
        ({"region_code": "3" * 201}, "region_code"),
    ],
)
def test_sorts_and_filters_outside_the_clear_scope_are_a_422_naming_them(apps, params, field):
    _, copied, tokens = apps
    answer = copied.get(
        f"/datasets/population/rows?{urlencode(params)}", headers=bearer(tokens["consumer_a"])
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][-1] == field


def test_a_cursor_goes_on_only_in_its_own_view(apps):
    _, copied, tokens = apps
    headers = bearer(tokens["population_provider"])
    first = copied.get("/datasets/population/rows?limit=5&sort=-birth_date", headers=headers)
    cursor = first.json()["next"]
    assert "sort=-birth_date" in first.json()["next_url"]
    for other in ("", "&sort=birth_date", "&sort=-birth_date&status=正常"):
        answer = copied.get(f"/datasets/population/rows?after={cursor}{other}", headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["query", "after"]


def _copy_in_use(client, headers) -> list[dict]:
    """The first page, asked until it comes from a copy."""
    state = client.app.state.govshare
    for _ in range(ASKS_BEFORE_BUILD):
        client.get("/datasets/population/rows?limit=50", headers=headers)
    state.copies.wait()
    served = state.copies.pages_served
    page = client.get("/datasets/population/rows?limit=50", headers=headers).json()["rows"]
    assert state.copies.pages_served == served + 1
    return page


def test_a_damaged_copy_is_dropped_and_its_pages_read_from_the_lake(apps):
    plain, copied, tokens = apps
    headers = bearer(tokens["population_provider"])
    expected = _copy_in_use(copied, headers)
    state = copied.app.state.govshare
    version = state.versions().latest("population")
    path = (
        state.settings.folder("copies")
        / key_order_copy(state.contracts["population"], version).name
    )
    with path.open("r+b") as handle:  # cut short under the reader
        handle.truncate(4096)
    page = copied.get("/datasets/population/rows?limit=50", headers=headers)
    assert page.status_code == 200, page.text
    assert page.json()["rows"] == expected
    lake = plain.get("/datasets/population/rows?limit=50", headers=headers).json()["rows"]
    assert lake == expected
    again = _copy_in_use(copied, headers)  # built anew
    assert again == expected


def test_a_copy_file_that_is_not_the_copy_its_name_says_is_refused(apps, tmp_path):
    _, copied, tokens = apps
    headers = bearer(tokens["population_provider"])
    _copy_in_use(copied, headers)
    state = copied.app.state.govshare
    settings = state.settings
    folder = settings.folder("copies")
    version = state.versions().latest("population")
    by_key = folder / key_order_copy(state.contracts["population"], version).name
    for _ in range(ASKS_BEFORE_BUILD):
        copied.get("/datasets/population/rows?limit=5&sort=-birth_date", headers=headers)
    copied.app.state.govshare.copies.wait()
    other = next(p for p in folder.glob("*.duckdb") if p != by_key)
    assert by_key.exists()
    by_key.write_bytes(other.read_bytes())  # a swapped file, found by the next process
    with TestClient(create_app(settings)) as fresh:
        state = fresh.app.state.govshare
        for _ in range(ASKS_BEFORE_BUILD + 1):
            rows = fresh.get("/datasets/population/rows?limit=50", headers=headers).json()
        state.copies.wait()
        assert any("is not the copy its name says" in f for f in state.copies.failures), list(
            state.copies.failures
        )
        expected = sorted(r["id_number"] for r in SOURCE)[:50]
        assert [r["id_number"] for r in rows["rows"]] == expected


def _edit_cursor(url: str, **changes) -> str:
    """``url`` with its cursor's fields changed (as a caller may forge them)."""
    import base64
    import json
    from urllib.parse import parse_qsl, urlencode

    query = dict(parse_qsl(url.split("?", 1)[1]))
    text = query["after"] + "=" * (-len(query["after"]) % 4)
    document = {**json.loads(base64.urlsafe_b64decode(text)), **changes}
    encoded = base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    return url.split("?", 1)[0] + "?" + urlencode({**query, "after": encoded})


def test_a_forged_row_hint_in_a_cursor_changes_nothing(apps):
    """A key cursor read from a key-order copy says where its row lay (``h``), so the next
    page needs no lookup of the key. The hint is checked against the key: pointing it at
    another row, past the end, or anything but a row number gives the true next page or a
    422, never other rows."""
    _, copied, tokens = apps
    headers = bearer(tokens["population_provider"])
    expected = sorted(SOURCE, key=lambda r: r["id_number"])
    first = copied.get("/datasets/population/rows?limit=300&offset=2000", headers=headers)
    state = copied.app.state.govshare
    state.copies.wait()
    first = copied.get("/datasets/population/rows?limit=300&offset=2000", headers=headers)
    following = first.json()["next_url"]
    assert '"h"' in _decoded_cursor(following)  # read from the copy: it carries the hint
    truth = [r["id_number"] for r in expected[2300:2600]]
    for hint in (None, 2299, 17, 2301, 10**9):
        url = following if hint is None else _edit_cursor(following, h=hint)
        page = copied.get(url, headers=headers)
        assert page.status_code == 200, page.text
        assert [r["id_number"] for r in page.json()["rows"]] == truth, hint
    for bad in ("x", -1, 2**60, 1.5):
        refused = copied.get(_edit_cursor(following, h=bad), headers=headers)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == [
            "query",
            "after",
        ]


def _decoded_cursor(url: str) -> str:
    import base64
    from urllib.parse import parse_qsl

    text = dict(parse_qsl(url.split("?", 1)[1]))["after"]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
