"""Bounded parameter types for the routes: what the databases can hold, refused with a 422
naming the parameter before anything reaches SQLite, PostgreSQL or DuckDB (a 64-bit
integer overflows past 2^63; a time at the edge of the calendar overflows when converted
to UTC).

And the query parameters a route does not take: FastAPI ignores them, so a misspelt or
invented filter (``?region_code=330106``) would silently return everything.
:func:`reject_unknown_query` answers 422 naming each of them, on every route (called by
:class:`api.auth.Caller` after authentication, and by an app-wide dependency on public
routes)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
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
FromNumber = Annotated[
    int | None,
    Query(alias="from", ge=1, le=MAX_ID, description="The older of two versions or releases"),
]
"""What a diff compares from (the one before ``to`` if absent)."""
ToNumber = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="The newer one; the latest if absent")
]
"""What a diff compares to."""
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


UNKNOWN_SHOWN = 20
"""Unknown query parameters named in one 422 at most (the rest are left out)."""


def declared_query(dependant: Dependant) -> set[str]:
    """The query parameters a route takes: its own and those of its dependencies."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= declared_query(sub)
    return names


def _declared(route: Any, dependant: Dependant) -> frozenset[str]:
    """:func:`declared_query` of a route, kept on the route at its first call."""
    found = getattr(route, "govshare_declared", None)
    if found is None:
        found = route.govshare_declared = frozenset(declared_query(dependant))
    return found


ITEM_FILTERS = "item_filters"
"""Attribute of a route whose undeclared query parameters may be data-item filters
(``?region_code=``): a function of the request giving the item names it takes."""


def takes_item_filters(items: Callable[[Request], Iterable[str]]) -> Callable:
    """Decorator: query parameters named after one of ``items(request)`` are item filters
    (the route checks them against the caller's scope); any other undeclared one is still
    refused by :func:`reject_unknown_query`."""

    def mark(endpoint: Callable) -> Callable:
        setattr(endpoint, ITEM_FILTERS, items)
        return endpoint

    return mark


def undeclared_query(request: Request) -> list[tuple[str, str]]:
    """The query parameters the matched route does not declare, each value in order."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    declared = _declared(route, dependant) if dependant is not None else frozenset()
    return [(k, v) for k, v in request.query_params.multi_items() if k not in declared]


def reject_unknown_query(request: Request) -> None:
    """422 naming each query parameter the matched route does not take (``extra_forbidden``,
    the type pydantic gives an unknown body field), and the ones it takes."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:  # not an API route (static files, the OpenAPI document)
        return
    declared = _declared(route, dependant)
    if items := getattr(getattr(route, "endpoint", None), ITEM_FILTERS, None):
        declared = declared | set(items(request))
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in declared]
    if not unknown:
        return
    takes = ", ".join(sorted(declared)) or "no query parameters"
    raise RequestValidationError(
        [
            {
                "loc": ("query", name),
                "msg": f"unknown query parameter {name!r}; this route takes {takes}",
                "type": "extra_forbidden",
                "input": request.query_params[name],
            }
            for name in unknown[:UNKNOWN_SHOWN]
        ]
    )
