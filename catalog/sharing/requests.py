"""Access requests: a consumer asks, the provider department reviews, then the office.

A small state machine (``TRANSITIONS``); every move and its reason is a ``Review`` row plus
an audit entry in the same transaction. The office's approval creates the grant. Request
and review bodies forbid unknown fields: a requester cannot set status, reviewer, scope or
expiry, and reviewers can only narrow what was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload

from catalog.contracts import Contract
from catalog.sharing.access import AccessDenied, FilterClause, GrantView, check_filter
from catalog.sharing.audit import AuditEvent, append
from catalog.sharing.masking import View
from catalog.sharing.principal import Principal
from catalog.state.models import AccessRequest, Grant, Review
from catalog.text import MAX_CLAUSES, MAX_ITEMS, FreeText, InputError, Name

PENDING = ("submitted", "provider_approved")
# (state, stage, decision) -> new state. Anything else is an invalid transition.
TRANSITIONS: dict[tuple[str, str, str], str] = {
    ("submitted", "provider", "approve"): "provider_approved",
    ("submitted", "provider", "reject"): "rejected",
    ("provider_approved", "office", "approve"): "approved",
    ("provider_approved", "office", "reject"): "rejected",
    ("submitted", "requester", "withdraw"): "withdrawn",
    ("provider_approved", "requester", "withdraw"): "withdrawn",
}
REQUESTER_ROLES = ("consumer", "analyst")
REVIEWER_ROLES = ("provider", "office")
# Requested periods: at most five years long, within dates every time zone can convert.
MAX_PERIOD_YEARS = 5
PERIOD_FIRST, PERIOD_LAST = date(2000, 1, 1), date(9000, 12, 31)


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


_ITEMS, _UNMASKED, _EXPIRY = ("body", "items"), ("body", "unmasked_items"), ("body", "expires_on")


class RequestError(InputError):
    """A request or decision whose content is not acceptable (what and why)."""


class InvalidTransition(Exception):
    """A move the state machine does not allow from the request's current state."""


class NotFound(LookupError):
    pass


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestDraft(Strict):
    """What a requester may say; nothing else is accepted."""

    dataset: Name
    kind: Literal["rows", "verification"] = "rows"
    service: Name | None = Field(None, description="Verification service (kind verification)")
    items: list[Name] = Field([], max_length=MAX_ITEMS, description="Data items wanted (rows)")
    unmasked_items: list[Name] = Field(
        [], max_length=MAX_ITEMS, description="Sensitive items wanted in clear"
    )
    row_filter: list[FilterClause] = Field([], max_length=MAX_CLAUSES)
    purpose: FreeText = Field(min_length=4)
    legal_basis: FreeText = Field(min_length=2)
    period_start: date = Field(ge=PERIOD_FIRST, le=PERIOD_LAST)
    period_end: date = Field(
        ge=PERIOD_FIRST,
        le=PERIOD_LAST,
        description=f"At most {MAX_PERIOD_YEARS} years after period_start",
    )

    @field_validator("period_end")
    @classmethod
    def _period(cls, end: date, info: ValidationInfo) -> date:
        start = info.data.get("period_start")
        if start is None:  # itself invalid, and reported
            return end
        if end < start:
            raise ValueError("period_end is before period_start")
        if end > _years_after(start, MAX_PERIOD_YEARS):
            raise ValueError(f"the period is longer than {MAX_PERIOD_YEARS} years")
        return end


class ReviewDecision(Strict):
    """A reviewer's decision; scope fields may only narrow the request."""

    decision: Literal["approve", "reject"]
    reason: FreeText = Field(description="Why: required, for approvals and rejections alike")
    items: list[Name] | None = Field(None, max_length=MAX_ITEMS)
    unmasked_items: list[Name] | None = Field(None, max_length=MAX_ITEMS)
    row_filter: list[FilterClause] | None = Field(None, max_length=MAX_CLAUSES)
    expires_on: date | None = Field(
        None,
        ge=PERIOD_FIRST,
        le=PERIOD_LAST,
        description="Office only: last day of the grant, within the requested period "
        "(its end if absent)",
    )


@cache
def _calendar(years: tuple[int, ...]) -> holidays.HolidayBase:
    return holidays.country_holidays("CN", years=years)


def due_on(submitted: date, working_days: int) -> date:
    """The last working day for a decision (weekends, public holidays and China's
    weekend working days as published)."""
    calendar = _calendar(tuple(range(submitted.year, submitted.year + 2)))
    return calendar.get_nth_working_day(submitted, working_days)


def local_day(moment: datetime, zone: str) -> date:
    return moment.astimezone(ZoneInfo(zone)).date()


def is_overdue(request: AccessRequest, today: date) -> bool:
    return request.status in PENDING and today > request.due_on


def _check_scope(contract: Contract, draft: RequestDraft) -> None:
    sharing = contract.catalog.sharing
    if draft.kind == "verification":
        services = {s.service for s in contract.verification}
        if draft.service not in services:
            raise RequestError(
                f"{contract.dataset} offers no verification service "
                f"{draft.service!r} (offers: {', '.join(sorted(services)) or 'none'})"
            )
        if draft.items or draft.unmasked_items or draft.row_filter:
            raise RequestError("a verification request names a service, not items or filters")
        return
    if draft.service is not None:
        raise RequestError("a request for rows names items, not a service")
    if sharing.type == "not_shared":
        raise RequestError(
            f"{contract.dataset} is not shared (legal basis: {sharing.legal_basis}); "
            "only its verification services can be requested"
        )
    if not draft.items:
        raise RequestError("name the data items needed (items)", _ITEMS)
    _check_items(contract, draft.items, draft.unmasked_items)
    _check_filter(contract, draft.row_filter)


def _check_items(contract: Contract, items: list[str], unmasked: list[str]) -> None:
    unknown = sorted(set(items) - set(contract.item_names))
    if unknown:
        raise RequestError(f"{contract.dataset} has no data items {unknown}", _ITEMS)
    if not set(unmasked) <= set(items):
        raise RequestError("unmasked_items must be among the requested items", _UNMASKED)
    plain = sorted(set(unmasked) - contract.sensitive_items)
    if plain:
        raise RequestError(f"unmasked_items lists items that are not sensitive: {plain}", _UNMASKED)


def _check_filter(contract: Contract, clauses: list[FilterClause]) -> None:
    try:
        check_filter(contract, clauses)
    except ValueError as exc:
        raise RequestError(str(exc), ("body", "row_filter")) from exc


def submit(
    session: Session,
    contract: Contract,
    principal: Principal,
    draft: RequestDraft,
    now: datetime,
    *,
    working_days: int,
    zone: str,
) -> AccessRequest:
    if principal.role not in REQUESTER_ROLES:
        raise RequestError(f"role {principal.role!r} does not request access")
    _check_scope(contract, draft)
    today = local_day(now, zone)
    if draft.period_end < today:
        raise RequestError("the requested period has already ended", ("body", "period_end"))
    request = AccessRequest(
        requester_id=principal.user_id,
        department_id=principal.department_id,
        dataset=contract.dataset,
        kind=draft.kind,
        service=draft.service,
        items=list(dict.fromkeys(draft.items)),
        unmasked_items=sorted(set(draft.unmasked_items)),
        row_filter=[c.model_dump() for c in draft.row_filter],
        purpose=draft.purpose,
        legal_basis=draft.legal_basis,
        period_start=draft.period_start,
        period_end=draft.period_end,
        status="submitted",
        submitted_at=now,
        due_on=due_on(today, working_days),
    )
    session.add(request)
    session.flush()
    _audit(session, principal, request, "request.submit", now, {"due_on": str(request.due_on)})
    return request


def get_request(session: Session, request_id: int) -> AccessRequest:
    request = session.get(AccessRequest, request_id)
    if request is None:
        raise NotFound(f"no access request {request_id}")
    return request


def may_see_request(contract: Contract, principal: Principal, request: AccessRequest) -> bool:
    if principal.role == "office":
        return True
    if principal.role == "provider":
        return contract.catalog.provider.code == principal.department_code
    return request.department_id == principal.department_id


def _stage(contract: Contract, principal: Principal) -> str:
    if principal.role == "office":
        return "office"
    if principal.role == "provider":
        if principal.department_code != contract.catalog.provider.code:
            raise AccessDenied("only the providing department reviews requests for its data")
        return "provider"
    raise AccessDenied(f"role {principal.role!r} does not review requests")


def _move(request: AccessRequest, stage: str, decision: str) -> str:
    target = TRANSITIONS.get((request.status, stage, decision))
    if target is None:
        raise InvalidTransition(
            f"request {request.id} is {request.status}: {stage} cannot {decision} it now"
        )
    return target


def _narrow(contract: Contract, request: AccessRequest, decision: ReviewDecision) -> None:
    if request.kind != "rows":
        if decision.items or decision.unmasked_items or decision.row_filter:
            raise RequestError("a verification request has no items or filters to narrow")
        return
    items = request.items if decision.items is None else decision.items
    unmasked = (
        request.unmasked_items if decision.unmasked_items is None else decision.unmasked_items
    )
    if not items or not set(items) <= set(request.items):
        raise RequestError("items may only narrow the request's items", _ITEMS)
    unmasked = [n for n in unmasked if n in items]
    if not set(unmasked) <= set(request.unmasked_items):
        raise RequestError("unmasked_items may only narrow the request's unmasked items", _UNMASKED)
    _check_items(contract, items, unmasked)
    if decision.row_filter is not None:
        _check_filter(contract, decision.row_filter)
        # A reviewer's filter adds to the requester's (clauses are ANDed): it can only narrow.
        request.row_filter = request.row_filter + [c.model_dump() for c in decision.row_filter]
    request.items, request.unmasked_items = list(items), sorted(unmasked)


def review(
    session: Session,
    contract: Contract,
    principal: Principal,
    request: AccessRequest,
    decision: ReviewDecision,
    now: datetime,
    *,
    zone: str,
) -> AccessRequest:
    stage = _stage(contract, principal)
    target = _move(request, stage, decision.decision)
    if not decision.reason.strip():
        what = "an approval" if decision.decision == "approve" else "a rejection"
        raise RequestError(f"{what} needs a reason", ("body", "reason"))
    if decision.expires_on is not None and stage != "office":
        raise RequestError("only the office sets a grant's expiry", _EXPIRY)
    if decision.expires_on is not None and decision.expires_on > request.period_end:
        raise RequestError(
            f"expires_on {decision.expires_on} is after the requested period, which ends on "
            f"{request.period_end}; a grant may be shorter than the request, never longer",
            _EXPIRY,
        )
    if decision.decision == "approve":
        _narrow(contract, request, decision)
    request.status = target
    request.reviews.append(
        Review(
            stage=stage,
            decision=decision.decision,
            reason=decision.reason.strip(),
            reviewer_id=principal.user_id,
            decided_at=now,
        )
    )
    if target in ("approved", "rejected"):
        request.closed_at = now
    session.flush()
    _audit(
        session,
        principal,
        request,
        "request.review",
        now,
        {
            "stage": stage,
            "decision": decision.decision,
            "reason": decision.reason.strip(),
            "status": target,
        },
    )
    if target == "approved":
        _create_grant(session, principal, request, decision.expires_on, now, zone)
    return request


def withdraw(
    session: Session, principal: Principal, request: AccessRequest, now: datetime
) -> AccessRequest:
    if request.department_id != principal.department_id or principal.role not in REQUESTER_ROLES:
        raise RequestError("only the requesting department withdraws its request")
    request.status = _move(request, "requester", "withdraw")
    request.closed_at = now
    _audit(session, principal, request, "request.withdraw", now, {})
    return request


def _start_of_day(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _end_of_day(day: date, zone: str) -> datetime:
    midnight = datetime.combine(day + timedelta(days=1), time(), tzinfo=ZoneInfo(zone))
    return midnight.astimezone(UTC)


def _create_grant(
    session: Session,
    principal: Principal,
    request: AccessRequest,
    expires_on: date | None,
    now: datetime,
    zone: str,
) -> Grant:
    last_day = expires_on or request.period_end  # never after it: checked in review()
    if last_day < request.period_start:
        raise RequestError(
            f"the grant would expire before its period starts ({request.period_start})", _EXPIRY
        )
    if last_day < local_day(now, zone):
        raise RequestError("the grant would expire before today", _EXPIRY)
    grant = Grant(
        request=request,
        department_id=request.department_id,
        dataset=request.dataset,
        kind=request.kind,
        service=request.service,
        items=list(request.items),
        unmasked_items=list(request.unmasked_items),
        row_filter=list(request.row_filter),
        granted_at=now,
        starts_at=_start_of_day(request.period_start, zone),
        expires_at=_end_of_day(last_day, zone),
    )
    session.add(grant)
    session.flush()
    append(
        session,
        AuditEvent(
            action="grant.create",
            result="ok",
            actor=principal,
            dataset=grant.dataset,
            items=grant.items,
            purpose=request.purpose,
            detail={
                "grant_id": grant.id,
                "request_id": request.id,
                "department_id": grant.department_id,
                "expires_at": grant.expires_at.isoformat(),
                "service": grant.service,
            },
        ),
        now,
    )
    return grant


def revoke_grant(
    session: Session,
    contract: Contract,
    principal: Principal,
    grant_id: int,
    reason: str,
    now: datetime,
) -> Grant:
    grant = session.get(Grant, grant_id)
    if grant is None:
        raise NotFound(f"no grant {grant_id}")
    if principal.role == "provider" and principal.department_code != contract.catalog.provider.code:
        raise AccessDenied("a provider revokes only grants on its own datasets")
    if not reason.strip():
        raise RequestError("a revocation needs a reason", ("body", "reason"))
    if grant.revoked_at is not None:
        raise InvalidTransition(f"grant {grant_id} is already revoked")
    grant.revoked_at, grant.revoked_by, grant.revoke_reason = now, principal.user_id, reason.strip()
    append(
        session,
        AuditEvent(
            action="grant.revoke",
            result="ok",
            actor=principal,
            dataset=grant.dataset,
            items=grant.items,
            detail={"grant_id": grant.id, "reason": grant.revoke_reason},
        ),
        now,
    )
    return grant


def _in_force(
    department_id: int, dataset: str, now: datetime, kind: str, service: str | None
) -> list:
    """WHERE clauses of the department's grants in force on the dataset."""
    clauses = [
        Grant.department_id == department_id,
        Grant.dataset == dataset,
        Grant.kind == kind,
        Grant.revoked_at.is_(None),
        Grant.starts_at <= now,
        Grant.expires_at > now,
    ]
    return clauses if service is None else [*clauses, Grant.service == service]


def active_grants(
    session: Session,
    department_id: int,
    dataset: str,
    now: datetime,
    *,
    kind: str = "rows",
    service: str | None = None,
) -> list[Grant]:
    """The department's grants in force on the dataset, newest first."""
    stmt = select(Grant).where(*_in_force(department_id, dataset, now, kind, service))
    # The request (its purpose) comes with each grant: no lazy load per grant on every read.
    stmt = stmt.options(joinedload(Grant.request)).order_by(Grant.id.desc())
    return list(session.execute(stmt).scalars())


@dataclass(frozen=True)
class HeldGrant:
    view: GrantView
    starts_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class RowGrants:
    """Every row grant a department holds or held on a dataset, read in one query: a read
    needs those in force, those revoked and every view ever held, each at the call's time
    (so the same record serves calls at any time while the grants are unchanged)."""

    dataset: str
    held: tuple[HeldGrant, ...]  # newest first

    def in_force(self, now: datetime) -> list[GrantView]:
        """Grants in force at ``now`` (not revoked, started, not expired), newest first."""
        return [
            g.view
            for g in self.held
            if g.view.revoked_at is None and g.starts_at <= now < g.expires_at
        ]

    def revoked(self, now: datetime) -> list[GrantView]:
        """Revoked grants that would not have expired yet, latest revocation first (as
        :func:`revoked_grants`): what a refusal names instead of "no grant"."""
        revoked = [g for g in self.held if g.view.revoked_at is not None and g.expires_at > now]
        revoked.sort(key=lambda g: (g.view.revoked_at, g.view.id), reverse=True)
        return [g.view for g in revoked]

    def ever(self) -> list[View]:
        """Every grant ever held (in force, future, expired or revoked), as views: what
        the department has seen or will see stays known to it."""
        return [
            View(
                self.dataset,
                g.view.items,
                g.view.unmasked_items,
                frozenset(c.item for c in g.view.row_filter),
            )
            for g in self.held
        ]


def row_grants(session: Session, department_id: int, dataset: str) -> RowGrants:
    stmt = (
        select(
            Grant.id,
            Grant.items,
            Grant.unmasked_items,
            Grant.row_filter,
            AccessRequest.purpose,
            Grant.revoked_at,
            Grant.revoke_reason,
            Grant.starts_at,
            Grant.expires_at,
        )
        .join(AccessRequest, Grant.request_id == AccessRequest.id)
        .where(Grant.department_id == department_id, Grant.dataset == dataset, Grant.kind == "rows")
        .order_by(Grant.id.desc())
    )
    held = tuple(
        HeldGrant(
            GrantView(
                id=row.id,
                items=tuple(row.items),
                unmasked_items=frozenset(row.unmasked_items),
                row_filter=tuple(FilterClause.model_validate(c) for c in row.row_filter),
                purpose=row.purpose,
                revoked_at=row.revoked_at,
                revoke_reason=row.revoke_reason,
            ),
            row.starts_at,
            row.expires_at,
        )
        for row in session.execute(stmt)
    )
    return RowGrants(dataset, held)


def revoked_grants(
    session: Session,
    department_id: int,
    dataset: str,
    now: datetime,
    *,
    kind: str = "rows",
    service: str | None = None,
) -> list[Grant]:
    """The department's revoked grants on the dataset that would not have expired yet,
    latest revocation first: what a refusal names instead of "no grant"."""
    stmt = select(Grant).where(
        Grant.department_id == department_id,
        Grant.dataset == dataset,
        Grant.kind == kind,
        Grant.revoked_at.is_not(None),
        Grant.expires_at > now,
    )
    if service is not None:
        stmt = stmt.where(Grant.service == service)
    stmt = stmt.options(joinedload(Grant.request))
    return list(session.execute(stmt.order_by(Grant.revoked_at.desc(), Grant.id.desc())).scalars())


def grant_view(grant: Grant) -> GrantView:
    return GrantView(
        id=grant.id,
        items=tuple(grant.items),
        unmasked_items=frozenset(grant.unmasked_items),
        row_filter=tuple(FilterClause.model_validate(c) for c in grant.row_filter),
        purpose=grant.request.purpose,
        revoked_at=grant.revoked_at,
        revoke_reason=grant.revoke_reason,
    )


def visible_grants(session: Session, principal: Principal, provided: list[str]) -> list[Grant]:
    """Grants the caller may list: all (office), on its datasets (provider), its own (others)."""
    stmt = select(Grant).order_by(Grant.id.desc())
    if principal.role == "provider":
        stmt = stmt.where(
            or_(Grant.dataset.in_(provided), Grant.department_id == principal.department_id)
        )
    elif principal.role != "office":
        stmt = stmt.where(Grant.department_id == principal.department_id)
    return list(session.execute(stmt).scalars())


def _audit(
    session: Session,
    principal: Principal,
    request: AccessRequest,
    action: str,
    now: datetime,
    detail: dict,
) -> None:
    append(
        session,
        AuditEvent(
            action=action,
            result="ok",
            actor=principal,
            dataset=request.dataset,
            items=list(request.items),
            purpose=request.purpose,
            detail={
                "request_id": request.id,
                "kind": request.kind,
                "service": request.service,
                **detail,
            },
        ),
        now,
    )


def list_requests(
    session: Session, principal: Principal, provided: list[str], status: str | None = None
) -> list[AccessRequest]:
    """Requests the caller may see: all (office), for its datasets (provider), its own."""
    stmt = select(AccessRequest).order_by(AccessRequest.id.desc())
    if principal.role == "provider":
        stmt = stmt.where(AccessRequest.dataset.in_(provided))
    elif principal.role != "office":
        stmt = stmt.where(AccessRequest.department_id == principal.department_id)
    if status:
        stmt = stmt.where(AccessRequest.status == status)
    return list(session.execute(stmt).scalars())
