"""Landing-folder sensors: a file dropped by a department starts that dataset's ingest."""

import time

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from catalog.contracts import Contract
from catalog.readers import FORMAT_OF_SUFFIX
from catalog.staging import file_checksum
from pipelines.assets import landing_files
from pipelines.resources import PlatformResource

# A file still being written changes size; wait until it has been quiet this long.
SETTLE_SECONDS = 2.0


def _settled(paths: list, now: float) -> list:
    return [p for p in paths if now - p.stat().st_mtime >= SETTLE_SECONDS]


def build_landing_sensor(
    contract: Contract, job: UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    dataset = contract.dataset

    @dg.sensor(
        name=f"landing_{dataset}",
        job=job,
        minimum_interval_seconds=5,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Starts {job.name} when files arrive in landing/{dataset}/.",
    )
    def _sensor(context: dg.SensorEvaluationContext, platform: PlatformResource):
        files = [
            p for p in landing_files(platform, dataset) if p.suffix.lower() in FORMAT_OF_SUFFIX
        ]
        ready = _settled(files, time.time())
        if not ready:
            return dg.SkipReason(f"no settled files in landing/{dataset}/")
        checksums = sorted(file_checksum(p) for p in ready)
        return dg.RunRequest(
            run_key=f"{dataset}:{':'.join(checksums)}",
            run_config={
                "ops": {f"stage_{dataset}": {"config": {"files": [str(p) for p in ready]}}}
            },
            tags={"govshare/dataset": dataset},
        )

    return _sensor
