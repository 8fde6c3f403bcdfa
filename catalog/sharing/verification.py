"""Verification services: yes/no answers over a dataset version, never the records.

The questions are declared in the contracts (``verification:``); each compiles to one
``EXISTS`` query with the caller's values as parameters.
"""

from __future__ import annotations

import unicodedata
from datetime import date

import duckdb

from catalog.contracts import Contract, VerificationService
from catalog.sql import quote_ident, sql_literal
from catalog.store.versions import Version, dataset_relation
from catalog.text import InputError

_UPPER_FORMATS = ("resident_id", "uscc", "subject_id")


class VerificationError(InputError):
    """The call does not fit the service (missing or unknown inputs)."""


def find_service(contracts: dict[str, Contract], name: str) -> tuple[Contract, VerificationService]:
    for contract in contracts.values():
        for service in contract.verification:
            if service.service == name:
                return contract, service
    raise LookupError(f"no verification service {name!r}")


def _canonical(contract: Contract, item: str, value: str) -> str:
    # Callers type what they hold: full-width digits, a lower-case x, stray blanks.
    text = unicodedata.normalize("NFKC", value).strip()
    return text.upper() if contract.item(item).format in _UPPER_FORMATS else text


def _inputs(contract: Contract, service: VerificationService, given: dict[str, str]) -> list[str]:
    missing = [n for n in service.inputs if not str(given.get(n, "")).strip()]
    unknown = sorted(set(given) - set(service.inputs))
    if missing or unknown:
        raise VerificationError(
            f"{service.service} takes {', '.join(service.inputs)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else "")
        )
    return [_canonical(contract, n, str(given[n])) for n in service.inputs]


def question_sql(contract: Contract, service: VerificationService, version: Version) -> str:
    conditions = [f"CAST({quote_ident(n)} AS VARCHAR) = ?" for n in service.inputs]
    for item, values in service.where.items():
        allowed = ", ".join(sql_literal(v) for v in values)
        conditions.append(f"CAST({quote_ident(item)} AS VARCHAR) IN ({allowed})")
    if service.valid_on:
        start, end = (quote_ident(n) for n in service.valid_on)
        conditions.append(
            f"coalesce({start} <= ?::DATE, TRUE) AND coalesce({end} >= ?::DATE, TRUE)"
        )
    where = " AND ".join(conditions)
    return f"SELECT EXISTS (SELECT 1 FROM {dataset_relation(contract, version)} WHERE {where})"


def answer(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    service: VerificationService,
    version: Version,
    given: dict[str, str],
    today: date,
) -> bool:
    params: list[object] = _inputs(contract, service, given)
    if service.valid_on:
        params += [today, today]
    return bool(con.execute(question_sql(contract, service, version), params).fetchone()[0])
