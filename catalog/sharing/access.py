"""Who sees what: a contract's sharing rules plus a department's grants give a ``Scope``.

Pure policy, no database: the caller hands in the principal and the department's active
grants. The scope lists the items a caller may see, those delivered in clear, and the row
filter; ``catalog.sharing.reads`` turns it into SQL, so masking and filtering happen inside the
query engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from catalog.contracts import Contract
from catalog.sharing.masking import NOTHING_KNOWN, Disclosures, View, masking_choice
from catalog.sharing.principal import Principal
from catalog.sql import quote_ident, sql_literal
from catalog.text import MAX_FILTER_VALUES, FilterValue, Name

DataPath = Literal["api", "bulk_download"]
READER_ROLES = ("consumer", "analyst", "provider")
_PATH_NAMES = {"api": "the API", "bulk_download": "bulk download"}


class AccessDenied(Exception):
    """The caller may not do this; the message says why (shown to the caller)."""


class FilterClause(BaseModel):
    """One condition of a grant's row filter; clauses are ANDed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item: Name
    op: Literal["eq", "in", "prefix"]
    values: list[FilterValue] = Field(min_length=1, max_length=MAX_FILTER_VALUES)


@dataclass(frozen=True)
class GrantView:
    """What the policy needs of a grant."""

    id: int
    items: tuple[str, ...]
    unmasked_items: frozenset[str]
    row_filter: tuple[FilterClause, ...]
    purpose: str | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None


def revocation_notice(dataset: str, grant: GrantView) -> str:
    """Why a read under a revoked grant is refused: which grant, when, and the reason given."""
    when = grant.revoked_at.isoformat(sep=" ", timespec="seconds") if grant.revoked_at else "?"
    reason = f" (reason: {grant.revoke_reason})" if grant.revoke_reason else ""
    return (
        f"grant {grant.id} of your department on {dataset} was revoked at {when}{reason}; "
        "access again needs a new approved access request"
    )


@dataclass(frozen=True)
class Scope:
    """What one read may see: ``items`` (in this order), those in clear, the row filter, the
    masked items that get a keyed pseudonym (their partial mask would leak), keyed by
    ``pseudonym_context`` (one key per grant, or per department and dataset), and those
    redacted (their whole value may show in clear elsewhere in the scope)."""

    items: tuple[str, ...]
    unmasked: frozenset[str]
    row_filter: tuple[FilterClause, ...]
    basis: Literal["owner", "unconditional", "grant"]
    grant_id: int | None = None
    purpose: str | None = None
    pseudonymised: frozenset[str] = frozenset()
    pseudonym_context: str = ""
    redacted: frozenset[str] = frozenset()


def _scope(
    contract: Contract,
    principal: Principal,
    items: tuple[str, ...],
    clear: frozenset[str],
    row_filter: tuple[FilterClause, ...],
    grant: GrantView | None,
    known: Disclosures,
) -> Scope:
    filtered = [clause.item for clause in row_filter]
    context = (
        f"grant:{grant.id}"
        if grant
        else f"department:{principal.department_code}:{contract.dataset}"
    )
    choice = masking_choice(contract, items, clear, filtered, known)
    return Scope(
        items,
        clear,
        row_filter,
        "grant" if grant else "unconditional",
        grant.id if grant else None,
        grant.purpose if grant else None,
        choice.pseudonymised,
        context,
        choice.redacted,
    )


def unconditional_views(contracts: Mapping[str, Contract]) -> list[View]:
    """What every department reads without a grant: the unconditional datasets' rows."""
    return [
        View(name, tuple(contract.item_names))
        for name, contract in contracts.items()
        if contract.catalog.sharing.type == "unconditional"
        and {"api", "bulk_download"} & set(contract.catalog.sharing.method)
    ]


def check_filter(contract: Contract, clauses: list[FilterClause]) -> None:
    for clause in clauses:
        if clause.item not in contract.item_names:
            raise ValueError(f"row filter: {contract.dataset} has no data item {clause.item!r}")
        if clause.op == "eq" and len(clause.values) != 1:
            raise ValueError(f"row filter on {clause.item}: 'eq' takes exactly one value")


def filter_sql(clauses: tuple[FilterClause, ...] | list[FilterClause]) -> str:
    """SQL condition of a row filter (TRUE when empty); values become quoted literals."""
    parts = []
    for clause in clauses:
        column = f"CAST({quote_ident(clause.item)} AS VARCHAR)"
        if clause.op == "eq":
            parts.append(f"{column} = {sql_literal(clause.values[0])}")
        elif clause.op == "in":
            parts.append(f"{column} IN ({', '.join(sql_literal(v) for v in clause.values)})")
        else:
            ors = " OR ".join(f"starts_with({column}, {sql_literal(v)})" for v in clause.values)
            parts.append(f"({ors})")
    return " AND ".join(parts) or "TRUE"


def read_scope(
    contract: Contract,
    principal: Principal,
    path: DataPath,
    grants: list[GrantView],
    *,
    grant_named: bool = False,
    known: Disclosures = NOTHING_KNOWN,
    revoked: Sequence[GrantView] = (),
) -> Scope:
    """The scope of a read by this caller over this path, or AccessDenied saying why.

    ``grants`` are the department's grants in force on the dataset, the one to use first.
    On a conditional dataset the first grant is the scope. On an unconditional dataset every
    department reads every row with sensitive items masked; a grant applies when the caller
    names it (``grant_named``), and then it is the whole scope — its items, its row filter,
    its items in clear — so a reviewer's narrowing holds on that path too. ``known``: what
    the department can learn elsewhere, for the choice of masks (:mod:`catalog.sharing.masking`).
    ``revoked``: the department's revoked grants on the dataset that had not yet expired,
    latest revocation first: a refusal for want of a grant then says it was revoked, and when."""
    sharing = contract.catalog.sharing
    if principal.role not in READER_ROLES:
        raise AccessDenied(f"role {principal.role!r} does not read dataset rows")
    if sharing.type == "not_shared":
        raise AccessDenied(f"{contract.dataset} is not shared (legal basis: {sharing.legal_basis})")
    if path not in sharing.method:
        raise AccessDenied(
            f"{contract.dataset} is not shared through {_PATH_NAMES[path]} "
            f"(methods: {', '.join(sharing.method)})"
        )
    if principal.role == "provider":
        if principal.department_code != contract.catalog.provider.code:
            raise AccessDenied("a provider reads only its own department's datasets")
        return Scope(tuple(contract.item_names), frozenset(contract.item_names), (), "owner")
    if sharing.type == "unconditional" and not grant_named:
        names = tuple(contract.item_names)
        return _scope(contract, principal, names, frozenset(), (), None, known)
    if grants:
        grant = grants[0]
        clear = grant.unmasked_items & contract.sensitive_items
        return _scope(contract, principal, grant.items, clear, grant.row_filter, grant, known)
    if revoked:
        raise AccessDenied(revocation_notice(contract.dataset, revoked[0]))
    raise AccessDenied(
        f"{contract.dataset} is shared on conditions ({sharing.conditions or ''}); "
        "it needs an approved access request"
    )
