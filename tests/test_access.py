"""Sharing enforcement on every data path: the matrix of endpoints × datasets × callers,
grants with items, row filters and items in clear, and expiry and revocation taking effect
at once. Ground truth is read from the lake directly, never through the API."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import duckdb
import pytest

from catalog.contracts import load_contracts
from catalog.lake import Lake
from catalog.publish import published_table
from tests.conftest import approve_request, bearer

CONSUMERS = ("consumer_a", "analyst_a", "consumer_b", "analyst_b")


@pytest.fixture(scope="module")
def env(access_world):
    return access_world


@pytest.fixture(scope="module")
def contracts(env):
    return load_contracts(env[3].schemas_dir)


@pytest.fixture(scope="module")
def truth(env, contracts):
    """Every published row of every dataset, as text, straight from the lake."""
    with Lake(env[3]).reader() as con:
        return {
            name: [
                {k: (None if v is None else str(v)) for k, v in row.items()}
                for row in con.execute(f"SELECT * FROM {published_table(name)}")
                .fetch_df()
                .astype(object)
                .where(lambda df: df.notna(), None)
                .to_dict("records")
            ]
            for name in contracts
        }


def _period() -> dict:
    return {"period_start": "2026-01-01", "period_end": "2099-12-31"}


@pytest.fixture(scope="module")
def grants(env, truth):
    """Department A: population (4 items, id in clear, one district), credit records
    (all items, masked) and legal persons (representatives' names in clear, only that item
    asked for). Department B: nothing."""
    client, tokens, _, _ = env
    district = max(
        {r["region_code"] for r in truth["population"]},
        key=lambda c: sum(r["region_code"] == c for r in truth["population"]),
    )
    population = approve_request(
        client,
        tokens,
        {
            "dataset": "population",
            "items": ["id_number", "name", "region_code", "status"],
            "unmasked_items": ["id_number"],
            "purpose": "低保资格核查",
            "legal_basis": "《社会救助暂行办法》",
            "row_filter": [{"item": "region_code", "op": "eq", "values": [district]}],
            **_period(),
        },
    )
    credit = approve_request(
        client,
        tokens,
        {
            "dataset": "credit_records",
            "items": [i.name for i in load_contracts(env[3].schemas_dir)["credit_records"].items],
            "purpose": "联合惩戒",
            "legal_basis": "国发〔2016〕33号",
            **_period(),
        },
    )
    legal = approve_request(
        client,
        tokens,
        {
            "dataset": "legal_persons",
            "items": ["legal_rep_name"],
            "unmasked_items": ["legal_rep_name"],
            "purpose": "法定代表人核对",
            "legal_basis": "测试",
            **_period(),
        },
    )
    return {
        "population": population["grant"],
        "credit_records": credit["grant"],
        "legal_persons": legal["grant"],
    }


def expected_scope(contracts, grants, endpoint, dataset, who):
    """The rules of SPEC §6 written out independently of catalog/access.py:
    None means 403, else (items, items in clear, filter)."""
    contract = contracts[dataset]
    sharing = contract.catalog.sharing
    method = "api" if endpoint == "rows" else "bulk_download"
    names = [i.name for i in contract.items]
    if who == "office" or sharing.type == "not_shared" or method not in sharing.method:
        return None
    if who.endswith("_provider"):
        return (names, set(names), []) if who == f"{dataset}_provider" else None
    grant = grants.get(dataset) if who.endswith("_a") else None
    if grant and sharing.type == "unconditional":  # a grant only adds items in clear
        return names, set(grant["unmasked_items"]), []
    if grant:
        return grant["items"], set(grant["unmasked_items"]), grant["row_filter"]
    if sharing.type == "unconditional":
        return names, set(), []
    return None


def _fetch(client, token, endpoint, dataset):
    url = f"/datasets/{dataset}/{endpoint}"
    url += "?limit=1000" if endpoint == "rows" else "?format=csv"
    response = client.get(url, headers=bearer(token))
    if response.status_code != 200:
        return response.status_code, None, response.text
    if endpoint == "rows":
        return 200, response.json()["rows"], response.text
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
    return 200, rows, response.text


def _passes(row, clauses):
    for c in clauses:
        value = row[c["item"]] or ""
        if c["op"] in ("eq", "in") and value not in c["values"]:
            return False
        if c["op"] == "prefix" and not any(value.startswith(v) for v in c["values"]):
            return False
    return True


PROVIDERS = [
    f"{d}_provider"
    for d in ("population", "legal_persons", "geography", "licences", "credit_records")
]


@pytest.mark.parametrize("endpoint", ["rows", "export"])
@pytest.mark.parametrize("who", ["office", *PROVIDERS, *CONSUMERS])
def test_enforcement_matrix_no_leaks(env, contracts, truth, grants, endpoint, who):
    client, tokens, _, _ = env
    for dataset, contract in contracts.items():
        scope = expected_scope(contracts, grants, endpoint, dataset, who)
        status, rows, body = _fetch(client, tokens[who], endpoint, dataset)
        sensitive = {i.name for i in contract.items if i.sensitivity == "sensitive"}
        if scope is None:
            assert status == 403, (dataset, who, body)
            assert rows is None
            continue
        items, clear, clauses = scope
        assert status == 200, (dataset, who, body)
        real = [r for r in truth[dataset] if _passes(r, clauses)]
        assert len(rows) == min(len(real), 1000), (dataset, who)
        assert all(list(r) == list(items) for r in rows), (dataset, who)
        filter_items = {c["item"] for c in clauses}
        for item in filter_items & set(items):
            assert all(
                _passes({item: r[item]}, [c for c in clauses if c["item"] == item]) for r in rows
            )
        for item in sensitive & set(items):
            raw = {r[item] for r in truth[dataset] if r[item]}
            shown = [r[item] for r in rows if r[item]]
            if item in clear:
                assert set(shown) <= raw
            else:  # masked: no value equals a real one, and long identifiers never appear
                assert all("*" in v and v not in raw for v in shown), (dataset, who, item)
                long_raw = [v for v in raw if len(v) >= 11]
                assert not any(v in body for v in long_raw), (dataset, who, item)
        for item in set(contract.item_names) - set(items):
            assert not any(item in r for r in rows)


def test_masking_formats(env, truth):
    client, tokens, _, _ = env
    rows = client.get(
        "/datasets/legal_persons/rows?limit=50", headers=bearer(tokens["consumer_b"])
    ).json()["rows"]
    by_key = {r["uscc"]: r for r in truth["legal_persons"]}
    for row in rows:
        real = by_key[row["uscc"]]
        rid, name = real["legal_rep_id"], real["legal_rep_name"]
        assert row["legal_rep_id"] == rid[:4] + "*" * 10 + rid[-4:]
        assert row["legal_rep_name"] == name[0] + "*" * (len(name) - 1)
        assert row["address"] == real["address"]  # a company's address is not sensitive
    phones = client.get(
        "/datasets/population/rows?limit=5", headers=bearer(tokens["population_provider"])
    ).json()["rows"]
    assert any(r["phone"] and "*" not in r["phone"] for r in phones)  # the owner sees its data


@pytest.mark.parametrize(
    ("mask", "value", "shown"),
    [
        ("identity", "33010619900101123X", "3301**********123X"),
        ("phone", "13812345678", "138****5678"),
        ("name", "欧阳娜娜", "欧***"),
        ("name", "张", "张*"),
        ("address", "浙江省杭州市西湖区文三路1号", "浙江省杭州市****"),
        ("redact", "anything", "****"),
        ("identity", None, None),
    ],
)
def test_mask_formats_in_sql(contracts, mask, value, shown):
    from catalog.contracts import DataItem
    from catalog.masking import mask_sql

    item = DataItem(
        name="v", label="v", type="string", description="", sensitivity="sensitive", mask=mask
    )
    assert (
        duckdb.sql(
            f"SELECT {mask_sql(item)} FROM (SELECT ?::VARCHAR AS v)", params=[value]
        ).fetchone()[0]
        == shown
    )


def test_a_grant_for_another_department_cannot_be_named(env, grants):
    client, tokens, _, _ = env
    gid = grants["population"]["id"]
    assert (
        client.get(
            f"/datasets/population/rows?grant={gid}", headers=bearer(tokens["consumer_b"])
        ).status_code
        == 403
    )
    assert (
        client.get(
            f"/datasets/population/rows?grant={gid}", headers=bearer(tokens["consumer_a"])
        ).status_code
        == 200
    )


def test_expiry_takes_effect_at_once(env, contracts):
    client, tokens, clock, _ = env
    request = approve_request(
        client,
        tokens,
        {
            "dataset": "credit_records",
            "items": ["record_id", "list_type"],
            "purpose": "临时核查",
            "legal_basis": "测试",
            "period_start": "2026-01-01",
            "period_end": "2099-12-31",
        },
        requester="consumer_b",
        expires_on=str(clock.now.date() + timedelta(days=3)),
    )
    url = "/datasets/credit_records/rows?limit=5"
    first = client.get(url, headers=bearer(tokens["analyst_b"]))
    assert first.status_code == 200 and first.json()["items"] == ["record_id", "list_type"]
    assert request["grant"]["active"]
    try:
        clock.advance(days=5)
        assert client.get(url, headers=bearer(tokens["analyst_b"])).status_code == 403
        listed = client.get("/grants", headers=bearer(tokens["consumer_b"])).json()
        assert [g["active"] for g in listed if g["id"] == request["grant"]["id"]] == [False]
    finally:
        clock.advance(days=-5)


def test_revocation_takes_effect_at_once(env):
    client, tokens, _, _ = env
    request = approve_request(
        client,
        tokens,
        {
            "dataset": "population",
            "items": ["id_number", "status"],
            "purpose": "户籍核查",
            "legal_basis": "测试",
            "period_start": "2026-01-01",
            "period_end": "2099-12-31",
        },
        requester="analyst_b",
    )
    url = "/datasets/population/rows?limit=1"
    assert client.get(url, headers=bearer(tokens["consumer_b"])).status_code == 200
    gid = request["grant"]["id"]
    other = client.post(
        f"/grants/{gid}/revoke", json={"reason": "x"}, headers=bearer(tokens["geography_provider"])
    )
    assert other.status_code == 403  # not the providing department
    assert (
        client.post(
            f"/grants/{gid}/revoke", json={"reason": ""}, headers=bearer(tokens["office"])
        ).status_code
        == 422
    )
    revoked = client.post(
        f"/grants/{gid}/revoke",
        json={"reason": "用途已结束"},
        headers=bearer(tokens["population_provider"]),
    )
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert client.get(url, headers=bearer(tokens["consumer_b"])).status_code == 403
    assert (
        client.post(
            f"/grants/{gid}/revoke", json={"reason": "again"}, headers=bearer(tokens["office"])
        ).status_code
        == 409
    )
