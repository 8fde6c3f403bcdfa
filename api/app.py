"""FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deps import CursorDep, StateDep
from api.models import Health
from api.routes import catalog, datasets
from api.state import AppState
from catalog.settings import Settings
from catalog.versions import latest_versions


def create_app(settings: Settings | None = None) -> FastAPI:
    state = AppState.create(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="govshare",
        summary="Catalog and sharing API of the municipal government information office",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.govshare = state
    app.include_router(catalog.router)
    app.include_router(datasets.router)

    @app.get("/health", response_model=Health, tags=["health"])
    def health(state: StateDep, cursor: CursorDep) -> Health:
        return Health(
            status="ok", datasets=len(state.contracts), published=len(latest_versions(cursor))
        )

    return app
