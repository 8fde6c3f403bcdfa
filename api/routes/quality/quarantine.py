"""Quarantined rows with their rules and reasons, and open/resolved counts: for the office
and the providing department only; reading rows is audited like any read."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from api.auth import Reviewer, record_listing
from api.deps import ContractDep, CursorDep, StateDep
from api.params import Offset, QueryText, VersionNumber
from api.routes.quality import refuse_other_providers
from catalog.quality.quarantine import QuarantineQuery, by_department, counts, list_rows
from catalog.sharing.audit import AuditEvent, record
from catalog.store.versions import get_version

router = APIRouter(prefix="/quality/quarantine", tags=["quality"])


class DatasetCounts(BaseModel):
    dataset: str
    provider_code: str
    provider_name: str
    open: int
    resolved: int
    superseded: int
    open_by_rule: dict[str, int]


class DepartmentCounts(BaseModel):
    department_code: str
    datasets: int
    open: int
    resolved: int
    superseded: int


class QuarantineSummary(BaseModel):
    datasets: list[DatasetCounts]
    departments: list[DepartmentCounts]


class QuarantinePage(BaseModel):
    dataset: str
    total: int
    limit: int
    offset: int
    shown_in_clear: bool
    """True for the providing department: each row has its ``values`` (its own data, to
    correct). False for the office: rows carry no values, only where and why."""
    rows: list[dict[str, Any]]


@router.get("", response_model=QuarantineSummary, summary="Quarantine counts per dataset")
def quarantine_counts(
    request: Request, principal: Reviewer, state: StateDep, cursor: CursorDep
) -> QuarantineSummary:
    record_listing(request, principal)
    contracts = list(state.contracts.values())
    if principal.role != "office":
        own = set(state.provided_by(principal.department_code))
        contracts = [c for c in contracts if c.dataset in own]
    rows = counts(cursor, contracts)
    return QuarantineSummary(
        datasets=[DatasetCounts(**r.as_dict()) for r in rows],
        departments=[
            DepartmentCounts(department_code=code, **totals)
            for code, totals in sorted(by_department(rows).items())
        ],
    )


@router.get("/{dataset}", response_model=QuarantinePage, summary="Quarantined rows of a dataset")
def quarantine_rows(
    contract: ContractDep,
    principal: Reviewer,
    state: StateDep,
    cursor: CursorDep,
    version: VersionNumber = None,
    status: Literal["open", "resolved", "superseded"] | None = None,
    rule: QueryText = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> QuarantinePage:
    refuse_other_providers(
        state, principal, contract, "quarantine.read",
        "a provider reads only its own datasets' quarantine",
    )  # fmt: skip
    run_id = None
    if version is not None:
        found = get_version(cursor, contract.dataset, version)
        if found is None:
            raise HTTPException(404, f"{contract.dataset} has no version {version}")
        run_id = found.run_id
    viewer = "owner" if principal.role == "provider" else "office"
    query = QuarantineQuery(status, rule, run_id, limit, offset)
    total, rows = list_rows(cursor, contract, query, viewer)
    record(
        state.store,
        AuditEvent(
            action="quarantine.read",
            result="ok",
            actor=principal,
            dataset=contract.dataset,
            version=version,
            items=list(contract.item_names) if viewer == "owner" else [],
            row_count=len(rows),
            detail={"status": status, "rule": rule, "offset": offset, "viewer": viewer},
        ),
        state.now(),
    )
    return QuarantinePage(
        dataset=contract.dataset,
        total=total,
        limit=limit,
        offset=offset,
        shown_in_clear=viewer == "owner",
        rows=rows,
    )
