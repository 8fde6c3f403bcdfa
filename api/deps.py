"""Typed FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import duckdb
from fastapi import Depends, HTTPException, Request

from api.state import AppState
from catalog.contracts import Contract


def get_state(request: Request) -> AppState:
    return request.app.state.govshare


def get_cursor(request: Request) -> Iterator[duckdb.DuckDBPyConnection]:
    yield from get_state(request).cursor()


StateDep = Annotated[AppState, Depends(get_state)]
CursorDep = Annotated[duckdb.DuckDBPyConnection, Depends(get_cursor)]


def get_contract(dataset: str, state: StateDep) -> Contract:
    contract = state.contracts.get(dataset)
    if contract is None:
        raise HTTPException(404, f"no dataset {dataset!r} in the catalog")
    return contract


ContractDep = Annotated[Contract, Depends(get_contract)]
