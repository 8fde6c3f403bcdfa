"""Notifications from Dagster: a failed run, and a periodic sweep for stale datasets and
overdue access requests (:mod:`catalog.quality.notifications`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import dagster as dg

from catalog.contracts import load_contracts
from catalog.quality.notifications import Event, notify_all, sweep
from pipelines.resources import PlatformResource

SWEEP_SECONDS = 300
MESSAGE_MAX = 300
_NUMBERS = re.compile(r"\d{4,}")  # long digit runs could be identity or phone numbers


def failure_event(run: dg.DagsterRun, message: str, provider_code: str | None) -> Event:
    """What a failed run notifies: its job, dataset and whole run id; the failure message
    with long digit runs masked and cut short (a message could quote a value)."""
    dataset = run.tags.get("govshare/dataset")
    cleaned = _NUMBERS.sub("#", message or "")[:MESSAGE_MAX]
    return Event(
        kind="run_failed",
        severity="error",
        subject=f"run {run.run_id} of {run.job_name} failed: {cleaned}",
        dedupe_key=f"run:{run.run_id}",  # as the ingest's own notification of the run
        dataset=dataset,
        department_code=provider_code,
        detail={"run_id": run.run_id, "job": run.job_name, "message": cleaned},
    )


@dg.run_failure_sensor(
    name="notify_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A failed run becomes a notification (and a webhook POST when configured)",
)
def notify_run_failure(context: dg.RunFailureSensorContext, platform: PlatformResource) -> None:
    settings = platform.settings
    contracts = load_contracts(settings.schemas_dir)
    dataset = context.dagster_run.tags.get("govshare/dataset")
    contract = contracts.get(dataset) if dataset else None
    provider = contract.catalog.provider.code if contract else None
    message = context.failure_event.message or ""
    event = failure_event(context.dagster_run, message, provider)
    notify_all(platform.store, settings, [event], datetime.now(UTC))


@dg.sensor(
    name="quality_sweep",
    minimum_interval_seconds=SWEEP_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Notify stale datasets and overdue access requests (each once)",
)
def quality_sweep(platform: PlatformResource) -> None:
    settings = platform.settings
    contracts = load_contracts(settings.schemas_dir)
    with platform.lake.reader() as con:
        sweep(platform.store, con, contracts, settings, datetime.now(UTC))
