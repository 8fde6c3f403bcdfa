"""Asset checks: the contract's Great Expectations suite, run on each staged delivery.

One check per quality rule. Rows breaking a rule are quarantined by the publish step and the
rest is published, so a rule with failing rows is a warning (``AssetCheckSeverity.WARN``)
with its counts, never an error: the publish step alone decides, by the contract's
threshold, whether a delivery is rejected, and says so as an error in the published asset's
``quarantine_rate`` check. The checks are blocking only in order: the publish step waits
for them, because it removes the run's staging file when it ends.
"""

import logging

import dagster as dg

from catalog.contracts import Contract
from catalog.ingest.rules import compile_rules
from catalog.ingest.staging import STAGING_TABLE, staging_path
from catalog.ingest.validation import VERDICTS_TABLE
from pipelines.ingest.assets import ingest_run_id, staging_key
from pipelines.resources import PlatformResource


class _SkippedChecks(logging.Filter):
    """When a run has nothing to stage (an identical re-delivery filed away, no files), the
    check step is skipped with it and Dagster warns, on the console, once per rule that the
    blocking check "emitted no result": a line per rule, nothing to act on. When the step
    runs it yields every rule's result, so this is the only case that warning meets."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "emitted no result" not in record.getMessage()


logging.getLogger("dagster._core.execution.plan.active").addFilter(_SkippedChecks())


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

        run_id = ingest_run_id(context)
        outcomes = run_suite(
            staging_path(platform.settings, contract.dataset, run_id),
            STAGING_TABLE,
            rules,
            suite_name=f"{contract.dataset}_suite",
            verdicts=VERDICTS_TABLE,
        )
        for rule, outcome in zip(rules, outcomes, strict=True):
            failing, rows = outcome.unexpected_count, outcome.element_count
            yield dg.AssetCheckResult(
                asset_key=asset,
                check_name=rule.name.replace(".", "__"),
                passed=outcome.success,
                severity=dg.AssetCheckSeverity.WARN,
                description=(
                    f"all {rows} rows pass"
                    if outcome.success
                    else f"{failing} of {rows} rows break this rule: quarantined, not published"
                ),
                metadata={
                    "rows_failing": failing,
                    "rows_checked": rows,
                    "unexpected_count": failing,
                    "element_count": rows,
                    "expectation": outcome.expectation_type,
                    "run_id": run_id,
                },
            )

    return _quality
