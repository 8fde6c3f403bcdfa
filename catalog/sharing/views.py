"""What a caller asks of a page beyond its scope: an order and equality filters on data items
(``?sort=-birth_date&region_code=330102``), checked against the contract and the scope.

Only items the scope shows in clear may be sorted or filtered on. An order on a masked item
would give its values away a comparison at a time, and an equality filter would confirm a
guess of one without the verification service's rate limit. Filters are ANDed with the
grant's row filter, never in place of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from catalog.contracts import Contract
from catalog.sharing.access import FilterClause, Scope
from catalog.sql import quote_ident
from catalog.text import FILTER_VALUE_MAX, MAX_FILTER_VALUES, InputError

SORT_PARAMETER = "sort"
SORT_ITEMS_MAX = 3
"""Items one ``sort`` may name."""
FILTER_TYPES = ("string", "integer", "date", "boolean")
"""Item types a filter may compare (a value of these has one spelling in SQL)."""


@dataclass(frozen=True)
class SortKey:
    item: str
    descending: bool = False

    @property
    def sql(self) -> str:
        return f"{quote_ident(self.item)} {'DESC' if self.descending else 'ASC'} NULLS LAST"

    @property
    def text(self) -> str:
        return ("-" if self.descending else "") + self.item


@dataclass(frozen=True)
class RowView:
    """An order (before the scope's own: the key or its pseudonym) and filters."""

    sort: tuple[SortKey, ...] = ()
    filters: tuple[FilterClause, ...] = ()

    @property
    def signature(self) -> str:
        """Short digest of the view ('' for the default one): a cursor carries it, so a walk
        goes on only in the order and with the filters it began with."""
        if not self.sort and not self.filters:
            return ""
        text = repr(([s.text for s in self.sort], [(f.item, f.values) for f in self.filters]))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def query(self) -> list[tuple[str, str]]:
        """The view as query parameters (for the ``next`` link)."""
        pairs = [(SORT_PARAMETER, ",".join(s.text for s in self.sort))] if self.sort else []
        return pairs + [(f.item, str(v)) for f in self.filters for v in f.values]


def shown_in_clear(contract: Contract, scope: Scope, item: str) -> bool:
    """Whether every value of the item leaves in clear under this scope."""
    return (
        item in scope.items
        and item not in scope.pseudonymised
        and item not in scope.redacted
        and (item not in contract.sensitive_items or item in scope.unmasked)
    )


Shown = Literal["clear", "masked", "pseudonymised", "redacted"]


def how_shown(contract: Contract, scope: Scope, item: str) -> Shown:
    """How the scope shows an item of its own: in clear, or how it is hidden."""
    if shown_in_clear(contract, scope, item):
        return "clear"
    if item in scope.redacted:
        return "redacted"
    return "pseudonymised" if item in scope.pseudonymised else "masked"


def parse_sort(contract: Contract, scope: Scope, text: str | None) -> tuple[SortKey, ...]:
    """``item`` or ``-item`` (descending), comma-separated; a 422 on ``sort`` otherwise."""
    if text is None:
        return ()
    where = ("query", SORT_PARAMETER)
    names = [part.strip() for part in text.split(",")]
    if not all(names) or len(names) > SORT_ITEMS_MAX:
        raise InputError(
            f"sort takes 1 to {SORT_ITEMS_MAX} data items, comma-separated, each with - "
            "in front for descending order",
            where,
        )
    keys = tuple(SortKey(n.removeprefix("-"), n.startswith("-")) for n in names)
    for key in keys:
        _check_clear(contract, scope, key.item, "sort by", where)
    if len({key.item for key in keys}) != len(keys):
        raise InputError("sort names an item twice", where)
    return keys


def parse_filters(
    contract: Contract, scope: Scope, pairs: Iterable[tuple[str, str]]
) -> tuple[FilterClause, ...]:
    """Equality filters from ``item=value`` query parameters (an item given twice or more
    matches any of its values); a 422 naming the parameter for an item that is not the
    contract's, not shown in clear, not of a comparable type, or a value not of its type."""
    values: dict[str, list[str]] = {}
    for name, raw in pairs:
        where = ("query", name)
        if name not in contract.item_names:
            raise InputError(
                f"unknown query parameter {name!r}: not a parameter of this route nor a data "
                f"item of {contract.dataset}",
                where,
            )
        _check_clear(contract, scope, name, "filter on", where)
        values.setdefault(name, []).append(_typed(contract, name, raw, where))
    clauses = []
    for name, given in values.items():
        unique = list(dict.fromkeys(given))
        if len(unique) > MAX_FILTER_VALUES:
            raise InputError(f"at most {MAX_FILTER_VALUES} values per item", ("query", name))
        op = "eq" if len(unique) == 1 else "in"
        clauses.append(FilterClause(item=name, op=op, values=unique))
    return tuple(clauses)


def _check_clear(contract: Contract, scope: Scope, name: str, verb: str, where: tuple) -> None:
    if name not in contract.item_names:
        raise InputError(f"{contract.dataset} has no data item {name!r}", where)
    if not shown_in_clear(contract, scope, name):
        raise InputError(
            f"cannot {verb} {name}: your scope does not show it in clear (an order or a filter "
            "on it would reveal what is hidden)",
            where,
        )


def _typed(contract: Contract, name: str, raw: str, where: tuple) -> str:
    """The value spelt as DuckDB spells the item's values as text (the filter compares text)."""
    item = contract.item(name)
    if item.type not in FILTER_TYPES:
        raise InputError(f"{name} is of type {item.type}: filters take {FILTER_TYPES}", where)
    if not raw or len(raw) > FILTER_VALUE_MAX or not raw.isprintable():
        raise InputError(f"a value of 1 to {FILTER_VALUE_MAX} printable characters", where)
    try:
        if item.type == "integer":
            number = int(raw)
            if not -(2**63) <= number < 2**63:
                raise ValueError
            return str(number)
        if item.type == "date":
            if len(raw) != len("YYYY-MM-DD"):  # fromisoformat also takes 20260101
                raise ValueError
            return date.fromisoformat(raw).isoformat()
        if item.type == "boolean":
            return {"true": "true", "false": "false"}[raw.lower()]
    except (ValueError, KeyError):
        raise InputError(f"{raw!r} is not a value of {name}'s type ({item.type})", where) from None
    return raw
