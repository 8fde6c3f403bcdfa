"""Verification services: yes/no answers, each needing its own grant, rate limited, audited.

The rate limit's count-and-admit is one atomic step in the platform state
(:func:`catalog.sharing.ratelimit.admit`), so concurrent calls, from any number of API processes,
never get more answers than the limit. Refusals (no grant, rate limited) are audited
aggregated (:func:`catalog.sharing.audit.record_refusal`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel

from api.auth import Requester
from api.deps import CursorDep, StateDep
from catalog.sharing.access import AccessDenied, revocation_notice
from catalog.sharing.audit import AuditEvent, record, record_refusal
from catalog.sharing.ratelimit import admit
from catalog.sharing.requests import active_grants, grant_view, revoked_grants
from catalog.sharing.verification import answer, find_service
from catalog.text import Line, Name

MAX_INPUTS = 20  # inputs of one question (services take one to three)

router = APIRouter(prefix="/verify", tags=["verification"])


class VerificationAnswer(BaseModel):
    service: str
    dataset: str
    version: int
    as_of: date
    answer: bool


@router.post(
    "/{service}",
    response_model=VerificationAnswer,
    summary="Ask a verification service a yes/no question",
    responses={
        403: {"description": "No grant for this service"},
        404: {"description": "Unknown service, or nothing published yet"},
        429: {"description": "Rate limit reached; retry after the given seconds"},
        503: {"description": "The audit log could not be written; no answer is given"},
    },
)
def verify(
    principal: Requester,
    service: str,
    state: StateDep,
    cursor: CursorDep,
    inputs: Annotated[
        dict[Name, Line],
        Body(examples=[{"id_number": "11010519491231002X"}], max_length=MAX_INPUTS),
    ],
) -> VerificationAnswer:
    try:
        contract, spec = find_service(state.contracts, service)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    now = state.now()
    limit = state.settings.verify_rate_per_minute
    with state.store.reading() as session:
        granted = active_grants(
            session,
            principal.department_id,
            contract.dataset,
            now,
            kind="verification",
            service=service,
        )
        purpose = granted[0].request.purpose if granted else None
        revoked = (
            []
            if granted
            else revoked_grants(
                session,
                principal.department_id,
                contract.dataset,
                now,
                kind="verification",
                service=service,
            )
        )
    base = AuditEvent(
        action="verify",
        result="denied",
        actor=principal,
        dataset=contract.dataset,
        items=list(spec.inputs),
        purpose=purpose,
        detail={"service": service},
    )
    if not granted:
        record_refusal(
            state.store, replace(base, detail={**base.detail, "reason": "no grant"}), now
        )
        if revoked:
            zone = ZoneInfo(state.settings.timezone)
            view = replace(
                grant_view(revoked[0]), revoked_at=revoked[0].revoked_at.astimezone(zone)
            )
            raise AccessDenied(revocation_notice(contract.dataset, view))
        raise AccessDenied(f"verification service {service!r} needs a grant for your department")
    admission = admit(state.store, principal.user_id, service, now, limit)
    if not admission.admitted:
        record_refusal(state.store, replace(base, result="rate_limited"), now)
        raise HTTPException(
            429,
            f"at most {limit} calls per minute to {service}",
            headers={"Retry-After": str(admission.retry_after)},
        )
    version = state.versions().latest(contract.dataset)
    if version is None:
        raise HTTPException(404, f"{contract.dataset} has no published version")
    today = state.today()
    yes = answer(cursor, contract, spec, version, inputs, today)
    detail = {"service": service, "grant_id": granted[0].id}
    record(
        state.store,
        replace(base, result="yes" if yes else "no", version=version.version, detail=detail),
        now,
    )
    return VerificationAnswer(
        service=service, dataset=contract.dataset, version=version.version, as_of=today, answer=yes
    )
