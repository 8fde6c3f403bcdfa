"""A ``freshness`` asset check on each published dataset: its latest version against its
update cycle (:mod:`catalog.quality.freshness`). It runs after each publish (an ingest job
selects the published asset's checks) and hourly from the ``freshness`` schedule, so an
overdue dataset shows in the UI without a delivery."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from catalog.contracts import Contract
from catalog.quality.freshness import freshness
from catalog.quality.references import check_latest
from catalog.store.versions import latest_version
from pipelines.ingest.assets import published_key
from pipelines.resources import PlatformResource

FRESHNESS_CHECK = "freshness"


def build_freshness_check(contract: Contract) -> dg.AssetChecksDefinition:
    dataset = contract.dataset

    @dg.asset_check(
        asset=published_key(dataset),
        name=FRESHNESS_CHECK,
        description=f"The latest version is within its update cycle "
        f"({contract.catalog.update_cycle}) plus the grace",
    )
    def _freshness(platform: PlatformResource) -> dg.AssetCheckResult:
        settings = platform.settings
        with platform.lake.reader() as con:
            latest = latest_version(con, dataset)
        state = freshness(contract, latest, datetime.now(UTC), settings.freshness_grace_ratio)
        facts = {k: v for k, v in state.as_dict().items() if v is not None}
        if state.status == "stale":
            text = f"overdue since {state.stale_since:%Y-%m-%d %H:%M} UTC"
        elif state.status == "never_published":
            text = "no version published yet"
        else:
            text = f"fresh until {state.due_at:%Y-%m-%d %H:%M} UTC"
        return dg.AssetCheckResult(
            passed=state.status == "fresh",
            severity=dg.AssetCheckSeverity.WARN,
            description=text,
            metadata=facts,
        )

    return _freshness


def freshness_schedule(checks: list[dg.AssetChecksDefinition]) -> dg.ScheduleDefinition:
    job = dg.define_asset_job(
        "quality_checks",
        selection=dg.AssetSelection.checks(*checks),
        description="Check every published dataset against its update cycle and its "
        "references against their targets' latest versions",
    )
    return dg.ScheduleDefinition(
        name="quality_checks_hourly",
        job=job,
        cron_schedule="7 * * * *",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )


def build_reference_checks(contract: Contract) -> dg.AssetChecksDefinition | None:
    """One check per declared reference on the published asset, spanning the target's
    published asset; results stored per version (:mod:`catalog.quality.references`)."""
    if not contract.references:
        return None
    dataset = contract.dataset
    specs = [
        dg.AssetCheckSpec(
            f"reference_{ref.name}",
            asset=published_key(dataset),
            additional_deps=[published_key(ref.dataset)],
            description=ref.description,
        )
        for ref in contract.references
    ]

    @dg.multi_asset_check(specs=specs, name=f"references_{dataset}")
    def _references(platform: PlatformResource):
        by_name = {ref.name: ref for ref in contract.references}
        results = check_latest(platform.lake, contract)
        if not results:  # the dataset has no version yet: nothing to check
            for ref in contract.references:
                yield dg.AssetCheckResult(
                    asset_key=published_key(dataset),
                    check_name=f"reference_{ref.name}",
                    passed=True,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=f"{dataset} has no published version yet: nothing to check",
                )
            return
        for result in results:
            ref = by_name[result.reference]
            if result.target_version is None:
                text = f"{ref.dataset} has no published version yet: not checked"
            else:
                text = (
                    f"{result.unresolved} of {result.checked} rows not found in "
                    f"{ref.dataset} v{result.target_version}"
                )
            yield dg.AssetCheckResult(
                asset_key=published_key(dataset),
                check_name=f"reference_{ref.name}",
                passed=result.unresolved == 0 and result.target_version is not None,
                severity=dg.AssetCheckSeverity.ERROR
                if ref.blocking
                else dg.AssetCheckSeverity.WARN,
                description=text,
                metadata={
                    "version": result.version,
                    "target": ref.dataset,
                    "target_version": result.target_version or 0,
                    "checked": result.checked,
                    "resolved": result.resolved,
                    "unresolved": result.unresolved,
                    "examples (masked)": ", ".join(result.examples) or "none",
                },
            )

    return _references
