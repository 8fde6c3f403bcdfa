"""The office registers departments and users and issues or revokes their tokens."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import AnyRole, Office
from api.deps import StateDep
from api.state import AppState
from catalog.audit import AuditEvent, append
from catalog.identity import (
    Principal,
    add_department,
    add_user,
    issue_token,
    revoke_token,
    user_by_name,
)
from catalog.state.models import ROLES, Department, User

router = APIRouter(tags=["identity"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DepartmentIn(Strict):
    code: str = Field(description="Unified social credit code of the department")
    name: str = Field(min_length=2, max_length=200)


class DepartmentOut(BaseModel):
    id: int
    code: str
    name: str
    datasets: list[str]


class UserIn(Strict):
    username: str = Field(pattern=r"^[a-z][a-z0-9_.-]{2,63}$")
    display_name: str = ""
    department_code: str
    role: str = Field(json_schema_extra={"enum": list(ROLES)})


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    department_code: str
    role: str
    active: bool


class TokenIn(Strict):
    label: str = Field("", max_length=100)
    days: int | None = Field(None, ge=1, le=366, description="Validity; the default if absent")


class TokenOut(BaseModel):
    id: int
    username: str
    label: str
    expires_at: datetime
    token: str | None = Field(None, description="Shown once, at issue; only its hash is kept")


class Me(BaseModel):
    username: str
    role: str
    department_code: str
    department_name: str
    provides: list[str]


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        department_code=user.department.code,
        role=user.role,
        active=user.active,
    )


@router.get("/me", response_model=Me, summary="Who the token belongs to")
def me(principal: AnyRole, state: StateDep) -> Me:
    return Me(
        username=principal.username,
        role=principal.role,
        department_code=principal.department_code,
        department_name=principal.department_name,
        provides=state.provided_by(principal.department_code),
    )


@router.get("/admin/departments", response_model=list[DepartmentOut], summary="Departments")
def list_departments(principal: Office, state: StateDep) -> list[DepartmentOut]:
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


@router.get("/admin/users", response_model=list[UserOut], summary="Users")
def list_users(principal: Office, state: StateDep) -> list[UserOut]:
    with state.store.reading() as session:
        return [_user_out(u) for u in session.execute(select(User).order_by(User.id)).scalars()]


@router.post("/admin/users", response_model=UserOut, status_code=201, summary="Register a user")
def create_user(principal: Office, state: StateDep, body: UserIn) -> UserOut:
    with state.store.transaction() as session:
        user = add_user(
            session, body.username, body.department_code, body.role, state.now(), body.display_name
        )
        _audit_admin(
            session, principal, state, "user.add", {"username": user.username, "role": user.role}
        )
        return _user_out(user)


@router.post(
    "/admin/users/{username}/tokens",
    response_model=TokenOut,
    status_code=201,
    summary="Issue a token to a user (shown once)",
)
def create_token(principal: Office, username: str, state: StateDep, body: TokenIn) -> TokenOut:
    with state.store.transaction() as session:
        user = user_by_name(session, username)
        token, plain = issue_token(
            session,
            user,
            state.now(),
            body.days or state.settings.token_ttl_days,
            body.label,
            actor=principal,
        )
        return TokenOut(
            id=token.id,
            username=user.username,
            label=token.label,
            expires_at=token.expires_at,
            token=plain,
        )


@router.post(
    "/admin/tokens/{token_id}/revoke", response_model=TokenOut, summary="Revoke a token at once"
)
def revoke(principal: Office, token_id: int, state: StateDep) -> TokenOut:
    with state.store.transaction() as session:
        token = revoke_token(session, token_id, state.now(), actor=principal)
        return TokenOut(
            id=token.id,
            username=token.user.username,
            label=token.label,
            expires_at=token.expires_at,
        )


def _audit_admin(
    session: Session, principal: Principal, state: AppState, action: str, detail: dict
) -> None:
    append(
        session, AuditEvent(action=action, result="ok", actor=principal, detail=detail), state.now()
    )
