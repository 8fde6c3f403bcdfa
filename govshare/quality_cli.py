"""``govshare quarantine``, ``freshness``, ``scorecard`` and ``notifications``: the quality
core for the data officer at the machine (the local operator; reads of quarantined rows are
audited under the operator's login and show no values, as to the office)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import duckdb
import typer
from rich.console import Console
from rich.table import Table

from catalog.quality.quarantine import STATUSES
from catalog.settings import Settings
from catalog.sharing.principal import Principal, local_operator

if TYPE_CHECKING:
    from catalog.contracts import Contract
    from catalog.state.db import StateStore

console = Console()


@contextmanager
def _platform() -> Iterator[
    tuple[Settings, dict[str, Contract], StateStore, duckdb.DuckDBPyConnection]
]:
    from catalog.contracts import load_contracts
    from catalog.state.db import StateStore
    from catalog.store.lake import Lake

    settings = Settings()
    contracts = load_contracts(settings.schemas_dir)
    lake = Lake(settings)
    lake.initialise()
    store = StateStore(settings)
    try:
        with lake.reader() as con:
            yield settings, contracts, store, con
    finally:
        store.close()
        lake.close()


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def quarantine(
    dataset: Annotated[
        str | None, typer.Argument(help="A dataset; all datasets' counts if absent")
    ] = None,
    status: Annotated[str | None, typer.Option(help=f"One of {', '.join(STATUSES)}")] = None,
    rule: Annotated[str | None, typer.Option(help="Only rows failing this rule")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """Quarantined rows with file, row, rule and reason (no values, as the office sees them),
    or open, resolved and superseded counts per dataset."""
    from catalog.quality.quarantine import STATUSES, QuarantineQuery, list_rows
    from catalog.sharing.audit import AuditEvent, record

    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"must be one of {', '.join(STATUSES)}", param_hint="--status")
    with _platform() as (_settings, contracts, store, con):
        if dataset is None:
            _show_counts(con, contracts)
            return
        contract = contracts.get(dataset)
        if contract is None:
            raise typer.BadParameter(f"no dataset {dataset!r}; one of {', '.join(contracts)}")
        query = QuarantineQuery(status, rule, None, limit, offset)  # type: ignore[arg-type]
        total, rows = list_rows(con, contract, query, "office")
        record(
            store,
            AuditEvent(
                action="quarantine.read",
                result="ok",
                dataset=dataset,
                row_count=len(rows),
                detail={"status": status, "rule": rule, "offset": offset, "viewer": "office"},
                operator=local_operator(),
            ),
            datetime.now(UTC),
        )
        table = Table(title=f"{dataset}: {total} quarantined rows match (showing {len(rows)})")
        for column in ("file", "row", "status", "rules", "reason", "run"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                str(row["file"]),
                str(row["row"]),
                row["status"],
                ", ".join(row["rules"]),
                row["reason"],
                row["run_id"],
            )
        console.print(table)


def _show_counts(con: duckdb.DuckDBPyConnection, contracts: dict[str, Contract]) -> None:
    from catalog.quality.quarantine import counts

    table = Table(title="Quarantine by dataset")
    for column in ("dataset", "provider", "open", "resolved", "superseded", "open by rule"):
        table.add_column(column, overflow="fold")
    for row in counts(con, contracts.values()):
        by_rule = ", ".join(f"{rule} {n}" for rule, n in row.open_by_rule.items())
        table.add_row(
            row.dataset,
            row.provider_name,
            str(row.open),
            str(row.resolved),
            str(row.superseded),
            by_rule,
        )
    console.print(table)


def freshness() -> None:
    """Every dataset against its update cycle: stale first, since when."""
    from catalog.quality.freshness import all_freshness
    from catalog.store.versions import latest_versions

    with _platform() as (settings, contracts, _store, con):
        states = all_freshness(
            contracts.values(),
            latest_versions(con),
            datetime.now(UTC),
            settings.freshness_grace_ratio,
        )
    table = Table(title="Freshness (times in UTC)")
    for column in ("dataset", "cycle", "status", "last version", "due by", "stale since"):
        table.add_column(column)
    for s in states:
        colour = {"stale": "red", "never_published": "yellow"}.get(s.status, "green")
        table.add_row(
            s.dataset,
            s.update_cycle,
            f"[{colour}]{s.status}[/{colour}]",
            f"{s.last_published_at:%Y-%m-%d %H:%M}" if s.last_published_at else "—",
            f"{s.due_at:%Y-%m-%d %H:%M}" if s.due_at else "—",
            f"{s.stale_since:%Y-%m-%d %H:%M}" if s.stale_since else "—",
        )
    console.print(table)


def scorecard(
    month: Annotated[str | None, typer.Option(help="YYYY-MM; the current month if absent")] = None,
) -> None:
    """Compute, keep and show the departments' scorecards of a month, ranked."""
    from catalog.quality.scorecard import compute, current_month, month_bounds, store_cards

    with _platform() as (settings, contracts, store, con):
        now = datetime.now(UTC)
        chosen = month or current_month(now, settings.timezone)
        try:
            month_bounds(chosen, settings.timezone)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--month") from None
        with store.reading() as session:
            cards = compute(
                con,
                session,
                contracts.values(),
                chosen,
                zone=settings.timezone,
                weights=settings.score_weights,
                grace_ratio=settings.freshness_grace_ratio,
                now=now,
            )
        store_cards(store, cards, now, operator=local_operator())
    table = Table(
        title=f"Department scorecards {chosen}",
        caption="score = weighted mean x 100 of the measures shown; weights per card in "
        "`GET /quality/scorecards` (default "
        + ", ".join(f"{k} {v:g}" for k, v in settings.score_weights.items())
        + ")",
    )
    for column in (
        "rank",
        "department",
        "score",
        "datasets",
        "rows",
        "versions",
        "rejected",
        "complete",
        "valid",
        "unique",
        "timely",
        "used",
        "calls",
    ):
        table.add_column(column, overflow="fold")
    for card in cards:
        m = card["measures"]
        q = m["quantity"]
        table.add_row(
            str(card["rank"] or "—"),
            card["department_name"],
            "—" if card["score"] is None else f"{card['score']:.1f}",
            str(q["datasets"]),
            f"{q['rows']:,}",
            str(q["versions"]),
            str(q["deliveries_rejected"]),
            _percent(m["completeness"]),
            _percent(m["validity"]),
            _percent(m["uniqueness"]),
            _percent(m["timeliness"]),
            _percent(m["use"]),
            str(m["use_detail"]["calls"]),
        )
    console.print(table)


def notifications(
    run_sweep: Annotated[
        bool, typer.Option("--sweep", help="First notify stale datasets and overdue requests")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
) -> None:
    """The newest notifications (all of them, as the office sees them)."""
    from catalog.quality.notifications import as_dict, deliver_pending, sweep, visible

    with _platform() as (settings, contracts, store, con):
        if run_sweep:
            created = sweep(store, con, contracts, settings, datetime.now(UTC))
            console.print(f"{len(created)} new notification(s)")
        if settings.webhook_url:
            deliver_pending(store, settings)
        office = Principal(0, local_operator(), "office", 0, "", "")
        with store.reading() as session:
            rows = [as_dict(n) for n in visible(session, office, limit, 0)]
    table = Table(title="Notifications (newest first)")
    for column in ("id", "when (UTC)", "kind", "severity", "dataset", "subject", "webhook"):
        table.add_column(column, overflow="fold")
    for n in rows:
        table.add_row(
            str(n["id"]),
            n["created_at"][:16].replace("T", " "),
            n["kind"],
            n["severity"],
            n["dataset"] or "—",
            n["subject"],
            n["webhook_status"],
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    for command in (quarantine, freshness, scorecard, notifications):
        app.command()(command)
