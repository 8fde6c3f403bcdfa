"""One ingest run of a department delivery: stage → validate → quarantine/publish → file it.

The CLI calls :func:`run_ingest` directly; the Dagster assets call the same steps one by one
(:func:`catalog.ingest.staging.stage` and :func:`validate_staged` in the staging step, whose
verdicts the quality checks count; :func:`summarise_staged` and
:func:`catalog.ingest.publish.publish`) and :func:`finish_run` at the end. Handed-over files
are filed afterwards: ``archive/<dataset>/<run>/`` when used (with a ``note.txt`` when the
delivery was an identical re-delivery of files already published), ``rejected/<dataset>/<run>/``
with a ``reason.txt`` when refused.

Every run ends recorded twice: a run record in the lake (kept in ``lake/pending-runs/``
until the next write when the lake is busy) and an ``ingest`` entry in the hash-chained
audit log, naming who ran it, the files by name and checksum, and the version published.
Each run stages into a file of its own, removed when the run ends, so two ingests of one
dataset never collide; their lake writes take turns (``lake_lock_timeout_seconds``).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from catalog.contracts import Contract, load_contracts
from catalog.ingest.publish import PublishResult, SchemaChangeRefused, publish
from catalog.ingest.readers import IngestError
from catalog.ingest.staging import (
    SourceFile,
    StageReport,
    describe_file,
    open_staging,
    remove_staging,
    stage,
)
from catalog.ingest.validation import QualitySummary, evaluate, summarise
from catalog.quality.notifications import Event, notify_all
from catalog.quality.references import check_affected as check_references
from catalog.settings import Settings
from catalog.sharing.audit import AuditEvent, record
from catalog.sharing.principal import local_operator
from catalog.state.db import StateStore
from catalog.store.lake import Lake, LakeBusy
from catalog.store.releases import ResourceCodeChanged
from catalog.store.versions import RunRecord, Version, checksum_versions, insert_run, run_exists

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
    rows_stale: int = 0
    stale_keys: tuple[str, ...] = ()
    version: Version | None = None
    quality: QualitySummary | None = None
    message: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def already_published(
    lake: Lake, contract: Contract, files: list[SourceFile]
) -> dict[str, Version] | None:
    """When every file of the delivery is, by content (SHA-256), a source file of a published
    version: each file's checksum and the newest such version; otherwise None."""
    with lake.reader() as con:
        known = checksum_versions(con, contract.dataset)
    if contract.source.delivery == "full":
        # A full delivery is the whole dataset: an older file sent again restores that
        # state (after a bad delivery), so only the latest version's files are "the same".
        latest = max((v.version for v in known.values()), default=None)
        known = {sha: v for sha, v in known.items() if v.version == latest}
    if not files or any(f.sha256 not in known for f in files):
        return None
    return {f.sha256: known[f.sha256] for f in files}


def redelivery_message(
    dataset: str, run_id: str, files: list[SourceFile], found: dict[str, Version]
) -> str:
    """What an identical re-delivery is reported as: which version holds each file already."""
    parts = []
    for f in files:
        version = found[f.sha256]
        source = next(s["name"] for s in version.source_files if s["sha256"] == f.sha256)
        same = f"{f.name}" if source == f.name else f"{f.name} (same content as {source})"
        parts.append(f"{same} already published in version {version.version}")
    return (
        f"identical re-delivery, nothing new to publish: {'; '.join(parts)}; "
        f"filed to archive/{dataset}/{run_id}/"
    )


def validate_staged(contract: Contract, settings: Settings, run_id: str) -> QualitySummary:
    """Evaluate every rule on the staged delivery (writes its verdicts)."""
    with open_staging(settings, contract.dataset, run_id) as con:  # closed on leaving
        return evaluate(con, contract)


def summarise_staged(contract: Contract, settings: Settings, run_id: str) -> QualitySummary:
    """The quality summary of a staged delivery already validated (:func:`validate_staged`)."""
    with open_staging(settings, contract.dataset, run_id) as con:  # closed on leaving
        return summarise(con, contract)


def file_delivery(
    settings: Settings, dataset: str, run_id: str, paths: list[Path], *, rejected: bool,
    reason: str = "", handover: Handover = "move", note: str = "",
) -> Path:  # fmt: skip
    """Move (or copy) the handed-over files to archive or rejected, with the reason (or, in
    the archive, a note)."""
    target = settings.folder("rejected" if rejected else "archive", dataset) / run_id
    target.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if not path.exists():
            continue
        if handover == "move":
            shutil.move(str(path), target / path.name)
        else:
            shutil.copy2(path, target / path.name)
        # A moved or copied file keeps the mode the department gave it: owner-only here.
        (target / path.name).chmod(0o600)
    if rejected:
        (target / "reason.txt").write_text(reason + "\n", encoding="utf-8")
    elif note:
        (target / "note.txt").write_text(note + "\n", encoding="utf-8")
    return target


def run_record(outcome: IngestOutcome) -> RunRecord:
    return RunRecord(
        run_id=outcome.run_id,
        dataset=outcome.dataset,
        started_at=outcome.started_at,
        finished_at=datetime.now(UTC),
        status=outcome.status,
        files=[f.public_dict() for f in outcome.files],
        rows_read=outcome.rows_read,
        rows_valid=outcome.rows_published,
        rows_quarantined=outcome.rows_quarantined,
        version=outcome.version.version if outcome.version else None,
        message=outcome.message,
        rows_stale=outcome.rows_stale,
        stale_keys=list(outcome.stale_keys),
    )


def pending_runs_dir(settings: Settings) -> Path:
    return settings.folder("lake", "pending-runs")


def record_run(lake: Lake, outcome: IngestOutcome, *, wait: bool = True) -> bool:
    """Write the run record into the lake, with any left pending before. When the lake stays
    busy (or ``wait`` is False), keep it in ``lake/pending-runs/`` for the next write.
    Returns True when it is in the lake."""
    record = run_record(outcome)
    pending = _pending_records(lake.settings)
    try:
        with lake.writer(timeout=None if wait else 0) as con:
            con.execute("BEGIN")
            try:
                for earlier in pending.values():
                    if not run_exists(con, earlier.run_id):
                        insert_run(con, earlier)
                insert_run(con, record)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
    except LakeBusy:
        target = pending_runs_dir(lake.settings) / f"{record.run_id}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(record.as_dict(), ensure_ascii=False), encoding="utf-8")
        return False
    for path in pending:
        path.unlink(missing_ok=True)
    return True


def _pending_records(settings: Settings) -> dict[Path, RunRecord]:
    """Run records kept while the lake was busy; an unreadable file is left where it is."""
    records = {}
    for path in sorted(pending_runs_dir(settings).glob("*.json")):
        try:
            records[path] = RunRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return records


def audit_run(store: StateStore, outcome: IngestOutcome, operator: str) -> None:
    """The run's entry in the hash-chained audit log: who ingested what, and what came of it."""
    event = AuditEvent(
        action="ingest",
        result=outcome.status,
        dataset=outcome.dataset,
        version=outcome.version.version if outcome.version else None,
        row_count=outcome.rows_published,
        operator=operator,
        detail={
            "run_id": outcome.run_id,
            "files": [{"name": f.name, "sha256": f.sha256} for f in outcome.files],
            "rows_read": outcome.rows_read,
            "rows_quarantined": outcome.rows_quarantined,
            "rows_stale": outcome.rows_stale,
            "message": outcome.message[:1000],
        },
    )
    record(store, event, datetime.now(UTC))


def finish_run(
    lake: Lake,
    outcome: IngestOutcome,
    paths: list[Path],
    handover: Handover,
    *,
    store: StateStore | None = None,
    operator: str | None = None,
) -> IngestOutcome:
    """File the delivery, remove the run's staging, record the run in the lake and in the
    audit log (``store``: the platform state; opened for the call when absent)."""
    rejected = outcome.status in ("rejected", "failed")
    note = outcome.message if outcome.status == "unchanged" else ""
    file_delivery(
        lake.settings, outcome.dataset, outcome.run_id, paths,
        rejected=rejected, reason=outcome.message, handover=handover, note=note,
    )  # fmt: skip
    remove_staging(lake.settings, outcome.dataset, outcome.run_id)
    busy = outcome.status == "failed" and outcome.message.startswith(LakeBusy.PREFIX)
    record_run(lake, outcome, wait=not busy)
    owned = store is None
    store = store or StateStore(lake.settings)
    try:
        audit_run(store, outcome, operator or local_operator())
        notify_all(store, lake.settings, delivery_events(lake.settings, outcome), datetime.now(UTC))
    finally:
        if owned:
            store.close()
    return outcome


def delivery_events(settings: Settings, outcome: IngestOutcome) -> list[Event]:
    """What a finished run notifies: a refused or failed delivery, or an accepted one (new
    version or nothing new) that quarantined more than ``quarantine_warn_rate`` of its rows.
    Keyed by the run, so the run-failure sensor seeing the same run adds nothing."""
    contract = load_contracts(settings.schemas_dir).get(outcome.dataset)
    provider = contract.catalog.provider.code if contract else None
    detail = {
        "run_id": outcome.run_id,
        "rows_read": outcome.rows_read,
        "rows_quarantined": outcome.rows_quarantined,
        "files": [f.name for f in outcome.files],
    }
    if outcome.status in ("rejected", "failed"):
        kind = "delivery_rejected" if outcome.status == "rejected" else "run_failed"
        subject = f"{outcome.dataset}: delivery {outcome.status} (run {outcome.run_id}): "
        return [
            Event(kind, "error", subject + outcome.message[:500], f"run:{outcome.run_id}",
                  outcome.dataset, provider, {**detail, "message": outcome.message[:500]})
        ]  # fmt: skip
    read = outcome.rows_read
    if (
        outcome.status in ("published", "unchanged")
        and read
        and outcome.rows_quarantined / read > settings.quarantine_warn_rate
    ):
        rate = outcome.rows_quarantined / read
        what = (
            f"version {outcome.version.version} published"
            if outcome.version
            else "delivery changed nothing"
        )
        subject = (
            f"{outcome.dataset}: {what}; {outcome.rows_quarantined} of {read} rows "
            f"quarantined ({rate:.1%} > {settings.quarantine_warn_rate:.1%})"
        )
        return [
            Event("quarantine_rate", "warning", subject, f"quarantine:{outcome.run_id}",
                  outcome.dataset, provider, {**detail, "rate": round(rate, 4)})
        ]  # fmt: skip
    return []


def apply_publish(
    outcome: IngestOutcome, result: PublishResult, quality: QualitySummary
) -> IngestOutcome:
    """Record what the publish step did in the run's outcome."""
    outcome.quality = quality
    outcome.rows_read = quality.rows_read
    outcome.rows_published = result.rows_published
    outcome.rows_quarantined = result.rows_quarantined
    outcome.rows_stale = result.rows_stale
    outcome.stale_keys = result.stale_keys
    outcome.version = result.version
    outcome.status = result.status
    if result.version:
        outcome.message = f"published version {result.version.version}"
        if result.rows_deleted:
            outcome.message += f"; {result.rows_deleted} row(s) deleted"
    elif result.status == "unchanged":
        outcome.message = "the same rows as the published version; nothing new published"
    else:
        outcome.message = result.message or rejection_message(quality)
    if result.rows_stale:
        outcome.message += (
            f"; {result.rows_stale} stale row(s) not applied, older than the published "
            f"record with their key (e.g. {', '.join(result.stale_keys[:3])})"
        )
    return outcome


def skip_if_unchanged(
    lake: Lake,
    contract: Contract,
    outcome: IngestOutcome,
    paths: list[Path],
    handover: Handover,
    *,
    store: StateStore | None = None,
    operator: str | None = None,
) -> bool:
    """Report a delivery whose every file has the content of a file already published: it is
    filed to the archive with a note, recorded (status ``unchanged``) in the lake and the
    audit log, and True is returned. Identified by checksum, never by name or file time."""
    found = already_published(lake, contract, outcome.files)
    if found is None:
        return False
    outcome.status = "unchanged"
    outcome.message = redelivery_message(contract.dataset, outcome.run_id, outcome.files, found)
    finish_run(lake, outcome, paths, handover, store=store, operator=operator)
    return True


def rejection_message(quality: QualitySummary) -> str:
    worst = sorted(quality.rules.items(), key=lambda kv: -kv[1])[:3]
    rules = ", ".join(f"{name}: {count}" for name, count in worst if count)
    return (
        f"{quality.rows_failed} of {quality.rows_read} rows failed their rules: quarantine rate "
        f"{quality.failure_rate:.1%} over the threshold of {quality.max_failure_rate:.1%}; "
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
    store: StateStore | None = None,
    operator: str | None = None,
) -> IngestOutcome:
    """Ingest one delivery synchronously; never raises for bad input or a busy lake, reports
    it instead (status ``failed`` with the reason, recorded like any run)."""
    step = on_step or (lambda _name: None)
    run_id = run_id or new_run_id()
    files = [describe_file(p) for p in paths if p.exists()]
    outcome = IngestOutcome(run_id, contract.dataset, "failed", files)
    try:
        if len(files) < len(paths):
            missing = next(p for p in paths if not p.exists())
            raise IngestError(missing, "file not found")
        if skip_if_unchanged(
            lake, contract, outcome, paths, handover, store=store, operator=operator
        ):
            return outcome
        step("stage")
        report: StageReport = stage(contract, paths, lake.settings, files, run_id)
        outcome.files = report.files
        step("validate")
        quality = validate_staged(contract, lake.settings, run_id)
        step("publish")
        apply_publish(outcome, publish(lake, contract, quality, report.files, run_id), quality)
        if outcome.version is not None:
            step("references")
            check_references(lake, contract, load_contracts(lake.settings.schemas_dir))
    except (IngestError, LakeBusy, ResourceCodeChanged, SchemaChangeRefused) as exc:
        # Bad input, a busy lake, or a contract its published history cannot follow.
        outcome.status = "failed"
        outcome.message = str(exc)
    return finish_run(lake, outcome, paths, handover, store=store, operator=operator)
