"""Masking of sensitive data items, applied inside the query engine (never after the fact).

Partial masks follow common practice of Chinese government platforms: ``3301**********123X``,
``138****5678``, ``张**`` (always two stars: the length of a name is not shown), the leading
characters of an address. A partial mask shows part of a value and hides the rest; where the
same scope tells the hidden part otherwise (an identity number's birth digits are the
``birth_date`` item, its region digits the household region code, or a row filter constrains
the value), the partial mask would leak, and a keyed pseudonym replaces it
(:mod:`catalog.pseudonyms`). :func:`pseudonymised_items` makes that choice per scope.
"""

from __future__ import annotations

from collections.abc import Iterable

from catalog.contracts import Contract, DataItem
from catalog.pseudonyms import pseudonym_sql
from catalog.rules import quote_ident

_MASKS = {
    "identity": "CASE WHEN length({c}) > 8 THEN left({c}, 4) || repeat('*', length({c}) - 8) "
    "|| right({c}, 4) ELSE repeat('*', length({c})) END",
    "phone": "CASE WHEN length({c}) >= 7 THEN left({c}, 3) || repeat('*', length({c}) - 7) "
    "|| right({c}, 4) ELSE repeat('*', length({c})) END",
    "name": "left({c}, 1) || '**'",
    # At most half of a short address, at most its first six characters (province and city).
    "address": "left({c}, least(6, length({c}) // 2)) || '****'",
    "redact": "'****'",
}

# Which parts of an identifier each partial mask hides. An identity mask shows the first four
# and the last four characters: of a resident identity number (GB 11643) the province and
# city, the sequence, sex digit and check character; it hides the county digits of the
# region and the birth date. Of a unified social credit code (GB 32100) it hides most of the
# region and the start of the organisation code. Every partial mask hides part of the
# whole value, so an item that may repeat the whole value defeats any of them.
HIDDEN_PARTS: dict[str, frozenset[str]] = {
    "identity": frozenset({"region", "birth_date", "org_code", "whole"}),
    "phone": frozenset({"whole"}),
    "name": frozenset({"whole"}),
    "address": frozenset({"whole"}),
    "redact": frozenset(),
}


def mask_sql(item: DataItem, column: str | None = None) -> str:
    """SQL expression of the item's partially masked value (NULL stays NULL)."""
    col = column or quote_ident(item.name)
    if item.mask is None:
        return col
    text = f"CAST({col} AS VARCHAR)"
    return f"CASE WHEN {col} IS NULL THEN NULL ELSE {_MASKS[item.mask].format(c=text)} END"


def pseudonymised_items(
    contract: Contract,
    items: Iterable[str],
    clear: Iterable[str],
    filtered: Iterable[str],
) -> frozenset[str]:
    """The masked items of a scope whose partial mask would leak, so they get a pseudonym.

    ``items`` are the scope's items, ``clear`` those delivered in clear, ``filtered`` the
    items its row filter constrains (a filter tells something about every row it lets
    through, whether or not the item is shown)."""
    items, clear, filtered = set(items), set(clear), set(filtered)
    shown_clear = {n for n in items if n in clear or n not in contract.sensitive_items}
    disclosed: dict[str, set[str]] = {}
    for name in shown_clear | filtered:
        for part in contract.item(name).disclosed_parts:
            disclosed.setdefault(part.field, set()).add(part.part)
    masked = {n for n in items if n in contract.sensitive_items and n not in clear}
    return frozenset(
        name
        for name in masked
        if name in filtered
        or disclosed.get(name, set()) & HIDDEN_PARTS[contract.item(name).mask or "redact"]
    )


def item_value_sql(
    item: DataItem,
    *,
    unmasked: bool = False,
    pseudonym_key: bytes | None = None,
) -> str:
    """SQL of the value an item shows: in clear when not sensitive or explicitly granted,
    else a pseudonym when a key is given, else its partial mask."""
    name = quote_ident(item.name)
    if item.sensitivity != "sensitive" or unmasked:
        return name
    if pseudonym_key is not None:
        return pseudonym_sql(pseudonym_key, name)
    return mask_sql(item)
