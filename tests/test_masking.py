"""Pseudonyms, the masking choice per scope, a grant's period, and CSV exports that cannot
run formulas. The expectations come from the standards named in each test (RFC 2104 for
HMAC, GB 11643 for identity numbers, OWASP's CSV injection advice), not from the code."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
import stat
import unicodedata
from datetime import timedelta

import duckdb
import pytest

from catalog.contracts import load_contracts
from catalog.ingest import run_ingest
from catalog.lake import Lake
from catalog.masking import pseudonymised_items
from catalog.pseudonyms import Pseudonymiser, hmac_sql, load_or_create_secret, pseudonym
from catalog.settings import REPO_ROOT
from tests.conftest import approve_request, bearer


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (b"k" * 32, "33010619900101123X"),
        (bytes(range(32)), "张三"),
        (b"\xff" * 80, "a key longer than a block is hashed first"),
        (b"\x00" * 32, ""),
    ],
)
def test_hmac_in_sql_is_rfc_2104_hmac_sha256(key, message):
    sql = f"SELECT {hmac_sql(key, '?::VARCHAR')}"
    assert duckdb.execute(sql, [message]).fetchone()[0] == (
        hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
    )


def test_the_pseudonym_secret_is_created_once_and_owner_only(tmp_path):
    path = tmp_path / "secrets" / "pseudonym.key"
    first = load_or_create_secret(path)
    assert len(first) == 32 and load_or_create_secret(path) == first
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    keys = Pseudonymiser(first)
    assert keys.key_for("grant:1") != keys.key_for("grant:2")
    assert pseudonym(keys.key_for("grant:1"), "x") != pseudonym(keys.key_for("grant:2"), "x")


@pytest.fixture(scope="module")
def population():
    return load_contracts(REPO_ROOT / "schemas")["population"]


@pytest.mark.parametrize(
    ("items", "clear", "filtered", "expected"),
    [
        # birth date agrees with digits 7-14: shown next to a partial mask, it rebuilds it
        (["id_number", "birth_date"], [], [], {"id_number"}),
        # the household region is usually the id's region digits (the contract says so)
        (["id_number", "region_code"], [], [], {"id_number"}),
        # a filter on a region tells it for every row, shown or not
        (["id_number", "status"], [], ["region_code"], {"id_number"}),
        # a filter on the number itself tells its leading digits
        (["id_number", "status"], [], ["id_number"], {"id_number"}),
        # sex is digit 17, which the partial mask shows anyway
        (["id_number", "sex", "status"], [], [], set()),
        # in clear: nothing to mask
        (["id_number", "birth_date"], ["id_number"], [], set()),
        # names and phones: nothing else in the register repeats them
        (["name", "phone", "birth_date", "region_code"], [], [], set()),
    ],
)
def test_the_partial_mask_gives_way_where_the_scope_tells_what_it_hides(
    population, items, clear, filtered, expected
):
    assert pseudonymised_items(population, items, clear, filtered) == expected


@pytest.fixture(scope="module")
def env(access_world):
    return access_world


def test_a_grant_is_not_in_force_before_its_period_starts(env):
    client, tokens, clock, _ = env
    start = clock.now.date() + timedelta(days=10)
    request = approve_request(
        client,
        tokens,
        {
            "dataset": "credit_records",
            "items": ["record_id", "list_type"],
            "purpose": "下月起的联合惩戒核查",
            "legal_basis": "测试",
            "period_start": str(start),
            "period_end": str(start + timedelta(days=30)),
        },
        requester="consumer_b",
    )
    grant = request["grant"]
    assert grant["active"] is False
    url = f"/datasets/credit_records/rows?limit=5&grant={grant['id']}"
    assert client.get(url, headers=bearer(tokens["consumer_b"])).status_code == 403
    try:
        clock.advance(days=10)
        assert client.get(url, headers=bearer(tokens["consumer_b"])).status_code == 200
    finally:
        clock.advance(days=-10)


PAYLOADS = [
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://example.invalid","x")',
    "+1+1",
    "-2+3",
    "@SUM(1+1)",
    "\t=1+1",
    "\r=1+1",
    "＝1+1",
]


def test_csv_exports_neutralise_formulas_and_keep_the_stored_values(tmp_path, contracts):
    """OWASP: a cell starting with = + - @ tab or CR is prefixed with a single quote in CSV;
    the stored data and the other paths keep the value as delivered."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from catalog.settings import Settings
    from tests.conftest import seed_identities, write_delivery

    settings = Settings(home=tmp_path / "runtime")
    contract = contracts["geography"]
    rows = [
        {
            "region_code": f"3301{n:02d}",
            "name": payload,
            "level": "county",
            "parent_code": "330100",
            "centroid_lon": "120.1",
            "centroid_lat": "30.2",
            "boundary": "",
        }
        for n, payload in enumerate(PAYLOADS, start=1)
    ]
    path = write_delivery(contract, rows, tmp_path / "geo.csv")
    outcome = run_ingest(contract, [path], Lake(settings))
    assert outcome.status == "published", outcome.message
    tokens = seed_identities(settings, contracts)
    with TestClient(create_app(settings)) as client:
        headers = bearer(tokens["consumer_b"])
        exported = client.get("/datasets/geography/export?format=csv", headers=headers)
        stored = client.get("/datasets/geography/rows?limit=100", headers=headers).json()["rows"]
    assert exported.status_code == 200
    cells = [r["name"] for r in csv.DictReader(io.StringIO(exported.content.decode("utf-8")))]
    assert len(cells) == len(PAYLOADS)
    for cell in cells:
        assert not cell or cell[0] not in "=+-@\t\r＝", cell
    delivered = {r["region_code"]: r["name"] for r in rows}
    exported_by_code = {
        r["region_code"]: r["name"]
        for r in csv.DictReader(io.StringIO(exported.content.decode("utf-8")))
    }
    for row in stored:  # as delivered, normalised at ingest (full-width to ASCII, trimmed)
        code, value = row["region_code"], row["name"]
        assert value == unicodedata.normalize("NFKC", delivered[code]).strip()
        assert exported_by_code[code] == "'" + value  # every payload starts a formula


@pytest.fixture(scope="module")
def contracts():
    return load_contracts(REPO_ROOT / "schemas")
