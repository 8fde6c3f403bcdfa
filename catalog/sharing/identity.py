"""Departments, users, roles and bearer tokens, and the duties kept apart around them.

Tokens are 256-bit random strings shown once; only their SHA-256 is stored (a slow password
hash adds nothing for values with that much entropy, and every API call checks one).
Every identity event is audited in the same transaction as the change it records.

Nobody obtains another user's token (docs/access.md, "Duties kept apart"): the office
registers a user and receives a one-time activation code (256-bit, only its SHA-256 kept,
expiring) to hand over out of band; the user exchanges it for their first token
(:func:`activate`) and issues further ones for themselves. A user acts only once confirmed
(:func:`confirm_user`) by someone other than themselves and whoever registered or reset
them: a user of the same department, or, where that department has no other confirmed
user, the office (flagged). A reset (:func:`reset_activation`) revokes every token and
clears the confirmation, so it never hands an existing user's access to the office.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Row, select
from sqlalchemy.orm import Session, joinedload
from stdnum.cn import uscc

from catalog.sharing.audit import AuditEvent, append
from catalog.sharing.principal import Principal, actor_name
from catalog.state.models import ROLES, Department, Token, User
from catalog.text import InputError

TOKEN_PREFIX = "gs_"
ACTIVATION_PREFIX = "ga_"
_USER_LOC = ("path", "username")


class IdentityError(InputError):
    """A request about departments, users or tokens that cannot be honoured."""


class UnknownUser(IdentityError):
    """No user of that name."""


class DutyConflict(Exception):
    """The caller may not do this to this user: it would join duties kept apart (confirming
    oneself or a user one registered or reset, disabling oneself, confirming across
    departments). The message says why."""


class AuthenticationError(Exception):
    """No valid identity: unknown, expired or revoked token, or a disabled or unconfirmed
    user. ``holder`` names the token's owner when known, so the refusal can be audited
    against them."""

    def __init__(self, reason: str, holder: Principal | None = None) -> None:
        super().__init__(reason)
        self.holder = holder


class ActivationRefused(AuthenticationError):
    """A wrong username or code, a used or expired code, or a disabled user. The caller is
    told only :attr:`GENERIC`; ``reason`` (for the audit entry) says which."""

    GENERIC = "activation refused: unknown user, or a wrong, used or expired code"

    def __init__(self, reason: str, holder: Principal | None = None) -> None:
        super().__init__(self.GENERIC, holder)
        self.reason = reason


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _event(
    action: str, actor: Principal | None, operator: str, detail: dict, result: str = "ok"
) -> AuditEvent:
    return AuditEvent(action=action, result=result, actor=actor, detail=detail, operator=operator)


# --- Departments -------------------------------------------------------------------------


def department_code(code: str) -> str:
    """A department's code as stored: the USCC compacted (no spaces or dashes) and upper
    case, so one body cannot be registered twice under two spellings."""
    return uscc.compact(code).upper()


def add_department(session: Session, code: str, name: str, now: datetime) -> Department:
    if not uscc.is_valid(code):
        raise IdentityError(f"{code!r} is not a valid unified social credit code", ("body", "code"))
    code = department_code(code)
    if session.scalar(select(Department).where(Department.code == code)) is not None:
        raise IdentityError(f"department {code} is already registered", ("body", "code"))
    department = Department(code=code, name=name, created_at=now)
    session.add(department)
    session.flush()
    return department


def ensure_department(session: Session, code: str, name: str, now: datetime) -> Department:
    """The department with this code, registered first if it is not yet."""
    found = session.scalar(select(Department).where(Department.code == department_code(code)))
    return found or add_department(session, code, name, now)


def department_by_code(session: Session, code: str) -> Department:
    department = session.scalar(select(Department).where(Department.code == department_code(code)))
    if department is None:
        raise IdentityError(f"no department with code {code}")
    return department


# --- Users: registration, activation, confirmation, reset, disabling ----------------------


def add_user(
    session: Session,
    username: str,
    department_code: str,
    role: str,
    now: datetime,
    display_name: str = "",
    *,
    created_by: str | None = None,
) -> User:
    """The user row only: not confirmed, no activation code, not audited. Registration goes
    through :func:`register_user`."""
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
        created_by=created_by,
    )
    session.add(user)
    session.flush()
    return user


def user_by_name(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UnknownUser(f"no user {username!r}")
    return user


def is_confirmed(user: User | Row) -> bool:
    return user.confirmed_at is not None


def is_disabled(user: User | Row) -> bool:
    return user.disabled_at is not None or not user.active


def new_activation(session: Session, user: User, now: datetime, ttl_days: int) -> str:
    """A fresh one-time activation code for the user (the previous one stops working);
    only its SHA-256 is kept. Not audited: the caller's action is."""
    if ttl_days < 1:
        raise IdentityError("an activation code must be valid for at least one day")
    plain = ACTIVATION_PREFIX + secrets.token_urlsafe(32)
    user.activation_hash = hash_token(plain)
    user.activation_expires_at = now + timedelta(days=ttl_days)
    session.flush()
    return plain


def register_user(
    session: Session,
    username: str,
    department_code: str,
    role: str,
    now: datetime,
    *,
    activation_ttl_days: int,
    display_name: str = "",
    actor: Principal | None = None,
    operator: str = "cli",
) -> tuple[User, str]:
    """Register a user, unconfirmed, with a one-time activation code (returned once, to be
    handed to the user out of band). Audited as ``user.add``."""
    creator = actor_name(actor, operator)
    user = add_user(session, username, department_code, role, now, display_name, created_by=creator)
    code = new_activation(session, user, now, activation_ttl_days)
    detail = {
        "username": user.username,
        "role": user.role,
        "department": user.department.code,
        "activation_expires_at": user.activation_expires_at.isoformat(),
    }
    append(session, _event("user.add", actor, operator, detail), now)
    return user, code


def activate(
    session: Session,
    username: str,
    code: str,
    now: datetime,
    ttl_days: int,
    label: str = "",
) -> tuple[Token, str]:
    """Exchange a user's activation code for their first token. The code works once;
    whatever is wrong, :class:`ActivationRefused` says the same to the caller."""
    user = session.scalar(
        select(User).where(User.username == username).options(joinedload(User.department))
    )
    offered = hash_token(code)
    if user is None:
        hmac.compare_digest(offered, offered)  # the same work as for a known user
        raise ActivationRefused("unknown user")
    holder = Principal.of(user)
    if not hmac.compare_digest(user.activation_hash or "", offered):
        raise ActivationRefused(
            "wrong code" if user.activation_hash else "no activation code pending", holder
        )
    if user.activation_expires_at is None or user.activation_expires_at <= now:
        raise ActivationRefused("activation code expired", holder)
    if is_disabled(user):
        raise ActivationRefused("user disabled", holder)
    user.activation_hash = None
    user.activation_expires_at = None
    return issue_token(session, user, now, ttl_days, label or "activation", actor=holder)


def reset_activation(
    session: Session,
    user: User,
    now: datetime,
    *,
    activation_ttl_days: int,
    actor: Principal | None = None,
    operator: str = "cli",
) -> tuple[str, list[int]]:
    """Reset an account: revoke all its tokens, clear its confirmation, issue a new code.
    Returns the code and the ids of the tokens revoked. Audited as ``user.reset``."""
    revoked = []
    for token in session.execute(
        select(Token).where(Token.user_id == user.id, Token.revoked_at.is_(None))
    ).scalars():
        token.revoked_at = now
        revoked.append(token.id)
    user.confirmed_at = None
    user.confirmed_by = None
    user.flag = None
    user.reset_by = actor_name(actor, operator)
    code = new_activation(session, user, now, activation_ttl_days)
    detail = {
        "username": user.username,
        "revoked_tokens": revoked,
        "activation_expires_at": user.activation_expires_at.isoformat(),
    }
    append(session, _event("user.reset", actor, operator, detail), now)
    return code, revoked


def _other_confirmed(session: Session, user: User) -> list[User]:
    """Confirmed, active users of the user's department other than the user."""
    stmt = select(User).where(
        User.department_id == user.department_id,
        User.id != user.id,
        User.confirmed_at.is_not(None),
        User.disabled_at.is_(None),
        User.active.is_(True),
    )
    return list(session.execute(stmt).scalars())


def _confirmation_flag(session: Session, user: User, confirmer: User | None, by: str) -> str | None:
    """The flag a confirmation by ``confirmer`` leaves (None: none), or DutyConflict."""
    code = user.department.code
    if confirmer is None or not is_confirmed(confirmer) or is_disabled(confirmer):
        raise DutyConflict("only a confirmed, active user may confirm another")
    if confirmer.id == user.id:
        raise DutyConflict("a user cannot confirm themselves")
    if by in (user.created_by, user.reset_by):
        raise DutyConflict(
            f"{by} registered or reset {user.username!r}; someone else must confirm them"
        )
    if user.role == "office" and confirmer.role != "office":
        raise DutyConflict("an office account is confirmed by another office user only")
    if confirmer.department_id == user.department_id:
        return None
    if confirmer.role == "office" and not _other_confirmed(session, user):
        return (
            f"confirmed by the office ({by}), not by department {code}: "
            "it had no other confirmed user"
        )
    raise DutyConflict(
        f"{user.username!r} belongs to department {code}; a confirmed user of that "
        "department must confirm them"
        + ("" if confirmer.role != "office" else " (it has confirmed users)")
    )


def confirm_user(
    session: Session,
    user: User,
    now: datetime,
    *,
    actor: Principal | None = None,
    operator: str = "cli",
) -> User:
    """Confirm a user, so that their tokens work. ``actor`` None is the machine operator
    (flagged). Otherwise the actor must be a confirmed, active user who is neither the user
    nor whoever registered or reset them, and of the user's department; the office may
    confirm instead only where that department has no other confirmed user (flagged). An
    office account is confirmed by an office user only: office powers are not the
    department's to give."""
    if is_confirmed(user):
        raise IdentityError(f"user {user.username!r} is confirmed already", _USER_LOC)
    if is_disabled(user):
        raise IdentityError(f"user {user.username!r} is disabled; enable them first", _USER_LOC)
    by = actor_name(actor, operator)
    if actor is None:
        code = user.department.code
        flag = f"confirmed by the machine operator ({operator}), not by department {code}"
    else:
        flag = _confirmation_flag(session, user, session.get(User, actor.user_id), by)
    user.confirmed_at = now
    user.confirmed_by = by
    user.flag = flag
    detail = {"username": user.username, "department": user.department.code, "flag": flag}
    append(session, _event("user.confirm", actor, operator, detail), now)
    return user


def disable_user(
    session: Session,
    user: User,
    now: datetime,
    reason: str,
    *,
    actor: Principal | None = None,
    operator: str = "cli",
) -> User:
    """Disable a user: every token of theirs is refused at once; the user row, tokens and
    audit entries stay. Nobody disables themselves."""
    if actor is not None and actor.user_id == user.id:
        raise DutyConflict("you cannot disable yourself")
    if not reason.strip():
        raise IdentityError("a reason is required to disable a user", ("body", "reason"))
    if user.disabled_at is not None:
        raise IdentityError(f"user {user.username!r} is disabled already", _USER_LOC)
    user.active = False
    user.disabled_at = now
    user.disabled_reason = reason
    detail = {"username": user.username, "reason": reason}
    append(session, _event("user.disable", actor, operator, detail), now)
    return user


def enable_user(
    session: Session,
    user: User,
    now: datetime,
    *,
    actor: Principal | None = None,
    operator: str = "cli",
) -> User:
    if not is_disabled(user):
        raise IdentityError(f"user {user.username!r} is not disabled", _USER_LOC)
    if actor is not None and actor.user_id == user.id:
        raise DutyConflict("you cannot enable yourself")
    detail = {"username": user.username, "was_disabled_because": user.disabled_reason}
    user.active = True
    user.disabled_at = None
    user.disabled_reason = None
    append(session, _event("user.enable", actor, operator, detail), now)
    return user


# --- Tokens ------------------------------------------------------------------------------


def issue_token(
    session: Session,
    user: User,
    now: datetime,
    ttl_days: int,
    label: str = "",
    actor: Principal | None = None,
    operator: str = "cli",
) -> tuple[Token, str]:
    """A new token for the user, audited; the plain value is returned once, never stored.
    The routes call it only for the caller themselves (:func:`activate`, ``/me/tokens``)."""
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
    append(session, _token_event("token.issue", token, actor, operator), now)
    return token, plain


def tokens_of(session: Session, user: User) -> list[Token]:
    """The user's tokens, newest first (their hashes stay inside)."""
    stmt = select(Token).where(Token.user_id == user.id).order_by(Token.id.desc())
    return list(session.execute(stmt).scalars())


def revoke_token(
    session: Session,
    token_id: int,
    now: datetime,
    actor: Principal | None = None,
    operator: str = "cli",
    *,
    owner_id: int | None = None,
) -> Token:
    """Revoke a token at once. With ``owner_id``, only a token of that user (else unknown)."""
    token = session.get(Token, token_id)
    if token is None or (owner_id is not None and token.user_id != owner_id):
        raise IdentityError(f"no token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = now
        append(session, _token_event("token.revoke", token, actor, operator), now)
    return token


def _token_event(action: str, token: Token, actor: Principal | None, operator: str) -> AuditEvent:
    detail = {
        "token_id": token.id,
        "user": token.user.username,
        "expires_at": token.expires_at.isoformat(),
    }
    return _event(action, actor, operator, detail)


def token_holder(session: Session, token_hash: str) -> Row | None:
    """The token with this hash, with its user's and department's columns (None if
    unknown), whatever the token's state: :func:`check_holder` says whether it works."""
    # Token, user and department in one query of plain columns: this runs on every
    # authenticated call, and building ORM objects for it cost more than the query.
    stmt = (
        select(
            Token.id.label("token_id"),
            Token.revoked_at,
            Token.expires_at,
            User.id.label("user_id"),
            User.username,
            User.role,
            User.active,
            User.disabled_at,
            User.confirmed_at,
            Department.id.label("department_id"),
            Department.code,
            Department.name,
        )
        .join(User, Token.user_id == User.id)
        .join(Department, User.department_id == Department.id)
        .where(Token.token_hash == token_hash)
    )
    return session.execute(stmt).one_or_none()


def check_holder(row: Row | None, now: datetime) -> Principal:
    """The principal of a :func:`token_holder` row, or AuthenticationError saying why the
    token does not work at ``now``."""
    if row is None:
        raise AuthenticationError("unknown token")
    principal = Principal(
        row.user_id, row.username, row.role, row.department_id, row.code, row.name, row.token_id
    )
    if row.revoked_at is not None:
        raise AuthenticationError("token revoked", principal)
    if row.expires_at <= now:
        raise AuthenticationError("token expired", principal)
    if is_disabled(row):
        raise AuthenticationError("user disabled", principal)
    if not is_confirmed(row):
        raise AuthenticationError(
            f"user {row.username} is not confirmed yet: a confirmed user of their "
            "department must confirm them first",
            principal,
        )
    return principal


def authenticate(session: Session, plain: str, now: datetime) -> Principal:
    return check_holder(token_holder(session, hash_token(plain)), now)


def office_exists(session: Session) -> bool:
    return session.scalar(select(User.id).where(User.role == "office").limit(1)) is not None


def bootstrap_office(
    session: Session,
    department_code: str,
    department_name: str,
    username: str,
    now: datetime,
    *,
    ttl_days: int,
    operator: str,
) -> tuple[User, Token, str]:
    """The first office user, registered, confirmed and given a token by the machine
    operator: the one exception to the rule that only a user obtains their own token
    (refused once an office user exists)."""
    if office_exists(session):
        raise IdentityError("an office user exists already; use `govshare admin user`")
    ensure_department(session, department_code, department_name, now)
    user = add_user(session, username, department_code, "office", now, created_by=operator)
    user.confirmed_at = now
    user.confirmed_by = operator
    user.flag = f"first office user, registered, confirmed and given a token by {operator}"
    detail = {"username": username, "department": department_code, "flag": user.flag}
    append(session, _event("admin.bootstrap", None, operator, detail), now)
    token, plain = issue_token(session, user, now, ttl_days, "bootstrap", operator=operator)
    return user, token, plain
