"""The audit trail: an append-only, hash-chained log of every use of the platform.

Each entry's hash covers its content and the previous entry's hash, and ``audit_head``
holds the last sequence number and hash. ``verify`` walks the chain and names the first
entry that was edited, removed or moved. State changes append their entry in their own
transaction (both land or neither); reads append theirs before the response is sent and
are refused when that fails (:class:`AuditUnavailable`).

Every entry names the actual actor and, for a call made with a token, the token's id.
Refusals (a revoked token, a wrong role, a rate limit, a denied read) go through
:func:`record_refusal`: one entry per caller, action and reason per window, the next one
counting those left out, so that a stale token cannot grow the log without limit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from catalog.sharing.principal import Principal
from catalog.state.db import StateStore
from catalog.state.models import AuditEntry, AuditHead, RefusalCounter

GENESIS = "0" * 64
_HASHED = (
    "seq",
    "at",
    "user_id",
    "username",
    "department_code",
    "role",
    "action",
    "dataset",
    "version",
    "items",
    "row_count",
    "purpose",
    "result",
    "detail",
    "prev_hash",
)


class AuditUnavailable(RuntimeError):
    """The audit entry could not be written, so the action it records is refused."""

    @classmethod
    def of(cls, exc: Exception) -> AuditUnavailable:
        cause = getattr(exc, "orig", None) or exc
        return cls(f"audit log unavailable, action refused: {cause}")


_NUMBERS = re.compile(r"\d+")


@dataclass(frozen=True)
class AuditEvent:
    """What happened; who did it comes from the principal (None: the local operator's CLI)."""

    action: str
    result: str
    actor: Principal | None = None
    dataset: str | None = None
    version: int | None = None
    items: list[str] = field(default_factory=list)
    row_count: int | None = None
    purpose: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    operator: str = "cli"
    token_id: int | None = None
    """The token the call was made with; None: the actor's (``actor.token_id``)."""


def entry_hash(entry: AuditEntry) -> str:
    content = {name: getattr(entry, name) for name in _HASHED}
    content["at"] = entry.at.isoformat()
    # Hashed only when present, so entries written before token ids keep their hashes.
    if entry.token_id is not None:
        content["token_id"] = entry.token_id
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def append(session: Session, event: AuditEvent, now: datetime) -> AuditEntry:
    """Add the event to the chain inside the caller's transaction; if the log cannot take
    it, AuditUnavailable aborts that transaction and with it the action."""
    try:
        return _append(session, event, now)
    except SQLAlchemyError as exc:
        raise AuditUnavailable.of(exc) from exc


# Statements with parameters, compiled once (values inlined cost a new compilation per call).
_ENTRY_COLUMNS = tuple(AuditEntry.__table__.columns)
_INSERT_ENTRY = insert(AuditEntry.__table__)
_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
_MOVE_HEAD = (
    update(AuditHead.__table__)
    .where(AuditHead.__table__.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def _append(session: Session | Connection, event: AuditEvent, now: datetime) -> AuditEntry:
    # Plain statements, not the ORM's unit of work: every read of the API appends an entry
    # and the ORM's flush cost three times the SQL. Created by the migration; without the
    # head row (NoResultFound) the log refuses to take entries.
    head = session.execute(_HEAD).one()
    entry = _entry(head.seq, head.hash, event, now)
    session.execute(_INSERT_ENTRY, {c.key: getattr(entry, c.key) for c in _ENTRY_COLUMNS})
    session.execute(_MOVE_HEAD, {"new_seq": entry.seq, "new_hash": entry.hash})
    return entry


def _entry(seq: int, prev_hash: str, event: AuditEvent, now: datetime) -> AuditEntry:
    """The entry after the head (``seq``, ``prev_hash``), hashed."""
    actor = event.actor
    token_id = event.token_id if event.token_id is not None else getattr(actor, "token_id", None)
    entry = AuditEntry(
        seq=seq + 1,
        at=now,
        user_id=actor.user_id if actor else None,
        token_id=token_id,
        username=actor.username if actor else event.operator,
        department_code=actor.department_code if actor else None,
        role=actor.role if actor else None,
        action=event.action,
        dataset=event.dataset,
        version=event.version,
        items=list(event.items),
        row_count=event.row_count,
        purpose=event.purpose,
        result=event.result,
        detail=event.detail,
        prev_hash=prev_hash,
    )
    entry.hash = entry_hash(entry)
    return entry


class _SqliteAppend:
    """:func:`_append` on SQLite's driver connection: the same statements, with each value
    converted by its column type's own bind processor (as SQLAlchemy would convert it)."""

    def __init__(self, dialect: Dialect) -> None:
        names = [c.name for c in _ENTRY_COLUMNS]
        self.insert = (
            f"INSERT INTO {AuditEntry.__tablename__} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))})"
        )
        self.columns = [(c.key, c.type.bind_processor(dialect)) for c in _ENTRY_COLUMNS]

    def __call__(self, cursor: sqlite3.Cursor, event: AuditEvent, now: datetime) -> AuditEntry:
        cursor.execute(f"SELECT seq, hash FROM {AuditHead.__tablename__} WHERE id = 1")
        head = cursor.fetchone()
        if head is None:
            raise sqlite3.OperationalError("the audit log has no head row")
        entry = _entry(head[0], head[1], event, now)
        values = [
            process(getattr(entry, key)) if process else getattr(entry, key)
            for key, process in self.columns
        ]
        cursor.execute(self.insert, values)
        cursor.execute(
            f"UPDATE {AuditHead.__tablename__} SET seq = ?, hash = ? WHERE id = 1",
            (entry.seq, entry.hash),
        )
        return entry


def record(store: StateStore, event: AuditEvent, now: datetime) -> AuditEntry:
    """Append in a transaction of its own; any failure refuses the recorded action. (On
    SQLite on the driver's connection, elsewhere on a plain connection, not an ORM session:
    this runs on every read.)"""
    try:
        if store.sqlite:
            with store.sqlite_appending() as cursor:
                return _sqlite_append(store.engine.dialect)(cursor, event, now)
        with store.appending() as connection:
            return _append(connection, event, now)
    except (SQLAlchemyError, sqlite3.Error) as exc:
        raise AuditUnavailable.of(exc) from exc


@functools.cache
def _sqlite_append(dialect: Dialect) -> _SqliteAppend:
    return _SqliteAppend(dialect)


def refusal_key(event: AuditEvent) -> str:
    """Refusals that count as the same: one caller, one action, one result and kind of
    reason. The numbers in a reason are left out: a caller naming grant after grant
    (``grant 101 is not in force``, ``grant 102 …``) makes one kind of refusal, not many."""
    who = event.actor.username if event.actor else event.operator
    reason = _NUMBERS.sub("#", str(event.detail.get("reason", "")))[:200]
    return "\x1f".join((who, event.action, event.result, event.dataset or "", reason))


def record_refusal(
    store: StateStore,
    event: AuditEvent,
    now: datetime,
    *,
    key: str | None = None,
    window: timedelta | None = None,
) -> AuditEntry | None:
    """Record a refusal, aggregated: the first of its kind (``key``, by default caller,
    action, result and reason) in a window appends an entry; later ones in the window only
    count, and the entry after the window carries in ``detail.suppressed`` how many were
    left out since the previous one (``detail.since``: when that one was written). Returns
    the entry, or None when the refusal was counted. Window: ``refusal_log_window_minutes``.
    Like :func:`record`, a failure raises AuditUnavailable."""
    window = window or timedelta(minutes=store.settings.refusal_log_window_minutes)
    digest = hashlib.sha256(
        (key or refusal_key(event)).encode("utf-8", "surrogatepass")
    ).hexdigest()
    try:
        with store.transaction() as session:
            # The head's row lock (SQLite: the write lock) serialises this with every append,
            # so two processes never both write the entry of one window.
            session.execute(select(AuditHead.id).where(AuditHead.id == 1).with_for_update())
            counter = session.get(RefusalCounter, digest, with_for_update=True)
            started = counter.window_started_at if counter is not None else None
            if started is not None and started <= now < started + window:
                counter.suppressed += 1
                return None
            detail = {**event.detail, "suppressed": counter.suppressed if counter else 0}
            if started is not None:
                detail["since"] = started.isoformat()
            entry = append(session, replace(event, detail=detail), now)
            if counter is None:
                session.add(RefusalCounter(key=digest, window_started_at=now, suppressed=0))
            else:
                counter.window_started_at, counter.suppressed = now, 0
            return entry
    except SQLAlchemyError as exc:
        raise AuditUnavailable.of(exc) from exc


@dataclass(frozen=True)
class ChainReport:
    entries: int
    head_hash: str
    faults: list[str]

    @property
    def intact(self) -> bool:
        return not self.faults


def verify(session: Session, batch: int = 5000) -> ChainReport:
    """Walk the chain in sequence order; report the first break and a head mismatch."""
    faults: list[str] = []
    previous, expected_seq, count = GENESIS, 1, 0
    rows = session.execute(
        select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=batch)
    ).scalars()
    for entry in rows:
        count += 1
        if entry.seq != expected_seq:
            faults.append(f"entry {expected_seq} is missing (next entry is {entry.seq})")
        elif entry.prev_hash != previous:
            faults.append(
                f"entry {entry.seq} does not follow entry {entry.seq - 1} "
                "(removed, inserted or reordered)"
            )
        elif entry_hash(entry) != entry.hash:
            faults.append(f"entry {entry.seq} was edited (its hash does not match its content)")
        if faults:
            break
        previous, expected_seq = entry.hash, entry.seq + 1
    head = session.get(AuditHead, 1)
    if not faults and head is not None and (head.seq, head.hash) != (expected_seq - 1, previous):
        faults.append(
            f"the head records entry {head.seq} but the log ends at entry "
            f"{expected_seq - 1} (entries removed from the end)"
        )
    return ChainReport(entries=count, head_hash=previous, faults=faults)


@dataclass(frozen=True)
class AuditQuery:
    username: str | None = None
    department_code: str | None = None
    datasets: Iterable[str] | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(query: AuditQuery):
    stmt = select(AuditEntry)
    if query.username:
        stmt = stmt.where(AuditEntry.username == query.username)
    if query.department_code:
        stmt = stmt.where(AuditEntry.department_code == query.department_code)
    if query.datasets is not None:
        stmt = stmt.where(AuditEntry.dataset.in_(list(query.datasets)))
    if query.action:
        stmt = stmt.where(AuditEntry.action == query.action)
    if query.since:
        stmt = stmt.where(AuditEntry.at >= query.since)
    if query.until:
        stmt = stmt.where(AuditEntry.at < query.until)
    return stmt


def search(session: Session, query: AuditQuery, *, limit: int, offset: int) -> list[AuditEntry]:
    stmt = _filtered(query).order_by(AuditEntry.seq.desc()).limit(limit).offset(offset)
    return list(session.execute(stmt).scalars())


@dataclass(frozen=True)
class UsageRow:
    dataset: str
    department_code: str
    action: str
    calls: int
    rows: int


def usage(session: Session, query: AuditQuery) -> list[UsageRow]:
    """Successful uses per dataset, department and action, with the rows served."""
    sub = _filtered(query).where(AuditEntry.result.in_(("ok", "yes", "no"))).subquery()
    stmt = (
        select(
            sub.c.dataset,
            sub.c.department_code,
            sub.c.action,
            func.count(),
            func.coalesce(func.sum(sub.c.row_count), 0),
        )
        .where(sub.c.dataset.is_not(None), sub.c.department_code.is_not(None))
        .group_by(sub.c.dataset, sub.c.department_code, sub.c.action)
        .order_by(sub.c.dataset, sub.c.department_code, sub.c.action)
    )
    return [UsageRow(*row) for row in session.execute(stmt)]
