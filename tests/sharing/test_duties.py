"""Duties kept apart (SPEC §6; docs/access.md): no single user, the office included, reads
data outside the two-stage review. The office registers and resets accounts but never holds
their tokens: it gets a one-time activation code to hand over, and an account acts only
once someone else confirms it (its own department, or where that has nobody, another
office user: flagged). Every audit entry names the real actor and the token used.

Each test plays the attack the security review found: the office making or taking over a
provider account and reading as it."""

from __future__ import annotations

import pytest

from tests.conftest import DEPT_A, audit_entries, bearer, confirm_as_operator

POLICE = "11330100002482111E"  # provider of the population register (schemas/population.yaml)
CREDIT = "credit_records_provider"


@pytest.fixture(scope="module")
def env(access_world):
    client, tokens, clock, settings = access_world
    office = bearer(tokens["office"])
    # A second office user, confirmed by the machine operator (bootstrap gives one only).
    added = client.post(
        "/admin/users",
        headers=office,
        json={"username": "office_two", "department_code": _office_code(client, office),
              "role": "office"},
    )  # fmt: skip
    assert added.status_code == 201, added.text
    token = _activate(client, "office_two", added.json()["activation_code"])
    confirm_as_operator(settings, "office_two")
    return client, {**tokens, "office_two": token}, clock, settings


def _office_code(client, office) -> str:
    return client.get("/me", headers=office).json()["department_code"]


def _activate(client, username: str, code: str) -> str:
    issued = client.post("/activate", json={"username": username, "code": code})
    assert issued.status_code == 201, issued.text
    return issued.json()["token"]


def _register(client, office, username: str, department: str, role: str) -> str:
    added = client.post(
        "/admin/users",
        headers=office,
        json={"username": username, "department_code": department, "role": role},
    )
    assert added.status_code == 201, added.text
    return added.json()["activation_code"]


def _rows(client, token: str):
    return client.get("/datasets/population/rows?limit=5", headers=bearer(token))


def test_a_provider_account_made_by_the_office_reads_nothing_until_its_department_confirms(env):
    client, tokens, _, _ = env
    office = bearer(tokens["office"])
    code = _register(client, office, "police_new", POLICE, "provider")
    token = _activate(client, "police_new", code)  # the office holds the code: it can do this
    refused = _rows(client, token)
    assert refused.status_code == 401 and "not confirmed" in refused.text
    # Neither office user may confirm: the department has a confirmed user of its own.
    for who in ("office", "office_two"):
        denied = client.post("/department/users/police_new/confirm", headers=bearer(tokens[who]))
        assert denied.status_code == 403, (who, denied.text)
    # Nor a user of another department.
    other = client.post(
        "/department/users/police_new/confirm", headers=bearer(tokens["consumer_a"])
    )
    assert other.status_code == 403
    assert _rows(client, token).status_code == 401
    # The police bureau's own user confirms: the account works, with no flag.
    confirmed = client.post(
        "/department/users/police_new/confirm", headers=bearer(tokens["population_provider"])
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["flag"] is None
    assert confirmed.json()["confirmed_by"] == "population_provider"
    assert _rows(client, token).status_code == 200


def test_a_reset_takes_an_account_away_from_everyone_and_the_resetter_cannot_confirm_it(env):
    client, tokens, _, _ = env
    office = bearer(tokens["office"])
    before = client.get("/datasets/credit_records/rows?limit=1", headers=bearer(tokens[CREDIT]))
    assert before.status_code == 200
    reset = client.post(f"/admin/users/{CREDIT}/activation", headers=office)
    assert reset.status_code == 200, reset.text
    assert reset.json()["revoked_tokens"]  # the provider's own token stops at once
    old = client.get("/me", headers=bearer(tokens[CREDIT]))
    assert old.status_code == 401
    taken = _activate(client, CREDIT, reset.json()["activation_code"])
    assert client.get("/me", headers=bearer(taken)).status_code == 401  # unconfirmed
    # The office user who reset the account cannot confirm it.
    mine = client.post(f"/department/users/{CREDIT}/confirm", headers=office)
    assert mine.status_code == 403 and "registered or reset" in mine.text
    assert client.get("/datasets/credit_records/rows", headers=bearer(taken)).status_code == 401
    # A second office user may, as the department has no other confirmed user: flagged.
    second = client.post(
        f"/department/users/{CREDIT}/confirm", headers=bearer(tokens["office_two"])
    )
    assert second.status_code == 200, second.text
    assert "not by department" in second.json()["flag"]
    listed = {u["username"]: u for u in client.get("/admin/users", headers=office).json()}
    assert listed[CREDIT]["flag"] and listed[CREDIT]["reset_by"] == "office"


def test_an_office_account_is_confirmed_by_another_office_user_only(env):
    """The review had a consumer confirm an office account the office registered in the
    consumer's department, then used it to take over a provider account."""
    client, tokens, _, settings = env
    office = bearer(tokens["office"])
    code = _register(client, office, "office_three", DEPT_A, "office")
    _activate(client, "office_three", code)
    by_department = client.post(
        "/department/users/office_three/confirm", headers=bearer(tokens["consumer_a"])
    )
    assert by_department.status_code == 403 and "office user" in by_department.text
    refused = audit_entries(settings, action="user.confirm", username="consumer_a")
    assert refused and refused[0].result == "denied"  # refused duty actions are on record
    by_office = client.post(
        "/department/users/office_three/confirm", headers=bearer(tokens["office_two"])
    )
    assert by_office.status_code == 403  # another department's account: not its to confirm


def test_no_route_hands_the_office_a_token_of_another_user(env):
    client, tokens, _, _ = env
    office = bearer(tokens["office"])
    # The route that did it once is gone; registering and resetting give codes, not tokens.
    gone = client.post("/admin/users/consumer_a/tokens", json={}, headers=office)
    assert gone.status_code in (404, 405)
    for route, body in (
        ("/admin/users", {"username": "x_clerk", "department_code": DEPT_A, "role": "consumer"}),
        ("/admin/users/consumer_b/activation", None),
    ):
        answer = client.post(route, json=body, headers=office)
        assert answer.status_code in (200, 201), answer.text
        assert "gs_" not in answer.text
    # A user's token list shows ids, never values; /me/tokens issues only to the caller.
    mine = client.post("/me/tokens", json={"label": "second"}, headers=office)
    assert mine.status_code == 201
    assert client.get("/me", headers=bearer(mine.json()["token"])).json()["username"] == "office"
    theirs = client.get("/admin/users/consumer_a/tokens", headers=office).json()
    assert theirs and all("token" not in t for t in theirs)


def test_the_office_reads_no_rows_by_role(env):
    client, tokens, _, _ = env
    for dataset in ("population", "legal_persons", "geography", "credit_records"):
        answer = client.get(f"/datasets/{dataset}/rows", headers=bearer(tokens["office"]))
        assert answer.status_code == 403, (dataset, answer.text)


def test_a_user_cannot_revoke_another_users_token_through_their_own_list(env):
    client, tokens, _, _ = env
    theirs = client.get("/admin/users/consumer_a/tokens", headers=bearer(tokens["office"])).json()
    attempt = client.post(
        f"/me/tokens/{theirs[0]['id']}/revoke", headers=bearer(tokens["analyst_a"])
    )
    assert attempt.status_code == 404
    assert client.get("/me", headers=bearer(tokens["consumer_a"])).status_code == 200


def test_activation_refusals_say_the_same_whatever_is_wrong(env):
    client, _, _, _ = env
    unknown = client.post("/activate", json={"username": "nobody_here", "code": "ga_x"})
    wrong = client.post("/activate", json={"username": "consumer_a", "code": "ga_x"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


def test_a_disabled_user_is_refused_at_once_and_keeps_their_history(env):
    client, tokens, _, _ = env
    office = bearer(tokens["office"])
    me = client.get("/me", headers=bearer(tokens["analyst_a"])).json()
    self_disable = client.post(
        "/admin/users/office/disable", json={"reason": "测试"}, headers=office
    )
    assert self_disable.status_code == 403
    no_reason = client.post("/admin/users/analyst_a/disable", json={"reason": ""}, headers=office)
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    disabled = client.post(
        "/admin/users/analyst_a/disable", json={"reason": "调离岗位"}, headers=office
    )
    assert disabled.status_code == 200, disabled.text
    refused = client.get("/me", headers=bearer(tokens["analyst_a"]))
    assert refused.status_code == 401 and "disabled" in refused.text
    listed = {u["username"]: u for u in client.get("/admin/users", headers=office).json()}
    assert listed["analyst_a"]["disabled_reason"] == "调离岗位"
    assert not listed["analyst_a"]["active"]
    history = client.get("/audit?username=analyst_a", headers=office).json()
    assert history  # the user's entries stay
    enabled = client.post("/admin/users/analyst_a/enable", headers=office)
    assert enabled.status_code == 200
    assert client.get("/me", headers=bearer(tokens["analyst_a"])).json() == me


def test_every_audit_entry_names_the_actor_and_the_token(env):
    client, tokens, _, _ = env
    office = bearer(tokens["office"])
    office_token = client.get("/me", headers=office).json()["token_id"]
    _register(client, office, "audited_clerk", DEPT_A, "consumer")
    consumer = bearer(tokens["consumer_a"])
    consumer_token = client.get("/me", headers=consumer).json()["token_id"]
    assert client.get("/datasets/geography/rows?limit=1", headers=consumer).status_code == 200
    log = client.get("/audit?limit=50", headers=office).json()
    added = next(e for e in log if e["action"] == "user.add" and "audited_clerk" in str(e))
    assert (added["username"], added["token_id"]) == ("office", office_token)
    read = next(e for e in log if e["action"] == "read" and e["username"] == "consumer_a")
    assert read["token_id"] == consumer_token
    assert client.get("/audit/verify", headers=office).json()["intact"] is True
