"""Validated string types for what callers send: bounded, and free of the characters that
break storage, hashing or SQL later on.

Refused everywhere: unpaired surrogates (a JSON ``"\\ud800"`` escape decodes to one; it can
never be encoded as UTF-8, so the audit hash or the database would fail on it) and C0
control characters (NUL ends strings in C libraries and breaks SQL literals). Free text
(``FreeText``: purposes, reasons) may carry tab, newline and carriage return; a single
line (``Line``, ``FilterValue``) carries no control character at all. ``Name`` is an
identifier as the contracts spell them (data items, datasets, services).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

# Characters refused in free text: C0 controls but tab, newline, CR; DEL; surrogates.
_BAD_FREE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# Refused in a single line: every C0 control, DEL, surrogates.
_BAD_LINE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
# The same rules as JSON Schema patterns (documentation, and what test generators follow).
FREE_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$"
LINE_PATTERN = r"^[^\u0000-\u001f\u007f]*$"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"

FREE_TEXT_MAX = 2000
LINE_MAX = 200
FILTER_VALUE_MAX = 200


def _describe(char: str) -> str:
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return f"an unpaired surrogate (U+{code:04X})"
    return f"a control character (U+{code:04X})"


def _checker(bad: re.Pattern[str]):
    def check(value: str) -> str:
        found = bad.search(value)
        if found:
            # The message names the character, never echoes the value.
            raise ValueError(f"must not contain {_describe(found.group())}")
        return value

    return check


check_free_text = _checker(_BAD_FREE)
check_line = _checker(_BAD_LINE)


def text(max_length: int, *, min_length: int = 0, multiline: bool = False):
    """A validated string type of at most ``max_length`` characters (``min_length`` at
    least); ``multiline`` admits tab, newline and carriage return."""
    return Annotated[
        str,
        Field(
            min_length=min_length or None,
            max_length=max_length,
            json_schema_extra={"pattern": FREE_PATTERN if multiline else LINE_PATTERN},
        ),
        AfterValidator(check_free_text if multiline else check_line),
    ]


FreeText = text(FREE_TEXT_MAX, multiline=True)
"""Free text (a purpose, a reason): up to 2,000 characters, lines allowed."""
Line = text(LINE_MAX)
"""One line (a label, a display name, a query word): up to 200 characters."""
FilterValue = text(FILTER_VALUE_MAX)
"""A value of a row filter: compiled into SQL, so no control character, up to 200."""
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
"""An identifier as the contracts spell them: data items, datasets, services."""

# Lengths of lists in request bodies.
MAX_ITEMS = 200
"""Data items in a request or decision (contracts declare a few dozen)."""
MAX_CLAUSES = 20
"""Clauses of one row filter."""
MAX_FILTER_VALUES = 1000
"""Values of one row-filter clause."""


class InputError(ValueError):
    """Input the core cannot accept, with the location of the field it is about (as in a
    validation error: ``("body", "items")``, ``("path", "username")``); the API answers 422
    in the same shape as its schema errors."""

    def __init__(self, message: str, loc: tuple[str | int, ...] = ("body",)) -> None:
        super().__init__(message)
        self.loc = tuple(loc)
