"""Routes of the quality core: quarantine, freshness, scorecards and benefit, notifications."""

from __future__ import annotations

from api.state import AppState
from catalog.contracts import Contract
from catalog.sharing.access import AccessDenied
from catalog.sharing.audit import AuditEvent, record_refusal
from catalog.sharing.principal import Principal


def refuse_other_providers(
    state: AppState, principal: Principal, contract: Contract, action: str, reason: str
) -> None:
    """A provider sees the quality of its own datasets only: another's is a 403, audited
    (the office sees every dataset)."""
    if principal.role != "provider" or contract.catalog.provider.code == principal.department_code:
        return
    event = AuditEvent(
        action=action,
        result="denied",
        actor=principal,
        dataset=contract.dataset,
        detail={"reason": reason},
    )
    record_refusal(state.store, event, state.now())
    raise AccessDenied(reason)
