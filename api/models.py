"""Public response models: what the API shows, separate from internal records."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from catalog.contracts import CatalogMeta, Contract, DataItem, VerificationService
from catalog.quality.freshness import Freshness
from catalog.store.versions import Version


class DataItemPublic(BaseModel):
    name: str
    label: str
    type: str
    length: int | None
    description: str
    sensitivity: str
    required: bool

    @classmethod
    def of(cls, item: DataItem) -> DataItemPublic:
        return cls(**item.model_dump(include=set(cls.model_fields)))


class SourceFilePublic(BaseModel):
    """A file a version was built from: by name and checksum, never by server path (versions
    published before paths were dropped still hold one; it is left out here)."""

    name: str
    sha256: str
    bytes: int
    rows: int


class VersionPublic(BaseModel):
    dataset: str
    version: int
    snapshot_id: int
    row_count: int
    schema_hash: str
    quality: dict = Field(
        description=(
            "The delivery's quality summary: rows_read, rows_failed (rows quarantined for "
            "breaking a rule), quarantine_rate (their share), max_failure_rate (the contract's "
            "threshold), rules (failing rows per rule), publishable. failure_rate: deprecated, "
            "the same value as quarantine_rate."
        )
    )
    source_files: list[SourceFilePublic]
    run_id: str
    published_at: datetime

    @classmethod
    def of(cls, version: Version) -> VersionPublic:
        return cls(**version.__dict__)


class FreshnessState(BaseModel):
    status: str
    stale: bool
    last_published_at: datetime | None
    due_at: datetime | None
    stale_since: datetime | None

    @classmethod
    def of(cls, fresh: Freshness) -> FreshnessState:
        return cls(
            status=fresh.status,
            stale=fresh.stale,
            last_published_at=fresh.last_published_at,
            due_at=fresh.due_at,
            stale_since=fresh.stale_since,
        )


class CatalogSummary(BaseModel):
    dataset: str
    resource_code: str
    name: str
    name_en: str
    provider: str
    provider_code: str
    classification: str
    sharing_type: str
    open: bool
    update_cycle: str
    latest_version: int | None
    row_count: int | None
    published_at: datetime | None
    freshness: FreshnessState
    """Against the update cycle: ``fresh``, ``stale`` (with since when) or
    ``never_published``."""

    @classmethod
    def of(cls, contract: Contract, latest: Version | None, fresh: Freshness) -> CatalogSummary:
        meta = contract.catalog
        return cls(
            dataset=contract.dataset,
            resource_code=meta.resource_code,
            name=meta.name,
            name_en=meta.name_en,
            provider=meta.provider.name,
            provider_code=meta.provider.code,
            classification=meta.classification,
            sharing_type=meta.sharing.type,
            open=meta.open.open,
            update_cycle=meta.update_cycle,
            latest_version=latest.version if latest else None,
            row_count=latest.row_count if latest else None,
            published_at=latest.published_at if latest else None,
            freshness=FreshnessState.of(fresh),
        )


class CatalogEntry(BaseModel):
    dataset: str
    title: str
    catalog: CatalogMeta
    key: list[str]
    items: list[DataItemPublic]
    verification: list[VerificationService]
    versions: list[VersionPublic]
    freshness: FreshnessState


class Health(BaseModel):
    status: str
    datasets: int
    published: int
    read_copies_pending: int = Field(
        0, description="Read-optimised copies being built (pages of them read the lake meanwhile)"
    )


class SearchHit(CatalogSummary):
    score: float | None
    """BM25 relevance to the query (None without one)."""
    quality_band: str
    """A (at most 0.1% of the latest delivery's rows quarantined), B (1%), C (5%), D (more),
    or ``none`` before the first publish."""


class SearchPage(BaseModel):
    total: int
    limit: int
    offset: int
    results: list[SearchHit]
    facets: dict[str, dict[str, int]]
    """Per facet, its values' counts among the datasets the query and the other facets'
    filters select."""
