"""Notifications: what a data officer or a department should act on, stored once, listed to
the people concerned and, when configured, POSTed to a webhook with retries.

Producers: a failed pipeline run (Dagster's run-failure sensor), a rejected delivery or one
quarantining more than ``quarantine_warn_rate`` of its rows (:mod:`catalog.ingest.delivery`),
and :func:`sweep` for stale datasets and overdue access requests. Each event has a
``dedupe_key`` (the run, the staleness period, the request), so seeing it again notifies
nobody twice. Subjects and details hold dataset names, counts, rules and ids, never a value
from a row.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.contracts import Contract
from catalog.quality.freshness import Freshness, all_freshness
from catalog.settings import Settings
from catalog.sharing.principal import Principal
from catalog.sharing.requests import PENDING, is_overdue, local_day
from catalog.state.db import StateStore
from catalog.state.models import AccessRequest, Notification
from catalog.store.versions import latest_versions

MAX_ERROR = 300  # characters of a webhook error kept


@dataclass(frozen=True)
class Event:
    kind: str
    severity: str  # error | warning
    subject: str
    dedupe_key: str
    dataset: str | None = None
    department_code: str | None = None
    detail: dict = field(default_factory=dict)


def notify(store: StateStore, event: Event, now: datetime, *, webhook: bool) -> int | None:
    """Store the event unless it was already notified; its id, or None when it was."""
    try:
        with store.transaction() as session:
            row = Notification(
                kind=event.kind,
                severity=event.severity,
                dataset=event.dataset,
                department_code=event.department_code,
                subject=event.subject,
                detail=event.detail,
                dedupe_key=event.dedupe_key,
                created_at=now,
                webhook_status="pending" if webhook else "none",
                webhook_attempts=0,
            )
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:  # the dedupe key exists: notified before
        return None


def notify_all(
    store: StateStore, settings: Settings, events: Iterable[Event], now: datetime
) -> list[int]:
    """Store each new event, then deliver what the webhook still owes."""
    webhook = bool(settings.webhook_url)
    created = [i for e in events if (i := notify(store, e, now, webhook=webhook)) is not None]
    if webhook:
        deliver_pending(store, settings)
    return created


def visible(session: Session, principal: Principal, limit: int, offset: int) -> list:
    """Newest first: every notification for the office, a department's own for others."""
    query = select(Notification).order_by(Notification.id.desc())
    if principal.role != "office":
        query = query.where(Notification.department_code == principal.department_code)
    return list(session.scalars(query.limit(limit).offset(offset)))


def as_dict(row: Notification) -> dict:
    return {
        "id": row.id,
        "kind": row.kind,
        "severity": row.severity,
        "dataset": row.dataset,
        "department_code": row.department_code,
        "subject": row.subject,
        "detail": row.detail,
        "created_at": row.created_at.isoformat(),
        "webhook_status": row.webhook_status,
        "webhook_attempts": row.webhook_attempts,
    }


# --------------------------------------------------------------------------- webhook

Post = Callable[[str, bytes, float], int]


def _post(url: str, body: bytes, timeout: float) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return int(response.status)


def _attempt(settings: Settings, body: bytes, post: Post) -> str | None:
    """None when the receiver took it (2xx), else what went wrong."""
    try:
        status = post(settings.webhook_url, body, settings.webhook_timeout_seconds)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
    return None if 200 <= status < 300 else f"HTTP {status}"


def deliver_pending(
    store: StateStore,
    settings: Settings,
    *,
    post: Post = _post,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """POST every pending notification, oldest first, each up to ``webhook_attempts`` times
    with exponential backoff; a notification given up stays ``failed`` with the last error."""
    with store.reading() as session:
        pending = list(
            session.scalars(
                select(Notification)
                .where(Notification.webhook_status == "pending")
                .order_by(Notification.id)
            )
        )
        payloads = [(row.id, json.dumps(as_dict(row), ensure_ascii=False)) for row in pending]
    outcome = {"delivered": 0, "failed": 0}
    for notification_id, payload in payloads:
        error, attempts, wait = None, 0, settings.webhook_backoff_seconds
        for attempts in range(1, settings.webhook_attempts + 1):
            error = _attempt(settings, payload.encode("utf-8"), post)
            if error is None:
                break
            if attempts < settings.webhook_attempts:
                sleep(wait)
                wait *= 2
        status = "delivered" if error is None else "failed"
        outcome[status] += 1
        with store.transaction() as session:
            row = session.get(Notification, notification_id)
            row.webhook_status = status
            row.webhook_attempts += attempts
            row.webhook_error = error
            if error is None:
                row.delivered_at = datetime.now(row.created_at.tzinfo)
    return outcome


# --------------------------------------------------------------------------- producers


def stale_events(contracts: Mapping[str, Contract], states: Iterable[Freshness]) -> list[Event]:
    """One event per dataset and staleness period (keyed by when it became stale)."""
    events = []
    for state in states:
        if not state.stale or state.stale_since is None:
            continue
        contract = contracts[state.dataset]
        events.append(
            Event(
                kind="dataset_stale",
                severity="warning",
                subject=(
                    f"{state.dataset} is overdue: updated {state.update_cycle}, last version "
                    f"published {state.last_published_at:%Y-%m-%d %H:%M} UTC, stale since "
                    f"{state.stale_since:%Y-%m-%d %H:%M} UTC"
                ),
                dedupe_key=f"stale:{state.dataset}:{state.stale_since.isoformat()}",
                dataset=state.dataset,
                department_code=contract.catalog.provider.code,
                detail=state.as_dict(),
            )
        )
    return events


def overdue_request_events(
    session: Session, contracts: Mapping[str, Contract], now: datetime, zone: str
) -> list[Event]:
    """One event per overdue access request (to its reviewers: the providing department)."""
    today = local_day(now, zone)
    pending = session.scalars(
        select(AccessRequest).where(AccessRequest.status.in_(PENDING), AccessRequest.due_on < today)
    )
    events = []
    for request in pending:
        if not is_overdue(request, today):
            continue
        contract = contracts.get(request.dataset)
        stage = "provider" if request.status == "submitted" else "office"
        events.append(
            Event(
                kind="request_overdue",
                severity="warning",
                subject=(
                    f"access request {request.id} for {request.dataset} is overdue: due "
                    f"{request.due_on.isoformat()}, waiting for the {stage} review"
                ),
                dedupe_key=f"request-overdue:{request.id}:{request.status}",
                dataset=request.dataset,
                department_code=contract.catalog.provider.code if contract else None,
                detail={
                    "request_id": request.id,
                    "status": request.status,
                    "due_on": request.due_on.isoformat(),
                    "stage": stage,
                },
            )
        )
    return events


def sweep(
    store: StateStore,
    con: duckdb.DuckDBPyConnection,
    contracts: Mapping[str, Contract],
    settings: Settings,
    now: datetime,
) -> list[int]:
    """Notify stale datasets and overdue access requests not notified yet (run periodically
    by a Dagster sensor and by ``govshare notifications --sweep``)."""
    states = all_freshness(
        contracts.values(), latest_versions(con), now, settings.freshness_grace_ratio
    )
    events = stale_events(contracts, states)
    with store.reading() as session:
        events += overdue_request_events(session, contracts, now, settings.timezone)
    return notify_all(store, settings, events, now)
