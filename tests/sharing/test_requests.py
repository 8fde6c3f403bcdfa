"""The access-request state machine: transitions, reasons, narrowing, mass assignment,
deadlines counted in China's working days."""

from __future__ import annotations

from datetime import date

import pytest

from catalog.sharing.requests import due_on
from tests.conftest import approve_request, bearer

BASE = {
    "dataset": "credit_records",
    "items": ["record_id", "subject_id", "list_type"],
    "purpose": "信用核查",
    "legal_basis": "国发〔2016〕33号",
    "period_start": "2026-01-01",
    "period_end": "2030-12-31",
}


@pytest.fixture(scope="module")
def env(access_world):
    return access_world


def _submit(client, tokens, who="consumer_a", **changes):
    return client.post("/requests", json={**BASE, **changes}, headers=bearer(tokens[who]))


def _review(client, tokens, request_id, who, decision="approve", **extra):
    return client.post(
        f"/requests/{request_id}/review",
        headers=bearer(tokens[who]),
        json={"decision": decision, "reason": "审核意见", **extra},
    )


def test_due_dates_follow_chinas_working_days():
    # National Day 2026: 1-7 October off, Saturday 10 October a working day.
    assert due_on(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert due_on(date(2026, 9, 30), 3) == date(2026, 10, 10)
    assert due_on(date(2026, 11, 20), 10) == date(2026, 12, 4)


@pytest.mark.parametrize(
    "smuggled",
    [
        {"status": "approved"},
        {"approver": "office"},
        {"expires_at": "2099-01-01"},
        {"grant": {"items": ["reason"]}},
        {"department_id": 1},
        {"requester_id": 1},
    ],
)
def test_requesters_cannot_set_what_reviewers_decide(env, smuggled):
    client, tokens, _, _ = env
    before = len(client.get("/requests", headers=bearer(tokens["office"])).json())
    response = _submit(client, tokens, **smuggled)
    assert response.status_code == 422
    assert next(iter(smuggled)) in response.text
    assert len(client.get("/requests", headers=bearer(tokens["office"])).json()) == before


def test_the_whole_cycle_and_invalid_transitions(env):
    client, tokens, _, _ = env
    created = _submit(client, tokens)
    assert created.status_code == 201
    body = created.json()
    rid = body["id"]
    assert (body["status"], body["requester"], body["grant"]) == ("submitted", "consumer_a", None)
    # The office does not decide before the provider; another provider does not even see it.
    assert _review(client, tokens, rid, "office").status_code == 409
    assert _review(client, tokens, rid, "population_provider").status_code == 404
    assert _review(client, tokens, rid, "consumer_a").status_code == 403
    # A provider may narrow and filter, but not widen or set the expiry.
    widened = _review(client, tokens, rid, "credit_records_provider", items=["reason"])
    assert widened.status_code == 422
    assert (
        _review(client, tokens, rid, "credit_records_provider", expires_on="2030-01-01").status_code
        == 422
    )
    narrowed = _review(
        client,
        tokens,
        rid,
        "credit_records_provider",
        items=["record_id", "list_type"],
        row_filter=[{"item": "list_type", "op": "eq", "values": ["黑名单"]}],
    )
    assert narrowed.status_code == 200 and narrowed.json()["status"] == "provider_approved"
    assert _review(client, tokens, rid, "credit_records_provider").status_code == 409
    final = _review(client, tokens, rid, "office", expires_on="2030-06-30")
    assert final.status_code == 200
    request = final.json()
    assert request["status"] == "approved" and request["closed_at"]
    grant = request["grant"]
    assert grant["items"] == ["record_id", "list_type"]
    assert grant["row_filter"] == [{"item": "list_type", "op": "eq", "values": ["黑名单"]}]
    assert grant["expires_at"].startswith("2030-06-30T16:00")  # end of the day in Shanghai
    assert [r["stage"] for r in request["reviews"]] == ["provider", "office"]
    # Approved is final: no more reviews, no withdrawal.
    assert _review(client, tokens, rid, "office", "reject").status_code == 409
    assert (
        client.post(f"/requests/{rid}/withdraw", headers=bearer(tokens["consumer_a"])).status_code
        == 409
    )
    rows = client.get(
        "/datasets/credit_records/rows?limit=1000&grant=" + str(grant["id"]),
        headers=bearer(tokens["analyst_a"]),
    ).json()
    assert rows["items"] == ["record_id", "list_type"]
    assert {r["list_type"] for r in rows["rows"]} == {"黑名单"}


def test_rejection_needs_a_reason_and_is_final(env):
    client, tokens, _, _ = env
    rid = _submit(client, tokens, who="consumer_b").json()["id"]
    no_reason = client.post(
        f"/requests/{rid}/review",
        headers=bearer(tokens["credit_records_provider"]),
        json={"decision": "reject", "reason": " "},
    )
    assert no_reason.status_code == 422
    rejected = _review(client, tokens, rid, "credit_records_provider", "reject")
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reviews"][0]["reason"] == "审核意见"
    assert _review(client, tokens, rid, "office").status_code == 409


@pytest.mark.parametrize("reason", [None, "", "  \n\t"])
def test_an_approval_needs_a_reason_at_both_stages(env, reason):
    """README: the provider and the office approve or reject *with a reason*."""
    client, tokens, _, _ = env
    rid = _submit(client, tokens, who="analyst_b").json()["id"]
    decision = (
        {"decision": "approve"} if reason is None else {"decision": "approve", "reason": reason}
    )
    for reviewer, status in (
        ("credit_records_provider", "submitted"),
        ("office", "provider_approved"),
    ):
        refused = client.post(
            f"/requests/{rid}/review", headers=bearer(tokens[reviewer]), json=decision
        )
        assert refused.status_code == 422, refused.text
        assert [e["loc"] for e in refused.json()["detail"]] == [["body", "reason"]]
        seen = client.get(f"/requests/{rid}", headers=bearer(tokens["office"])).json()
        assert (seen["status"], seen["grant"]) == (status, None)  # nothing decided
        # With a reason the same stage goes through, and the reason is on record.
        approved = _review(client, tokens, rid, reviewer)
        assert approved.status_code == 200, approved.text
        assert approved.json()["reviews"][-1]["reason"] == "审核意见"
    assert approved.json()["status"] == "approved"


def test_the_office_cannot_set_an_expiry_past_the_requested_period(env):
    """The office may shorten a grant, never lengthen it: a later expiry is refused, naming
    the field and the period's end, not cut silently to the period."""
    client, tokens, _, _ = env
    rid = _submit(client, tokens, who="analyst_b", period_end="2028-06-30").json()["id"]
    assert _review(client, tokens, rid, "credit_records_provider").status_code == 200
    refused = _review(client, tokens, rid, "office", expires_on="2028-07-01")
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["detail"]
    assert error["loc"] == ["body", "expires_on"]
    assert "2028-06-30" in error["msg"]  # the requested period's end
    seen = client.get(f"/requests/{rid}", headers=bearer(tokens["office"])).json()
    assert (seen["status"], seen["grant"]) == ("provider_approved", None)
    approved = _review(client, tokens, rid, "office", expires_on="2028-06-30")  # its last day
    assert approved.status_code == 200, approved.text
    assert approved.json()["grant"]["expires_at"].startswith("2028-06-30T16:00")


def test_withdrawal_and_visibility(env):
    client, tokens, _, _ = env
    rid = _submit(client, tokens, who="analyst_b").json()["id"]
    # Department A neither sees nor withdraws department B's request.
    assert client.get(f"/requests/{rid}", headers=bearer(tokens["consumer_a"])).status_code == 404
    assert (
        client.post(f"/requests/{rid}/withdraw", headers=bearer(tokens["consumer_a"])).status_code
        == 404
    )
    assert (
        client.get(
            f"/requests/{rid}", headers=bearer(tokens["credit_records_provider"])
        ).status_code
        == 200
    )
    assert (
        client.get(f"/requests/{rid}", headers=bearer(tokens["geography_provider"])).status_code
        == 404
    )
    withdrawn = client.post(f"/requests/{rid}/withdraw", headers=bearer(tokens["consumer_b"]))
    assert withdrawn.json()["status"] == "withdrawn"
    assert _review(client, tokens, rid, "credit_records_provider").status_code == 409


@pytest.mark.parametrize(
    ("changes", "fault"),
    [
        ({"items": ["nonexistent"]}, "no data items"),
        ({"items": []}, "name the data items"),
        ({"unmasked_items": ["list_type"], "items": ["list_type"]}, "not sensitive"),
        ({"unmasked_items": ["subject_name"]}, "among the requested"),
        ({"row_filter": [{"item": "nope", "op": "eq", "values": ["1"]}]}, "no data item"),
        ({"row_filter": [{"item": "list_type", "op": "like", "values": ["%"]}]}, "op"),
        ({"kind": "verification", "service": "identity_name"}, "no verification service"),
        ({"period_end": "2025-01-01", "period_start": "2024-01-01"}, "already ended"),
        ({"dataset": "licences"}, "not shared"),
    ],
)
def test_bad_requests_say_what_is_wrong(env, changes, fault):
    client, tokens, _, _ = env
    response = _submit(client, tokens, **changes)
    assert response.status_code == 422, response.text
    assert fault in response.text


def test_only_consumers_and_analysts_request(env):
    client, tokens, _, _ = env
    for who in ("office", "credit_records_provider"):
        assert _submit(client, tokens, who=who).status_code == 403


def test_deadline_marks_overdue_requests(env):
    client, tokens, clock, _ = env
    pending = _submit(client, tokens).json()
    assert pending["overdue"] is False
    try:
        clock.advance(days=30)
        seen = client.get(f"/requests/{pending['id']}", headers=bearer(tokens["office"])).json()
        assert seen["overdue"] is True
        overdue = client.get("/requests?overdue=true", headers=bearer(tokens["office"])).json()
        assert pending["id"] in {r["id"] for r in overdue}
        assert all(r["status"] in ("submitted", "provider_approved") for r in overdue)
    finally:
        clock.advance(days=-30)


def test_provider_sees_requests_for_its_data_only(env):
    client, tokens, _, _ = env
    approve_request(client, tokens, {**BASE, "dataset": "geography", "items": ["region_code"]})
    seen = client.get("/requests", headers=bearer(tokens["geography_provider"])).json()
    assert seen and {r["dataset"] for r in seen} == {"geography"}
    own = client.get("/requests", headers=bearer(tokens["consumer_b"])).json()
    assert {r["department"] for r in own} == {"11330100002482999W"}
