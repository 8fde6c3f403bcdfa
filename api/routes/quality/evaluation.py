"""Freshness of every dataset, department scorecards with their history, and the benefit of
sharing a dataset (who used it, for what, how often)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from api.auth import Office, Reviewer, record_listing
from api.deps import ContractDep, CursorDep, StateDep
from api.errors import ErrorMessage
from api.params import Moment, QueryText
from api.routes.quality import refuse_other_providers
from catalog.quality.freshness import all_freshness
from catalog.quality.references import latest_results
from catalog.quality.scorecard import (
    benefit,
    compute,
    current_month,
    history,
    month_bounds,
    store_cards,
)
from catalog.sharing.audit import AuditEvent, record
from catalog.text import InputError

router = APIRouter(prefix="/quality", tags=["quality"])

Month = Annotated[
    str | None,
    Query(
        pattern=r"^[0-9]{4}-[0-9]{2}$",
        description="YYYY-MM in the office's time zone; the current month if absent",
    ),
]


class FreshnessPublic(BaseModel):
    dataset: str
    update_cycle: str
    status: str
    stale: bool
    last_published_at: str | None
    due_at: str | None
    stale_since: str | None


class ScorecardPublic(BaseModel):
    month: str
    department_code: str
    department_name: str
    score: float | None
    rank: int | None
    weights: dict[str, float]
    measures: dict[str, Any]
    computed_at: str | None = None


class ReferencePublic(BaseModel):
    dataset: str
    version: int
    reference: str
    target: str
    target_version: int | None
    checked: int
    resolved: int
    unresolved: int
    examples: list[str]
    checked_at: str


class BenefitPublic(BaseModel):
    dataset: str
    since: str
    until: str
    departments: list[str]
    calls: int
    rows: int
    uses: list[dict[str, Any]]


@router.get(
    "/freshness",
    response_model=list[FreshnessPublic],
    summary="Every dataset against its update cycle (stale first, since when)",
)
def freshness_list(state: StateDep) -> list[FreshnessPublic]:
    states = all_freshness(
        state.contracts.values(),
        state.versions().latest_all(),
        state.now(),
        state.settings.freshness_grace_ratio,
    )
    return [FreshnessPublic(**s.as_dict()) for s in states]


def _month(state, month: str | None) -> str:
    chosen = month or current_month(state.now(), state.settings.timezone)
    try:
        month_bounds(chosen, state.settings.timezone)
    except ValueError as exc:
        raise InputError(str(exc), ("query", "month")) from None
    return chosen


def _visible(principal, cards: list[dict]) -> list[dict]:
    """The office sees every department's card; a provider its own."""
    if principal.role == "office":
        return cards
    return [c for c in cards if c["department_code"] == principal.department_code]


@router.get(
    "/scorecards",
    response_model=list[ScorecardPublic],
    summary="Department scorecards of a month, ranked (the latest computation)",
    responses={
        404: {"description": "No scorecards computed for the month yet", "model": ErrorMessage}
    },
)
def scorecards(
    request: Request, principal: Reviewer, state: StateDep, month: Month = None
) -> list[ScorecardPublic]:
    chosen = _month(state, month)
    with state.store.reading() as session:
        stored = history(session, chosen)
    if not stored:
        raise HTTPException(404, f"no scorecards computed for {chosen} yet (POST to compute)")
    record_listing(request, principal)
    latest = stored[0]["computed_at"]
    cards = [c for c in stored if c["computed_at"] == latest]
    cards.sort(key=lambda c: (c["rank"] is None, c["rank"] or 0, c["department_code"]))
    return [ScorecardPublic(**c) for c in _visible(principal, cards)]


@router.post(
    "/scorecards",
    response_model=list[ScorecardPublic],
    summary="Compute and keep the scorecards of a month (office)",
)
def compute_scorecards(
    principal: Office, state: StateDep, cursor: CursorDep, month: Month = None
) -> list[ScorecardPublic]:
    chosen = _month(state, month)
    now = state.now()
    with state.store.reading() as session:
        cards = compute(
            cursor,
            session,
            state.contracts.values(),
            chosen,
            zone=state.settings.timezone,
            weights=state.settings.score_weights,
            grace_ratio=state.settings.freshness_grace_ratio,
            now=now,
        )
    store_cards(state.store, cards, now, actor=principal)
    return [ScorecardPublic(**c, computed_at=now.isoformat()) for c in cards]


@router.get(
    "/scorecards/history",
    response_model=list[ScorecardPublic],
    summary="Every kept computation of a month's scorecards (newest first)",
)
def scorecard_history(
    request: Request,
    principal: Reviewer,
    state: StateDep,
    month: Month = None,
    department_code: QueryText = None,
) -> list[ScorecardPublic]:
    chosen = _month(state, month)
    record_listing(request, principal)
    with state.store.reading() as session:
        cards = history(session, chosen, department_code)
    return [ScorecardPublic(**c) for c in _visible(principal, cards)]


@router.get(
    "/benefit/{dataset}",
    response_model=BenefitPublic,
    summary="Who used a dataset, for which purposes, how often",
)
def dataset_benefit(
    contract: ContractDep,
    principal: Reviewer,
    state: StateDep,
    since: Moment | None = None,
    until: Moment | None = None,
) -> BenefitPublic:
    refuse_other_providers(
        state, principal, contract, "benefit.read",
        "a provider sees the benefit of its own datasets only",
    )  # fmt: skip
    end = until or state.now()
    try:
        start = since or end - timedelta(days=365)
    except OverflowError:
        raise InputError(
            "until is too early to count a year back from", ("query", "until")
        ) from None
    if start >= end:
        raise InputError("since must be before until", ("query", "since"))
    with state.store.reading() as session:
        result = benefit(session, contract, start, end)
    event = AuditEvent(
        action="benefit.read",
        result="ok",
        actor=principal,
        dataset=contract.dataset,
        detail={"since": start.isoformat(), "until": end.isoformat()},
    )
    record(state.store, event, state.now())
    return BenefitPublic(**result)


@router.get(
    "/references",
    response_model=list[ReferencePublic],
    summary="Cross-dataset reference results per version (newest check of each)",
)
def reference_results(
    request: Request,
    principal: Reviewer,
    state: StateDep,
    cursor: CursorDep,
    dataset: QueryText = None,
    version: Annotated[int | None, Query(ge=1, le=2**53)] = None,
) -> list[ReferencePublic]:
    record_listing(request, principal)
    results = latest_results(cursor, dataset, version)
    if principal.role != "office":
        own = set(state.provided_by(principal.department_code))
        results = [r for r in results if r.dataset in own]
    return [ReferencePublic(**r.as_dict()) for r in results]
