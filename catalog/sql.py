"""Quoting of identifiers and literals for the SQL the core writes (DuckDB dialect)."""

from __future__ import annotations

from collections.abc import Sequence


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def key_in(columns: Sequence[str], values: Sequence[str], source: str) -> str:
    """SQL predicate: the ``columns`` (a key) appear among the ``values`` (expressions)
    selected from ``source``; a key of several columns compares as one row."""
    cols = ", ".join(quote_ident(c) for c in columns)
    vals = ", ".join(values)
    if len(columns) > 1:
        return f"({cols}) IN (SELECT ({vals}) FROM {source})"
    return f"{cols} IN (SELECT {vals} FROM {source})"
