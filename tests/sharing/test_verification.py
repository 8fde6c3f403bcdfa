"""Verification services: answers checked against the lake, grants, rate limits, audit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import httpx
import pytest

from catalog.settings import REPO_ROOT
from catalog.store.lake import Lake, published_table
from tests.conftest import approve_request, bearer, seed_identities, world_settings

PERIOD = {"period_start": "2026-01-01", "period_end": "2030-12-31", "legal_basis": "测试依据"}


@pytest.fixture(scope="module")
def env(access_world):
    client, tokens, _, _ = access_world
    for dataset, service in (
        ("population", "identity_name"),
        ("licences", "licence_valid"),
        ("credit_records", "blacklist"),
    ):
        approve_request(
            client,
            tokens,
            {
                "dataset": dataset,
                "kind": "verification",
                "service": service,
                "purpose": "身份与资格核验",
                **PERIOD,
            },
        )
    return access_world


def _rows(settings, dataset):
    with Lake(settings).reader() as con:
        cursor = con.execute(f"SELECT * FROM {published_table(dataset)}")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _ask(env, service, who="consumer_a", **inputs):
    client, tokens, clock, _ = env
    clock.advance(seconds=13)  # stay under the test world's 5 calls a minute
    return client.post(f"/verify/{service}", json=inputs, headers=bearer(tokens[who]))


def _today(env) -> date:
    return env[0].app.state.govshare.today()


def test_identity_matches_name(env):
    person = _rows(env[3], "population")[0]
    rid, name = person["id_number"], person["name"]
    yes = _ask(env, "identity_name", id_number=rid, name=name)
    assert yes.status_code == 200 and yes.json()["answer"] is True
    assert set(yes.json()) == {"service", "dataset", "version", "as_of", "answer"}  # no records
    assert _ask(env, "identity_name", id_number=rid, name=name + "某").json()["answer"] is False
    typed = rid.lower().translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})
    assert _ask(env, "identity_name", id_number=typed, name=f" {name} ").json()["answer"] is True
    assert _ask(env, "identity_name", id_number=rid).status_code == 422  # name missing
    assert _ask(env, "identity_name", id_number=rid, name=name, phone="1").status_code == 422


def _valid_today(row, start, end, today):
    return (row[start] is None or row[start] <= today) and (row[end] is None or row[end] >= today)


def test_licence_valid_today(env):
    today = _today(env)
    rows = _rows(env[3], "licences")
    valid = [
        r
        for r in rows
        if r["status"] == "有效" and _valid_today(r, "issue_date", "valid_until", today)
    ]
    invalid = [r for r in rows if r not in valid]
    assert valid and invalid
    for row, expected in ((valid[0], True), (invalid[0], False), (invalid[-1], False)):
        answer = _ask(env, "licence_valid", licence_no=row["licence_no"]).json()
        assert answer["answer"] is expected, row
    assert _ask(env, "licence_valid", licence_no="XX0000-00000000").json()["answer"] is False


def test_black_list_today(env):
    today = _today(env)
    rows = _rows(env[3], "credit_records")
    listed = {
        r["subject_id"]
        for r in rows
        if r["list_type"] == "黑名单" and _valid_today(r, "decision_date", "valid_until", today)
    }
    others = {r["subject_id"] for r in rows} - listed
    assert listed and others
    assert _ask(env, "blacklist", subject_id=sorted(listed)[0]).json()["answer"] is True
    assert _ask(env, "blacklist", subject_id=sorted(others)[0]).json()["answer"] is False


def test_each_service_needs_its_own_grant(env):
    person = _rows(env[3], "population")[0]
    inputs = {"id_number": person["id_number"], "name": person["name"]}
    assert _ask(env, "identity_name", who="consumer_b", **inputs).status_code == 403
    assert _ask(env, "identity_name", who="population_provider", **inputs).status_code == 403
    assert _ask(env, "no_such_service", **inputs).status_code == 404


def test_rate_limit_per_user_and_service(env):
    client, tokens, clock, _ = env
    clock.advance(minutes=2)
    url, body = "/verify/blacklist", {"subject_id": "91330100MA00000000"}
    answered = [client.post(url, json=body, headers=bearer(tokens["analyst_a"])) for _ in range(5)]
    assert all(r.status_code == 200 for r in answered)
    refused = client.post(url, json=body, headers=bearer(tokens["analyst_a"]))
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
    # Another user of the same department has a budget of its own.
    clock.advance(seconds=1)
    assert _ask(env, "blacklist", subject_id="91330100MA00000000").status_code == 200
    clock.advance(seconds=61)
    assert client.post(url, json=body, headers=bearer(tokens["analyst_a"])).status_code == 200


def test_verifications_are_audited_with_their_answer(env):
    client, tokens, _, _ = env
    log = client.get("/audit?action=verify&limit=1000", headers=bearer(tokens["office"])).json()
    results = {e["result"] for e in log}
    assert {"yes", "no", "denied", "rate_limited"} <= results
    answered = [e for e in log if e["result"] in ("yes", "no")]
    assert all(e["purpose"] == "身份与资格核验" and e["version"] for e in answered)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(settings, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "GOVSHARE_HOME": str(settings.home),
        "GOVSHARE_SCHEMAS_DIR": str(settings.schemas_dir),
        "GOVSHARE_STATE_DB": settings.state_db,
        "GOVSHARE_VERIFY_RATE_PER_MINUTE": str(settings.verify_rate_per_minute),
    }
    command = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _wait_until_up(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"server on port {port} did not start")


@pytest.mark.e2e
def test_the_rate_limit_holds_for_concurrent_calls_to_two_api_processes(world, tmp_path):
    """The review got 52 answers in 2 s against 30 a minute. Here 60 calls at once, spread
    over two real API processes sharing one platform state: exactly the limit is answered."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from catalog.contracts import load_contracts

    limit = 10
    settings = world_settings(world, tmp_path, verify_rate_per_minute=limit)
    tokens = seed_identities(settings, load_contracts(settings.schemas_dir))
    with TestClient(create_app(settings)) as client:
        approve_request(
            client,
            tokens,
            {"dataset": "credit_records", "kind": "verification", "service": "blacklist",
             "purpose": "并发限流测试", **PERIOD},
        )  # fmt: skip
    ports = [_free_port(), _free_port()]
    servers = [_serve(settings, port) for port in ports]
    try:
        for port in ports:
            _wait_until_up(port, time.monotonic() + 60)

        def ask(i: int) -> httpx.Response:
            url = f"http://127.0.0.1:{ports[i % 2]}/verify/blacklist"
            body = {"subject_id": "91330100MA00000000"}
            return httpx.post(url, json=body, headers=bearer(tokens["consumer_a"]), timeout=60)

        with ThreadPoolExecutor(max_workers=30) as pool:
            statuses = [r.status_code for r in pool.map(ask, range(60))]
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    assert statuses.count(200) == limit, statuses
    assert statuses.count(429) == 60 - limit
