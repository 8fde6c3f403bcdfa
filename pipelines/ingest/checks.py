"""Asset checks: the contract's Great Expectations suite, run on each staged delivery.

One check per quality rule. A failing check is a warning, not a stop: failing rows are
quarantined by the publish step, which alone decides (by the contract's threshold)
whether a version is published. The checks are blocking only in order: the publish step
waits for them, because it removes the run's staging file when it ends.
"""

import dagster as dg

from catalog.contracts import Contract
from catalog.ingest.rules import compile_rules
from catalog.ingest.staging import STAGING_TABLE, staging_path
from pipelines.ingest.assets import run_key, staging_key
from pipelines.resources import PlatformResource


def build_quality_checks(contract: Contract) -> dg.AssetChecksDefinition:
    rules = compile_rules(contract)
    asset = staging_key(contract.dataset)
    specs = [
        dg.AssetCheckSpec(
            rule.name.replace(".", "__"), asset=asset, description=rule.description, blocking=True
        )
        for rule in rules
    ]

    @dg.multi_asset_check(specs=specs, name=f"quality_{contract.dataset}")
    def _quality(context: dg.AssetCheckExecutionContext, platform: PlatformResource):
        from catalog.ingest.expectations import run_suite  # Great Expectations imports slowly

        outcomes = run_suite(
            staging_path(platform.settings, contract.dataset, run_key(context.run.run_id)),
            STAGING_TABLE,
            rules,
            suite_name=f"{contract.dataset}_suite",
        )
        for rule, outcome in zip(rules, outcomes, strict=True):
            yield dg.AssetCheckResult(
                asset_key=asset,
                check_name=rule.name.replace(".", "__"),
                passed=outcome.success,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "unexpected_count": outcome.unexpected_count,
                    "element_count": outcome.element_count,
                    "expectation": outcome.expectation_type,
                },
            )

    return _quality
