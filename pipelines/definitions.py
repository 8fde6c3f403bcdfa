"""Dagster definitions, generated from the contracts in ``schemas/``."""

from __future__ import annotations

import dagster as dg

from catalog.contracts import Contract, load_contracts
from catalog.settings import Settings
from pipelines.ingest.assets import (
    build_publish_asset,
    build_staging_asset,
    published_key,
    quarantine_key,
    staging_key,
)
from pipelines.ingest.checks import build_quality_checks
from pipelines.ingest.sensors import build_landing_sensor
from pipelines.quality.checks import (
    build_freshness_check,
    build_reference_checks,
    freshness_schedule,
)
from pipelines.quality.sensors import notify_run_failure, quality_sweep
from pipelines.resources import PlatformResource


def ingest_job(contract: Contract):  # an unresolved asset job (its class is not public)
    dataset = contract.dataset
    keys = [staging_key(dataset), published_key(dataset), quarantine_key(dataset)]
    return dg.define_asset_job(
        f"ingest_{dataset}",
        selection=dg.AssetSelection.assets(*keys),
        description=f"Ingest a delivery of {contract.title}",
        tags={"govshare/dataset": dataset},
    )


def build_definitions(contracts: dict[str, Contract], home: str | None = None) -> dg.Definitions:
    assets: list[dg.AssetsDefinition] = []
    checks: list[dg.AssetChecksDefinition] = []
    jobs = []
    sensors: list[dg.SensorDefinition] = [notify_run_failure, quality_sweep]
    freshness_checks: list[dg.AssetChecksDefinition] = []
    for contract in contracts.values():
        assets += [build_staging_asset(contract), build_publish_asset(contract)]
        checks.append(build_quality_checks(contract))
        freshness_checks.append(build_freshness_check(contract))
        references = build_reference_checks(contract)
        if references is not None:
            checks.append(references)
        job = ingest_job(contract)
        jobs.append(job)
        sensors.append(build_landing_sensor(contract, job.name))
    return dg.Definitions(
        assets=assets,
        asset_checks=checks + freshness_checks,
        jobs=jobs,
        schedules=[freshness_schedule(freshness_checks)],
        sensors=sensors,
        resources={"platform": PlatformResource(home=home)},
        # Steps are short; spawning a process per step costs 2-3 s each.
        executor=dg.in_process_executor,
    )


def load_definitions() -> dg.Definitions:
    """Entry point for ``dagster dev -m pipelines.definitions``; settings read when loaded."""
    settings = Settings()
    return build_definitions(load_contracts(settings.schemas_dir), str(settings.home))


defs = load_definitions()
