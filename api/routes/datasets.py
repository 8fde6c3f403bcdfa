"""Rows of published datasets. Until access control arrives, not-shared datasets never
return rows and sensitive items are always masked."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Query, Response

from api.deps import ContractDep, CursorDep, StateDep
from catalog.queries import rows_json
from catalog.versions import get_version, latest_version

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.get(
    "/{dataset}/rows",
    summary="A page of rows of a dataset (latest version or a given one)",
    responses={
        200: {"description": "Envelope with the version and the page of rows (masked)"},
        403: {"description": "The dataset is not shared"},
        404: {"description": "Unknown dataset or version, or nothing published yet"},
    },
)
def get_rows(
    contract: ContractDep,
    state: StateDep,
    cursor: CursorDep,
    version: int | None = Query(None, ge=1, description="Version number; latest if absent"),
    limit: int = Query(100, ge=1),
    offset: int = Query(0, ge=0),
) -> Response:
    sharing = contract.catalog.sharing
    if sharing.type == "not_shared":
        raise HTTPException(
            403, f"{contract.dataset} is not shared (legal basis: {sharing.legal_basis})"
        )
    limit = min(limit, state.settings.page_size_max)
    chosen = (
        get_version(cursor, contract.dataset, version)
        if version is not None
        else latest_version(cursor, contract.dataset)
    )
    if chosen is None:
        raise HTTPException(404, f"{contract.dataset} has no published version {version or ''}")
    rows = rows_json(cursor, contract, chosen, limit=limit, offset=offset)
    envelope = json.dumps(
        {
            "dataset": contract.dataset,
            "version": chosen.version,
            "total": chosen.row_count,
            "offset": offset,
            "limit": limit,
        },
        ensure_ascii=False,
    )
    # Splice DuckDB's JSON array in without parsing it again.
    return Response(envelope[:-1] + ', "rows": ' + rows + "}", media_type="application/json")
