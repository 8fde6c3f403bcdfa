"""Typed FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import duckdb
from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from api.state import AppState
from catalog.contracts import Contract
from catalog.store.versions import VersionsAt


def state_of(request: Request) -> AppState:
    return request.app.state.govshare


# Dependencies that do no I/O are ``async``: FastAPI runs a plain ``def`` one in the thread
# pool, a hop of its own on every call.
async def get_state(request: Request) -> AppState:
    return state_of(request)


async def current_versions(state: AppState) -> VersionsAt:
    """:meth:`AppState.versions` for an async route. With the lake's catalog in SQLite, the
    newest snapshot id comes from its files' state without a hop to the thread pool, and the
    lake is queried (in the pool) only after a new commit. A catalog in PostgreSQL is asked
    over the network, never on the event loop."""
    if state.settings.lake_catalog_uri.startswith("sqlite:"):
        known = state.index.known()
        if known is not None and known.snapshot == state.warmed:
            return known
    return await run_in_threadpool(state.versions)


def get_cursor(request: Request) -> Iterator[duckdb.DuckDBPyConnection]:
    yield from state_of(request).cursor()


StateDep = Annotated[AppState, Depends(get_state)]
CursorDep = Annotated[duckdb.DuckDBPyConnection, Depends(get_cursor)]


async def get_contract(dataset: str, state: StateDep) -> Contract:
    contract = state.contracts.get(dataset)
    if contract is None:
        raise HTTPException(404, f"no dataset {dataset!r} in the catalog")
    return contract


ContractDep = Annotated[Contract, Depends(get_contract)]
