"""Bounded parameter types for the routes: what the databases can hold, refused with a 422
naming the parameter before anything reaches SQLite, PostgreSQL or DuckDB (a 64-bit
integer overflows past 2^63; a time at the edge of the calendar overflows when converted
to UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

from catalog.text import Line

MAX_ID = 2**53
"""Largest id or number accepted (also exact in JSON numbers and JavaScript)."""
MAX_OFFSET = 2**53
"""Largest offset of a page."""

PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
"""An id in the path (request, grant, token, version number)."""
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
"""Rows or entries to skip."""
VersionNumber = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="Version number; latest if absent")
]
"""The version of a dataset to read."""
GrantId = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_ID,
        description="Grant to read under. Absent: the newest grant in force on a conditional "
        "dataset, the unconditional view (everything masked) on an unconditional one",
    ),
]
"""The grant a read is made under."""
QueryText = Annotated[Line | None, Query()]
"""A word or a code in the query string: one line, no control character, 200 at most."""


def _utc(moment: datetime) -> datetime:
    """The moment in UTC (a time without a zone is taken as UTC); a 422 if it has none."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("is outside the range of dates that can be stored") from None


Moment = Annotated[datetime, AfterValidator(_utc)]
"""A moment, converted to UTC (no zone: UTC)."""
