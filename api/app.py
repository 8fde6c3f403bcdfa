"""FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from api.auth import route_roles
from api.deps import CursorDep, StateDep
from api.models import Health
from api.routes import admin, audit, catalog, datasets, requests, verify
from api.state import AppState
from catalog.access import AccessDenied
from catalog.audit import AuditUnavailable
from catalog.identity import IdentityError
from catalog.requests import InvalidTransition, NotFound, RequestError
from catalog.settings import Settings
from catalog.verification import VerificationError
from catalog.versions import latest_versions

# Domain errors of the core and the HTTP status each one means.
_STATUS: dict[type[Exception], int] = {
    AccessDenied: 403,
    NotFound: 404,
    InvalidTransition: 409,
    RequestError: 422,
    IdentityError: 422,
    VerificationError: 422,
    AuditUnavailable: 503,
}


def _document_roles(routes: list) -> None:
    """Write each route's roles into the OpenAPI document (``x-roles``, and the description).
    Runs on a router before it is included (FastAPI copies routes when including)."""
    for route in routes:
        if isinstance(route, APIRoute):
            roles = route_roles(route.dependant)
            route.openapi_extra = {"x-roles": list(roles) if roles else ["public"]}
            if roles:
                route.description = f"Roles: {', '.join(roles)}. " + (route.description or "")


def create_app(settings: Settings | None = None) -> FastAPI:
    state = AppState.create(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="govshare",
        summary="Catalog and sharing API of the municipal government information office",
        version="0.2.0",
        lifespan=lifespan,
    )
    app.state.govshare = state
    for module in (catalog, datasets, verify, requests, admin, audit):
        _document_roles(module.router.routes)
        app.include_router(module.router)

    for error, status in _STATUS.items():

        def handler(_request: Request, exc: Exception, status: int = status) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        app.add_exception_handler(error, handler)

    @app.get(
        "/health", response_model=Health, tags=["health"], openapi_extra={"x-roles": ["public"]}
    )
    def health(state: StateDep, cursor: CursorDep) -> Health:
        return Health(
            status="ok", datasets=len(state.contracts), published=len(latest_versions(cursor))
        )

    return app
