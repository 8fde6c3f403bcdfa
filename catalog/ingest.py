"""One ingest run of a department delivery: stage → validate → quarantine/publish → file it.

The CLI calls :func:`run_ingest` directly; the Dagster assets call the same steps one by one
(:func:`catalog.staging.stage`, :func:`validate_staged`, :func:`catalog.publish.publish`) and
:func:`finish_run` at the end. Handed-over files are filed afterwards: ``archive/<dataset>/
<run>/`` when used, ``rejected/<dataset>/<run>/`` with a ``.reason.txt`` when refused.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from catalog.contracts import Contract
from catalog.lake import Lake
from catalog.publish import PublishResult, publish
from catalog.readers import IngestError
from catalog.settings import Settings
from catalog.staging import SourceFile, StageReport, describe_file, open_staging, stage
from catalog.validation import QualitySummary, evaluate
from catalog.versions import RunRecord, Version, insert_run, published_checksums

Status = Literal["published", "unchanged", "rejected", "failed"]
Handover = Literal["move", "copy"]
StepCallback = Callable[[str], None]


@dataclass
class IngestOutcome:
    run_id: str
    dataset: str
    status: Status
    files: list[SourceFile]
    rows_read: int = 0
    rows_published: int = 0
    rows_quarantined: int = 0
    version: Version | None = None
    quality: QualitySummary | None = None
    message: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def already_published(lake: Lake, contract: Contract, files: list[SourceFile]) -> bool:
    """True when every file of the delivery was already part of a published version."""
    with lake.reader() as con:
        known = published_checksums(con, contract.dataset)
    return bool(files) and all(f.sha256 in known for f in files)


def validate_staged(contract: Contract, settings: Settings) -> QualitySummary:
    con = open_staging(settings, contract.dataset)
    try:
        return evaluate(con, contract)
    finally:
        con.close()


def file_delivery(
    settings: Settings, dataset: str, run_id: str, paths: list[Path], *, rejected: bool,
    reason: str = "", handover: Handover = "move",
) -> Path:  # fmt: skip
    """Move (or copy) the handed-over files to archive or rejected, with the reason."""
    target = settings.folder("rejected" if rejected else "archive", dataset) / run_id
    target.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if not path.exists():
            continue
        if handover == "move":
            shutil.move(str(path), target / path.name)
        else:
            shutil.copy2(path, target / path.name)
    if rejected:
        (target / "reason.txt").write_text(reason + "\n", encoding="utf-8")
    return target


def record_run(lake: Lake, outcome: IngestOutcome) -> None:
    with lake.writer() as con:
        insert_run(
            con,
            RunRecord(
                run_id=outcome.run_id,
                dataset=outcome.dataset,
                started_at=outcome.started_at,
                finished_at=datetime.now(UTC),
                status=outcome.status,
                files=[f.as_dict() for f in outcome.files],
                rows_read=outcome.rows_read,
                rows_valid=outcome.rows_published,
                rows_quarantined=outcome.rows_quarantined,
                version=outcome.version.version if outcome.version else None,
                message=outcome.message,
            ),
        )


def finish_run(
    lake: Lake, outcome: IngestOutcome, paths: list[Path], handover: Handover
) -> IngestOutcome:
    """File the delivery and record the run; returns the outcome for chaining."""
    rejected = outcome.status in ("rejected", "failed")
    file_delivery(
        lake.settings, outcome.dataset, outcome.run_id, paths,
        rejected=rejected, reason=outcome.message, handover=handover,
    )  # fmt: skip
    record_run(lake, outcome)
    return outcome


def apply_publish(
    outcome: IngestOutcome, result: PublishResult, quality: QualitySummary
) -> IngestOutcome:
    """Record what the publish step did in the run's outcome."""
    outcome.quality = quality
    outcome.rows_read = quality.rows_read
    outcome.rows_published = result.rows_published
    outcome.rows_quarantined = result.rows_quarantined
    outcome.version = result.version
    outcome.status = "published" if result.version else "rejected"
    outcome.message = (
        f"published version {result.version.version}"
        if result.version
        else rejection_message(quality)
    )
    return outcome


def skip_if_unchanged(
    lake: Lake, contract: Contract, outcome: IngestOutcome, paths: list[Path], handover: Handover
) -> bool:
    """File away a delivery whose files were all published before; True if it was one."""
    if not already_published(lake, contract, outcome.files):
        return False
    outcome.status = "unchanged"
    outcome.message = "identical to files already published; nothing new"
    finish_run(lake, outcome, paths, handover)
    return True


def rejection_message(quality: QualitySummary) -> str:
    worst = sorted(quality.rules.items(), key=lambda kv: -kv[1])[:3]
    rules = ", ".join(f"{name}: {count}" for name, count in worst if count)
    return (
        f"{quality.rows_failed} of {quality.rows_read} rows failed "
        f"({quality.failure_rate:.1%} > threshold {quality.max_failure_rate:.1%}); "
        f"nothing published ({rules})"
    )


def run_ingest(
    contract: Contract,
    paths: list[Path],
    lake: Lake,
    *,
    run_id: str | None = None,
    handover: Handover = "copy",
    on_step: StepCallback | None = None,
) -> IngestOutcome:
    """Ingest one delivery synchronously; never raises for bad input, reports it instead."""
    step = on_step or (lambda _name: None)
    run_id = run_id or new_run_id()
    files = [describe_file(p) for p in paths if p.exists()]
    outcome = IngestOutcome(run_id, contract.dataset, "failed", files)
    try:
        if len(files) < len(paths):
            missing = next(p for p in paths if not p.exists())
            raise IngestError(missing, "file not found")
        if skip_if_unchanged(lake, contract, outcome, paths, handover):
            return outcome
        step("stage")
        report: StageReport = stage(contract, paths, lake.settings, files)
        outcome.files = report.files
        step("validate")
        quality = validate_staged(contract, lake.settings)
        step("publish")
        apply_publish(outcome, publish(lake, contract, quality, report.files, run_id), quality)
    except IngestError as exc:
        outcome.status = "failed"
        outcome.message = str(exc)
    return finish_run(lake, outcome, paths, handover)
