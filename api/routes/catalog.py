"""The catalog of shared government information resources."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response

from api.deps import ContractDep, StateDep, current_versions
from api.models import (
    CatalogEntry,
    CatalogSummary,
    DataItemPublic,
    FreshnessState,
    VersionPublic,
)
from api.params import PathId, QueryText
from api.routes.exchange import RDF_MEDIA, VARY_ACCEPT, rdf_format, rdf_response
from api.state import AppState
from catalog.contracts import Contract
from catalog.quality.freshness import Freshness, freshness
from catalog.store.versions import Version
from catalog.text import Line

router = APIRouter(prefix="/catalog", tags=["catalog"])


def _matches_text(contract: Contract, q: str) -> bool:
    meta = contract.catalog
    haystack = " ".join(
        [
            meta.name,
            meta.name_en,
            meta.summary,
            meta.summary_en,
            meta.provider.name,
            meta.provider.name_en,
            *meta.keywords,
            *(i.label for i in contract.items),
        ]
    ).lower()
    return all(word in haystack for word in q.lower().split())


def _freshness(state: AppState, contract: Contract, latest: Version | None) -> Freshness:
    return freshness(contract, latest, state.now(), state.settings.freshness_grace_ratio)


@router.get(
    "",
    response_model=list[CatalogSummary],
    summary="List catalog entries",
    description="JSON by default; DCAT-AP 3 as JSON-LD or Turtle for a client whose `Accept` "
    "asks for `application/ld+json` or `text/turtle` (the same as `/catalog.jsonld` and "
    "`/catalog.ttl`, limited to the entries the filters select).",
    responses={
        200: {
            "content": {
                RDF_MEDIA["json-ld"]: {"schema": {"type": "object"}},
                RDF_MEDIA["turtle"]: {"schema": {"type": "string"}},
            }
        }
    },
)
async def list_catalog(
    request: Request,
    response: Response,
    state: StateDep,
    q: Annotated[
        Line | None, Query(description="Words to find in names, summaries, keywords")
    ] = None,
    provider_code: QueryText = None,
    classification: Literal["base", "theme", "department"] | None = None,
    sharing_type: Literal["unconditional", "conditional", "not_shared"] | None = None,
    open: bool | None = None,
    update_cycle: QueryText = None,
) -> list[CatalogSummary] | Response:
    chosen = [
        contract
        for contract in state.contracts.values()
        if _selected(contract, q, provider_code, classification, sharing_type, open, update_cycle)
    ]
    if fmt := rdf_format(request.headers.get("accept", "")):
        return await rdf_response(request, state, chosen, fmt)
    response.headers.update(VARY_ACCEPT)
    latest = (await current_versions(state)).latest_all()
    entries = []
    for contract in chosen:
        version = latest.get(contract.dataset)
        entries.append(CatalogSummary.of(contract, version, _freshness(state, contract, version)))
    return entries


def _selected(
    contract: Contract,
    q: str | None,
    provider_code: str | None,
    classification: str | None,
    sharing_type: str | None,
    open: bool | None,
    update_cycle: str | None,
) -> bool:
    meta = contract.catalog
    return not (
        (q and not _matches_text(contract, q))
        or (provider_code and meta.provider.code != provider_code)
        or (classification and meta.classification != classification)
        or (sharing_type and meta.sharing.type != sharing_type)
        or (open is not None and meta.open.open != open)
        or (update_cycle and meta.update_cycle != update_cycle)
    )


@router.get("/{dataset}", response_model=CatalogEntry, summary="One catalog entry")
def get_entry(contract: ContractDep, state: StateDep) -> CatalogEntry:
    versions = state.versions().of(contract.dataset)
    latest = versions[0] if versions else None
    return CatalogEntry(
        dataset=contract.dataset,
        title=contract.title,
        catalog=contract.catalog,
        key=contract.key,
        items=[DataItemPublic.of(item) for item in contract.items],
        verification=contract.verification,
        versions=[VersionPublic.of(v) for v in versions],
        freshness=FreshnessState.of(_freshness(state, contract, latest)),
    )


@router.get(
    "/{dataset}/versions/{number}", response_model=VersionPublic, summary="One dataset version"
)
def get_entry_version(contract: ContractDep, number: PathId, state: StateDep) -> VersionPublic:
    version = state.versions().get(contract.dataset, number)
    if version is None:
        raise HTTPException(404, f"{contract.dataset} has no version {number}")
    return VersionPublic.of(version)
