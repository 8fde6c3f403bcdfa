"""Masking of sensitive data items, applied inside the query engine (never after the fact).

Partial masks follow common practice of Chinese government platforms: ``138****5678``,
``张**`` (always two stars: the length of a name is not shown), the leading characters of an
address. A partial mask shows part of a value and hides the rest, so it is used only where
nothing the department can learn tells the hidden rest:

- an **identity number** (resident identity number, GB 11643; unified social credit code,
  GB 32100) that is not granted in clear is always a keyed pseudonym
  (:mod:`catalog.sharing.pseudonyms`).
  A partial mask ``3301**********123X`` hides the county digits and the birth date, which
  other items and other grants carry (birth dates, household regions), and masks cannot be
  chosen retroactively: a department that reads partial masks today and is granted birth
  dates next month rebuilds them from its saved responses (the second security review
  rebuilt 1,583 of 1,880 that way). So no partial identity mask is ever handed out;
- an item the scope's row filter constrains gets a pseudonym (the filter tells something
  about every row it lets through);
- an item whose whole value some rows may show in clear (a sole trader's business name is
  the owner's name), in this scope or in any grant the department ever held on the dataset
  or the dataset's unconditional view, is redacted: a pseudonym would be a lookup table from
  those rows to the others (:class:`Disclosures`).

:func:`masking_choice` decides per scope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from catalog.contracts import Contract, DataItem
from catalog.sharing.pseudonyms import pseudonym_sql
from catalog.sql import quote_ident

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


@dataclass(frozen=True)
class Disclosures:
    """What a department can learn in clear outside the scope at hand: the (item, part) pairs
    of the dataset being read that its other views disclose (:func:`department_disclosures`)."""

    fields: frozenset[tuple[str, str]] = frozenset()


NOTHING_KNOWN = Disclosures()


@dataclass(frozen=True)
class View:
    """Something a department reads: items of a dataset, those of them granted in clear, and
    the items its row filter constrains."""

    dataset: str
    items: tuple[str, ...]
    unmasked: frozenset[str] = frozenset()
    filtered: frozenset[str] = frozenset()


def _disclosed(contract: Contract, names: Iterable[str]) -> set[tuple[str, str]]:
    """(item, part) pairs the given items tell about other items of the contract."""
    return {(p.field, p.part) for name in names for p in contract.item(name).disclosed_parts}


def _shown_clear(contract: Contract, items: Iterable[str], clear: Iterable[str]) -> set[str]:
    clear = set(clear)
    return {n for n in items if n in clear or n not in contract.sensitive_items}


def department_disclosures(
    contracts: Mapping[str, Contract], dataset: str, views: Iterable[View]
) -> Disclosures:
    """What a department's views of ``dataset`` (grants ever held, the unconditional view)
    disclose: by the items they show in clear and those their filters constrain."""
    contract = contracts[dataset]
    fields: set[tuple[str, str]] = set()
    for view in views:
        if view.dataset == dataset:
            clear = _shown_clear(contract, view.items, view.unmasked)
            fields |= _disclosed(contract, clear | view.filtered)
            # An item a view shows in clear tells its whole value: a pseudonym of it
            # elsewhere is joined to it on any item both show in clear (the key), and then
            # names it on the other rows it repeats on, which that view does not reach.
            # (A key's value is on one row only: its pseudonym names nothing more.)
            fields |= {(name, "whole") for name in clear if name not in contract.key}
    return Disclosures(frozenset(fields))


@dataclass(frozen=True)
class MaskingChoice:
    pseudonymised: frozenset[str]
    redacted: frozenset[str]


def masking_choice(
    contract: Contract,
    items: Iterable[str],
    clear: Iterable[str],
    filtered: Iterable[str],
    known: Disclosures = NOTHING_KNOWN,
) -> MaskingChoice:
    """How each masked item of a scope is shown where a partial mask would not do.

    ``items`` are the scope's items, ``clear`` those delivered in clear, ``filtered`` the
    items its row filter constrains, ``known`` what the department learns elsewhere about
    the dataset. An item whose whole value may be told is redacted; an identity number, an
    item the filter constrains, or one whose hidden part is told gets a pseudonym; the
    others keep their partial mask (see the module doc)."""
    items, clear, filtered = set(items), set(clear), set(filtered)
    told = _disclosed(contract, _shown_clear(contract, items, clear) | filtered) | known.fields
    pseudonymised, redacted = set(), set()
    for name in items:
        item = contract.item(name)
        if name not in contract.sensitive_items or name in clear:
            continue
        parts = {part for field, part in told if field == name}
        if "whole" in parts:
            redacted.add(name)
        elif (
            item.mask == "identity"
            or name in filtered
            or parts & HIDDEN_PARTS[item.mask or "redact"]
        ):
            pseudonymised.add(name)
    if redacted:
        # A pseudonym is the same on every row of its subject: beside a value some rows
        # show whole (a sole trader's name is its owner's), it names the subject on the
        # other rows too. A scope that redacts hands out no pseudonym that repeats across
        # rows (a key's is on one row only).
        repeating = {name for name in pseudonymised if name not in contract.key}
        redacted |= repeating
        pseudonymised -= repeating
    return MaskingChoice(frozenset(pseudonymised), frozenset(redacted))


def pseudonymised_items(
    contract: Contract,
    items: Iterable[str],
    clear: Iterable[str],
    filtered: Iterable[str],
) -> frozenset[str]:
    """The masked items of a scope that get a pseudonym, by the scope alone."""
    return masking_choice(contract, items, clear, filtered).pseudonymised


def item_value_sql(
    item: DataItem,
    *,
    unmasked: bool = False,
    pseudonym_key: bytes | None = None,
    redacted: bool = False,
) -> str:
    """SQL of the value an item shows: in clear when not sensitive or explicitly granted,
    else redacted, else a pseudonym when a key is given, else its partial mask."""
    name = quote_ident(item.name)
    if item.sensitivity != "sensitive" or unmasked:
        return name
    if redacted:
        return f"CASE WHEN {name} IS NULL THEN NULL ELSE {_MASKS['redact']} END"
    if pseudonym_key is not None:
        return pseudonym_sql(pseudonym_key, name)
    return mask_sql(item)
