"""Landing-folder sensors: a file dropped by a department starts that dataset's ingest.

Every drop is handed to a run, once. What a file *is* comes from its content (SHA-256),
never from its modification time: ``cp -p``, ``rsync -a`` and unzip keep the old time, so a
re-delivered file can look exactly like one ingested before. The run then either ingests it
or, when every file has the content of one already published, files it to the archive with
a note and records it (status ``unchanged``, an audit entry) as an identical re-delivery.

Which drop it is comes from the file system: the inode and change time (ctime) of a new
copy differ from those of the earlier one (no copying tool keeps them). They make the run key
of each drop its own, so Dagster's run-key check never swallows a re-delivery. The cursor
holds the drops already handed to a run while they are still in the landing folder, so a
file that arrives later starts a run of its own instead of one repeating the first file.
"""

import hashlib
import json
import os
import time
from pathlib import Path

import dagster as dg

from catalog.contracts import Contract
from catalog.ingest.readers import FORMAT_OF_SUFFIX
from catalog.ingest.staging import file_checksum
from pipelines.ingest.assets import landing_files
from pipelines.resources import PlatformResource

# A file still being written changes size; wait until it has been quiet this long.
SETTLE_SECONDS = 2.0
TICK_SECONDS = 5


def _settled(paths: list[Path], stats: dict[Path, os.stat_result], now: float) -> list[Path]:
    return [p for p in paths if now - stats[p].st_mtime >= SETTLE_SECONDS]


def _stats(paths) -> dict[Path, os.stat_result]:
    found = {}
    for path in paths:
        try:
            found[path] = path.stat()
        except FileNotFoundError:  # taken away between the listing and now
            continue
    return found


def _in_landing(path: Path, st: os.stat_result) -> str:
    """This file as it lies in the landing folder (a later copy is another inode)."""
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def drop_run_key(dataset: str, files: list[tuple[Path, os.stat_result, str]]) -> str:
    """The run key of one drop: each file's name and content checksum, with the inode and
    change time that tell this copy from an earlier one of the same content."""
    drops = sorted(f"{p.name}:{sha}:{st.st_ino}:{st.st_ctime_ns}" for p, st, sha in files)
    return f"{dataset}:{hashlib.sha256('|'.join(drops).encode()).hexdigest()}"


def _cursor(context: dg.SensorEvaluationContext) -> set[str]:
    try:
        return set(json.loads(context.cursor)) if context.cursor else set()
    except (ValueError, TypeError):
        return set()


def build_landing_sensor(contract: Contract, job_name: str) -> dg.SensorDefinition:
    dataset = contract.dataset

    @dg.sensor(
        name=f"landing_{dataset}",
        job_name=job_name,
        minimum_interval_seconds=TICK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Starts {job_name} when files arrive in landing/{dataset}/.",
    )
    def _sensor(context: dg.SensorEvaluationContext, platform: PlatformResource):
        stats = _stats(
            p for p in landing_files(platform, dataset) if p.suffix.lower() in FORMAT_OF_SUFFIX
        )
        files = list(stats)
        present = {p: _in_landing(p, stats[p]) for p in files}
        handed = _cursor(context) & set(present.values())  # forget drops that have left
        new = [p for p in _settled(files, stats, time.time()) if present[p] not in handed]
        if new:
            handed |= {present[p] for p in new}
        if handed != _cursor(context):
            context.update_cursor(json.dumps(sorted(handed)))
        if not new:
            # The normal case. The reason shows in the sensor's tick history; the daemon's
            # INFO line about it is kept off the console (pipelines/instance.py).
            return dg.SkipReason(f"nothing new in landing/{dataset}/")
        drop = [(p, stats[p], file_checksum(p)) for p in new]
        context.log.info(
            f"landing/{dataset}/: {', '.join(p.name for p in new)} handed to {job_name}"
        )
        return dg.RunRequest(
            run_key=drop_run_key(dataset, drop),
            run_config={"ops": {f"stage_{dataset}": {"config": {"files": [str(p) for p in new]}}}},
            tags={"govshare/dataset": dataset},
        )

    return _sensor
