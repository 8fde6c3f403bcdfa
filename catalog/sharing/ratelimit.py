"""Rate limits that hold under concurrency, across API processes.

Counting past calls and admitting a new one is a single write transaction over
``rate_events``: the user's row is locked first (PostgreSQL: ``SELECT … FOR UPDATE``;
SQLite: the store's transactions begin with ``BEGIN IMMEDIATE``, which takes the write lock
at once), events older than the window are deleted, the rest counted for (user, service),
and a new event is inserted only while the count is below the limit. Two calls can never
both see the last free place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from catalog.state.db import StateStore
from catalog.state.models import RateEvent, User


@dataclass(frozen=True)
class Admission:
    admitted: bool
    used: int
    """Calls counted in the window, this one included when admitted."""
    retry_after: int
    """Seconds until a place frees up (0 when admitted)."""


def admit(
    store: StateStore,
    user_id: int,
    service: str,
    now: datetime,
    limit: int,
    window: timedelta = timedelta(minutes=1),
) -> Admission:
    """Admit one call of the user to the service if fewer than ``limit`` were admitted in
    the last ``window``; atomic across threads and processes."""
    start = now - window
    with store.transaction() as session:
        session.execute(select(User.id).where(User.id == user_id).with_for_update())
        session.execute(
            delete(RateEvent).where(RateEvent.user_id == user_id, RateEvent.at <= start)
        )
        used, oldest = session.execute(
            select(func.count(), func.min(RateEvent.at)).where(
                RateEvent.user_id == user_id, RateEvent.service == service, RateEvent.at > start
            )
        ).one()
        if used >= limit:
            wait = (oldest + window - now).total_seconds() if oldest is not None else 1
            return Admission(False, used, max(1, math.ceil(wait)))
        session.add(RateEvent(user_id=user_id, service=service, at=now))
        return Admission(True, used + 1, 0)
