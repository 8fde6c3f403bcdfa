"""Access requests and grants: submit, review (provider, then office), withdraw, revoke."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from api.auth import AnyRole, Requester, Reviewer, record_listing
from api.deps import StateDep
from api.params import PathId
from api.state import AppState
from catalog.contracts import Contract
from catalog.sharing.access import FilterClause
from catalog.sharing.principal import Principal
from catalog.sharing.requests import (
    NotFound,
    RequestDraft,
    RequestError,
    ReviewDecision,
    get_request,
    is_overdue,
    list_requests,
    may_see_request,
    review,
    revoke_grant,
    submit,
    visible_grants,
    withdraw,
)
from catalog.state.models import AccessRequest, Grant
from catalog.text import FreeText

router = APIRouter(tags=["access requests"])

RequestStatus = Literal["submitted", "provider_approved", "approved", "rejected", "withdrawn"]
"""The states of a request (``catalog.state.models.REQUEST_STATES``): a filter on anything
else is a 422 listing them, never an empty list."""


class ReviewPublic(BaseModel):
    stage: str
    decision: str
    reason: str
    reviewer: str
    decided_at: datetime


class GrantPublic(BaseModel):
    id: int
    request_id: int
    department: str
    dataset: str
    kind: str
    service: str | None
    items: list[str]
    unmasked_items: list[str]
    row_filter: list[FilterClause]
    granted_at: datetime
    starts_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None
    active: bool

    @classmethod
    def of(cls, grant: Grant, now: datetime) -> GrantPublic:
        return cls(
            id=grant.id,
            request_id=grant.request_id,
            department=grant.department.code,
            dataset=grant.dataset,
            kind=grant.kind,
            service=grant.service,
            items=grant.items,
            unmasked_items=grant.unmasked_items,
            row_filter=grant.row_filter,
            granted_at=grant.granted_at,
            starts_at=grant.starts_at,
            expires_at=grant.expires_at,
            revoked_at=grant.revoked_at,
            revoke_reason=grant.revoke_reason,
            active=grant.revoked_at is None and grant.starts_at <= now < grant.expires_at,
        )


class RequestPublic(BaseModel):
    id: int
    dataset: str
    kind: str
    service: str | None
    items: list[str]
    unmasked_items: list[str]
    row_filter: list[FilterClause]
    purpose: str
    legal_basis: str
    period_start: date
    period_end: date
    requester: str
    department: str
    status: str
    submitted_at: datetime
    due_on: date
    overdue: bool
    closed_at: datetime | None
    reviews: list[ReviewPublic]
    grant: GrantPublic | None

    @classmethod
    def of(cls, request: AccessRequest, state: AppState) -> RequestPublic:
        now = state.now()
        return cls(
            id=request.id,
            dataset=request.dataset,
            kind=request.kind,
            service=request.service,
            items=request.items,
            unmasked_items=request.unmasked_items,
            row_filter=request.row_filter,
            purpose=request.purpose,
            legal_basis=request.legal_basis,
            period_start=request.period_start,
            period_end=request.period_end,
            requester=request.requester.username,
            department=request.department.code,
            status=request.status,
            submitted_at=request.submitted_at,
            due_on=request.due_on,
            overdue=is_overdue(request, state.today()),
            closed_at=request.closed_at,
            reviews=[
                ReviewPublic(
                    stage=r.stage,
                    decision=r.decision,
                    reason=r.reason,
                    reviewer=r.reviewer.username,
                    decided_at=r.decided_at,
                )
                for r in request.reviews
            ],
            grant=GrantPublic.of(request.grant, now) if request.grant else None,
        )


class Revocation(BaseModel):
    model_config = {"extra": "forbid"}
    reason: FreeText


def _contract(state: AppState, dataset: str) -> Contract:
    contract = state.contracts.get(dataset)
    if contract is None:
        raise HTTPException(404, f"no dataset {dataset!r} in the catalog")
    return contract


def _visible(state: AppState, principal: Principal, request: AccessRequest) -> AccessRequest:
    # Someone else's request is reported as missing, not as forbidden: ids are not disclosed.
    if not may_see_request(_contract(state, request.dataset), principal, request):
        raise NotFound(f"no access request {request.id}")
    return request


@router.post(
    "/requests",
    response_model=RequestPublic,
    status_code=201,
    summary="Ask for access to a dataset's rows or a verification service",
)
def create_request(principal: Requester, state: StateDep, draft: RequestDraft) -> RequestPublic:
    contract = state.contracts.get(draft.dataset)
    if contract is None:  # named in the body, not the path: a 422 on the field
        raise RequestError(f"no dataset {draft.dataset!r} in the catalog", loc=("body", "dataset"))
    settings = state.settings
    with state.store.transaction() as session:
        request = submit(
            session,
            contract,
            principal,
            draft,
            state.now(),
            working_days=settings.request_deadline_working_days,
            zone=settings.timezone,
        )
        return RequestPublic.of(request, state)


@router.get(
    "/requests",
    response_model=list[RequestPublic],
    summary="Requests you may see: yours, those for your data, or all (office)",
)
def get_requests(
    request: Request,
    principal: AnyRole,
    state: StateDep,
    status: Annotated[
        RequestStatus | None, Query(description="Only requests in this state")
    ] = None,
    overdue: bool | None = None,
) -> list[RequestPublic]:
    record_listing(request, principal)
    provided = state.provided_by(principal.department_code)
    with state.store.reading() as session:
        found = [
            RequestPublic.of(r, state) for r in list_requests(session, principal, provided, status)
        ]
    return [r for r in found if overdue is None or r.overdue == overdue]


@router.get("/requests/{request_id}", response_model=RequestPublic, summary="One request")
def get_one_request(principal: AnyRole, request_id: PathId, state: StateDep) -> RequestPublic:
    with state.store.reading() as session:
        return RequestPublic.of(_visible(state, principal, get_request(session, request_id)), state)


@router.post(
    "/requests/{request_id}/review",
    response_model=RequestPublic,
    summary="Approve or reject: the provider department first, then the office",
)
def review_request(
    principal: Reviewer, request_id: PathId, state: StateDep, decision: ReviewDecision
) -> RequestPublic:
    with state.store.transaction() as session:
        request = _visible(state, principal, get_request(session, request_id))
        contract = _contract(state, request.dataset)
        review(
            session,
            contract,
            principal,
            request,
            decision,
            state.now(),
            zone=state.settings.timezone,
        )
        return RequestPublic.of(request, state)


@router.post(
    "/requests/{request_id}/withdraw",
    response_model=RequestPublic,
    summary="Withdraw your department's pending request",
)
def withdraw_request(principal: Requester, request_id: PathId, state: StateDep) -> RequestPublic:
    with state.store.transaction() as session:
        request = _visible(state, principal, get_request(session, request_id))
        withdraw(session, principal, request, state.now())
        return RequestPublic.of(request, state)


@router.get(
    "/grants",
    response_model=list[GrantPublic],
    summary="Grants you may see: your department's, on your data, or all (office)",
)
def get_grants(request: Request, principal: AnyRole, state: StateDep) -> list[GrantPublic]:
    record_listing(request, principal)
    provided = state.provided_by(principal.department_code)
    with state.store.reading() as session:
        return [
            GrantPublic.of(g, state.now()) for g in visible_grants(session, principal, provided)
        ]


@router.post(
    "/grants/{grant_id}/revoke",
    response_model=GrantPublic,
    summary="Revoke a grant at once (office, or the providing department)",
)
def revoke(principal: Reviewer, grant_id: PathId, state: StateDep, body: Revocation) -> GrantPublic:
    with state.store.transaction() as session:
        grant = session.get(Grant, grant_id)
        if grant is None:
            raise NotFound(f"no grant {grant_id}")
        contract = _contract(state, grant.dataset)
        grant = revoke_grant(session, contract, principal, grant_id, body.reason, state.now())
        return GrantPublic.of(grant, state.now())
