"""Bearer-token authentication and the role each route needs.

``Caller("consumer", "analyst")`` is a dependency: 401 without a valid token, 403 for a
role not listed. Put it first in a route's parameters so it is checked before anything else
(FastAPI solves dependencies in order). The roles also land in the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import get_state
from catalog.access import READER_ROLES
from catalog.audit import AuditEvent, record
from catalog.identity import AuthenticationError, Principal, authenticate
from catalog.requests import REQUESTER_ROLES, REVIEWER_ROLES
from catalog.state.models import ROLES

bearer = HTTPBearer(auto_error=False, description="A govshare token (`gs_…`)")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "a bearer token is required", headers=_CHALLENGE)
    state = get_state(request)
    now = state.now()
    try:
        with state.store.reading() as session:
            return authenticate(session, credentials.credentials, now)
    except AuthenticationError as exc:
        if exc.holder is not None:  # a real token that no longer works: worth a record
            record(
                state.store,
                AuditEvent(
                    action="token.refused",
                    result="denied",
                    actor=exc.holder,
                    detail={"reason": str(exc)},
                ),
                now,
            )
        raise HTTPException(401, str(exc), headers=_CHALLENGE) from exc


class Caller:
    """Dependency: the authenticated principal, if its role is one of ``roles``."""

    def __init__(self, *roles: str) -> None:
        self.roles = roles

    def __call__(self, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in self.roles:
            raise HTTPException(
                403, f"role {principal.role!r} may not do this (needs {' or '.join(self.roles)})"
            )
        return principal


AnyRole = Annotated[Principal, Depends(Caller(*ROLES))]
Office = Annotated[Principal, Depends(Caller("office"))]
Reader = Annotated[Principal, Depends(Caller(*READER_ROLES))]
Requester = Annotated[Principal, Depends(Caller(*REQUESTER_ROLES))]
Reviewer = Annotated[Principal, Depends(Caller(*REVIEWER_ROLES))]


def route_roles(dependant) -> tuple[str, ...] | None:
    """The roles a route's Caller dependency admits (None for a public route)."""
    for dep in dependant.dependencies:
        if isinstance(dep.call, Caller):
            return dep.call.roles
        found = route_roles(dep)
        if found is not None:
            return found
    return None
