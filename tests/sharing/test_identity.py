"""Identity: every route's roles (walked from the OpenAPI document), bearer tokens stored
hashed with expiry and revocation, the office's user administration, the bootstrap CLI.
The duties kept apart around accounts (activation, confirmation): tests/sharing/test_duties.py."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from govshare.cli import app as cli
from tests.conftest import bearer, confirm_as_operator

ROLES = ("office", "provider", "consumer", "analyst")
ALL = set(ROLES)
PUBLIC: set[str] = set()
# What SPEC §1/§6 give each role, written out here: a new route must be added to this table.
EXPECTED = {
    ("get", "/health"): PUBLIC,
    ("get", "/catalog"): PUBLIC,
    ("get", "/catalog.jsonld"): PUBLIC,
    ("get", "/catalog.ttl"): PUBLIC,
    ("get", "/catalog.csv"): PUBLIC,
    ("get", "/catalog.xlsx"): PUBLIC,
    ("get", "/catalog/search"): PUBLIC,
    ("get", "/api/3/action/{action}"): PUBLIC,
    ("post", "/api/3/action/{action}"): PUBLIC,
    ("get", "/catalog/{dataset}"): PUBLIC,
    ("get", "/catalog/{dataset}/versions/{number}"): PUBLIC,
    ("get", "/catalog/{dataset}/diff"): PUBLIC,
    ("get", "/catalog/releases"): PUBLIC,
    ("get", "/catalog/releases/diff"): PUBLIC,
    ("get", "/catalog/releases/{release}"): PUBLIC,
    ("get", "/datasets/{dataset}/rows"): {"provider", "consumer", "analyst"},
    ("get", "/datasets/{dataset}/export"): {"provider", "consumer", "analyst"},
    ("get", "/datasets/{dataset}/changes"): {"provider", "consumer", "analyst"},
    ("post", "/verify/{service}"): {"consumer", "analyst"},
    ("post", "/requests"): {"consumer", "analyst"},
    ("get", "/requests"): ALL,
    ("get", "/requests/{request_id}"): ALL,
    ("post", "/requests/{request_id}/review"): {"provider", "office"},
    ("post", "/requests/{request_id}/withdraw"): {"consumer", "analyst"},
    ("get", "/grants"): ALL,
    ("post", "/grants/{grant_id}/revoke"): {"provider", "office"},
    ("get", "/me"): ALL,
    # A user's own tokens: only ever for themselves (SPEC §6, duties kept apart).
    ("post", "/activate"): PUBLIC,
    ("get", "/me/tokens"): ALL,
    ("post", "/me/tokens"): ALL,
    ("post", "/me/tokens/{token_id}/revoke"): ALL,
    # A department confirms its own new users, whatever their role.
    ("post", "/department/users/{username}/confirm"): ALL,
    ("get", "/admin/departments"): {"office"},
    ("post", "/admin/departments"): {"office"},
    ("get", "/admin/users"): {"office"},
    ("post", "/admin/users"): {"office"},
    ("post", "/admin/users/{username}/activation"): {"office"},
    ("post", "/admin/users/{username}/disable"): {"office"},
    ("post", "/admin/users/{username}/enable"): {"office"},
    ("get", "/admin/users/{username}/tokens"): {"office"},
    ("post", "/admin/tokens/{token_id}/revoke"): {"office"},
    ("get", "/audit"): {"provider", "office"},
    ("get", "/audit/usage"): {"provider", "office"},
    ("get", "/audit/verify"): {"office"},
    # Quality (issue 8): quarantine and evaluation for the office and the providing
    # department; freshness is catalog metadata (public); notifications for everyone
    # concerned (each sees their department's).
    ("get", "/quality/quarantine"): {"provider", "office"},
    ("get", "/quality/quarantine/{dataset}"): {"provider", "office"},
    ("get", "/quality/freshness"): PUBLIC,
    ("get", "/quality/scorecards"): {"provider", "office"},
    ("post", "/quality/scorecards"): {"office"},
    ("get", "/quality/scorecards/history"): {"provider", "office"},
    ("get", "/quality/benefit/{dataset}"): {"provider", "office"},
    ("get", "/quality/references"): {"provider", "office"},
    ("get", "/notifications"): ALL,
}
TOKEN_OF = {
    "office": "office",
    "provider": "population_provider",
    "consumer": "consumer_b",
    "analyst": "analyst_b",
}
PARAMS = {
    "dataset": "population",
    "number": "1",
    "release": "1",
    "service": "identity_name",
    "request_id": "999",
    "grant_id": "999",
    "username": "nobody",
    "token_id": "99999",
    "action": "status_show",
}


@pytest.fixture(scope="module")
def env(access_world):
    return access_world


def _routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    return {(m, p): op for p, ops in paths.items() for m, op in ops.items()}


def test_every_route_is_in_the_role_table(env):
    routes = _routes(env[0])
    assert set(routes) == set(EXPECTED)
    for key, op in routes.items():  # the document tells callers the roles too
        assert set(op["x-roles"]) == (EXPECTED[key] or {"public"})


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_route_role_matrix(env, key):
    client, tokens, _, _ = env
    method, path = key
    url = re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], path)
    anonymous = client.request(method, url, json={})
    if not EXPECTED[key]:
        # Public: answered without a token (an empty body may be refused as such).
        assert anonymous.status_code in (200, 422), anonymous.text
        return
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert client.request(method, url, json={}, headers=bearer("gs_forged")).status_code == 401
    for role in ROLES:
        response = client.request(method, url, json={}, headers=bearer(tokens[TOKEN_OF[role]]))
        role_refusal = response.status_code == 403 and "may not do this" in response.text
        assert role_refusal == (role not in EXPECTED[key]), (key, role, response.text)
        assert response.status_code != 401


def test_tokens_are_stored_hashed(env):
    _, tokens, _, settings = env
    state = Path(settings.state_url.removeprefix("sqlite:///"))
    with sqlite3.connect(state) as con:
        hashes = {h for (h,) in con.execute("SELECT token_hash FROM tokens")}
    assert hashlib.sha256(tokens["office"].encode()).hexdigest() in hashes
    for path in state.parent.glob("state.sqlite*"):
        assert tokens["office"].encode() not in path.read_bytes()


def test_office_registers_users_and_revokes_tokens_it_never_holds(env):
    client, tokens, _, _ = env
    office = bearer(tokens["office"])
    bad = client.post("/admin/departments", json={"code": "123", "name": "某局"}, headers=office)
    assert bad.status_code == 422 and "not a valid unified social credit code" in bad.text
    made = client.post(
        "/admin/departments",
        json={"code": "113301000024856665", "name": "市统计局"},
        headers=office,
    )
    assert made.status_code == 201, made.text
    # One body, one department: other spellings of a registered code (GB 32100 ignores
    # case, spaces and dashes) are the same department.
    for spelling in ("11330100002482111e", "1133-0100-0024-8211-1E", "113301000024856665"):
        again = client.post(
            "/admin/departments", json={"code": spelling, "name": "某局"}, headers=office
        )
        assert again.status_code == 422 and "already registered" in again.text, spelling
    user = client.post(
        "/admin/users",
        headers=office,
        json={
            "username": "stats_analyst",
            "department_code": "113301000024856665",
            "role": "analyst",
        },
    )
    assert user.status_code == 201
    body = user.json()
    assert body["confirmed"] is False and body["activation_code"].startswith("ga_")
    assert "token" not in body  # the office gets a code to hand over, never a token
    assert (
        client.post(
            "/admin/users",
            headers=office,
            json={"username": "x_admin", "department_code": "113301000024856665", "role": "root"},
        ).status_code
        == 422
    )
    # The user exchanges the code for their own token; a second use of the code fails.
    activation = {"username": "stats_analyst", "code": body["activation_code"]}
    issued = client.post("/activate", json=activation)
    assert issued.status_code == 201, issued.text
    assert client.post("/activate", json=activation).status_code == 401
    token = issued.json()["token"]
    # The new department has no confirmed user, so the office confirms: flagged.
    confirmed = client.post("/department/users/stats_analyst/confirm", headers=office)
    assert confirmed.status_code == 403  # ... but not the office user who registered them
    confirm_as_operator(env[3], "stats_analyst")
    me = client.get("/me", headers=bearer(token)).json()
    assert (me["username"], me["role"], me["department_code"]) == (
        "stats_analyst",
        "analyst",
        "113301000024856665",
    )
    listed = client.get("/admin/users/stats_analyst/tokens", headers=office).json()
    assert [t["id"] for t in listed] == [issued.json()["id"]]
    assert all("token" not in t for t in listed)
    revoked = client.post(f"/admin/tokens/{issued.json()['id']}/revoke", headers=office)
    assert revoked.status_code == 200 and revoked.json()["token"] is None
    refused = client.get("/me", headers=bearer(token))
    assert refused.status_code == 401 and "revoked" in refused.text
    log = client.get("/audit?username=stats_analyst", headers=office).json()
    assert "token.refused" in {e["action"] for e in log}


def test_tokens_expire(env):
    client, tokens, clock, _ = env
    assert client.get("/me", headers=bearer(tokens["consumer_b"])).status_code == 200
    try:
        clock.advance(days=91)
        expired = client.get("/me", headers=bearer(tokens["consumer_b"]))
        assert expired.status_code == 401 and "expired" in expired.text
    finally:
        clock.advance(days=-91)


runner = CliRunner()


def test_cli_bootstrap_tokens_and_revocation(tmp_path, monkeypatch, world):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.conftest import world_settings

    monkeypatch.setenv("GOVSHARE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    args = [
        "admin",
        "bootstrap",
        "--department-code",
        "11330100002483888A",
        "--department-name",
        "信息办",
        "--username",
        "chief",
    ]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    token = re.search(r"gs_[\w-]+", first.output).group(0)
    again = runner.invoke(cli, args)
    assert again.exit_code == 2 and "exists already" in again.output
    assert (
        runner.invoke(cli, ["admin", "department", "11330100002484777P", "市民政局"]).exit_code == 0
    )
    added = runner.invoke(
        cli, ["admin", "user", "clerk", "--department", "11330100002484777P", "--role", "consumer"]
    )
    assert added.exit_code == 0, added.output
    code = re.search(r"ga_[\w-]+", added.output).group(0)
    assert "gs_" not in added.output  # a code to hand over, not a token
    assert runner.invoke(cli, ["admin", "token", "clerk"]).exit_code != 0  # no such command

    settings = world_settings(world, tmp_path / "home")
    with TestClient(create_app(settings)) as client:
        assert client.get("/me", headers=bearer(token)).json()["role"] == "office"
        activated = client.post("/activate", json={"username": "clerk", "code": code})
        assert activated.status_code == 201, activated.text
        clerk, token_id = activated.json()["token"], activated.json()["id"]
        unconfirmed = client.get("/me", headers=bearer(clerk))
        assert unconfirmed.status_code == 401 and "not confirmed" in unconfirmed.text
        confirmed = runner.invoke(cli, ["admin", "confirm", "clerk"])
        assert confirmed.exit_code == 0 and "flagged" in confirmed.output
        assert client.get("/me", headers=bearer(clerk)).json()["username"] == "clerk"
        listed = runner.invoke(cli, ["admin", "users"])
        assert "machine operator" in listed.output
        assert runner.invoke(cli, ["admin", "revoke", str(token_id)]).exit_code == 0
        assert client.get("/me", headers=bearer(clerk)).status_code == 401
        reset = runner.invoke(cli, ["admin", "reset", "clerk"])
        assert reset.exit_code == 0 and re.search(r"ga_[\w-]+", reset.output)
        disabled = runner.invoke(cli, ["admin", "disable", "chief", "--reason", "离职"])
        assert disabled.exit_code == 0, disabled.output
        assert client.get("/me", headers=bearer(token)).status_code == 401
        assert runner.invoke(cli, ["admin", "enable", "chief"]).exit_code == 0
        assert client.get("/me", headers=bearer(token)).status_code == 200
    verified = runner.invoke(cli, ["audit", "verify"])
    assert verified.exit_code == 0 and "intact" in verified.output
    shown = runner.invoke(cli, ["audit", "show"])
    for action in ("token.revoke", "admin.bootstrap", "user.confirm", "user.reset", "user.disable"):
        assert action in shown.output


def test_demo_identities_are_ready_to_use(world, tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from catalog.contracts import load_contracts
    from catalog.settings import Settings
    from govshare.demo_access import seed
    from tests.conftest import world_settings

    served = world_settings(world, tmp_path)
    # Seeding touches only the state database; its own home keeps the token list apart.
    settings = Settings(
        home=tmp_path / "home", schemas_dir=world.schemas_dir, state_db=served.state_db
    )
    first = {u.username: u.token for u in seed(settings, load_contracts(settings.schemas_dir))}
    second = {u.username: u.token for u in seed(settings, load_contracts(settings.schemas_dir))}
    listing = tmp_path / "home" / "demo-tokens.txt"
    assert listing.stat().st_mode & 0o077 == 0
    assert second["civil_consumer"] in listing.read_text(encoding="utf-8")
    with TestClient(create_app(served)) as client:
        consumer = bearer(second["civil_consumer"])
        assert second == first  # a demo re-run keeps the users' working tokens: none issued
        rows = client.get("/datasets/population/rows?limit=5", headers=consumer).json()
        assert rows["unmasked"] == ["name"] and rows["rows"]
        answer = client.post(
            "/verify/identity_name",
            headers=consumer,
            json={"id_number": "11010519491231002X", "name": "某"},
        )
        assert answer.status_code == 200 and answer.json()["answer"] is False
        requests = client.get("/requests", headers=bearer(second["office"])).json()
        assert sorted(r["status"] for r in requests) == ["approved", "approved"]


def test_migrations_match_the_models(tmp_path):
    from alembic import command

    from catalog.settings import Settings
    from catalog.state.db import StateStore, alembic_config

    store = StateStore(Settings(home=tmp_path))
    command.check(alembic_config(store.engine))  # raises when the models drift from migrations
    store.close()
