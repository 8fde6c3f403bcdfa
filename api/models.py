"""Public response models: what the API shows, separate from internal records."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from catalog.contracts import CatalogMeta, Contract, DataItem, VerificationService
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
    quality: dict
    source_files: list[SourceFilePublic]
    run_id: str
    published_at: datetime

    @classmethod
    def of(cls, version: Version) -> VersionPublic:
        return cls(**version.__dict__)


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

    @classmethod
    def of(cls, contract: Contract, latest: Version | None) -> CatalogSummary:
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
        )


class CatalogEntry(BaseModel):
    dataset: str
    title: str
    catalog: CatalogMeta
    key: list[str]
    items: list[DataItemPublic]
    verification: list[VerificationService]
    versions: list[VersionPublic]


class Health(BaseModel):
    status: str
    datasets: int
    published: int
