"""Department scorecards (issue 8 §7): the arithmetic on a hand-built case, the use of a
dataset from the audit log, ranking, and history kept per computation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from stdnum.cn import ric

from api.app import create_app
from catalog.ingest.delivery import run_ingest
from catalog.ingest.rules import compile_rules
from catalog.quality.scorecard import compute, current_month, month_bounds, score
from catalog.sharing.audit import AuditEvent, record
from catalog.sharing.principal import Principal
from catalog.state.db import StateStore
from catalog.store.lake import Lake
from tests.conftest import DEPT_A, DEPT_B, bearer, population_rows, seed_identities, write_delivery

WEIGHTS = {"completeness": 0.2, "validity": 0.25, "uniqueness": 0.1, "timeliness": 0.25, "use": 0.2}


def test_score_is_the_weighted_mean_of_the_measures_present():
    measures = {
        "completeness": 1.0,
        "validity": 0.9,
        "uniqueness": None,  # no data: left out, the other weights rescaled
        "timeliness": 0.5,
        "use": 0.0,
    }
    value, used = score(measures, WEIGHTS)
    assert value == pytest.approx(round((0.2 * 1 + 0.25 * 0.9 + 0.25 * 0.5) / 0.9 * 100, 1))
    assert set(used) == {"completeness", "validity", "timeliness", "use"}
    assert sum(used.values()) == pytest.approx(1, abs=1e-3)
    assert score(dict.fromkeys(measures), WEIGHTS) == (None, {})


def test_month_bounds_are_local_midnights():
    start, end = month_bounds("2026-02", "Asia/Shanghai")
    assert start == datetime(2026, 1, 31, 16, 0, tzinfo=UTC)  # 2026-02-01 00:00 +08:00
    assert end == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_bounds("2026-13", "Asia/Shanghai")


def _wrong_check(number: str) -> str:
    right = ric.calc_check_digit(number[:17])
    return number[:17] + next(c for c in "0123456789X" if c != right)


def _use(store: StateStore, code: str, rows: int, action: str = "read") -> None:
    who = Principal(1, f"user_{code[-4:]}", "consumer", 1, code, "某局")
    event = AuditEvent(
        action=action, result="ok", actor=who, dataset="population", row_count=rows, purpose="核查"
    )
    record(store, event, datetime.now(UTC))


def test_a_department_scorecard_by_hand(tmp_path, settings, contracts):
    contract = contracts["population"]
    rows = population_rows(46, seed=11)
    rows[0] = dict(rows[0], id_number=_wrong_check(rows[0]["id_number"]))
    rows[1] = dict(rows[1], id_number=_wrong_check(rows[1]["id_number"]))
    rows[2] = dict(rows[2], name="")
    lake = Lake(settings)
    outcome = run_ingest(contract, [write_delivery(contract, rows, tmp_path / "p.csv")], lake)
    assert outcome.status == "published", outcome.message
    store = StateStore(settings)
    _use(store, DEPT_A, 10)
    _use(store, DEPT_A, 5)
    _use(store, DEPT_B, 1, action="verify")
    _use(store, contract.catalog.provider.code, 99)  # the provider's own read is no benefit
    now = datetime.now(UTC)
    month = current_month(now, settings.timezone)
    with lake.reader() as con, store.reading() as session:
        cards = compute(
            con,
            session,
            contracts.values(),
            month,
            zone=settings.timezone,
            weights=WEIGHTS,
            grace_ratio=0.25,
            now=now + timedelta(seconds=1),
        )
    lake.close()
    store.close()
    by_code = {c["department_code"]: c for c in cards}
    card = by_code[contract.catalog.provider.code]
    m = card["measures"]
    dimensions = [rule.dimension for rule in compile_rules(contract)]
    required = dimensions.count("completeness")
    validity_rules = dimensions.count("validity")
    assert required and dimensions.count("uniqueness") == 1  # the key
    # 46 rows delivered: one misses a required item, two carry a wrong check character.
    assert m["completeness"] == pytest.approx(1 - 1 / (46 * required))
    assert m["validity"] == pytest.approx(1 - 2 / (46 * validity_rules))
    assert m["uniqueness"] == pytest.approx(1.0)
    assert m["timeliness"] == pytest.approx(1.0)  # published just now: not overdue
    assert m["use"] == 1.0  # its one published dataset was used by other departments
    detail = m["use_detail"]
    assert (detail["calls"], detail["rows_served"]) == (3, 16)
    assert {u["department_code"] for u in detail["by_consumer"]} == {DEPT_A, DEPT_B}
    assert m["quantity"] == {"datasets": 1, "rows": 43, "versions": 1, "deliveries_rejected": 0}
    expected, _ = score({k: m[k] for k in WEIGHTS}, WEIGHTS)
    assert card["score"] == expected and card["rank"] == 1
    # Departments that published nothing have no score and no rank.
    assert all(c["score"] is None and c["rank"] is None for c in cards if c is not card)


def test_scorecards_are_kept_per_computation_and_shown_by_role(tmp_path, settings, contracts):
    contract = contracts["population"]
    lake = Lake(settings)
    path = write_delivery(contract, population_rows(20), tmp_path / "p.csv")
    assert run_ingest(contract, [path], lake).status == "published"
    lake.close()
    tokens = seed_identities(settings, contracts)
    with TestClient(create_app(settings)) as client:
        office = bearer(tokens["office"])
        assert client.get("/quality/scorecards", headers=office).status_code == 404
        first = client.post("/quality/scorecards", headers=office)
        second = client.post("/quality/scorecards", headers=office)
        latest = client.get("/quality/scorecards", headers=office)
        history = client.get("/quality/scorecards/history", headers=office)
        own = client.get("/quality/scorecards", headers=bearer(tokens["population_provider"]))
        consumer = client.post("/quality/scorecards", headers=bearer(tokens["consumer_a"]))
        bad = client.get("/quality/scorecards?month=2026-13", headers=office)
        benefit = client.get("/quality/benefit/population", headers=office)
    assert first.status_code == 200 and second.status_code == 200
    departments = len({c.catalog.provider.code for c in contracts.values()})
    assert len(latest.json()) == departments and len(history.json()) == 2 * departments
    assert [c["department_code"] for c in own.json()] == [contract.catalog.provider.code]
    assert all(c["weights"] for c in latest.json() if c["score"] is not None)
    assert consumer.status_code == 403
    assert bad.status_code == 422 and "month" in bad.text
    assert benefit.status_code == 200 and benefit.json()["calls"] == 0
