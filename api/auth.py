"""Bearer-token authentication and the role each route needs.

``Caller("consumer", "analyst")`` is a dependency: 401 without a valid token, 403 for a
role not listed, then 422 for a query parameter the route does not take. Put it first in a
route's parameters so it is checked before anything else (FastAPI solves dependencies in
order). The roles also land in the OpenAPI document. Public routes get the same check of
their query parameters from :func:`public_query`, an app-wide dependency.

What it audits: a real token that no longer works (``token.refused``) and a wrong role
(``role.denied``), both aggregated (:func:`catalog.sharing.audit.record_refusal`); and every
authenticated listing (``LISTINGS``), before it is served (a failed entry refuses it: 503).
"""

from __future__ import annotations

import re
from functools import partial
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import state_of
from api.params import reject_unknown_query
from catalog.sharing.access import READER_ROLES
from catalog.sharing.audit import AuditEvent, record, record_refusal
from catalog.sharing.identity import (
    AuthenticationError,
    check_holder,
    hash_token,
    token_holder,
)
from catalog.sharing.principal import Principal
from catalog.sharing.requests import REQUESTER_ROLES, REVIEWER_ROLES
from catalog.state.models import ROLES

bearer = HTTPBearer(auto_error=False, description="A govshare token (`gs_…`)")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

# Authenticated listings (GET, route path) and the action their audit entry records.
LISTINGS = {
    "/requests": "request.list",
    "/grants": "grant.list",
    "/audit": "audit.search",
    "/audit/usage": "audit.usage",
    "/admin/users": "user.list",
    "/admin/departments": "department.list",
    "/admin/users/{username}/tokens": "token.list",
    "/me/tokens": "token.list",
    "/quality/quarantine": "quarantine.list",
    "/quality/scorecards": "scorecard.list",
    "/quality/scorecards/history": "scorecard.history",
    "/quality/references": "reference.list",
    "/notifications": "notification.list",
}
_VALUE_MAX = 200  # characters kept of each query parameter of a listing's entry
_UNSAFE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def current_principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """The caller the bearer token names, or 401 (audited if the token is real). The token's
    row is kept while the access generation stands (``catalog.state.memo``); its expiry and
    state are checked on every call."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "a bearer token is required", headers=_CHALLENGE)
    state = state_of(request)
    now = state.now()
    digest = hash_token(credentials.credentials)
    # Read once per call; the call's other lookups (its grants) use the same generation.
    request.state.access_generation = generation = state.access.generation()
    try:
        return check_holder(
            state.access.get(
                ("token", digest), partial(token_holder, token_hash=digest), generation
            ),
            now,
        )
    except AuthenticationError as exc:
        if exc.holder is not None:  # a real token that no longer works: worth a record
            record_refusal(
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


def token_credentials(request: Request) -> HTTPAuthorizationCredentials | None:
    """The token of an ``Authorization`` header as CKAN clients send it: the bare token
    (CKAN's API tokens; ``ckanapi``'s ``apikey``) or after ``Bearer``. Checked by
    :func:`current_principal` like any bearer token."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else header
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)


def access_generation(request: Request) -> int | None:
    """The access generation the call's authentication read (None before it)."""
    return getattr(request.state, "access_generation", None)


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", request.url.path)


def _safe(value: str) -> str:
    return _UNSAFE.sub("\ufffd", value[:_VALUE_MAX])


class Caller:
    """Dependency: the authenticated principal, if its role is one of ``roles``."""

    def __init__(self, *roles: str) -> None:
        self.roles = roles

    # One dependency for the token and the role: each sync dependency is a hop of its own
    # to the thread pool.
    def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        principal = current_principal(request, credentials)
        state = state_of(request)
        path = _route_path(request)
        if principal.role not in self.roles:
            reason = f"role {principal.role!r} may not do this (needs {' or '.join(self.roles)})"
            record_refusal(
                state.store,
                AuditEvent(
                    action="role.denied",
                    result="denied",
                    actor=principal,
                    detail={"reason": reason, "method": request.method, "route": path},
                ),
                state.now(),
                key=f"{principal.username}\x1frole.denied\x1f{request.method} {path}",
            )
            raise HTTPException(403, reason)
        reject_unknown_query(request)
        return principal


async def public_query(request: Request) -> None:
    """App-wide dependency: a public route's unknown query parameters are a 422. Routes with
    a :class:`Caller` are left to it, so that a caller learns nothing before authenticating."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is not None and _public(route, dependant):
        reject_unknown_query(request)


def _public(route, dependant) -> bool:
    """Whether a route is public (no :class:`Caller`), kept on the route at its first call."""
    public = getattr(route, "govshare_public", None)
    if public is None:
        public = route.govshare_public = route_roles(dependant) is None
    return public


def record_listing(request: Request, principal: Principal) -> None:
    """Audit an authenticated listing before it is served (a failed entry refuses it: 503).
    Routes call it first thing in their body, so only a call that passed validation is
    recorded (a refused one is a 422 and writes nothing), with the query parameters the
    route declares, each cut short: what else a caller appends is not kept."""
    state = state_of(request)
    path = _route_path(request)
    declared = {param.alias for param in request.scope["route"].dependant.query_params}
    query = {k: _safe(v) for k, v in request.query_params.items() if k in declared}
    params = {k: _safe(str(v)) for k, v in request.path_params.items()}
    event = AuditEvent(
        action=LISTINGS[path],
        result="ok",
        actor=principal,
        detail={"route": path, "query": query, **params},
    )
    record(state.store, event, state.now())


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
