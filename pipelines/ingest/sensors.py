"""Landing-folder sensors: a file dropped by a department starts that dataset's ingest."""

import time
from pathlib import Path

import dagster as dg

from catalog.contracts import Contract
from catalog.ingest.readers import FORMAT_OF_SUFFIX
from pipelines.ingest.assets import landing_files
from pipelines.resources import PlatformResource

# A file still being written changes size; wait until it has been quiet this long.
SETTLE_SECONDS = 2.0


def _settled(paths: list[Path], now: float) -> list[Path]:
    return [p for p in paths if now - p.stat().st_mtime >= SETTLE_SECONDS]


def build_landing_sensor(contract: Contract, job_name: str) -> dg.SensorDefinition:
    dataset = contract.dataset

    @dg.sensor(
        name=f"landing_{dataset}",
        job_name=job_name,
        minimum_interval_seconds=5,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Starts {job_name} when files arrive in landing/{dataset}/.",
    )
    def _sensor(context: dg.SensorEvaluationContext, platform: PlatformResource):
        files = [
            p for p in landing_files(platform, dataset) if p.suffix.lower() in FORMAT_OF_SUFFIX
        ]
        ready = _settled(files, time.time())
        if not ready:
            return dg.SkipReason(f"no settled files in landing/{dataset}/")
        # The run key only stops a second request for files already requested; name, size
        # and modification time say that without reading them (the run itself checksums).
        stamps = sorted(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in ready)
        return dg.RunRequest(
            run_key=f"{dataset}:{'|'.join(stamps)}",
            run_config={
                "ops": {f"stage_{dataset}": {"config": {"files": [str(p) for p in ready]}}}
            },
            tags={"govshare/dataset": dataset},
        )

    return _sensor
