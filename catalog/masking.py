"""Masking of sensitive data items, applied inside the query engine (never after the fact).

Formats follow common practice of Chinese government platforms: ``3301**********123X``,
``138****5678``, ``张**``, the first six characters of an address.
"""

from __future__ import annotations

from catalog.contracts import DataItem
from catalog.rules import quote_ident

_MASKS = {
    "identity": "CASE WHEN length({c}) > 8 THEN left({c}, 4) || repeat('*', length({c}) - 8) "
    "|| right({c}, 4) ELSE repeat('*', length({c})) END",
    "phone": "CASE WHEN length({c}) >= 7 THEN left({c}, 3) || repeat('*', length({c}) - 7) "
    "|| right({c}, 4) ELSE repeat('*', length({c})) END",
    "name": "left({c}, 1) || repeat('*', greatest(length({c}) - 1, 1))",
    "address": "left({c}, 6) || '****'",
    "redact": "'****'",
}


def mask_sql(item: DataItem, column: str | None = None) -> str:
    """SQL expression of the item's masked value (NULL stays NULL)."""
    col = column or quote_ident(item.name)
    if item.mask is None:
        return col
    text = f"CAST({col} AS VARCHAR)"
    return f"CASE WHEN {col} IS NULL THEN NULL ELSE {_MASKS[item.mask].format(c=text)} END"


def select_item_sql(item: DataItem, *, unmasked: bool = False) -> str:
    """The select-list entry of an item: masked when sensitive unless explicitly granted."""
    if item.sensitivity == "sensitive" and not unmasked:
        return f"{mask_sql(item)} AS {quote_ident(item.name)}"
    return quote_ident(item.name)
