"""Asset factory: each contract becomes staging → (checks) → published + quarantine assets.

Assets stay thin: each calls one step of :mod:`catalog.ingest.delivery` and reports metadata. The
lake write runs in the ``lake`` concurrency pool (limit 1, see dagster.yaml). Each run
stages into files of its own (named by the run), so runs of one dataset never collide.
"""

import json
from pathlib import Path
from typing import NoReturn

import dagster as dg

from catalog.contracts import Contract
from catalog.ingest.delivery import (
    IngestOutcome,
    apply_publish,
    finish_run,
    skip_if_unchanged,
    validate_staged,
)
from catalog.ingest.publish import publish
from catalog.ingest.readers import IngestError
from catalog.ingest.staging import SourceFile, describe_file, manifest_path, stage
from catalog.store.lake import LakeBusy
from pipelines.resources import PlatformResource

LAKE_POOL = "lake"
OPERATOR = "dagster"


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


def run_key(dagster_run_id: str) -> str:
    """The govshare run id of a Dagster run (names its staging files and its run record)."""
    return dagster_run_id[:12]


def _finish(platform: PlatformResource, outcome: IngestOutcome, paths: list[Path]) -> None:
    finish_run(
        platform.lake, outcome, paths, handover="move", store=platform.store, operator=OPERATOR
    )


def _fail_run(platform: PlatformResource, outcome: IngestOutcome, paths: list[Path]) -> NoReturn:
    _finish(platform, outcome, paths)
    raise dg.Failure(description=outcome.message, metadata={"run_id": outcome.run_id})


def build_staging_asset(contract: Contract) -> dg.AssetsDefinition:
    dataset = contract.dataset

    @dg.multi_asset(
        name=f"stage_{dataset}",
        outs={"staging": dg.AssetOut(key=staging_key(dataset), is_required=False)},
        group_name=dataset,
        description=f"{contract.title}: landing files read, headers mapped and normalised.",
    )
    def _stage(
        context: dg.AssetExecutionContext, config: DeliveryConfig, platform: PlatformResource
    ):
        paths = [Path(f) for f in config.files] or landing_files(platform, dataset)
        if not paths:
            context.log.info("no files in the landing folder")
            return
        run_id = run_key(context.run.run_id)
        files = [describe_file(p) for p in paths if p.exists()]
        outcome = IngestOutcome(run_id, dataset, "failed", files)
        if skip_if_unchanged(
            platform.lake, contract, outcome, paths, "move", store=platform.store, operator=OPERATOR
        ):
            context.log.info(outcome.message)
            return
        try:
            report = stage(contract, paths, platform.settings, files, run_id)
        except IngestError as exc:
            outcome.message = str(exc)
            _fail_run(platform, outcome, paths)
        manifest_path(platform.settings, dataset, run_id).write_text(
            json.dumps({"run_id": run_id, "files": [f.as_dict() for f in report.files]}),
            encoding="utf-8",
        )
        yield dg.Output(
            None,
            output_name="staging",
            metadata={
                "rows_read": report.rows_read,
                "files": [f.name for f in report.files],
                "ignored_headers": dg.MetadataValue.json(report.ignored_headers),
            },
        )

    return _stage


def build_publish_asset(contract: Contract) -> dg.AssetsDefinition:
    dataset = contract.dataset

    @dg.multi_asset(
        name=f"publish_{dataset}",
        ins={"staging": dg.AssetIn(key=staging_key(dataset), dagster_type=dg.Nothing)},
        outs={
            "published": dg.AssetOut(key=published_key(dataset), dagster_type=dg.Nothing),
            "quarantine": dg.AssetOut(key=quarantine_key(dataset), dagster_type=dg.Nothing),
        },
        group_name=dataset,
        pool=LAKE_POOL,
        description=(
            f"{contract.title}: failing rows quarantined with rule and reason; a new version "
            f"published when at most {contract.quality.max_failure_rate:.0%} of rows fail."
        ),
    )
    def _publish(context: dg.AssetExecutionContext, platform: PlatformResource):
        run_id = run_key(context.run.run_id)
        manifest = manifest_path(platform.settings, dataset, run_id)
        files = [SourceFile(**f) for f in json.loads(manifest.read_text("utf-8"))["files"]]
        paths = [Path(f.path) for f in files]
        outcome = IngestOutcome(run_id, dataset, "failed", files)
        try:
            quality = validate_staged(contract, platform.settings, run_id)
            result = publish(platform.lake, contract, quality, files, run_id)
        except LakeBusy as exc:
            outcome.message = str(exc)
            _fail_run(platform, outcome, paths)
        apply_publish(outcome, result, quality)
        if result.version is None:
            _fail_run(platform, outcome, paths)
        _finish(platform, outcome, paths)
        common = {
            "run_id": run_id,
            "failure_rate": quality.failure_rate,
            "rows_stale": result.rows_stale,
        }
        yield dg.Output(
            None,
            output_name="published",
            metadata={
                **common,
                "version": result.version.version,
                "snapshot_id": result.version.snapshot_id,
                "row_count": result.version.row_count,
                "rows_published": result.rows_published,
            },
        )
        yield dg.Output(
            None, output_name="quarantine",
            metadata={**common, "rows_quarantined": result.rows_quarantined},
        )  # fmt: skip

    return _publish
