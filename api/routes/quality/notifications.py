"""Notifications for the people concerned: the office sees all, a department its own."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from api.auth import AnyRole, record_listing
from api.deps import StateDep
from api.params import Offset
from catalog.quality.notifications import as_dict, visible

router = APIRouter(prefix="/notifications", tags=["quality"])


class NotificationPublic(BaseModel):
    id: int
    kind: str
    severity: str
    dataset: str | None
    department_code: str | None
    subject: str
    detail: dict[str, Any]
    created_at: str
    webhook_status: str
    webhook_attempts: int


@router.get("", response_model=list[NotificationPublic], summary="Notifications, newest first")
def list_notifications(
    request: Request,
    principal: AnyRole,
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[NotificationPublic]:
    record_listing(request, principal)
    with state.store.reading() as session:
        return [
            NotificationPublic(**as_dict(n)) for n in visible(session, principal, limit, offset)
        ]
