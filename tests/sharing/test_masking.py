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

import duckdb
import pytest

from catalog.contracts import load_contracts
from catalog.ingest.delivery import run_ingest
from catalog.settings import REPO_ROOT
from catalog.sharing.masking import (
    View,
    department_disclosures,
    masking_choice,
    pseudonymised_items,
)
from catalog.sharing.pseudonyms import Pseudonymiser, hmac_sql, load_or_create_secret, pseudonym
from catalog.store.lake import Lake
from tests.conftest import bearer


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
        # An identity number's partial mask hides its county and birth digits, which other
        # grants can carry (and masks cannot change retroactively): never handed out.
        (["id_number", "status"], [], [], {"id_number"}),
        (["id_number", "sex", "status"], [], [], {"id_number"}),
        (["id_number", "birth_date"], [], [], {"id_number"}),
        # in clear: nothing to mask
        (["id_number", "birth_date"], ["id_number"], [], set()),
        # names and phones: nothing else in the register repeats them, partial masks stay
        (["name", "phone", "birth_date", "region_code"], [], [], set()),
        # a filter on a phone's prefix tells it for every row: the partial mask gives way
        (["name", "phone"], [], ["phone"], {"phone"}),
    ],
)
def test_which_masked_items_get_a_pseudonym(population, items, clear, filtered, expected):
    assert pseudonymised_items(population, items, clear, filtered) == expected


def test_a_whole_value_told_anywhere_in_the_departments_view_is_redacted(contracts):
    """A business name may be the representative's whole name: a pseudonym of the name would
    be a lookup table from sole traders to the same person's other companies, so the name is
    redacted, whether the business name is in this scope or in another view of the dataset
    (every department reads legal persons unconditionally)."""
    legal = contracts["legal_persons"]
    here = masking_choice(legal, ["name", "legal_rep_name"], [], [])
    assert (here.redacted, here.pseudonymised) == ({"legal_rep_name"}, frozenset())
    elsewhere = department_disclosures(
        contracts, "legal_persons", [View("legal_persons", ("uscc", "name"))]
    )
    alone = masking_choice(legal, ["uscc", "legal_rep_name"], [], [], elsewhere)
    assert alone.redacted == {"legal_rep_name"}
    assert masking_choice(legal, ["uscc", "legal_rep_name"], [], []).redacted == frozenset()
    # A filter in another grant tells as much as an item shown there.
    filtered = department_disclosures(
        contracts, "legal_persons", [View("legal_persons", ("uscc",), filtered=frozenset({"name"}))]
    )
    assert masking_choice(legal, ["legal_rep_name"], [], [], filtered).redacted == {
        "legal_rep_name"
    }


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
