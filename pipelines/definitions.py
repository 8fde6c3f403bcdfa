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
from pipelines.releases import catalog_release
from pipelines.resources import PlatformResource


def ingest_job(
    contract: Contract, dependents: list[dg.AssetChecksDefinition]
):  # an unresolved asset job (its class is not public)
    """Stage, check, publish; then the reference checks of the datasets that refer to this
    one (``dependents``), whose results a new version of their target changes."""
    dataset = contract.dataset
    keys = [staging_key(dataset), published_key(dataset), quarantine_key(dataset)]
    selection = dg.AssetSelection.assets(*keys)
    if dependents:
        selection = selection | dg.AssetSelection.checks(*dependents)
    return dg.define_asset_job(
        f"ingest_{dataset}",
        selection=selection,
        description=f"Ingest a delivery of {contract.title}",
        tags={"govshare/dataset": dataset},
    )


def build_definitions(contracts: dict[str, Contract], home: str | None = None) -> dg.Definitions:
    assets: list[dg.AssetsDefinition] = []
    checks: list[dg.AssetChecksDefinition] = []
    jobs = []
    sensors: list[dg.SensorDefinition] = [notify_run_failure, quality_sweep, catalog_release]
    freshness_checks: list[dg.AssetChecksDefinition] = []
    reference_checks: dict[str, dg.AssetChecksDefinition] = {}
    for contract in contracts.values():
        references = build_reference_checks(contract)
        if references is not None:
            reference_checks[contract.dataset] = references
    for contract in contracts.values():
        assets += [build_staging_asset(contract), build_publish_asset(contract)]
        checks.append(build_quality_checks(contract))
        freshness_checks.append(build_freshness_check(contract))
        dependents = [
            reference_checks[name]
            for name, other in contracts.items()
            if name in reference_checks
            and name != contract.dataset
            and any(ref.dataset == contract.dataset for ref in other.references)
        ]
        job = ingest_job(contract, dependents)
        jobs.append(job)
        sensors.append(build_landing_sensor(contract, job.name))
    periodic = freshness_checks + list(reference_checks.values())
    return dg.Definitions(
        assets=assets,
        asset_checks=checks + periodic,
        jobs=jobs,
        schedules=[freshness_schedule(periodic)],
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
