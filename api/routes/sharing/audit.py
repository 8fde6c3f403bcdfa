"""The audit trail: the office searches it all; a provider sees who used its data."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.auth import Office, Reviewer, record_listing
from api.deps import StateDep
from api.params import Moment, Offset, QueryText
from api.state import AppState
from catalog.sharing.audit import AuditQuery, search, usage, verify
from catalog.sharing.principal import Principal

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditEntryPublic(BaseModel):
    seq: int
    at: datetime
    username: str = Field(description="Who acted: a username, or `cli:<login>` for the operator")
    token_id: int | None = Field(description="The token the call was made with, if any")
    department_code: str | None
    role: str | None
    action: str
    dataset: str | None
    version: int | None
    items: list[str]
    row_count: int | None
    purpose: str | None
    result: str
    detail: dict
    hash: str


class UsagePublic(BaseModel):
    dataset: str
    department_code: str
    action: str
    calls: int
    rows: int


class ChainPublic(BaseModel):
    intact: bool
    entries: int
    head_hash: str
    faults: list[str]


def _query(state: AppState, principal: Principal, **filters: object) -> AuditQuery:
    # A provider's view is limited to entries about the datasets its department provides.
    datasets = None if principal.role == "office" else state.provided_by(principal.department_code)
    if filters.get("dataset"):
        wanted = [str(filters.pop("dataset"))]
        datasets = wanted if datasets is None else [d for d in datasets if d in wanted]
    filters.pop("dataset", None)
    for bound in ("since", "until"):  # times without a zone are taken as UTC
        moment = filters.get(bound)
        if isinstance(moment, datetime) and moment.tzinfo is None:
            filters[bound] = moment.replace(tzinfo=UTC)
    return AuditQuery(datasets=datasets, **filters)  # type: ignore[arg-type]


@router.get(
    "", response_model=list[AuditEntryPublic], summary="Search the audit log (newest first)"
)
def search_log(
    request: Request,
    principal: Reviewer,
    state: StateDep,
    dataset: QueryText = None,
    username: QueryText = None,
    department_code: QueryText = None,
    action: QueryText = None,
    since: Moment | None = None,
    until: Moment | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: Offset = 0,
) -> list[AuditEntryPublic]:
    record_listing(request, principal)
    query = _query(
        state,
        principal,
        dataset=dataset,
        username=username,
        department_code=department_code,
        action=action,
        since=since,
        until=until,
    )
    with state.store.reading() as session:
        return [
            AuditEntryPublic.model_validate(e, from_attributes=True)
            for e in search(session, query, limit=limit, offset=offset)
        ]


@router.get(
    "/usage",
    response_model=list[UsagePublic],
    summary="Use per dataset, department and action: calls and rows served",
)
def usage_stats(
    request: Request,
    principal: Reviewer,
    state: StateDep,
    dataset: QueryText = None,
    since: Moment | None = None,
    until: Moment | None = None,
) -> list[UsagePublic]:
    record_listing(request, principal)
    query = _query(state, principal, dataset=dataset, since=since, until=until)
    with state.store.reading() as session:
        return [UsagePublic(**row.__dict__) for row in usage(session, query)]


@router.get("/verify", response_model=ChainPublic, summary="Check the hash chain end to end")
def verify_chain(principal: Office, state: StateDep) -> ChainPublic:
    with state.store.reading() as session:
        report = verify(session)
    return ChainPublic(
        intact=report.intact,
        entries=report.entries,
        head_hash=report.head_hash,
        faults=report.faults,
    )
