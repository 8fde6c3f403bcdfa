"""The audit trail: every use recorded, tampering detected, a failed record refuses the action."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from govshare.cli import app as cli
from tests.conftest import approve_request, audit_entries, bearer

runner = CliRunner()


@pytest.fixture(scope="module")
def env(access_world):
    client, tokens, _, _ = access_world
    approve_request(
        client,
        tokens,
        {
            "dataset": "population",
            "items": ["id_number", "status"],
            "purpose": "审计测试",
            "legal_basis": "测试",
            "period_start": "2026-01-01",
            "period_end": "2030-12-31",
        },
    )
    for who in ("consumer_a", "consumer_b", "population_provider"):
        client.get("/datasets/population/rows?limit=7", headers=bearer(tokens[who]))
    client.get("/datasets/legal_persons/rows?limit=3", headers=bearer(tokens["consumer_b"]))
    return access_world


def _state_file(settings) -> Path:
    return Path(settings.state_url.removeprefix("sqlite:///"))


def test_reads_requests_and_decisions_are_recorded(env):
    client, tokens, _, _ = env
    log = client.get("/audit?limit=1000", headers=bearer(tokens["office"])).json()
    actions = {e["action"] for e in log}
    assert {"request.submit", "request.review", "grant.create", "read"} <= actions
    read = next(e for e in log if e["action"] == "read" and e["username"] == "consumer_a")
    assert read["dataset"] == "population" and read["version"] == 1
    assert read["items"] == ["id_number", "status"] and read["row_count"] == 7
    assert read["purpose"] == "审计测试" and read["department_code"] == "11330100002484777P"
    denied = [e for e in log if e["username"] == "consumer_b" and e["dataset"] == "population"]
    assert denied and denied[0]["result"] == "denied"


def test_wrong_roles_and_listings_are_recorded(env):
    client, tokens, _, settings = env
    office = bearer(tokens["office"])
    wrong = client.get("/admin/users", headers=bearer(tokens["consumer_b"]))
    assert wrong.status_code == 403
    denied = audit_entries(settings, username="consumer_b", action="role.denied")
    assert denied and denied[0].detail["route"] == "/admin/users"
    assert client.get("/requests?status=approved", headers=office).status_code == 200
    listed = audit_entries(settings, username="office", action="request.list")
    assert listed and listed[0].detail["query"] == {"status": "approved"}


def test_refusals_of_a_revoked_token_do_not_grow_the_log_without_bound(env):
    """A token revoked long ago, used 200 times: one entry per window, the next one counting
    those left out; none is lost."""
    client, tokens, clock, settings = env
    issued = client.post(
        "/me/tokens", json={"label": "to revoke"}, headers=bearer(tokens["consumer_b"])
    )
    token, token_id = issued.json()["token"], issued.json()["id"]
    client.post(f"/me/tokens/{token_id}/revoke", headers=bearer(tokens["consumer_b"]))
    before = len(audit_entries(settings, action="token.refused"))
    for _ in range(200):
        assert client.get("/me", headers=bearer(token)).status_code == 401
    during = audit_entries(settings, action="token.refused")
    assert len(during) - before == 1
    clock.advance(minutes=settings.refusal_log_window_minutes + 1)
    try:
        assert client.get("/me", headers=bearer(token)).status_code == 401
    finally:
        clock.advance(minutes=-(settings.refusal_log_window_minutes + 1))
    after = audit_entries(settings, action="token.refused")
    assert len(after) - before == 2
    assert after[0].detail["suppressed"] == 199 and after[0].token_id == token_id


def test_search_filters_and_provider_view(env):
    client, tokens, _, _ = env
    mine = client.get("/audit?username=consumer_b", headers=bearer(tokens["office"])).json()
    assert mine and {e["username"] for e in mine} == {"consumer_b"}
    seen = client.get("/audit?limit=1000", headers=bearer(tokens["population_provider"])).json()
    assert seen and {e["dataset"] for e in seen} == {"population"}
    assert {"consumer_a", "consumer_b"} <= {e["username"] for e in seen}
    assert client.get("/audit", headers=bearer(tokens["consumer_a"])).status_code == 403


def test_usage_statistics_count_rows_served(env):
    client, tokens, _, _ = env
    usage = client.get("/audit/usage?dataset=population", headers=bearer(tokens["office"])).json()
    reads = {u["department_code"]: u for u in usage if u["action"] == "read"}
    assert reads["11330100002484777P"]["rows"] >= 7
    legal = client.get("/audit/usage", headers=bearer(tokens["legal_persons_provider"])).json()
    assert {u["dataset"] for u in legal} == {"legal_persons"}
    assert sum(u["rows"] for u in legal if u["action"] == "read") >= 3


def test_the_log_is_append_only_in_the_database(env):
    with sqlite3.connect(_state_file(env[3])) as con:
        for statement in ("UPDATE audit_entries SET result = 'ok'", "DELETE FROM audit_entries"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                con.execute(statement)


def _copy(settings, folder: Path) -> Path:
    """A copy of the state database to tamper with (the triggers dropped, as an intruder would)."""
    target = folder / "tampered.sqlite"
    with sqlite3.connect(_state_file(settings)) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
        dst.execute("DROP TRIGGER audit_entries_no_update")
        dst.execute("DROP TRIGGER audit_entries_no_delete")
    return target


def _verify(monkeypatch, path: Path, *extra: str):
    monkeypatch.setenv("GOVSHARE_STATE_DB", f"sqlite:///{path}")
    monkeypatch.setenv("COLUMNS", "200")
    return runner.invoke(cli, ["audit", "verify", *extra])


SWAP = [
    "UPDATE audit_entries SET seq = -1 WHERE seq = 3",
    "UPDATE audit_entries SET seq = 3 WHERE seq = 4",
    "UPDATE audit_entries SET seq = 4 WHERE seq = -1",
]


@pytest.mark.parametrize(
    ("statements", "fault"),
    [
        (["UPDATE audit_entries SET row_count = 0 WHERE action = 'read'"], "was edited"),
        (["UPDATE audit_entries SET username = 'someone' WHERE seq = 2"], "entry 2 was edited"),
        (["DELETE FROM audit_entries WHERE seq = 3"], "entry 3 is missing"),
        (SWAP, "entry 3 does not follow entry 2"),
        (
            ["DELETE FROM audit_entries WHERE seq = (SELECT max(seq) FROM audit_entries)"],
            "removed from the end",
        ),
    ],
    ids=["edit-row-count", "edit-user", "delete", "reorder", "truncate"],
)
def test_tampering_is_detected(env, tmp_path, monkeypatch, statements, fault):
    assert _verify(monkeypatch, _state_file(env[3])).exit_code == 0
    target = _copy(env[3], tmp_path)
    intact = _verify(monkeypatch, target)
    assert intact.exit_code == 0 and "audit log intact" in intact.output
    with sqlite3.connect(target) as con:
        for statement in statements:
            con.execute(statement)
    broken = _verify(monkeypatch, target)
    assert broken.exit_code == 1
    assert fault in broken.output


def test_a_remembered_head_catches_a_rewritten_tail(env, tmp_path, monkeypatch):
    target = _copy(env[3], tmp_path)
    with sqlite3.connect(target) as con:
        head = con.execute("SELECT hash FROM audit_head").fetchone()[0]
        # Drop the last entry and rewind the head consistently: the chain alone looks fine.
        con.execute("DELETE FROM audit_entries WHERE seq = (SELECT max(seq) FROM audit_entries)")
        con.execute(
            "UPDATE audit_head SET seq = seq - 1, hash = (SELECT hash FROM audit_entries "
            "ORDER BY seq DESC LIMIT 1)"
        )
    assert _verify(monkeypatch, target).exit_code == 0
    checked = _verify(monkeypatch, target, "--expect-head", head)
    assert checked.exit_code == 1 and "no longer holds the expected head" in checked.output


def test_the_api_reports_the_chain(env):
    client, tokens, _, _ = env
    report = client.get("/audit/verify", headers=bearer(tokens["office"])).json()
    assert report["intact"] and report["entries"] > 5


def test_no_audit_record_no_action(env):
    client, tokens, _, settings = env
    path = _state_file(settings)
    with sqlite3.connect(path) as con:
        before = con.execute("SELECT count(*) FROM access_requests").fetchone()[0]
        con.execute(
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_entries "
            "BEGIN SELECT RAISE(ABORT, 'audit store unavailable'); END"
        )
    try:
        read = client.get("/datasets/population/rows?limit=5", headers=bearer(tokens["consumer_a"]))
        assert read.status_code == 503 and "rows" not in read.json()
        assert "refused" in read.json()["detail"]
        export = client.get("/datasets/geography/export", headers=bearer(tokens["consumer_a"]))
        assert export.status_code == 503
        submitted = client.post(
            "/requests",
            headers=bearer(tokens["consumer_a"]),
            json={
                "dataset": "geography",
                "items": ["name"],
                "purpose": "测试用途",
                "legal_basis": "测试",
                "period_start": "2026-01-01",
                "period_end": "2030-12-31",
            },
        )
        assert submitted.status_code == 503
        with sqlite3.connect(path) as con:
            assert con.execute("SELECT count(*) FROM access_requests").fetchone()[0] == before
    finally:
        with sqlite3.connect(path) as con:
            con.execute("DROP TRIGGER audit_down")
    assert (
        client.get(
            "/datasets/population/rows?limit=5", headers=bearer(tokens["consumer_a"])
        ).status_code
        == 200
    )


def test_refusals_that_differ_only_by_a_number_count_as_one_kind(env):
    """The review grew the log by one entry per call by naming grant after grant."""
    client, tokens, _, settings = env
    reader = bearer(tokens["consumer_b"])
    before = len(audit_entries(settings, username="consumer_b", action="read"))
    for grant_id in range(5000, 5030):
        response = client.get(f"/datasets/population/rows?grant={grant_id}", headers=reader)
        assert response.status_code == 403
    after = audit_entries(settings, username="consumer_b", action="read")
    assert len(after) - before == 1


def test_a_refused_listing_writes_nothing_and_undeclared_parameters_are_not_kept(env):
    """The second review grew the log by 8 KB per refused listing call ("ok", too)."""
    client, tokens, _, settings = env
    reader = bearer(tokens["consumer_b"])
    before = len(audit_entries(settings, username="consumer_b", action="request.list"))
    for i in range(20):
        refused = client.get(f"/requests?overdue=nope{i}&status={'A' * 250}", headers=reader)
        assert refused.status_code == 422
    assert len(audit_entries(settings, username="consumer_b", action="request.list")) == before
    # Undeclared parameters are refused outright now (a 422 naming them), so none is kept.
    junk = "&".join(f"{'k' * 200}{i}={'v' * 200}" for i in range(20))
    assert client.get(f"/requests?status=approved&{junk}", headers=reader).status_code == 422
    assert len(audit_entries(settings, username="consumer_b", action="request.list")) == before
    assert client.get("/requests?status=approved", headers=reader).status_code == 200
    [entry, *_] = audit_entries(settings, username="consumer_b", action="request.list")
    assert entry.detail["query"] == {"status": "approved"}
