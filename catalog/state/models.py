"""Platform state as SQLAlchemy 2 models: identity, access requests, grants and the audit log.

The schema itself is owned by the Alembic migrations next to this module; these classes
must match them (a test compares ``alembic check`` against the models).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

ROLES = ("office", "provider", "consumer", "analyst")
REQUEST_STATES = ("submitted", "provider_approved", "approved", "rejected", "withdrawn")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike
    (SQLite keeps no time zone; storing naive UTC keeps comparisons right on both)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the platform state; use UTC-aware times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]

    users: Mapped[list[User]] = relationship(back_populates="department")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(f"role IN {ROLES}", name="ck_users_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    # Who registered the user and who confirmed them (username or ``cli:<login>``): a user acts
    # only once confirmed by someone other than their creator (docs/access.md).
    created_by: Mapped[str | None] = mapped_column(String(80))
    confirmed_at: Mapped[datetime | None]
    confirmed_by: Mapped[str | None] = mapped_column(String(80))
    # Who last reset the account (a new activation code, tokens revoked): may not confirm it.
    reset_by: Mapped[str | None] = mapped_column(String(80))
    flag: Mapped[str | None] = mapped_column(Text, doc="Why this account needs a second look")
    # One-time activation secret (SHA-256), handed over out of band; exchanged for a token.
    activation_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    activation_expires_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)

    department: Mapped[Department] = relationship(back_populates="users")


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class AccessRequest(Base):
    __tablename__ = "access_requests"
    __table_args__ = (
        CheckConstraint(f"status IN {REQUEST_STATES}", name="ck_requests_status"),
        CheckConstraint("kind IN ('rows', 'verification')", name="ck_requests_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    dataset: Mapped[str] = mapped_column(String(63), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    service: Mapped[str | None] = mapped_column(String(63))
    items: Mapped[list[str]]
    unmasked_items: Mapped[list[str]]
    row_filter: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    period_start: Mapped[date]
    period_end: Mapped[date]
    status: Mapped[str] = mapped_column(String(20))
    submitted_at: Mapped[datetime]
    due_on: Mapped[date]
    closed_at: Mapped[datetime | None]

    requester: Mapped[User] = relationship()
    department: Mapped[Department] = relationship()
    reviews: Mapped[list[Review]] = relationship(order_by="Review.id")
    grant: Mapped[Grant | None] = relationship(back_populates="request")


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime]

    reviewer: Mapped[User] = relationship()


class Grant(Base):
    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id"), unique=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    dataset: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16))
    service: Mapped[str | None] = mapped_column(String(63))
    items: Mapped[list[str]]
    unmasked_items: Mapped[list[str]]
    row_filter: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    granted_at: Mapped[datetime]
    starts_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoke_reason: Mapped[str | None] = mapped_column(Text)

    request: Mapped[AccessRequest] = relationship(back_populates="grant")
    department: Mapped[Department] = relationship()

    __table_args__ = (Index("ix_grants_department_dataset", "department_id", "dataset"),)


class AuditEntry(Base):
    """One line of the hash-chained log; ``seq`` is assigned by the writer, never by the DB."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_user_action_at", "user_id", "action", "at"),
        Index("ix_audit_dataset_at", "dataset", "at"),
    )

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    user_id: Mapped[int | None]
    token_id: Mapped[int | None]
    username: Mapped[str] = mapped_column(String(64))
    department_code: Mapped[str | None] = mapped_column(String(18))
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str | None] = mapped_column(String(63))
    version: Mapped[int | None]
    items: Mapped[list[str]]
    row_count: Mapped[int | None]
    purpose: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The chain's last sequence number and hash: catches a truncated tail, and its row lock
    serialises appends across processes."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(String(64))


# Tables whose every change moves the access generation forward (migration 0004's triggers):
# what authentication and a caller's grants are read from.
GENERATION_TABLES = ("departments", "users", "tokens", "access_requests", "grants")


class StateGeneration(Base):
    """One row: the access generation. Database triggers on :data:`GENERATION_TABLES` set it
    to a new random value on every change, in the changing transaction
    (``catalog.state.generation``); a process may keep what it read from those tables while
    the value it reads first is the same."""

    __tablename__ = "state_generation"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger)


class RateEvent(Base):
    """One admitted call to a rate-limited service; counted under a lock, pruned as it ages."""

    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_events_user_service_at", "user_id", "service", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    service: Mapped[str] = mapped_column(String(63))
    at: Mapped[datetime]


class RefusalCounter(Base):
    """Refusals of one kind by one caller, aggregated: the audit log gets one entry per
    window, carrying how many were suppressed since the previous one."""

    __tablename__ = "refusal_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_started_at: Mapped[datetime]
    suppressed: Mapped[int] = mapped_column(default=0)


NOTIFICATION_KINDS = (
    "run_failed",
    "delivery_rejected",
    "quarantine_rate",
    "dataset_stale",
    "request_overdue",
)


class Notification(Base):
    """Something a data officer or a department should act on. Never holds personal data:
    datasets, counts, rules, run ids and request ids only. ``dedupe_key`` makes each event
    (a run, a staleness period, an overdue request) notify once however often it is seen."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(f"kind IN {NOTIFICATION_KINDS}", name="ck_notifications_kind"),
        Index("ix_notifications_department_created", "department_code", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(10))
    dataset: Mapped[str | None] = mapped_column(String(63))
    department_code: Mapped[str | None] = mapped_column(String(18))
    """The department concerned (a dataset's provider, a request's reviewers); the office
    sees every notification."""
    subject: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]]
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime]
    webhook_status: Mapped[str] = mapped_column(String(12), default="none")
    """none (no webhook configured) | pending | delivered | failed"""
    webhook_attempts: Mapped[int] = mapped_column(default=0)
    webhook_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]


class Scorecard(Base):
    """One computation of one department's scorecard for one month. Every computation is
    kept, so a month recomputed later can be compared with what was reported before."""

    __tablename__ = "scorecards"
    __table_args__ = (Index("ix_scorecards_month_department", "month", "department_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7))
    department_code: Mapped[str] = mapped_column(String(18))
    department_name: Mapped[str] = mapped_column(String(200))
    measures: Mapped[dict[str, Any]]
    score: Mapped[float | None]
    weights: Mapped[dict[str, Any]]
    rank: Mapped[int | None]
    computed_at: Mapped[datetime]
