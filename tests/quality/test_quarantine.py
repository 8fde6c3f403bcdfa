"""Quarantine you can work with (issue 8 §4): rows kept with rule and reason, resolved by a
department's corrected re-delivery, read only by the office (sensitive items redacted) and
the providing department (its own rows in clear), every read audited."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from stdnum.cn import ric

from api.app import create_app
from catalog.ingest.delivery import run_ingest
from catalog.quality.quarantine import QuarantineQuery, counts, list_rows
from catalog.store.lake import Lake
from tests.conftest import audit_entries, bearer, population_rows, seed_identities, write_delivery

N_VALID = 40


def _bad_check(number: str) -> str:
    """The same number with a wrong check character (GB 11643), computed by stdnum."""
    right = ric.calc_check_digit(number[:17])
    wrong = next(c for c in "0123456789X" if c != right)
    return number[:17] + wrong


@pytest.fixture
def deliveries(tmp_path, settings, contracts):
    """v1: 40 good rows plus 3 with a wrong check character and 1 without a name (kept in
    quarantine); v2: the 4 corrected; returns (lake, rows of v1's defects, contract)."""
    contract = contracts["population"]
    good = population_rows(N_VALID + 4, seed=7)
    clean, fixable = good[:N_VALID], good[N_VALID:]
    broken = [dict(r, id_number=_bad_check(r["id_number"])) for r in fixable[:3]]
    broken.append(dict(fixable[3], name=""))
    lake = Lake(settings)
    first = run_ingest(
        contract, [write_delivery(contract, clean + broken, tmp_path / "v1.csv")], lake
    )
    assert first.status == "published", first.message
    yield lake, contract, broken, fixable
    lake.close()


def test_rows_are_kept_with_rule_and_reason_until_a_correction_resolves_them(tmp_path, deliveries):
    lake, contract, _broken, fixable = deliveries
    with lake.reader() as con:
        total, rows = list_rows(con, contract, QuarantineQuery(status="open"), "owner")
    assert total == 4
    by_rule = sorted(r for row in rows for r in row["rules"])
    assert by_rule.count("name.required") == 1
    assert sum(1 for r in by_rule if r.startswith("id_number.")) == 3
    assert all(row["reason"] and row["file"] == "v1.csv" and row["row"] >= 1 for row in rows)

    # The department re-delivers the three numbers (with their right check characters)
    # and the nameless row with its name: the same keys publish, the rows are resolved.
    corrected = write_delivery(contract, fixable, tmp_path / "v2.csv")
    second = run_ingest(contract, [corrected], lake)
    assert second.status == "published", second.message
    with lake.reader() as con:
        open_total, _ = list_rows(con, contract, QuarantineQuery(status="open"), "owner")
        done_total, done = list_rows(con, contract, QuarantineQuery(status="resolved"), "owner")
        summary = counts(con, [contract])[0]
    # A bad check character changes the key: the corrected number is another key, so those
    # three stay open (reported, never silently dropped); the nameless row's key was right.
    assert done_total == 1 and open_total == 3
    assert done[0]["resolved_version"] == second.version.version and done[0]["resolved_run_id"]
    assert (summary.open, summary.resolved) == (3, 1)
    assert summary.open_by_rule.get("name.required", 0) == 0


def test_reads_are_for_the_office_redacted_and_the_provider_in_clear(tmp_path, deliveries):
    lake, contract, broken, _ = deliveries
    lake.close()
    settings = lake.settings
    tokens = seed_identities(settings, {"population": contract})
    raw_numbers = {row["id_number"] for row in broken}
    with TestClient(create_app(settings)) as client:
        provider = client.get(
            "/quality/quarantine/population", headers=bearer(tokens["population_provider"])
        )
        office = client.get("/quality/quarantine/population", headers=bearer(tokens["office"]))
        consumer = client.get(
            "/quality/quarantine/population", headers=bearer(tokens["consumer_a"])
        )
        summary = client.get("/quality/quarantine", headers=bearer(tokens["office"]))
        bad_status = client.get(
            "/quality/quarantine/population?status=closed", headers=bearer(tokens["office"])
        )
    assert provider.status_code == 200 and provider.json()["shown_in_clear"] is True
    provided = provider.json()["rows"]
    assert {r["values"]["id_number"] for r in provided} == raw_numbers
    # An item named like a quarantine field keeps its own value (population has "status").
    assert {r["values"]["status"] for r in provided} == {"正常"}
    assert {r["status"] for r in provided} == {"open"}
    assert office.status_code == 200 and office.json()["shown_in_clear"] is False
    assert all("values" not in r and r["rules"] and r["row"] for r in office.json()["rows"])
    body = office.text
    assert not any(number in body for number in raw_numbers)
    assert not any(row["name"] and row["name"] in body for row in broken)
    assert not any(row["address"] in body for row in broken)
    assert consumer.status_code == 403
    assert bad_status.status_code == 422 and "status" in bad_status.text
    assert summary.status_code == 200
    dataset = next(d for d in summary.json()["datasets"] if d["dataset"] == "population")
    assert dataset["open"] == 4
    reads = audit_entries(settings, action="quarantine.read")
    assert {e.username for e in reads} >= {"population_provider", "office"}
    assert all(e.row_count == 4 for e in reads if e.result == "ok")
