"""Typed FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import duckdb
from fastapi import Depends, HTTPException, Request

from api.state import AppState
from catalog.contracts import Contract


def state_of(request: Request) -> AppState:
    return request.app.state.govshare


# Dependencies that do no I/O are ``async``: FastAPI runs a plain ``def`` one in the thread
# pool, a hop of its own on every call.
async def get_state(request: Request) -> AppState:
    return state_of(request)


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
