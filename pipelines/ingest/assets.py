"""Asset factory: each contract becomes staging → (checks) → published + quarantine assets.

Assets stay thin: each calls one step of :mod:`catalog.ingest.delivery` and reports metadata. The
lake write runs in the ``lake`` concurrency pool (limit 1, see dagster.yaml). Each run
stages into files of its own (named by the whole Dagster run id), so runs of one dataset
never collide.

What Dagster shows is what a data officer needs to know:

- a delivery refused (a file that cannot be read or mapped) or rejected (more rows
  quarantined than the contract allows) fails the run with a :class:`dagster.Failure`: the
  reason, the files and where they went, and the version that stays live; no Python
  traceback of ours;
- the ``quarantine_rate`` check of the published asset is a warning when some rows were
  quarantined and the rest published, an error only when the delivery was rejected;
- staging, published and quarantine assets carry their layer in a tag
  (``govshare/layer``), their storage as a kind and what they hold in their description.
"""

import json
from pathlib import Path

import dagster as dg

from catalog.contracts import Contract
from catalog.ingest.delivery import (
    IngestOutcome,
    apply_publish,
    finish_run,
    skip_if_unchanged,
    summarise_staged,
    validate_staged,
)
from catalog.ingest.publish import PublishResult, publish
from catalog.ingest.readers import IngestError
from catalog.ingest.staging import SourceFile, describe_file, manifest_path, stage
from catalog.ingest.validation import QualitySummary
from catalog.store.lake import LakeBusy
from catalog.store.versions import latest_version
from pipelines.resources import PlatformResource

LAKE_POOL = "lake"
OPERATOR = "dagster"
LAYER_TAG = "govshare/layer"
QUARANTINE_RATE_CHECK = "quarantine_rate"


class DeliveryConfig(dg.Config):
    """The files of one delivery; empty means everything now in the landing folder."""

    files: list[str] = []  # noqa: RUF012 (pydantic copies field defaults)


def staging_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["staging", dataset])


def published_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["published", dataset])


def quarantine_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["quarantine", dataset])


def landing_files(platform: PlatformResource, dataset: str) -> list[Path]:
    folder = platform.settings.folder("landing", dataset)
    return sorted(p for p in folder.glob("*") if p.is_file() and not p.name.startswith("."))


def ingest_run_id(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> str:
    """The govshare run id of a Dagster run: its whole run id (names its staging files, its
    archive folder and its run record, so each can be found from the other)."""
    return context.run.run_id


def _finish(platform: PlatformResource, outcome: IngestOutcome, paths: list[Path]) -> None:
    finish_run(
        platform.lake, outcome, paths, handover="move", store=platform.store, operator=OPERATOR
    )


def _live_version(platform: PlatformResource, dataset: str) -> int | None:
    with platform.lake.reader() as con:
        version = latest_version(con, dataset)
    return version.version if version else None


def _still_live(live: int | None) -> str:
    return f"version {live} stays live" if live else "no version is published yet"


def _failure(
    platform: PlatformResource, outcome: IngestOutcome, paths: list[Path], what: str
) -> dg.Failure:
    """File the delivery away and describe its failure as a data officer reads it."""
    _finish(platform, outcome, paths)
    live = _live_version(platform, outcome.dataset)
    folder = f"rejected/{outcome.dataset}/{outcome.run_id}/"
    return dg.Failure(
        description=(
            f"{outcome.dataset}: {what}: {outcome.message}. Nothing new published; "
            f"{_still_live(live)}. The files are in {folder} with reason.txt "
            f"(run {outcome.run_id})."
        ),
        metadata={
            "dataset": outcome.dataset,
            "status": outcome.status,
            "reason": outcome.message,
            "run_id": outcome.run_id,
            "live_version": live if live is not None else "none",
            "files": [f.name for f in outcome.files],
            "filed_to": folder,
            "rows_read": outcome.rows_read,
            "rows_quarantined": outcome.rows_quarantined,
        },
        allow_retries=False,
    )


def build_staging_asset(contract: Contract) -> dg.AssetsDefinition:
    dataset = contract.dataset

    @dg.multi_asset(
        name=f"stage_{dataset}",
        outs={
            "staging": dg.AssetOut(
                key=staging_key(dataset),
                is_required=False,
                description=(
                    f"Staging — {contract.title}: one delivery from landing/{dataset}/, "
                    "headers mapped to data items and values normalised, in a DuckDB file of "
                    "the run's own (removed when the run ends). Never served."
                ),
                kinds={"duckdb"},
                tags={LAYER_TAG: "staging"},
            )
        },
        group_name=dataset,
    )
    def _stage(
        context: dg.AssetExecutionContext, config: DeliveryConfig, platform: PlatformResource
    ):
        requested = [Path(f) for f in config.files] or landing_files(platform, dataset)
        paths = [p for p in requested if p.exists()]
        if not paths:
            names = ", ".join(p.name for p in requested) or "none"
            context.log.warning(
                f"nothing to ingest: no files in landing/{dataset}/ (asked for: {names})"
            )
            return
        run_id = ingest_run_id(context)
        outcome = IngestOutcome(run_id, dataset, "failed", [describe_file(p) for p in paths])
        if len(paths) < len(requested):
            missing = next(p for p in requested if not p.exists())
            outcome.message = str(IngestError(missing, "file not found"))
            raise _failure(platform, outcome, paths, "delivery refused")
        if skip_if_unchanged(
            platform.lake, contract, outcome, paths, "move", store=platform.store, operator=OPERATOR
        ):
            context.log.warning(f"{dataset}: {outcome.message} (run {run_id})")
            return
        try:
            report = stage(contract, paths, platform.settings, outcome.files, run_id)
        except IngestError as exc:
            outcome.message = str(exc)
            report = None
        if report is None:  # raised here, not in the handler: no traceback of the reader
            raise _failure(platform, outcome, paths, "delivery refused")
        # The verdicts, once: the quality checks count them and the publish step splits by them.
        quality = validate_staged(contract, platform.settings, run_id)
        manifest_path(platform.settings, dataset, run_id).write_text(
            json.dumps({"run_id": run_id, "files": [f.as_dict() for f in report.files]}),
            encoding="utf-8",
        )
        yield dg.Output(
            None,
            output_name="staging",
            metadata={
                "run_id": run_id,
                "rows_read": report.rows_read,
                "rows_failing": quality.rows_failed,
                "files": [f.name for f in report.files],
                "ignored_headers": dg.MetadataValue.json(report.ignored_headers),
            },
        )

    return _stage


def _quarantine_rate_check(
    dataset: str, outcome: IngestOutcome, quality: QualitySummary, live: int | None
) -> dg.AssetCheckResult:
    """A warning when rows were quarantined and the rest published; an error only when the
    delivery was rejected."""
    rejected = outcome.status == "rejected"
    if rejected:
        description = f"delivery rejected: {outcome.message}; {_still_live(live)}"
    else:
        counts = (
            f"{outcome.rows_quarantined} of {quality.rows_read} rows quarantined (quarantine "
            f"rate {quality.failure_rate:.1%}, threshold {quality.max_failure_rate:.1%})"
            if outcome.rows_quarantined
            else "no row quarantined"
        )
        done = (
            f"version {live} published"
            if outcome.status == "published"
            else f"nothing new to publish, {_still_live(live)}"
        )
        description = f"{counts}; {done}"
    return dg.AssetCheckResult(
        asset_key=published_key(dataset),
        check_name=QUARANTINE_RATE_CHECK,
        passed=not rejected and outcome.rows_quarantined == 0,
        severity=dg.AssetCheckSeverity.ERROR if rejected else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "run_id": outcome.run_id,
            "status": outcome.status,
            "rows_read": quality.rows_read,
            "rows_quarantined": outcome.rows_quarantined,
            "quarantine_rate": dg.MetadataValue.float(quality.failure_rate),
            "threshold": dg.MetadataValue.float(quality.max_failure_rate),
            "live_version": live if live is not None else "none",
        },
    )


def _publish_metadata(
    outcome: IngestOutcome, quality: QualitySummary, result: PublishResult
) -> dict:
    return {
        "run_id": outcome.run_id,
        "status": outcome.status,
        "rows_read": quality.rows_read,
        "rows_quarantined": result.rows_quarantined,
        "quarantine_rate": dg.MetadataValue.float(quality.failure_rate),
        "rows_stale": result.rows_stale,
    }


def build_publish_asset(contract: Contract) -> dg.AssetsDefinition:
    dataset = contract.dataset
    threshold = f"{contract.quality.max_failure_rate:.0%}"

    @dg.multi_asset(
        name=f"publish_{dataset}",
        ins={"staging": dg.AssetIn(key=staging_key(dataset), dagster_type=dg.Nothing)},
        outs={
            "published": dg.AssetOut(
                key=published_key(dataset),
                dagster_type=dg.Nothing,
                is_required=False,  # no new version when the rows are those published
                description=(
                    f"Published — {contract.title}: the rows the API serves, one version per "
                    f"accepted delivery (at most {threshold} of its rows quarantined). A "
                    "rejected delivery leaves the previous version live."
                ),
                kinds={"ducklake"},
                tags={LAYER_TAG: "published"},
            ),
            "quarantine": dg.AssetOut(
                key=quarantine_key(dataset),
                dagster_type=dg.Nothing,
                description=(
                    f"Quarantine — {contract.title}: rows held back from publication, each "
                    "with the rules it broke and the reason, by run. Never served."
                ),
                kinds={"ducklake"},
                tags={LAYER_TAG: "quarantine"},
            ),
        },
        check_specs=[
            dg.AssetCheckSpec(
                QUARANTINE_RATE_CHECK,
                asset=published_key(dataset),
                description=(
                    "Share of a delivery's rows quarantined: a warning when any are (the rest "
                    f"is published), an error when more than {threshold} are (the delivery is "
                    "rejected and the previous version stays live)."
                ),
            )
        ],
        group_name=dataset,
        pool=LAKE_POOL,
    )
    def _publish(context: dg.AssetExecutionContext, platform: PlatformResource):
        run_id = ingest_run_id(context)
        manifest = manifest_path(platform.settings, dataset, run_id)
        files = [SourceFile(**f) for f in json.loads(manifest.read_text("utf-8"))["files"]]
        paths = [Path(f.path) for f in files]
        outcome = IngestOutcome(run_id, dataset, "failed", files)
        try:
            quality = summarise_staged(contract, platform.settings, run_id)
            result = publish(platform.lake, contract, quality, files, run_id)
        except LakeBusy as exc:
            outcome.message = str(exc)
            result = None
        if result is None:
            raise _failure(platform, outcome, paths, "lake busy, delivery not applied")
        apply_publish(outcome, result, quality)
        metadata = _publish_metadata(outcome, quality, result)
        if outcome.status == "rejected":
            live = _live_version(platform, dataset)
            yield _quarantine_rate_check(dataset, outcome, quality, live)
            # The failing rows are in quarantine even so: that asset did change.
            yield dg.Output(None, output_name="quarantine", metadata=metadata)
            raise _failure(platform, outcome, paths, "delivery rejected")
        _finish(platform, outcome, paths)
        context.log.info(f"{dataset}: {outcome.message} (run {run_id})")
        if result.version is not None:
            live = result.version.version
            yield dg.Output(
                None,
                output_name="published",
                metadata={
                    **metadata,
                    "version": live,
                    "snapshot_id": result.version.snapshot_id,
                    "row_count": result.version.row_count,
                    "rows_published": result.rows_published,
                },
            )
        else:  # the same rows as the live version: no new version
            live = _live_version(platform, dataset)
        yield dg.Output(None, output_name="quarantine", metadata=metadata)
        yield _quarantine_rate_check(dataset, outcome, quality, live)

    return _publish
