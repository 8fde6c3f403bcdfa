"""CKAN's action API, tried with the real ``ckanapi`` client against a live server on
localhost (issue 11 §6): ``ckanapi action`` and ``ckanapi dump datasets --all`` work
unchanged; answers have CKAN's envelope, errors CKAN's error objects and statuses.
``datastore_search`` through ``ckanapi.RemoteCKAN`` (its token in the ``Authorization``
header) reads what the rows API serves the same caller; ground truth from the lake."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from ckanapi import CKANAPIError, NotAuthorized, NotFound, RemoteCKAN, ValidationError

from catalog.contracts import load_contracts
from catalog.settings import Settings
from catalog.store.lake import Lake, published_table
from tests.conftest import (
    approve_request,
    audit_entries,
    bearer,
    seed_identities,
    world_settings,
)

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Live:
    url: str
    tokens: dict[str, str]
    settings: Settings


@pytest.fixture(scope="module")
def live(world, tmp_path_factory):
    """``uvicorn api.main:app`` over the world's lake, with a state database of its own
    holding the test users (``tests.conftest.seed_identities``)."""
    settings = world_settings(world, tmp_path_factory.mktemp("ckan"))
    tokens = seed_identities(settings, load_contracts(settings.schemas_dir))
    port = _free_port()
    env = {
        **os.environ,
        "GOVSHARE_HOME": str(world.home),
        "GOVSHARE_SCHEMAS_DIR": str(world.schemas_dir),
        "GOVSHARE_STATE_DB": settings.state_db,
    }
    command = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield Live(url, tokens, settings)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(live) -> str:
    return live.url


def _ckanapi(*args: str) -> subprocess.CompletedProcess:
    # On PATH, as in an activated environment: ``dump`` starts its workers as ``ckanapi``.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(BIN / "ckanapi"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def test_ckanapi_searches_and_shows(server, contracts):
    found = _ckanapi("action", "package_search", "-r", server, "q=人口", "rows=5")
    assert found.returncode == 0, found.stderr
    result = json.loads(found.stdout)
    assert result["count"] >= 1 and result["results"][0]["name"] == "population"
    shown = _ckanapi("action", "package_show", "-r", server, "id=legal_persons")
    package = json.loads(shown.stdout)
    meta = contracts["legal_persons"].catalog
    assert package["title"] == meta.name and package["notes"] == meta.summary
    assert package["organization"]["title"] == meta.provider.name
    assert {t["name"] for t in package["tags"]} == set(meta.keywords)
    extras = {e["key"]: e["value"] for e in package["extras"]}
    assert extras["resource_code"] == meta.resource_code
    assert extras["sharing_type"] == meta.sharing.type
    listed = json.loads(_ckanapi("action", "package_list", "-r", server).stdout)
    assert listed == sorted(contracts)


def test_ckanapi_dumps_every_dataset(server, contracts, tmp_path):
    out = tmp_path / "datasets.jsonl"
    dumped = _ckanapi("dump", "datasets", "--all", "-r", server, "-O", str(out), "-q")
    assert dumped.returncode == 0, dumped.stderr
    packages = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(p["name"] for p in packages) == sorted(contracts)
    for package in packages:
        assert package["num_resources"] == len(package["resources"]) >= 1


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("package_show?id=nope", 404, "Not Found Error"),
        ("package_search?rows=-1", 409, "Validation Error"),
        ("package_search?rows=x", 409, "Validation Error"),
        ("package_search?rows=true", 409, "Validation Error"),
        ("package_search?rows=1.5", 409, "Validation Error"),
        # CKAN answers a search it cannot parse with 400 "Search Query Error".
        ("package_search?fq=color:red", 400, "Search Query Error"),
        ("package_search?fq=%22unclosed", 400, "Search Query Error"),
        ("package_search?sort=popularity%20desc", 400, "Search Query Error"),
        ("package_search?sort=name%20asc,%20bogus", 400, "Search Query Error"),
        ("package_search?facet.field=%5Bbad", 409, "Validation Error"),
        ("package_show", 409, "Validation Error"),
        ("no_such_action", 400, "Bad request"),
    ],
)
def test_bad_calls_get_ckan_errors(server, path, status, error):
    answer = httpx.get(f"{server}/api/3/action/{path}")
    assert answer.status_code == status
    body = answer.json()
    assert body["success"] is False and body["error"]["__type"] == error
    assert body["help"].endswith(path.split("?")[0])


@pytest.mark.parametrize(
    "body",
    [
        b'{"rows": 1e400}',
        b'{"start": -1e400}',
        b'{"rows": true}',
        b'{"\\ud800": 1}',
        b'{"sort": "name asc, \\ud800"}',
        b'{"q": "\\udfff"}',
        b"[" * 50_000 + b"]" * 50_000,
        b'{"facet.field": "' + b"[" * 3000 + b'"}',
    ],
)
def test_odd_bodies_get_ckan_errors_never_a_500(server, body):
    answer = httpx.post(f"{server}/api/3/action/package_search", content=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["success"] is False


def test_rows_beyond_the_maximum_are_capped_like_ckan(server, contracts):
    result = httpx.get(f"{server}/api/3/action/package_search?rows=5000").json()["result"]
    assert result["count"] == len(contracts) == len(result["results"])


def test_fq_time_ranges_as_harvesters_send_them(server, contracts):
    """Solr ranges on metadata_modified (incremental harvesting): inclusive [ ], exclusive
    { }, open *, NOW; a bound that is no time is CKAN's Search Query Error."""

    def count(fq: str) -> httpx.Response:
        return httpx.get(f"{server}/api/3/action/package_search", params={"fq": fq, "rows": 100})

    everything = count("metadata_modified:[* TO NOW]").json()["result"]
    assert everything["count"] == len(contracts)
    assert count("metadata_modified:[2999-01-01T00:00:00Z TO *]").json()["result"]["count"] == 0
    times = sorted(p["metadata_modified"] for p in everything["results"])
    newest = times[-1]
    assert count(f"metadata_modified:[{newest} TO *]").json()["result"]["count"] == 1 + times[
        :-1
    ].count(newest)
    after = count(f"metadata_modified:{{{newest} TO *]").json()["result"]
    assert after["count"] == 0
    both = count(f"organization:{everything['results'][0]['organization']['name']} "
                 f"metadata_modified:[* TO {newest}]").json()["result"]  # fmt: skip
    assert 1 <= both["count"] < len(contracts) or len(contracts) == 1
    refused = count("metadata_modified:[yesterday TO *]")
    assert refused.status_code == 400
    assert refused.json()["error"]["__type"] == "Search Query Error"


def test_post_and_both_prefixes_answer_alike(server):
    by_get = httpx.get(f"{server}/api/3/action/package_search", params={"q": "licences"})
    by_post = httpx.post(f"{server}/api/action/package_search", json={"q": "licences"})
    assert by_get.json()["result"] == by_post.json()["result"]
    assert by_get.json()["result"]["results"][0]["name"] == "licences"
    faceted = httpx.get(
        f"{server}/api/3/action/package_search",
        params={"fq": "sharing_type:conditional", "facet.field": '["organization","groups"]'},
    ).json()["result"]
    assert all(
        {e["key"]: e["value"] for e in p["extras"]}["sharing_type"] == "conditional"
        for p in faceted["results"]
    )
    counts = faceted["search_facets"]["organization"]["items"]
    assert sum(item["count"] for item in counts) == faceted["count"]
    refused = httpx.post(f"{server}/api/3/action/package_list", content=b"not json")
    assert refused.status_code == 400 and refused.json()["success"] is False
    # An HTML form's POST, as CKAN takes it: the same answer as JSON.
    by_form = httpx.post(f"{server}/api/3/action/package_search", data={"q": "licences"})
    assert by_form.json()["result"] == by_get.json()["result"]
    bad_form = httpx.post(
        f"{server}/api/3/action/package_search",
        content=b"q=%ff%fe",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert bad_form.status_code == 400 and bad_form.json()["success"] is False
    unknown = httpx.post(f"{server}/api/3/action/package_list", data={"nope": "1"})
    assert unknown.status_code == 409 and "nope" in unknown.json()["error"]
    upper = httpx.get(
        f"{server}/api/3/action/package_search",
        params={"fq": f"organization:{counts[0]['name'].upper()}"},
    ).json()["result"]
    assert upper["count"] == counts[0]["count"]  # organization names match in any case
    dumped = _ckanapi("dump", "groups", "--all", "-r", server, "-q")
    assert dumped.returncode == 0, dumped.stderr


# --- datastore_search: rows through CKAN, with the rows API's grants, masks and audit -----

PERIOD = {"period_start": "2026-01-01", "period_end": "2030-12-31"}
# What department A asked for on population, and the office's narrowing (SPEC §6: the
# reviewer may narrow the items and the items in clear, and add a row filter).
ASKED = ["id_number", "name", "sex", "birth_date", "region_code", "phone", "status"]
NARROWED = ["id_number", "name", "region_code", "status"]


@pytest.fixture(scope="module")
def truth(live):
    """Every published row of population and legal persons, as text, straight from the lake."""
    with Lake(live.settings).reader() as con:
        found = {}
        for name in ("population", "legal_persons"):
            cursor = con.execute(f"SELECT * FROM {published_table(name)}")
            columns = [c[0] for c in cursor.description]
            found[name] = [
                {k: None if v is None else str(v) for k, v in zip(columns, row, strict=True)}
                for row in cursor.fetchall()
            ]
        return found


def _most_common(rows: list[dict], item: str) -> str:
    values = [r[item] for r in rows if r[item]]
    return max(sorted(set(values)), key=values.count)


@pytest.fixture(scope="module")
def district(truth) -> str:
    return _most_common(truth["population"], "region_code")


@pytest.fixture(scope="module")
def narrowed(live, district) -> dict:
    """Department A's grant on population: asked with phone and the identity number in
    clear, narrowed by the office to four items (the number alone in clear) and one
    district. Department B has no grant."""
    body = {
        "dataset": "population",
        "items": ASKED,
        "unmasked_items": ["id_number", "phone"],
        "purpose": "依法履职核查",
        "legal_basis": "测试依据",
        **PERIOD,
    }
    with httpx.Client(base_url=live.url, timeout=30) as client:
        request = approve_request(
            client,
            live.tokens,
            body,
            items=NARROWED,
            unmasked_items=["id_number"],
            row_filter=[{"item": "region_code", "op": "eq", "values": [district]}],
        )
    return request["grant"]


def _ckan(live: Live, who: str | None = None) -> RemoteCKAN:
    return RemoteCKAN(live.url, apikey=live.tokens[who] if who else None)


def _rows(live: Live, who: str, dataset: str, query: str) -> dict:
    answer = httpx.get(
        f"{live.url}/datasets/{dataset}/rows?{query}", headers=bearer(live.tokens[who])
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize(
    ("dataset", "rows_query", "search"),
    [
        ("population", "limit=50&offset=5",
         {"resource_id": "population-api", "limit": 50, "offset": 5}),
        ("population", "limit=1000", {"resource_id": "population", "limit": 5000}),
        (
            "legal_persons",
            "limit=40&offset=10&sort=region_code,-established_date",
            {"id": "legal_persons-api", "limit": 40, "offset": 10,
             "sort": "region_code asc, established_date desc"},
        ),
        (
            "legal_persons",
            "limit=25&status=存续",
            {"resource_id": "legal_persons-api", "limit": "25", "filters": {"status": "存续"}},
        ),
    ],
)  # fmt: skip
def test_datastore_search_reads_what_the_rows_api_serves(
    live, narrowed, dataset, rows_query, search
):
    for who in ("consumer_a", f"{dataset}_provider"):
        rows = _rows(live, who, dataset, rows_query)
        result = _ckan(live, who).action.datastore_search(**search)
        assert result["records"] == rows["rows"], who  # same rows, same masks, same order
        assert result["total"] == rows["total"] and result["version"] == rows["version"]
        assert result["limit"] == rows["limit"] and result["offset"] == rows["offset"]
        assert result["resource_id"] == f"{dataset}-api"
        fields = [f["id"] for f in result["fields"]]
        assert sorted(fields) == sorted(rows["items"])
        assert all(list(r) == fields for r in result["records"])
        hidden = set(rows["pseudonymised"]) | set(rows["redacted"])
        for field in result["fields"]:  # a masked item is text, whatever its type
            if field["id"] in hidden:
                assert field["type"] == "text"
    legal = _ckan(live, "consumer_a").action.datastore_search(resource_id="legal_persons")
    types = {f["id"]: f["type"] for f in legal["fields"]}
    assert types["registered_capital"] == "numeric" and types["established_date"] == "date"


def test_the_data_resource_is_marked_as_a_datastore(live):
    package = _ckan(live).action.package_show(id="population")
    active = {r["id"]: r["datastore_active"] for r in package["resources"]}
    assert active == {"population-api": True}
    legal = _ckan(live).action.package_show(id="legal_persons")
    assert {r["id"] for r in legal["resources"] if r["datastore_active"]} == {"legal_persons-api"}


def test_datastore_search_needs_a_token_and_a_grant(live, narrowed):
    with pytest.raises(NotAuthorized):  # the public sees metadata only
        _ckan(live).action.datastore_search(resource_id="legal_persons-api")
    with pytest.raises(NotAuthorized):
        RemoteCKAN(live.url, apikey="gs_forged").action.datastore_search(resource_id="population")
    refused = httpx.get(
        f"{live.url}/datasets/population/rows", headers=bearer(live.tokens["consumer_b"])
    )
    assert refused.status_code == 403
    with pytest.raises(NotAuthorized) as denied:  # no grant: the rows API's reason
        _ckan(live, "consumer_b").action.datastore_search(resource_id="population-api")
    assert denied.value.args[0]["message"] == refused.json()["detail"]
    with pytest.raises(NotAuthorized) as office:  # a role that reads no rows
        _ckan(live, "office").action.datastore_search(resource_id="population-api")
    assert "may not do this" in office.value.args[0]["message"]
    with pytest.raises(NotAuthorized):  # another department's data, for a provider
        _ckan(live, "geography_provider").action.datastore_search(resource_id="population-api")
    # Metadata stays public, and a token on it is fine.
    assert _ckan(live, "consumer_b").action.package_show(id="population")["name"] == "population"
    # "Bearer <token>" is taken as well as the bare token CKAN clients send.
    answer = httpx.post(
        f"{live.url}/api/3/action/datastore_search",
        json={"resource_id": "population-api", "limit": 1},
        headers=bearer(live.tokens["consumer_a"]),
    )
    assert answer.status_code == 200 and answer.json()["success"] is True
    # A revoked token is CKAN's 403, as any token that no longer works, and is audited.
    headers = bearer(live.tokens["consumer_a"])
    issued = httpx.post(f"{live.url}/me/tokens", json={"label": "ckan"}, headers=headers).json()
    revoked = httpx.post(f"{live.url}/me/tokens/{issued['id']}/revoke", headers=headers)
    assert revoked.status_code == 200, revoked.text
    with pytest.raises(NotAuthorized) as stale:
        RemoteCKAN(live.url, apikey=issued["token"]).action.datastore_search(
            resource_id="population-api"
        )
    assert "revoked" in stale.value.args[0]["message"]
    refusals = audit_entries(live.settings, action="token.refused", username="consumer_a")
    assert refusals and refusals[0].token_id == issued["id"]


def test_a_narrowed_grant_holds_through_datastore_search(live, narrowed, truth, district):
    result = _ckan(live, "consumer_a").action.datastore_search(
        resource_id="population-api", limit=1000
    )
    records = result["records"]
    in_district = [r for r in truth["population"] if r["region_code"] == district]
    # Rows: exactly those of the grant's district; items: exactly the narrowed ones.
    assert result["total"] == len(records) == len(in_district) > 0
    assert {r["id_number"] for r in records} == {r["id_number"] for r in in_district}
    assert all(set(r) == set(NARROWED) for r in records)
    assert all(r["region_code"] == district for r in records)
    # Names are sensitive and not in clear under the narrowed grant: never a real name.
    real = {r["id_number"]: r["name"] for r in truth["population"]}
    names = {r["name"] for r in truth["population"] if r["name"]}
    shown = [r for r in records if r["name"]]
    assert shown and all(r["name"] != real[r["id_number"]] for r in shown)
    assert all(r["name"] not in names for r in shown)
    types = {f["id"]: f["type"] for f in result["fields"]}
    assert types["name"] == "text" and "phone" not in types
    # Items outside the grant are refused by name, in fields, filters and sort alike.
    client = _ckan(live, "consumer_a")
    for bad in (
        {"fields": ["phone"]},
        {"filters": {"phone": "13800000000"}},
        {"sort": "phone asc"},
        {"filters": {"name": records[0]["name"] or "张*"}},  # masked: no filter on it
        {"sort": "name desc"},
    ):
        with pytest.raises(ValidationError) as refused:
            client.action.datastore_search(resource_id="population-api", **bad)
        assert set(bad) <= set(refused.value.error_dict), bad
    # A filter never widens the grant's row filter.
    elsewhere = _most_common(
        [r for r in truth["population"] if r["region_code"] != district], "region_code"
    )
    outside = client.action.datastore_search(
        resource_id="population-api", filters={"region_code": elsewhere}
    )
    assert outside["total"] == 0 and outside["records"] == []


def test_filters_narrow_like_item_filters(live, narrowed, truth):
    client = _ckan(live, "consumer_a")
    legal = truth["legal_persons"]
    first = _most_common(legal, "region_code")
    second = _most_common([r for r in legal if r["region_code"] != first], "region_code")
    for chosen in ([first], [first, second]):
        search = {"region_code": chosen[0] if len(chosen) == 1 else chosen}
        result = client.action.datastore_search(
            resource_id="legal_persons-api", filters=search, limit=1000
        )
        expected = [r for r in legal if r["region_code"] in chosen]
        assert result["total"] == len(result["records"]) == len(expected) < len(legal)
        assert {r["uscc"] for r in result["records"]} == {r["uscc"] for r in expected}
        query = "&".join(f"region_code={c}" for c in chosen)
        assert (
            result["records"]
            == _rows(live, "consumer_a", "legal_persons", f"limit=1000&{query}")["rows"]
        )
    # Over GET, as CKAN's query strings carry them: filters as JSON, fields as a list.
    answer = httpx.get(
        f"{live.url}/api/3/action/datastore_search",
        params={
            "resource_id": "legal_persons-api",
            "filters": json.dumps({"region_code": first}),
            "fields": "uscc,region_code",
            "include_total": "false",
            "limit": "3",
        },
        headers={"Authorization": live.tokens["consumer_a"]},
    ).json()["result"]
    assert [f["id"] for f in answer["fields"]] == ["uscc", "region_code"]
    assert all(
        list(r) == ["uscc", "region_code"] and r["region_code"] == first for r in answer["records"]
    )
    assert "total" not in answer and len(answer["records"]) == 3
    assert answer["_links"]["next"].endswith("offset=3")


def test_every_datastore_search_is_audited(live, narrowed):
    before = audit_entries(live.settings, action="read", username="analyst_a")
    client = _ckan(live, "analyst_a")
    first = client.action.datastore_search(resource_id="population-api", limit=7)
    second = client.action.datastore_search(resource_id="legal_persons", limit=3, offset=2)
    after = audit_entries(live.settings, action="read", username="analyst_a")
    assert len(after) == len(before) + 2
    newest, older = after[0], after[1]
    assert len(first["records"]) == 7 and (older.dataset, older.row_count) == ("population", 7)
    assert (newest.dataset, newest.row_count, newest.result) == ("legal_persons", 3, "ok")
    assert newest.detail["offset"] == 2 and newest.detail["via"] == "ckan.datastore_search"
    assert older.detail["grant_id"] == narrowed["id"] and older.purpose == "依法履职核查"
    assert second["records"]
    with pytest.raises(NotAuthorized):
        _ckan(live, "analyst_b").action.datastore_search(resource_id="population-api")
    denied = audit_entries(live.settings, action="read", username="analyst_b")
    assert denied and denied[0].result == "denied" and denied[0].dataset == "population"


def test_no_audit_entry_no_records(live):
    """As on the rows API: an entry that cannot be written refuses the read (503)."""
    path = live.settings.state_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as con:
        con.execute(
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_entries "
            "BEGIN SELECT RAISE(ABORT, 'audit store unavailable'); END"
        )
    try:
        with pytest.raises(CKANAPIError) as refused:
            _ckan(live, "consumer_a").action.datastore_search(resource_id="geography-api")
        assert "503" in str(refused.value) and "records" not in str(refused.value)
    finally:
        with sqlite3.connect(path) as con:
            con.execute("DROP TRIGGER audit_down")
    assert _ckan(live, "consumer_a").action.datastore_search(resource_id="geography-api")


@pytest.mark.parametrize(
    ("search", "field"),
    [
        ({}, "resource_id"),
        ({"resource_id": 7}, "resource_id"),
        ({"limit": -1}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "ten"}, "offset"),
        ({"offset": 10**30}, "offset"),
        ({"filters": "region_code=1"}, "filters"),
        ({"filters": ["region_code"]}, "filters"),
        ({"filters": {"nope": "1"}}, "filters"),
        ({"filters": {"region_code": {"$gt": 1}}}, "filters"),
        ({"filters": {"region_code": []}}, "filters"),
        ({"filters": {"region_code": "x" * 5000}}, "filters"),
        ({"filters": {"status": 1.5}}, "filters"),
        ({"fields": ["nope"]}, "fields"),
        ({"fields": "_id"}, "fields"),
        ({"fields": [1]}, "fields"),
        ({"fields": "uscc,uscc"}, "fields"),
        ({"sort": "nope asc"}, "sort"),
        ({"sort": "uscc sideways"}, "sort"),
        ({"sort": {"uscc": "asc"}}, "sort"),
        ({"q": "张"}, "q"),
        ({"full_text": "张"}, "full_text"),
        ({"distinct": True}, "distinct"),
        ({"distinct": "maybe"}, "distinct"),
        ({"include_total": "perhaps"}, "include_total"),
        ({"records_format": "csv"}, "records_format"),
        ({"records_format": "lists"}, "records_format"),
        ({"records_format": "xml"}, "records_format"),
        ({"total_estimation_threshold": -1}, "total_estimation_threshold"),
        ({"language": 5}, "language"),
    ],
)
def test_bad_datastore_parameters_are_validation_errors(live, search, field):
    params = {"resource_id": "legal_persons-api", **search} if field != "resource_id" else search
    with pytest.raises(ValidationError) as refused:
        _ckan(live, "consumer_a").action.datastore_search(**params)
    assert field in refused.value.error_dict, refused.value.error_dict


def test_datastore_search_edges(live):
    client = _ckan(live, "consumer_a")
    with pytest.raises(NotFound):
        client.action.datastore_search(resource_id="nope-api")
    with pytest.raises(NotFound):  # an export resource is no datastore
        client.action.datastore_search(resource_id="legal_persons-csv")
    capped = client.action.datastore_search(resource_id="legal_persons", limit=10**9)
    assert capped["limit"] == live.settings.page_size_max  # CKAN's rows_max, our page size
    empty = client.action.datastore_search(resource_id="legal_persons", limit=0)
    assert empty["records"] == [] and empty["total"] > 0 and empty["fields"]
    beyond = client.action.datastore_search(resource_id="legal_persons", offset=10**6)
    assert beyond["records"] == [] and beyond["total"] == empty["total"]
    for body in (b'{"resource_id": "legal_persons", "filters": {"\\ud800": 1}}',
                 b'{"resource_id": "legal_persons", "fields": "\\udfff"}',
                 b'{"resource_id": "\\ud800"}',
                 b'{"resource_id": "legal_persons", "limit": 1e400}'):  # fmt: skip
        answer = httpx.post(
            f"{live.url}/api/3/action/datastore_search",
            content=body,
            headers={"Authorization": live.tokens["consumer_a"]},
        )
        assert 400 <= answer.status_code < 500 and answer.json()["success"] is False, body
