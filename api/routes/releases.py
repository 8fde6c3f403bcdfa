"""Catalog releases and diffs (``catalog.store.releases``, ``catalog.store.changes``): the
catalog versioned as a whole, and what changed in a dataset between two of its versions.
Public, as the catalog is: names, codes, versions, metadata, counts; rows are never shown
here (a masked sample of changed rows is ``GET /datasets/{dataset}/changes``, under a grant).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from api.deps import ContractDep, StateDep
from api.params import FromNumber, Offset, PathId, ToNumber
from api.state import AppState
from catalog.contracts import Contract
from catalog.store.releases import (
    Release,
    diff,
    get_release,
    latest_release,
    list_releases,
    metadata_documents,
)
from catalog.store.versions import Version
from catalog.text import InputError

router = APIRouter(prefix="/catalog", tags=["catalog"])


class ReleaseSummary(BaseModel):
    release: int
    created_at: datetime
    reason: str = Field(description='What changed, e.g. "population v3; licences metadata"')
    datasets: int


class ReleasePage(BaseModel):
    total: int
    limit: int
    offset: int
    releases: list[ReleaseSummary]


class ReleaseDataset(BaseModel):
    dataset: str
    resource_code: str
    name: str
    name_en: str
    version: int | None = Field(description="Its latest version then (None: never published)")
    row_count: int | None
    schema_hash: str | None


class ReleaseDetail(BaseModel):
    release: int
    created_at: datetime
    reason: str
    datasets: list[ReleaseDataset]


class ReleaseDiff(BaseModel):
    from_release: int
    to_release: int
    added: list[str]
    removed: list[str]
    changed: list[dict[str, Any]] = Field(
        description="Per dataset in both: version and row count from/to, whether the stored "
        "schema changed, metadata changes field by field, items added/removed/changed"
    )


class DatasetDiff(BaseModel):
    dataset: str
    from_version: int | None = Field(description="None: before the first version")
    to_version: int
    rows: dict[str, int] = Field(description="Rows added, deleted and changed, by key")
    items_changed: dict[str, int] = Field(
        description="Changed rows per item that changed, for items of public sensitivity"
    )
    schema_: dict[str, Any] = Field(
        alias="schema", description="Items added, removed, and whose stored type changed"
    )
    row_count: dict[str, int | None]


def _summary(release: Release) -> ReleaseSummary:
    return ReleaseSummary(
        release=release.release,
        created_at=release.created_at,
        reason=release.reason,
        datasets=len(release.datasets),
    )


def _release(state: AppState, number: int | None) -> Release:
    """Release ``number`` (the latest if None), or 404 saying which."""
    with state.reader() as con:
        found = latest_release(con) if number is None else get_release(con, number)
    if found is None:
        raise HTTPException(404, f"no catalog release {number}" if number else "no release yet")
    return found


@router.get("/releases", response_model=ReleasePage, summary="Catalog releases, newest first")
def releases(
    state: StateDep, limit: int = Query(50, ge=1, le=500), offset: Offset = 0
) -> ReleasePage:
    with state.reader() as con:
        found, total = list_releases(con, limit, offset)
    return ReleasePage(
        total=total, limit=limit, offset=offset, releases=[_summary(r) for r in found]
    )


@router.get(
    "/releases/diff",
    response_model=ReleaseDiff,
    summary="What changed between two catalog releases",
    description="`to`: the latest release if absent; `from`: the release before `to` if "
    "absent. Datasets added and removed; for each dataset in both, its version and row count, "
    "its catalog metadata field by field and its data items.",
    responses={404: {"description": "No such release"}},
)
def releases_diff(
    state: StateDep,
    from_: FromNumber = None,
    to: ToNumber = None,
) -> ReleaseDiff:
    newer = _release(state, to)
    number = from_ if from_ is not None else newer.release - 1
    if number >= newer.release:
        raise InputError(
            f"release {number} is not before release {newer.release}", ("query", "from")
        )
    if number < 1:
        raise HTTPException(404, f"release {newer.release} is the first: nothing to compare")
    older = _release(state, number)
    with state.reader() as con:
        found = diff(con, older, newer)
    return ReleaseDiff(
        from_release=found["from"],
        to_release=found["to"],
        added=found["added"],
        removed=found["removed"],
        changed=found["changed"],
    )


@router.get(
    "/releases/{release}",
    response_model=ReleaseDetail,
    summary="One catalog release: each dataset's resource code and version in it",
    responses={404: {"description": "No such release"}},
)
def release_detail(release: PathId, state: StateDep) -> ReleaseDetail:
    found = _release(state, release)
    with state.reader() as con:
        documents = metadata_documents(con, [e["metadata"] for e in found.datasets.values()])
    datasets = []
    for name, entry in found.datasets.items():
        meta = documents[entry["metadata"]]["catalog"]
        datasets.append(
            ReleaseDataset(
                dataset=name,
                resource_code=entry["resource_code"],
                name=meta["name"],
                name_en=meta["name_en"],
                version=entry["version"],
                row_count=entry["row_count"],
                schema_hash=entry["schema_hash"],
            )
        )
    return ReleaseDetail(
        release=found.release, created_at=found.created_at, reason=found.reason, datasets=datasets
    )


def version_pair(
    state: AppState, contract: Contract, older: int | None, newer: int | None
) -> tuple[Version | None, Version]:
    """The two versions a diff compares: ``newer`` (the latest if None) and ``older`` (the
    one before it if None, so None before the first version: every row added); 404 for a
    version the dataset does not have, 422 naming ``from`` when it is not the older."""
    versions = state.versions()
    name = contract.dataset
    b = versions.latest(name) if newer is None else versions.get(name, newer)
    if b is None:
        raise HTTPException(404, f"{name} has no published version {newer or ''}".rstrip())
    if older is None:
        return versions.get(name, b.version - 1), b
    if older >= b.version:
        raise InputError(f"version {older} is not before version {b.version}", ("query", "from"))
    a = versions.get(name, older)
    if a is None:
        raise HTTPException(404, f"{name} has no version {older} to compare")
    return a, b


@router.get(
    "/{dataset}/diff",
    response_model=DatasetDiff,
    response_model_by_alias=True,
    summary="What changed in a dataset between two of its versions",
    description="Counts of rows added, deleted and changed by key (from DuckLake's change "
    "feed between the versions' snapshots), changed rows per public item, and the schema diff. "
    "`to`: the latest version if absent; `from`: the version before `to` if absent. A masked "
    "sample of the rows: `GET /datasets/{dataset}/changes`.",
    responses={404: {"description": "Unknown dataset or version"}},
)
def dataset_diff(
    contract: ContractDep,
    state: StateDep,
    from_: FromNumber = None,
    to: ToNumber = None,
) -> DatasetDiff:
    a, b = version_pair(state, contract, from_, to)
    found = state.version_changes(contract, a, b)
    return DatasetDiff(
        dataset=contract.dataset,
        from_version=a.version if a else None,
        to_version=b.version,
        rows=found.counts,
        # Per item only where the item is public: a count of one changed phone number
        # singles out a person; the rows of a change come under a grant (/changes).
        items_changed={
            name: count
            for name, count in found.items_changed.items()
            if contract.item(name).sensitivity == "public"
        },
        schema=found.schema,
        row_count=_row_counts(a, b),
    )


def _row_counts(a: Version | None, b: Version) -> dict[str, int | None]:
    before = a.row_count if a else 0
    return {"from": a.row_count if a else None, "to": b.row_count, "change": b.row_count - before}
