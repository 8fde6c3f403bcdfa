"""Normalisation of department values into canonical text, as DuckDB SQL expressions.

Departments send full-width digits and letters, lower-case ``x`` check characters, dates as
``2024/3/1``, ``20240301`` or ``2024年3月1日``, thousands separators and stray blanks. Each
data item gets one expression, chosen by its type and format, that turns the raw text into
canonical text; anything that still does not fit is left as it is, for validation to reject
with a reason. Working in SQL keeps a 10M-row delivery inside DuckDB, never row by row.
"""

from __future__ import annotations

from catalog.contracts import DataItem
from catalog.sql import sql_literal

# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space map to their half-width forms.
FULL_WIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
HALF_WIDTH = "".join(chr(c) for c in range(0x21, 0x7F)) + " "

DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y年%m月%d日", "%Y.%m.%d")
TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y%m%d%H%M%S",
    "%Y-%m-%d %H:%M",
    *DATE_FORMATS,
)
# Blank-like characters a department export may leave around a value.
_TRIM = " \t\r\n\u3000\u00a0\ufeff"


def _formats_sql(formats: tuple[str, ...]) -> str:
    return "[" + ", ".join(sql_literal(f) for f in formats) + "]"


def base_text_sql(col: str) -> str:
    """Half-width, trimmed text; empty strings become NULL.

    Most values need neither: one RE2 test on the raw value picks the few that hold a
    full-width character or blanks at an edge, and only those pay for ``translate`` (95
    characters: ~2 s per column per million rows) and a character-set ``trim``."""
    needs_work = f"regexp_matches({col}, '[\uff01-\uff5e]|^[{_TRIM}]|[{_TRIM}]$')"
    half = f"translate({col}, {sql_literal(FULL_WIDTH)}, {sql_literal(HALF_WIDTH)})"
    fixed = f"trim({half}, '{_TRIM}')"
    return f"nullif(CASE WHEN {needs_work} THEN {fixed} ELSE {col} END, '')"


def _excel_serial(text: str, fmt: str) -> str:
    """Excel date cells arrive as day counts from 1899-12-30 (``45352`` = 2024-03-01; a
    fraction is the time of day). Five digits only: ``20240301`` is a date format above."""
    micros = f"CAST(round(CAST({text} AS DOUBLE) * 86400000000) AS BIGINT)"
    return (
        f"CASE WHEN regexp_full_match({text}, '[1-9][0-9]{{4}}(\\.[0-9]+)?') "
        f"THEN strftime(TIMESTAMP '1899-12-30' + to_microseconds({micros}), '{fmt}') END"
    )


def normalise_sql(item: DataItem, col: str) -> str:
    """The canonical-text expression for one data item over raw text column ``col``."""
    text = base_text_sql(col)
    if item.format in ("resident_id", "uscc", "subject_id"):
        # Identifiers: upper-case check characters, no inner blanks.
        return f"upper(replace({text}, ' ', ''))"
    if item.format == "phone":
        return f"regexp_replace({text}, '^(\\+?86)|[ -]', '', 'g')"
    if item.type == "date":
        parsed = f"try_strptime({text}, {_formats_sql(DATE_FORMATS)})"
        return (
            f"coalesce(strftime({parsed}, '%Y-%m-%d'), {_excel_serial(text, '%Y-%m-%d')}, {text})"
        )
    if item.type == "timestamp":
        parsed = f"try_strptime({text}, {_formats_sql(TIMESTAMP_FORMATS)})"
        fmt = "%Y-%m-%d %H:%M:%S"
        return f"coalesce(strftime({parsed}, '{fmt}'), {_excel_serial(text, fmt)}, {text})"
    if item.type in ("integer", "decimal"):
        return f"replace({text}, ',', '')"
    if item.type == "geojson":
        return f"nullif(trim({col}), '')"
    return text
