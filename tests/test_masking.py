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
from catalog.ingest import run_ingest
from catalog.lake import Lake
from catalog.masking import View, department_disclosures, masking_choice, pseudonymised_items
from catalog.pseudonyms import Pseudonymiser, hmac_sql, load_or_create_secret, pseudonym
from catalog.settings import REPO_ROOT
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


def test_what_the_department_learns_elsewhere_counts(contracts):
    """A partial mask hides what the department must not learn from anything it reads: its
    other grants on the dataset, and people's birth dates or regions in any dataset."""
    population, credit, legal = (
        contracts[n] for n in ("population", "credit_records", "legal_persons")
    )
    another_grant = department_disclosures(
        contracts, "population", [View("population", ("id_number", "birth_date"))]
    )
    choice = masking_choice(population, ["id_number", "name"], ["name"], [], another_grant)
    assert choice.pseudonymised == {"id_number"}
    # Birth dates read in the population register tell the digits of a credit subject's id.
    elsewhere = department_disclosures(
        contracts, "credit_records", [View("population", ("name", "birth_date"))]
    )
    assert "birth_date" in elsewhere.identity
    assert masking_choice(credit, ["subject_id"], [], [], elsewhere).pseudonymised == {"subject_id"}
    assert masking_choice(credit, ["subject_id"], [], []).pseudonymised == frozenset()
    # A business name may be the representative's whole name: redacted, never pseudonymised.
    whole = masking_choice(legal, ["name", "legal_rep_name"], [], [])
    assert (whole.redacted, whole.pseudonymised) == ({"legal_rep_name"}, frozenset())


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
