"""Shared fixtures: a throw-away runtime folder per test, contracts, and tiny deliveries."""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from stdnum.cn import ric

from catalog.contracts import Contract, load_contracts
from catalog.settings import REPO_ROOT, Settings
from catalog.store.lake import Lake


@pytest.fixture(scope="session")
def contracts() -> dict[str, Contract]:
    return load_contracts(REPO_ROOT / "schemas")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "runtime")


@pytest.fixture
def lake(settings: Settings) -> Lake:
    return Lake(settings)


def make_ric(region: str, birth: str, seq: int, male: bool) -> str:
    """A valid resident identity number (stdnum computes the check char over 18 chars).
    ``seq`` 0..499 gives distinct numbers for one region, birth date and sex."""
    sex_digit = (seq // 100 % 5) * 2 + (1 if male else 0)
    body = f"{region}{birth}{seq % 100:02d}{sex_digit}"
    return body + ric.calc_check_digit(body + "0")


def population_rows(n: int, seed: int = 1) -> list[dict[str, str]]:
    """Valid population rows keyed by data item name."""
    rng = random.Random(seed)
    rows = []
    first_day = date(1940, 1, 1) + timedelta(days=rng.randint(0, 20000))
    for i in range(n):
        male = rng.random() < 0.5
        # 500 people a day keeps every identity number distinct.
        birth = (first_day + timedelta(days=i // 500 * 3)).strftime("%Y%m%d")
        rows.append(
            {
                "id_number": make_ric("330106", birth, i % 500, male),
                "name": rng.choice("张王李赵刘陈杨黄") + rng.choice("伟芳娜敏静丽强磊"),
                "sex": "男" if male else "女",
                "birth_date": f"{birth[:4]}-{birth[4:6]}-{birth[6:]}",
                "ethnicity": "汉族",
                "region_code": rng.choice(["330102", "330105", "330106", "330108"]),
                "address": f"杭州市西湖区文三路{i}号",
                "phone": f"13{rng.randint(100000000, 999999999)}",
                "status": "正常",
                "updated_at": "2026-01-02 03:04:05",
            }
        )
    return rows


def write_delivery(
    contract: Contract, rows: list[dict[str, str]], path: Path, encoding: str = "utf-8"
) -> Path:
    """A CSV delivery with the contract's Chinese headers, as a department would send it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([item.label for item in contract.items])
    for row in rows:
        writer.writerow([row.get(item.name, "") for item in contract.items])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


# --- Identities and a published world for access-control tests --------------------------

OFFICE_CODE = "11330100002483888A"
DEPT_A = "11330100002484777P"  # a consumer department
DEPT_B = "11330100002482999W"  # another one, with no grants


def seed_identities(settings: Settings, contracts: dict[str, Contract]) -> dict[str, str]:
    """Departments and users through the core (as the CLI does); returns username → token.
    Users: office, <dataset>_provider, consumer_a, analyst_a, consumer_b, analyst_b."""
    from datetime import UTC, datetime

    from catalog.sharing.identity import add_department, add_user, confirm_user, issue_token
    from catalog.state.db import StateStore

    now = datetime.now(UTC)
    people = [("office", "office", OFFICE_CODE, "信息办")]
    people += [
        (f"{n}_provider", "provider", c.catalog.provider.code, c.catalog.provider.name)
        for n, c in contracts.items()
    ]
    people += [
        ("consumer_a", "consumer", DEPT_A, "甲局"),
        ("analyst_a", "analyst", DEPT_A, "甲局"),
        ("consumer_b", "consumer", DEPT_B, "乙局"),
        ("analyst_b", "analyst", DEPT_B, "乙局"),
    ]
    store = StateStore(settings)
    tokens = {}
    with store.transaction() as session:
        known: set[str] = set()
        for username, role, code, name in people:
            if code not in known:
                add_department(session, code, name, now)
                known.add(code)
            user = add_user(session, username, code, role, now, created_by="cli:test")
            confirm_user(session, user, now, operator="cli:test")  # as the machine operator
            tokens[username] = issue_token(session, user, now, 90, "test")[1]
    store.close()
    return tokens


def confirm_as_operator(settings: Settings, username: str) -> None:
    """Confirm a user as the machine operator does (``govshare admin confirm``: flagged)."""
    from datetime import UTC, datetime

    from catalog.sharing.identity import confirm_user, user_by_name
    from catalog.state.db import StateStore

    store = StateStore(settings)
    with store.transaction() as session:
        confirm_user(session, user_by_name(session, username), datetime.now(UTC), operator="cli:t")
    store.close()


def audit_entries(settings: Settings, **where) -> list:
    """Audit entries matching an AuditQuery (``action=``, ``username=``…), newest first."""
    from catalog.sharing.audit import AuditQuery, search
    from catalog.state.db import StateStore

    store = StateStore(settings)
    with store.reading() as session:
        found = search(session, AuditQuery(**where), limit=10_000, offset=0)
    store.close()
    return found


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def approve_request(
    client, tokens: dict[str, str], body: dict, requester: str = "consumer_a", **office_decision
) -> dict:
    """Walk a request through submission and both reviews over HTTP; returns the request."""
    created = client.post("/requests", json=body, headers=bearer(tokens[requester]))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    provider = f"{body['dataset']}_provider"
    for who, decision in ((provider, {}), ("office", office_decision)):
        reviewed = client.post(
            f"/requests/{request_id}/review",
            headers=bearer(tokens[who]),
            json={"decision": "approve", "reason": "ok", **decision},
        )
        assert reviewed.status_code == 200, reviewed.text
    return reviewed.json()


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Settings:
    """A runtime with all five datasets published from small generated samples; licences
    switched to "not shared" in a copy of the contracts, so all three sharing types occur."""
    import shutil

    import yaml

    from catalog.ingest.delivery import run_ingest
    from catalog.samples import generate

    root = tmp_path_factory.mktemp("world")
    schemas = root / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", schemas)
    raw = yaml.safe_load((schemas / "licences.yaml").read_text(encoding="utf-8"))
    raw["catalog"]["sharing"] = {
        "type": "not_shared",
        "method": ["api", "verification"],
        "legal_basis": "《测试条例》第三条",
    }
    (schemas / "licences.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    settings = Settings(home=root / "runtime", schemas_dir=schemas, verify_rate_per_minute=5)
    generate(root / "drops", rows=400, seed=3, defect_rate=0.0)
    lake = Lake(settings)
    for name, contract in load_contracts(schemas).items():
        files = sorted((root / "drops" / name).glob("*"))
        outcome = run_ingest(contract, files, lake)
        assert outcome.status == "published", outcome.message
    lake.close()
    return settings


class Clock:
    """The API's clock, moved by tests to reach expiry dates and deadlines."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.now = datetime.now(UTC)

    def __call__(self):
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def world_settings(world: Settings, folder: Path, **overrides) -> Settings:
    """The world's lake and contracts with a platform-state database of the caller's own."""
    values = {
        "home": world.home,
        "schemas_dir": world.schemas_dir,
        "verify_rate_per_minute": 5,
        "state_db": f"sqlite:///{folder / 'state.sqlite'}",
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(scope="module")
def access_world(world, tmp_path_factory):
    """(client, tokens, clock, settings): an API over the world with its own state store."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = world_settings(world, tmp_path_factory.mktemp("state"))
    tokens = seed_identities(settings, load_contracts(settings.schemas_dir))
    app = create_app(settings)
    clock = Clock()
    app.state.govshare.clock = clock
    with TestClient(app) as client:
        yield client, tokens, clock, settings
