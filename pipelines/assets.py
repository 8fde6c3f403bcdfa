"""Asset factory: each contract becomes staging → (checks) → published + quarantine assets.

Assets stay thin: each calls one step of :mod:`catalog.ingest` and reports metadata. The
lake write runs in the ``lake`` concurrency pool (limit 1, see dagster.yaml).
"""

import json
from pathlib import Path
from typing import NoReturn

import dagster as dg

from catalog.contracts import Contract
from catalog.ingest import (
    IngestOutcome,
    apply_publish,
    finish_run,
    skip_if_unchanged,
    validate_staged,
)
from catalog.publish import publish
from catalog.readers import IngestError
from catalog.staging import SourceFile, describe_file, stage
from pipelines.resources import PlatformResource

LAKE_POOL = "lake"


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


def _delivery_manifest(platform: PlatformResource, dataset: str) -> Path:
    return platform.settings.folder("staging") / f"{dataset}.delivery.json"


def _fail_run(platform: PlatformResource, outcome: IngestOutcome, paths: list[Path]) -> NoReturn:
    finish_run(platform.lake, outcome, paths, handover="move")
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
        run_id = context.run.run_id[:12]
        files = [describe_file(p) for p in paths if p.exists()]
        outcome = IngestOutcome(run_id, dataset, "failed", files)
        if skip_if_unchanged(platform.lake, contract, outcome, paths, handover="move"):
            context.log.info(outcome.message)
            return
        try:
            report = stage(contract, paths, platform.settings, files)
        except IngestError as exc:
            outcome.message = str(exc)
            _fail_run(platform, outcome, paths)
        _delivery_manifest(platform, dataset).write_text(
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
        manifest = json.loads(_delivery_manifest(platform, dataset).read_text(encoding="utf-8"))
        files = [SourceFile(**f) for f in manifest["files"]]
        paths = [Path(f.path) for f in files]
        quality = validate_staged(contract, platform.settings)
        result = publish(platform.lake, contract, quality, files, manifest["run_id"])
        outcome = apply_publish(
            IngestOutcome(manifest["run_id"], dataset, "failed", files), result, quality
        )
        if result.version is None:
            _fail_run(platform, outcome, paths)
        finish_run(platform.lake, outcome, paths, handover="move")
        common = {"run_id": manifest["run_id"], "failure_rate": quality.failure_rate}
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
