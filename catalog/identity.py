"""Departments, users, roles and bearer tokens.

Tokens are 256-bit random strings shown once; only their SHA-256 is stored (a slow password
hash adds nothing for values with that much entropy, and every API call checks one).
Every token event is audited in the same transaction as the change it records.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload
from stdnum.cn import uscc

from catalog.audit import AuditEvent, append
from catalog.state.models import ROLES, Department, Token, User

TOKEN_PREFIX = "gs_"


class IdentityError(ValueError):
    """A request about departments, users or tokens that cannot be honoured."""


class AuthenticationError(Exception):
    """No valid identity: unknown, expired or revoked token, or a disabled user. ``holder``
    names the token's owner when known, so the refusal can be audited against them."""

    def __init__(self, reason: str, holder: Principal | None = None) -> None:
        super().__init__(reason)
        self.holder = holder


@dataclass(frozen=True)
class Principal:
    """The caller of an action, as the core sees it."""

    user_id: int
    username: str
    role: str
    department_id: int
    department_code: str
    department_name: str
    token_id: int | None = None

    @classmethod
    def of(cls, user: User, token_id: int | None = None) -> Principal:
        dept = user.department
        return cls(user.id, user.username, user.role, dept.id, dept.code, dept.name, token_id)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_department(session: Session, code: str, name: str, now: datetime) -> Department:
    if not uscc.is_valid(code):
        raise IdentityError(f"{code!r} is not a valid unified social credit code")
    if session.scalar(select(Department).where(Department.code == code)) is not None:
        raise IdentityError(f"department {code} is already registered")
    department = Department(code=code, name=name, created_at=now)
    session.add(department)
    session.flush()
    return department


def ensure_department(session: Session, code: str, name: str, now: datetime) -> Department:
    """The department with this code, registered first if it is not yet."""
    found = session.scalar(select(Department).where(Department.code == code))
    return found or add_department(session, code, name, now)


def department_by_code(session: Session, code: str) -> Department:
    department = session.scalar(select(Department).where(Department.code == code))
    if department is None:
        raise IdentityError(f"no department with code {code}")
    return department


def add_user(
    session: Session,
    username: str,
    department_code: str,
    role: str,
    now: datetime,
    display_name: str = "",
) -> User:
    if role not in ROLES:
        raise IdentityError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise IdentityError(f"user {username!r} already exists")
    user = User(
        username=username,
        display_name=display_name or username,
        role=role,
        active=True,
        department=department_by_code(session, department_code),
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def user_by_name(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise IdentityError(f"no user {username!r}")
    return user


def issue_token(
    session: Session,
    user: User,
    now: datetime,
    ttl_days: int,
    label: str = "",
    actor: Principal | None = None,
) -> tuple[Token, str]:
    """A new token for the user, audited; the plain value is returned once, never stored."""
    if ttl_days < 1:
        raise IdentityError("a token must be valid for at least one day")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = Token(
        user=user,
        token_hash=hash_token(plain),
        label=label or "token",
        created_at=now,
        expires_at=now + timedelta(days=ttl_days),
    )
    session.add(token)
    session.flush()
    append(session, _token_event("token.issue", token, actor), now)
    return token, plain


def revoke_token(
    session: Session, token_id: int, now: datetime, actor: Principal | None = None
) -> Token:
    token = session.get(Token, token_id)
    if token is None:
        raise IdentityError(f"no token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = now
        append(session, _token_event("token.revoke", token, actor), now)
    return token


def _token_event(action: str, token: Token, actor: Principal | None) -> AuditEvent:
    detail = {
        "token_id": token.id,
        "user": token.user.username,
        "expires_at": token.expires_at.isoformat(),
    }
    return AuditEvent(action=action, result="ok", actor=actor, detail=detail)


def authenticate(session: Session, plain: str, now: datetime) -> Principal:
    # Token, user and department in one query: this runs on every authenticated call.
    stmt = (
        select(Token)
        .where(Token.token_hash == hash_token(plain))
        .options(joinedload(Token.user).joinedload(User.department))
    )
    token = session.scalar(stmt)
    if token is None:
        raise AuthenticationError("unknown token")
    principal = Principal.of(token.user, token.id)
    if token.revoked_at is not None:
        raise AuthenticationError("token revoked", principal)
    if token.expires_at <= now:
        raise AuthenticationError("token expired", principal)
    if not token.user.active:
        raise AuthenticationError("user disabled", principal)
    return principal


def office_exists(session: Session) -> bool:
    return session.scalar(select(User.id).where(User.role == "office").limit(1)) is not None
