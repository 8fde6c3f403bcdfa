"""Input at the edges: each input that once answered 500, the body limit, and 422 bodies
that match the documented schema and never echo large inputs (issue 7, findings 9, 11)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date, timedelta

import pytest

from api.errors import ECHO_MAX, BodyLimit
from api.params import MAX_ID
from catalog.state.models import REQUEST_STATES
from tests.conftest import bearer

BIG = 2**63  # one past SQLite's, PostgreSQL's and DuckDB's BIGINT
ROWS = {
    "dataset": "population",
    "items": ["id_number", "name", "region_code"],
    "purpose": "测试：核对户籍信息",
    "legal_basis": "测试依据",
    "period_start": "2026-01-01",
    "period_end": "2030-12-31",
}


def _locs(response) -> list[list]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list), detail  # HTTPValidationError, as documented
    for error in detail:
        assert set(error) <= {"loc", "msg", "type", "input"}, error
        assert isinstance(error["msg"], str) and isinstance(error["type"], str)
    return [error["loc"] for error in detail]


def _post_raw(client, path: str, text: str, token: str):
    """A JSON body sent as typed: escapes such as ``\\ud800`` reach the server as they are."""
    headers = {**bearer(token), "Content-Type": "application/json"}
    return client.post(path, content=text.encode("ascii"), headers=headers)


@pytest.fixture(scope="module")
def api(access_world):
    client, tokens, _clock, _settings = access_world
    return client, tokens


@pytest.fixture(scope="module")
def pending(api) -> int:
    """A request approved by the provider, waiting for the office."""
    client, tokens = api
    created = client.post("/requests", json=ROWS, headers=bearer(tokens["consumer_a"]))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    reviewed = client.post(
        f"/requests/{request_id}/review",
        json={"decision": "approve", "reason": "ok"},
        headers=bearer(tokens["population_provider"]),
    )
    assert reviewed.status_code == 200, reviewed.text
    return request_id


# --- ids and offsets past 64 bits ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "who", "body", "param"),
    [
        ("get", "/requests/{n}", "office", None, "request_id"),
        ("post", "/requests/{n}/review", "office", {"decision": "reject", "reason": "x"}, None),
        ("post", "/requests/{n}/withdraw", "consumer_a", None, "request_id"),
        ("post", "/grants/{n}/revoke", "office", {"reason": "x"}, "grant_id"),
        ("post", "/admin/tokens/{n}/revoke", "office", None, "token_id"),
        ("get", "/catalog/population/versions/{n}", None, None, "number"),
    ],
)
@pytest.mark.parametrize("n", [BIG, 2**64, MAX_ID + 1, 0, -1])
def test_ids_out_of_range_are_422_naming_the_parameter(api, method, path, who, body, param, n):
    client, tokens = api
    headers = bearer(tokens[who]) if who else {}
    response = client.request(method, path.format(n=n), headers=headers, json=body)
    name = param or "request_id"
    assert ["path", name] in _locs(response)


@pytest.mark.parametrize("path", ["/requests/{n}", "/catalog/population/versions/{n}"])
def test_the_largest_id_is_looked_up(api, path):
    client, tokens = api
    response = client.get(path.format(n=MAX_ID), headers=bearer(tokens["office"]))
    assert response.status_code == 404, response.text
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/datasets/population/rows?offset={n}", "offset"),
        ("/datasets/population/rows?limit={n}", "limit"),
        ("/datasets/population/rows?version={n}", "version"),
        ("/datasets/population/rows?grant={n}", "grant"),
        ("/datasets/population/export?version={n}", "version"),
        ("/datasets/population/export?grant={n}", "grant"),
        ("/audit?offset={n}", "offset"),
    ],
)
def test_query_integers_past_64_bits_are_422(api, path, param):
    client, tokens = api
    who = "office" if path.startswith("/audit") else "population_provider"
    response = client.get(path.format(n=BIG), headers=bearer(tokens[who]))
    assert ["query", param] in _locs(response)


def test_a_large_offset_within_range_is_an_empty_page(api):
    client, tokens = api
    headers = bearer(tokens["population_provider"])
    rows = client.get(f"/datasets/population/rows?offset={MAX_ID}", headers=headers)
    assert rows.status_code == 200, rows.text
    assert rows.json()["rows"] == []
    audit = client.get(f"/audit?offset={MAX_ID}", headers=bearer(tokens["office"]))
    assert audit.status_code == 200 and audit.json() == []


# --- times at the edges of the calendar ---------------------------------------------------


@pytest.mark.parametrize("path", ["/audit", "/audit/usage"])
@pytest.mark.parametrize(
    ("bound", "moment"),
    [
        ("since", "0001-01-01T00:00:00+14:00"),
        ("until", "9999-12-31T23:59:59-14:00"),
        ("since", "9999-12-31T23:59:59-00:01"),
    ],
)
def test_audit_times_that_overflow_in_utc_are_422(api, path, bound, moment):
    client, tokens = api
    response = client.get(path, params={bound: moment}, headers=bearer(tokens["office"]))
    assert ["query", bound] in _locs(response)


@pytest.mark.parametrize(
    "params",
    [
        {"since": "0001-01-01T00:00:00", "until": "9999-12-31T23:59:59"},
        {"since": "0001-01-01T00:00:00-14:00", "until": "9999-12-31T23:59:59+14:00"},
    ],
)
def test_audit_times_at_the_edges_that_convert_are_answered(api, params):
    client, tokens = api
    response = client.get("/audit", params={**params, "limit": 1}, headers=bearer(tokens["office"]))
    assert response.status_code == 200, response.text


# --- requested periods -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "field"),
    [
        ({"period_end": "9999-12-31"}, "period_end"),
        ({"period_start": "0001-01-01"}, "period_start"),
        ({"period_start": "2026-01-01", "period_end": "2031-01-02"}, "period_end"),
        ({"period_start": "2026-01-02", "period_end": "2026-01-01"}, "period_end"),
    ],
)
def test_periods_too_long_or_out_of_range_are_422(api, period, field):
    client, tokens = api
    response = client.post(
        "/requests", json={**ROWS, **period}, headers=bearer(tokens["consumer_a"])
    )
    assert ["body", field] in _locs(response)


def test_a_five_year_period_is_the_longest_and_the_office_approves_it(api):
    client, tokens = api
    start = date.today()
    try:
        longest = str(start.replace(year=start.year + 5))
    except ValueError:  # 29 February
        longest = str(start.replace(year=start.year + 5, day=28))
    body = {**ROWS, "period_start": str(start), "period_end": longest}
    too_long = {**body, "period_end": str(date.fromisoformat(longest) + timedelta(days=1))}
    refused = client.post("/requests", json=too_long, headers=bearer(tokens["consumer_b"]))
    assert ["body", "period_end"] in _locs(refused)
    created = client.post("/requests", json=body, headers=bearer(tokens["consumer_b"]))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    for who, decision, status in (
        ("population_provider", {}, 200),
        ("office", {"expires_on": "9000-12-31"}, 422),  # past the period: refused, not cut
        ("office", {}, 200),
    ):
        reviewed = client.post(
            f"/requests/{request_id}/review",
            json={"decision": "approve", "reason": "ok", **decision},
            headers=bearer(tokens[who]),
        )
        assert reviewed.status_code == status, reviewed.text
    grant = reviewed.json()["grant"]
    assert grant["expires_at"].startswith(longest)  # the end of the last day, local midnight


def test_an_expiry_before_the_period_starts_is_422(api):
    """A grant whose last day comes before its first could never be in force."""
    client, tokens = api
    start = date.today() + timedelta(days=400)
    body = {**ROWS, "period_start": str(start), "period_end": str(start + timedelta(days=30))}
    created = client.post("/requests", json=body, headers=bearer(tokens["consumer_b"]))
    request_id = created.json()["id"]
    client.post(
        f"/requests/{request_id}/review",
        json={"decision": "approve", "reason": "ok"},
        headers=bearer(tokens["population_provider"]),
    )
    early = str(start - timedelta(days=1))
    response = client.post(
        f"/requests/{request_id}/review",
        json={"decision": "approve", "reason": "ok", "expires_on": early},
        headers=bearer(tokens["office"]),
    )
    assert _locs(response) == [["body", "expires_on"]]


def test_an_expiry_past_the_calendar_is_422(api, pending):
    client, tokens = api
    response = client.post(
        f"/requests/{pending}/review",
        json={"decision": "approve", "reason": "ok", "expires_on": "9999-12-31"},
        headers=bearer(tokens["office"]),
    )
    assert ["body", "expires_on"] in _locs(response)


# --- control characters and lone surrogates -----------------------------------------------


@pytest.mark.parametrize("value", ["330\x00106", "330106\n", "a\x1fb", "x" * 201])
def test_a_row_filter_value_must_be_one_short_clean_line(api, pending, value):
    client, tokens = api
    clause = {"item": "region_code", "op": "eq", "values": [value]}
    submitted = client.post(
        "/requests", json={**ROWS, "row_filter": [clause]}, headers=bearer(tokens["consumer_a"])
    )
    assert ["body", "row_filter", 0, "values", 0] in _locs(submitted)
    reviewed = client.post(
        f"/requests/{pending}/review",
        json={"decision": "approve", "reason": "ok", "row_filter": [clause]},
        headers=bearer(tokens["office"]),
    )
    assert ["body", "row_filter", 0, "values", 0] in _locs(reviewed)


def test_reads_go_on_after_a_refused_nul_filter(api):
    client, tokens = api
    created = client.post("/requests", json=ROWS, headers=bearer(tokens["analyst_a"]))
    request_id = created.json()["id"]
    nul = {"item": "region_code", "op": "in", "values": ["330106", "\x00"]}
    good = {"item": "region_code", "op": "in", "values": ["330106", "330108"]}
    for who, clause, status in (
        ("population_provider", None, 200),
        ("office", nul, 422),
        ("office", good, 200),
    ):
        decision = {"decision": "approve", "reason": "ok"}
        if clause:
            decision["row_filter"] = [clause]
        reviewed = client.post(
            f"/requests/{request_id}/review", json=decision, headers=bearer(tokens[who])
        )
        assert reviewed.status_code == status, reviewed.text
    grant = reviewed.json()["grant"]["id"]
    for _ in range(2):  # every later read by the department works
        rows = client.get(
            f"/datasets/population/rows?limit=5&grant={grant}", headers=bearer(tokens["analyst_a"])
        )
        assert rows.status_code == 200, rows.text
        assert {r["region_code"] for r in rows.json()["rows"]} <= {"330106", "330108"}


@pytest.mark.parametrize("item", ["region\x00code", "Region_Code", "a" * 64, "1abc"])
def test_filter_items_and_requested_items_are_identifiers(api, item):
    client, tokens = api
    clause = {"item": item, "op": "eq", "values": ["1"]}
    response = client.post(
        "/requests",
        json={**ROWS, "items": [item], "row_filter": [clause]},
        headers=bearer(tokens["consumer_a"]),
    )
    locs = _locs(response)
    assert ["body", "items", 0] in locs and ["body", "row_filter", 0, "item"] in locs


SURROGATE = "\\ud800"  # as JSON text: a lone high surrogate


@pytest.mark.parametrize(
    ("path", "who", "body", "loc"),
    [
        ("/requests", "consumer_a", {**ROWS, "purpose": "目的 @"}, ["body", "purpose"]),
        ("/requests", "consumer_a", {**ROWS, "legal_basis": "依据 @"}, ["body", "legal_basis"]),
        ("/requests", "consumer_a", {**ROWS, "items": ["@"]}, ["body", "items", 0]),
        (
            "/requests/{pending}/review",
            "office",
            {"decision": "reject", "reason": "@"},
            ["body", "reason"],
        ),
        ("/grants/1/revoke", "office", {"reason": "@"}, ["body", "reason"]),
        ("/admin/departments", "office", {"code": "@", "name": "新部门"}, ["body", "code"]),
        (
            "/admin/departments",
            "office",
            {"code": "11330100002483888A", "name": "部门@"},
            ["body", "name"],
        ),
        (
            "/admin/users",
            "office",
            {
                "username": "new_user",
                "display_name": "@",
                "department_code": "11330100002484777P",
                "role": "consumer",
            },
            ["body", "display_name"],
        ),
        ("/verify/identity_name", "consumer_a", {"id_number": "@", "name": "x"}, None),
        ("/verify/identity_name", "consumer_a", {"@": "x"}, None),
    ],
)
def test_lone_surrogates_in_json_bodies_are_422(api, pending, path, who, body, loc):
    client, tokens = api
    text = json.dumps(body, ensure_ascii=True).replace("@", SURROGATE)
    response = _post_raw(client, path.format(pending=pending), text, tokens[who])
    locs = _locs(response)
    if loc is not None:
        assert loc in locs
    response.content.decode("utf-8")  # the error itself is valid UTF-8
    chain = client.get("/audit/verify", headers=bearer(tokens["office"])).json()
    assert chain["intact"], chain


@pytest.mark.parametrize("reason", ["a\x00b", "a\x07b"])
def test_free_text_refuses_control_characters_but_keeps_lines(api, pending, reason):
    client, tokens = api
    refused = client.post(
        f"/requests/{pending}/review",
        json={"decision": "reject", "reason": reason},
        headers=bearer(tokens["office"]),
    )
    assert ["body", "reason"] in _locs(refused)
    body = {**ROWS, "purpose": "第一行\n第二行\t制表\r\n"}
    created = client.post("/requests", json=body, headers=bearer(tokens["analyst_a"]))
    assert created.status_code == 201, created.text


def test_verification_inputs_are_bounded(api):
    client, tokens = api
    many = {f"k{i}": "x" for i in range(21)}
    assert ["body"] in _locs(
        client.post("/verify/identity_name", json=many, headers=bearer(tokens["consumer_a"]))
    )
    long = {"id_number": "1" * 201, "name": "x"}
    response = client.post("/verify/identity_name", json=long, headers=bearer(tokens["consumer_a"]))
    assert ["body", "id_number"] in _locs(response)


# --- 422 bodies: the documented shape, nothing large echoed --------------------------------


def test_core_input_errors_are_422s_in_the_documented_shape(api):
    client, tokens = api
    response = client.post(
        "/requests", json={**ROWS, "items": ["no_such_item"]}, headers=bearer(tokens["consumer_a"])
    )
    [error] = response.json()["detail"]
    assert response.status_code == 422
    assert error["loc"][0] == "body" and error["type"] == "value_error"
    assert "no_such_item" in error["msg"]
    unknown = client.post(
        "/requests", json={**ROWS, "dataset": "nothing"}, headers=bearer(tokens["consumer_a"])
    )
    assert _locs(unknown) == [["body", "dataset"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"items": ["no_such_item"]}, "items"),
        ({"unmasked_items": ["region_code"]}, "unmasked_items"),
        ({"row_filter": [{"item": "nothing", "op": "eq", "values": ["1"]}]}, "row_filter"),
        ({"period_start": "2020-01-01", "period_end": "2020-02-01"}, "period_end"),
    ],
)
def test_a_core_refusal_names_the_field(api, change, field):
    client, tokens = api
    response = client.post(
        "/requests", json={**ROWS, **change}, headers=bearer(tokens["consumer_a"])
    )
    assert _locs(response) == [["body", field]]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize(
    ("path", "who", "template"),
    [
        ("/activate", None, '{"username": %s, "code": "ga_x"}'),
        ("/verify/identity_name", "consumer_a", '{"id_number": %s, "name": "x"}'),
        ("/requests", "consumer_a", '{"dataset": "population", "purpose": %s}'),
    ],
)
def test_numbers_json_cannot_carry_back_are_422(api, number, path, who, template):
    """Python parses NaN, Infinity and 1e400 (as infinity); the 422 that refuses them must
    itself be valid JSON."""
    client, tokens = api
    headers = {"Content-Type": "application/json", **(bearer(tokens[who]) if who else {})}
    response = client.post(path, content=(template % number).encode(), headers=headers)
    assert response.status_code == 422, response.text
    json.loads(response.text)  # strict JSON: no NaN or Infinity tokens


@pytest.mark.parametrize("path", ["/catalog/{}", "/datasets/{}/rows", "/verify/{}"])
def test_an_error_never_echoes_a_long_path(api, path):
    client, tokens = api
    url = path.format("a" * 60_000)
    response = (
        client.post(url, json={}, headers=bearer(tokens["consumer_a"]))
        if path.startswith("/verify")
        else client.get(url, headers=bearer(tokens["consumer_a"]))
    )
    assert 400 <= response.status_code < 500
    assert len(response.content) < 2000, len(response.content)


@pytest.mark.parametrize(
    "body",
    [
        {**ROWS, "purpose": "长" * 200_000},
        {**ROWS, "items": ["name"] * 100_000},
        {**ROWS, "row_filter": [{"item": "name", "op": "in", "values": ["x" * 150] * 5000}]},
        {**ROWS, "unknown_field": "y" * 500_000},
        {"dataset": ["z" * 500_000]},
    ],
)
def test_a_422_never_echoes_a_large_input(api, body):
    client, tokens = api
    response = client.post("/requests", json=body, headers=bearer(tokens["consumer_a"]))
    _locs(response)
    assert len(response.content) < 4000, len(response.content)
    for error in response.json()["detail"]:
        assert "ctx" not in error
        assert len(json.dumps(error.get("input", ""), ensure_ascii=False)) <= ECHO_MAX + 10


def test_validation_errors_keep_short_inputs(api):
    client, tokens = api
    response = client.post(
        "/requests", json={**ROWS, "kind": "everything"}, headers=bearer(tokens["consumer_a"])
    )
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "kind"] and error["input"] == "everything"


@pytest.mark.parametrize("field", ["items", "unmasked_items"])
def test_list_lengths_are_bounded(api, field):
    client, tokens = api
    body = {**ROWS, field: ["name"] * 201}
    response = client.post("/requests", json=body, headers=bearer(tokens["consumer_a"]))
    assert ["body", field] in _locs(response)
    clauses = [{"item": "name", "op": "eq", "values": ["x"]}] * 21
    response = client.post(
        "/requests", json={**ROWS, "row_filter": clauses}, headers=bearer(tokens["consumer_a"])
    )
    assert ["body", "row_filter"] in _locs(response)


# --- the body limit -----------------------------------------------------------------------


def test_a_body_over_the_limit_is_413(api, access_world):
    client, tokens = api
    limit = access_world[3].max_body_bytes
    body = json.dumps({**ROWS, "purpose": "x" * limit})
    response = client.post(
        "/requests",
        content=body,
        headers={**bearer(tokens["consumer_a"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert isinstance(response.json()["detail"], str)
    items = json.dumps({**ROWS, "items": ["name"] * 2_000_000})  # the 2-million-item list
    response = client.post(
        "/requests",
        content=items,
        headers={**bearer(tokens["consumer_a"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_a_streamed_body_growing_past_the_limit_is_413(api, access_world):
    client, tokens = api
    limit = access_world[3].max_body_bytes
    chunks = (b"x" * 65536 for _ in range(limit // 65536 + 4))  # chunked: no Content-Length
    response = client.post(
        "/requests",
        content=chunks,
        headers={**bearer(tokens["consumer_a"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert isinstance(response.json()["detail"], str)


def _drive(limit: int, headers: list, chunks: list[bytes]) -> tuple[list, int, bool]:
    """Run the middleware over a request of ``chunks``; (messages sent, chunks read, whether
    the app was called)."""
    read = 0
    called = False
    sent: list = []

    async def receive():
        nonlocal read
        read += 1
        more = read < len(chunks)
        return {"type": "http.request", "body": chunks[read - 1], "more_body": more}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        nonlocal called
        called = True
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(BodyLimit(app, limit)(scope, receive, send))
    return sent, read, called


def test_the_limit_refuses_a_large_content_length_without_reading_the_body():
    sent, read, called = _drive(100, [(b"content-length", b"101")], [b"x"])
    assert sent[0]["status"] == 413 and read == 0 and not called
    assert json.loads(sent[1]["body"])["detail"]


def test_the_limit_stops_reading_a_stream_that_grows_past_it():
    chunks = [b"x" * 60] * 10
    sent, read, called = _drive(100, [], chunks)
    assert called and read == 2  # the chunk that crossed the limit, and nothing after it
    assert sent[0]["status"] == 413


def test_the_limit_lets_a_body_at_the_limit_through():
    sent, read, _ = _drive(100, [(b"content-length", b"100")], [b"x" * 100])
    assert sent[0]["status"] == 200 and read == 1


# --- query parameters a route does not take ----------------------------------------------

# A token for each role, and a value for each path parameter.
_TOKEN_OF = {
    "office": "office",
    "provider": "population_provider",
    "consumer": "consumer_a",
    "analyst": "analyst_a",
}
_PATH_VALUES = {
    "dataset": "population",
    "number": "1",
    "service": "identity_name",
    "request_id": "1",
    "grant_id": "1",
    "username": "nobody_here",
    "token_id": "999999",
}


def _operations(client) -> list[tuple[str, str, str | None]]:
    """(method, path, the user to call it as) for every operation of the document."""
    paths = client.get("/openapi.json").json()["paths"]
    found = []
    for path, operations in paths.items():
        for method, operation in operations.items():
            roles = operation["x-roles"]
            who = None if roles == ["public"] else _TOKEN_OF[roles[0]]
            found.append((method, path, who))
    return found


def test_every_route_refuses_a_query_parameter_it_does_not_take(api):
    """A misspelt or invented filter is a 422 naming it, never silently ignored; and the
    call does nothing (the 422 comes before the route runs)."""
    client, tokens = api
    operations = _operations(client)
    assert len(operations) > 30
    head = client.get("/audit/verify", headers=bearer(tokens["office"])).json()
    for method, path, who in operations:
        url = re.sub(r"\{(\w+)\}", lambda m: _PATH_VALUES.get(m.group(1), "1"), path)
        headers = bearer(tokens[who]) if who else {}
        response = client.request(
            method, url, params={"no_such_filter": "1"}, headers=headers, json={}
        )
        assert response.status_code == 422, (method, path, response.text)
        errors = response.json()["detail"]
        assert errors == [
            {
                "loc": ["query", "no_such_filter"],
                "msg": errors[0]["msg"],
                "type": "extra_forbidden",
                "input": "1",
            }
        ], (method, path)
        assert "no_such_filter" in errors[0]["msg"]
    # Nothing was done, nothing listed: the audit chain did not move.
    after = client.get("/audit/verify", headers=bearer(tokens["office"])).json()
    assert after["entries"] == head["entries"]


def test_an_item_filter_filters_and_a_misspelt_one_is_422_not_every_row(api):
    client, tokens = api
    headers = bearer(tokens["population_provider"])
    every = client.get("/datasets/population/rows?limit=1000", headers=headers).json()["rows"]
    filtered = client.get("/datasets/population/rows?region_code=330106", headers=headers)
    assert filtered.status_code == 200, filtered.text
    expected = [row for row in every if row["region_code"] == "330106"]
    assert 0 < len(expected) < len(every)
    assert filtered.json()["rows"] == expected and filtered.json()["total"] == len(expected)

    response = client.get("/datasets/population/rows?regoin_code=330106&limit=5", headers=headers)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "regoin_code"] and error["input"] == "330106"
    for taken in ("grant", "limit", "offset", "version", "region_code"):  # what it takes
        assert taken in error["msg"]


def test_each_unknown_parameter_is_named_and_known_ones_still_work(api):
    client, tokens = api
    response = client.get(
        "/catalog?q=人口&regoin=1&sharing_typ=conditional&regoin=2",
        headers=bearer(tokens["consumer_a"]),
    )
    assert [e["loc"] for e in response.json()["detail"]] == [
        ["query", "regoin"],
        ["query", "sharing_typ"],
    ]
    ok = client.get("/catalog?q=人口&sharing_type=conditional")
    assert ok.status_code == 200 and [e["dataset"] for e in ok.json()] == ["population"]


def test_an_unknown_parameter_does_not_come_before_authentication(api):
    """Without a token the answer is 401 as before: nothing about the route is told."""
    client, tokens = api
    assert client.get("/requests?bogus=1").status_code == 401
    assert client.get("/requests?bogus=1", headers=bearer("gs_forged")).status_code == 401
    wrong_role = client.get("/audit/verify?bogus=1", headers=bearer(tokens["consumer_a"]))
    assert wrong_role.status_code == 403


def test_the_many_unknown_parameters_of_one_call_are_named_within_bounds(api):
    client, _ = api
    query = "&".join(f"p{i}=x" for i in range(500))
    response = client.get(f"/catalog?{query}")
    assert response.status_code == 422
    assert 0 < len(response.json()["detail"]) <= 20
    assert len(response.content) < 8000


# --- filters with a fixed set of values ---------------------------------------------------


def test_a_request_status_filter_outside_the_states_is_422_listing_them(api):
    client, tokens = api
    response = client.get("/requests?status=pending", headers=bearer(tokens["office"]))
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "status"]
    for state in REQUEST_STATES:
        assert f"'{state}'" in error["msg"], state


def test_the_status_filter_accepts_each_state(api, pending):
    client, tokens = api
    for state in REQUEST_STATES:
        response = client.get(f"/requests?status={state}", headers=bearer(tokens["office"]))
        assert response.status_code == 200, response.text
        assert {r["status"] for r in response.json()} <= {state}
    waiting = client.get("/requests?status=provider_approved", headers=bearer(tokens["office"]))
    assert pending in {r["id"] for r in waiting.json()}


# --- the documented statuses --------------------------------------------------------------


def test_every_route_documents_its_error_statuses(api):
    client, _ = api
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            public = operation.get("x-roles") == ["public"]
            expected = {"422"} if public else {"401", "403", "422", "503"}  # 422: the query
            if "{" in path:
                expected.add("404")
            if "requestBody" in operation:
                expected |= {"413"}
            if path.startswith("/verify"):
                expected.add("429")
            if path.startswith(("/requests", "/grants")) and method == "post":
                expected.add("409")
            assert expected <= codes, (method, path, expected - codes)
            # CKAN's action API answers errors in CKAN's envelope (its clients read that).
            shape = "CkanAnswer" if path.startswith("/api/3/action/") else "ErrorMessage"
            for code in expected - {"422"}:
                content = operation["responses"][code]["content"]["application/json"]
                assert content["schema"] == {"$ref": f"#/components/schemas/{shape}"}
            if "422" in codes:
                content = operation["responses"]["422"]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/HTTPValidationError"}
