"""FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.utils import get_flat_params
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from api.auth import public_query, route_roles
from api.deps import StateDep, current_versions
from api.errors import HANDLERS, BodyLimit, ErrorMessage, message_handler
from api.models import Health
from api.routes import catalog, ckan, exchange, releases
from api.routes.quality import evaluation, notifications, quarantine
from api.routes.sharing import audit, identity, reads, requests, verification
from api.state import AppState
from catalog.runtime import secure_home
from catalog.settings import Settings
from catalog.sharing.access import AccessDenied
from catalog.sharing.audit import AuditUnavailable
from catalog.sharing.requests import InvalidTransition, NotFound

# Domain errors of the core and the HTTP status each one means. Input errors of the core
# (RequestError, IdentityError, VerificationError: catalog.text.InputError) are 422s in the
# validation error shape, handled in api/errors.py.
_STATUS: dict[type[Exception], int] = {
    AccessDenied: 403,
    NotFound: 404,
    InvalidTransition: 409,
    AuditUnavailable: 503,
}

# Error statuses a route may answer, besides its success and 422 (FastAPI documents that).
_ERRORS = {
    400: "The body could not be parsed",
    401: "No valid bearer token (missing, unknown, expired or revoked)",
    403: "The caller's role or grants do not allow this; the detail says why",
    404: "Nothing with this name or id (or not visible to the caller)",
    409: "The request or grant is not in a state that allows this",
    413: "The request body is larger than the limit (max_body_bytes)",
    429: "Rate limit reached; retry after the seconds in Retry-After",
    503: "The audit log could not be written; the action was refused",
}
# Every route answers 422 for a query parameter it does not take; FastAPI documents a 422
# only for routes with parameters or a body, so the others get it here, in the same shape.
_VALIDATION_422 = {
    "description": "A parameter or the body is not valid, or the query names a parameter "
    "the route does not take; the detail names it",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
    },
}
# Swagger UI and ReDoc, served from the installed fastapi-offline package: the pages load
# nothing from outside the server (an office network may have no internet).
DOCS_ASSETS = "/static/docs"
_ASSETS_DIR = files("fastapi_offline") / "static"


def _document_roles(routes: list) -> None:
    """Write each route's roles into the OpenAPI document (``x-roles``, and the description),
    and the error statuses it may answer. Runs on a router before it is included (FastAPI
    copies routes when including); running it again changes nothing."""
    for route in routes:
        if isinstance(route, APIRoute):
            roles = route_roles(route.dependant)
            route.openapi_extra = {"x-roles": list(roles) if roles else ["public"]}
            prefix = f"Roles: {', '.join(roles)}. " if roles else ""
            if prefix and not (route.description or "").startswith(prefix):
                route.description = prefix + (route.description or "")
            _document_errors(route, roles)


def _error_statuses(route: APIRoute, roles: tuple[str, ...] | None) -> list[int]:
    """The error statuses of a route, from what it depends on: authentication (401, 403 and
    503, as every authenticated call is audited), path parameters (404), a body (400, 413),
    verification (429, 403 without a grant), requests and grants (409)."""
    codes = []
    if roles:
        codes += [401, 403, 503]
    if "{" in route.path:
        codes.append(404)
    if route.body_field is not None:
        codes += [400, 413]
    if route.path.startswith("/verify"):
        codes.append(429)
    if route.path.startswith(("/requests", "/grants")) and "POST" in route.methods:
        codes.append(409)
    return sorted(set(codes))


def _document_errors(route: APIRoute, roles: tuple[str, ...] | None) -> None:
    if not get_flat_params(route.dependant) and route.body_field is None:
        route.responses.setdefault(422, _VALIDATION_422)
    for code in _error_statuses(route, roles):
        given = route.responses.get(code) or route.responses.get(str(code)) or {}
        route.responses.pop(str(code), None)
        route.responses[code] = {
            "description": _ERRORS[code],
            **given,
            "model": given.get("model", ErrorMessage),  # a route's own error shape (CKAN's)
        }


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    secure_home(settings)  # owner-only runtime folder before anything is written
    state = AppState.create(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(state.sync_release)
        yield
        state.close()

    app = FastAPI(
        title="govshare",
        summary="Catalog and sharing API of the municipal government information office",
        version="0.2.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(public_query)],
    )
    app.state.govshare = state
    app.add_middleware(BodyLimit, max_bytes=state.settings.max_body_bytes)

    # First, so that routing finds it first: it is what load balancers call most. Async: it
    # reads two small files, and a sync route costs two hops to the thread pool.
    @app.get(
        "/health",
        response_model=Health,
        tags=["health"],
        openapi_extra={"x-roles": ["public"]},
        responses={422: _VALIDATION_422},
    )
    async def health(state: StateDep) -> Health:
        published = len((await current_versions(state)).by_dataset)
        return Health(
            status="ok",
            datasets=len(state.contracts),
            published=published,
            read_copies_pending=state.copies.pending,
        )

    for module in (
        exchange,
        releases,
        catalog,
        ckan,
        reads,
        verification,
        requests,
        identity,
        audit,
        quarantine,
        evaluation,
        notifications,
    ):
        _document_roles(module.router.routes)
        app.include_router(module.router)

    for error, status in _STATUS.items():
        app.add_exception_handler(error, message_handler(status))
    for error, handler in HANDLERS.items():
        app.add_exception_handler(error, handler)

    _serve_docs(app)
    return app


# The documentation pages may load only what this server serves: ReDoc's side menu links an
# image on cdn.redoc.ly, which the browser then refuses instead of fetching.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


def _serve_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with their scripts, styles and icon served by
    this server from the installed package, under :data:`DOCS_ASSETS`."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(_ASSETS_DIR)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            oauth2_redirect_url=None,
            # No badge from the public validator service: nothing leaves the office network.
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _confined(page)

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        return _confined(page)
