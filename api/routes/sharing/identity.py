"""Identity routes, with the duties kept apart (docs/access.md, "Duties kept apart").

The office registers departments and users, resets, disables and enables accounts, lists
and revokes tokens; it never obtains a token of anyone else. Registering or resetting a
user answers a one-time activation code, handed to the user out of band; the user
exchanges it for their first token (``POST /activate``) and manages their own tokens
(``/me/tokens``). A user acts once a confirmed user of their department (or, where it has
none, another office user: flagged) confirms them (``POST /department/users/…/confirm``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import AnyRole, Office, record_listing
from api.deps import StateDep
from api.errors import ErrorMessage
from api.params import PathId
from api.state import AppState
from catalog.sharing.audit import AuditEvent, append, record_refusal
from catalog.sharing.identity import (
    ActivationRefused,
    DutyConflict,
    IdentityError,
    Principal,
    UnknownUser,
    activate,
    add_department,
    confirm_user,
    disable_user,
    enable_user,
    issue_token,
    register_user,
    reset_activation,
    revoke_token,
    tokens_of,
    user_by_name,
)
from catalog.state.models import ROLES, Department, Token, User
from catalog.text import FREE_TEXT_MAX, Line, text

router = APIRouter(tags=["identity"])
USERNAME = r"^[a-z][a-z0-9_.-]{2,63}$"
Username = Annotated[str, Path(pattern=USERNAME)]
Reason = text(FREE_TEXT_MAX, min_length=1, multiline=True)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DepartmentIn(Strict):
    code: Line = Field(description="Unified social credit code of the department")
    name: Line = Field(min_length=2)


class DepartmentOut(BaseModel):
    id: int
    code: str
    name: str
    datasets: list[str]


class UserIn(Strict):
    username: str = Field(pattern=USERNAME)
    display_name: Line = ""
    department_code: Line
    role: str = Field(json_schema_extra={"enum": list(ROLES)})


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    department_code: str
    role: str
    active: bool
    created_by: str | None = Field(description="Who registered the user")
    confirmed: bool = Field(description="Only a confirmed, active user's tokens work")
    confirmed_at: datetime | None
    confirmed_by: str | None
    reset_by: str | None = Field(description="Who last reset the account")
    flag: str | None = Field(description="Why this account needs a second look")
    activation_pending: bool = Field(description="An activation code is waiting to be used")
    activation_expires_at: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None


class UserCreated(UserOut):
    activation_code: str = Field(
        description="One-time code, shown once: hand it to the user out of band; they "
        "exchange it for their first token at POST /activate"
    )


class ActivationOut(BaseModel):
    username: str
    activation_code: str = Field(description="One-time code, shown once (see POST /activate)")
    activation_expires_at: datetime
    revoked_tokens: list[int] = Field(description="Tokens of the account revoked by the reset")


class ActivationIn(Strict):
    username: str = Field(pattern=USERNAME)
    code: str = Field(min_length=1, max_length=100, description="The one-time activation code")


class DisableIn(Strict):
    reason: Reason


class TokenIn(Strict):
    label: Line = Field("", max_length=100)
    days: int | None = Field(None, ge=1, le=366, description="Validity; the default if absent")


class TokenOut(BaseModel):
    id: int
    username: str
    label: str
    expires_at: datetime
    token: str | None = Field(None, description="Shown once, at issue; only its hash is kept")


class TokenInfo(BaseModel):
    id: int
    username: str
    label: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    current: bool = Field(description="The token of this call")


class Me(BaseModel):
    username: str
    role: str
    department_code: str
    department_name: str
    provides: list[str]
    token_id: int | None


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        department_code=user.department.code,
        role=user.role,
        active=user.active and user.disabled_at is None,
        created_by=user.created_by,
        confirmed=user.confirmed_at is not None,
        confirmed_at=user.confirmed_at,
        confirmed_by=user.confirmed_by,
        reset_by=user.reset_by,
        flag=user.flag,
        activation_pending=user.activation_hash is not None,
        activation_expires_at=user.activation_expires_at,
        disabled_at=user.disabled_at,
        disabled_reason=user.disabled_reason,
    )


def _token_info(token: Token, principal: Principal) -> TokenInfo:
    return TokenInfo(
        id=token.id,
        username=token.user.username,
        label=token.label,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        current=token.id == principal.token_id,
    )


def _token_out(token: Token, plain: str | None = None) -> TokenOut:
    return TokenOut(
        id=token.id,
        username=token.user.username,
        label=token.label,
        expires_at=token.expires_at,
        token=plain,
    )


def _user(session: Session, username: str) -> User:
    try:
        return user_by_name(session, username)
    except UnknownUser as exc:
        raise HTTPException(404, str(exc)) from exc


def _duties(
    state: AppState,
    principal: Principal,
    action: str,
    username: str,
    change: Callable[[Session, User], User],
) -> UserOut:
    """Run a core action on a user in its own transaction. A conflict of duties is a 403,
    audited (aggregated) after the refused transaction has rolled back."""
    try:
        with state.store.transaction() as session:
            return _user_out(change(session, _user(session, username)))
    except DutyConflict as exc:
        event = AuditEvent(
            action=action,
            result="denied",
            actor=principal,
            detail={"username": username, "reason": str(exc)},
        )
        record_refusal(state.store, event, state.now())
        raise HTTPException(403, str(exc)) from exc


_DUTY = {403: {"description": "It would join duties kept apart; the detail says why"}}


# --- The caller themselves ---------------------------------------------------------------


@router.get("/me", response_model=Me, summary="Who the token belongs to")
def me(principal: AnyRole, state: StateDep) -> Me:
    return Me(
        username=principal.username,
        role=principal.role,
        department_code=principal.department_code,
        department_name=principal.department_name,
        provides=state.provided_by(principal.department_code),
        token_id=principal.token_id,
    )


@router.post(
    "/activate",
    response_model=TokenOut,
    status_code=201,
    summary="Exchange a one-time activation code for your first token (shown once)",
    responses={
        401: {
            "description": "Unknown user, or a wrong, used or expired code (one answer for all)",
            "model": ErrorMessage,
        },
        503: {"description": "The audit log could not be written", "model": ErrorMessage},
    },
)
def activate_account(state: StateDep, body: ActivationIn) -> TokenOut:
    now = state.now()
    try:
        with state.store.transaction() as session:
            token, plain = activate(
                session, body.username, body.code, now, state.settings.token_ttl_days
            )
            return _token_out(token, plain)
    except ActivationRefused as exc:
        if exc.holder is not None:  # audited against the user the attempt names
            event = AuditEvent(
                action="user.activate",
                result="denied",
                actor=exc.holder,
                detail={"reason": exc.reason},
            )
            record_refusal(state.store, event, now)
        raise HTTPException(401, ActivationRefused.GENERIC) from exc


@router.get("/me/tokens", response_model=list[TokenInfo], summary="Your tokens")
def my_tokens(request: Request, principal: AnyRole, state: StateDep) -> list[TokenInfo]:
    record_listing(request, principal)
    with state.store.reading() as session:
        user = session.get(User, principal.user_id)
        return [_token_info(t, principal) for t in tokens_of(session, user)]


@router.post(
    "/me/tokens",
    response_model=TokenOut,
    status_code=201,
    summary="Issue one more token for yourself (shown once)",
)
def issue_my_token(principal: AnyRole, state: StateDep, body: TokenIn) -> TokenOut:
    with state.store.transaction() as session:
        user = session.get(User, principal.user_id)
        token, plain = issue_token(
            session,
            user,
            state.now(),
            body.days or state.settings.token_ttl_days,
            body.label,
            actor=principal,
        )
        return _token_out(token, plain)


@router.post(
    "/me/tokens/{token_id}/revoke", response_model=TokenOut, summary="Revoke one of your tokens"
)
def revoke_my_token(principal: AnyRole, token_id: PathId, state: StateDep) -> TokenOut:
    try:
        with state.store.transaction() as session:
            token = revoke_token(
                session, token_id, state.now(), actor=principal, owner_id=principal.user_id
            )
            return _token_out(token)
    except IdentityError as exc:
        raise HTTPException(404, str(exc)) from exc


@router.post(
    "/department/users/{username}/confirm",
    response_model=UserOut,
    summary="Confirm a user of your department (or, flagged, of one without confirmed users)",
    responses=_DUTY,
)
def confirm(principal: AnyRole, username: Username, state: StateDep) -> UserOut:
    return _duties(
        state,
        principal,
        "user.confirm",
        username,
        lambda session, user: confirm_user(session, user, state.now(), actor=principal),
    )


# --- The office --------------------------------------------------------------------------


@router.get("/admin/departments", response_model=list[DepartmentOut], summary="Departments")
def list_departments(request: Request, principal: Office, state: StateDep) -> list[DepartmentOut]:
    record_listing(request, principal)
    with state.store.reading() as session:
        found = session.execute(select(Department).order_by(Department.code)).scalars()
        return [
            DepartmentOut(id=d.id, code=d.code, name=d.name, datasets=state.provided_by(d.code))
            for d in found
        ]


@router.post(
    "/admin/departments",
    response_model=DepartmentOut,
    status_code=201,
    summary="Register a department",
)
def create_department(principal: Office, state: StateDep, body: DepartmentIn) -> DepartmentOut:
    with state.store.transaction() as session:
        dept = add_department(session, body.code, body.name, state.now())
        _audit_admin(session, principal, state, "department.add", {"code": body.code})
        return DepartmentOut(
            id=dept.id, code=dept.code, name=dept.name, datasets=state.provided_by(dept.code)
        )


@router.get("/admin/users", response_model=list[UserOut], summary="Users, with their flags")
def list_users(request: Request, principal: Office, state: StateDep) -> list[UserOut]:
    record_listing(request, principal)
    with state.store.reading() as session:
        return [_user_out(u) for u in session.execute(select(User).order_by(User.id)).scalars()]


@router.post(
    "/admin/users",
    response_model=UserCreated,
    status_code=201,
    summary="Register a user (unconfirmed) and get their one-time activation code",
)
def create_user(principal: Office, state: StateDep, body: UserIn) -> UserCreated:
    with state.store.transaction() as session:
        user, code = register_user(
            session,
            body.username,
            body.department_code,
            body.role,
            state.now(),
            activation_ttl_days=state.settings.activation_ttl_days,
            display_name=body.display_name,
            actor=principal,
        )
        return UserCreated(**_user_out(user).model_dump(), activation_code=code)


@router.post(
    "/admin/users/{username}/activation",
    response_model=ActivationOut,
    summary="Reset an account: revoke its tokens, clear its confirmation, new activation code",
)
def reset(principal: Office, username: Username, state: StateDep) -> ActivationOut:
    with state.store.transaction() as session:
        user = _user(session, username)
        code, revoked = reset_activation(
            session,
            user,
            state.now(),
            activation_ttl_days=state.settings.activation_ttl_days,
            actor=principal,
        )
        return ActivationOut(
            username=user.username,
            activation_code=code,
            activation_expires_at=user.activation_expires_at,
            revoked_tokens=revoked,
        )


@router.post(
    "/admin/users/{username}/disable",
    response_model=UserOut,
    summary="Disable a user: all their tokens refused at once, history kept",
    responses=_DUTY,
)
def disable(principal: Office, username: Username, state: StateDep, body: DisableIn) -> UserOut:
    return _duties(
        state,
        principal,
        "user.disable",
        username,
        lambda session, user: disable_user(
            session, user, state.now(), body.reason, actor=principal
        ),
    )


@router.post(
    "/admin/users/{username}/enable",
    response_model=UserOut,
    summary="Enable a disabled user again",
    responses=_DUTY,
)
def enable(principal: Office, username: Username, state: StateDep) -> UserOut:
    return _duties(
        state,
        principal,
        "user.enable",
        username,
        lambda session, user: enable_user(session, user, state.now(), actor=principal),
    )


@router.get(
    "/admin/users/{username}/tokens",
    response_model=list[TokenInfo],
    summary="A user's tokens (never their values)",
)
def user_tokens(
    request: Request, principal: Office, username: Username, state: StateDep
) -> list[TokenInfo]:
    record_listing(request, principal)
    with state.store.reading() as session:
        return [_token_info(t, principal) for t in tokens_of(session, _user(session, username))]


@router.post(
    "/admin/tokens/{token_id}/revoke", response_model=TokenOut, summary="Revoke a token at once"
)
def revoke(principal: Office, token_id: PathId, state: StateDep) -> TokenOut:
    try:
        with state.store.transaction() as session:
            return _token_out(revoke_token(session, token_id, state.now(), actor=principal))
    except IdentityError as exc:
        raise HTTPException(404, str(exc)) from exc


def _audit_admin(
    session: Session, principal: Principal, state: AppState, action: str, detail: dict
) -> None:
    append(
        session, AuditEvent(action=action, result="ok", actor=principal, detail=detail), state.now()
    )
