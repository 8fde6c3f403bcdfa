"""Demo identities: the office, one user per providing department, a consumer department
with a consumer and an analyst, and one request walked through both reviews, so that a new
user of ``./run demo`` can call every kind of endpoint at once.

The demo plays every part of the duty model (docs/access.md) itself: the machine operator
registers each user, confirms them (flagged, as the operator always is) and hands their
activation code to them, and each user exchanges it for their token. The tokens are written
to ``<home>/demo-tokens.txt``, readable by the owner only. Running the demo again changes
nothing: a user whose token in that file still works keeps it; only one whose token no
longer works (revoked, expired, the file gone) is reset, which revokes their earlier tokens,
and gets a new one. The department codes are synthetic but valid USCCs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.contracts import Contract
from catalog.settings import Settings
from catalog.sharing.access import FilterClause
from catalog.sharing.identity import (
    AuthenticationError,
    activate,
    authenticate,
    confirm_user,
    ensure_department,
    is_confirmed,
    register_user,
    reset_activation,
)
from catalog.sharing.principal import Principal
from catalog.sharing.requests import RequestDraft, ReviewDecision, review, submit
from catalog.state.db import StateStore
from catalog.state.models import AccessRequest, User

OPERATOR = "cli:demo"
OFFICE = ("11330100002483888A", "市大数据发展管理局（信息办）")
CONSUMER = ("11330100002484777P", "市民政局")
DEMO_LABEL = "demo"
TOKENS_FILE = "demo-tokens.txt"


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    department: str
    token: str
    reused: bool = False
    """The token of the previous demo run, still valid: nothing was issued."""


def _still_works(session: Session, username: str, token: str | None, now: datetime) -> bool:
    if not token:
        return False
    try:
        return authenticate(session, token, now).username == username
    except AuthenticationError:
        return False


def _previous_tokens(path: Path) -> dict[str, str]:
    """username → token, from the list the last demo run wrote (if any)."""
    if not path.exists():
        return {}
    tokens = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) == 4 and not line.startswith("#"):
            tokens[fields[0]] = fields[3]
    return tokens


def _ready_user(
    session: Session, settings: Settings, username: str, code: str, role: str, now: datetime
) -> tuple[User, str]:
    """The demo user, registered (or reset), confirmed, with a fresh token of their own."""
    found = session.scalar(select(User).where(User.username == username))
    ttl = settings.activation_ttl_days
    if found is None:
        user, activation = register_user(
            session, username, code, role, now, activation_ttl_days=ttl, operator=OPERATOR
        )
    else:
        user = found
        activation, _ = reset_activation(
            session, user, now, activation_ttl_days=ttl, operator=OPERATOR
        )
    if not is_confirmed(user):
        confirm_user(session, user, now, operator=OPERATOR)
    _, plain = activate(session, username, activation, now, settings.token_ttl_days, DEMO_LABEL)
    return user, plain


def _people(contracts: dict[str, Contract]) -> list[tuple[str, str, str, str]]:
    """(username, role, department code, department name) of every demo user."""
    people = [("office", "office", *OFFICE)]
    for name, contract in contracts.items():
        provider = contract.catalog.provider
        people.append((f"{name}_provider", "provider", provider.code, provider.name))
    people += [("civil_consumer", "consumer", *CONSUMER), ("civil_analyst", "analyst", *CONSUMER)]
    return people


def _walk_request(
    session: Session,
    contracts: dict[str, Contract],
    users: dict[str, User],
    now: datetime,
    settings: Settings,
) -> None:
    """Two population requests (rows, and the identity check), approved by the police
    bureau and the office."""
    if (
        session.scalar(select(AccessRequest.id).limit(1)) is not None
        or "population" not in contracts
    ):
        return
    population = contracts["population"]
    draft = RequestDraft(
        dataset="population",
        items=["id_number", "name", "sex", "region_code", "status"],
        unmasked_items=["name"],
        row_filter=[FilterClause(item="region_code", op="prefix", values=["3301"])],
        purpose="最低生活保障资格审核：核实申请人户籍与生存状态",
        legal_basis="《社会救助暂行办法》第十一条",
        period_start=now.date(),
        period_end=(now + timedelta(days=365)).date(),
    )
    check = RequestDraft(
        dataset="population",
        kind="verification",
        service="identity_name",
        purpose="办理救助时核验申请人身份",
        legal_basis=draft.legal_basis,
        period_start=draft.period_start,
        period_end=draft.period_end,
    )
    consumer = Principal.of(users["civil_consumer"])
    for wanted in (draft, check):
        request = submit(
            session,
            population,
            consumer,
            wanted,
            now,
            working_days=settings.request_deadline_working_days,
            zone=settings.timezone,
        )
        for reviewer in ("population_provider", "office"):
            decision = ReviewDecision(decision="approve", reason="职责相符，范围适当")
            reviewer_principal = Principal.of(users[reviewer])
            review(
                session,
                population,
                reviewer_principal,
                request,
                decision,
                now,
                zone=settings.timezone,
            )


def seed(settings: Settings, contracts: dict[str, Contract]) -> list[DemoUser]:
    now = datetime.now(UTC)
    store = StateStore(settings)
    issued: list[DemoUser] = []
    try:
        with store.transaction() as session:
            users = {}
            previous = _previous_tokens(settings.home / TOKENS_FILE)
            for username, role, code, dept_name in _people(contracts):
                ensure_department(session, code, dept_name, now)
                token = previous.get(username)
                if _still_works(session, username, token, now):
                    users[username] = session.scalar(select(User).where(User.username == username))
                    issued.append(DemoUser(username, role, code, token, reused=True))
                    continue
                users[username], plain = _ready_user(session, settings, username, code, role, now)
                issued.append(DemoUser(username, role, code, plain))
            _walk_request(session, contracts, users, now, settings)
    finally:
        store.close()
    _write_tokens(settings.home / TOKENS_FILE, issued)
    return issued


def _write_tokens(path: Path, users: list[DemoUser]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    lines = [f"{u.username}\t{u.role}\t{u.department}\t{u.token}" for u in users]
    path.write_text("# username\trole\tdepartment\ttoken\n" + "\n".join(lines) + "\n", "utf-8")
